//! Issue 18: re-pricing an event that names an org. An event recorded while no price was
//! in force counted its call on the org's counters at $0; when it is priced later, its
//! cost goes to every counter its ingest wrote (the org's pooled `period` counter that
//! the org's invoice bills, the member's and the team's counters), atomically with the
//! pricing and once among racing passes; when the org already invoiced the event's
//! period, the cost is that period's pending org adjustment (billed on the next invoice).

use std::sync::Arc;

use meter_core::budgets::{CounterKey, CounterWrite, Scope, Window};
use meter_core::credits::{GrantKind, GrantRequest, Subscriber};
use meter_core::domain::{GrantId, OrgId, TeamId, TenantId, UsageEvent, UserId};
use meter_core::store::{org_period_counter, GrantInsert, OrgClose, RecordOutcome, Store};
use meter_core::usage::{PeriodUsage, Tally};
use rust_decimal::Decimal;

use crate::fixtures::*;
use crate::orgs::{org_invoice, org_sub, rolled};

fn acme() -> OrgId {
    OrgId::parse("acme").unwrap()
}

fn april() -> chrono::DateTime<chrono::Utc> {
    at(2025, 4, 1, 0)
}

/// The counters an ingest writes for an event of `u` naming acme and its team `core` in
/// March: the org's pooled, the member's and the team's.
fn march_counters(u: &UserId) -> Vec<CounterKey> {
    let org = Scope::Org { org_id: acme() };
    vec![
        org_period_counter(&acme(), march()),
        CounterKey::Member {
            scope: org,
            user: u.clone(),
            window: Window::Period,
            window_start: march(),
        },
        CounterKey::Scope {
            scope: Scope::Team {
                org_id: acme(),
                team_id: TeamId::parse("core").unwrap(),
            },
            window: Window::Period,
            window_start: march(),
        },
    ]
}

fn writes(u: &UserId, provider: &UsageEvent, add: Tally) -> Vec<CounterWrite> {
    march_counters(u)
        .into_iter()
        .map(|counter| CounterWrite {
            counter,
            window_end: april(),
            provider: provider.provider.clone(),
            add: add.clone(),
            held: Tally::default(),
            guards: Vec::new(),
        })
        .collect()
}

/// An event of `u` naming acme and team `core` in March at `cost` (`None`: unpriced).
fn org_event(t: &TenantId, u: &UserId, id: &str, cost: Option<&str>) -> UsageEvent {
    let mut e = UsageEvent {
        org_id: Some(acme()),
        team_id: Some(TeamId::parse("core").unwrap()),
        ..event(t, u, id, 10, cost.unwrap_or("0"))
    };
    if cost.is_none() {
        e.cost_usd = None;
        e.price_version = None;
        e.fingerprint = format!("fp-{id}-unpriced");
    }
    e
}

async fn record(store: &Arc<dyn Store>, e: &UsageEvent) {
    let w = writes(&e.user, e, e.tally());
    assert_eq!(
        store
            .record_events_counted(std::slice::from_ref(e), &[w])
            .await
            .unwrap(),
        vec![RecordOutcome::Recorded]
    );
}

fn recorded(u: &PeriodUsage) -> (u64, Decimal) {
    u.by_provider
        .values()
        .fold((0, Decimal::ZERO), |(c, d), p| {
            (c + p.recorded.calls, d + p.recorded.cost_usd)
        })
}

/// Eight racing passes price `e` at `cost` with the cost-only writes of its counters:
/// exactly one prices it.
async fn price_racing(store: &Arc<dyn Store>, e: &UsageEvent, cost: &str) {
    let add = Tally {
        cost_usd: dec(cost),
        ..Tally::default()
    };
    let w = writes(&e.user, e, add);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, t, id, w) = (
            store.clone(),
            e.tenant.clone(),
            e.event_id.clone(),
            w.clone(),
        );
        let cost = dec(cost);
        tasks.push(tokio::spawn(async move {
            store
                .price_event_counted(&t, &id, cost, "gemini@v2", None, &w)
                .await
                .unwrap()
        }));
    }
    let mut wins = 0;
    for task in tasks {
        wins += usize::from(task.await.unwrap());
    }
    assert_eq!(wins, 1, "one pass prices {}", e.event_id.as_str());
}

/// A $1 purchase in `wallet`, from March 1.
async fn fund(store: &Arc<dyn Store>, t: &TenantId, wallet: &Subscriber, grant_id: &str) {
    let g = GrantRequest::new(dec("1"), GrantKind::Purchase)
        .into_grant(GrantId::parse(grant_id).unwrap(), at(2025, 3, 1, 0))
        .unwrap();
    assert!(matches!(
        store.insert_grant(t, wallet, &g).await.unwrap(),
        GrantInsert::Created(_)
    ));
}

