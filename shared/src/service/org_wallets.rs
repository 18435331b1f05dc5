//! Who pays on prepaid plans (issue 19, §10, §11; docs/credits.md "Who pays"): the
//! subscriber whose plan is in force for a call — the plan that prices it — pays from its
//! wallet when that plan is prepaid. A user with a subscription of their own keeps it: the
//! user's plan is in force and the user's wallet pays (when prepaid), whatever org the call
//! names. A user without one, on a call naming an org with an active subscription, is on
//! the org's plan (it stands in for the Free plan): the org's wallet pays when that plan
//! is prepaid. Otherwise the user's (Free) plan is in force. One call, one payer: the check
//! asks that wallet for credit, a reservation holds it there, the event draws from it.
//!
//! An org's wallet alarms are the org's alerts (`Alert::org`, listed by
//! `GET /org/{org_id}/alerts`), stored once by an id derived from the org and the
//! alarm's once-only key, as budget alerts of an org are.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::check::Denial;
use super::orgs::OrgPlans;
use super::{Error, Meter, Result};
use crate::budgets::{Applicable, LimitSource, Scope};
use crate::credits::Subscriber;
use crate::domain::{Alert, OrgId, Subscription, TenantId, UsageEvent, UserId};
use crate::limits::{Payment, Plan};
use crate::periods::Period;
use crate::store::{CreditHold, CreditState};

/// The user an alarm of `wallet` is stored under: the user, or the org id (same charset)
/// for an org's wallet, whose alert then has `Alert::org` set.
pub(super) fn alarm_owner(wallet: &Subscriber) -> Result<UserId> {
    UserId::parse(wallet.id()).map_err(|e| {
        tracing::error!(error = %e, "a wallet id is not a valid alert owner");
        Error::Internal
    })
}

/// The id of an org wallet alarm: derived from the org and the once-only key, so that
/// racing observers collide on it.
fn org_alarm_id(org: &OrgId, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(format!("org#{org}").as_bytes());
    h.update(b"\0");
    h.update(key.as_bytes());
    format!("alert_w_{}", &hex::encode(h.finalize())[..32])
}

/// The org whose plan is in force among a check's limits (it stands in for the user's
/// Free plan), when the call names one with an active subscription.
fn org_plan_in_force(budgets: &[Applicable]) -> Option<(&OrgId, &crate::domain::PlanName)> {
    budgets.iter().find_map(|b| match &b.source {
        LimitSource::Plan {
            scope: Scope::Org { org_id },
            plan,
        } => Some((org_id, plan)),
        _ => None,
    })
}

impl Meter {
    /// Stores a wallet alarm's alert once: a user's by its once-only key with the user's
    /// alerts, an org's as the org's alert (`alert` gets the org and its derived id).
    /// `true` if this call stored it.
    pub(super) async fn store_wallet_alarm(
        &self,
        wallet: &Subscriber,
        alert: &mut Alert,
    ) -> Result<bool> {
        match wallet {
            Subscriber::User(_) => Ok(self.store.create_alert_once(alert).await?),
            Subscriber::Org(org) => {
                alert.org = Some(org.clone());
                alert.id = org_alarm_id(org, &alert.key);
                Ok(self.store.create_budget_alert_once(alert).await?)
            }
        }
    }

    /// The credit decision of a check by a user without a subscription that names an
    /// org (the org's plan may be in force): the org's wallet when the org's plan is in
    /// force and prepaid, nothing when it is in force and postpaid, else the user's own
    /// (Free) plan's as before. `budgets`: the check's limits (the org's plan among them
    /// when in force, `Meter::budgets_of_call`); the wallets as the check read them.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn credit_gate_naming_org(
        &self,
        tenant: &TenantId,
        user: &UserId,
        user_plan: &Plan,
        budgets: &[Applicable],
        (user_credit, org_credit): (Option<CreditState>, Option<CreditState>),
        estimate: Option<Decimal>,
        period: &Period,
        at: DateTime<Utc>,
    ) -> Result<std::result::Result<Option<CreditHold>, Box<Denial>>> {
        let Some((org, name)) = org_plan_in_force(budgets) else {
            let wallet = Subscriber::User(user.clone());
            return Self::credit_gate(user_plan, user_credit, estimate, &wallet, period, at);
        };
        let plans = self.plans(tenant).await?;
        let Some(plan) = plans.iter().find(|p| &p.name == name) else {
            return Ok(Ok(None));
        };
        let wallet = Subscriber::Org(org.clone());
        Self::credit_gate(plan, org_credit, estimate, &wallet, period, at)
    }

    /// Whose wallet each of one user's `events` draws from (`None`: no wallet): see the
    /// module. `sub`: the user's own subscription.
    pub(super) async fn event_payers(
        &self,
        tenant: &TenantId,
        user: &UserId,
        sub: Option<&Subscription>,
        events: &[UsageEvent],
        org_plans: &mut OrgPlans,
    ) -> Result<Vec<Option<Subscriber>>> {
        if !self.tenant_sells_prepaid(tenant).await? {
            return Ok(vec![None; events.len()]);
        }
        let own = (self.plan_of(tenant, sub).await?.payment == Payment::Prepaid)
            .then(|| Subscriber::User(user.clone()));
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            // The payer kept with the event (docs/billing.md, "One payer per call"), else
            // the subscriber whose plan is in force.
            let org_pays = match e.payer {
                Some(payer) => payer == crate::domain::Payer::Org,
                None => sub.is_none(),
            };
            let org_plan = match (&e.org_id, org_pays) {
                (Some(org), true) => self
                    .cached_org_plan(tenant, org, org_plans)
                    .await?
                    .map(|p| (org, p.plan.payment)),
                _ => None,
            };
            out.push(match org_plan {
                Some((org, Payment::Prepaid)) => Some(Subscriber::Org(org.clone())),
                Some((_, Payment::Postpaid)) => None,
                None => own.clone(),
            });
        }
        Ok(out)
    }
}
