//! The aggregation's step for org subscriptions: each ended period of an org's
//! subscription is closed into one invoice of the org (base price for the cycle, the
//! org's pooled usage cost, overage where the plan bills it, prorations of upgrades) and
//! the subscription rolls on (renews, applies a scheduled downgrade, or ends), both in one
//! atomic store write ([`crate::store::OrgStore::close_org_period`]), so that racing
//! passes invoice a period once. The invoice is then published through the outbox
//! (`invoice.created`, attribute `user_id` = `org#<org_id>`, and `org_id` in `extra`).
//!
//! The org's usage of a period is its pooled `period` counter (every call naming the org
//! while it was subscribed), read when the period is closed. An event naming the org that
//! arrives after its period was invoiced adds to that period's pending adjustment of the
//! org, atomically with the event (store::OrgBillingStore); the org's next invoice bills
//! the adjustments (one `adjustment` line per original period, as a user's), and the close
//! consumes them in its write, only if neither the counter nor the adjustments changed
//! since it read them (else it reads again): an event racing the close is billed once.

use chrono::{DateTime, Duration, Utc};

use super::aggregate::{
    bills_subscription, next_term, subscription_at_start, AggregateReport, Deadline,
};
use super::{Error, Meter, Result};
use crate::billing::{self, InvoiceInput};
use crate::domain::{SubscriptionStatus, UserId};
use crate::store::{org_subscriber, OrgClose, OrgRef};
use crate::subscriptions::schedule_of;

/// Job cursor of the org pages.
const ORGS_JOB: &str = "aggregate:orgs";
const PAGE: usize = 100;
/// Most periods one org gets closed in one pass.
const MAX_PERIODS_PER_ORG: usize = 24;
/// Attempts at closing one period while racing events keep changing its state.
const CLOSE_ATTEMPTS: usize = 8;

