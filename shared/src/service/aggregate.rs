//! The scheduled aggregation pass: expire holds, re-price unpriced events, close
//! ended periods into invoices, renew subscriptions and apply scheduled downgrades,
//! deliver the outbox (alerts and invoices).
//!
//! Idempotent and safe to run concurrently with itself and with live traffic: every step
//! is a conditional write in the store (a hold expires once, an event is priced once, a
//! period is closed into one invoice, a subscription changes under its version), so a
//! repeated or concurrent pass only finds less to do. It works in bounded pages and keeps
//! its position in job cursors, so a pass cut short by a deadline resumes where it stopped.

use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{Error, Meter, Result};
use crate::alerts::OutboxMessage;
use crate::billing::{self, InvoiceInput};
use crate::domain::{Invoice, PlanName, Subscription, SubscriptionStatus};
use crate::periods::{Period, Schedule};
use crate::pricing::PriceOutcome;
use crate::store::{CloseOutcome, StoreError, UserRef};

/// Job cursor names.
const USERS_JOB: &str = "aggregate:users";
const REPRICE_JOB: &str = "aggregate:reprice";
/// Items per page.
const PAGE: usize = 100;
/// Most periods one user gets closed in one pass (a user unseen for years catches up
/// over several passes).
const MAX_PERIODS_PER_USER: usize = 24;
/// Attempts at closing one period when concurrent writes keep changing its state.
const CLOSE_ATTEMPTS: usize = 8;

/// How a pass runs.
#[derive(Debug, Clone)]
pub struct AggregateOptions {
    /// The pass acts as of this instant (`meter aggregate --at`); `None` = the clock.
    pub at: Option<DateTime<Utc>>,
    /// A period is closed once it ended at least this long ago, so that reports of calls
    /// made just before its end usually arrive first (later ones become adjustments).
    pub grace: Duration,
    /// Stop starting new pages after this much wall time (a Lambda's remaining time).
    pub budget: Option<StdDuration>,
}

impl Default for AggregateOptions {
    fn default() -> Self {
        Self {
            at: None,
            grace: Duration::minutes(10),
            budget: None,
        }
    }
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AggregateReport {
    pub expired_reservations: usize,
    pub repriced_events: usize,
    pub users_visited: usize,
    pub invoices_created: usize,
    pub subscriptions_renewed: usize,
    pub downgrades_applied: usize,
    pub subscriptions_ended: usize,
    pub alerts_delivered: usize,
    pub invoices_delivered: usize,
    /// Every step reached its end (false: cut short by the budget; the next pass resumes).
    pub complete: bool,
}

struct Deadline(Option<Instant>);

impl Deadline {
    fn passed(&self) -> bool {
        self.0.is_some_and(|d| Instant::now() >= d)
    }
}

impl Meter {
    /// One aggregation pass.
    pub async fn aggregate(&self, opts: &AggregateOptions) -> Result<AggregateReport> {
        let at = opts.at.unwrap_or_else(|| self.now());
        let deadline = Deadline(opts.budget.map(|b| Instant::now() + b));
        let mut report = AggregateReport::default();

        loop {
            let n = self.store.expire_reservations(at, 500).await?;
            report.expired_reservations += n;
            if n < 500 || deadline.passed() {
                break;
            }
        }
        let repriced_all = self.reprice(&deadline, &mut report).await?;
        let users_all = self
            .close_periods(at, opts.grace, &deadline, &mut report)
            .await?;
        report.alerts_delivered = self.retry_outbox(500).await?;
        report.invoices_delivered = self.deliver_invoices(500).await?;
        report.complete = repriced_all && users_all && !deadline.passed();
        tracing::info!(?report, at = %at, "aggregation pass");
        Ok(report)
    }

