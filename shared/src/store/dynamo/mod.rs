//! The DynamoDB adapter: one table, single-table design (docs/dynamodb.md).
//!
//! The heart of it is one USER STATE item per (tenant, user) holding the subscription,
//! the counters of every period (period-qualified attribute names), the open
//! reservations and the fired alert keys. So a check reads one item, a reservation is
//! one conditional `UpdateItem`, and recording events is one `TransactWriteItems`
//! (event items + one state update + one update per daily rollup).

use aws_sdk_dynamodb::Client;

mod alerts;
mod billing;
mod catalog;
mod codec;
mod counters;
mod errors;
mod expressions;
mod items;
pub mod layout;
mod privacy;
mod recording;
mod request_counter;
mod requests;
mod schema;
mod subscriptions;
mod tenants;
mod usage;

/// The former name of [`layout`], kept for callers outside the store.
pub use layout as keys;
pub use request_counter::{counting_client, RequestCounter};
pub use schema::create_table;

/// A client configured from the environment, exactly as in production: region,
/// credentials and `AWS_ENDPOINT_URL` (a local emulator) come from the usual AWS settings.
pub async fn client_from_env() -> Client {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Client::new(&config)
}

/// The storage port on one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// A store whose client counts its requests (per operation) in the returned counter.
    pub fn with_request_counter(
        sdk_config: &aws_config::SdkConfig,
        table: impl Into<String>,
    ) -> (Self, RequestCounter) {
        let (client, counter) = counting_client(sdk_config);
        (Self::new(client, table), counter)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::{NaiveDate, Utc};
    use rust_decimal::Decimal;

    use super::billing::BillingVersion;
    use super::codec::{n, s};
    use super::expressions::Expr;
    use super::layout;
    use super::requests::{decode_cursor, encode_cursor, key};
    use super::usage::{day_of, guard_attr, guard_bound, guard_holds};
    use crate::domain::ProviderId;
    use crate::limits::Metric;
    use crate::store::Guard;
    use crate::usage::Tally;
    use rust_decimal_macros::dec;

    fn guard(limit: Decimal, increment: Decimal, strict: bool) -> Guard {
        Guard {
            metric: Metric::CostUsd,
            increment,
            limit,
            strict,
        }
    }

    #[test]
    fn guard_bounds_are_limit_minus_increment_or_fail_without_a_write() {
        // (limit, increment, strict) -> bound
        let table = [
            (dec!(60), dec!(1), false, Some(dec!(59))),
            (dec!(1), dec!(1), false, Some(dec!(0))),
            (dec!(0), dec!(1), false, None),
            (dec!(0), dec!(0), false, Some(dec!(0))),
            (dec!(0.35), dec!(0), true, Some(dec!(0.35))),
            (dec!(0), dec!(0), true, None),
            (dec!(0.40), dec!(0.40), true, None),
        ];
        for (limit, inc, strict, want) in table {
            assert_eq!(
                guard_bound(&guard(limit, inc, strict)),
                want,
                "{limit} {inc} {strict}"
            );
        }
    }

    #[test]
    fn guard_holds_matches_the_stored_condition() {
        assert!(guard_holds(&guard(dec!(60), dec!(1), false), dec!(59)));
        assert!(!guard_holds(&guard(dec!(60), dec!(1), false), dec!(60)));
        assert!(!guard_holds(&guard(dec!(0.35), dec!(0), true), dec!(0.35)));
        assert!(guard_holds(&guard(dec!(0.35), dec!(0), true), dec!(0.34)));
    }

    #[test]
    fn guards_compare_the_provider_or_total_used_counter() {
        let p = chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 3, 1, 0, 0, 0).unwrap();
        let gemini = ProviderId::parse("gemini").unwrap();
        assert_eq!(
            guard_attr(p, &Metric::Calls(Some(gemini))),
            "c|2025-03-01T00:00:00Z|calls_used|gemini"
        );
        assert_eq!(
            guard_attr(p, &Metric::Tokens(None)),
            "c|2025-03-01T00:00:00Z|tokens_used|*"
        );
        assert_eq!(
            guard_attr(p, &Metric::CostUsd),
            "c|2025-03-01T00:00:00Z|cost_used|*"
        );
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_rejected() {
        let k = HashMap::from([
            ("PK".to_owned(), s("T#a#U#b")),
            ("SUBS_PK".to_owned(), s("SUBS")),
        ]);
        assert_eq!(decode_cursor(&encode_cursor(&k).unwrap()).unwrap(), k);
        assert!(decode_cursor("not a cursor!").is_err());
    }

    #[test]
    fn billing_versions_round_trip_and_foreign_text_is_rejected() {
        let v = BillingVersion {
            billed_to: Some(layout::billed_to(
                chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 4, 1, 0, 0, 0).unwrap(),
            )),
            writes: dec!(7),
            adjv: dec!(2),
        };
        assert_eq!(v.text(), "2025-04-01T00:00:00.000000000Z|7|2");
        assert_eq!(BillingVersion::parse(&v.text()), Some(v));
        let none = BillingVersion {
            billed_to: None,
            writes: Decimal::ZERO,
            adjv: Decimal::ZERO,
        };
        assert_eq!(none.text(), "-|0|0");
        assert_eq!(BillingVersion::parse("-|0|0"), Some(none));
        for bad in ["", "-|0", "-|0|0|0", "-|x|0", "v3"] {
            assert_eq!(BillingVersion::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn billing_version_condition_requires_each_part_unchanged() {
        let p = chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 3, 1, 0, 0, 0).unwrap();
        let v = BillingVersion {
            billed_to: None,
            writes: dec!(3),
            adjv: Decimal::ZERO,
        };
        let mut x = Expr::default();
        assert_eq!(
            v.condition(&mut x, p),
            "attribute_not_exists(#n0) AND #n1 = :v0 AND (attribute_not_exists(#n2) OR #n2 = :v1)"
        );
        let names = x.names().unwrap();
        assert_eq!(names["#n0"], "billed_to");
        assert_eq!(names["#n1"], "w|2025-03-01T00:00:00Z");
        assert_eq!(names["#n2"], "adjv");
    }

    #[test]
    fn daily_rollup_items_read_back_per_provider() {
        let mut item = key("T#a#U#b", "D#2025-03-05");
        item.insert("calls|openai".into(), n(2));
        item.insert("tokens|openai".into(), n(70));
        item.insert("cost|openai".into(), n("0.25"));
        let d = day_of(&item).unwrap();
        assert_eq!(d.day, NaiveDate::from_ymd_opt(2025, 3, 5).unwrap());
        let t = &d.by_provider[&ProviderId::parse("openai").unwrap()];
        assert_eq!(
            *t,
            Tally {
                calls: 2,
                tokens: 70,
                cost_usd: dec!(0.25)
            }
        );
    }
}

/// The request budget, against the emulator:
/// `scripts/with-moto cargo test -p meter-core --lib store::dynamo -- --ignored`.
#[cfg(test)]
mod budget {
    use super::*;
    use crate::domain::ModelId;
    use crate::domain::{
        EventId, ProviderId, Reservation, ReservationStatus, TenantId, UsageEvent, UserId,
    };
    use crate::limits::Metric;
    use crate::store::{Guard, RecordOutcome, ReserveOutcome, UsageStore};
    use crate::usage::Tally;
    use crate::usage::UsageCounts;
    use chrono::TimeZone;
    use chrono::{DateTime, Utc};
    use rust_decimal::Decimal;
    use rust_decimal_macros::dec;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, d, h, 0, 0).unwrap()
    }

    fn event(t: &TenantId, u: &UserId, id: &str) -> UsageEvent {
        UsageEvent {
            tenant: t.clone(),
            user: u.clone(),
            event_id: EventId::parse(id).unwrap(),
            fingerprint: format!("fp-{id}"),
            provider: ProviderId::parse("gemini").unwrap(),
            model: Some(ModelId::parse("gemini-2.5-flash").unwrap()),
            timestamp: at(10, 12),
            period_start: at(1, 0),
            counts: UsageCounts {
                input_tokens: 10,
                ..UsageCounts::default()
            },
            cost_usd: Some(dec!(0.0000001)),
            price_version: None,
            estimated: false,
            endpoint: None,
            status_code: Some(200),
            latency_ms: None,
            reservation_id: None,
            metadata: None,
            recorded_at: at(10, 12),
        }
    }

    fn only(counter: &RequestCounter, op: &str) {
        let taken: Vec<_> = counter.take().into_iter().collect();
        assert_eq!(taken, vec![(op.to_owned(), 1)]);
    }

    #[tokio::test]
    #[ignore = "needs the emulator: run through scripts/with-moto with --ignored"]
    async fn check_reads_one_item_reserve_is_one_update_and_events_one_transaction() {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let table = format!("meter-budget-{}", uuid::Uuid::new_v4().simple());
        let (store, counter) = DynamoStore::with_request_counter(&config, table.clone());
        create_table(store.client(), &table).await.unwrap();
        let (t, u) = (
            TenantId::parse("acme").unwrap(),
            UserId::parse("alice").unwrap(),
        );
        counter.take();

        store.get_user_usage(&t, &u, &|_| at(1, 0)).await.unwrap();
        only(&counter, "GetItem");

        let r = Reservation {
            id: Reservation::new_id(&u),
            tenant: t.clone(),
            user: u.clone(),
            provider: ProviderId::parse("gemini").unwrap(),
            period_start: at(1, 0),
            held: Tally {
                calls: 1,
                tokens: 10,
                cost_usd: dec!(0.01),
            },
            status: ReservationStatus::Held,
            created_at: at(10, 12),
            expires_at: at(10, 13),
        };
        let guard = Guard {
            metric: Metric::Calls(None),
            increment: Decimal::ONE,
            limit: dec!(5),
            strict: false,
        };
        assert_eq!(
            store.reserve(&r, &[guard]).await.unwrap(),
            ReserveOutcome::Reserved
        );
        only(&counter, "UpdateItem");

        let out = store.record_events(&[event(&t, &u, "one")]).await.unwrap();
        assert_eq!(out, vec![RecordOutcome::Recorded]);
        only(&counter, "TransactWriteItems");

        let batch: Vec<_> = (0..40).map(|i| event(&t, &u, &format!("b-{i}"))).collect();
        let out = store.record_events(&batch).await.unwrap();
        assert!(out.iter().all(|o| *o == RecordOutcome::Recorded));
        only(&counter, "TransactWriteItems");

        let usage = store
            .get_user_usage(&t, &u, &|_| at(1, 0))
            .await
            .unwrap()
            .usage;
        let gemini = &usage.by_provider[&ProviderId::parse("gemini").unwrap()];
        assert_eq!(
            gemini.recorded,
            Tally {
                calls: 41,
                tokens: 410,
                cost_usd: dec!(0.0000041)
            }
        );
        assert_eq!(gemini.held, r.held);
    }
}

