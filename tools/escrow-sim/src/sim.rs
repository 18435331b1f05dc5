//! The discrete-event simulation: closed-loop clients admitting random amounts against one
//! scope's limit through the escrow design, a drainer, and the DynamoDB model, on one
//! simulated clock. Deterministic for a seed: one RNG, one event queue ordered by (time,
//! insertion), no wall clock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::prelude::*;
use serde::Serialize;

use crate::dynamo::{Capacity, Key, Nanos, Request, RequestKind, Response, Table, SECOND};
use crate::escrow::{self, Op, Policy, Step};

const MS: Nanos = 1_000_000;

/// How a request picks its home shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pick {
    /// Uniformly at random, per request.
    Random,
    /// FNV-1a of the user id, mod N (a user always lands on the same shard).
    Hash,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub shards: usize,
    pub seed: u64,
    /// Concurrent closed-loop clients (each sends its next request when the answer came).
    pub clients: usize,
    /// Client `c` acts for user `c mod users`.
    pub users: usize,
    /// The scope's limit L.
    pub limit: Decimal,
    /// Amounts are uniform in [10^-scale, max_amount], at `scale` decimal places.
    pub max_amount: Decimal,
    pub scale: u32,
    /// Percentage of admissions that are events (the shard write inside a transaction).
    pub event_pct: u32,
    pub chunk: Decimal,
    pub adaptive: bool,
    pub probe: usize,
    pub pick: Pick,
    /// Drain stranded allowance back to the pool at the first denial.
    pub drain: bool,
    /// A client stops after this many denials in a row (counted only when a denial is
    /// final: the pool was tight, or there is no drain).
    pub give_up_after: u32,
    pub capacity: Capacity,
    /// Round-trip latency of a request (jittered ±25 %); the item is evaluated half-way.
    pub read_latency: Nanos,
    pub write_latency: Nanos,
    pub transact_latency: Nanos,
    /// Retries of throttled or conflicting requests: attempts, first and largest backoff.
    pub max_attempts: u32,
    pub backoff_base: Nanos,
    pub backoff_cap: Nanos,
    /// An admission whose conditional writes keep failing is abandoned after this many
    /// restarts.
    pub max_restarts: u32,
    /// The simulation stops at this simulated time even if clients are still admitted.
    pub max_time: Nanos,
}

