//! Prepaid plans on SQLite (see [`crate::store::PrepaidStore`]): the credit reservations
//! hold (`wallet_holds`, one row per open reservation that holds credit, deleted by its
//! close), each wallet's overdraft (`wallet_balances`) and each event's draws
//! (`wallet_draws`, keyed by event id). Every write runs on the writer thread inside one
//! transaction with the event or reservation it belongs to, so "read the grants, draw,
//! write them back" and "check the available credit, then hold" are atomic.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use rust_decimal::Decimal;

use super::codec::{from_json, money, parse_money, parse_ts, to_json, ts};
use super::SqliteStore;
use crate::budgets::CounterWrite;
use crate::credits::{credit_allows, draw, exact_add, Draws, Grant, Subscriber, WalletAlarms};
use crate::domain::{EventId, Invoice, Reservation, TenantId, UsageEvent, UserId};
use crate::store::{
    BillingState, CloseOutcome, CreditHold, CreditReserve, CreditState, EventDraws, Guard,
    InvoiceCharge, PeriodPicker, PrepaidStore, RecordOutcome, ReserveOutcome, StoreError,
    StoreResult, UserUsage,
};

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("wallet: {e}"))
}

/// Gives back the credit reservation `rid` holds, if any (called by every close).
pub(super) fn release_credit(conn: &Connection, tenant: &str, rid: &str) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM wallet_holds WHERE tenant = ?1 AND reservation_id = ?2")?
        .execute(params![tenant, rid])?;
    Ok(())
}

pub(super) fn overdrawn(conn: &Connection, tenant: &str, wallet: &str) -> StoreResult<Decimal> {
    let text: Option<String> = conn
        .prepare_cached(
            "SELECT overdrawn_usd FROM wallet_balances WHERE tenant = ?1 AND wallet = ?2",
        )?
        .query_row(params![tenant, wallet], |r| r.get(0))
        .optional()?;
    text.as_deref()
        .map(parse_money)
        .transpose()
        .map(Option::unwrap_or_default)
}

pub(super) fn add_overdrawn(
    conn: &Connection,
    tenant: &str,
    wallet: &str,
    by: Decimal,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO wallet_balances (tenant, wallet, overdrawn_usd) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant, wallet) DO UPDATE SET overdrawn_usd = dec_add(overdrawn_usd, excluded.overdrawn_usd)",
    )?
    .execute(params![tenant, wallet, money(by)])?;
    Ok(())
}

/// The credit open reservations hold on the wallet.
pub(super) fn held(conn: &Connection, tenant: &str, wallet: &str) -> StoreResult<Decimal> {
    let text: Option<String> = conn
        .prepare_cached(
            "SELECT dec_sum(amount) FROM wallet_holds WHERE tenant = ?1 AND wallet = ?2",
        )?
        .query_row(params![tenant, wallet], |r| r.get(0))?;
    text.as_deref()
        .map(parse_money)
        .transpose()
        .map(Option::unwrap_or_default)
}

