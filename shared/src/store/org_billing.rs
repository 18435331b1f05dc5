//! Late org events (issue 18, docs/billing.md "Org invoices and late events"): an event
//! naming an org whose period was already invoiced is billed once, as an adjustment on the
//! org's next invoice, as a user's late event is.
//!
//! The org's billed usage of a period is its pooled `period` budget counter
//! ([`org_period_counter`]), which every event naming the org writes with the event.
//! Promises every adapter keeps (the conformance suite checks them under concurrency):
//! - every recorded event's write to an org's pooled `period` counter whose period is
//!   invoiced (an invoice of the org exists for that period or a later one) also adds the
//!   event (and its recorded cost) to that period's pending adjustment of the org,
//!   atomically with the event and exactly once per event id;
//! - [`OrgBillingStore::org_billing_state`] reads the period's counter and the org's
//!   pending adjustments, with a version that changes whenever either changes;
//! - [`OrgBillingStore::close_org_period_billed`] closes the period as
//!   [`super::OrgStore::close_org_period`] does (or, with a charge,
//!   [`super::OrgWalletStore::close_org_period_charging`]) and consumes exactly the
//!   adjustments of the state it was given, in the same atomic write, only if the state's
//!   version is still current (else `Changed`, nothing written). So an event racing the
//!   close is billed either in the invoice or as an adjustment, never both, never neither.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Adjustment, InvoiceCharge, OrgClose, StoreResult};
use crate::budgets::{CounterKey, Scope, Window};
use crate::domain::{Invoice, OrgId, Subscription, TenantId};
use crate::usage::PeriodUsage;

/// The counter an org's invoice bills: the org's pooled usage in its `period` window.
pub fn org_period_counter(org: &OrgId, period_start: DateTime<Utc>) -> CounterKey {
    CounterKey::Scope {
        scope: Scope::Org {
            org_id: org.clone(),
        },
        window: Window::Period,
        window_start: period_start,
    }
}

/// The org and period start of `counter` when it is an org's pooled `period` counter
/// (the one its invoices bill).
pub fn billed_org_period(counter: &CounterKey) -> Option<(&OrgId, DateTime<Utc>)> {
    match counter {
        CounterKey::Scope {
            scope: Scope::Org { org_id },
            window: Window::Period,
            window_start,
        } => Some((org_id, *window_start)),
        _ => None,
    }
}

/// What closing one org period bills, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgBillingState {
    pub period_start: DateTime<Utc>,
    /// The period's pooled counter (recorded and held; the invoice bills `recorded`).
    pub usage: PeriodUsage,
    /// Pending adjustments of the org's invoiced periods, by period start.
    pub adjustments: BTreeMap<DateTime<Utc>, Adjustment>,
    /// What the org's wallet drew for the late events of `adjustments` (prepaid orgs;
    /// docs/credits.md "Late events on prepaid plans"): the invoice billing them credits it.
    pub late_draws: super::PeriodDraws,
    /// The org's `billed_to` (every org period starting before it is invoiced; `None`:
    /// never invoiced), as read with the rest.
    pub billed_to: Option<DateTime<Utc>>,
    /// Opaque: changes whenever the period's counter or the adjustments change.
    pub version: String,
}

#[async_trait]
pub trait OrgBillingStore: Send + Sync {
    /// The state closing `org`'s period starting at `period_start` bills.
    async fn org_billing_state(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        period_start: DateTime<Utc>,
    ) -> StoreResult<OrgBillingState>;

    /// Stores `invoice` (which bills `state`), rolls the subscription of version
    /// `expected_version` to `next`, takes `charge` from the org's wallet when given, marks
    /// the org billed up to the invoice's period end and consumes `state`'s adjustments:
    /// all in one atomic write, only if `state` is still current (see the module).
    async fn close_org_period_billed(
        &self,
        org: &OrgId,
        invoice: &Invoice,
        next: &Subscription,
        expected_version: u64,
        state: &OrgBillingState,
        charge: Option<&InvoiceCharge>,
    ) -> StoreResult<OrgClose>;
}
