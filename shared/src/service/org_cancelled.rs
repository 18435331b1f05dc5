//! A cancelled org's pending adjustments (issue 18, docs/billing.md "Org invoices and late
//! events"). Late events of an org become adjustments that its next invoice bills; an org
//! whose subscription is cancelled has no next period to close, so, as for a user without
//! a subscription, the **last ended period** of its schedule carries them, when it is not
//! invoiced yet: one invoice without a base, billing that period's pooled usage (not
//! billed by anyone else: the org was cancelled — also when no adjustment is pending,
//! e.g. the calls of the period it was cancelled in at once) and the adjustments, its prepaid credit
//! as any org invoice's (the late draws included, `org_late_draws`). The close is the
//! org close's write (the invoice once per period, the subscription's version and the
//! billing state as read), so racing passes bill them once; it moves the org's
//! `billed_to` past that period, so later passes find nothing until new adjustments and
//! a later ended period.

use chrono::{DateTime, Duration, Utc};

use super::aggregate::AggregateReport;
use super::{Error, Meter, Result};
use crate::domain::UserId;
use crate::store::{OrgClose, OrgRef};
use crate::subscriptions::schedule_of;

/// Attempts at closing while racing events keep changing the state.
const CLOSE_ATTEMPTS: usize = 8;

fn period_err(e: crate::periods::PeriodError) -> Error {
    tracing::error!(error = %e, "period arithmetic failed closing a cancelled org");
    Error::Internal
}

impl Meter {
    /// Invoices a cancelled org's last ended period — its pooled usage and the pending
    /// adjustments (see the module); nothing when it has neither or is invoiced already.
    pub(super) async fn close_cancelled_org(
        &self,
        org: &OrgRef,
        at: DateTime<Utc>,
        grace: Duration,
        report: &mut AggregateReport,
    ) -> Result<()> {
        let sub = &org.subscription;
        let schedule = schedule_of(Some(sub));
        let current = schedule.period_containing(at - grace).map_err(period_err)?;
        let period = schedule.previous(&current).map_err(period_err)?;
        let subscriber = UserId::parse(org.org.as_str()).map_err(|_| Error::Internal)?;
        for _ in 0..CLOSE_ATTEMPTS {
            let state = self
                .store
                .org_billing_state(&org.tenant, &org.org, period.start)
                .await?;
            // Pooled usage of the period (the calls made before the cancellation) or
            // pending adjustments: billed once; neither: nothing to invoice.
            let used = state
                .usage
                .by_provider
                .values()
                .any(|p| p.recorded.calls > 0);
            if (!used && state.adjustments.is_empty())
                || state.billed_to.is_some_and(|b| period.start < b)
            {
                return Ok(());
            }
            let plans = self.plans(&org.tenant).await?;
            let plan = plans
                .iter()
                .find(|p| p.name == sub.plan)
                .cloned()
                .ok_or_else(|| {
                    tracing::error!(tenant = %org.tenant, plan = %sub.plan, "plan of an org invoice does not exist");
                    Error::NotFound("plan")
                })?;
            let (built, charge) = self
                .org_invoice(org, &subscriber, period, None, &plan, &state, at)
                .await?;
            // The subscription stays cancelled; its version moves (racing passes: once).
            let mut next = sub.clone();
            next.version = sub.version + 1;
            next.updated_at = at;
            let closed = self
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
            if closed == OrgClose::Closed {
                report.invoices_created += 1;
                self.deliver_invoice(&built).await;
                return Ok(());
            }
            let now = self
                .store
                .get_org_subscription(&org.tenant, &org.org)
                .await?;
            if now.is_none_or(|s| s.version != sub.version) {
                return Ok(());
            }
        }
        tracing::warn!(tenant = %org.tenant, org = %org.org, period = %period.start, "a cancelled org's state kept changing; the next pass bills its adjustments");
        Ok(())
    }
}