impl Config {
    /// The defaults of the command line.
    pub fn standard(shards: usize, seed: u64) -> Self {
        Config {
            shards,
            seed,
            clients: 256,
            users: 256,
            limit: Decimal::from(2000),
            max_amount: Decimal::new(50_000, 6),
            scale: 6,
            event_pct: 50,
            chunk: Decimal::from(5),
            adaptive: true,
            probe: 2,
            pick: Pick::Random,
            drain: true,
            give_up_after: 3,
            capacity: Capacity {
                wcu_per_s: 1000,
                rcu_per_s: 3000,
                bucket_ms: 100,
                item_bytes: 200,
                tx_lock: MS,
            },
            read_latency: 2 * MS,
            write_latency: 4 * MS,
            transact_latency: 8 * MS,
            max_attempts: 12,
            backoff_base: 5 * MS,
            backoff_cap: SECOND,
            max_restarts: 8,
            max_time: 900 * SECOND,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(1..=99).contains(&self.shards) {
            return Err("shards must be 1..=99 (a drain is one transaction of N + 1 items)".into());
        }
        if self.clients == 0 || self.users == 0 {
            return Err("clients and users must be at least 1".into());
        }
        if self.scale > 12 {
            return Err("scale must be at most 12".into());
        }
        if self.limit <= Decimal::ZERO || self.max_amount <= Decimal::ZERO {
            return Err("limit and max amount must be positive".into());
        }
        if self.max_amount.round_dp(self.scale) != self.max_amount
            || self.limit.round_dp(self.scale) != self.limit
            || self.chunk.round_dp(self.scale) != self.chunk
        {
            return Err(format!(
                "limit, max amount and chunk must have at most {} decimal places",
                self.scale
            ));
        }
        if self.chunk <= Decimal::ZERO {
            return Err("chunk must be positive".into());
        }
        if self.event_pct > 100 {
            return Err("event percentage must be 0..=100".into());
        }
        if self.capacity.wcu_per_s == 0
            || self.capacity.rcu_per_s == 0
            || self.capacity.bucket_ms == 0
        {
            return Err("capacities and the bucket must be positive".into());
        }
        if self.max_attempts == 0 {
            return Err("max attempts must be at least 1".into());
        }
        Ok(())
    }

    fn policy(&self) -> Policy {
        Policy {
            shards: self.shards,
            chunk: self.chunk,
            adaptive: self.adaptive,
            probe: self.probe,
            scale: self.scale,
        }
    }
}

/// What one run showed.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    pub shards: usize,
    pub seed: u64,
    pub clients: usize,
    /// Admissions per simulated second until the first denial (while allowance is left).
    pub ops_per_s: f64,
    pub admitted_ops: u64,
    /// Admissions served by the home shard alone / by a refill from the pool / by taking
    /// from siblings.
    pub admitted_home: u64,
    pub admitted_refill: u64,
    pub admitted_steal: u64,
    pub denials: u64,
    /// Admissions abandoned after `max_attempts` throttled/conflicting tries of one
    /// request, or after `max_restarts`: answered 503, nothing written.
    pub unavailable_ops: u64,
    pub throttled: u64,
    pub conflicts: u64,
    pub condition_failures: u64,
    pub requests_per_op: f64,
    pub wcu_per_op: f64,
    pub rcu_per_op: f64,
    pub drains: u64,
    pub limit: Decimal,
    pub admitted_amount: Decimal,
    /// Σ used over the shard items at the end (must equal `admitted_amount`).
    pub used: Decimal,
    pub within_limit: bool,
    /// Simulated seconds to the first denial (None: none happened).
    pub first_denial_s: Option<f64>,
    pub spend_at_first_denial: Option<Decimal>,
    /// spend at the first denial / L, 6 decimal places (rounded down).
    pub first_denial_fraction: Option<Decimal>,
    /// L − spend at the first denial: allowance stranded in shards (or below one request).
    pub left_at_first_denial: Option<Decimal>,
    /// At the end (every client stopped after denials, drains done).
    pub final_fraction: Decimal,
    pub final_left: Decimal,
    pub end_s: f64,
    /// Every client stopped (the budget ran out) rather than the time limit.
    pub exhausted: bool,
    pub invariant_violations: u64,
    pub first_violation: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum EvKind {
    /// The pending request reaches its items.
    Arrive,
    /// Its answer reaches the actor.
    Deliver,
    /// A backoff ended: send the pending request again.
    Retry,
    /// Start the next admission.
    NextOp,
}

/// Ordered by time, then insertion: deterministic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    at: Nanos,
    seq: u64,
    actor: usize,
    kind: EvKind,
}

#[derive(Default)]
struct Wire {
    request: Option<Request>,
    response: Option<Response>,
    /// Time from evaluation to the answer (the second half of the round trip).
    back: Nanos,
    attempts: u32,
}

struct Client {
    user: u64,
    op: Option<Op>,
    wire: Wire,
    restarts: u32,
    denials_in_a_row: u32,
    stopped: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DrainPhase {
    Idle,
    Read,
    Write,
}

struct Drainer {
    phase: DrainPhase,
    wire: Wire,
    rounds: u32,
}

#[derive(Default)]
struct Tally {
    admitted_ops: u64,
    admitted_home: u64,
    admitted_refill: u64,
    admitted_steal: u64,
    admitted_amount: Decimal,
    denials: u64,
    unavailable: u64,
    drains: u64,
    first_denial: Option<(Nanos, u64, Decimal)>,
}

struct Sim {
    cfg: Config,
    policy: Policy,
    rng: StdRng,
    now: Nanos,
    seq: u64,
    queue: BinaryHeap<Reverse<Event>>,
    table: Table,
    clients: Vec<Client>,
    drainer: Drainer,
    tally: Tally,
}

/// Runs one configuration to the end: every client stopped, or `max_time`.
pub fn run(cfg: &Config) -> Result<Report, String> {
    cfg.validate()?;
    let mut sim = Sim::new(cfg.clone());
    sim.run();
    Ok(sim.report())
}

/// FNV-1a, 64-bit.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Sim {
    fn new(cfg: Config) -> Self {
        // One shard holds the whole limit (today's single item); otherwise the shards start
        // empty and the pool holds L.
        let initial = if cfg.shards == 1 {
            cfg.limit
        } else {
            Decimal::ZERO
        };
        let table = Table::new(cfg.limit, cfg.shards, initial, cfg.capacity.clone());
        let clients = (0..cfg.clients)
            .map(|c| Client {
                user: (c % cfg.users) as u64,
                op: None,
                wire: Wire::default(),
                restarts: 0,
                denials_in_a_row: 0,
                stopped: false,
            })
            .collect();
        Sim {
            policy: cfg.policy(),
            rng: StdRng::seed_from_u64(cfg.seed),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            table,
            clients,
            drainer: Drainer {
                phase: DrainPhase::Idle,
                wire: Wire::default(),
                rounds: 0,
            },
            tally: Tally::default(),
            cfg,
        }
    }

