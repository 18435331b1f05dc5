//! The Rust client against a real `meter serve` (each test starts its own).

mod support;

use std::str::FromStr;
use std::time::Duration;

use meter_client::{
    AlertsQuery, Amount, CheckRequest, Error, GuardError, GuardOptions, Meter, OnUnavailable,
    QuoteRequest, Units, Usage, UsageEvent,
};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use support::{user, CountingServer, DroppingProxy, MeterServer};

fn meter(s: &MeterServer) -> Meter {
    Meter::new(&s.base, &s.service_key).unwrap()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn openai_chat() -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}}],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 200}, "completion_tokens_details": {"reasoning_tokens": 50}}})
}

fn openai_responses() -> Value {
    json!({"id": "resp_1", "object": "response", "model": "gpt-4o-mini", "output": [],
        "usage": {"input_tokens": 900, "output_tokens": 100, "total_tokens": 1000,
            "input_tokens_details": {"cached_tokens": 300, "cache_write_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 20}}})
}

fn anthropic() -> Value {
    json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "Hello"}],
        "usage": {"input_tokens": 100, "output_tokens": 40, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 500}})
}

fn gemini() -> Value {
    json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello"}]}}],
        "usageMetadata": {"promptTokenCount": 2000, "candidatesTokenCount": 300, "cachedContentTokenCount": 500,
            "thoughtsTokenCount": 100, "totalTokenCount": 2400}})
}

/// A provider response type of an SDK: typed, `Serialize`.
#[derive(serde::Serialize)]
struct SdkMessage {
    id: String,
    usage: SdkUsage,
}

