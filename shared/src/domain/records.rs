//! The records the service keeps: keys, subscriptions, events, reservations, alerts, invoices.
//!
//! These are plain data; the rules that produce them live in `pricing`, `limits`,
//! `periods` and the service layer. Money is `Decimal`, serialized as an exact string.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{EventId, ModelId, OrgId, PlanName, ProviderId, TeamId, TenantId, UserId};
use crate::periods::{Anchor, BillingCycle, Period};
use crate::usage::{Tally, UsageCounts};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// check, usage, reads.
    Service,
    /// also plans, pricing, subscriptions, keys, export and erasure.
    Admin,
}

impl Role {
    /// The role's name as keys and the CLI spell it (`service`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Service => "service",
            Role::Admin => "admin",
        }
    }
}

/// An API key as stored: only its SHA-256 hash, never the key nor any part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Lowercase hex SHA-256 of the full key.
    pub hash: String,
    pub tenant: TenantId,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

impl ApiKeyRecord {
    /// The key's public id (`key_` + the first 16 hex digits of its hash), safe to show and
    /// log; see [`crate::auth::key_id`].
    pub fn id(&self) -> String {
        crate::auth::key_id(&self.hash)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Active,
    PastDue,
    Suspended,
    Cancelled,
}

impl SubscriptionStatus {
    pub fn is_active(self) -> bool {
        self == SubscriptionStatus::Active
    }

    /// The status as JSON and the CLI spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::PastDue => "past_due",
            SubscriptionStatus::Suspended => "suspended",
            SubscriptionStatus::Cancelled => "cancelled",
        }
    }
}

/// A user's subscription to one of the tenant's plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub tenant: TenantId,
    pub user: UserId,
    pub plan: PlanName,
    pub cycle: BillingCycle,
    pub anchor: Anchor,
    /// When the subscription started: the origin of anniversary periods and of yearly cycles.
    pub started_at: DateTime<Utc>,
    pub current_period: Period,
    pub status: SubscriptionStatus,
    pub auto_renew: bool,
    /// A downgrade scheduled for the next period start.
    pub pending_plan: Option<PlanName>,
    /// Prorated charges of upgrades not yet invoiced; each is billed on the invoice of
    /// the period it names, and the aggregation drops it once that invoice exists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prorations: Vec<Proration>,
    /// Earlier terms that periods not yet invoiced started under, oldest first: each
    /// period is billed under the plan and status in force at its start, not at the time it
    /// is closed (`subscriptions::terms_at`). Dropped once those periods are invoiced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<PastTerms>,
    /// Optimistic-concurrency version, bumped by every write.
    pub version: u64,
    pub updated_at: DateTime<Utc>,
}

/// The plan and status a subscription had until an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastTerms {
    /// These terms were in force before this instant (and since the previous entry's).
    pub until: DateTime<Utc>,
    pub plan: PlanName,
    pub status: SubscriptionStatus,
}

/// The prorated price difference of a plan change, charged on the next invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proration {
    /// Start of the limit period whose invoice carries the charge.
    pub period_start: DateTime<Utc>,
    /// When the change took effect.
    pub at: DateTime<Utc>,
    pub from_plan: PlanName,
    pub to_plan: PlanName,
    /// Exact (unrounded) amount; negative would be a credit (downgrades are not prorated).
    #[serde(with = "rust_decimal::serde::str")]
    pub amount_usd: Decimal,
}

/// Free-form metadata of an event: a JSON object of at most 8 KiB, checked where the
/// event is read, stored and exported as given, never interpreted.
pub type Metadata = serde_json::Value;

/// One usage event as recorded: validated, normalised and priced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEvent {
    pub tenant: TenantId,
    pub user: UserId,
    pub event_id: EventId,
    /// SHA-256 (hex) of the event's canonical content, to tell a duplicate (same id, same
    /// content) from a conflict (same id, other content).
    pub fingerprint: String,
    pub provider: ProviderId,
    pub model: Option<ModelId>,
    pub timestamp: DateTime<Utc>,
    /// Start of the limit period the event counts in (from the user's schedule).
    pub period_start: DateTime<Utc>,
    pub counts: UsageCounts,
    /// `None` = unpriced (no price in force); never a made-up $0.
    #[serde(with = "rust_decimal::serde::str_option")]
    pub cost_usd: Option<Decimal>,
    pub price_version: Option<String>,
    /// Token counts were estimated from characters.
    pub estimated: bool,
    pub endpoint: Option<String>,
    pub status_code: Option<u16>,
    pub latency_ms: Option<u64>,
    pub reservation_id: Option<String>,
    pub metadata: Option<Metadata>,
    pub recorded_at: DateTime<Utc>,
    /// The organisation the call was made within, if named (§10): with the user, the
    /// scopes whose counters the event adds to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<OrgId>,
    /// The org's team the call was made within, if named (never without `org_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<TeamId>,
    /// Whose invoice bills the call, decided once when it is recorded and kept (a
    /// re-pricing bills the same one while the org is subscribed): set when the call names
    /// an org (docs/billing.md, "One payer per call"); `None`: the user's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<Payer>,
}

/// Which subscriber's invoice bills a call naming an org: with an active subscription
/// of the org, the user's when the user has a subscription of their own, else the org's;
/// without one, the user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payer {
    User,
    Org,
}

