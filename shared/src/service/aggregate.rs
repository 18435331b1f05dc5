//! The scheduled aggregation pass: expire holds, re-price unpriced events, close
//! ended periods into invoices, renew subscriptions and apply scheduled downgrades,
//! deliver the outbox (alerts and invoices).
//!
//! Idempotent and safe to run concurrently with itself and with live traffic: every step
//! is a conditional write in the store (a hold expires once, an event is priced once, a
//! period is closed into one invoice, a subscription changes under its version), so a
//! repeated or concurrent pass only finds less to do. It works in bounded pages and keeps
//! its position in job cursors, so a pass cut short by a deadline resumes where it stopped.
//!
//! Each step has its own share of a pass's time budget ([`AggregateOptions::budget`],
//! shared out by this module's `SHARES` table) and makes at least one page of progress
//! per pass, so a backlog in one (thousands of events to re-price) never starves the
//! others (invoices, renewals, holds). A step that fails is logged and the pass goes on
//! with the next; within the billing step, one user's failure does not stop the others.
//!
//! Billing rules (docs/billing.md): every period with recorded usage is invoiced once, and
//! so is every period of a subscription; a period is billed under the plan and status in
//! force at its start; the subscription rolls (renews, applies a scheduled downgrade, or
//! ends) period by period, in order with the closes.

use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use std::collections::BTreeSet;

use super::{Error, Meter, Result};
use crate::alerts::OutboxMessage;
use crate::billing::{self, InvoiceInput};
use crate::budgets::{CounterKey, Scope};
use crate::domain::{Invoice, PlanName, Subscription, SubscriptionStatus, TenantId};
use crate::periods::{Period, Schedule};
use crate::pricing::PriceOutcome;
use crate::store::{BillingState, CloseOutcome, StoreError, UserRef};
use crate::subscriptions::{forget_billed_terms, remember_terms, terms_at};
use crate::usage::PeriodUsage;

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
/// Where each step's share of a pass's budget ends, as a fraction of the budget: expiring
/// holds, re-pricing, billing; delivering the outbox takes the rest. Time a step leaves
/// unused goes to the steps after it.
const SHARES: [(&str, f64); 3] = [("expire", 0.1), ("reprice", 0.3), ("bill", 0.85)];

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
    /// `alert.resolved` alerts this pass stored (issue 18).
    pub alerts_resolved: usize,
    /// Budget alerts of short windows deleted at the end of their retention (issue 18,
    /// `alerts::retain_until`).
    pub alerts_expired: usize,
    /// Grants whose expiry this pass recorded, and finished grants it pruned (issue 19,
    /// service::grant_upkeep).
    pub grants_expired: usize,
    pub grants_pruned: usize,
    pub invoices_delivered: usize,
    /// Every step reached its end (false: cut short by the budget; the next pass resumes).
    pub complete: bool,
}

/// When a step must stop starting new pages (`None`: no budget).
pub(super) struct Deadline(Option<Instant>);

impl Deadline {
    pub(super) fn passed(&self) -> bool {
        self.0.is_some_and(|d| Instant::now() >= d)
    }

    /// The deadline of step `name` of a pass that started at `start` with `budget`.
    fn of_step(start: Instant, budget: Option<StdDuration>, name: &str) -> Self {
        let share = SHARES
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(1.0, |(_, s)| *s);
        Deadline(budget.map(|b| start + b.mul_f64(share)))
    }
}

