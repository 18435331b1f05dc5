//! A model of the DynamoDB behaviour the escrow design depends on, and nothing more:
//!
//! - every item lives in a partition of its own (each shard item and the pool item have
//!   their own partition key; adaptive capacity isolates a hot item, it cannot give it more
//!   than one partition's throughput), and each partition has a token bucket of write units
//!   (1,000 WCU/s) and one of read units (3,000 RCU/s);
//! - a write costs ⌈item size / 1 KB⌉ write units, twice that inside a transaction; a strongly
//!   consistent read ⌈size / 4 KB⌉ read units. A request that finds too few tokens is
//!   throttled (`ProvisionedThroughputExceeded`) and consumes nothing; a write whose
//!   condition fails consumes its units;
//! - conditional writes are evaluated atomically: the simulation is one time-ordered event
//!   loop, so a request is evaluated and applied at one instant with nothing in between;
//! - a `TransactWriteItems` holds its items for a short window after it commits; any write
//!   to one of them in that window is rejected with `TransactionConflict` (reads are not
//!   blocked: they see the last committed value).
//!
//! Conditions compare one attribute with a constant, as DynamoDB's do (they have no
//! arithmetic): a shard holds `free` (allowance not yet used), so the guard of a
//! consumption of `x` is `free >= :x`.

use rust_decimal::Decimal;

/// Simulated time in nanoseconds.
pub type Nanos = u64;
pub const SECOND: Nanos = 1_000_000_000;

/// An item of the escrow layout of one scope's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// The central pool: allowance not given to any shard.
    Pool,
    /// Shard item `i` (its own partition key, e.g. `T#<tenant>#O#<org>#ESC#<i>`).
    Shard(usize),
}

/// The attributes of an escrow item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Pool: unallocated allowance. Shard: allowance not yet used.
    pub free: Decimal,
    /// Shard: admitted usage. Pool: always zero.
    pub used: Decimal,
    /// Pool only: set by a drain; from then on grants are exact and a request probes every
    /// shard before it is denied.
    pub tight: bool,
}

/// One write of a transaction: `ADD free :add_free, used :add_used` with the condition
/// `free >= :min_free` and `free < :below` (each when given), and `SET tight` (pool only,
/// when given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub key: Key,
    pub add_free: Decimal,
    pub add_used: Decimal,
    pub min_free: Option<Decimal>,
    pub below: Option<Decimal>,
    pub set_tight: Option<bool>,
}

