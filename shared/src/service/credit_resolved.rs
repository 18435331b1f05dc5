//! `alert.resolved` after a top-up (issue 18, SPEC §10: "allowed again (… a top-up)"). A
//! prepaid check denied because its wallet had nothing available (`available_usd ≤ 0`:
//! the wallet's 100 %, not merely a call larger than what is left) is remembered as a
//! denied limit of window `credits`, once per wallet until resolved, in the store of
//! `service::alert_resolved`. An aggregation pass resolves it when the wallet has credit
//! available again (a grant, a released hold) or its owner's plan no longer asks for
//! credit (a postpaid plan, an org without an active prepaid plan), and publishes the
//! `alert.resolved` through the outbox to the wallet's owner (the user, or the org).
//!
//! A note has no window that ends: it is looked at by every pass until resolved (SQLite
//! keeps it until then; DynamoDB expires it 30 days after `resets_at`, which is 30 days
//! after the denial, so a wallet still empty two months after its denial resolves without
//! a message).

use chrono::{DateTime, Duration, Utc};

use super::prepaid::CreditDenial;
use super::{Meter, Result};
use crate::budgets::Scope;
use crate::credits::Subscriber;
use crate::domain::TenantId;
use crate::limits::Payment;
use crate::store::DeniedLimit;

/// The `window` of a remembered credit denial.
pub(super) const CREDITS_WINDOW: &str = "credits";
/// The metric a credit denial names (SPEC §11).
const CREDITS_METRIC: &str = "credits_usd";
/// How long after the denial a note counts as current (`resets_at`; see the module).
const NOTE_DAYS: i64 = 30;

impl Meter {
    /// Notes a check's credit denial when the wallet had nothing available. Never fails
    /// the check: an error is logged (that denial then resolves without a message).
    pub(super) async fn note_credit_denial(
        &self,
        tenant: &TenantId,
        d: &CreditDenial,
        now: DateTime<Utc>,
    ) {
        if d.available_usd > rust_decimal::Decimal::ZERO {
            return;
        }
        let Ok(owner) = super::org_wallets::alarm_owner(&d.wallet) else {
            return;
        };
        let (org, scope) = match &d.wallet {
            Subscriber::User(u) => (None, Scope::User { user_id: u.clone() }),
            Subscriber::Org(o) => (Some(o.clone()), Scope::Org { org_id: o.clone() }),
        };
        let denied = DeniedLimit {
            tenant: tenant.clone(),
            key: format!("{CREDITS_WINDOW}/{}", d.wallet),
            user: owner,
            org,
            budget_id: None,
            plan: None,
            scope: Some(scope),
            metric: CREDITS_METRIC.to_owned(),
            window: CREDITS_WINDOW.to_owned(),
            window_start: now,
            resets_at: now + Duration::days(NOTE_DAYS),
            used: d.held_usd,
            limit: d.balance_usd,
            denied_at: now,
        };
        self.note(denied).await;
    }

    /// Why the wallet of the credit denial `d` allows calls again now, or `None`.
    pub(super) async fn credit_allowed_again(
        &self,
        d: &DeniedLimit,
        now: DateTime<Utc>,
    ) -> Result<Option<&'static str>> {
        let wallet = match &d.org {
            Some(org) => {
                let prepaid = self
                    .active_org_plan(&d.tenant, org)
                    .await?
                    .is_some_and(|p| p.plan.payment == Payment::Prepaid);
                if !prepaid {
                    return Ok(Some("the org's plan no longer needs credit"));
                }
                Subscriber::Org(org.clone())
            }
            None => {
                let sub = self.store.get_subscription(&d.tenant, &d.user).await?;
                if self.plan_of(&d.tenant, sub.as_ref()).await?.payment != Payment::Prepaid {
                    return Ok(Some("the plan no longer needs credit"));
                }
                Subscriber::User(d.user.clone())
            }
        };
        let credit = self.store.get_credit_state(&d.tenant, &wallet).await?;
        let available = credit
            .available(now)
            .map_err(super::prepaid::credit_error)?;
        Ok((available > rust_decimal::Decimal::ZERO).then_some("credit is available again"))
    }
}