#[derive(serde::Serialize)]
struct SdkUsage {
    input_tokens: u64,
    output_tokens: u64,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

#[tokio::test]
async fn an_allowed_check_reports_remaining_and_holds_a_reservation() {
    let s = MeterServer::start();
    let m = meter(&s);
    let u = user();
    let free = m
        .check(
            CheckRequest::new(&u, "gemini-2.5-flash")
                .provider("gemini")
                .estimate(100, 0),
        )
        .await
        .unwrap();
    assert!(free.allowed && !free.unavailable);
    assert_eq!(free.plan.as_deref(), Some("free"));
    assert_eq!(free.reservation_id, None);
    assert_eq!(free.remaining["calls:gemini"], Amount::Count(100));
    assert_eq!(free.remaining["cost_usd"], Amount::Usd(dec("2")));

    let held = m
        .check(
            CheckRequest::new(&u, "gemini-2.5-flash")
                .estimate(100, 0)
                .reserve(true),
        )
        .await
        .unwrap();
    let rid = held.reservation_id.clone().unwrap();
    assert!(held.expires_at.unwrap() > chrono::Utc::now());
    assert_eq!(held.remaining["calls:gemini"], Amount::Count(99));
    assert_eq!(
        held.remaining["tokens:gemini"],
        Amount::Count(100_000 - 100)
    );
    assert_eq!(held.estimated_cost_usd, Some(dec("0.00003")));

    assert_eq!(m.release(&rid).await.unwrap().status, "released");
    assert_eq!(m.release(&rid).await.unwrap().status, "released");
    let after = m
        .check(CheckRequest::new(&u, "gemini-2.5-flash"))
        .await
        .unwrap();
    assert_eq!(after.remaining["calls:gemini"], Amount::Count(100));
}

#[tokio::test]
async fn a_denied_check_carries_the_429_details() {
    let s = MeterServer::start();
    let m = meter(&s);
    let u = user();
    let Err(Error::LimitExceeded(e)) = m
        .check(CheckRequest::new(&u, "gpt-4o-mini").provider("openai"))
        .await
    else {
        panic!("the Free plan allows no OpenAI call");
    };
    assert_eq!((e.status, e.code.as_str()), (429, "usage_limit_exceeded"));
    assert_eq!(e.metric.as_deref(), Some("calls:openai"));
    assert_eq!(
        (e.used, e.limit, e.requested),
        (
            Some(Amount::Count(0)),
            Some(Amount::Count(0)),
            Some(Amount::Count(1))
        )
    );
    assert_eq!(e.upgrade_to.as_deref(), Some("basic"));
    assert_eq!(
        e.period_resets_at
            .unwrap()
            .format("%d %H:%M:%S")
            .to_string(),
        "01 00:00:00"
    );
    assert!(e.retry_after.unwrap() > 0);

    // A tiny plan: one call, then the next is denied.
    let plan = s
        .put_plan(json!({"calls:gemini": 1, "cost_usd": "5"}))
        .await;
    s.subscribe(&u, &plan).await;
    m.check(CheckRequest::new(&u, "gemini-2.5-flash"))
        .await
        .unwrap();
    let r = m
        .record(vec![UsageEvent::new(&u).model("gemini-2.5-flash").tokens(
            Usage {
                input_tokens: 10,
                output_tokens: 5,
                ..Usage::default()
            },
        )])
        .await
        .unwrap();
    assert_eq!(r.recorded, 1);
    let Err(Error::LimitExceeded(e)) = m.check(CheckRequest::new(&u, "gemini-2.5-flash")).await
    else {
        panic!("the second call is past the limit");
    };
    assert_eq!(e.metric.as_deref(), Some("calls:gemini"));
    assert_eq!(
        (e.used, e.limit, e.requested),
        (
            Some(Amount::Count(1)),
            Some(Amount::Count(1)),
            Some(Amount::Count(1))
        )
    );
}

#[tokio::test]
async fn other_api_errors_carry_code_message_and_details() {
    let s = MeterServer::start();
    let m = meter(&s);
    let Err(Error::Api(e)) = m.release("rsv_does_not_exist").await else {
        panic!()
    };
    assert_eq!((e.status, e.code.as_str()), (404, "not_found"));
    let mut bad = UsageEvent::new(user()).model("gemini-2.5-flash");
    bad.endpoint = Some("x".repeat(300));
    let Err(Error::Api(e)) = m.record(vec![bad]).await else {
        panic!()
    };
    assert_eq!((e.status, e.code.as_str()), (422, "invalid_events"));
    assert!(e.details["events"][0]["errors"].is_array(), "{}", e.details);
    let wrong = Meter::new(&s.base, "mk_not_a_key").unwrap();
    let Err(Error::Api(e)) = wrong.plans().await else {
        panic!()
    };
    assert_eq!((e.status, e.code.as_str()), (401, "unauthorized"));
}

#[tokio::test]
async fn the_guard_records_provider_usage_at_the_quoted_cost() {
    let s = MeterServer::start();
    let m = meter(&s);
    let cases = [
        (
            "gpt-4o-mini",
            "openai",
            openai_chat(),
            openai_chat()["usage"].clone(),
        ),
        (
            "gpt-4o-mini",
            "openai",
            openai_responses(),
            openai_responses()["usage"].clone(),
        ),
        (
            "claude-haiku-4-5",
            "anthropic",
            anthropic(),
            anthropic()["usage"].clone(),
        ),
        (
            "gemini-2.5-flash",
            "gemini",
            gemini(),
            gemini()["usageMetadata"].clone(),
        ),
    ];
    for (model, provider, response, usage_json) in cases {
        let u = user();
        s.subscribe(&u, "pro").await;
        let out = m
            .guard(
                GuardOptions::new(&u, model)
                    .provider(provider)
                    .estimate(2000, 500),
                || async { Ok::<_, std::io::Error>(response.clone()) },
            )
            .await
            .unwrap();
        assert_eq!(out.response, response);
        assert!(out.check.reservation_id.is_some());
        assert_eq!(out.record.recorded, 1, "{model}");
        let quote = m
            .quote(
                QuoteRequest::new(model)
                    .provider(provider)
                    .usage(usage_json),
            )
            .await
            .unwrap();
        assert!(quote.priced && quote.cost_usd.unwrap() > Decimal::ZERO);
        assert_eq!(
            out.record.events[0].cost_usd, quote.cost_usd,
            "{model}: {response}"
        );
        let view = m.usage(&u, None).await.unwrap();
        assert_eq!(
            (view.total_calls, Some(view.total_cost)),
            (1, quote.cost_usd)
        );
        assert_eq!(s.event_ids(&u).await, vec![out.event_id.clone()]);
        assert_eq!(
            uuid::Uuid::parse_str(&out.event_id)
                .unwrap()
                .get_version_num(),
            7
        );
        let rid = out.check.reservation_id.unwrap();
        assert_eq!(m.release(&rid).await.unwrap().status, "settled");
    }

    // A typed SDK response (Serialize) is read the same way.
    let u = user();
    s.subscribe(&u, "pro").await;
    let out = m
        .guard(GuardOptions::new(&u, "claude-haiku-4-5"), || async {
            Ok::<_, std::io::Error>(SdkMessage {
                id: "msg_2".into(),
                usage: SdkUsage {
                    input_tokens: 100,
                    output_tokens: 40,
                    cache_read_input_tokens: Some(1000),
                    cache_creation_input_tokens: None,
                },
            })
        })
        .await
        .unwrap();
    assert_eq!(out.response.id, "msg_2");
    assert_eq!(out.usage.unwrap().input_tokens, 1100);
}

#[tokio::test]
async fn a_failing_call_releases_its_reservation() {
    let s = MeterServer::start();
    let m = meter(&s);
    let u = user();
    let before = m
        .check(CheckRequest::new(&u, "gemini-2.5-flash"))
        .await
        .unwrap()
        .remaining;
    let during = std::sync::Mutex::new(None);
    let r = m
        .guard(
            GuardOptions::new(&u, "gemini-2.5-flash").estimate(5000, 1000),
            || async {
                let now = m
                    .check(CheckRequest::new(&u, "gemini-2.5-flash"))
                    .await
                    .unwrap()
                    .remaining;
                *during.lock().unwrap() = Some(now);
                Err::<Value, _>(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "provider timed out",
                ))
            },
        )
        .await;
    let Err(GuardError::Call(e)) = r else {
        panic!("the call's error comes back")
    };
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    let held = during.into_inner().unwrap().unwrap();
    assert_eq!(
        held["tokens:gemini"],
        Amount::Count(before["tokens:gemini"].count().unwrap() - 6000)
    );
    assert_eq!(
        m.check(CheckRequest::new(&u, "gemini-2.5-flash"))
            .await
            .unwrap()
            .remaining,
        before
    );
    assert_eq!(m.usage(&u, None).await.unwrap().total_calls, 0);
}

