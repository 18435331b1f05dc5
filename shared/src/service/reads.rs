//! Reads that need no new storage: plans, the price catalog, quotes, alerts.
//! (The first part of the dashboard routes.)

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::check::metric_map;
use super::{Caller, Meter};
use crate::domain::{Alert, ProviderId, UserId};
use crate::http::{wire, ApiError};
use crate::limits::Plan;
use crate::pricing::{PriceOutcome, PriceVersion};

/// A plan as clients see it (GET /plans, GET /user/{id}/subscription).
pub fn plan_json(p: &Plan) -> Value {
    json!({
        "name": p.name,
        "tier": p.tier,
        "monthly_price_usd": p.monthly_price_usd.normalize().to_string(),
        "yearly_price_usd": p.yearly_price_usd.normalize().to_string(),
        "description": p.description,
        "features": p.features,
        "alert_thresholds": p.alert_thresholds,
        "limits": metric_map(&p.limits.0),
    })
}

fn version_json(v: &PriceVersion) -> Value {
    json!({
        "id": v.id,
        "provider": v.provider,
        "model": v.model,
        "aliases": v.aliases,
        "effective_from": v.effective_from,
        "effective_to": v.effective_to,
        "prices": v.prices,
        "source": v.source,
    })
}

/// An alert as clients see it.
pub fn alert_json(a: &Alert) -> Value {
    json!({
        "id": a.id,
        "user_id": a.user,
        "period": a.period_start.date_naive().to_string(),
        "key": a.key,
        "metric": a.metric,
        "threshold": a.threshold,
        "severity": a.severity,
        "title": a.title,
        "message": a.message,
        "created_at": a.created_at,
        "read": a.read,
    })
}

/// Fields of a quote besides its usage (`wire::COUNT_FIELDS` and `usage`).
const QUOTE_FIELDS: &[&str] = &["provider", "model", "timestamp"];

impl Meter {
    /// GET /plans: the tenant's active plans, cheapest first.
    pub async fn list_plans(&self, caller: &Caller) -> Result<Value, ApiError> {
        let plans = self.plans(&caller.tenant).await?;
        let mut active: Vec<&Plan> = plans.iter().filter(|p| p.active).collect();
        active.sort_by(|a, b| {
            a.monthly_price_usd
                .cmp(&b.monthly_price_usd)
                .then(a.name.cmp(&b.name))
        });
        Ok(json!({ "plans": active.into_iter().map(plan_json).collect::<Vec<_>>() }))
    }

    /// GET /pricing: the price versions in force now (the tenant's own over the shared
    /// ones), optionally of one provider; an unknown provider is a 400.
    pub async fn pricing(
        &self,
        caller: &Caller,
        provider: Option<&ProviderId>,
    ) -> Result<Value, ApiError> {
        let now = self.now();
        let catalog = self.catalog(&caller.tenant).await?;
        let mut in_force: Vec<&PriceVersion> = catalog
            .versions()
            .iter()
            .filter(|v| v.in_force_at(now) && provider.is_none_or(|p| &v.provider == p))
            .collect();
        if let Some(p) = provider {
            if in_force.is_empty() {
                return Err(ApiError::bad_request(
                    "unknown_provider",
                    format!("no price in force for provider `{p}`"),
                ));
            }
        }
        in_force.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
        Ok(json!({
            "as_of": now,
            "prices": in_force.into_iter().map(version_json).collect::<Vec<_>>(),
        }))
    }

    /// POST /pricing/quote: the cost of a hypothetical event; nothing is recorded.
    pub async fn quote(&self, caller: &Caller, body: &Value) -> Result<Value, ApiError> {
        let mut f = crate::http::fields::Fields::new(
            body,
            "",
            &[QUOTE_FIELDS, &wire::COUNT_FIELDS, &["usage"]],
        )
        .map_err(|e| ApiError::Invalid(vec![e]))?;
        let provider = f.id("provider", false, ProviderId::parse);
        let model = f.id("model", false, crate::domain::ModelId::parse);
        let at: DateTime<Utc> = f.timestamp("timestamp").unwrap_or_else(|| self.now());
        let counts = wire::read_counts(&mut f);
        if !f.errors.is_empty() {
            return Err(ApiError::Invalid(f.errors));
        }
        let catalog = self.catalog(&caller.tenant).await?;
        let outcome = catalog
            .price(provider.as_ref(), model.as_ref(), at, &counts.counts)
            .map_err(|e| ApiError::invalid("model", e.code(), e.to_string()))?;
        Ok(match outcome {
            PriceOutcome::Priced {
                cost_usd,
                version_id,
                provider,
            } => json!({
                "provider": provider, "cost_usd": cost_usd.normalize().to_string(), "priced": true,
                "estimated": counts.estimated, "price_version": version_id,
            }),
            PriceOutcome::Unpriced { provider, reason } => json!({
                "provider": provider, "cost_usd": null, "priced": false,
                "estimated": counts.estimated, "reason": reason,
            }),
        })
    }

    /// GET /alerts/{user_id}: newest first, at most `limit`; `unread_count` counts all.
    pub async fn alerts(
        &self,
        caller: &Caller,
        user: &UserId,
        unread_only: bool,
        limit: usize,
    ) -> Result<Value, ApiError> {
        let (alerts, unread) = self
            .store
            .list_alerts(&caller.tenant, user, unread_only, limit)
            .await?;
        Ok(json!({
            "user_id": user,
            "alerts": alerts.iter().map(alert_json).collect::<Vec<_>>(),
            "unread_count": unread,
        }))
    }

    /// POST /alerts/{alert_id}/mark-read: idempotent; another tenant's alert is a 404.
    pub async fn mark_alert_read(
        &self,
        caller: &Caller,
        alert_id: &str,
    ) -> Result<Value, ApiError> {
        if alert_id.is_empty() || alert_id.len() > 128 {
            return Err(ApiError::NotFound("alert"));
        }
        if !self.store.mark_alert_read(&caller.tenant, alert_id).await? {
            return Err(ApiError::NotFound("alert"));
        }
        Ok(json!({ "alert_id": alert_id, "read": true }))
    }
}
