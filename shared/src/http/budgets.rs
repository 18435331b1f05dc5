//! Budgets (§10, docs/budgets.md): `PUT`/`GET`/`DELETE /budgets/{budget_id}` and
//! `GET /budgets?user_id=|org_id=[&team_id=]`.
//!
//! The body is read field by field like the other admin bodies: unknown fields, `null`s,
//! unknown scope kinds, windows, modes and metrics, malformed amounts and thresholds are
//! field errors (422) with stable codes; the budget's own rules (`each_member` on a user,
//! limits `0..10^15`, whole counts, ascending thresholds) are [`Budget::validate`]'s, in the
//! service. Nothing is stored unless the whole body is valid.
//!
//! [`Budget::validate`]: crate::budgets::Budget::validate

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, put};
use axum::Router;
use rust_decimal::Decimal;
use serde_json::Value;

use super::amounts::{is_money, too_large, MAX_LIMIT};
use super::error::ok;
use super::extract::{Auth, JsonBody};
use super::fields::Fields;
use super::routes::{params, PREFIX};
use super::ApiError;
use crate::budgets::{AppliesTo, Mode, Scope, ScopeError, Window};
use crate::domain::{BudgetId, OrgId, Role, TeamId, UserId};
use crate::limits::{default_thresholds, Limits, Metric};
use crate::service::budgets::BudgetInput;
use crate::service::{Error, Meter};

/// The fields of a budget body: what GET shows but `version` and `updated_at`.
const BUDGET_FIELDS: &[&str] = &[
    "budget_id",
    "scope",
    "applies_to",
    "limits",
    "window",
    "mode",
    "alert_thresholds",
];
const SCOPE_FIELDS: &[&str] = &["kind", "user_id", "org_id", "team_id"];

/// The `scope` object: `{"kind": "user", "user_id"}`, `{"kind": "org", "org_id"}` or
/// `{"kind": "team", "org_id", "team_id"}`; the ids of another kind are unknown fields.
fn scope(f: &mut Fields<'_>) -> Option<Scope> {
    if !f.map().contains_key("scope") {
        f.error("scope", "missing_field", "is required");
        return None;
    }
    f.object("scope", SCOPE_FIELDS, |s| {
        let kind = s.choice(
            "kind",
            true,
            &[("user", "user"), ("org", "org"), ("team", "team")],
        )?;
        let allowed: &[&str] = match kind {
            "user" => &["kind", "user_id"],
            "org" => &["kind", "org_id"],
            _ => &["kind", "org_id", "team_id"],
        };
        for name in SCOPE_FIELDS {
            if !allowed.contains(name) && s.raw(name).is_some() {
                s.error(
                    name,
                    "unknown_field",
                    format!("is not a field of a {kind} scope"),
                );
            }
        }
        match kind {
            "user" => s
                .id("user_id", true, UserId::parse)
                .map(|user_id| Scope::User { user_id }),
            "org" => s
                .id("org_id", true, OrgId::parse)
                .map(|org_id| Scope::Org { org_id }),
            _ => {
                let team_id = s.id("team_id", true, TeamId::parse);
                if s.raw("org_id").is_none() {
                    let e = ScopeError::TeamWithoutOrg;
                    s.error(e.field(), e.code(), e.to_string());
                    return None;
                }
                let org_id = s.id("org_id", true, OrgId::parse)?;
                Some(Scope::Team {
                    org_id,
                    team_id: team_id?,
                })
            }
        }
    })
    .flatten()
}

/// A limit value: a JSON integer or a decimal string of at most 15 integer and 13
/// fraction digits (a sign is let through for the domain's `negative_limit`).
fn limit_value(v: &Value) -> Result<Decimal, (&'static str, &'static str)> {
    const FORMAT: &str =
        "a limit is a JSON integer or a decimal string of at most 15 integer and 13 fraction digits";
    const TOO_LARGE: &str = "must be less than 10^15";
    match v {
        Value::String(s) if is_money(s) => {
            Decimal::from_str_exact(s).map_err(|_| ("invalid_limit", FORMAT))
        }
        Value::String(s) if too_large(s) => Err(("limit_too_large", TOO_LARGE)),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            // Negative ones go on to the domain's `negative_limit`.
            (Some(i), _) if i <= 0 || i.unsigned_abs() <= MAX_LIMIT => Ok(Decimal::from(i)),
            (Some(_), _) | (None, Some(_)) => Err(("limit_too_large", TOO_LARGE)),
            // A float: whole ones as JSON Schema's integers, the rest never (they went
            // through f64).
            (None, None) => match n.as_f64() {
                Some(x) if x.fract() == 0.0 && x.abs() <= MAX_LIMIT as f64 => {
                    Decimal::try_from(x).map_err(|_| ("invalid_limit", FORMAT))
                }
                Some(x) if x.fract() == 0.0 && x > 0.0 => Err(("limit_too_large", TOO_LARGE)),
                _ => Err(("invalid_limit", FORMAT)),
            },
        },
        _ => Err(("invalid_limit", FORMAT)),
    }
}

