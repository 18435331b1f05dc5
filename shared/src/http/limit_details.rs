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