impl Meter {
    /// Visits every org subscription page by page. `true` when it reached the end.
    pub(super) async fn close_org_periods(
        &self,
        at: DateTime<Utc>,
        grace: Duration,
        deadline: &Deadline,
        report: &mut AggregateReport,
    ) -> Result<bool> {
        let mut cursor = self.store.get_job_cursor(ORGS_JOB).await?;
        loop {
            let page = self
                .store
                .list_org_subscriptions(cursor.clone(), PAGE)
                .await?;
            for org in &page.items {
                if let Err(e) = self.close_org(org, at, grace, report).await {
                    tracing::error!(error = %e, tenant = %org.tenant, org = %org.org, "closing an org's periods failed");
                }
            }
            self.store
                .put_job_cursor(ORGS_JOB, page.next.as_deref())
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

    /// Closes the org's ended subscription periods in order, rolling the subscription past
    /// each in the same write as its invoice.
    async fn close_org(
        &self,
        org: &OrgRef,
        at: DateTime<Utc>,
        grace: Duration,
        report: &mut AggregateReport,
    ) -> Result<()> {
        let cutoff = at - grace;
        let mut sub = org.subscription.clone();
        let subscriber = UserId::parse(org.org.as_str()).map_err(|_| Error::Internal)?;
        for _ in 0..MAX_PERIODS_PER_ORG {
            // A cancelled org's pending adjustments (org_cancelled).
            if sub.status == SubscriptionStatus::Cancelled {
                let at_now = OrgRef {
                    subscription: sub,
                    ..org.clone()
                };
                return self.close_cancelled_org(&at_now, at, grace, report).await;
            }
            if sub.current_period.end > cutoff {
                return Ok(());
            }
            let period = sub.current_period;
            let schedule = schedule_of(Some(&sub));
            let then = subscription_at_start(&sub, &period);
            // Counted only if this pass is the one that closes the period.
            let mut rolled = AggregateReport::default();
            let next = next_term(&sub, &schedule, period.end, at, &mut rolled)?;
            let plans = self.plans(&org.tenant).await?;
            let plan = plans
                .iter()
                .find(|p| p.name == then.plan)
                .cloned()
                .ok_or_else(|| {
                    tracing::error!(tenant = %org.tenant, plan = %then.plan, "plan of an org invoice does not exist");
                    Error::NotFound("plan")
                })?;
            // Issue 18 (late org events): the period's counter and the org's pending
            // adjustments, closed only if neither changed since this read (an event racing
            // the close is billed here or as an adjustment, once); a racing event makes the
            // close read again.
            let mut closed = OrgClose::Changed;
            let mut invoice = None;
            for _ in 0..CLOSE_ATTEMPTS {
                let state = self
                    .store
                    .org_billing_state(&org.tenant, &org.org, period.start)
                    .await?;
                let (built, charge) = self
                    .org_invoice(
                        org,
                        &subscriber,
                        period,
                        bills_subscription(&then, &period).then_some(&then),
                        &plan,
                        &state,
                        at,
                    )
                    .await?;
                closed = self
                    .store
                    .close_org_period_billed(
                        &org.org,
                        &built,
                        &next,
                        sub.version,
                        &state,
                        charge.as_ref(),
                    )
                    .await?;
                invoice = Some(built);
                if closed == OrgClose::Closed {
                    break;
                }
                // Another pass or an admin write changed the subscription: the next pass
                // goes on from what it is now.
                let now = self
                    .store
                    .get_org_subscription(&org.tenant, &org.org)
                    .await?;
                if now.is_none_or(|s| s.version != sub.version) {
                    return Ok(());
                }
            }
            let Some(invoice) = invoice.filter(|_| closed == OrgClose::Closed) else {
                tracing::warn!(tenant = %org.tenant, org = %org.org, period = %period.start, "org period kept changing; the next pass closes it");
                return Ok(());
            };
            match closed {
                OrgClose::Closed => {
                    report.invoices_created += 1;
                    report.subscriptions_renewed += rolled.subscriptions_renewed;
                    report.downgrades_applied += rolled.downgrades_applied;
                    report.subscriptions_ended += rolled.subscriptions_ended;
                    self.deliver_invoice(&invoice).await;
                    sub = next;
                }
                // Another pass or an admin write changed it: the next pass goes on.
                OrgClose::Changed => return Ok(()),
            }
        }
        Ok(())
    }
}

impl Meter {
    /// The org's invoice of `period` from its billing `state` (its pooled usage and the
    /// pending adjustments; `subscription` when the base is billed), with its wallet's
    /// credit and what the late events it bills drew (`org_late_draws`): what an org close
    /// (and a cancelled org's, `org_cancelled`) writes.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn org_invoice(
        &self,
        org: &OrgRef,
        subscriber: &UserId,
        period: crate::periods::Period,
        subscription: Option<&crate::domain::Subscription>,
        plan: &crate::limits::Plan,
        state: &crate::store::OrgBillingState,
        at: DateTime<Utc>,
    ) -> Result<(crate::domain::Invoice, Option<crate::store::InvoiceCharge>)> {
        // One payer per call: less what members' own invoices bill (read after the state,
        // whose version every such call changes, so the close does not pass on a mix).
        let scope = crate::budgets::Scope::Org {
            org_id: org.org.clone(),
        };
        let usage = self
            .billed_usage(&org.tenant, scope, period.start, &state.usage)
            .await?;
        let mut built = billing::build_invoice(
            &InvoiceInput {
                tenant: &org.tenant,
                user: subscriber,
                period,
                subscription,
                plan,
                usage: &usage,
                adjustments: &state.adjustments,
                created_at: at,
            },
            format!("inv_{}", uuid::Uuid::now_v7().simple()),
        )
        .map_err(|e| {
            tracing::error!(error = %e, "org invoice cannot be computed");
            Error::Internal
        })?;
        built.user = org_subscriber(&org.org);
        built.extra.insert("org_id".to_owned(), org.org.to_string());
        // Issue 19: the org wallet's credit, taken in the close's write (org_wallets).
        let charge = self
            .invoice_credits_with(
                &org.tenant,
                crate::credits::Subscriber::Org(org.org.clone()),
                plan,
                &mut built,
                &period,
                None,
                state.late_draws,
                at,
            )
            .await?;
        Ok((built, charge))
    }
}
