//! Prepaid plans (§11, docs/credits.md): the check's credit decision, reservations that
//! hold credit, and events that draw from grants.
//!
//! A check reads the user's wallet figures with the user's state item, in one request,
//! whenever the tenant has a prepaid plan (the plans are cached, so knowing that costs
//! no request); a tenant without one reads exactly what it read before. On a prepaid
//! plan the call is denied with metric `credits_usd` when its estimate does not fit in
//! `available_usd` ([`credit_allows`]); a reservation holds the estimate on the wallet
//! atomically with its plan hold. Ingest draws the events of prepaid users from their
//! wallets atomically with each event.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::check::Denial;
use super::{Error, Meter, Result};
use crate::budgets::CounterWrite;
use crate::credits::{credit_allows, CreditError, Subscriber};
use crate::domain::money::normalized;
use crate::domain::{Reservation, TenantId, UserId};
use crate::limits::{Metric, Payment, Plan};
use crate::periods::Period;
use crate::store::{CreditHold, CreditReserve, CreditState, Guard, ReserveOutcome, UserUsage};

/// How often a hold re-reads the wallet when racing draws changed it between the read
/// and the write (racing holds alone never need it: their condition is the credit).
const MAX_CREDIT_RACES: usize = 8;

/// Seconds a client is told to wait after a credit denial: credit is not a window that
/// resets, a grant (top-up) or a settled reservation frees it, so poll gently.
pub const CREDIT_RETRY_AFTER_SECONDS: u64 = 60;

/// Why a prepaid check was denied: the wallet's figures at the check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreditDenial {
    pub wallet: Subscriber,
    #[serde(serialize_with = "normalized")]
    pub balance_usd: Decimal,
    #[serde(serialize_with = "normalized")]
    pub held_usd: Decimal,
    #[serde(serialize_with = "normalized")]
    pub available_usd: Decimal,
    /// The call's estimated cost (0 without an estimate).
    #[serde(serialize_with = "normalized")]
    pub requested_usd: Decimal,
}

/// What a reservation attempt did.
pub(super) enum Reserved {
    Store(ReserveOutcome),
    /// The wallet does not admit the hold (a fresh read agrees).
    NoCredit(Box<Denial>),
}

pub(super) fn credit_error(e: CreditError) -> Error {
    Error::overflow(e)
}

/// The denial of a prepaid check with the wallet as `credit` shows it at `at`.
fn credit_denial(
    wallet: &Subscriber,
    credit: &CreditState,
    estimate: Option<Decimal>,
    period: &Period,
    at: DateTime<Utc>,
) -> Result<Denial> {
    let balance = credit.balance(at).map_err(credit_error)?;
    let available = credit.available(at).map_err(credit_error)?;
    let requested = estimate.unwrap_or(Decimal::ZERO);
    Ok(Denial {
        metric: Metric::CostUsd,
        used: credit.held_usd,
        limit: balance,
        requested,
        period_resets_at: period.end,
        upgrade_to: None,
        retry_after_seconds: CREDIT_RETRY_AFTER_SECONDS,
        limited_by: None,
        credit: Some(CreditDenial {
            wallet: wallet.clone(),
            balance_usd: balance,
            held_usd: credit.held_usd,
            available_usd: available,
            requested_usd: requested,
        }),
    })
}

impl Meter {
    /// Whether the tenant has a prepaid plan (from the cached plans: no request).
    pub(super) async fn tenant_sells_prepaid(&self, tenant: &TenantId) -> Result<bool> {
        Ok(self
            .plans(tenant)
            .await?
            .iter()
            .any(|p| p.payment == Payment::Prepaid))
    }