/// Records `e` (unpriced) with `wallet` as its payer.
async fn record_paying(store: &Arc<dyn Store>, u: &UserId, e: &UsageEvent, wallet: &Subscriber) {
    let w = writes(u, e, e.tally());
    assert_eq!(
        store
            .record_events_paying(std::slice::from_ref(e), &[w], &[Some(wallet.clone())])
            .await
            .unwrap(),
        vec![RecordOutcome::Recorded]
    );
}

/// Eight racing passes price `e` at `cost`, paid by `wallet`: how many priced it.
async fn price_paying_racing(
    store: &Arc<dyn Store>,
    u: &UserId,
    e: &UsageEvent,
    cost: &str,
    wallet: &Subscriber,
) -> usize {
    let add = Tally {
        cost_usd: dec(cost),
        ..Tally::default()
    };
    let cost_writes = writes(u, e, add);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, t, id, w, wallet, cost) = (
            store.clone(),
            e.tenant.clone(),
            e.event_id.clone(),
            cost_writes.clone(),
            wallet.clone(),
            dec(cost),
        );
        tasks.push(tokio::spawn(async move {
            store
                .price_event_counted(&t, &id, cost, "gemini@v2", Some(&wallet), &w)
                .await
                .unwrap()
        }));
    }
    let mut wins = 0;
    for task in tasks {
        wins += usize::from(task.await.unwrap());
    }
    wins
}

pub async fn repricing_an_org_event_adds_its_cost_to_the_orgs_counters_once(store: Arc<dyn Store>) {
    let t = tenant();
    let ann = user("ann");
    let sub = org_sub(&t, &acme());
    store
        .put_org_subscription(&acme(), &sub, None)
        .await
        .unwrap();
    record(&store, &org_event(&t, &ann, "orp-priced", Some("0.25"))).await;
    let unpriced = org_event(&t, &ann, "orp-1", None);
    record(&store, &unpriced).await;
    let state = store.org_billing_state(&t, &acme(), march()).await.unwrap();
    assert_eq!(
        recorded(&state.usage),
        (2, dec("0.25")),
        "unpriced: its call only"
    );

    price_racing(&store, &unpriced, "0.40").await;
    let state = store.org_billing_state(&t, &acme(), march()).await.unwrap();
    assert_eq!(
        recorded(&state.usage),
        (2, dec("0.65")),
        "the org's invoice bills the cost"
    );
    assert!(state.adjustments.is_empty(), "{:?}", state.adjustments);
    let counters = store
        .get_budget_counters(&t, &march_counters(&ann))
        .await
        .unwrap();
    for (key, c) in march_counters(&ann).iter().zip(&counters) {
        assert_eq!(recorded(c), (2, dec("0.65")), "{key:?}");
    }
    // The user's own counters are priced as before.
    assert_eq!(
        recorded(&march_usage(&store, &t, &ann).await),
        (2, dec("0.65"))
    );
    // Pricing it again changes nothing.
    let again = store
        .price_event_counted(
            &t,
            &unpriced.event_id,
            dec("9"),
            "gemini@v3",
            None,
            &writes(&ann, &unpriced, Tally::default()),
        )
        .await
        .unwrap();
    assert!(!again);
    let state = store.org_billing_state(&t, &acme(), march()).await.unwrap();
    assert_eq!(recorded(&state.usage), (2, dec("0.65")));
}

pub async fn repricing_an_org_event_of_an_invoiced_period_is_one_org_adjustment(
    store: Arc<dyn Store>,
) {
    let t = tenant();
    let ann = user("ann");
    let sub = org_sub(&t, &acme());
    store
        .put_org_subscription(&acme(), &sub, None)
        .await
        .unwrap();
    let unpriced = org_event(&t, &ann, "orp-late", None);
    record(&store, &unpriced).await;
    // March is invoiced with the event at $0.
    let state = store.org_billing_state(&t, &acme(), march()).await.unwrap();
    assert_eq!(recorded(&state.usage), (1, Decimal::ZERO));
    let inv = org_invoice(&sub, &acme(), "79");
    assert_eq!(
        store
            .close_org_period_billed(&acme(), &inv, &rolled(&sub), sub.version, &state, None)
            .await
            .unwrap(),
        OrgClose::Closed
    );

    price_racing(&store, &unpriced, "0.30").await;
    let next = rolled(&sub);
    let april_state = store.org_billing_state(&t, &acme(), april()).await.unwrap();
    assert_eq!(
        april_state.adjustments.len(),
        1,
        "{:?}",
        april_state.adjustments
    );
    let adj = &april_state.adjustments[&march()];
    assert_eq!((adj.events, adj.cost_usd), (1, dec("0.30")));
    // March's counter itself shows the cost (the org's usage reads).
    let march_now = store.org_billing_state(&t, &acme(), march()).await.unwrap();
    assert_eq!(recorded(&march_now.usage), (1, dec("0.30")));

    // April's close bills it once: nothing is pending after it.
    let mut after = next.clone();
    after.current_period.end = at(2025, 5, 1, 0);
    let mut inv = org_invoice(&after, &acme(), "79.30");
    inv.adjustments_usd = adj.cost_usd;
    assert_eq!(
        store
            .close_org_period_billed(
                &acme(),
                &inv,
                &rolled(&after),
                after.version,
                &april_state,
                None
            )
            .await
            .unwrap(),
        OrgClose::Closed
    );
    let may = store
        .org_billing_state(&t, &acme(), at(2025, 5, 1, 0))
        .await
        .unwrap();
    assert!(may.adjustments.is_empty(), "{:?}", may.adjustments);
}