    fn drainer_id(&self) -> usize {
        self.clients.len()
    }

    fn schedule(&mut self, at: Nanos, actor: usize, kind: EvKind) {
        self.seq += 1;
        self.queue.push(Reverse(Event {
            at,
            seq: self.seq,
            actor,
            kind,
        }));
    }

    fn run(&mut self) {
        for c in 0..self.clients.len() {
            // Spread the first requests over the first millisecond.
            let at = self.rng.random_range(0..MS);
            self.schedule(at, c, EvKind::NextOp);
        }
        while let Some(Reverse(ev)) = self.queue.pop() {
            if ev.at > self.cfg.max_time {
                self.now = self.cfg.max_time;
                break;
            }
            self.now = ev.at;
            match ev.kind {
                EvKind::Arrive => self.arrive(ev.actor),
                EvKind::Deliver => self.deliver(ev.actor),
                EvKind::Retry => self.transmit(ev.actor),
                EvKind::NextOp => self.next_op(ev.actor),
            }
        }
    }

    fn wire(&mut self, actor: usize) -> &mut Wire {
        if actor == self.clients.len() {
            &mut self.drainer.wire
        } else {
            &mut self.clients[actor].wire
        }
    }

    fn latency(&mut self, kind: RequestKind) -> Nanos {
        let base = match kind {
            RequestKind::Read => self.cfg.read_latency,
            RequestKind::Write => self.cfg.write_latency,
            RequestKind::Transaction => self.cfg.transact_latency,
        };
        base * 3 / 4 + self.rng.random_range(0..=base / 2)
    }

    /// Sends a new request from `actor`.
    fn send(&mut self, actor: usize, request: Request) {
        let wire = self.wire(actor);
        wire.request = Some(request);
        wire.attempts = 0;
        self.transmit(actor);
    }

    /// (Re)transmits the actor's pending request.
    fn transmit(&mut self, actor: usize) {
        let kind = self.wire(actor).request.as_ref().map(Request::kind);
        let Some(kind) = kind else { return };
        let latency = self.latency(kind);
        let there = latency / 2;
        self.wire(actor).back = latency - there;
        self.schedule(self.now + there, actor, EvKind::Arrive);
    }

    fn arrive(&mut self, actor: usize) {
        let now = self.now;
        let request = self.wire(actor).request.clone();
        let Some(request) = request else { return };
        let response = self.table.execute(now, &request);
        let wire = self.wire(actor);
        wire.response = Some(response);
        let back = wire.back;
        self.schedule(now + back, actor, EvKind::Deliver);
    }

    /// Equal-jitter exponential backoff: half of min(cap, base·2^(attempt−1)) plus a random
    /// part up to the other half.
    fn backoff(&mut self, attempt: u32) -> Nanos {
        let shift = attempt.saturating_sub(1).min(30);
        let ceiling = self
            .cfg
            .backoff_cap
            .min(self.cfg.backoff_base.saturating_mul(1 << shift));
        ceiling / 2 + self.rng.random_range(0..=ceiling / 2)
    }

