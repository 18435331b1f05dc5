//! Alerts: what fires (threshold crossings, unpriced usage, projected cost), and the
//! port that publishes stored alerts and invoices (SNS in AWS, the log locally).
//!
//! An alert is stored first (once per user, period and key), then published; a failed
//! publish leaves it in the outbox and the aggregation retries it. Delivery is
//! at-least-once and every message carries its id so subscribers can de-duplicate.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::budgets::{Scope, Window};
use crate::domain::{Alert, BudgetId, Invoice, Severity, TenantId, UserId};
use crate::limits::{projected_cost, reached, recorded_amount, Metric, Plan};
use crate::periods::Period;
use crate::usage::PeriodUsage;

#[cfg(feature = "dynamo")]
pub mod sns;

/// One message for subscribers: a JSON body and the attributes filter policies match on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// `alert` or `invoice.created`.
    pub kind: &'static str,
    pub id: String,
    pub subject: String,
    pub body: serde_json::Value,
    pub attributes: BTreeMap<&'static str, String>,
}

#[derive(Debug, thiserror::Error)]
#[error("alert delivery failed: {0}")]
pub struct PublishError(pub String);

/// Where stored alerts and invoices are published.
#[async_trait]
pub trait AlertPublisher: Send + Sync {
    async fn publish(&self, message: &OutboxMessage) -> Result<(), PublishError>;
}

/// The local server's publisher: alerts are already stored; this logs each one.
#[derive(Debug, Default, Clone)]
pub struct LogPublisher;

#[async_trait]
impl AlertPublisher for LogPublisher {
    async fn publish(&self, m: &OutboxMessage) -> Result<(), PublishError> {
        tracing::info!(kind = m.kind, id = %m.id, tenant = m.attributes.get("tenant_id").map(String::as_str), user = m.attributes.get("user_id").map(String::as_str), subject = %m.subject, "published");
        Ok(())
    }
}

/// The message `type` of an alert: `alert`, or for a wallet alarm (issue 19, its key
/// `wallet.low_balance#<n>` / `wallet.depleted#<n>`) the alarm's name.
fn alert_type(a: &Alert) -> &'static str {
    if a.key.starts_with(RESOLVED_PREFIX) {
        // SPEC §10: a hard limit's denial resolved is `alert.resolved`.
        "alert.resolved"
    } else if a.key.starts_with("wallet.low_balance#") {
        "wallet.low_balance"
    } else if a.key.starts_with("wallet.depleted#") {
        "wallet.depleted"
    } else {
        "alert"
    }
}

impl From<&Alert> for OutboxMessage {
    fn from(a: &Alert) -> Self {
        let kind = alert_type(a);
        let mut attributes = BTreeMap::from([
            ("type", kind.to_owned()),
            ("tenant_id", a.tenant.to_string()),
            ("severity", a.severity.as_str().to_owned()),
            ("alert_key", a.key.clone()),
        ]);
        // An org's alert (a budget on pooled usage) names its org and no user.
        match &a.org {
            Some(org) => attributes.insert("org_id", org.to_string()),
            None => attributes.insert("user_id", a.user.to_string()),
        };
        if let Some(m) = &a.metric {
            attributes.insert("metric", m.clone());
        }
        if let Some(t) = a.threshold {
            attributes.insert("threshold", t.to_string());
        }
        // Issue 18: a budget's alert names its budget (subscribers filter on it).
        if let Some(b) = budget_of_key(&a.key).or_else(|| resolved_budget_of_key(&a.key)) {
            attributes.insert("budget_id", b.to_owned());
        }
        // SPEC §10: and its scope (`user`, `org` or `team`, with the ids it names) and
        // window, so that subscribers can filter on them.
        if let Some(o) = &a.budget {
            attributes.insert("scope", o.scope.kind().to_owned());
            if let Some(org) = o.scope.org_id() {
                attributes.insert("org_id", org.to_string());
            }
            if let Scope::Team { team_id, .. } = &o.scope {
                attributes.insert("team_id", team_id.to_string());
            }
            attributes.insert("window", o.window.as_str().to_owned());
        }
        let mut body = serde_json::json!({
            "type": kind,
            "alert_id": a.id,
            "tenant_id": a.tenant,
            "user_id": a.user,
            "period": a.period_start.date_naive().to_string(),
            "key": a.key,
            "metric": a.metric,
            "threshold": a.threshold,
            "severity": a.severity.as_str(),
            "title": a.title,
            "message": a.message,
            "created_at": a.created_at,
        });
        if let (Some(org), Some(b)) = (&a.org, body.as_object_mut()) {
            b.remove("user_id");
            b.insert("org_id".to_owned(), serde_json::json!(org));
        }
        if let (Some(o), Some(b)) = (&a.budget, body.as_object_mut()) {
            b.insert("scope".to_owned(), serde_json::json!(o.scope));
            b.insert("window".to_owned(), serde_json::json!(o.window));
        }
        OutboxMessage {
            kind,
            id: a.id.clone(),
            subject: a.title.clone(),
            body,
            attributes,
        }
    }
}

