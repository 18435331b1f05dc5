//! Org wallets on SQLite (see [`crate::store::OrgWalletStore`]): the same tables as a
//! user's prepaid wallet (`sqlite::prepaid`), keyed by the wallet (`user/<id>` or
//! `org/<id>`). Each event's draw runs on the writer thread in the transaction that
//! records the event, from the wallet its payer names.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use rust_decimal::Decimal;

use super::SqliteStore;
use crate::budgets::CounterWrite;
use crate::credits::Subscriber;
use crate::domain::{Invoice, OrgId, Subscription, TenantId, UsageEvent, UserId};
use crate::store::{
    CreditState, EventDraws, InvoiceCharge, OrgClose, OrgWalletStore, PeriodPicker, RecordOutcome,
    StoreError, StoreResult, UserUsage,
};

#[async_trait]
impl OrgWalletStore for SqliteStore {
    async fn get_user_limits_with_wallets(
        &self,
        tenant: &TenantId,
        user: &UserId,
        org: Option<&OrgId>,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<(UserUsage, CreditState, Option<CreditState>)> {
        // One read transaction: the limits and both wallets of the same instant.
        let mine = Subscriber::User(user.clone()).to_string();
        let org = org.map(|o| Subscriber::Org(o.clone()).to_string());
        self.read_now(|c| {
            let usage = super::user_limits(c, tenant, user, pick)?;
            let credit = super::prepaid::credit_state(c, tenant.as_str(), &mine)?;
            let org = org
                .as_deref()
                .map(|o| super::prepaid::credit_state(c, tenant.as_str(), o))
                .transpose()?;
            Ok((usage, credit, org))
        })
    }

    async fn record_events_paying(
        &self,
        events: &[UsageEvent],
        writes: &[Vec<CounterWrite>],
        payers: &[Option<Subscriber>],
    ) -> StoreResult<Vec<RecordOutcome>> {
        if payers.len() != events.len() {
            return Err(StoreError::Corrupt(
                "one payer (or none) per event is expected".to_owned(),
            ));
        }
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (events, writes) = (events.to_vec(), writes.to_vec());
        let payers: Vec<Option<String>> = payers
            .iter()
            .map(|p| p.as_ref().map(ToString::to_string))
            .collect();
        self.write(move |c| {
            let mut outcomes = Vec::with_capacity(events.len());
            for (i, e) in events.iter().enumerate() {
                let outcome = super::usage::record_event(c, e)?;
                if outcome == RecordOutcome::Recorded {
                    if let Some(w) = writes.get(i).filter(|w| !w.is_empty()) {
                        super::budget_counters::apply_all(c, e.tenant.as_str(), w, e.recorded_at)?;
                    }
                    if let Some(wallet) = &payers[i] {
                        super::prepaid::draw_event(c, e, wallet)?;
                        // A late org event's draw goes with its adjustment (org_late_draws).
                        super::org_late_draws::mark_recorded(c, e, wallet)?;
                    }
                }
                outcomes.push(outcome);
            }
            Ok(outcomes)
        })
        .await
    }

    async fn wallet_draws(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<EventDraws>> {
        let (tenant, wallet) = (tenant.clone(), wallet.clone());
        self.read(move |c| super::prepaid::read_draws(c, &tenant, &wallet, since))
            .await
    }

    async fn close_org_period_charging(
        &self,
        org: &OrgId,
        invoice: &Invoice,
        next: &Subscription,
        expected_version: u64,
        charge: &InvoiceCharge,
    ) -> StoreResult<OrgClose> {
        let (org, invoice, next, charge) =
            (org.clone(), invoice.clone(), next.clone(), charge.clone());
        self.write(move |c| close_org_charging(c, &org, &invoice, &next, expected_version, &charge))
            .await
            .or_else(|e| match e {
                StoreError::VersionConflict => Ok(OrgClose::Changed),
                e => Err(e),
            })
    }
}

/// Closes the org's period and takes the charge, all or nothing: the charge is checked
/// first (the writer thread runs nothing else meanwhile), and an error after a write
/// undoes the job's savepoint (an invoice stored already: `VersionConflict`, `Changed`).
pub(super) fn close_org_charging(
    c: &Connection,
    org: &OrgId,
    invoice: &Invoice,
    next: &Subscription,
    expected_version: u64,
    charge: &InvoiceCharge,
) -> StoreResult<OrgClose> {
    let wallet = Subscriber::Org(org.clone()).to_string();
    let tenant = &next.tenant;
    let mut grants = super::wallets::read_wallet(c, tenant, &wallet)?.grants;
    let drawn_voided = grants
        .iter()
        .any(|g| g.voided_at.is_some() && charge.draws.draws.iter().any(|d| d.grant_id == g.id));
    if charge.draws.apply(&mut grants).is_err()
        || drawn_voided
        || super::prepaid::overdrawn(c, tenant.as_str(), &wallet)? < charge.overdraft_settled
    {
        return Ok(OrgClose::Changed);
    }
    if !super::orgs::put(c, org, next, Some(expected_version))? {
        return Ok(OrgClose::Changed);
    }
    if !super::billing::put_invoice_once(c, invoice)? {
        return Err(StoreError::VersionConflict);
    }
    for d in &charge.draws.draws {
        if let Some(g) = grants.iter().find(|g| g.id == d.grant_id) {
            super::wallets::write_grant(c, tenant, &wallet, g)?;
        }
    }
    if charge.overdraft_settled > Decimal::ZERO {
        super::prepaid::add_overdrawn(c, tenant.as_str(), &wallet, -charge.overdraft_settled)?;
    }
    Ok(OrgClose::Closed)
}
