//! Prepaid-credit wallets (§11, docs/credits.md): `GET /wallet/{user|org}/{id}`,
//! `PUT …/grants/{grant_id}`, `POST …/grants/{grant_id}/void`, `PUT …/settings`.
//!
//! Bodies are read field by field like the other admin bodies: unknown fields, `null`s,
//! JSON numbers for money (money is a decimal string, never a float), malformed amounts,
//! timestamps and kinds are field errors (422) with stable codes; the credits rules
//! (amount `> 0` with at most 6 decimal places, priority `0..=1000`, expiry in the future,
//! idempotency by `grant_id`) are [`crate::credits`]'s, in the service. Nothing is stored
//! unless the whole body is valid.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use rust_decimal::Decimal;
use serde_json::Value;

use super::amounts::{MONEY_FRACTION_DIGITS, MONEY_INTEGER_DIGITS};
use super::error::ok;
use super::extract::{Auth, JsonBody};
use super::fields::Fields;
use super::routes::PREFIX;
use super::ApiError;
use crate::credits::{
    GrantKind, GrantRequest, Subscriber, DEFAULT_PRIORITY, MAX_DECIMALS, MAX_NOTE_LEN,
};
use crate::domain::{GrantId, OrgId, Role, UserId};
use crate::service::{Error, Meter};

const GRANT_FIELDS: &[&str] = &[
    "grant_id",
    "amount_usd",
    "expires_at",
    "priority",
    "kind",
    "note",
];
const SETTINGS_FIELDS: &[&str] = &["low_balance_usd"];

const MONEY_MESSAGE: &str = "must be a decimal string such as \"10.00\" (at most 15 integer \
     digits and 6 decimal places), not a JSON number";

/// An amount of money: a decimal string `-?D{1,15}(.D+)?` with at most 6 significant
/// decimal places (a sign is let through for the domain's `amount_not_positive`).
fn money(f: &mut Fields<'_>, name: &str, required: bool) -> Option<Decimal> {
    let raw = match f.raw(name) {
        None => {
            if required && !f.map().contains_key(name) {
                f.error(name, "missing_field", "is required");
            }
            return None;
        }
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Number(_)) => {
            f.error(name, "invalid_type", MONEY_MESSAGE);
            return None;
        }
        Some(_) => {
            f.error(name, "invalid_type", MONEY_MESSAGE);
            return None;
        }
    };
    let unsigned = raw.strip_prefix('-').unwrap_or(raw);
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || (unsigned.contains('.') && !digits(frac)) {
        f.error(name, "invalid_amount", MONEY_MESSAGE);
        return None;
    }
    if int.len() > MONEY_INTEGER_DIGITS {
        f.error(name, "amount_too_large", "must be at most 10^15");
        return None;
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > MAX_DECIMALS as usize {
        f.error(
            name,
            "too_many_decimals",
            format!("has more than {MAX_DECIMALS} decimal places"),
        );
        return None;
    }
    debug_assert!(frac.len() <= MONEY_FRACTION_DIGITS);
    let sign = if raw.starts_with('-') { "-" } else { "" };
    let text = if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    };
    match Decimal::from_str_exact(&text) {
        Ok(d) => Some(d),
        Err(_) => {
            f.error(name, "invalid_amount", MONEY_MESSAGE);
            None
        }
    }
}

/// `priority`: a whole number (the range is the domain's `priority_out_of_range`).
fn priority(f: &mut Fields<'_>) -> Option<i32> {
    let v = f.raw("priority")?;
    let whole = v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|x| v.is_f64() && x.fract() == 0.0 && x.abs() < 1e15)
            .map(|x| x as i64)
    });
    match whole {
        Some(p) => match i32::try_from(p) {
            Ok(p) => Some(p),
            Err(_) => {
                f.error(
                    "priority",
                    "priority_out_of_range",
                    "must be a whole number from 0 to 1000",
                );
                None
            }
        },
        None if v.as_f64().is_some_and(|x| x.fract() == 0.0) => {
            f.error(
                "priority",
                "priority_out_of_range",
                "must be a whole number from 0 to 1000",
            );
            None
        }
        None => {
            f.error("priority", "invalid_type", "must be a whole number");
            None
        }
    }
}