impl UsageEvent {
    /// What the event adds to its provider's tally: one call, its tokens, its cost (0 when unpriced).
    pub fn tally(&self) -> Tally {
        Tally {
            calls: 1,
            tokens: self.counts.total_tokens(),
            cost_usd: self.cost_usd.unwrap_or_default(),
        }
    }

    /// Whether the user's own invoice bills the call (not an org's).
    pub fn user_pays(&self) -> bool {
        self.payer != Some(Payer::Org)
    }

    /// Whether the call names an org whose invoice must not bill it: the user's own
    /// subscription pays (the org's plan still counts it).
    pub fn org_does_not_pay(&self) -> bool {
        self.payer == Some(Payer::User)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReservationStatus {
    Held,
    Settled,
    Released,
    Expired,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Held => "held",
            ReservationStatus::Settled => "settled",
            ReservationStatus::Released => "released",
            ReservationStatus::Expired => "expired",
        }
    }
}

/// Usage held for a call that was allowed but not yet reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub id: String,
    pub tenant: TenantId,
    pub user: UserId,
    pub provider: ProviderId,
    /// The limit period whose counters hold the usage.
    pub period_start: DateTime<Utc>,
    pub held: Tally,
    pub status: ReservationStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The holds on budget counters (§10), taken atomically with `held` and returned
    /// with it (release, settlement, expiry); empty when no budget applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budget_holds: Vec<BudgetHold>,
}

/// What a reservation holds on one budget counter, under the reservation's provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetHold {
    /// The counter's key ([`crate::budgets::CounterKey::key`]).
    pub counter: String,
    /// The end of the counter's window (how long the counter is kept).
    pub window_end: DateTime<Utc>,
    pub held: Tally,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// A usage alert. `key` is the once-only key within (tenant, user, period): at most one
/// alert per key is ever stored (`calls:gemini@80`, `unpriced`, `projected_cost`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub tenant: TenantId,
    pub user: UserId,
    pub period_start: DateTime<Utc>,
    pub key: String,
    pub metric: Option<String>,
    pub threshold: Option<u8>,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
    pub read: bool,
    /// Outbox flag: false until the alert port accepted it.
    pub published: bool,
    /// The org that owns the alert when no user does (a budget on the pooled usage of an
    /// org or of one of its teams, SPEC §10); `user` then holds the org id, as an org's
    /// subscription record does. `None` for every user's alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<OrgId>,
    /// A budget's alert (and an `alert.resolved` of a budget's denial): the budget's
    /// scope and window. `None` for plan and wallet alerts, and for budget alerts stored
    /// before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<crate::budgets::BudgetOrigin>,
}

impl Alert {
    /// The key its alerts are listed and counted under: the user id, or `org#<org_id>`
    /// for an org's (the org's subscriber key, `store::org_subscriber`, which no user id
    /// can equal: `#` is not an id character).
    pub fn owner_key(&self) -> String {
        match &self.org {
            Some(org) => format!("org#{org}"),
            None => self.user.to_string(),
        }
    }
}

/// Usage recorded or re-priced for a period after it was invoiced, not yet billed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adjustment {
    /// How many changes (late events, re-priced events) it sums.
    pub events: u64,
    pub cost_usd: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvoiceStatus {
    Pending,
    Paid,
    Void,
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    pub kind: String,
    pub description: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount_usd: Decimal,
}

/// A closed period's bill. Amounts are exact; `total_usd` is rounded to cents, half away from zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub id: String,
    pub tenant: TenantId,
    /// The user, or after erasure a one-way pseudonym of it.
    pub user: String,
    pub period: Period,
    pub plan: PlanName,
    #[serde(with = "rust_decimal::serde::str")]
    pub base_usd: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub usage_usd: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub overage_usd: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub proration_usd: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub adjustments_usd: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub total_usd: Decimal,
    pub line_items: Vec<LineItem>,
    pub status: InvoiceStatus,
    pub created_at: DateTime<Utc>,
    pub published: bool,
    pub extra: BTreeMap<String, String>,
}

impl Reservation {
    /// A new opaque reservation id that names its user, so that a release needs no
    /// lookup item: `rsv_<uuid>_<base64url(user)>` (at most 208 characters).
    pub fn new_id(user: &UserId) -> String {
        Self::id_for(&uuid::Uuid::new_v4().simple().to_string(), user)
    }

    /// The id [`Reservation::new_id`] writes for this uuid (32 hex digits) and user.
    pub fn id_for(uuid: &str, user: &UserId) -> String {
        use base64::Engine as _;
        let user = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(user.as_str());
        format!("rsv_{uuid}_{user}")
    }

    /// The user a reservation id names, or `None` if `id` is not one of ours.
    pub fn user_of_id(id: &str) -> Option<UserId> {
        use base64::Engine as _;
        let rest = id.strip_prefix("rsv_")?;
        let (uuid, user) = rest.split_once('_')?;
        if uuid.len() != 32 || !uuid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(user)
            .ok()?;
        UserId::parse(String::from_utf8(bytes).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_ids_name_their_user_and_reject_forgeries() {
        let user = UserId::parse("alice@example.com").unwrap();
        let id = Reservation::new_id(&user);
        assert!(id.len() <= 208);
        assert_eq!(Reservation::user_of_id(&id), Some(user));
        assert_eq!(Reservation::user_of_id("rsv_nothex_YWxpY2U"), None);
        assert_eq!(Reservation::user_of_id("other"), None);
        let long = UserId::parse("u".repeat(128)).unwrap();
        assert!(Reservation::new_id(&long).len() <= 208);
    }
}
