//! `meter migrate`, the late org events' part (docs/dynamodb.md "Org subscriptions",
//! docs/operations.md): an org whose periods were invoiced by a build before the late
//! event layout has no `OB` (its `billed_to`) on its pooled counter item, so an event
//! naming it dated in an invoiced period passes the event's condition
//! (`attribute_not_exists(OB) OR …`) and adds to the closed period's counter, which no
//! invoice reads again: it would never be billed.
//!
//! Every org subscription is visited (the aggregation's listing, all tenants); for an org
//! with invoices, one conditional `UpdateItem` sets `OB` to its latest invoice's period end
//! under `attribute_not_exists(OB)`: a close of this build (which sets `OB` itself) or a
//! second or racing run wins, and nothing moves `OB` back. An org without invoices needs
//! none. A finished pass sets the job cursor [`JOB`] to `done` and later runs skip it.

use chrono::{DateTime, Utc};

use super::budget_counters::{counter_pk, item_ttl, place_of, COUNTER_SK};
use super::codec::n;
use super::expressions::Update;
use super::layout;
use super::migrate::MigrationReport;
use super::DynamoStore;
use crate::domain::{OrgId, TenantId};
use crate::store::{org_period_counter, InvoiceStore, OrgStore, StoreResult};

/// The job cursor of this part of the migration.
pub const JOB: &str = "migrate-18-org-billed-to";
const DONE: &str = "done";
const PAGE: usize = 100;

impl DynamoStore {
    /// Runs this part unless a finished run marked it done; `true` when it ran.
    pub(super) async fn migrate_org_billed_to(
        &self,
        report: &mut MigrationReport,
    ) -> StoreResult<bool> {
        if self.get_job_cursor(JOB).await?.as_deref() == Some(DONE) {
            return Ok(false);
        }
        let mut cursor = None;
        loop {
            let page = self.list_org_subscriptions(cursor.take(), PAGE).await?;
            for org in &page.items {
                let latest = self
                    .list_org_invoices(&org.tenant, &org.org)
                    .await?
                    .into_iter()
                    .map(|i| i.period.end)
                    .max();
                if let Some(end) = latest {
                    if self.set_org_billed_to(&org.tenant, &org.org, end).await? {
                        report.orgs_billed_to_set += 1;
                    }
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        self.put_job_cursor(JOB, Some(DONE)).await?;
        Ok(true)
    }

    /// Sets `OB` on the org's pooled counter item unless it has one; `true` if this run
    /// set it.
    async fn set_org_billed_to(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        end: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (item, _) = place_of(&org_period_counter(org, DateTime::<Utc>::UNIX_EPOCH).key())?;
        let mut u = Update::new();
        u.set("OB", n(end.timestamp()));
        u.condition(|x| format!("attribute_not_exists({})", x.name("OB")));
        // As the close writes it: the counter item's `ttl` from now.
        u.set(layout::TTL, item_ttl());
        Ok(self
            .update(counter_pk(tenant, &item), COUNTER_SK, &u, false)
            .await?
            .is_ok())
    }
}