#[tokio::test]
async fn usage_without_a_usage_object_explicit_usage_and_units() {
    let s = MeterServer::start();
    let m = meter(&s);
    let u = user();
    let before = m
        .check(CheckRequest::new(&u, "gemini-2.5-flash"))
        .await
        .unwrap()
        .remaining;
    let r = m
        .guard(
            GuardOptions::new(&u, "gemini-2.5-flash").estimate(10, 0),
            || async { Ok::<_, std::io::Error>(json!({"text": "no usage"})) },
        )
        .await;
    assert!(matches!(r, Err(GuardError::Meter(Error::Usage(_)))));
    assert_eq!(
        m.check(CheckRequest::new(&u, "gemini-2.5-flash"))
            .await
            .unwrap()
            .remaining,
        before
    );

    let counts = Usage {
        input_tokens: 100,
        output_tokens: 10,
        cached_input_tokens: 40,
        ..Usage::default()
    };
    let out = m
        .guard_with_usage(GuardOptions::new(&u, "gemini-2.5-flash"), || async {
            Ok::<_, std::io::Error>(("a streamed answer".to_owned(), counts))
        })
        .await
        .unwrap();
    assert_eq!(out.response, "a streamed answer");
    let q = m
        .quote(QuoteRequest::new("gemini-2.5-flash").tokens(counts))
        .await
        .unwrap();
    assert_eq!(out.record.events[0].cost_usd, q.cost_usd);

    let search = GuardOptions::for_provider(&u, "tavily").units(Units {
        searches: Some(1),
        ..Units::default()
    });
    let out = m
        .guard(search, || async {
            Ok::<_, std::io::Error>(json!({"results": []}))
        })
        .await
        .unwrap();
    assert_eq!(out.record.events[0].cost_usd, Some(dec("0.008")));
    assert_eq!(
        m.usage(&u, None).await.unwrap().provider_breakdown["tavily"].calls,
        1
    );
}