impl Meter {
    /// One aggregation pass.
    pub async fn aggregate(&self, opts: &AggregateOptions) -> Result<AggregateReport> {
        let at = opts.at.unwrap_or_else(|| self.now());
        let start = Instant::now();
        let step = |name| Deadline::of_step(start, opts.budget, name);
        let mut report = AggregateReport::default();
        let mut complete = true;
        let mut done = |name: &str, outcome: Result<bool>| match outcome {
            Ok(all) => complete &= all,
            Err(e) => {
                complete = false;
                tracing::error!(error = %e, step = name, "aggregation step failed; the next pass retries it");
            }
        };
        done(
            "expire",
            self.expire_holds(at, &step("expire"), &mut report).await,
        );
        done("reprice", self.reprice(&step("reprice"), &mut report).await);
        done(
            "bill",
            self.close_periods(at, opts.grace, &step("bill"), &mut report)
                .await,
        );
        // Issue 18: org subscriptions (service::org_billing).
        done(
            "bill_orgs",
            self.close_org_periods(at, opts.grace, &step("bill"), &mut report)
                .await,
        );
        // Issue 18: `alert.resolved` for denials allowed again (service::alert_resolved).
        done(
            "resolve",
            self.resolve_denials(at).await.map(|n| {
                report.alerts_resolved = n;
                true
            }),
        );
        // Issue 18: budget alerts of short windows end (service::budget_alerts).
        done(
            "retain",
            self.delete_expired_alerts(at).await.map(|(n, all)| {
                report.alerts_expired = n;
                all
            }),
        );
        // Issue 19: grant expiry and pruning (service::grant_upkeep).
        done(
            "grants",
            self.upkeep_grants(at).await.map(|u| {
                report.grants_expired = u.expired;
                report.grants_pruned = u.pruned;
                true
            }),
        );
        match self.retry_outbox(500).await {
            Ok(n) => report.alerts_delivered = n,
            Err(e) => done("alerts", Err(e)),
        }
        match self.deliver_invoices(500).await {
            Ok(n) => report.invoices_delivered = n,
            Err(e) => done("invoices", Err(e)),
        }
        report.complete = complete && !Deadline(opts.budget.map(|b| start + b)).passed();
        tracing::info!(?report, at = %at, "aggregation pass");
        Ok(report)
    }

    /// Expires held reservations past their TTL. `true` when none is left.
    async fn expire_holds(
        &self,
        at: DateTime<Utc>,
        deadline: &Deadline,
        report: &mut AggregateReport,
    ) -> Result<bool> {
        loop {
            let n = self.store.expire_reservations(at, 500).await?;
            report.expired_reservations += n;
            if n < 500 {
                return Ok(true);
            }
            if deadline.passed() {
                return Ok(false);
            }
        }
    }