/// The request budget of the billing methods, against the emulator:
/// `scripts/with-moto cargo test -p meter-core --lib store::dynamo -- --ignored`.
#[cfg(test)]
mod billing_budget {
    use super::*;
    use crate::domain::{EventId, ProviderId, TenantId, UsageEvent, UserId};
    use crate::domain::{Invoice, InvoiceStatus, ModelId, PlanName};
    use crate::periods::Period;
    use crate::store::{BillingState, CloseOutcome, InvoiceStore, SubscriptionStore};
    use crate::store::{RecordOutcome, UsageStore};
    use crate::usage::UsageCounts;
    use chrono::TimeZone;
    use chrono::{DateTime, Utc};
    use rust_decimal::Decimal;
    use rust_decimal_macros::dec;
    use std::collections::BTreeMap;

    fn at(m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, m, d, 0, 0, 0).unwrap()
    }

    fn event(t: &TenantId, u: &UserId, id: &str, cost: Option<Decimal>) -> UsageEvent {
        UsageEvent {
            tenant: t.clone(),
            user: u.clone(),
            event_id: EventId::parse(id).unwrap(),
            fingerprint: format!("fp-{id}"),
            provider: ProviderId::parse("gemini").unwrap(),
            model: Some(ModelId::parse("gemini-2.5-flash").unwrap()),
            timestamp: at(3, 10),
            period_start: at(3, 1),
            counts: UsageCounts {
                input_tokens: 10,
                ..UsageCounts::default()
            },
            cost_usd: cost,
            price_version: None,
            estimated: false,
            endpoint: None,
            status_code: Some(200),
            latency_ms: None,
            reservation_id: None,
            metadata: None,
            recorded_at: at(3, 10),
        }
    }

    fn invoice(s: &BillingState) -> Invoice {
        let month = chrono::Datelike::month(&s.period_start);
        let adjustments: Decimal = s.adjustments.values().map(|a| a.cost_usd).sum();
        Invoice {
            id: uuid::Uuid::new_v4().to_string(),
            tenant: s.tenant.clone(),
            user: s.user.to_string(),
            period: Period {
                start: s.period_start,
                end: at(month + 1, 1),
            },
            plan: PlanName::free(),
            base_usd: Decimal::ZERO,
            usage_usd: Decimal::ZERO,
            overage_usd: Decimal::ZERO,
            proration_usd: Decimal::ZERO,
            adjustments_usd: adjustments,
            total_usd: adjustments,
            line_items: Vec::new(),
            status: InvoiceStatus::Pending,
            created_at: at(month + 1, 1),
            published: false,
            extra: Default::default(),
        }
    }

    fn took(counter: &RequestCounter, want: &[(&str, u64)]) {
        let want: BTreeMap<String, u64> = want.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
        assert_eq!(counter.take(), want);
    }

    #[tokio::test]
    #[ignore = "needs the emulator: run through scripts/with-moto with --ignored"]
    async fn billing_methods_stay_within_their_request_budget() {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let table = format!("meter-budget-{}", uuid::Uuid::new_v4().simple());
        let (store, counter) = DynamoStore::with_request_counter(&config, table.clone());
        create_table(store.client(), &table).await.unwrap();
        let (t, u) = (
            TenantId::parse("acme").unwrap(),
            UserId::parse("alice").unwrap(),
        );
        store
            .record_events(&[
                event(&t, &u, "priced", Some(dec!(1))),
                event(&t, &u, "unpriced", None),
            ])
            .await
            .unwrap();
        counter.take();

        let users = store.list_users(None, 10).await.unwrap();
        assert_eq!(users.items.len(), 1);
        took(&counter, &[("Query", 1)]);
        let unpriced = store.unpriced_events(None, 10).await.unwrap();
        assert_eq!(unpriced.items.len(), 1);
        took(&counter, &[("Query", 1)]);

        let state = store.billing_state(&t, &u, at(3, 1)).await.unwrap();
        took(&counter, &[("GetItem", 1)]);
        let inv = invoice(&state);
        assert_eq!(
            store.close_period(&inv, &state).await.unwrap(),
            CloseOutcome::Closed
        );
        took(&counter, &[("TransactWriteItems", 1)]);

        // A late event: the common-path transaction fails, one read, one retry.
        store
            .record_events(&[event(&t, &u, "late", Some(dec!(0.5)))])
            .await
            .unwrap();
        took(&counter, &[("GetItem", 1), ("TransactWriteItems", 2)]);

        let id = EventId::parse("unpriced").unwrap();
        assert!(store.price_event(&t, &id, dec!(2), "v1").await.unwrap());
        took(&counter, &[("GetItem", 2), ("TransactWriteItems", 1)]);
        let april = store.billing_state(&t, &u, at(4, 1)).await.unwrap();
        assert_eq!(
            april.adjustments[&at(3, 1)],
            crate::store::Adjustment {
                events: 2,
                cost_usd: dec!(2.5)
            }
        );
        assert_eq!(april.billed_to, Some(at(4, 1)));
        counter.take();

        assert_eq!(
            store.unpublished_invoices(10).await.unwrap(),
            vec![inv.clone()]
        );
        took(&counter, &[("Query", 1)]);
        store.mark_invoice_published(&inv).await.unwrap();
        took(&counter, &[("UpdateItem", 1)]);
        assert!(store.unpublished_invoices(10).await.unwrap().is_empty());
        counter.take();

        store.put_job_cursor("aggregate", Some("c1")).await.unwrap();
        took(&counter, &[("PutItem", 1)]);
        assert_eq!(
            store.get_job_cursor("aggregate").await.unwrap().as_deref(),
            Some("c1")
        );
        took(&counter, &[("GetItem", 1)]);
        store.put_job_cursor("aggregate", None).await.unwrap();
        took(&counter, &[("DeleteItem", 1)]);
    }

    /// Closes the period starting in `month`, reading the state again while it changes.
    async fn close(store: &DynamoStore, t: &TenantId, u: &UserId, month: u32) -> Invoice {
        loop {
            let s = store.billing_state(t, u, at(month, 1)).await.unwrap();
            let inv = invoice(&s);
            match store.close_period(&inv, &s).await.unwrap() {
                CloseOutcome::Closed => return inv,
                CloseOutcome::Changed => continue,
                CloseOutcome::AlreadyInvoiced => panic!("month {month} closed twice"),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs the emulator: run through scripts/with-moto with --ignored"]
    async fn late_events_racing_closes_are_billed_exactly_once() {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let table = format!("meter-races-{}", uuid::Uuid::new_v4().simple());
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table.clone());
        create_table(store.client(), &table).await.unwrap();
        let (t, u) = (
            TenantId::parse("acme").unwrap(),
            UserId::parse("alice").unwrap(),
        );
        store
            .record_events(&[event(&t, &u, "on-time", Some(dec!(1)))])
            .await
            .unwrap();
        let march = close(&store, &t, &u, 3).await;
        assert_eq!(march.adjustments_usd, Decimal::ZERO);

        // 3 writers × 10 late March events of 0.5 each, while April … August close.
        let mut writers = Vec::new();
        for w in 0..3 {
            let (store, t, u) = (store.clone(), t.clone(), u.clone());
            writers.push(tokio::spawn(async move {
                for i in 0..10 {
                    let e = event(&t, &u, &format!("late-{w}-{i}"), Some(dec!(0.5)));
                    let out = store.record_events(&[e]).await.unwrap();
                    assert_eq!(out, vec![RecordOutcome::Recorded]);
                }
            }));
        }
        let mut billed = Decimal::ZERO;
        for month in 4..=8 {
            billed += close(&store, &t, &u, month).await.adjustments_usd;
        }
        for w in writers {
            w.await.unwrap();
        }
        billed += close(&store, &t, &u, 9).await.adjustments_usd;

        assert_eq!(billed, dec!(15));
        let usage = store
            .get_period_usage(&t, &u, &[at(3, 1)])
            .await
            .unwrap()
            .remove(0);
        let gemini = &usage.by_provider[&ProviderId::parse("gemini").unwrap()];
        assert_eq!(
            (gemini.recorded.calls, gemini.recorded.cost_usd),
            (31, dec!(16))
        );
        let after = store.billing_state(&t, &u, at(10, 1)).await.unwrap();
        assert!(after.adjustments.is_empty(), "{:?}", after.adjustments);
        assert_eq!(store.list_invoices(&t, &u).await.unwrap().len(), 7);
    }
}
