//! A period's draw sums (`PeriodDrawsStore`, issue 19): written with each drawing event,
//! exactly, once per event id (racing redeliveries and duplicates add nothing), per
//! period, read strongly consistent (the prepaid invoice's credit figure).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use meter_core::credits::{GrantKind, GrantRequest, Subscriber};
use meter_core::domain::{GrantId, TenantId, UsageEvent, UserId};
use meter_core::periods::Period;
use meter_core::store::{GrantInsert, PeriodDraws, RecordOutcome, Store};
use rust_decimal::Decimal;

use crate::fixtures::*;

fn spend(
    t: &TenantId,
    u: &UserId,
    id: &str,
    cost: &str,
    at: DateTime<Utc>,
    period: DateTime<Utc>,
) -> UsageEvent {
    let mut e = meter_core::testing::event(t, u, id, 100, cost);
    e.timestamp = at;
    e.recorded_at = at;
    e.period_start = period;
    e
}

pub async fn period_draws_sum_each_events_draws_once_per_period(store: Arc<dyn Store>) {
    let (t, u) = (tenant(), user("pam"));
    let march_start = at(2025, 3, 1, 0);
    let april_start = at(2025, 4, 1, 0);
    let march = Period {
        start: march_start,
        end: april_start,
    };
    let april = Period {
        start: april_start,
        end: at(2025, 5, 1, 0),
    };
    let g = GrantRequest::new(dec("5"), GrantKind::Purchase)
        .into_grant(GrantId::parse("purchase").unwrap(), at(2025, 3, 1, 0))
        .unwrap();
    assert!(matches!(
        store
            .insert_grant(&t, &Subscriber::User(u.clone()), &g)
            .await
            .unwrap(),
        GrantInsert::Created(_)
    ));
    assert_eq!(
        store.period_draws(&t, &u, &march).await.unwrap(),
        PeriodDraws::default()
    );

    // Ten March events of $0.35, each sent by three racing deliveries: $3.50 drawn.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let e = spend(
            &t,
            &u,
            &format!("m{i}"),
            "0.35",
            at(2025, 3, 10, 12),
            march_start,
        );
        for _ in 0..3 {
            let (store, e) = (store.clone(), e.clone());
            tasks.push(tokio::spawn(async move {
                store.record_events_drawing(&[e], &[]).await.unwrap()
            }));
        }
    }
    let mut recorded = 0;
    for task in tasks {
        recorded += task
            .await
            .unwrap()
            .iter()
            .filter(|o| **o == RecordOutcome::Recorded)
            .count();
    }
    assert_eq!(recorded, 10);
    // $2 more in March: $1.50 left to draw, $0.50 of shortfall; $1 in April: all shortfall.
    let e = spend(&t, &u, "m-big", "2", at(2025, 3, 20, 0), march_start);
    let a = spend(&t, &u, "a-1", "1", at(2025, 4, 2, 0), april_start);
    assert_eq!(
        store
            .record_events_drawing(&[e.clone(), a.clone()], &[])
            .await
            .unwrap(),
        vec![RecordOutcome::Recorded, RecordOutcome::Recorded]
    );
    // Redelivered: nothing more.
    assert_eq!(
        store.record_events_drawing(&[e, a], &[]).await.unwrap(),
        vec![RecordOutcome::Duplicate, RecordOutcome::Duplicate]
    );
    assert_eq!(
        store.period_draws(&t, &u, &march).await.unwrap(),
        PeriodDraws {
            drawn_usd: dec("5"),
            shortfall_usd: dec("0.5"),
            events: 11
        }
    );
    assert_eq!(
        store.period_draws(&t, &u, &april).await.unwrap(),
        PeriodDraws {
            drawn_usd: Decimal::ZERO,
            shortfall_usd: dec("1"),
            events: 1
        }
    );
}