impl From<&Invoice> for OutboxMessage {
    fn from(i: &Invoice) -> Self {
        OutboxMessage {
            kind: "invoice.created",
            id: i.id.clone(),
            subject: format!("Invoice for {}", i.period.start.date_naive()),
            body: serde_json::json!({ "type": "invoice.created", "invoice": i }),
            attributes: BTreeMap::from([
                ("type", "invoice.created".to_owned()),
                ("tenant_id", i.tenant.to_string()),
                ("user_id", i.user.clone()),
            ]),
        }
    }
}

/// Severity of a threshold: 100 % and above is an error, 90 % a warning, below an info.
pub fn severity_for(threshold: u8) -> Severity {
    match threshold {
        100.. => Severity::Error,
        90..=99 => Severity::Warning,
        _ => Severity::Info,
    }
}

/// The once-only key of a threshold alert: `calls:gemini@80`.
pub fn threshold_key(metric: &Metric, threshold: u8) -> String {
    format!("{metric}@{threshold}")
}

/// The once-only key of a budget's threshold alert, once per budget, window, metric and
/// threshold: `budget/<budget_id>/<window start, RFC 3339>/<metric>@<threshold>`, e.g.
/// `budget/daily-cap/2025-03-14T00:00:00Z/cost_usd@80`. Distinct for distinct tuples:
/// read from the right, the threshold follows the last `@`, the metric (no `/` in
/// metrics) the last `/`, and the start has a fixed form.
pub fn budget_threshold_key(
    budget_id: &BudgetId,
    window_start: DateTime<Utc>,
    metric: &Metric,
    threshold: u8,
) -> String {
    format!(
        "budget/{budget_id}/{}/{}",
        window_start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        threshold_key(metric, threshold)
    )
}

/// A new alert for a budget's `metric` reaching `threshold` % of `limit` with `used` in
/// the window starting at `scope.period_start` (once per budget, window, metric and
/// threshold: [`budget_threshold_key`]).
pub fn budget_alert(
    scope: AlertScope<'_>,
    budget_id: &BudgetId,
    window: &str,
    metric: &Metric,
    threshold: u8,
    used: Decimal,
    limit: Decimal,
) -> Alert {
    let (what, unit) = describe(metric);
    let severity = severity_for(threshold);
    let amount = |d: Decimal| match metric {
        Metric::CostUsd => format!("${}", d.normalize()),
        _ => format!("{} {what} {unit}", d.normalize()),
    };
    scope.alert(
        budget_threshold_key(budget_id, scope.period_start, metric, threshold),
        Some(metric.to_string()),
        Some(threshold),
        severity,
        format!("Budget {budget_id} at {threshold}% - {what}"),
        format!(
            "Budget {budget_id} ({window}): {} of {} ({threshold}%)",
            amount(used),
            amount(limit)
        ),
    )
}

