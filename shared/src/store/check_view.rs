//! The check's read over budgets (issue 18, SPEC §12: a check is one request): everything
//! a check naming a user, an org and a team decides on, read together.
//!
//! What is read does not depend on what is read: the user's state (subscription, plan
//! counters), the wallet figures when asked, the org's subscription, the budgets of every
//! scope the call names, and the budget counters of those scopes. Which counters apply
//! (window starts, the org's billing period) is known only after the read, so the caller
//! passes a [`CounterPicker`] that names them from what was read; an adapter returns
//! their usage from the same read (DynamoDB: one `BatchGetItem` of items at keys known
//! before it, docs/dynamodb.md "The check's read").

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{CreditState, PeriodPicker, StoreResult, UserUsage};
use crate::budgets::{Budget, CallScopes, CounterKey};
use crate::domain::{OrgId, Subscription, TenantId, UserId};
use crate::usage::PeriodUsage;

/// Names the counters a check needs from what it read: the user's state, the org's
/// subscription (any status) and the budgets of the named scopes.
pub type CounterPicker<'a> =
    &'a (dyn Fn(&UserUsage, Option<&Subscription>, &[Budget]) -> Vec<CounterKey> + Send + Sync);

/// What [`CheckViewStore::read_check_view`] read.
#[derive(Debug, Clone, Default)]
pub struct CheckView {
    /// As [`UsageStore::get_user_limits`](super::UsageStore::get_user_limits) reads it.
    pub user: UserUsage,
    /// The user's wallet figures, when asked for.
    pub credit: Option<CreditState>,
    /// The named org's wallet figures, when asked for and the call names an org (issue 19:
    /// a prepaid org plan is paid from the org's wallet, `service::org_wallets`).
    pub org_credit: Option<CreditState>,
    /// The named org's subscription (any status); `None` without an org or subscription.
    pub org_subscription: Option<Subscription>,
    /// The budgets on every scope the call names (the user's own included), by scope
    /// then id.
    pub budgets: Vec<Budget>,
    /// The usage of each counter the picker named (zero when never written).
    pub counters: BTreeMap<CounterKey, PeriodUsage>,
}

/// Which part of a call's view [`CheckViewStore::read_view_part`] reads beside the user's
/// state (issue 18: an event batch's reads, `service::ingest_view`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewPart {
    /// The org's subscription and the budgets of every named scope; no counters (before
    /// the events' write: it needs no usage).
    Definitions,
    /// These counters (any scope); no subscription, no budgets (after the write: the
    /// budget alerts judge them).
    Counters(Vec<CounterKey>),
}

/// What [`CheckViewStore::read_definitions`] read: the definitions part of the calls one
/// user's events make (issue 18, SPEC §12: an event batch reads them once).
#[derive(Debug, Clone, Default)]
pub struct CallDefinitions {
    /// As [`UsageStore::get_user_limits`](super::UsageStore::get_user_limits) reads it.
    pub user: UserUsage,
    /// Each named org's subscription (any status; `None`: it has none).
    pub org_subscriptions: BTreeMap<OrgId, Option<Subscription>>,
    /// The budgets on every scope the calls name, each scope once.
    pub budgets: Vec<Budget>,
}

#[async_trait]
pub trait CheckViewStore: Send + Sync {
    /// [`ViewPart::Definitions`] of several calls of `user` (each naming that user; none:
    /// the user's own scope) at once: on DynamoDB one `BatchGetItem` of the state item,
    /// each org's subscription item and each distinct scope item (one more per 100 keys).
    /// By default one [`CheckViewStore::read_view_part`] per call.
    async fn read_definitions(
        &self,
        tenant: &TenantId,
        user: &UserId,
        calls: &[CallScopes],
        pick: PeriodPicker<'_>,
    ) -> StoreResult<CallDefinitions> {
        let own = [CallScopes::user_only(user.clone())];
        let calls = if calls.is_empty() { &own[..] } else { calls };
        let mut out = CallDefinitions::default();
        let mut seen = std::collections::BTreeSet::new();
        for (i, call) in calls.iter().enumerate() {
            let view = self
                .read_view_part(tenant, call, ViewPart::Definitions, pick)
                .await?;
            if let Some(org) = call.org() {
                out.org_subscriptions
                    .insert(org.clone(), view.org_subscription);
            }
            for b in view.budgets {
                if call.scopes().contains(&b.scope) && seen.insert(b.id.clone()) {
                    out.budgets.push(b);
                }
            }
            if i == 0 {
                out.user = view.user;
            }
        }
        Ok(out)
    }

    /// One part of [`CheckViewStore::read_check_view`] (no wallet figures): on DynamoDB
    /// one `BatchGetItem` of the state item and the part's items only. By default the
    /// whole view, the counters of [`ViewPart::Counters`] included.
    async fn read_view_part(
        &self,
        tenant: &TenantId,
        call: &CallScopes,
        part: ViewPart,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<CheckView> {
        let wanted = match &part {
            ViewPart::Definitions => Vec::new(),
            ViewPart::Counters(keys) => keys.clone(),
        };
        self.read_check_view(tenant, call, false, pick, &move |_, _, _| wanted.clone())
            .await
    }

    /// Reads the check's view of `call` at once: on DynamoDB one request (and at most
    /// one more for a period that was closed meanwhile, or for budgets written before
    /// the scope item held them, until `meter migrate`). `pick` picks the user's period
    /// as `get_user_limits` does, `counters` names the counters to return.
    async fn read_check_view(
        &self,
        tenant: &TenantId,
        call: &CallScopes,
        with_credit: bool,
        pick: PeriodPicker<'_>,
        counters: CounterPicker<'_>,
    ) -> StoreResult<CheckView>;
}