#[tokio::test]
async fn a_dropped_answer_is_retried_under_the_same_id_and_counted_once() {
    let s = MeterServer::start();
    let proxy = DroppingProxy::start(s.base.clone()).await;
    let m = Meter::new(&proxy.base, &s.service_key).unwrap();
    let u = user();
    let out = m
        .guard(
            GuardOptions::new(&u, "gemini-2.5-flash").estimate(2000, 0),
            || async { Ok::<_, std::io::Error>(gemini()) },
        )
        .await
        .unwrap();
    use std::sync::atomic::Ordering::SeqCst;
    assert_eq!(
        (proxy.dropped.load(SeqCst), proxy.usage_posts.load(SeqCst)),
        (1, 2)
    );
    assert_eq!(out.record.recorded, 0);
    assert_eq!(out.record.events[0].status, "duplicate");
    assert_eq!(s.event_ids(&u).await, vec![out.event_id]);
    assert_eq!(s.usage_calls(&u).await, 1);
}

#[tokio::test]
async fn deny_fails_when_meter_is_stopped_and_keeps_usage_of_a_call_that_ran() {
    let mut s = MeterServer::start();
    let m = Meter::builder(&s.base, &s.service_key)
        .timeout(Duration::from_millis(500))
        .max_retries(0)
        .retry_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let u = user();
    // meter goes away while the provider answers: the usage is queued, not lost.
    let stopper = std::sync::Mutex::new(&mut s);
    let out = m
        .guard(
            GuardOptions::new(&u, "gemini-2.5-flash").estimate(10, 0),
            || async {
                stopper.lock().unwrap().stop();
                Ok::<_, std::io::Error>(gemini())
            },
        )
        .await
        .unwrap();
    let s = stopper.into_inner().unwrap();
    assert_eq!(out.record.queued, 1);
    assert_eq!(m.pending(), 1);

    let mut ran = false;
    let r = m
        .guard(GuardOptions::new(&u, "gemini-2.5-flash"), || async {
            ran = true;
            Ok::<_, std::io::Error>(gemini())
        })
        .await;
    assert!(matches!(r, Err(GuardError::Meter(Error::Unavailable(_)))));
    assert!(!ran);
    let Err(Error::Unavailable(e)) = m
        .record(vec![UsageEvent::new(&u).model("gemini-2.5-flash")])
        .await
    else {
        panic!()
    };
    assert_eq!(e.events.len(), 1);
    assert_eq!(m.pending(), 1);

    s.resume();
    assert_eq!(m.flush().await.unwrap(), 1);
    assert_eq!(m.pending(), 0);
    assert_eq!(s.event_ids(&u).await, vec![out.event_id]);
    m.close().await.unwrap();
}

#[tokio::test]
async fn allow_lets_the_call_go_and_delivers_its_usage_once_after_a_restart() {
    let mut s = MeterServer::start();
    let m = Meter::builder(&s.base, &s.service_key)
        .timeout(Duration::from_millis(500))
        .on_unavailable(OnUnavailable::Allow)
        .max_retries(1)
        .retry_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let u = user();
    s.stop();
    let out = m
        .guard(
            GuardOptions::new(&u, "gemini-2.5-flash").estimate(2000, 0),
            || async { Ok::<_, std::io::Error>(gemini()) },
        )
        .await
        .unwrap();
    assert!(out.check.allowed && out.check.unavailable && out.check.reservation_id.is_none());
    assert_eq!(out.record.queued, 1);
    assert_eq!(m.flush().await.unwrap(), 0);
    assert_eq!(m.pending(), 1);

    s.resume();
    assert_eq!(m.flush().await.unwrap(), 1);
    assert_eq!(m.flush().await.unwrap(), 0);
    m.close().await.unwrap();
    assert_eq!(s.event_ids(&u).await, vec![out.event_id]);
    assert_eq!(s.usage_calls(&u).await, 1);
}