impl Write {
    fn holds(&self, item: &Item) -> bool {
        self.min_free.is_none_or(|min| item.free >= min)
            && self.below.is_none_or(|max| item.free < max)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A conditional consumption of one shard: `ADD free -x, used x` if `free >= x`.
    /// A reservation is a plain `UpdateItem`; an event's consumption is the shard's update
    /// inside the event's `TransactWriteItems` (the event item and the rollup it also writes
    /// live in other partitions and are not modelled).
    Consume {
        shard: usize,
        amount: Decimal,
        in_transaction: bool,
    },
    /// `GetItem` (one key) or `BatchGetItem`, strongly consistent.
    Read { keys: Vec<Key> },
    /// `TransactWriteItems` over escrow items (all or nothing).
    Transact { writes: Vec<Write> },
}

impl Request {
    pub fn kind(&self) -> RequestKind {
        match self {
            Request::Consume {
                in_transaction: false,
                ..
            } => RequestKind::Write,
            Request::Consume {
                in_transaction: true,
                ..
            }
            | Request::Transact { .. } => RequestKind::Transaction,
            Request::Read { .. } => RequestKind::Read,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    Read,
    Write,
    Transaction,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// The write was applied.
    Done,
    /// `ConditionalCheckFailed` (or a transaction cancelled by it) with the old image of
    /// every item whose condition failed (`ReturnValuesOnConditionCheckFailure=ALL_OLD`).
    ConditionFailed { old: Vec<(Key, Item)> },
    /// The items read, in the order asked.
    Items(Vec<(Key, Item)>),
    /// Too few tokens in a partition: nothing consumed, nothing changed.
    Throttled,
    /// `TransactionConflict`: an item is held by a transaction; nothing changed.
    Conflict,
}

/// A token bucket with integer arithmetic: the level is kept in milli-units × nanoseconds so
/// that refilling never rounds (a rate in milli-units per second times elapsed nanoseconds).
#[derive(Clone, Debug)]
struct Bucket {
    /// milli-units per second
    rate: u128,
    /// capacity, in milli-unit-nanoseconds
    depth: u128,
    level: u128,
    at: Nanos,
}

impl Bucket {
    fn new(units_per_s: u64, depth_ms: u64) -> Self {
        let rate = u128::from(units_per_s) * 1000;
        // rate × depth: the units a full bucket holds, scaled by 10⁹ ns.
        let depth = rate * u128::from(depth_ms) * 1_000_000;
        Bucket {
            rate,
            depth,
            level: depth,
            at: 0,
        }
    }

    fn refill(&mut self, now: Nanos) {
        if now > self.at {
            let add = self.rate * u128::from(now - self.at);
            self.level = (self.level + add).min(self.depth);
            self.at = now;
        }
    }

    fn has(&mut self, now: Nanos, units: u64) -> bool {
        self.refill(now);
        self.level >= Self::scaled(units)
    }

    fn take(&mut self, units: u64) {
        self.level -= Self::scaled(units);
    }

    fn scaled(units: u64) -> u128 {
        u128::from(units) * 1000 * u128::from(SECOND)
    }
}

#[derive(Clone, Debug)]
struct Partition {
    wcu: Bucket,
    rcu: Bucket,
    /// Held by a committed transaction until then.
    lock_until: Nanos,
}

/// Limits and costs of the model.
#[derive(Clone, Debug)]
pub struct Capacity {
    /// Per partition (AWS: 1,000).
    pub wcu_per_s: u64,
    /// Per partition (AWS: 3,000).
    pub rcu_per_s: u64,
    /// How many milliseconds of throughput a partition's bucket holds (burst).
    pub bucket_ms: u64,
    /// Size of an escrow item (shard or pool) in bytes.
    pub item_bytes: u64,
    /// How long a transaction holds its items after committing.
    pub tx_lock: Nanos,
}

/// Counters of what the table did.
#[derive(Clone, Debug, Default)]
pub struct TableStats {
    pub requests: u64,
    pub throttled: u64,
    pub conflicts: u64,
    pub condition_failures: u64,
    pub wcu: u64,
    pub rcu: u64,
    /// The first invariant violation seen, if any (a bug in the design or the model).
    pub violation: Option<String>,
    pub violations: u64,
}

/// The escrow items of one scope's limit and their partitions.
pub struct Table {
    limit: Decimal,
    pool: Item,
    shards: Vec<Item>,
    partitions: Vec<Partition>,
    cap: Capacity,
    pub stats: TableStats,
}

impl Table {
    /// A scope with limit `limit` over `shards` shard items; `initial` is each shard's
    /// initial allowance (the rest starts in the pool). Panics if the split exceeds the
    /// limit (a configuration error, not a request).
    pub fn new(limit: Decimal, shards: usize, initial: Decimal, cap: Capacity) -> Self {
        let given = initial * Decimal::from(shards);
        assert!(
            given <= limit && initial >= Decimal::ZERO,
            "initial split exceeds the limit"
        );
        let shard = Item {
            free: initial,
            used: Decimal::ZERO,
            tight: false,
        };
        let partition = Partition {
            wcu: Bucket::new(cap.wcu_per_s, cap.bucket_ms),
            rcu: Bucket::new(cap.rcu_per_s, cap.bucket_ms),
            lock_until: 0,
        };
        Table {
            limit,
            pool: Item {
                free: limit - given,
                used: Decimal::ZERO,
                tight: false,
            },
            shards: vec![shard; shards],
            partitions: vec![partition; shards + 1],
            cap,
            stats: TableStats::default(),
        }
    }

    pub fn limit(&self) -> Decimal {
        self.limit
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub fn item(&self, key: Key) -> &Item {
        match key {
            Key::Pool => &self.pool,
            Key::Shard(i) => &self.shards[i],
        }
    }

    fn item_mut(&mut self, key: Key) -> &mut Item {
        match key {
            Key::Pool => &mut self.pool,
            Key::Shard(i) => &mut self.shards[i],
        }
    }

    fn partition(&mut self, key: Key) -> &mut Partition {
        let i = match key {
            Key::Pool => self.shards.len(),
            Key::Shard(i) => i,
        };
        &mut self.partitions[i]
    }

    /// Σ used over the shards: everything admitted.
    pub fn used(&self) -> Decimal {
        self.shards.iter().map(|s| s.used).sum()
    }

    /// Pool plus every shard's free allowance: what can still be admitted.
    pub fn remaining(&self) -> Decimal {
        self.pool.free + self.shards.iter().map(|s| s.free).sum::<Decimal>()
    }

    fn write_units(&self) -> u64 {
        self.cap.item_bytes.div_ceil(1024).max(1)
    }

    fn read_units(&self) -> u64 {
        self.cap.item_bytes.div_ceil(4096).max(1)
    }

    /// Evaluates one request at `now`, atomically.
    pub fn execute(&mut self, now: Nanos, request: &Request) -> Response {
        self.stats.requests += 1;
        let response = match request {
            Request::Consume {
                shard,
                amount,
                in_transaction,
            } => self.consume(now, *shard, *amount, *in_transaction),
            Request::Read { keys } => self.read(now, keys),
            Request::Transact { writes } => self.transact(now, writes),
        };
        match &response {
            Response::Throttled => self.stats.throttled += 1,
            Response::Conflict => self.stats.conflicts += 1,
            Response::ConditionFailed { .. } => self.stats.condition_failures += 1,
            Response::Done => self.check_invariants(),
            Response::Items(_) => {}
        }
        response
    }

    fn consume(&mut self, now: Nanos, shard: usize, amount: Decimal, in_tx: bool) -> Response {
        let key = Key::Shard(shard);
        let units = self.write_units() * if in_tx { 2 } else { 1 };
        let tx_lock = self.cap.tx_lock;
        let p = self.partition(key);
        if p.lock_until > now {
            return Response::Conflict;
        }
        if !p.wcu.has(now, units) {
            return Response::Throttled;
        }
        p.wcu.take(units);
        self.stats.wcu += units;
        let item = self.item_mut(key);
        if item.free < amount {
            // A cancelled transaction holds nothing.
            return Response::ConditionFailed {
                old: vec![(key, item.clone())],
            };
        }
        item.free -= amount;
        item.used += amount;
        if in_tx {
            self.partition(key).lock_until = now + tx_lock;
        }
        Response::Done
    }

    fn read(&mut self, now: Nanos, keys: &[Key]) -> Response {
        let units = self.read_units();
        // BatchGetItem would return the keys of a throttled partition as UnprocessedKeys;
        // the model throttles the whole request (the caller retries it all).
        for &key in keys {
            if !self.partition(key).rcu.has(now, units) {
                return Response::Throttled;
            }
        }
        for &key in keys {
            self.partition(key).rcu.take(units);
        }
        self.stats.rcu += units * keys.len() as u64;
        Response::Items(keys.iter().map(|&k| (k, self.item(k).clone())).collect())
    }

    fn transact(&mut self, now: Nanos, writes: &[Write]) -> Response {
        let units = 2 * self.write_units();
        for w in writes {
            if self.partition(w.key).lock_until > now {
                return Response::Conflict;
            }
        }
        for w in writes {
            if !self.partition(w.key).wcu.has(now, units) {
                return Response::Throttled;
            }
        }
        for w in writes {
            self.partition(w.key).wcu.take(units);
        }
        self.stats.wcu += units * writes.len() as u64;
        let failed: Vec<(Key, Item)> = writes
            .iter()
            .filter(|w| !w.holds(self.item(w.key)))
            .map(|w| (w.key, self.item(w.key).clone()))
            .collect();
        if !failed.is_empty() {
            return Response::ConditionFailed { old: failed };
        }
        let tx_lock = self.cap.tx_lock;
        for w in writes {
            let item = self.item_mut(w.key);
            item.free += w.add_free;
            item.used += w.add_used;
            if let Some(t) = w.set_tight {
                item.tight = t;
            }
            self.partition(w.key).lock_until = now + tx_lock;
        }
        Response::Done
    }

    /// pool + Σ (free_i + used_i) = L exactly, every free ≥ 0, every used ≥ 0, pool used = 0.
    /// Hence Σ used_i ≤ L.
    fn check_invariants(&mut self) {
        let mut problems = Vec::new();
        if self.pool.free < Decimal::ZERO || self.pool.used != Decimal::ZERO {
            problems.push(format!("pool {:?}", self.pool));
        }
        for (i, s) in self.shards.iter().enumerate() {
            if s.free < Decimal::ZERO || s.used < Decimal::ZERO {
                problems.push(format!("shard {i} {s:?}"));
            }
        }
        let total = self.remaining() + self.used();
        if total != self.limit {
            problems.push(format!(
                "pool + Σ(free + used) = {total} ≠ L = {}",
                self.limit
            ));
        }
        if self.used() > self.limit {
            problems.push(format!("Σ used = {} > L = {}", self.used(), self.limit));
        }
        if !problems.is_empty() {
            self.stats.violations += 1;
            if self.stats.violation.is_none() {
                self.stats.violation = Some(problems.join("; "));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn cap() -> Capacity {
        Capacity {
            wcu_per_s: 1000,
            rcu_per_s: 3000,
            bucket_ms: 100,
            item_bytes: 200,
            tx_lock: 4_000_000,
        }
    }

    fn consume(shard: usize, amount: Decimal) -> Request {
        Request::Consume {
            shard,
            amount,
            in_transaction: false,
        }
    }

    #[test]
    fn consumption_is_conditional_on_the_free_allowance() {
        let mut t = Table::new(dec!(10), 2, dec!(1), cap());
        assert_eq!(t.execute(0, &consume(0, dec!(0.6))), Response::Done);
        match t.execute(0, &consume(0, dec!(0.5))) {
            Response::ConditionFailed { old } => {
                assert_eq!(old[0].0, Key::Shard(0));
                assert_eq!(old[0].1.free, dec!(0.4));
            }
            other => panic!("expected a failed condition, got {other:?}"),
        }
        assert_eq!(t.execute(0, &consume(0, dec!(0.4))), Response::Done);
        assert_eq!(t.item(Key::Shard(0)).free, Decimal::ZERO);
        assert_eq!(t.used(), dec!(1.0));
        assert_eq!(t.remaining(), dec!(9.0));
        assert!(t.stats.violation.is_none());
    }

    #[test]
    fn a_partition_admits_its_write_units_per_second_and_throttles_the_rest() {
        // 1,000 WCU/s with a 100 ms bucket: 100 one-unit writes at t = 0, then the 101st is
        // throttled; 1 ms later exactly one more unit has accrued.
        let mut t = Table::new(dec!(1000000), 1, dec!(1000000), cap());
        for _ in 0..100 {
            assert_eq!(t.execute(0, &consume(0, dec!(1))), Response::Done);
        }
        assert_eq!(t.execute(0, &consume(0, dec!(1))), Response::Throttled);
        assert_eq!(
            t.execute(999_999, &consume(0, dec!(1))),
            Response::Throttled
        );
        assert_eq!(t.execute(1_000_000, &consume(0, dec!(1))), Response::Done);
        assert_eq!(
            t.execute(1_000_000, &consume(0, dec!(1))),
            Response::Throttled
        );
        assert_eq!(t.stats.throttled, 3);
        assert_eq!(t.stats.wcu, 101);
        // A throttled write changed nothing.
        assert_eq!(t.used(), dec!(101));
    }

    #[test]
    fn a_transaction_is_all_or_nothing_and_holds_its_items() {
        let mut t = Table::new(dec!(10), 2, Decimal::ZERO, cap());
        let refill = |d: Decimal, x: Decimal| Request::Transact {
            writes: vec![
                Write {
                    key: Key::Pool,
                    add_free: -d,
                    add_used: Decimal::ZERO,
                    min_free: Some(d),
                    below: None,
                    set_tight: None,
                },
                Write {
                    key: Key::Shard(1),
                    add_free: d - x,
                    add_used: x,
                    min_free: Some(x - d),
                    below: Some(x),
                    set_tight: None,
                },
            ],
        };
        // More than the pool holds: cancelled, the pool's old image comes back, nothing moved.
        match t.execute(0, &refill(dec!(11), dec!(1))) {
            Response::ConditionFailed { old } => {
                assert_eq!(old, vec![(Key::Pool, t.item(Key::Pool).clone())])
            }
            other => panic!("expected a cancelled transaction, got {other:?}"),
        }
        assert_eq!(t.remaining(), dec!(10));
        assert_eq!(t.execute(0, &refill(dec!(3), dec!(1))), Response::Done);
        assert_eq!(t.item(Key::Pool).free, dec!(7));
        assert_eq!(t.item(Key::Shard(1)).free, dec!(2));
        assert_eq!(t.item(Key::Shard(1)).used, dec!(1));
        // Held for 4 ms: a write to either item conflicts, a read does not.
        assert_eq!(t.execute(1, &consume(1, dec!(1))), Response::Conflict);
        assert!(matches!(
            t.execute(
                1,
                &Request::Read {
                    keys: vec![Key::Pool]
                }
            ),
            Response::Items(_)
        ));
        assert_eq!(t.execute(4_000_000, &consume(1, dec!(1))), Response::Done);
        assert!(t.stats.violation.is_none());
    }

    #[test]
    fn a_write_that_breaks_conservation_is_reported() {
        let mut t = Table::new(dec!(10), 1, dec!(10), cap());
        // Minting allowance out of nothing: no condition stops it, the checker must.
        let mint = Request::Transact {
            writes: vec![Write {
                key: Key::Shard(0),
                add_free: dec!(1),
                add_used: Decimal::ZERO,
                min_free: None,
                below: None,
                set_tight: None,
            }],
        };
        assert_eq!(t.execute(0, &mint), Response::Done);
        assert_eq!(t.stats.violations, 1);
        assert!(t.stats.violation.as_deref().unwrap().contains("≠ L = 10"));
    }
}
