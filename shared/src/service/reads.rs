//! Plain reads: plans, the price catalog, quotes, alerts.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::{Caller, Error, Meter, Result};
use crate::budgets::Scope;
use crate::domain::{Alert, ModelId, OrgId, PlanName, ProviderId, Severity, TeamId, UserId};
use crate::limits::{MetricAmounts, Plan, PlanTier};
use crate::pricing::{PriceOutcome, PriceVersion, Prices};
use crate::usage::UsageCounts;

/// A plan as clients see it (GET /plans, a subscription's plan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanView {
    pub name: PlanName,
    pub tier: PlanTier,
    #[serde(serialize_with = "crate::domain::money::normalized")]
    pub monthly_price_usd: Decimal,
    #[serde(serialize_with = "crate::domain::money::normalized")]
    pub yearly_price_usd: Decimal,
    pub description: String,
    pub features: Vec<String>,
    pub alert_thresholds: Vec<u8>,
    pub limits: MetricAmounts,
    /// `postpaid` or `prepaid` (§11).
    pub payment: crate::limits::Payment,
}

impl From<&Plan> for PlanView {
    fn from(p: &Plan) -> Self {
        PlanView {
            name: p.name.clone(),
            tier: p.tier.clone(),
            monthly_price_usd: p.monthly_price_usd,
            yearly_price_usd: p.yearly_price_usd,
            description: p.description.clone(),
            features: p.features.clone(),
            alert_thresholds: p.alert_thresholds.clone(),
            limits: MetricAmounts(p.limits.0.clone()),
            payment: p.payment,
        }
    }
}

/// GET /plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanList {
    pub plans: Vec<PlanView>,
}

/// A price version as clients see it (every field present).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PriceVersionView {
    pub id: String,
    pub provider: ProviderId,
    pub model: Option<ModelId>,
    pub aliases: Vec<ModelId>,
    pub effective_from: DateTime<Utc>,
    pub effective_to: Option<DateTime<Utc>>,
    pub prices: Prices,
    pub source: String,
}

impl From<&PriceVersion> for PriceVersionView {
    fn from(v: &PriceVersion) -> Self {
        PriceVersionView {
            id: v.id.clone(),
            provider: v.provider.clone(),
            model: v.model.clone(),
            aliases: v.aliases.clone(),
            effective_from: v.effective_from,
            effective_to: v.effective_to,
            prices: v.prices.clone(),
            source: v.source.clone(),
        }
    }
}

/// GET /pricing: the versions in force at `as_of`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PricingView {
    pub as_of: DateTime<Utc>,
    pub prices: Vec<PriceVersionView>,
}

/// A hypothetical event to price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteRequest {
    /// The org and team of the hypothetical call (§10): validated, not priced by.
    pub org_id: Option<OrgId>,
    pub team_id: Option<TeamId>,
    pub provider: Option<ProviderId>,
    pub model: Option<ModelId>,
    /// When the call happens (default: now).
    pub at: Option<DateTime<Utc>>,
    pub counts: UsageCounts,
    /// The counts were estimated from characters.
    pub estimated: bool,
}

/// The cost of a hypothetical event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Quote {
    Priced {
        provider: ProviderId,
        #[serde(serialize_with = "crate::domain::money::normalized")]
        cost_usd: Decimal,
        /// Always true.
        priced: bool,
        estimated: bool,
        price_version: String,
    },
    Unpriced {
        provider: ProviderId,
        /// Always null.
        cost_usd: Option<Decimal>,
        /// Always false.
        priced: bool,
        estimated: bool,
        reason: String,
    },
}

/// An alert as clients see it: a user's (`user_id`), or an org's (`org_id`: a budget on
/// the pooled usage of the org or of one of its teams, SPEC §10), never both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertView {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<OrgId>,
    /// The period's start date (a budget's alert: the start date of its window).
    pub period: String,
    pub key: String,
    pub metric: Option<String>,
    pub threshold: Option<u8>,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
    pub read: bool,
    /// A budget's alert: the budget's scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