/// The wallet's stored alarms and their version.
pub(super) fn alarms(
    conn: &Connection,
    tenant: &str,
    wallet: &str,
) -> StoreResult<(Option<WalletAlarms>, u64)> {
    let row: Option<(Option<i64>, Option<i64>, i64)> = conn
        .prepare_cached(
            "SELECT low_armed, depleted_armed, alarm_seq FROM wallet_balances
             WHERE tenant = ?1 AND wallet = ?2",
        )?
        .query_row(params![tenant, wallet], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    Ok(match row {
        Some((Some(low), Some(depleted), seq)) => (
            Some(WalletAlarms {
                low_armed: low != 0,
                depleted_armed: depleted != 0,
            }),
            u64::try_from(seq).unwrap_or(0),
        ),
        Some((_, _, seq)) => (None, u64::try_from(seq).unwrap_or(0)),
        None => (None, 0),
    })
}

fn put_alarms(
    conn: &Connection,
    tenant: &str,
    wallet: &str,
    seq_read: u64,
    a: WalletAlarms,
) -> StoreResult<bool> {
    if alarms(conn, tenant, wallet)?.1 != seq_read {
        return Ok(false);
    }
    conn.prepare_cached(
        "INSERT INTO wallet_balances (tenant, wallet, overdrawn_usd, low_armed, depleted_armed, alarm_seq)
         VALUES (?1, ?2, '0', ?3, ?4, 1)
         ON CONFLICT (tenant, wallet) DO UPDATE SET low_armed = excluded.low_armed,
             depleted_armed = excluded.depleted_armed, alarm_seq = alarm_seq + 1",
    )?
    .execute(params![tenant, wallet, a.low_armed, a.depleted_armed])?;
    Ok(true)
}

/// The wallet's overdraft and held credit (what a wallet read adds to its grants).
pub(super) fn balances(
    conn: &Connection,
    tenant: &str,
    wallet: &str,
) -> StoreResult<(Decimal, Decimal)> {
    Ok((
        overdrawn(conn, tenant, wallet)?,
        held(conn, tenant, wallet)?,
    ))
}

/// The credit buckets of `grants`: per expiry, Σ remaining of the non-voided ones.
pub(crate) fn buckets(grants: &[Grant]) -> StoreResult<BTreeMap<Option<DateTime<Utc>>, Decimal>> {
    let mut out: BTreeMap<Option<DateTime<Utc>>, Decimal> = BTreeMap::new();
    for g in grants.iter().filter(|g| g.voided_at.is_none()) {
        let slot = out.entry(g.expires_at).or_default();
        *slot = exact_add(*slot, g.remaining_usd).map_err(corrupt)?;
    }
    Ok(out)
}

pub(super) fn credit_state(
    conn: &Connection,
    tenant: &str,
    wallet: &str,
) -> StoreResult<CreditState> {
    let tenant_id = TenantId::parse(tenant).map_err(corrupt)?;
    credit_state_of(&super::wallets::read_wallet(conn, &tenant_id, wallet)?)
}

/// What a check needs of a wallet read whole (`wallets::read_wallet`).
pub(super) fn credit_state_of(record: &crate::store::WalletRecord) -> StoreResult<CreditState> {
    Ok(CreditState {
        buckets: buckets(&record.grants)?,
        overdrawn_usd: record.overdrawn_usd,
        held_usd: record.held_usd,
        low_balance_usd: record.low_balance_usd,
        alarms: record.alarms,
    })
}

fn user_wallet(user: &UserId) -> String {
    Subscriber::User(user.clone()).to_string()
}

/// Draws the cost of a just-recorded event from `wallet` (its user's, or an org's: issue
/// 19, `org_wallets`), in the transaction that recorded it.
pub(super) fn draw_event(conn: &Connection, e: &UsageEvent, wallet: &str) -> StoreResult<()> {
    let cost = e.cost_usd.unwrap_or_default();
    if cost <= Decimal::ZERO {
        return Ok(());
    }
    let tenant = e.tenant.as_str();
    let wallet = wallet.to_owned();
    let mut grants = super::wallets::read_wallet(conn, &e.tenant, &wallet)?.grants;
    let draws = draw(&grants, cost, e.timestamp).map_err(corrupt)?;
    draws.apply(&mut grants).map_err(corrupt)?;
    for d in &draws.draws {
        if let Some(g) = grants.iter().find(|g| g.id == d.grant_id) {
            super::wallets::write_grant(conn, &e.tenant, &wallet, g)?;
        }
    }
    if draws.shortfall_usd > Decimal::ZERO {
        add_overdrawn(conn, tenant, &wallet, draws.shortfall_usd)?;
    }
    conn.prepare_cached(
        "INSERT INTO wallet_draws (tenant, event_id, wallet, at, cost, draws) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        tenant,
        e.event_id.as_str(),
        wallet,
        ts(&e.timestamp),
        money(cost),
        to_json(&draws)?,
    ])?;
    // A user's late event: its draw goes to the invoice that bills its adjustment.
    super::late_draws::mark_if_late(conn, e, &wallet)?;
    Ok(())
}

fn reserve(
    conn: &Connection,
    r: &Reservation,
    guards: &[Guard],
    writes: &[CounterWrite],
    hold: &CreditHold,
    now: DateTime<Utc>,
) -> StoreResult<CreditReserve> {
    let tenant = r.tenant.as_str();
    let wallet = hold.wallet.to_string();
    let available = credit_state(conn, tenant, &wallet)?
        .available(hold.at)
        .map_err(corrupt)?;
    if !credit_allows(available, hold.estimate) {
        return Ok(CreditReserve::NoCredit);
    }
    // Budget guards are read before anything is written (a refusal writes nothing), then
    // the plan hold, the budget holds and the credit hold, in the writer's one transaction.
    if let Some(metric) =
        super::budget_counters::failing_guard(conn, tenant, writes)?.map(|g| g.metric.clone())
    {
        return Ok(CreditReserve::Denied { metric });
    }
    match super::usage::reserve(conn, r, guards)? {
        ReserveOutcome::Denied { metric } => Ok(CreditReserve::Denied { metric }),
        ReserveOutcome::Reserved => {
            super::budget_counters::add_all(conn, tenant, writes, now)?;
            if hold.amount() > Decimal::ZERO {
                conn.prepare_cached(
                    "INSERT INTO wallet_holds (tenant, reservation_id, wallet, amount) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![tenant, r.id, wallet, money(hold.amount())])?;
            }
            Ok(CreditReserve::Reserved)
        }
    }
}

/// The draws events made from `wallet` (timestamped at or after `since`), oldest first.
pub(super) fn read_draws(
    conn: &Connection,
    tenant: &TenantId,
    wallet: &Subscriber,
    since: Option<DateTime<Utc>>,
) -> StoreResult<Vec<EventDraws>> {
    let wallet = wallet.clone();
    let mut stmt = conn.prepare_cached(
        "SELECT event_id, at, cost, draws FROM wallet_draws WHERE tenant = ?1 AND wallet = ?2
             AND at >= ?3
         ORDER BY at, event_id",
    )?;
    let from = since.map(|t| ts(&t)).unwrap_or_default();
    let rows = stmt
        .query_map(params![tenant.as_str(), wallet.to_string(), from], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, at, cost, draws)| {
            Ok(EventDraws::new(
                EventId::parse(&id).map_err(corrupt)?,
                wallet.clone(),
                parse_ts(&at)?,
                from_json::<Draws>(&draws)?,
                parse_money(&cost)?,
            ))
        })
        .collect()
}