    /// What a check naming no org reads: the user's limits and, when the tenant sells
    /// prepaid plans, the user's wallet figures with them (one request on DynamoDB).
    pub(super) async fn check_read(
        &self,
        tenant: &TenantId,
        user: &UserId,
        pick: crate::store::PeriodPicker<'_>,
    ) -> Result<(UserUsage, Option<CreditState>)> {
        if self.tenant_sells_prepaid(tenant).await? {
            // A call naming an org reads the org's wallet with its budgets instead
            // (service::check_view).
            let (usage, credit, _) = self
                .store
                .get_user_limits_with_wallets(tenant, user, None, pick)
                .await?;
            Ok((usage, Some(credit)))
        } else {
            Ok((self.store.get_user_limits(tenant, user, pick).await?, None))
        }
    }

    /// The credit decision of a check on `plan`, paid from `wallet`: `Ok(None)` when the
    /// plan is postpaid, `Ok(Some(hold))` when the wallet admits the estimate (what a
    /// reservation holds), `Err(denial)` when it does not (metric `credits_usd`).
    pub(super) fn credit_gate(
        plan: &Plan,
        credit: Option<CreditState>,
        estimate: Option<Decimal>,
        wallet: &Subscriber,
        period: &Period,
        at: DateTime<Utc>,
    ) -> Result<std::result::Result<Option<CreditHold>, Box<Denial>>> {
        if plan.payment != Payment::Prepaid {
            return Ok(Ok(None));
        }
        let credit = credit.unwrap_or_default();
        let available = credit.available(at).map_err(credit_error)?;
        if !credit_allows(available, estimate) {
            return Ok(Err(Box::new(credit_denial(
                wallet, &credit, estimate, period, at,
            )?)));
        }
        Ok(Ok(Some(CreditHold {
            wallet: wallet.clone(),
            estimate,
            read: credit,
            at,
        })))
    }

    /// Reserves `r` under `guards`, with the budget `writes` (see `holds`), and `hold` its
    /// credit on the user's wallet, in one write. A hold that lost a race with a draw
    /// reads the wallet again and retries while the credit still admits it.
    pub(super) async fn reserve_call(
        &self,
        r: &Reservation,
        guards: &[Guard],
        writes: &[CounterWrite],
        hold: &CreditHold,
        period: &Period,
        now: DateTime<Utc>,
    ) -> Result<Reserved> {
        let mut hold = hold.clone();
        for _ in 0..MAX_CREDIT_RACES {
            match self
                .store
                .reserve_with_credit(r, guards, writes, &hold, now)
                .await?
            {
                CreditReserve::Reserved => {
                    // Issue 19: a hold that crosses a level raises its alarm (hold_alarms).
                    self.observe_after_hold(&r.tenant, &hold).await;
                    return Ok(Reserved::Store(ReserveOutcome::Reserved));
                }
                CreditReserve::Denied { metric } => {
                    return Ok(Reserved::Store(ReserveOutcome::Denied { metric }))
                }
                CreditReserve::NoCredit => {
                    let fresh = self.store.get_credit_state(&r.tenant, &hold.wallet).await?;
                    let available = fresh.available(hold.at).map_err(credit_error)?;
                    if !credit_allows(available, hold.estimate) {
                        let d =
                            credit_denial(&hold.wallet, &fresh, hold.estimate, period, hold.at)?;
                        return Ok(Reserved::NoCredit(Box::new(d)));
                    }
                    hold.read = fresh;
                }
            }
        }
        Err(Error::Unavailable)
    }
}

