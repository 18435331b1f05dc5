//! [`FaultyStore`](super::FaultyStore) delegates the late-org-event port (issue 18)
//! through the same fault switch.

use chrono::{DateTime, Utc};
use meter_core::domain::{Invoice, OrgId, Subscription, TenantId};
use meter_core::store::{InvoiceCharge, OrgBillingState, OrgBillingStore, OrgClose, StoreResult};

use super::FaultyStore;

#[async_trait::async_trait]
impl OrgBillingStore for FaultyStore {
    async fn org_billing_state(
        &self,
        tenant: &TenantId,
        org: &OrgId,
        period_start: DateTime<Utc>,
    ) -> StoreResult<OrgBillingState> {
        self.call(
            "org_billing_state",
            self.inner.org_billing_state(tenant, org, period_start),
        )
        .await
    }
    async fn close_org_period_billed(
        &self,
        org: &OrgId,
        invoice: &Invoice,
        next: &Subscription,
        expected_version: u64,
        state: &OrgBillingState,
        charge: Option<&InvoiceCharge>,
    ) -> StoreResult<OrgClose> {
        self.call(
            "close_org_period_billed",
            self.inner
                .close_org_period_billed(org, invoice, next, expected_version, state, charge),
        )
        .await
    }
}