/// How long a budget alert of a `minute`, `hour`, `day` or `week` window (and the
/// `alert.resolved` of such a budget's denial) is kept after it was raised. Such budgets
/// can alert in every window, so their alerts would otherwise grow with time (SPEC §12);
/// alerts of `month` and `period` windows, like plan alerts, are bounded per period and
/// kept with the period's history.
pub const SHORT_WINDOW_ALERT_RETENTION_DAYS: i64 = 30;

/// When an aggregation pass may delete `a` (once published): `created_at` plus
/// [`SHORT_WINDOW_ALERT_RETENTION_DAYS`] for an alert of a budget window shorter than a
/// month; `None` (kept) for every other alert.
pub fn retain_until(a: &Alert) -> Option<DateTime<Utc>> {
    match a.budget.as_ref()?.window {
        Window::Minute | Window::Hour | Window::Day | Window::Week => {
            Some(a.created_at + chrono::Duration::days(SHORT_WINDOW_ALERT_RETENTION_DAYS))
        }
        Window::Month | Window::Period => None,
    }
}

/// The budget id of a budget alert's key ([`budget_threshold_key`]).
pub fn budget_of_key(key: &str) -> Option<&str> {
    key.strip_prefix("budget/")?.split('/').next()
}

/// The key prefix of `alert.resolved` alerts: `resolved/<denied key>@<denied at, epoch
/// seconds>` (`service::alert_resolved`).
pub const RESOLVED_PREFIX: &str = "resolved/";

/// The budget id of an `alert.resolved` alert's key, when a budget had denied.
fn resolved_budget_of_key(key: &str) -> Option<&str> {
    budget_of_key(key.strip_prefix(RESOLVED_PREFIX)?)
}

/// Once-only key of the alert for unpriced usage in a period.
pub const UNPRICED_KEY: &str = "unpriced";
/// Once-only key of the alert for a projected cost past the cap.
pub const PROJECTION_KEY: &str = "projected_cost";

fn describe(metric: &Metric) -> (String, &'static str) {
    match metric {
        Metric::Calls(Some(p)) => (p.to_string(), "API calls"),
        Metric::Calls(None) => ("all providers".to_owned(), "API calls"),
        Metric::Tokens(Some(p)) => (p.to_string(), "tokens"),
        Metric::Tokens(None) => ("all providers".to_owned(), "tokens"),
        Metric::CostUsd => ("cost".to_owned(), "USD"),
    }
}

/// Whose alert, for which period, raised when.
#[derive(Debug, Clone, Copy)]
pub struct AlertScope<'a> {
    pub tenant: &'a TenantId,
    pub user: &'a UserId,
    pub period_start: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

impl AlertScope<'_> {
    fn alert(
        &self,
        key: String,
        metric: Option<String>,
        threshold: Option<u8>,
        severity: Severity,
        title: String,
        message: String,
    ) -> Alert {
        Alert {
            id: uuid::Uuid::now_v7().to_string(),
            tenant: self.tenant.clone(),
            user: self.user.clone(),
            period_start: self.period_start,
            key,
            metric,
            threshold,
            severity,
            title,
            message,
            created_at: self.now,
            read: false,
            published: false,
            org: None,
            budget: None,
        }
    }
}

/// A new alert for `metric` reaching `threshold` % of `limit` with `used`.
pub fn threshold_alert(
    scope: AlertScope<'_>,
    metric: &Metric,
    threshold: u8,
    used: Decimal,
    limit: Decimal,
) -> Alert {
    let (what, unit) = describe(metric);
    let severity = severity_for(threshold);
    let title = match severity {
        Severity::Error => format!("API usage limit reached - {what}"),
        Severity::Warning => format!("API usage warning - {what}"),
        Severity::Info => format!("API usage notice - {what}"),
    };
    let message = if matches!(metric, Metric::CostUsd) {
        format!(
            "You have used ${} of your ${} monthly cost cap ({threshold}%)",
            used.normalize(),
            limit.normalize()
        )
    } else {
        format!(
            "You have used {} of {} {what} {unit} ({threshold}%)",
            used.normalize(),
            limit.normalize()
        )
    };
    scope.alert(
        threshold_key(metric, threshold),
        Some(metric.to_string()),
        Some(threshold),
        severity,
        title,
        message,
    )
}