impl Meter {
    /// The wallet's part of `invoice` (issue 19): on a postpaid plan, credit reduces the
    /// usage, overage and proration lines (`credits_applied`, drawn from the grants that
    /// count at `at`, in the draw order); on a prepaid plan the period's events drew their
    /// cost already: the line shows what they drew, and the rest of the usage, the
    /// overdraft the period made, is billed here and taken off the wallet's overdraft.
    /// Changes `invoice` and answers what the close takes from the wallet; `None` when the
    /// wallet has nothing to do with it (no grant, no overdraft). `wallet`: the invoice's
    /// subscriber's, a user's or an org's (`org_wallets`).
    ///
    /// Of an invoice closed over a billing state whose
    /// `billed_to` is `billed_to`: a user's prepaid invoice also credits the draws of the
    /// late events whose adjustments it bills (`service::late_draws`).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn invoice_credits_after(
        &self,
        tenant: &TenantId,
        wallet: Subscriber,
        plan: &Plan,
        invoice: &mut crate::domain::Invoice,
        period: &Period,
        billed_to: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<Option<crate::store::InvoiceCharge>> {
        let none = crate::store::PeriodDraws::default();
        self.invoice_credits_with(tenant, wallet, plan, invoice, period, billed_to, none, at)
            .await
    }

    /// [`Self::invoice_credits_after`] with, for an org's invoice, what the late events
    /// whose adjustments it bills drew from the org's wallet (`org_late`, from the org's
    /// billing state: `service::org_billing`; 0 for a user's).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn invoice_credits_with(
        &self,
        tenant: &TenantId,
        wallet: Subscriber,
        plan: &Plan,
        invoice: &mut crate::domain::Invoice,
        period: &Period,
        billed_to: Option<DateTime<Utc>>,
        org_late: crate::store::PeriodDraws,
        at: DateTime<Utc>,
    ) -> Result<Option<crate::store::InvoiceCharge>> {
        let record = self.store.get_wallet(tenant, &wallet).await?;
        // A prepaid invoice reads its draws even from an empty wallet: the grants its
        // events (or late events) drew from may be pruned by now (late_draws).
        if plan.payment == Payment::Postpaid
            && record.grants.is_empty()
            && record.overdrawn_usd.is_zero()
        {
            return Ok(None);
        }
        let lines = crate::credits::InvoiceAmounts::from_invoice(invoice);
        let mut charge = crate::store::InvoiceCharge {
            wallet: Some(wallet.clone()),
            grants: record.grants.clone(),
            ..Default::default()
        };
        let applied = match plan.payment {
            Payment::Postpaid => {
                let applied = crate::credits::apply_credits(&lines, &record.grants, at)
                    .map_err(credit_error)?;
                charge.draws = applied.draws.clone();
                applied
            }
            Payment::Prepaid => {
                let (drawn, shortfall) = match &wallet {
                    // A user's: the period's sums, read strongly consistent
                    // (store::PeriodDrawsStore).
                    // With the draws of the late events it bills (service::late_draws).
                    Subscriber::User(user) => {
                        self.user_prepaid_draws(tenant, user, period, billed_to)
                            .await?
                    }
                    // An org's: its draw ledger (org_wallets), the period's entries, and
                    // the late draws of the adjustments it bills (org_late_draws).
                    Subscriber::Org(_) => {
                        let (mut drawn, mut shortfall) =
                            (org_late.drawn_usd, org_late.shortfall_usd);
                        for d in self
                            .store
                            .wallet_draws(tenant, &wallet, Some(period.start))
                            .await?
                        {
                            if d.at >= period.start && d.at < period.end {
                                drawn += d.draws.drawn_usd().map_err(credit_error)?;
                                shortfall += d.draws.shortfall_usd;
                            }
                        }
                        (drawn, shortfall)
                    }
                };
                charge.overdraft_settled = shortfall.min(record.overdrawn_usd).max(Decimal::ZERO);
                crate::credits::CreditsApplied::already_drawn(&lines, drawn)
                    .map_err(credit_error)?
            }
        };
        crate::credits::apply_to_invoice(invoice, &applied).map_err(credit_error)?;
        if charge.draws.draws.is_empty() && charge.overdraft_settled.is_zero() {
            return Ok(None);
        }
        Ok(Some(charge))
    }
}

/// The once-only alert key of an alarm's `seq`-th crossing (`wallet.low_balance#3`).
fn alarm_key(event: &crate::credits::WalletEvent, seq: u64) -> String {
    format!("{}#{seq}", event.name())
}