    fn deliver(&mut self, actor: usize) {
        let Some(response) = self.wire(actor).response.take() else {
            return;
        };
        if matches!(response, Response::Throttled | Response::Conflict) {
            let wire = self.wire(actor);
            wire.attempts += 1;
            let attempts = wire.attempts;
            if attempts >= self.cfg.max_attempts {
                self.wire(actor).request = None;
                if actor == self.drainer_id() {
                    self.drainer.phase = DrainPhase::Idle;
                } else {
                    self.unavailable(actor);
                }
                return;
            }
            let wait = self.backoff(attempts);
            self.schedule(self.now + wait, actor, EvKind::Retry);
            return;
        }
        self.wire(actor).request = None;
        if actor == self.drainer_id() {
            self.drain_step(response);
        } else {
            self.client_step(actor, response);
        }
    }

    fn next_op(&mut self, c: usize) {
        if self.clients[c].stopped {
            return;
        }
        let top = (self.cfg.max_amount * Decimal::from(10u64.pow(self.cfg.scale)))
            .to_u64()
            .unwrap_or(1)
            .max(1);
        let units = self.rng.random_range(1..=top);
        let amount = Decimal::from_i128_with_scale(i128::from(units), self.cfg.scale);
        let in_transaction = self.rng.random_range(0..100) < self.cfg.event_pct;
        let home = match self.cfg.pick {
            Pick::Random => self.rng.random_range(0..self.cfg.shards),
            Pick::Hash => {
                let user = format!("user-{}", self.clients[c].user);
                (fnv1a(user.as_bytes()) % self.cfg.shards as u64) as usize
            }
        };
        let mut op = Op::new(amount, in_transaction, home);
        let first = op.start();
        let client = &mut self.clients[c];
        client.op = Some(op);
        client.restarts = 0;
        self.send(c, first);
    }

    fn unavailable(&mut self, c: usize) {
        self.tally.unavailable += 1;
        self.clients[c].op = None;
        self.schedule(self.now, c, EvKind::NextOp);
    }

    fn client_step(&mut self, c: usize, response: Response) {
        let Some(mut op) = self.clients[c].op.take() else {
            return;
        };
        let step = op.next(&self.policy, &response, &mut self.rng);
        match step {
            Step::Send(request) => {
                self.clients[c].op = Some(op);
                self.send(c, request);
            }
            Step::Restart => {
                let client = &mut self.clients[c];
                client.restarts += 1;
                if client.restarts > self.cfg.max_restarts {
                    self.unavailable(c);
                } else {
                    let first = op.start();
                    client.op = Some(op);
                    self.send(c, first);
                }
            }
            Step::Admitted => {
                let t = &mut self.tally;
                t.admitted_ops += 1;
                t.admitted_amount += op.amount;
                if op.via_home() {
                    t.admitted_home += 1;
                } else if op.via_refill() {
                    t.admitted_refill += 1;
                } else {
                    t.admitted_steal += 1;
                }
                self.clients[c].denials_in_a_row = 0;
                self.schedule(self.now, c, EvKind::NextOp);
            }
            Step::Denied { tight } => {
                self.tally.denials += 1;
                if self.tally.first_denial.is_none() {
                    self.tally.first_denial =
                        Some((self.now, self.tally.admitted_ops, self.table.used()));
                }
                if !tight && self.cfg.drain && self.drainer.phase == DrainPhase::Idle {
                    self.start_drain();
                }
                let client = &mut self.clients[c];
                if tight || !self.cfg.drain {
                    client.denials_in_a_row += 1;
                }
                if client.denials_in_a_row >= self.cfg.give_up_after {
                    client.stopped = true;
                } else {
                    self.schedule(self.now, c, EvKind::NextOp);
                }
            }
        }
    }

    fn start_drain(&mut self) {
        self.drainer.phase = DrainPhase::Read;
        self.drainer.rounds = 0;
        let keys = (0..self.cfg.shards).map(Key::Shard).collect();
        let id = self.drainer_id();
        self.send(id, Request::Read { keys });
    }