impl From<&Alert> for AlertView {
    fn from(a: &Alert) -> Self {
        AlertView {
            id: a.id.clone(),
            user_id: a.org.is_none().then(|| a.user.clone()),
            org_id: a.org.clone(),
            period: a.period_start.date_naive().to_string(),
            key: a.key.clone(),
            metric: a.metric.clone(),
            threshold: a.threshold,
            severity: a.severity,
            title: a.title.clone(),
            message: a.message.clone(),
            created_at: a.created_at,
            read: a.read,
            scope: a.budget.as_ref().map(|b| b.scope.clone()),
        }
    }
}

/// GET /alerts/{user_id}.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertList {
    pub user_id: UserId,
    pub alerts: Vec<AlertView>,
    /// All unread alerts of the user, whatever the page shows.
    pub unread_count: u64,
}

/// POST /alerts/{alert_id}/mark-read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarkedRead {
    pub alert_id: String,
    pub read: bool,
}

impl Meter {
    /// The tenant's active plans, cheapest first.
    pub async fn list_plans(&self, caller: &Caller) -> Result<PlanList> {
        let plans = self.plans(&caller.tenant).await?;
        let mut active: Vec<&Plan> = plans.iter().filter(|p| p.active).collect();
        active.sort_by(|a, b| {
            a.monthly_price_usd
                .cmp(&b.monthly_price_usd)
                .then(a.name.cmp(&b.name))
        });
        Ok(PlanList {
            plans: active.into_iter().map(PlanView::from).collect(),
        })
    }

    /// The price versions in force now (the tenant's own over the shared ones), optionally
    /// of one provider; a provider without a price in force is a bad parameter.
    pub async fn pricing(
        &self,
        caller: &Caller,
        provider: Option<&ProviderId>,
    ) -> Result<PricingView> {
        let now = self.now();
        let catalog = self.catalog(&caller.tenant).await?;
        let mut in_force: Vec<&PriceVersion> = catalog
            .versions()
            .iter()
            .filter(|v| v.in_force_at(now) && provider.is_none_or(|p| &v.provider == p))
            .collect();
        if let Some(p) = provider {
            if in_force.is_empty() {
                return Err(Error::bad_parameter(
                    "unknown_provider",
                    format!("no price in force for provider `{p}`"),
                ));
            }
        }
        in_force.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
        Ok(PricingView {
            as_of: now,
            prices: in_force.into_iter().map(PriceVersionView::from).collect(),
        })
    }

    /// The cost of a hypothetical event; nothing is recorded.
    pub async fn quote(&self, caller: &Caller, req: &QuoteRequest) -> Result<Quote> {
        let at = req.at.unwrap_or_else(|| self.now());
        let catalog = self.catalog(&caller.tenant).await?;
        let outcome = catalog
            .price(req.provider.as_ref(), req.model.as_ref(), at, &req.counts)
            .map_err(|e| Error::invalid("model", e.code(), e.to_string()))?;
        Ok(match outcome {
            PriceOutcome::Priced {
                cost_usd,
                version_id,
                provider,
            } => Quote::Priced {
                provider,
                cost_usd,
                priced: true,
                estimated: req.estimated,
                price_version: version_id,
            },
            PriceOutcome::Unpriced { provider, reason } => Quote::Unpriced {
                provider,
                cost_usd: None,
                priced: false,
                estimated: req.estimated,
                reason,
            },
        })
    }

    /// A user's alerts, newest first, at most `limit`; `unread_count` counts all.
    pub async fn alerts(
        &self,
        caller: &Caller,
        user: &UserId,
        unread_only: bool,
        limit: usize,
    ) -> Result<AlertList> {
        let (alerts, unread) = self
            .store
            .list_alerts(&caller.tenant, user, unread_only, limit)
            .await?;
        Ok(AlertList {
            user_id: user.clone(),
            alerts: alerts.iter().map(AlertView::from).collect(),
            unread_count: unread,
        })
    }

    /// Marks an alert read; idempotent. Another tenant's alert is not found.
    pub async fn mark_alert_read(&self, caller: &Caller, alert_id: &str) -> Result<MarkedRead> {
        if alert_id.is_empty() || alert_id.len() > 128 {
            return Err(Error::NotFound("alert"));
        }
        if !self.store.mark_alert_read(&caller.tenant, alert_id).await? {
            return Err(Error::NotFound("alert"));
        }
        Ok(MarkedRead {
            alert_id: alert_id.to_owned(),
            read: true,
        })
    }
}
