//! SPEC §14: the admin's list of a tenant's orgs (`TenantOrgsStore`): orgs with a
//! subscription record and orgs noted in a member directory, each once, in org-id order
//! (an org id that extends another sorts after it), paged, isolated by tenant.

use std::sync::Arc;

use meter_core::domain::{OrgId, SubscriptionStatus, TenantId, UserId};
use meter_core::periods::Period;
use meter_core::store::{Store, TenantOrg};

use crate::fixtures::*;
use crate::orgs::org_sub;

fn org(name: &str) -> OrgId {
    OrgId::parse(name).unwrap()
}

async fn all_orgs(store: &Arc<dyn Store>, t: &TenantId, limit: usize) -> Vec<TenantOrg> {
    let mut out = Vec::new();
    let mut after: Option<OrgId> = None;
    for _ in 0..20 {
        let page = store
            .list_tenant_orgs(t, after.as_ref(), limit)
            .await
            .unwrap();
        assert!(page.items.len() <= limit);
        out.extend(page.items);
        match page.next {
            Some(n) => after = Some(org(&n)),
            None => return out,
        }
    }
    panic!("paging never ended");
}

pub async fn tenant_orgs_list_subscribed_and_noted_orgs_once_in_id_order(store: Arc<dyn Store>) {
    let t = tenant();
    let other = TenantId::parse("other-co").unwrap();
    let march = Period {
        start: at(2026, 3, 1, 0),
        end: at(2026, 4, 1, 0),
    };
    let ann = UserId::parse("ann").unwrap();
    for (tenant, name) in [(&t, "acme"), (&t, "zeta"), (&other, "bigco")] {
        let o = org(name);
        store
            .put_org_subscription(&o, &org_sub(tenant, &o), None)
            .await
            .unwrap();
    }
    let mut cancelled = org_sub(&t, &org("zeta"));
    cancelled.status = SubscriptionStatus::Cancelled;
    cancelled.version = 2;
    store
        .put_org_subscription(&org("zeta"), &cancelled, Some(1))
        .await
        .unwrap();
    // Noted orgs: acme again (listed once), acme-x (sorts after acme), beta; another
    // tenant's.
    for (tenant, name) in [
        (&t, "acme"),
        (&t, "acme-x"),
        (&t, "beta"),
        (&other, "alpha"),
    ] {
        store
            .note_org_members(tenant, &org(name), &march, std::slice::from_ref(&ann), &[])
            .await
            .unwrap();
    }
    for limit in [1, 2, 3, 100] {
        let all = all_orgs(&store, &t, limit).await;
        let ids: Vec<&str> = all.iter().map(|o| o.org.as_str()).collect();
        assert_eq!(ids, ["acme", "acme-x", "beta", "zeta"], "limit {limit}");
        assert_eq!(
            all[0].subscription.as_ref().map(|s| s.status),
            Some(SubscriptionStatus::Active)
        );
        assert_eq!(all[1].subscription, None);
        assert_eq!(all[2].subscription, None);
        assert_eq!(
            all[3].subscription.as_ref().map(|s| s.status),
            Some(SubscriptionStatus::Cancelled)
        );
    }
    let theirs: Vec<String> = all_orgs(&store, &other, 10)
        .await
        .into_iter()
        .map(|o| o.org.to_string())
        .collect();
    assert_eq!(theirs, ["alpha", "bigco"]);
    let none = store
        .list_tenant_orgs(&TenantId::parse("empty-co").unwrap(), None, 10)
        .await
        .unwrap();
    assert!(none.items.is_empty() && none.next.is_none());
}