    fn drain_step(&mut self, response: Response) {
        let id = self.drainer_id();
        match (self.drainer.phase, response) {
            (DrainPhase::Read, Response::Items(items)) => {
                let shards: Vec<(usize, Decimal)> = items
                    .iter()
                    .filter_map(|(k, it)| match k {
                        Key::Shard(i) => Some((*i, it.free)),
                        Key::Pool => None,
                    })
                    .collect();
                self.drainer.phase = DrainPhase::Write;
                self.send(id, escrow::drain(&shards));
            }
            (DrainPhase::Write, Response::Done) => {
                self.tally.drains += 1;
                self.drainer.phase = DrainPhase::Idle;
            }
            (DrainPhase::Write, Response::ConditionFailed { .. }) => {
                // A shard's free allowance moved since the read: read again (a few times).
                self.drainer.rounds += 1;
                if self.drainer.rounds > 20 {
                    self.drainer.phase = DrainPhase::Idle;
                } else {
                    self.drainer.phase = DrainPhase::Read;
                    let keys = (0..self.cfg.shards).map(Key::Shard).collect();
                    self.send(id, Request::Read { keys });
                }
            }
            _ => self.drainer.phase = DrainPhase::Idle,
        }
    }

    fn report(&self) -> Report {
        let t = &self.tally;
        let s = &self.table.stats;
        let limit = self.cfg.limit;
        let secs = |n: Nanos| n as f64 / SECOND as f64;
        let per_op = |x: u64| {
            if t.admitted_ops == 0 {
                0.0
            } else {
                round(x as f64 / t.admitted_ops as f64, 3)
            }
        };
        let fraction =
            |spent: Decimal| (spent / limit).round_dp_with_strategy(6, RoundingStrategy::ToZero);
        let (until, ops_until) = match t.first_denial {
            Some((at, ops, _)) => (at, ops),
            None => (self.now, t.admitted_ops),
        };
        let used = self.table.used();
        let mut violations = s.violations;
        let mut first_violation = s.violation.clone();
        if used != t.admitted_amount {
            violations += 1;
            first_violation.get_or_insert(format!(
                "Σ used = {used} but the clients were admitted {}",
                t.admitted_amount
            ));
        }
        Report {
            shards: self.cfg.shards,
            seed: self.cfg.seed,
            clients: self.cfg.clients,
            ops_per_s: if until == 0 {
                0.0
            } else {
                round(ops_until as f64 / secs(until), 1)
            },
            admitted_ops: t.admitted_ops,
            admitted_home: t.admitted_home,
            admitted_refill: t.admitted_refill,
            admitted_steal: t.admitted_steal,
            denials: t.denials,
            unavailable_ops: t.unavailable,
            throttled: s.throttled,
            conflicts: s.conflicts,
            condition_failures: s.condition_failures,
            requests_per_op: per_op(s.requests),
            wcu_per_op: per_op(s.wcu),
            rcu_per_op: per_op(s.rcu),
            drains: t.drains,
            limit,
            admitted_amount: t.admitted_amount,
            used,
            within_limit: used <= limit && t.admitted_amount <= limit,
            first_denial_s: t.first_denial.map(|(at, _, _)| round(secs(at), 3)),
            spend_at_first_denial: t.first_denial.map(|(_, _, spent)| spent),
            first_denial_fraction: t.first_denial.map(|(_, _, spent)| fraction(spent)),
            left_at_first_denial: t.first_denial.map(|(_, _, spent)| limit - spent),
            final_fraction: fraction(used),
            final_left: limit - used,
            end_s: round(secs(self.now), 3),
            exhausted: self.clients.iter().all(|c| c.stopped),
            invariant_violations: violations,
            first_violation,
        }
    }
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    /// Small enough for a debug build: 32 clients, L = $20.
    fn small(shards: usize, seed: u64) -> Config {
        Config {
            clients: 32,
            users: 32,
            limit: dec!(20),
            chunk: dec!(0.5),
            ..Config::standard(shards, seed)
        }
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn same_seed_same_report() {
        let a = run(&small(4, 11)).unwrap();
        let b = run(&small(4, 11)).unwrap();
        assert_eq!(a, b);
        let c = run(&small(4, 12)).unwrap();
        assert_ne!(a.admitted_amount, c.admitted_amount);
    }

    #[test]
    fn bad_configurations_are_refused() {
        let cases = [
            Config {
                shards: 0,
                ..small(1, 1)
            },
            Config {
                shards: 100,
                ..small(1, 1)
            },
            Config {
                limit: dec!(20.0000001),
                ..small(1, 1)
            },
            Config {
                chunk: Decimal::ZERO,
                ..small(2, 1)
            },
            Config {
                event_pct: 101,
                ..small(2, 1)
            },
        ];
        for cfg in cases {
            assert!(run(&cfg).is_err(), "{cfg:?}");
        }
    }
}
