//! Crash consistency (issue 9): the real `meter serve` is killed with SIGKILL while
//! concurrent ingest and reservations are in flight, restarted on the same SQLite file
//! (three times), every request that got no 200 is retried, and the export route then
//! shows, per user: every event sent stored exactly once, counters equal to the sum of the
//! stored events, holds equal to the open reservations, and every acknowledged reservation
//! in the state its last acknowledged request left it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use meter_core::domain::{ProviderId, Reservation, ReservationStatus, UsageEvent};
use meter_core::usage::{PeriodUsage, ProviderUsage, Tally};
use serde_json::{json, Value};

use common::{serve, Server};

const ADMIN_KEY: &str = "mk_crash_test_admin_key_0123456789abcdef";
const USERS: [&str; 6] = [
    "crash-a", "crash-b", "crash-c", "crash-d", "crash-e", "crash-f",
];
const INGEST_WORKERS: usize = 8;
const RESERVE_WORKERS: usize = 4;
/// SIGKILLs (each followed by a restart on the same file).
const KILLS: usize = 3;
/// Events acknowledged between two kills, so that every kill lands mid-load.
const EVENTS_PER_ROUND: usize = 150;

/// Starts `meter serve` on `db` and a free loopback port.
fn start(db: &Path) -> Server {
    serve(&[OsStr::new("--db"), db.as_os_str()], ADMIN_KEY, "error")
}

/// What the final state must show for a reservation whose creation was acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Held,
    Released,
    Settled,
}

/// Everything the clients sent and what they were told.
#[derive(Default)]
struct Ledger {
    /// Every event id sent, by user (each is retried until acknowledged).
    sent: BTreeMap<String, BTreeSet<String>>,
    /// Events in `POST /usage` answers of 200.
    acked_events: usize,
    /// Bodies of `POST /usage` that got no 200.
    unacked_usage: Vec<Value>,
    /// Reserving `POST /check` bodies that got no 200.
    unacked_reserves: Vec<Value>,
    /// Releases that got no 200.
    unacked_releases: Vec<String>,
    /// Reservations whose creation was acknowledged, by id.
    reservations: BTreeMap<String, Expect>,
    /// Answers by status (0: no answer, the connection failed).
    statuses: BTreeMap<u16, usize>,
}

struct Load {
    client: reqwest::Client,
    base: RwLock<String>,
    ledger: Mutex<Ledger>,
    stop: AtomicBool,
}

