//! Request bodies of the admin writes: subscriptions, plans, price versions.
//!
//! Like the hot path's bodies, every field is typed and unknown fields are refused
//! (`unknown_field`), so a typo never silently keeps an old value.

use serde_json::Value;

use super::fields::Fields;
use crate::domain::{PlanName, SubscriptionStatus};
use crate::limits::{Payment, Plan};
use crate::periods::{Anchor, BillingCycle};
use crate::pricing::PriceVersion;
use crate::service::{Error, FieldError, SubscriptionChange};

const SUBSCRIPTION_FIELDS: &[&str] = &["plan", "billing_cycle", "anchor", "status", "auto_renew"];

/// Validates a subscription body.
pub fn parse_subscription(body: &Value) -> Result<SubscriptionChange, Error> {
    let mut f =
        Fields::new(body, "", &[SUBSCRIPTION_FIELDS]).map_err(|e| Error::Invalid(vec![e]))?;
    let plan = f.id("plan", false, PlanName::parse);
    let billing_cycle = f.choice(
        "billing_cycle",
        false,
        &[
            ("monthly", BillingCycle::Monthly),
            ("yearly", BillingCycle::Yearly),
        ],
    );
    let anchor = f.choice(
        "anchor",
        false,
        &[
            ("calendar", Anchor::Calendar),
            ("anniversary", Anchor::Anniversary),
        ],
    );
    let status = f.choice(
        "status",
        false,
        &[
            ("active", SubscriptionStatus::Active),
            ("past_due", SubscriptionStatus::PastDue),
            ("suspended", SubscriptionStatus::Suspended),
            ("cancelled", SubscriptionStatus::Cancelled),
        ],
    );
    let auto_renew = f.boolean("auto_renew");
    if !f.errors.is_empty() {
        return Err(Error::Invalid(f.errors));
    }
    Ok(SubscriptionChange {
        plan,
        billing_cycle,
        anchor,
        status,
        auto_renew,
    })
}

/// Fields of a plan body: what GET /plans shows, plus `overage_rate`, `active` and `payment`.
const PLAN_FIELDS: &[&str] = &[
    "name",
    "tier",
    "monthly_price_usd",
    "yearly_price_usd",
    "description",
    "features",
    "alert_thresholds",
    "limits",
    "overage_rate",
    "active",
    "payment",
];

/// Validates a `PUT /plans/{name}` body; the name comes from the path (a `name` field,
/// if given, must match it).
pub fn parse_plan(name: &PlanName, body: &Value) -> Result<Plan, Error> {
    let mut f = Fields::new(body, "", &[PLAN_FIELDS]).map_err(|e| Error::Invalid(vec![e]))?;
    if let Some(given) = f.string("name", false, 128) {
        if given != name.as_str() {
            f.error(
                "name",
                "name_mismatch",
                "must equal the plan name in the path",
            );
        }
    }
    // §11: `postpaid` (default) or `prepaid`; anything else is `invalid_value`.
    f.choice(
        "payment",
        false,
        &[
            ("postpaid", Payment::Postpaid),
            ("prepaid", Payment::Prepaid),
        ],
    );
    for required in ["tier", "monthly_price_usd", "yearly_price_usd", "limits"] {
        if f.raw(required).is_none() {
            f.error(required, "missing_field", "is required");
        }
    }
    if !f.errors.is_empty() {
        return Err(Error::Invalid(f.errors));
    }
    let mut obj = super::amounts::plan(f.map()).map_err(Error::Invalid)?;
    obj.insert("name".into(), Value::String(name.to_string()));
    let plan: Plan = serde_json::from_value(Value::Object(obj))
        .map_err(|e| Error::invalid("", "invalid_plan", safe_serde_message(&e)))?;
    plan.validate()
        .map_err(|e| Error::invalid("", e.code(), e.to_string()))?;
    Ok(plan)
}

/// A serde message without echoing long input back.
fn safe_serde_message(e: &serde_json::Error) -> String {
    e.to_string().chars().take(200).collect()
}

/// Most price versions in one `PUT /pricing`.
pub const MAX_PRICE_VERSIONS: usize = 100;

/// Validates a `PUT /pricing` body, `{"versions": [...]}` (1–100 versions in the
/// `PriceVersion` JSON format); each version's problems are reported with its index.
pub fn parse_price_versions(body: &Value) -> Result<Vec<PriceVersion>, Error> {
    let f = Fields::new(body, "", &[&["versions"]]).map_err(|e| Error::Invalid(vec![e]))?;
    let mut errors = f.errors.clone();
    let items = match f.raw("versions") {
        Some(Value::Array(items)) => items.as_slice(),
        Some(_) => {
            errors.push(FieldError::new(
                "versions",
                "invalid_type",
                "must be an array",
            ));
            &[]
        }
        None => {
            errors.push(FieldError::new("versions", "missing_field", "is required"));
            &[]
        }
    };
    if errors.is_empty() && (items.is_empty() || items.len() > MAX_PRICE_VERSIONS) {
        errors.push(FieldError::new(
            "versions",
            "batch_size",
            format!("must hold 1 to {MAX_PRICE_VERSIONS} versions"),
        ));
    }
    let mut versions = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let item = match super::amounts::price_version(item, &format!("versions[{i}]")) {
            Ok(item) => item,
            Err(mut e) => {
                errors.append(&mut e);
                continue;
            }
        };
        match serde_json::from_value::<PriceVersion>(item) {
            Ok(v) if v.prices.is_empty() => errors.push(FieldError::new(
                format!("versions[{i}].prices"),
                "no_prices",
                "a price version states at least one price",
            )),
            Ok(v) => versions.push(v),
            Err(e) => {
                let code = if e.to_string().starts_with("unknown field") {
                    "unknown_field"
                } else {
                    "invalid_price_version"
                };
                errors.push(FieldError::new(
                    format!("versions[{i}]"),
                    code,
                    safe_serde_message(&e),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(versions)
    } else {
        Err(Error::Invalid(errors))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn subscription_body_rejects_unknown_fields_and_values() {
        let code = |e: Error| crate::http::ApiError::from(e).code();
        let e = parse_subscription(&json!({"plan": "pro", "planx": 1})).unwrap_err();
        assert_eq!(code(e), "unknown_field");
        let e = parse_subscription(&json!({"billing_cycle": "weekly"})).unwrap_err();
        assert_eq!(code(e), "invalid_value");
        let ok = parse_subscription(&json!({"plan": "pro", "status": "past_due"})).unwrap();
        assert_eq!(ok.status, Some(SubscriptionStatus::PastDue));
        assert_eq!(ok.billing_cycle, None);
    }

    #[test]
    fn plan_body_takes_its_name_from_the_path_and_is_validated() {
        let name = PlanName::parse("team").unwrap();
        let body = json!({"tier": "custom", "monthly_price_usd": "49", "yearly_price_usd": "490",
                          "limits": {"calls:gemini": 2000, "cost_usd": "80"}});
        let plan = parse_plan(&name, &body).unwrap();
        assert_eq!(plan.name, name);
        let mut bad = body.clone();
        bad["limits"]["calls:gemini"] = json!("1.5");
        let code = |e: Error| crate::http::ApiError::from(e).code();
        assert_eq!(
            code(parse_plan(&name, &bad).unwrap_err()),
            "fractional_limit"
        );
        let mut other = body.clone();
        other["name"] = json!("pro");
        assert_eq!(
            code(parse_plan(&name, &other).unwrap_err()),
            "name_mismatch"
        );
    }
}