/// The alert a wallet alarm raises for `user` (an org's wallet: the org id as the user,
/// `org_wallets`).
fn alarm_alert(
    tenant: &TenantId,
    user: &UserId,
    event: &crate::credits::WalletEvent,
    seq: u64,
    at: DateTime<Utc>,
) -> crate::domain::Alert {
    use crate::credits::WalletEvent;
    use crate::domain::Severity;
    let (severity, title, message) = match event {
        WalletEvent::LowBalance {
            available_usd,
            low_balance_usd,
        } => (
            Severity::Warning,
            "Prepaid credit is running low".to_owned(),
            format!(
                "Available credit ${} fell below the low-balance level ${}",
                available_usd.normalize(),
                low_balance_usd.normalize()
            ),
        ),
        WalletEvent::Depleted { available_usd } => (
            Severity::Error,
            "Prepaid credit is used up".to_owned(),
            format!(
                "Available credit is ${}: prepaid checks are denied until credit is added",
                available_usd.normalize()
            ),
        ),
    };
    crate::domain::Alert {
        id: uuid::Uuid::new_v4().to_string(),
        tenant: tenant.clone(),
        user: user.clone(),
        period_start: super::period_start_at(None, at),
        key: alarm_key(event, seq),
        metric: Some(crate::credits::CREDITS_METRIC.to_owned()),
        threshold: None,
        severity,
        title,
        message,
        created_at: at,
        read: false,
        published: false,
        // A user's wallet: the user owns its alarms.
        org: None,
        budget: None,
    }
}

impl Meter {
    /// Observes the user's wallet (issue 19): `wallet.low_balance` when `available_usd`
    /// fell below `low_balance_usd`, `wallet.depleted` when it reached 0, each once per
    /// crossing and re-armed when available rises again (`credits::alarms`). The alerts go
    /// through the outbox like usage alerts (stored once by their key, which carries the
    /// crossing's number, then published); the alarms' new state is stored under the
    /// version read, so of racing observers one moves it on. Returns the alerts raised.
    pub async fn observe_wallet(&self, tenant: &TenantId, user: &UserId) -> Result<usize> {
        self.observe_wallet_of(tenant, &Subscriber::User(user.clone()))
            .await
    }

    /// [`Meter::observe_wallet`] of a user's or an org's wallet (an org owns its wallet's
    /// alerts: `org_wallets`).
    pub async fn observe_wallet_of(&self, tenant: &TenantId, wallet: &Subscriber) -> Result<usize> {
        let user = &super::org_wallets::alarm_owner(wallet)?;
        let record = self.store.get_wallet(tenant, wallet).await?;
        let now = self.now();
        let view =
            crate::credits::wallet_view(&record.grants, record.overdrawn_usd, record.held_usd, now)
                .map_err(credit_error)?;
        let before = record.alarms.unwrap_or_default();
        let mut after = before;
        let events = after.observe(view.available_usd, record.low_balance_usd);
        if after == before && record.alarms.is_some() {
            return Ok(0);
        }
        // The alerts first (once-only by key: a crash before the state write raises
        // nothing twice, the next observer finds the same key), then the state.
        let seq = record.alarm_seq + 1;
        let mut alerts = Vec::new();
        for e in &events {
            let mut alert = alarm_alert(tenant, user, e, seq, now);
            // Issue 19: an org's alarm is the org's alert (service::org_wallets).
            if self.store_wallet_alarm(wallet, &mut alert).await? {
                alerts.push(alert);
            }
        }
        self.store
            .put_wallet_alarms(tenant, wallet, record.alarm_seq, after)
            .await?;
        for alert in &alerts {
            tracing::info!(tenant = %tenant, user = %user, key = %alert.key, "wallet alarm");
            self.deliver(alert).await;
        }
        Ok(alerts.len())
    }
}