fn limits(f: &mut Fields<'_>) -> Option<Limits> {
    let raw = match f.raw("limits") {
        None => {
            if !f.map().contains_key("limits") {
                f.error("limits", "missing_field", "is required");
            }
            return None;
        }
        Some(Value::Object(map)) => map,
        Some(_) => {
            f.error(
                "limits",
                "invalid_type",
                "must be an object of metric → limit",
            );
            return None;
        }
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (name, v) in raw {
        let shown: String = name.chars().take(80).collect();
        let field = format!("limits.{shown}");
        let metric = match Metric::parse(name) {
            Ok(m) => m,
            Err(e) => {
                f.error(&field, "unknown_metric", e.to_string());
                ok = false;
                continue;
            }
        };
        match limit_value(v) {
            Ok(d) => {
                out.insert(metric, d);
            }
            Err((code, message)) => {
                f.error(&field, code, message);
                ok = false;
            }
        }
    }
    ok.then_some(Limits(out))
}

/// `alert_thresholds`: whole percentages `1..=100` (order and repeats are the domain's).
fn thresholds(f: &mut Fields<'_>) -> Option<Vec<u8>> {
    let Some(raw) = f.raw("alert_thresholds") else {
        return Some(default_thresholds());
    };
    let Value::Array(items) = raw else {
        f.error(
            "alert_thresholds",
            "invalid_type",
            "must be an array of percentages",
        );
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    for v in items {
        let whole = v.as_i64().or_else(|| {
            v.as_f64()
                .filter(|x| x.fract() == 0.0 && x.abs() < 1e6)
                .map(|x| x as i64)
        });
        match whole {
            Some(t) if (1..=100).contains(&t) => out.push(t as u8),
            Some(t) => {
                f.error(
                    "alert_thresholds",
                    "threshold_out_of_range",
                    format!("alert threshold {t} is outside 1..=100"),
                );
                return None;
            }
            None => {
                f.error(
                    "alert_thresholds",
                    "invalid_type",
                    "each threshold is a whole number from 1 to 100",
                );
                return None;
            }
        }
    }
    Some(out)
}

/// Validates a `PUT /budgets/{budget_id}` body; the id comes from the path (a `budget_id`
/// field, if given, must equal it).
pub fn parse_budget(id: &BudgetId, body: &Value) -> Result<BudgetInput, Error> {
    let mut f = Fields::new(body, "", &[BUDGET_FIELDS]).map_err(|e| Error::Invalid(vec![e]))?;
    if let Some(given) = f.string("budget_id", false, 256) {
        if given != id.as_str() {
            f.error(
                "budget_id",
                "budget_id_mismatch",
                "must equal the budget id in the path",
            );
        }
    }
    let scope = scope(&mut f);
    let applies_to = f.choice(
        "applies_to",
        false,
        &[
            ("scope", AppliesTo::Scope),
            ("each_member", AppliesTo::EachMember),
        ],
    );
    let limits = limits(&mut f);
    let windows: Vec<(&str, Window)> = Window::ALL.iter().map(|w| (w.as_str(), *w)).collect();
    let window = f.choice("window", true, &windows);
    let mode = f.choice("mode", true, &[("hard", Mode::Hard), ("soft", Mode::Soft)]);
    let alert_thresholds = thresholds(&mut f);
    match (scope, limits, window, mode, alert_thresholds) {
        (Some(scope), Some(limits), Some(window), Some(mode), Some(alert_thresholds))
            if f.errors.is_empty() =>
        {
            Ok(BudgetInput {
                scope,
                applies_to: applies_to.unwrap_or_default(),
                limits,
                window,
                mode,
                alert_thresholds,
            })
        }
        _ => Err(Error::Invalid(f.errors)),
    }
}

/// The scope a list names: `user_id`, or `org_id` with an optional `team_id`.
pub fn parse_scope_query(p: &BTreeMap<String, String>) -> Result<Scope, ApiError> {
    let id_err =
        |e: crate::domain::ids::IdError| ApiError::bad_request("invalid_id", e.to_string());
    match (p.get("user_id"), p.get("org_id"), p.get("team_id")) {
        (_, None, Some(_)) => {
            let e = ScopeError::TeamWithoutOrg;
            Err(ApiError::bad_request(e.code(), e.to_string()))
        }
        (Some(_), Some(_), _) => Err(ApiError::bad_request(
            "invalid_parameter",
            "give `user_id` or `org_id` (with an optional `team_id`), not both",
        )),
        (None, None, None) => Err(ApiError::bad_request(
            "invalid_parameter",
            "give the scope: `user_id`, `org_id`, or `org_id` and `team_id`",
        )),
        (Some(u), None, None) => Ok(Scope::User {
            user_id: UserId::parse(u.as_str()).map_err(id_err)?,
        }),
        (None, Some(o), None) => Ok(Scope::Org {
            org_id: OrgId::parse(o.as_str()).map_err(id_err)?,
        }),
        (None, Some(o), Some(t)) => Ok(Scope::Team {
            org_id: OrgId::parse(o.as_str()).map_err(id_err)?,
            team_id: TeamId::parse(t.as_str()).map_err(id_err)?,
        }),
    }
}

fn path_id(raw: &str) -> Result<BudgetId, ApiError> {
    BudgetId::parse(raw).map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))
}

async fn put_budget(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let id = path_id(&id)?;
    let input = parse_budget(&id, &body)?;
    Ok(ok(meter.put_budget(&caller, &id, input).await?))
}

async fn get_budget(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let id = path_id(&id)?;
    Ok(ok(meter.get_budget(&caller, &id).await?))
}

async fn delete_budget(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let id = path_id(&id)?;
    Ok(ok(meter.delete_budget(&caller, &id).await?))
}

async fn list_budgets(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let p = params(query, &["user_id", "org_id", "team_id"])?;
    let scope = parse_scope_query(&p)?;
    Ok(ok(meter.list_budgets(&caller, &scope).await?))
}

/// `PUT`/`GET`/`DELETE /budgets/{budget_id}`, `GET /budgets`.
pub fn routes() -> Router<Arc<Meter>> {
    Router::new()
        .route(&format!("{PREFIX}/budgets"), get(list_budgets))
        .route(
            &format!("{PREFIX}/budgets/{{budget_id}}"),
            put(put_budget).get(get_budget).delete(delete_budget),
        )
}