/// A new alert saying that the period has usage without a price in force.
pub fn unpriced_alert(scope: AlertScope<'_>, unpriced_calls: u64) -> Alert {
    scope.alert(
        UNPRICED_KEY.to_owned(),
        None,
        None,
        Severity::Warning,
        "Usage without a price".to_owned(),
        format!("{unpriced_calls} call(s) this period have no price in force; they are counted and will be priced once a price exists"),
    )
}

/// A new alert saying that the projected cost of the period passes the cap.
pub fn projection_alert(scope: AlertScope<'_>, projected: Decimal, cap: Decimal) -> Alert {
    scope.alert(
        PROJECTION_KEY.to_owned(),
        Some(Metric::CostUsd.to_string()),
        None,
        Severity::Warning,
        "Projected cost passes the cap".to_owned(),
        format!(
            "At the current rate this period will cost about ${}, past the ${} cap",
            projected
                .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero),
            cap.normalize()
        ),
    )
}

/// Every alert the period's recorded `usage` under `plan` calls for that has not fired
/// yet (`fired` holds the once-only keys already stored): each threshold of each limited
/// metric reached, unpriced usage, a projected cost past the cap.
pub fn due_alerts(
    scope: AlertScope<'_>,
    plan: &Plan,
    usage: &PeriodUsage,
    fired: &BTreeSet<String>,
    period: &Period,
) -> Vec<Alert> {
    let mut due = Vec::new();
    for (metric, limit) in &plan.limits.0 {
        if *limit <= Decimal::ZERO {
            continue;
        }
        let used = recorded_amount(metric, usage);
        for &t in &plan.alert_thresholds {
            let key = threshold_key(metric, t);
            if fired.contains(&key) {
                continue;
            }
            if reached(used, *limit, t) {
                due.push(threshold_alert(scope, metric, t, used, *limit));
            }
        }
    }
    let unpriced = usage
        .by_provider
        .values()
        .fold(0u64, |n, u| n.saturating_add(u.unpriced_calls));
    if unpriced > 0 && !fired.contains(UNPRICED_KEY) {
        due.push(unpriced_alert(scope, unpriced));
    }
    if let Some(cap) = plan
        .limits
        .0
        .get(&Metric::CostUsd)
        .filter(|c| **c > Decimal::ZERO)
    {
        let cost = recorded_amount(&Metric::CostUsd, usage);
        if let Some(projected) = projected_cost(cost, period, scope.now) {
            if projected > *cap && !fired.contains(PROJECTION_KEY) {
                due.push(projection_alert(scope, projected, *cap));
            }
        }
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ProviderId;

    #[test]
    fn budget_threshold_keys_name_budget_window_metric_and_threshold() {
        use chrono::TimeZone;
        let id = |s: &str| BudgetId::parse(s).unwrap();
        let day = |d| Utc.with_ymd_and_hms(2025, 3, d, 0, 0, 0).unwrap();
        let cost = Metric::CostUsd;
        let calls = Metric::parse("calls:gemini").unwrap();
        assert_eq!(
            budget_threshold_key(&id("daily-cap"), day(14), &cost, 80),
            "budget/daily-cap/2025-03-14T00:00:00Z/cost_usd@80"
        );
        let keys = [
            budget_threshold_key(&id("a"), day(14), &cost, 80),
            budget_threshold_key(&id("b"), day(14), &cost, 80),
            budget_threshold_key(&id("a"), day(15), &cost, 80),
            budget_threshold_key(&id("a"), day(14), &calls, 80),
            budget_threshold_key(&id("a"), day(14), &cost, 90),
            threshold_key(&cost, 80),
        ];
        let distinct: BTreeSet<&String> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len(), "{keys:?}");
        assert!(keys.iter().all(|k| !k.contains('#')));
    }

    #[test]
    fn severities_follow_thresholds() {
        assert_eq!(severity_for(80), Severity::Info);
        assert_eq!(severity_for(90), Severity::Warning);
        assert_eq!(severity_for(100), Severity::Error);
    }

    #[test]
    fn threshold_alert_message_and_attributes() {
        let t = TenantId::parse("t").unwrap();
        let u = UserId::parse("u").unwrap();
        let m = Metric::Calls(Some(ProviderId::parse("gemini").unwrap()));
        let now = Utc::now();
        let scope = AlertScope {
            tenant: &t,
            user: &u,
            period_start: now,
            now,
        };
        let a = threshold_alert(scope, &m, 80, Decimal::from(800), Decimal::from(1000));
        assert_eq!(a.key, "calls:gemini@80");
        assert_eq!(a.title, "API usage notice - gemini");
        assert_eq!(
            a.message,
            "You have used 800 of 1000 gemini API calls (80%)"
        );
        let msg = OutboxMessage::from(&a);
        assert_eq!(msg.attributes["type"], "alert");
        assert_eq!(msg.attributes["metric"], "calls:gemini");
        assert_eq!(msg.attributes["threshold"], "80");
        assert_eq!(msg.attributes["severity"], "info");
        assert_eq!(
            msg.body["alert_id"],
            serde_json::Value::String(a.id.clone())
        );
    }

    #[test]
    fn budget_alerts_name_their_scope_and_window_and_short_windows_expire() {
        let t = TenantId::parse("t").unwrap();
        let u = UserId::parse("u").unwrap();
        let now = Utc::now();
        let scope = AlertScope {
            tenant: &t,
            user: &u,
            period_start: now,
            now,
        };
        let team = Scope::Team {
            org_id: crate::domain::OrgId::parse("acme").unwrap(),
            team_id: crate::domain::TeamId::parse("red").unwrap(),
        };
        let mut a = budget_alert(
            scope,
            &BudgetId::parse("red-rate").unwrap(),
            "minute",
            &Metric::parse("calls:*").unwrap(),
            80,
            Decimal::from(48),
            Decimal::from(60),
        );
        a.budget = Some(crate::budgets::BudgetOrigin {
            scope: team.clone(),
            window: Window::Minute,
        });
        let msg = OutboxMessage::from(&a);
        assert_eq!(msg.attributes["budget_id"], "red-rate");
        assert_eq!(msg.attributes["scope"], "team");
        assert_eq!(msg.attributes["org_id"], "acme");
        assert_eq!(msg.attributes["team_id"], "red");
        assert_eq!(msg.attributes["window"], "minute");
        assert_eq!(
            msg.attributes["user_id"], "u",
            "a member's alert keeps its user"
        );
        assert_eq!(msg.body["scope"], serde_json::json!(team));
        assert_eq!(
            msg.body["scope"],
            serde_json::json!({"kind": "team", "org_id": "acme", "team_id": "red"})
        );

        let days = chrono::Duration::days(SHORT_WINDOW_ALERT_RETENTION_DAYS);
        for (w, kept) in [
            (Window::Minute, false),
            (Window::Hour, false),
            (Window::Day, false),
            (Window::Week, false),
            (Window::Month, true),
            (Window::Period, true),
        ] {
            a.budget.as_mut().unwrap().window = w;
            let want = if kept { None } else { Some(now + days) };
            assert_eq!(retain_until(&a), want, "{w:?}");
        }
        // Plan alerts, and budget alerts stored before the origin was kept, stay.
        a.budget = None;
        assert_eq!(retain_until(&a), None);
        assert!(!OutboxMessage::from(&a).attributes.contains_key("scope"));
    }
}