impl Load {
    /// POSTs `body`; the status and body of a 200, or the status (0 = no answer) otherwise.
    async fn post(&self, path: &str, body: &Value) -> Result<Value, u16> {
        let url = format!("{}{path}", self.base.read().unwrap());
        let answer = self
            .client
            .post(url)
            .bearer_auth(ADMIN_KEY)
            .json(body)
            .send()
            .await;
        let status = match answer {
            Ok(r) if r.status().as_u16() == 200 => match r.json::<Value>().await {
                Ok(v) => {
                    *self.ledger.lock().unwrap().statuses.entry(200).or_default() += 1;
                    return Ok(v);
                }
                // The connection died while the body was read: not an acknowledgement.
                Err(_) => 0,
            },
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        *self
            .ledger
            .lock()
            .unwrap()
            .statuses
            .entry(status)
            .or_default() += 1;
        Err(status)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

fn event(id: &str, user: &str, seq: usize) -> Value {
    let (provider, model) = if seq % 5 == 0 {
        ("openai", "gpt-4o-mini")
    } else {
        ("gemini", "gemini-2.5-flash")
    };
    let mut e = json!({
        "event_id": id, "user_id": user, "provider": provider, "model": model,
        "input_tokens": 100 + seq % 900, "output_tokens": 10 + seq % 300,
        "latency_ms": 50 + seq % 500,
    });
    if seq % 7 == 0 {
        e["status_code"] = json!(502);
    }
    e
}

/// Sends unique events, one at a time or in batches of five, round-robin over the users.
async fn ingest_worker(load: Arc<Load>, worker: usize) {
    let mut seq = 0;
    while !load.stopped() {
        seq += 1;
        let user = USERS[(worker + seq) % USERS.len()];
        let n = if seq % 4 == 0 { 5 } else { 1 };
        let events: Vec<Value> = (0..n)
            .map(|i| event(&format!("w{worker}-{seq}-{i}"), user, seq * 5 + i))
            .collect();
        {
            let mut l = load.ledger.lock().unwrap();
            let sent = l.sent.entry(user.to_owned()).or_default();
            sent.extend(
                events
                    .iter()
                    .map(|e| e["event_id"].as_str().unwrap().to_owned()),
            );
        }
        let body = if n == 1 {
            events[0].clone()
        } else {
            json!({ "events": events })
        };
        match load.post("/api/subscription/usage", &body).await {
            Ok(_) => load.ledger.lock().unwrap().acked_events += n,
            Err(_) => {
                load.ledger.lock().unwrap().unacked_usage.push(body);
                // The server may be down: do not spin.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Reserves, then leaves the hold open, releases it, or settles it with an event.
async fn reserve_worker(load: Arc<Load>, worker: usize) {
    let mut seq = 0;
    while !load.stopped() {
        seq += 1;
        let user = USERS[(worker * 3 + seq) % USERS.len()];
        let check = json!({"user_id": user, "provider": "gemini", "model": "gemini-2.5-flash",
                           "estimated_input_tokens": 200 + seq % 50, "estimated_output_tokens": 100,
                           "reserve": true});
        let id = match load.post("/api/subscription/check", &check).await {
            Ok(v) => v["data"]["reservation_id"].as_str().unwrap().to_owned(),
            Err(_) => {
                load.ledger.lock().unwrap().unacked_reserves.push(check);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        match seq % 3 {
            0 => {
                load.ledger
                    .lock()
                    .unwrap()
                    .reservations
                    .insert(id, Expect::Held);
            }
            1 => {
                let path = format!("/api/subscription/reservations/{id}/release");
                let answer = load.post(&path, &json!({})).await;
                let mut l = load.ledger.lock().unwrap();
                l.reservations.insert(id.clone(), Expect::Released);
                if answer.is_err() {
                    l.unacked_releases.push(id);
                }
            }
            _ => {
                let mut e = event(&format!("r{worker}-{seq}"), user, seq);
                e["provider"] = json!("gemini");
                e["model"] = json!("gemini-2.5-flash");
                e["reservation_id"] = json!(id);
                load.ledger
                    .lock()
                    .unwrap()
                    .sent
                    .entry(user.to_owned())
                    .or_default()
                    .insert(e["event_id"].as_str().unwrap().to_owned());
                let answer = load.post("/api/subscription/usage", &e).await;
                let mut l = load.ledger.lock().unwrap();
                l.reservations.insert(id, Expect::Settled);
                match answer {
                    Ok(_) => l.acked_events += 1,
                    Err(_) => l.unacked_usage.push(e),
                }
            }
        }
    }
}

/// Waits until `n` more events are acknowledged than `from`.
async fn wait_for_acks(load: &Load, from: usize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while load.ledger.lock().unwrap().acked_events < from + n {
        assert!(Instant::now() < deadline, "the load made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Retries until a 200 (the final server is up; only a transient failure is tolerated).
async fn retry(load: &Load, path: &str, body: &Value) -> Value {
    for _ in 0..50 {
        match load.post(path, body).await {
            Ok(v) => return v,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("{path} never answered 200 for {body}");
}

fn add(a: &mut Tally, b: &Tally) {
    a.calls += b.calls;
    a.tokens += b.tokens;
    a.cost_usd += b.cost_usd;
}

/// Checks one user's export against what was sent; returns (events, open reservations).
fn audit_user(user: &str, export: &Value, ledger: &Ledger) -> (usize, usize) {
    let events: Vec<UsageEvent> = serde_json::from_value(export["events"].clone()).unwrap();
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "{user}: an event is stored twice");
    let sent: BTreeSet<&str> = ledger.sent[user].iter().map(String::as_str).collect();
    let missing: Vec<_> = sent.difference(&unique).collect();
    let unknown: Vec<_> = unique.difference(&sent).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "{user}: events sent (and retried until acknowledged) missing {missing:?}, events never sent {unknown:?}"
    );

    let reservations: Vec<Reservation> =
        serde_json::from_value(export["reservations"].clone()).unwrap();
    let mut expected: BTreeMap<(DateTime<Utc>, ProviderId), ProviderUsage> = BTreeMap::new();
    for e in &events {
        let p = expected
            .entry((e.period_start, e.provider.clone()))
            .or_default();
        add(&mut p.recorded, &e.tally());
        p.unpriced_calls += u64::from(e.cost_usd.is_none());
        p.estimated_calls += u64::from(e.estimated);
        p.error_calls += u64::from(e.status_code.is_some_and(|s| s >= 400));
        if let Some(l) = e.latency_ms {
            p.latency_ms_sum += l;
            p.latency_count += 1;
        }
    }
    let mut open = 0;
    for r in &reservations {
        let want = ledger.reservations.get(&r.id).copied();
        let got = match r.status {
            ReservationStatus::Held => Expect::Held,
            ReservationStatus::Released => Expect::Released,
            ReservationStatus::Settled => Expect::Settled,
            ReservationStatus::Expired => panic!("{user}: {} expired within the test", r.id),
        };
        // A reservation whose answer was lost in the crash is open: nobody knows its id.
        assert_eq!(
            got,
            want.unwrap_or(Expect::Held),
            "{user}: reservation {}",
            r.id
        );
        if r.status == ReservationStatus::Held {
            open += 1;
            let p = expected
                .entry((r.period_start, r.provider.clone()))
                .or_default();
            add(&mut p.held, &r.held);
        }
    }
    for (id, _) in ledger
        .reservations
        .iter()
        .filter(|(id, _)| Reservation::user_of_id(id).is_some_and(|u| u.as_str() == user))
    {
        assert!(
            reservations.iter().any(|r| &r.id == id),
            "{user}: acknowledged reservation {id} is lost"
        );
    }

    let mut actual: BTreeMap<(DateTime<Utc>, ProviderId), ProviderUsage> = BTreeMap::new();
    for p in export["periods"].as_array().unwrap() {
        let start: DateTime<Utc> = serde_json::from_value(p["period_start"].clone()).unwrap();
        let usage: PeriodUsage = serde_json::from_value(p["usage"].clone()).unwrap();
        for (provider, u) in usage.by_provider {
            if u != ProviderUsage::default() {
                actual.insert((start, provider), u);
            }
        }
    }
    expected.retain(|_, u| *u != ProviderUsage::default());
    assert_eq!(
        actual, expected,
        "{user}: counters differ from the stored events and open holds"
    );
    (events.len(), open)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_load_loses_no_acknowledged_work_and_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meter.db");
    let mut server = start(&db);
    let load = Arc::new(Load {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        base: RwLock::new(server.base.clone()),
        ledger: Mutex::new(Ledger::default()),
        stop: AtomicBool::new(false),
    });
    // Enterprise has no call or token limits: every reservation is allowed.
    for user in USERS {
        let path = format!("/api/subscription/user/{user}/subscription");
        let r = load
            .client
            .put(format!("{}{path}", server.base))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"plan": "enterprise"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }

    let mut workers = Vec::new();
    for w in 0..INGEST_WORKERS {
        workers.push(tokio::spawn(ingest_worker(load.clone(), w)));
    }
    for w in 0..RESERVE_WORKERS {
        workers.push(tokio::spawn(reserve_worker(load.clone(), w)));
    }
    for _ in 0..KILLS {
        let from = load.ledger.lock().unwrap().acked_events;
        wait_for_acks(&load, from, EVENTS_PER_ROUND).await;
        // SIGKILL (Child::kill on unix): no graceful shutdown, no flush.
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        server = start(&db);
        *load.base.write().unwrap() = server.base.clone();
    }
    let from = load.ledger.lock().unwrap().acked_events;
    wait_for_acks(&load, from, EVENTS_PER_ROUND).await;
    load.stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    // Retry every request that got no 200, with the same body (and so the same event ids).
    let (usage, reserves, releases) = {
        let mut l = load.ledger.lock().unwrap();
        (
            std::mem::take(&mut l.unacked_usage),
            std::mem::take(&mut l.unacked_reserves),
            std::mem::take(&mut l.unacked_releases),
        )
    };
    for body in &usage {
        retry(&load, "/api/subscription/usage", body).await;
    }
    for body in &reserves {
        let v = retry(&load, "/api/subscription/check", body).await;
        let id = v["data"]["reservation_id"].as_str().unwrap().to_owned();
        load.ledger
            .lock()
            .unwrap()
            .reservations
            .insert(id, Expect::Held);
    }
    for id in &releases {
        let path = format!("/api/subscription/reservations/{id}/release");
        let v = retry(&load, &path, &json!({})).await;
        assert_eq!(v["data"]["status"], "released", "{v}");
    }

    let ledger = std::mem::take(&mut *load.ledger.lock().unwrap());
    let (mut events, mut open) = (0, 0);
    for user in USERS {
        let export: Value = load
            .client
            .get(format!(
                "{}/api/subscription/user/{user}/export",
                server.base
            ))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (e, o) = audit_user(user, &export["data"], &ledger);
        events += e;
        open += o;
    }
    let sent: usize = ledger.sent.values().map(BTreeSet::len).sum();
    eprintln!(
        "crash test: {KILLS} SIGKILLs; {sent} events sent, {events} stored; retried {} usage \
         requests, {} reserves, {} releases; {} reservations acknowledged, {open} open; answers {:?}",
        usage.len(),
        reserves.len(),
        releases.len(),
        ledger.reservations.len(),
        ledger.statuses
    );
    assert_eq!(events, sent);
    assert!(
        !usage.is_empty(),
        "no request was cut by a kill: the test did not test a crash"
    );
}