/// An org's prepaid wallet pays for the re-priced event in the same write that counts it
/// on the org's counters: racing passes draw and count once.
pub async fn repricing_an_org_event_an_org_wallet_pays_draws_and_counts_once(
    store: Arc<dyn Store>,
) {
    let t = tenant();
    let ann = user("ann");
    let wallet = Subscriber::Org(acme());
    let sub = org_sub(&t, &acme());
    store
        .put_org_subscription(&acme(), &sub, None)
        .await
        .unwrap();
    fund(&store, &t, &wallet, "acme-credit").await;
    let unpriced = org_event(&t, &ann, "orp-paid", None);
    record_paying(&store, &ann, &unpriced, &wallet).await;
    assert_eq!(
        price_paying_racing(&store, &ann, &unpriced, "0.40", &wallet).await,
        1,
        "one pass prices it"
    );
    let got = store.get_wallet(&t, &wallet).await.unwrap();
    assert_eq!(got.grants[0].remaining_usd, dec("0.60"), "drawn once");
    let draws = store.wallet_draws(&t, &wallet, None).await.unwrap();
    assert_eq!(draws.len(), 1, "{draws:?}");
    assert_eq!(draws[0].cost_usd, dec("0.40"));
    let state = store.org_billing_state(&t, &acme(), march()).await.unwrap();
    assert_eq!(recorded(&state.usage), (1, dec("0.40")), "counted once");
    let counters = store
        .get_budget_counters(&t, &march_counters(&ann))
        .await
        .unwrap();
    for (key, c) in march_counters(&ann).iter().zip(&counters) {
        assert_eq!(recorded(c), (1, dec("0.40")), "{key:?}");
    }
}

/// A prepaid org's event re-priced after the org's period was invoiced: its draw goes
/// with its adjustment (org_late_draws), so the invoice that bills the adjustment
/// credits what it drew, as a late recorded event's draw is.
pub async fn repricing_a_prepaid_org_event_of_an_invoiced_period_draws_as_a_late_event(
    store: Arc<dyn Store>,
) {
    let t = tenant();
    let ann = user("ann");
    let wallet = Subscriber::Org(acme());
    let sub = org_sub(&t, &acme());
    store
        .put_org_subscription(&acme(), &sub, None)
        .await
        .unwrap();
    fund(&store, &t, &wallet, "acme-late").await;
    let unpriced = org_event(&t, &ann, "orp-late-paid", None);
    record_paying(&store, &ann, &unpriced, &wallet).await;
    let state = store.org_billing_state(&t, &acme(), march()).await.unwrap();
    let inv = org_invoice(&sub, &acme(), "79");
    assert_eq!(
        store
            .close_org_period_billed(&acme(), &inv, &rolled(&sub), sub.version, &state, None)
            .await
            .unwrap(),
        OrgClose::Closed
    );

    assert_eq!(
        price_paying_racing(&store, &ann, &unpriced, "0.30", &wallet).await,
        1,
        "one pass prices it"
    );
    let got = store.get_wallet(&t, &wallet).await.unwrap();
    assert_eq!(got.grants[0].remaining_usd, dec("0.70"), "drawn once");
    let april_state = store.org_billing_state(&t, &acme(), april()).await.unwrap();
    let adj = &april_state.adjustments[&march()];
    assert_eq!((adj.events, adj.cost_usd), (1, dec("0.30")));
    assert_eq!(
        (
            april_state.late_draws.drawn_usd,
            april_state.late_draws.shortfall_usd,
            april_state.late_draws.events
        ),
        (dec("0.30"), Decimal::ZERO, 1),
        "the draw goes with its adjustment"
    );
}
