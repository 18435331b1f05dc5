//! The `details` of a 429 `usage_limit_exceeded` when budgets apply to the call (§10):
//! `scope`, `plan` or `budget_id`, `metric`, `window`, `used`, `limit`, `requested`,
//! `resets_at`, and `upgrade_to` for plans only. `period_resets_at` (the same instant) is
//! kept for clients written against plan-only denials. A denial where no budget applies
//! keeps its plan-only shape (see `error.rs`).

use serde_json::{json, Value};

use crate::budgets::LimitSource;
use crate::limits::Amount;
use crate::service::Denial;

pub fn details(d: &Denial) -> Value {
    let mut out = json!({
        "metric": d.metric,
        "used": Amount::of(&d.metric, d.used),
        "limit": Amount::of(&d.metric, d.limit),
        "requested": Amount::of(&d.metric, d.requested),
        "resets_at": d.period_resets_at,
        "period_resets_at": d.period_resets_at,
    });
    if let Some(by) = &d.limited_by {
        out["scope"] = json!(by.source.scope());
        out["window"] = json!(by.window);
        match &by.source {
            LimitSource::Plan { plan, .. } => {
                out["plan"] = json!(plan);
                out["upgrade_to"] = json!(d.upgrade_to);
            }
            LimitSource::Budget { budget_id, .. } => out["budget_id"] = json!(budget_id),
        }
    }
    out
}

/// The `details` of a prepaid check denied for want of credit (§11, issue 19): metric
/// `credits_usd`, the wallet as `scope`, `used` (credit held by open reservations),
/// `limit` (the balance), `requested` (the estimate), `available_usd`, `balance_usd`,
/// `held_usd`; credit does not reset, so `resets_at` is null (a grant frees it).
pub fn credit_details(d: &Denial) -> Value {
    let Some(c) = &d.credit else {
        return details(d);
    };
    let money = |v: rust_decimal::Decimal| json!(v.normalize().to_string());
    let scope = match &c.wallet {
        crate::credits::Subscriber::User(u) => json!({"kind": "user", "user_id": u}),
        crate::credits::Subscriber::Org(o) => json!({"kind": "org", "org_id": o}),
    };
    json!({
        "metric": crate::credits::CREDITS_METRIC,
        "scope": scope,
        "used": money(c.held_usd),
        "limit": money(c.balance_usd),
        "requested": money(c.requested_usd),
        "available_usd": money(c.available_usd),
        "balance_usd": money(c.balance_usd),
        "held_usd": money(c.held_usd),
        "resets_at": null,
        "upgrade_to": null,
    })
}