#[async_trait]
impl PrepaidStore for SqliteStore {
    async fn get_user_limits_with_credit(
        &self,
        tenant: &TenantId,
        user: &UserId,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<(UserUsage, CreditState)> {
        // One read transaction: the limits and the wallet of the same instant.
        let wallet = Subscriber::User(user.clone()).to_string();
        self.read_now(|c| {
            let usage = super::user_limits(c, tenant, user, pick)?;
            Ok((usage, credit_state(c, tenant.as_str(), &wallet)?))
        })
    }

    async fn get_credit_state(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
    ) -> StoreResult<CreditState> {
        let (tenant, wallet) = (tenant.clone(), wallet.to_string());
        self.read(move |c| credit_state(c, tenant.as_str(), &wallet))
            .await
    }

    async fn reserve_with_credit(
        &self,
        reservation: &Reservation,
        guards: &[Guard],
        writes: &[CounterWrite],
        hold: &CreditHold,
        now: DateTime<Utc>,
    ) -> StoreResult<CreditReserve> {
        let (r, guards, writes, hold) = (
            reservation.clone(),
            guards.to_vec(),
            writes.to_vec(),
            hold.clone(),
        );
        self.write(move |c| reserve(c, &r, &guards, &writes, &hold, now))
            .await
    }

    async fn record_events_drawing(
        &self,
        events: &[UsageEvent],
        writes: &[Vec<CounterWrite>],
    ) -> StoreResult<Vec<RecordOutcome>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (events, writes) = (events.to_vec(), writes.to_vec());
        self.write(move |c| {
            let mut outcomes = Vec::with_capacity(events.len());
            for (i, e) in events.iter().enumerate() {
                let outcome = super::usage::record_event(c, e)?;
                if outcome == RecordOutcome::Recorded {
                    if let Some(w) = writes.get(i).filter(|w| !w.is_empty()) {
                        super::budget_counters::apply_all(c, e.tenant.as_str(), w, e.recorded_at)?;
                    }
                    draw_event(c, e, &user_wallet(&e.user))?;
                }
                outcomes.push(outcome);
            }
            Ok(outcomes)
        })
        .await
    }

    async fn event_draws(
        &self,
        tenant: &TenantId,
        user: &UserId,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<EventDraws>> {
        let (tenant, user) = (tenant.clone(), user.clone());
        let wallet = Subscriber::User(user);
        self.read(move |c| read_draws(c, &tenant, &wallet, since))
            .await
    }

    async fn put_wallet_alarms(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        seq_read: u64,
        alarms: WalletAlarms,
    ) -> StoreResult<bool> {
        let (tenant, wallet) = (tenant.clone(), wallet.to_string());
        self.write(move |c| put_alarms(c, tenant.as_str(), &wallet, seq_read, alarms))
            .await
    }

    async fn close_period_charging(
        &self,
        invoice: &Invoice,
        state: &BillingState,
        billed_to: DateTime<Utc>,
        charge: &InvoiceCharge,
    ) -> StoreResult<CloseOutcome> {
        let (invoice, state, charge) = (invoice.clone(), state.clone(), charge.clone());
        self.write(move |c| close_charging(c, &invoice, &state, billed_to, &charge))
            .await
    }
}

/// Closes the period and takes the charge, all or nothing (the charge is checked first:
/// the writer thread runs nothing else meanwhile).
fn close_charging(
    conn: &Connection,
    invoice: &Invoice,
    state: &BillingState,
    billed_to: DateTime<Utc>,
    charge: &InvoiceCharge,
) -> StoreResult<CloseOutcome> {
    let Some(wallet) = &charge.wallet else {
        return super::billing::close_period(conn, invoice, state, billed_to);
    };
    let (tenant, key) = (state.tenant.as_str(), wallet.to_string());
    let mut grants = super::wallets::read_wallet(conn, &state.tenant, &key)?.grants;
    if charge.draws.apply(&mut grants).is_err()
        || grants
            .iter()
            .any(|g| g.voided_at.is_some() && charge.draws.draws.iter().any(|d| d.grant_id == g.id))
        || overdrawn(conn, tenant, &key)? < charge.overdraft_settled
    {
        return Ok(CloseOutcome::Changed);
    }
    let outcome = super::billing::close_period(conn, invoice, state, billed_to)?;
    if outcome != CloseOutcome::Closed {
        return Ok(outcome);
    }
    for d in &charge.draws.draws {
        if let Some(g) = grants.iter().find(|g| g.id == d.grant_id) {
            super::wallets::write_grant(conn, &state.tenant, &key, g)?;
        }
    }
    if charge.overdraft_settled > Decimal::ZERO {
        add_overdrawn(conn, tenant, &key, -charge.overdraft_settled)?;
    }
    Ok(CloseOutcome::Closed)
}