/// Validates a `PUT …/grants/{grant_id}` body; the id comes from the path (a `grant_id`
/// field, if given, must equal it).
pub fn parse_grant(id: &GrantId, body: &Value) -> Result<GrantRequest, Error> {
    let mut f = Fields::new(body, "", &[GRANT_FIELDS]).map_err(|e| Error::Invalid(vec![e]))?;
    if let Some(given) = f.string("grant_id", false, 256) {
        if given != id.as_str() {
            f.error(
                "grant_id",
                "grant_id_mismatch",
                "must equal the grant id in the path",
            );
        }
    }
    let amount = money(&mut f, "amount_usd", true);
    let expires_at = f.timestamp("expires_at");
    let priority = priority(&mut f);
    let kind = match f.string("kind", !f.map().contains_key("kind"), 32) {
        Some(k) => match k.parse::<GrantKind>() {
            Ok(k) => Some(k),
            Err(e) => {
                f.error("kind", "invalid_value", e.to_string());
                None
            }
        },
        None => None,
    };
    let note = f.string("note", false, MAX_NOTE_LEN).map(str::to_owned);
    match (amount, kind) {
        (Some(amount_usd), Some(kind)) if f.errors.is_empty() => Ok(GrantRequest {
            amount_usd,
            expires_at,
            priority: priority.unwrap_or(DEFAULT_PRIORITY),
            kind,
            note,
        }),
        _ => Err(Error::Invalid(f.errors)),
    }
}

/// Validates a `PUT …/settings` body: `low_balance_usd` (left out: no low-balance alarm).
pub fn parse_settings(body: &Value) -> Result<Option<Decimal>, Error> {
    let mut f = Fields::new(body, "", &[SETTINGS_FIELDS]).map_err(|e| Error::Invalid(vec![e]))?;
    let low = money(&mut f, "low_balance_usd", false);
    if f.errors.is_empty() {
        Ok(low)
    } else {
        Err(Error::Invalid(f.errors))
    }
}

fn invalid_id(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_id", e.to_string())
}

/// The wallet a path names: `user_id` or `org_id`.
fn subscriber(p: &BTreeMap<String, String>) -> Result<Subscriber, ApiError> {
    match (p.get("user_id"), p.get("org_id")) {
        (Some(u), None) => Ok(Subscriber::User(
            UserId::parse(u.as_str()).map_err(invalid_id)?,
        )),
        (None, Some(o)) => Ok(Subscriber::Org(
            OrgId::parse(o.as_str()).map_err(invalid_id)?,
        )),
        _ => Err(ApiError::RouteNotFound),
    }
}

fn grant_id(p: &BTreeMap<String, String>) -> Result<GrantId, ApiError> {
    let raw = p.get("grant_id").ok_or(ApiError::RouteNotFound)?;
    GrantId::parse(raw.as_str()).map_err(invalid_id)
}

async fn get_wallet(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    caller.require(Role::Service)?;
    let wallet = subscriber(&p)?;
    Ok(ok(meter.wallet(&caller, &wallet).await?))
}

async fn put_grant(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(p): Path<BTreeMap<String, String>>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let wallet = subscriber(&p)?;
    let id = grant_id(&p)?;
    let req = parse_grant(&id, &body)?;
    Ok(ok(meter.put_grant(&caller, &wallet, &id, req).await?))
}

async fn void_grant(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(p): Path<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let wallet = subscriber(&p)?;
    let id = grant_id(&p)?;
    Ok(ok(meter.void_grant(&caller, &wallet, &id).await?))
}

async fn put_settings(
    State(meter): State<Arc<Meter>>,
    Auth(caller): Auth,
    Path(p): Path<BTreeMap<String, String>>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let wallet = subscriber(&p)?;
    let low = parse_settings(&body)?;
    Ok(ok(meter.set_wallet_settings(&caller, &wallet, low).await?))
}

/// The wallet routes, for users and for orgs (spelled out: tests/events reads them here).
pub fn routes() -> Router<Arc<Meter>> {
    Router::new()
        .route(
            &format!("{PREFIX}/wallet/user/{{user_id}}"),
            get(get_wallet),
        )
        .route(
            &format!("{PREFIX}/wallet/user/{{user_id}}/grants/{{grant_id}}"),
            put(put_grant),
        )
        .route(
            &format!("{PREFIX}/wallet/user/{{user_id}}/grants/{{grant_id}}/void"),
            post(void_grant),
        )
        .route(
            &format!("{PREFIX}/wallet/user/{{user_id}}/settings"),
            put(put_settings),
        )
        .route(&format!("{PREFIX}/wallet/org/{{org_id}}"), get(get_wallet))
        .route(
            &format!("{PREFIX}/wallet/org/{{org_id}}/grants/{{grant_id}}"),
            put(put_grant),
        )
        .route(
            &format!("{PREFIX}/wallet/org/{{org_id}}/grants/{{grant_id}}/void"),
            post(void_grant),
        )
        .route(
            &format!("{PREFIX}/wallet/org/{{org_id}}/settings"),
            put(put_settings),
        )
}