    /// Prices unpriced events whose price is now in force. `true` when it reached the end.
    async fn reprice(&self, deadline: &Deadline, report: &mut AggregateReport) -> Result<bool> {
        let mut cursor = self.store.get_job_cursor(REPRICE_JOB).await?;
        loop {
            let page = self.store.unpriced_events(cursor.clone(), PAGE).await?;
            for e in &page.items {
                let catalog = self.catalog(&e.tenant).await?;
                match catalog.price(Some(&e.provider), e.model.as_ref(), e.timestamp, &e.counts) {
                    Ok(PriceOutcome::Priced {
                        cost_usd,
                        version_id,
                        ..
                    }) => {
                        // Issue 19: a prepaid payer's wallet pays it now (service::repricing).
                        if self.price_unpriced(e, cost_usd, &version_id).await? {
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
            if deadline.passed() {
                return Ok(false);
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
            if deadline.passed() {
                return Ok(false);
            }
        }
    }

    /// Closes the user's ended periods in order, rolling the subscription past each of its
    /// periods as soon as that one is invoiced.
    async fn close_user(
        &self,
        user: &UserRef,
        at: DateTime<Utc>,
        grace: Duration,
        report: &mut AggregateReport,
    ) -> Result<()> {
        let cutoff = at - grace;
        let mut sub = user.subscription.clone();
        if sub.as_ref().is_some_and(|s| s.current_period.end > cutoff) {
            // The subscription's period has not ended (it only moves on once the earlier
            // ones are invoiced): nothing to close yet, nothing to read. Usage outside its
            // periods (before it started) is closed with its next period.
            return Ok(());
        }
        let schedule = super::schedule_of(sub.as_ref());
        let probe = schedule.period_containing(cutoff).map_err(period_err)?;
        let state = self
            .store
            .billing_state(&user.tenant, &user.user, probe.start)
            .await?;
        let periods = periods_to_close(sub.as_ref(), &schedule, &state, cutoff)?;
        let mut billed_to = state.billed_to;
        for (i, period) in periods.iter().take(MAX_PERIODS_PER_USER).enumerate() {
            let next_start = periods.get(i + 1).map(|p| p.start);
            if let Some(b) = self
                .close_one(
                    user,
                    sub.as_ref(),
                    &schedule,
                    period,
                    next_start,
                    at,
                    report,
                )
                .await?
            {
                billed_to = billed_to.max(Some(b));
            }
            // Roll past every subscription period now invoiced, before the next close: a
            // scheduled downgrade or the end of a non-renewing subscription applies to the
            // periods after it even when several are closed in one pass.
            while let (Some(s), Some(b)) = (sub.as_ref(), billed_to) {
                let due = s.status != SubscriptionStatus::Cancelled
                    && s.current_period.end <= cutoff
                    && b > s.current_period.start;
                if !due {
                    break;
                }
                match self.roll_one(s, &schedule, b, at, report).await? {
                    Some(next) => sub = Some(next),
                    None => return Ok(()), // changed meanwhile: the next pass goes on
                }
            }
        }
        Ok(())
    }

    /// Closes one period into an invoice (retrying while concurrent writes change it), under
    /// the terms `sub` had at the period's start. The user's `billed_to` after it, `None`
    /// when there was nothing to bill.
    #[allow(clippy::too_many_arguments)]
    async fn close_one(
        &self,
        user: &UserRef,
        sub: Option<&Subscription>,
        schedule: &Schedule,
        period: &Period,
        next_start: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
        report: &mut AggregateReport,
    ) -> Result<Option<DateTime<Utc>>> {
        // The subscription as it was when the period started, if the period is one of its
        // own (not usage from before it, in calendar months or before its start).
        let own = schedule.period_containing(period.start).ok() == Some(*period);
        let then = sub
            .filter(|s| own && period.end > s.started_at)
            .map(|s| subscription_at_start(s, period));
        let subscribed = then.as_ref().is_some_and(|s| bills_subscription(s, period));
        let plan_name = then
            .as_ref()
            .map_or_else(PlanName::free, |s| s.plan.clone());
        for _ in 0..CLOSE_ATTEMPTS {
            let state = self
                .store
                .billing_state(&user.tenant, &user.user, period.start)
                .await?;
            if state.billed_to.is_some_and(|b| b > period.start) {
                return Ok(state.billed_to); // closed already
            }
            let has_usage = state
                .usage
                .by_provider
                .values()
                .any(|u| u.recorded.calls > 0);
            if !subscribed && !has_usage && state.adjustments.is_empty() {
                return Ok(None); // nothing to bill without a subscription
            }
            // One payer per call: less the calls an org's invoice bills. A period whose
            // every call an org paid closes with a $0 invoice (else it stays pending).
            let scope = Scope::User {
                user_id: user.user.clone(),
            };
            let usage = self
                .billed_usage(&user.tenant, scope, period.start, &state.usage)
                .await?;
            let plan = self.plan_named(user, &plan_name).await?;
            let mut invoice = billing::build_invoice(
                &InvoiceInput {
                    tenant: &user.tenant,
                    user: &user.user,
                    period: *period,
                    subscription: then.as_ref(),
                    plan: &plan,
                    usage: &usage,
                    adjustments: &state.adjustments,
                    created_at: at,
                },
                format!("inv_{}", uuid::Uuid::now_v7().simple()),
            )
            .map_err(|e| {
                tracing::error!(error = %e, "invoice cannot be computed");
                Error::Internal
            })?;
            // Every period starting before billed_to is closed: the next one not closed is
            // the next to close, or the subscription's next period, whichever starts first.
            let schedule_next = schedule
                .period_containing(period.start)
                .map_err(period_err)?
                .end;
            let mut billed_to = period.end.min(schedule_next);
            if let Some(n) = next_start {
                billed_to = billed_to.min(n);
            }
            let billed_to = state.billed_to.map_or(billed_to, |b| b.max(billed_to));
            // Issue 19: credits on the invoice, taken from the wallet with the close.
            // A prepaid invoice credits what the late events it bills drew (late_draws).
            let charge = self
                .invoice_credits_after(
                    &user.tenant,
                    crate::credits::Subscriber::User(user.user.clone()),
                    &plan,
                    &mut invoice,
                    period,
                    state.billed_to,
                    at,
                )
                .await?;
            let closed = match &charge {
                Some(c) => {
                    self.store
                        .close_period_charging(&invoice, &state, billed_to, c)
                        .await?
                }
                None => self.store.close_period(&invoice, &state, billed_to).await?,
            };
            match closed {
                CloseOutcome::Closed => {
                    report.invoices_created += 1;
                    self.deliver_invoice(&invoice).await;
                    return Ok(Some(billed_to));
                }
                CloseOutcome::AlreadyInvoiced | CloseOutcome::Changed => continue,
            }
        }
        tracing::warn!(tenant = %user.tenant, user = %user.user, period = %period.start, "period kept changing; the next pass closes it");
        Ok(None)
    }

    /// What a subscriber's invoice bills of `usage` (its period starting at `start`, as
    /// its billing state read it): less what another subscriber's invoice bills
    /// ([`CounterKey::PaidElsewhere`], docs/billing.md "One payer per call"). Read after the
    /// state: a call counted there after the state was read changed the state's version
    /// too, so the close that would bill the mix fails and reads again.
    pub(super) async fn billed_usage(
        &self,
        tenant: &TenantId,
        scope: Scope,
        start: DateTime<Utc>,
        usage: &PeriodUsage,
    ) -> Result<PeriodUsage> {
        let counter = CounterKey::PaidElsewhere {
            scope,
            window_start: start,
        };
        let elsewhere = self
            .store
            .get_budget_counters(tenant, std::slice::from_ref(&counter))
            .await?
            .pop()
            .unwrap_or_default();
        usage.recorded_only().billed_here(&elsewhere.recorded_only()).ok_or_else(|| {
            tracing::error!(tenant = %tenant, counter = %counter.key(), "more usage billed elsewhere than recorded");
            Error::Internal
        })
    }

    /// The tenant's plan `name` (an invoice's plan).
    async fn plan_named(&self, user: &UserRef, name: &PlanName) -> Result<crate::limits::Plan> {
        let plans = self.plans(&user.tenant).await?;
        plans
            .iter()
            .find(|p| &p.name == name)
            .cloned()
            .ok_or_else(|| {
                tracing::error!(tenant = %user.tenant, plan = %name, "plan of an invoice does not exist");
                Error::NotFound("plan")
            })
    }

    /// Moves the subscription one period on, its current period being invoiced: renews it
    /// (applying a scheduled downgrade from the next period's start) or ends it, and drops
    /// what billing no longer needs. `None` when it changed meanwhile.
    async fn roll_one(
        &self,
        sub: &Subscription,
        schedule: &Schedule,
        billed_to: DateTime<Utc>,
        at: DateTime<Utc>,
        report: &mut AggregateReport,
    ) -> Result<Option<Subscription>> {
        let next = next_term(sub, schedule, billed_to, at, report)?;
        match self.store.put_subscription(&next, Some(sub.version)).await {
            Ok(()) => Ok(Some(next)),
            // Changed meanwhile (an admin write or another pass): the next pass rolls it.
            Err(StoreError::VersionConflict) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Publishes an invoice if this process claims it first (see `outbox`); when it was not
    /// delivered, it stays in the outbox and the claim is given back.
    pub(super) async fn deliver_invoice(&self, invoice: &Invoice) -> bool {
        let now = self.now();
        let until = now + super::outbox::CLAIM_TTL;
        match self.store.claim_invoice(invoice, now, until).await {
            Ok(true) => {}
            // Published already, or another publisher holds it.
            Ok(false) => return false,
            Err(e) => {
                // The claim may have been taken all the same (the answer was lost).
                tracing::warn!(error = %e, invoice = %invoice.id, "invoice not claimed; left in the outbox for retry");
                self.release_invoice(invoice, until).await;
                return false;
            }
        }
        match self.publisher.publish(&OutboxMessage::from(invoice)).await {
            Ok(()) => match self.store.mark_invoice_published(invoice).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, invoice = %invoice.id, "published but not marked; the next pass delivers it again");
                    self.release_invoice(invoice, until).await;
                    false
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, invoice = %invoice.id, "invoice left in the outbox for retry");
                self.release_invoice(invoice, until).await;
                false
            }
        }
    }

    /// Gives back this process's claim on an invoice it did not deliver (see
    /// `outbox::release_alert`).
    async fn release_invoice(&self, invoice: &Invoice, until: DateTime<Utc>) {
        if let Err(e) = self.store.release_invoice_claim(invoice, until).await {
            tracing::warn!(error = %e, invoice = %invoice.id, claimed_until = %until, "claim not released; the invoice is retried once it ends");
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

/// The subscription with the terms it had at `period`'s start. Upgrades recorded before
/// terms were kept in a history name their old plan in their proration.
pub(super) fn subscription_at_start(sub: &Subscription, period: &Period) -> Subscription {
    let (mut plan, status) = terms_at(sub, period.start);
    if sub.history.is_empty() {
        if let Some(p) = billing::prorations_of(sub, period)
            .into_iter()
            .find(|p| p.from_plan != p.to_plan)
        {
            plan = p.from_plan.clone();
        }
    }
    Subscription {
        plan,
        status,
        ..sub.clone()
    }
}

/// Whether a period's invoice has something of the subscription (`sub` as it was at the
/// period's start) to bill: a base (not cancelled at the start, started before the end) or
/// a proration.
pub(super) fn bills_subscription(sub: &Subscription, period: &Period) -> bool {
    (sub.status != SubscriptionStatus::Cancelled && period.end > sub.started_at)
        || !billing::prorations_of(sub, period).is_empty()
}

/// The periods to close, in order of their start: the subscription's periods from the
/// first not closed while it was not cancelled, and every period with usage not closed
/// yet (before the subscription started, or without one), each ended by `cutoff`; when
/// that is none but adjustments are pending, the last ended period, to carry them.
fn periods_to_close(
    sub: Option<&Subscription>,
    schedule: &Schedule,
    state: &BillingState,
    cutoff: DateTime<Utc>,
) -> Result<Vec<Period>> {
    let mut out = BTreeSet::new();
    if let Some(s) = sub {
        let from = state
            .billed_to
            .map_or(s.started_at, |b| b.max(s.started_at));
        let mut period = schedule.period_containing(from).map_err(period_err)?;
        while period.end <= cutoff {
            if bills_subscription(&subscription_at_start(s, &period), &period) {
                out.insert(period);
            } else if s.status == SubscriptionStatus::Cancelled
                && s.history.iter().all(|h| h.until <= period.start)
            {
                break; // cancelled for good from here on
            }
            period = schedule.next(&period).map_err(period_err)?;
        }
    }
    let calendar = Schedule::calendar();
    for &start in &state.pending_periods {
        let period = [schedule, &calendar]
            .into_iter()
            .filter_map(|sch| sch.period_containing(start).ok())
            .find(|p| p.start == start);
        match period {
            Some(p) if p.end <= cutoff => {
                out.insert(p);
            }
            Some(_) => {}
            None => {
                tracing::warn!(period = %start, "usage in a period of no known schedule is left unbilled");
            }
        }
    }
    // Adjustments ride on the next invoice: without one, the last ended period carries them.
    if out.is_empty() && !state.adjustments.is_empty() {
        let current = schedule.period_containing(cutoff).map_err(period_err)?;
        let last = schedule.previous(&current).map_err(period_err)?;
        if state.billed_to.is_none_or(|b| last.start >= b) {
            out.insert(last);
        }
    }
    Ok(out.into_iter().collect())
}

fn period_err(e: crate::periods::PeriodError) -> Error {
    tracing::error!(error = %e, "period arithmetic failed in the aggregation");
    Error::Internal
}

/// The subscription one period on, its current period being invoiced up to `billed_to`:
/// renewed (with a scheduled downgrade applied from the next period's start) or ended,
/// without what billing no longer needs.
pub(super) fn next_term(
    sub: &Subscription,
    schedule: &Schedule,
    billed_to: DateTime<Utc>,
    at: DateTime<Utc>,
    report: &mut AggregateReport,
) -> Result<Subscription> {
    let boundary = sub.current_period.end;
    let mut next = sub.clone();
    next.version = sub.version + 1;
    next.updated_at = at;
    next.prorations.retain(|p| p.period_start >= billed_to);
    forget_billed_terms(&mut next, billed_to);
    if sub.auto_renew {
        next.current_period = schedule.next(&sub.current_period).map_err(period_err)?;
        if let Some(plan) = next.pending_plan.take() {
            remember_terms(&mut next, sub.plan.clone(), sub.status, boundary);
            next.plan = plan;
            report.downgrades_applied += 1;
        }
        report.subscriptions_renewed += 1;
    } else {
        remember_terms(&mut next, sub.plan.clone(), sub.status, boundary);
        next.status = SubscriptionStatus::Cancelled;
        next.pending_plan = None;
        report.subscriptions_ended += 1;
    }
    Ok(next)
}
