//! The admin's list of a tenant's orgs (`GET /admin/orgs`, SPEC §14): every org with a
//! subscription record (any status) or noted in a live org member directory (events named
//! it in a period that ended at most a day ago, store::OrgMembersStore), in org-id order.
//! The usage itself is read from the orgs' period counters (service::tenant_orgs).
//!
//! Bounded: the directory part lists only live directories (they expire a day after their
//! period's end), so an org that neither subscribes nor acted lately drops out.

use async_trait::async_trait;

use super::{Page, StoreResult};
use crate::domain::{OrgId, Subscription, TenantId};

/// One org of a tenant as the admin listing reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantOrg {
    pub org: OrgId,
    /// Its subscription record (any status), `None` without one.
    pub subscription: Option<Subscription>,
}

#[async_trait]
pub trait TenantOrgsStore: Send + Sync {
    /// At most `limit` of the tenant's orgs after the org `after`, in org-id order (bytes),
    /// each with its subscription record. `next` is the last org listed when more may
    /// follow. May lag a write by a moment (DynamoDB reads the lists from an index).
    async fn list_tenant_orgs(
        &self,
        tenant: &TenantId,
        after: Option<&OrgId>,
        limit: usize,
    ) -> StoreResult<Page<TenantOrg>>;
}