#[tokio::test]
async fn allow_retries_in_the_background_and_the_queue_is_bounded() {
    let mut s = MeterServer::start();
    let m = Meter::builder(&s.base, &s.service_key)
        .timeout(Duration::from_millis(500))
        .on_unavailable(OnUnavailable::Allow)
        .max_retries(0)
        .queue_size(3)
        .retry_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    let u = user();
    s.stop();
    assert!(
        m.check(CheckRequest::new(&u, "gemini-2.5-flash"))
            .await
            .unwrap()
            .unavailable
    );
    let events: Vec<UsageEvent> = (1..=4)
        .map(|n| {
            UsageEvent::new(&u).model("gemini-2.5-flash").tokens(Usage {
                input_tokens: n,
                ..Usage::default()
            })
        })
        .collect();
    let mut kept: Vec<String> = events[1..].iter().map(|e| e.event_id.clone()).collect();
    kept.sort();
    let r = m.record(events).await.unwrap();
    assert_eq!(r.queued, 4);
    assert_eq!((m.pending(), m.dropped()), (3, 1));
    s.resume();
    for _ in 0..300 {
        if m.pending() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(m.pending(), 0);
    m.close().await.unwrap();
    assert_eq!(s.event_ids(&u).await, kept);
}

#[tokio::test]
async fn every_read_route_returns_its_typed_result() {
    let s = MeterServer::start();
    let m = meter(&s);
    let u = user();
    let plan = s.put_plan(json!({"calls:gemini": 1})).await;
    s.subscribe(&u, &plan).await;
    let mut ev = UsageEvent::new(&u).model("gemini-2.5-flash").tokens(Usage {
        input_tokens: 1000,
        output_tokens: 100,
        ..Usage::default()
    });
    ev.latency_ms = Some(120);
    m.record(vec![ev]).await.unwrap();

    let plans = m.plans().await.unwrap();
    for name in ["free", "basic", "pro", "enterprise", plan.as_str()] {
        assert!(plans.iter().any(|p| p.name == name), "{name}");
    }
    let free = plans.iter().find(|p| p.name == "free").unwrap();
    assert_eq!(free.limits["calls:gemini"], Amount::Count(100));
    assert_eq!(free.monthly_price_usd, Decimal::ZERO);

    let pricing = m.pricing(Some("gemini")).await.unwrap();
    let flash = pricing
        .prices
        .iter()
        .find(|p| p.model.as_deref() == Some("gemini-2.5-flash"))
        .unwrap();
    assert_eq!(flash.price("input_token"), Some(dec("0.0000003")));
    assert_eq!(
        m.pricing(Some("no-such-provider"))
            .await
            .unwrap_err()
            .code(),
        Some("unknown_provider")
    );

    let view = m.usage(&u, None).await.unwrap();
    assert_eq!(
        (view.plan.as_str(), view.total_calls, view.total_tokens),
        (plan.as_str(), 1, 1100)
    );
    assert_eq!(
        (view.total_cost, view.usage_status.as_str()),
        (dec("0.00055"), "limit_reached")
    );
    assert_eq!(
        view.provider_breakdown["gemini"].avg_response_time_ms,
        120.0
    );
    let name = view.period.name.clone().unwrap();
    assert_eq!(m.usage(&u, Some(&name)).await.unwrap().total_calls, 1);

    let trends = m.trends(&u, Some(3)).await.unwrap();
    assert_eq!(
        (
            trends.periods.len(),
            trends.total_calls[2],
            trends.total_cost[2]
        ),
        (3, 1, dec("0.00055"))
    );

    let alerts = m.alerts(&u, AlertsQuery::default()).await.unwrap();
    let mut keys: Vec<_> = alerts.alerts.iter().map(|a| a.key.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["calls:gemini@100", "calls:gemini@80", "calls:gemini@90"]
    );
    assert_eq!(alerts.unread_count, 3);
    assert!(m.mark_alert_read(&alerts.alerts[0].id).await.unwrap().read);
    let unread = m
        .alerts(
            &u,
            AlertsQuery {
                unread_only: true,
                limit: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(unread.unread_count, 2);
    let one = m
        .alerts(
            &u,
            AlertsQuery {
                unread_only: false,
                limit: Some(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(one.alerts.len(), 1);

    let dash = m.dashboard(&u).await.unwrap();
    assert_eq!(
        (
            dash.limits.plan_name.as_str(),
            dash.current_usage.total_calls
        ),
        (plan.as_str(), 1)
    );
    assert_eq!(
        (dash.alerts.unread_count, dash.summary.plan.as_str()),
        (2, plan.as_str())
    );

    assert!(m.billing(&u).await.unwrap().invoices.is_empty());
    let sub = m.subscription(&u).await.unwrap();
    assert_eq!(sub.subscription.unwrap().plan, plan);
    assert!(m
        .subscription(&format!("{u}-none"))
        .await
        .unwrap()
        .subscription
        .is_none());

    // Ids with reserved characters reach the right user.
    let odd = format!("team/a+b@x.com:{u}=");
    m.record(vec![UsageEvent::new(&odd).model("gemini-2.5-flash")])
        .await
        .unwrap();
    let v = m.usage(&odd, None).await.unwrap();
    assert_eq!((v.user_id.as_str(), v.total_calls), (odd.as_str(), 1));
}

#[tokio::test]
async fn bad_input_is_refused_before_any_request() {
    for url in [
        "",
        "  ",
        "127.0.0.1:8080",
        "ftp://host",
        "http://",
        "http://host:99999",
        "http://host/?q=1",
        "http://u:p@host",
    ] {
        assert!(
            matches!(Meter::new(url, "mk_key"), Err(Error::InvalidArgument(_))),
            "{url}"
        );
    }
    let zero = Meter::builder("http://127.0.0.1:8080", "mk_key")
        .timeout(Duration::ZERO)
        .build();
    assert!(matches!(zero, Err(Error::InvalidArgument(_))));
    assert!(matches!(
        Meter::new("http://127.0.0.1:8080", " "),
        Err(Error::InvalidArgument(_))
    ));

    let counting = CountingServer::start().await;
    let m = Meter::new(&counting.base, "mk_key").unwrap();
    let mut ran = false;
    let r = m
        .guard(GuardOptions::new("", "gemini-2.5-flash"), || async {
            ran = true;
            Ok::<_, std::io::Error>(gemini())
        })
        .await;
    assert!(matches!(
        r,
        Err(GuardError::Meter(Error::InvalidArgument(_)))
    ));
    assert!(!ran);
    let no_model = GuardOptions {
        user_id: "alice".into(),
        ..GuardOptions::default()
    };
    let r = m
        .guard(no_model, || async { Ok::<_, std::io::Error>(gemini()) })
        .await;
    assert!(matches!(
        r,
        Err(GuardError::Meter(Error::InvalidArgument(_)))
    ));
    let mut team_only = GuardOptions::new("alice", "m");
    team_only.team_id = Some("t".into());
    let r = m
        .guard(team_only, || async { Ok::<_, std::io::Error>(gemini()) })
        .await;
    assert!(matches!(
        r,
        Err(GuardError::Meter(Error::InvalidArgument(_)))
    ));
    assert!(matches!(
        m.check(CheckRequest::new("", "m")).await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        m.record(vec![]).await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        m.record(vec![UsageEvent::new("")]).await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        m.usage("", None).await,
        Err(Error::InvalidArgument(_))
    ));
    m.close().await.unwrap();
    assert_eq!(*counting.connections.lock().unwrap(), 0);

    let dbg = format!(
        "{:?}",
        Meter::new("http://127.0.0.1:8080", "mk_secret_value").unwrap()
    );
    assert!(!dbg.contains("mk_secret_value"));
}

#[test]
fn org_and_team_are_sent_only_when_set() {
    let plain = serde_json::to_value(CheckRequest::new("alice", "m")).unwrap();
    assert_eq!(plain, json!({"user_id": "alice", "model": "m"}));
    let scoped = serde_json::to_value(
        CheckRequest::new("alice", "m")
            .org("acme", Some("search".into()))
            .reserve(true),
    )
    .unwrap();
    assert_eq!(
        (
            scoped["org_id"].as_str(),
            scoped["team_id"].as_str(),
            scoped["reserve"].as_bool()
        ),
        (Some("acme"), Some("search"), Some(true))
    );
    let ev = serde_json::to_value(UsageEvent::new("alice")).unwrap();
    assert!(ev.get("org_id").is_none() && ev.get("team_id").is_none());
}

#[tokio::test]
async fn org_and_team_scope_the_check_the_usage_and_the_quote() {
    let s = MeterServer::start();
    let m = meter(&s);
    let u = user();
    let org = format!("org-{u}");
    s.admin(
        reqwest::Method::PUT,
        &format!("/budgets/{org}-red-rate"),
        Some(
            json!({"scope": {"kind": "team", "org_id": org, "team_id": "red"},
                    "limits": {"calls:*": 2}, "window": "minute", "mode": "hard"}),
        ),
    )
    .await;
    let red = || CheckRequest::new(&u, "gemini-2.5-flash").org(&org, Some("red".into()));
    for _ in 0..2 {
        assert!(m.check(red()).await.unwrap().allowed);
    }
    let Err(Error::LimitExceeded(e)) = m.check(red()).await else {
        panic!("team red allows 2 calls a minute");
    };
    assert_eq!(e.metric.as_deref(), Some("calls:*"));
    assert_eq!(
        (e.used, e.limit),
        (Some(Amount::Count(2)), Some(Amount::Count(2)))
    );
    assert_eq!(
        e.details["scope"],
        json!({"kind": "team", "org_id": org, "team_id": "red"})
    );
    assert_eq!(e.details["budget_id"], json!(format!("{org}-red-rate")));
    assert!((1..=60).contains(&e.retry_after.unwrap()));
    // Another team of the org is not limited by red's budget.
    assert!(
        m.check(CheckRequest::new(&u, "gemini-2.5-flash").org(&org, Some("blue".into())))
            .await
            .unwrap()
            .allowed
    );
    let mut ev = UsageEvent::new(&u).model("gemini-2.5-flash").tokens(Usage {
        input_tokens: 10,
        ..Usage::default()
    });
    ev.org_id = Some(org.clone());
    ev.team_id = Some("red".into());
    assert_eq!(m.record(vec![ev]).await.unwrap().recorded, 1);
    let mut q = QuoteRequest::new("gemini-2.5-flash").tokens(Usage {
        input_tokens: 10,
        ..Usage::default()
    });
    q.org_id = Some(org.clone());
    assert!(m.quote(q).await.unwrap().cost_usd.unwrap() > Decimal::ZERO);
    // The org's reads count the event (routes the client does not wrap yet).
    let usage = s
        .admin(reqwest::Method::GET, &format!("/org/{org}/usage"), None)
        .await;
    assert_eq!(usage["total_calls"], 1, "{usage}");
    let members = s
        .admin(reqwest::Method::GET, &format!("/org/{org}/members"), None)
        .await;
    assert_eq!(members["users"][0]["user_id"], json!(u));
    assert_eq!(members["teams"][0]["team_id"], "red");
}