    /// Prices unpriced events whose price is now in force. `true` when it reached the end.
    async fn reprice(&self, deadline: &Deadline, report: &mut AggregateReport) -> Result<bool> {
        let mut cursor = self.store.get_job_cursor(REPRICE_JOB).await?;
        loop {
            if deadline.passed() {
                return Ok(false);
            }
            let page = self.store.unpriced_events(cursor.clone(), PAGE).await?;
            for e in &page.items {
                let catalog = self.catalog(&e.tenant).await?;
                match catalog.price(Some(&e.provider), e.model.as_ref(), e.timestamp, &e.counts) {
                    Ok(PriceOutcome::Priced {
                        cost_usd,
                        version_id,
                        ..
                    }) => {
                        if self
                            .store
                            .price_event(&e.tenant, &e.event_id, cost_usd, &version_id)
                            .await?
                        {
                            report.repriced_events += 1;
                        }
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, tenant = %e.tenant, event_id = %e.event_id, "event cannot be priced")
                    }
                }
            }
            self.store
                .put_job_cursor(REPRICE_JOB, page.next.as_deref())
                .await?;
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(true),
            }
        }
    }

    /// Visits every user page by page. `true` when it reached the end.
    async fn close_periods(
        &self,
        at: DateTime<Utc>,
        grace: Duration,
        deadline: &Deadline,
        report: &mut AggregateReport,
    ) -> Result<bool> {
        let mut cursor = self.store.get_job_cursor(USERS_JOB).await?;
        loop {
            if deadline.passed() {
                return Ok(false);
            }
            let page = self.store.list_users(cursor.clone(), PAGE).await?;
            for user in &page.items {
                report.users_visited += 1;
                if let Err(e) = self.close_user(user, at, grace, report).await {
                    // One user's problem (e.g. a plan deleted) must not stop everyone's billing.
                    tracing::error!(error = %e, tenant = %user.tenant, user = %user.user, "closing a user's periods failed");
                }
            }
            self.store
                .put_job_cursor(USERS_JOB, page.next.as_deref())
                .await?;
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(true),
            }
        }
    }

    /// Closes the user's ended periods, oldest first, then rolls the subscription.
    async fn close_user(
        &self,
        user: &UserRef,
        at: DateTime<Utc>,
        grace: Duration,
        report: &mut AggregateReport,
    ) -> Result<()> {
        let sub = user.subscription.as_ref();
        let schedule = super::schedule_of(sub);
        let current = schedule.period_containing(at).map_err(period_err)?;
        let cutoff = at - grace;
        if sub.is_some_and(|s| s.current_period.end > cutoff) {
            // The subscription's period has not ended (a subscription only moves to a new
            // period once the earlier ones are invoiced): nothing to close, nothing to read.
            return Ok(());
        }
        // Where to start: the first period not invoiced yet.
        let probe = schedule.previous(&current).map_err(period_err)?;
        let state = self
            .store
            .billing_state(&user.tenant, &user.user, probe.start)
            .await?;
        let active = sub.filter(|s| s.status != SubscriptionStatus::Cancelled);
        let mut period = match (state.billed_to, active) {
            (Some(b), Some(_)) => schedule.period_containing(b).map_err(period_err)?,
            (None, Some(s)) => schedule
                .period_containing(s.started_at)
                .map_err(period_err)?,
            // Without an active subscription only periods with usage are invoiced, and only
            // the last ended one is looked at (one read a pass, not one per idle month).
            (Some(b), None) => {
                let first = schedule.period_containing(b).map_err(period_err)?;
                if first.start > probe.start {
                    first
                } else {
                    probe
                }
            }
            (None, None) => probe,
        };
        let mut closed = 0;
        while period.end <= cutoff && closed < MAX_PERIODS_PER_USER {
            if self.close_one(user, &period, at, report).await? {
                closed += 1;
            }
            period = schedule.next(&period).map_err(period_err)?;
        }
        if let Some(s) = sub {
            self.roll_subscription(s, &schedule, at, report).await?;
        }
        Ok(())
    }

    /// Closes one period into an invoice (retrying while concurrent writes change it).
    /// `true` if this call created the invoice.
    async fn close_one(
        &self,
        user: &UserRef,
        period: &Period,
        at: DateTime<Utc>,
        report: &mut AggregateReport,
    ) -> Result<bool> {
        let sub = user.subscription.as_ref();
        for _ in 0..CLOSE_ATTEMPTS {
            let state = self
                .store
                .billing_state(&user.tenant, &user.user, period.start)
                .await?;
            if state.billed_to.is_some_and(|b| b >= period.end) {
                return Ok(false);
            }
            let has_usage = state
                .usage
                .by_provider
                .values()
                .any(|u| u.recorded.calls > 0);
            let subscribed = sub.is_some_and(|s| s.status != SubscriptionStatus::Cancelled);
            if !subscribed && !has_usage && state.adjustments.is_empty() {
                // Nothing to bill a user without an active subscription.
                return Ok(false);
            }
            let plan = self.plan_at_start(user, period).await?;
            let invoice = billing::build_invoice(
                &InvoiceInput {
                    tenant: &user.tenant,
                    user: &user.user,
                    period: *period,
                    subscription: sub,
                    plan: &plan,
                    usage: &state.usage,
                    adjustments: &state.adjustments,
                    created_at: at,
                },
                format!("inv_{}", uuid::Uuid::now_v7().simple()),
            )
            .map_err(|e| {
                tracing::error!(error = %e, "invoice cannot be computed");
                Error::Internal
            })?;
            match self.store.close_period(&invoice, &state).await? {
                CloseOutcome::Closed => {
                    report.invoices_created += 1;
                    self.deliver_invoice(&invoice).await;
                    return Ok(true);
                }
                CloseOutcome::AlreadyInvoiced => return Ok(false),
                CloseOutcome::Changed => continue,
            }
        }
        tracing::warn!(tenant = %user.tenant, user = %user.user, period = %period.start, "period kept changing; the next pass closes it");
        Ok(false)
    }

    /// The plan in force when `period` started: an upgrade's `from_plan` if one happened
    /// in it, else the subscription's plan (or the free plan).
    async fn plan_at_start(&self, user: &UserRef, period: &Period) -> Result<crate::limits::Plan> {
        let sub = user.subscription.as_ref();
        let name = sub
            .and_then(|s| {
                billing::prorations_of(s, period)
                    .first()
                    .map(|p| p.from_plan.clone())
            })
            .or_else(|| sub.map(|s| s.plan.clone()))
            .unwrap_or_else(PlanName::free);
        let plans = self.plans(&user.tenant).await?;
        plans
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .ok_or_else(|| {
                tracing::error!(tenant = %user.tenant, plan = %name, "plan of an invoice does not exist");
                Error::NotFound("plan")
            })
    }

    /// Moves the subscription to the period containing `at` once every earlier period is
    /// invoiced: applies a scheduled downgrade, drops billed prorations, ends a
    /// subscription that does not renew.
    async fn roll_subscription(
        &self,
        sub: &Subscription,
        schedule: &Schedule,
        at: DateTime<Utc>,
        report: &mut AggregateReport,
    ) -> Result<()> {
        let current = schedule.period_containing(at).map_err(period_err)?;
        if sub.current_period.start >= current.start || sub.status == SubscriptionStatus::Cancelled
        {
            return Ok(());
        }
        let billed = self
            .store
            .billing_state(&sub.tenant, &sub.user, sub.current_period.start)
            .await?
            .billed_to;
        if billed.is_none_or(|b| b < sub.current_period.end) {
            return Ok(()); // its period is not invoiced yet (grace, or a failed close)
        }
        let mut next = sub.clone();
        next.version = sub.version + 1;
        next.updated_at = at;
        next.prorations
            .retain(|p| billed.is_some_and(|b| p.period_start >= b));
        if sub.auto_renew {
            next.current_period = current;
            if let Some(plan) = next.pending_plan.take() {
                next.plan = plan;
                report.downgrades_applied += 1;
            }
            report.subscriptions_renewed += 1;
        } else {
            next.status = SubscriptionStatus::Cancelled;
            next.pending_plan = None;
            report.subscriptions_ended += 1;
        }
        match self.store.put_subscription(&next, Some(sub.version)).await {
            Ok(()) => Ok(()),
            // Changed meanwhile (an admin write or another pass): the next pass rolls it.
            Err(StoreError::VersionConflict) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Publishes an invoice; on failure it stays in the outbox.
    async fn deliver_invoice(&self, invoice: &Invoice) -> bool {
        match self.publisher.publish(&OutboxMessage::from(invoice)).await {
            Ok(()) => match self.store.mark_invoice_published(invoice).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, invoice = %invoice.id, "published but not marked; it may be delivered again");
                    false
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, invoice = %invoice.id, "invoice left in the outbox for retry");
                false
            }
        }
    }

    /// Retries up to `limit` unpublished invoices; returns how many were delivered.
    pub async fn deliver_invoices(&self, limit: usize) -> Result<usize> {
        let mut delivered = 0;
        for invoice in self.store.unpublished_invoices(limit).await? {
            if self.deliver_invoice(&invoice).await {
                delivered += 1;
            }
        }
        Ok(delivered)
    }
}

fn period_err(e: crate::periods::PeriodError) -> Error {
    tracing::error!(error = %e, "period arithmetic failed in the aggregation");
    Error::Internal
}
