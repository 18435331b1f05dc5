//! Budget escrow: the design under test, as the requests a client sends.
//!
//! A scope's limit L is split into a central pool and N shard items. Each item holds `free`
//! (allowance not yet used); shards also hold `used`. Every write is conditional and moves
//! amounts between items without creating any, so `pool + Σ (free_i + used_i) = L` always and
//! `Σ used_i ≤ L`.
//!
//! One admission of `x` (a reservation's hold, or an event's cost under a guard):
//! 1. **home shard** — one conditional write `free_h >= x` on the shard the request picked;
//! 2. **refill** — when that fails (the failure returns the shard's old image), read the pool
//!    and run one transaction `pool -= d (pool >= d)`, `free_h += d - x, used_h += x
//!    (free_h >= x - d)`: the grant and the admission in one atomic write;
//! 3. **probe** — when the pool cannot cover the shortfall, read the pool, the home shard and
//!    K siblings and take what is missing from them in one transaction (each source
//!    conditional on what it gives);
//! 4. **deny** — only when the pool, the home shard and the probed siblings together hold
//!    less than `x`; the first denial starts a **drain** (one transaction moving every
//!    shard's free allowance back to the pool and setting `tight` on it). Once `tight`, grants
//!    are exactly the shortfall and a request probes every shard before it is denied, so a
//!    denial then means that less than `x` remains anywhere.

use rand::Rng;
use rust_decimal::prelude::*;

use crate::dynamo::{Item, Key, Request, Response, Write};

/// The knobs of the design.
#[derive(Clone, Debug)]
pub struct Policy {
    pub shards: usize,
    /// The largest grant a refill moves from the pool to a shard.
    pub chunk: Decimal,
    /// Grants shrink with the pool: min(chunk, pool / 2N), never below the shortfall.
    pub adaptive: bool,
    /// Siblings probed before a denial while the pool is not `tight`.
    pub probe: usize,
    /// Decimal places of amounts (6 for money, 0 for calls): grants are rounded down to it.
    pub scale: u32,
}

impl Policy {
    /// The allowance a refill moves from a pool holding `pool` to a shard short of `need`;
    /// `None` when the pool cannot cover the shortfall.
    pub fn grant(&self, pool: Decimal, need: Decimal, tight: bool) -> Option<Decimal> {
        if need > pool {
            return None;
        }
        if tight {
            return Some(need);
        }
        let target = if self.adaptive {
            let share = (pool / Decimal::from(2 * self.shards as u64))
                .round_dp_with_strategy(self.scale, RoundingStrategy::ToZero);
            self.chunk.min(share)
        } else {
            self.chunk
        };
        Some(pool.min(need.max(target)))
    }

    /// How many siblings a request probes before it is denied.
    pub fn probes(&self, tight: bool) -> usize {
        let siblings = self.shards.saturating_sub(1);
        if tight {
            siblings
        } else {
            self.probe.min(siblings)
        }
    }
}

/// A source of allowance: `free -= take` if `free >= take`.
fn give(key: Key, take: Decimal) -> Write {
    Write {
        key,
        add_free: -take,
        add_used: Decimal::ZERO,
        min_free: Some(take),
        below: None,
        set_tight: None,
    }
}

/// The home shard receiving `received` and admitting `x` from it, only while it is still
/// short of `x` (`free < x`: otherwise the plain consumption would do, and concurrent
/// refills of one dry shard would pile grants on it) and can then cover `x`
/// (`free >= x - received`).
fn receive(home: usize, x: Decimal, received: Decimal) -> Write {
    Write {
        key: Key::Shard(home),
        add_free: received - x,
        add_used: x,
        min_free: Some(x - received),
        below: Some(x),
        set_tight: None,
    }
}

/// The refill transaction: `d` from the pool to shard `home`, which admits `x` in the same
/// write.
pub fn refill(home: usize, x: Decimal, d: Decimal) -> Request {
    Request::Transact {
        writes: vec![give(Key::Pool, d), receive(home, x, d)],
    }
}

/// The transaction that admits `x` on `home` (holding `home_free`) with what is missing
/// taken from the pool first, then from the siblings holding most; `None` when all of them
/// together cannot cover `x`.
pub fn steal(
    home: usize,
    x: Decimal,
    home_free: Decimal,
    pool: Decimal,
    siblings: &[(usize, Decimal)],
) -> Option<Request> {
    let mut need = x - home_free;
    let mut writes = Vec::new();
    let mut taken = Decimal::ZERO;
    let mut sources: Vec<(Key, Decimal)> = vec![(Key::Pool, pool)];
    let mut by_free: Vec<(usize, Decimal)> = siblings.to_vec();
    by_free.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    sources.extend(by_free.into_iter().map(|(i, f)| (Key::Shard(i), f)));
    for (key, free) in sources {
        if need <= Decimal::ZERO {
            break;
        }
        let take = free.min(need);
        if take > Decimal::ZERO {
            writes.push(give(key, take));
            taken += take;
            need -= take;
        }
    }
    if need > Decimal::ZERO {
        return None;
    }
    writes.push(receive(home, x, taken));
    Some(Request::Transact { writes })
}

/// The drain transaction: every shard's free allowance (as read) back to the pool, and the
/// pool marked `tight`.
pub fn drain(shards: &[(usize, Decimal)]) -> Request {
    let mut writes: Vec<Write> = shards
        .iter()
        .filter(|(_, free)| *free > Decimal::ZERO)
        .map(|&(i, free)| give(Key::Shard(i), free))
        .collect();
    let total: Decimal = shards.iter().map(|(_, f)| *f).sum();
    writes.push(Write {
        key: Key::Pool,
        add_free: total,
        add_used: Decimal::ZERO,
        min_free: None,
        below: None,
        set_tight: Some(true),
    });
    Request::Transact { writes }
}

/// What a client does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Send(Request),
    Admitted,
    /// Denied; `tight` is what the client last saw of the pool (a denial while not tight
    /// starts a drain).
    Denied {
        tight: bool,
    },
    /// A conditional write failed because another client moved the amounts meanwhile:
    /// start over from the home shard.
    Restart,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Home,
    ReadPool,
    Refill,
    Probe,
    Steal,
}

/// One admission in progress.
#[derive(Clone, Debug)]
pub struct Op {
    pub amount: Decimal,
    /// An event (the shard write rides in the event's transaction) or a reservation.
    pub in_transaction: bool,
    pub home: usize,
    phase: Phase,
    home_free: Decimal,
    tight: bool,
}

impl Op {
    pub fn new(amount: Decimal, in_transaction: bool, home: usize) -> Self {
        Op {
            amount,
            in_transaction,
            home,
            phase: Phase::Home,
            home_free: Decimal::ZERO,
            tight: false,
        }
    }

    /// Admitted by the home shard's own allowance.
    pub fn via_home(&self) -> bool {
        self.phase == Phase::Home
    }

    /// Admitted by a refill from the pool.
    pub fn via_refill(&self) -> bool {
        self.phase == Phase::Refill
    }

    /// The first request (again after a restart).
    pub fn start(&mut self) -> Request {
        self.phase = Phase::Home;
        Request::Consume {
            shard: self.home,
            amount: self.amount,
            in_transaction: self.in_transaction,
        }
    }

    /// The refill / probe / steal / denial that follows `response` (never `Throttled` or
    /// `Conflict`: the caller retries those with backoff).
    pub fn next(&mut self, policy: &Policy, response: &Response, rng: &mut impl Rng) -> Step {
        match (self.phase, response) {
            (Phase::Home | Phase::Refill | Phase::Steal, Response::Done) => Step::Admitted,
            (Phase::Home, Response::ConditionFailed { old }) => {
                self.home_free = free_of(old, Key::Shard(self.home)).unwrap_or(Decimal::ZERO);
                if policy.shards == 1 {
                    // One item holds the whole limit: today's layout, denied at once.
                    return Step::Denied { tight: true };
                }
                self.phase = Phase::ReadPool;
                Step::Send(Request::Read {
                    keys: vec![Key::Pool, Key::Shard(self.home)],
                })
            }
            (Phase::ReadPool, Response::Items(items)) => {
                let pool = item_of(items, Key::Pool);
                self.tight = pool.tight;
                // The home shard again, read with the pool: another client may have refilled
                // it since the failed write (deciding on the old image would deny with a
                // full grant sitting in the home shard).
                self.home_free = item_of(items, Key::Shard(self.home)).free;
                if self.home_free >= self.amount {
                    return Step::Restart;
                }
                let need = self.amount - self.home_free;
                if let Some(d) = policy.grant(pool.free, need, pool.tight) {
                    self.phase = Phase::Refill;
                    return Step::Send(refill(self.home, self.amount, d));
                }
                let k = policy.probes(pool.tight);
                if k == 0 {
                    return Step::Denied { tight: self.tight };
                }
                let mut keys = vec![Key::Pool, Key::Shard(self.home)];
                keys.extend(pick_siblings(policy.shards, self.home, k, rng).map(Key::Shard));
                self.phase = Phase::Probe;
                Step::Send(Request::Read { keys })
            }
            (Phase::Probe, Response::Items(items)) => {
                let pool = item_of(items, Key::Pool);
                self.tight = pool.tight;
                let home_free = item_of(items, Key::Shard(self.home)).free;
                if home_free >= self.amount {
                    // Refilled by another client meanwhile: the plain consumption will do.
                    return Step::Restart;
                }
                let siblings: Vec<(usize, Decimal)> = items
                    .iter()
                    .filter_map(|(k, it)| match k {
                        Key::Shard(i) if *i != self.home => Some((*i, it.free)),
                        _ => None,
                    })
                    .collect();
                match steal(self.home, self.amount, home_free, pool.free, &siblings) {
                    Some(request) => {
                        self.phase = Phase::Steal;
                        Step::Send(request)
                    }
                    None => Step::Denied { tight: self.tight },
                }
            }
            (Phase::Refill | Phase::Steal, Response::ConditionFailed { .. }) => Step::Restart,
            (phase, response) => unreachable!("{phase:?} cannot receive {response:?}"),
        }
    }
}

fn free_of(items: &[(Key, Item)], key: Key) -> Option<Decimal> {
    items.iter().find(|(k, _)| *k == key).map(|(_, it)| it.free)
}

fn item_of(items: &[(Key, Item)], key: Key) -> Item {
    items
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, it)| it.clone())
        .expect("a read returns every key asked for")
}

/// `k` distinct shards other than `home`, uniformly (a partial Fisher–Yates shuffle).
fn pick_siblings(
    shards: usize,
    home: usize,
    k: usize,
    rng: &mut impl Rng,
) -> impl Iterator<Item = usize> {
    let mut others: Vec<usize> = (0..shards).filter(|&i| i != home).collect();
    let k = k.min(others.len());
    for i in 0..k {
        let j = rng.random_range(i..others.len());
        others.swap(i, j);
    }
    others.truncate(k);
    others.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use rust_decimal_macros::dec;

    fn policy(adaptive: bool) -> Policy {
        Policy {
            shards: 4,
            chunk: dec!(5),
            adaptive,
            probe: 1,
            scale: 6,
        }
    }

    #[test]
    fn grants_cover_the_shortfall_and_are_capped_by_chunk_and_pool() {
        // (adaptive, pool, need, tight) → grant
        let cases = [
            (false, dec!(100), dec!(0.3), false, Some(dec!(5))),
            (false, dec!(100), dec!(7), false, Some(dec!(7))),
            (false, dec!(3), dec!(0.3), false, Some(dec!(3))),
            (false, dec!(0.2), dec!(0.3), false, None),
            // adaptive: min(chunk, pool / 2N) = pool / 8
            (true, dec!(100), dec!(0.3), false, Some(dec!(5))),
            (true, dec!(16), dec!(0.3), false, Some(dec!(2))),
            (true, dec!(1), dec!(0.3), false, Some(dec!(0.3))),
            (
                true,
                dec!(0.000007),
                dec!(0.000001),
                false,
                Some(dec!(0.000001)),
            ),
            // tight: exactly the shortfall
            (false, dec!(100), dec!(0.3), true, Some(dec!(0.3))),
            (true, dec!(0.3), dec!(0.3), true, Some(dec!(0.3))),
            (true, dec!(0.29), dec!(0.3), true, None),
        ];
        for (adaptive, pool, need, tight, want) in cases {
            assert_eq!(
                policy(adaptive).grant(pool, need, tight),
                want,
                "adaptive {adaptive}, pool {pool}, need {need}, tight {tight}"
            );
        }
    }

    #[test]
    fn a_steal_takes_the_pool_first_then_the_fullest_siblings() {
        let req = steal(
            0,
            dec!(1),
            dec!(0.1),
            dec!(0.2),
            &[(1, dec!(0.3)), (2, dec!(0.5))],
        )
        .unwrap();
        let Request::Transact { writes } = req else {
            panic!("a steal is a transaction")
        };
        let moves: Vec<(Key, Decimal, Option<Decimal>)> = writes
            .iter()
            .map(|w| (w.key, w.add_free, w.min_free))
            .collect();
        assert_eq!(
            moves,
            vec![
                (Key::Pool, dec!(-0.2), Some(dec!(0.2))),
                (Key::Shard(2), dec!(-0.5), Some(dec!(0.5))),
                (Key::Shard(1), dec!(-0.2), Some(dec!(0.2))),
                (Key::Shard(0), dec!(-0.1), Some(dec!(0.1))),
            ]
        );
        // Conservation: the moves sum to -x, which `used` of the home shard takes.
        let sum: Decimal = writes.iter().map(|w| w.add_free + w.add_used).sum();
        assert_eq!(sum, Decimal::ZERO);
        assert!(steal(0, dec!(1), dec!(0.1), dec!(0.2), &[(1, dec!(0.69))]).is_none());
    }

    #[test]
    fn one_shard_denies_on_the_first_failed_condition_without_another_request() {
        let p = Policy {
            shards: 1,
            ..policy(true)
        };
        let mut op = Op::new(dec!(1), false, 0);
        op.start();
        let failed = Response::ConditionFailed {
            old: vec![(
                Key::Shard(0),
                Item {
                    free: dec!(0.5),
                    used: dec!(9.5),
                    tight: false,
                },
            )],
        };
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(op.next(&p, &failed, &mut rng), Step::Denied { tight: true });
    }

    #[test]
    fn a_dry_shard_reads_the_pool_then_refills_in_one_transaction() {
        let p = policy(false);
        let mut rng = StdRng::seed_from_u64(1);
        let mut op = Op::new(dec!(1), true, 2);
        op.start();
        let shard = |free| Item {
            free,
            used: Decimal::ZERO,
            tight: false,
        };
        let step = op.next(
            &p,
            &Response::ConditionFailed {
                old: vec![(Key::Shard(2), shard(dec!(0.25)))],
            },
            &mut rng,
        );
        assert_eq!(
            step,
            Step::Send(Request::Read {
                keys: vec![Key::Pool, Key::Shard(2)]
            })
        );
        let mut probe = op.clone();
        let step = op.next(
            &p,
            &Response::Items(vec![
                (Key::Pool, shard(dec!(50))),
                (Key::Shard(2), shard(dec!(0.25))),
            ]),
            &mut rng,
        );
        assert_eq!(step, Step::Send(refill(2, dec!(1), dec!(5))));
        assert!(!op.via_home() && op.via_refill());
        assert_eq!(op.next(&p, &Response::Done, &mut rng), Step::Admitted);
        // Refilled by someone else since the failed write: try the home shard again.
        let step = probe.next(
            &p,
            &Response::Items(vec![
                (Key::Pool, shard(dec!(50))),
                (Key::Shard(2), shard(dec!(4))),
            ]),
            &mut rng,
        );
        assert_eq!(step, Step::Restart);
    }

    #[test]
    fn an_empty_pool_probes_siblings_and_denies_only_when_they_cannot_cover() {
        let p = policy(false);
        let mut rng = StdRng::seed_from_u64(3);
        let item = |free, tight| Item {
            free,
            used: Decimal::ZERO,
            tight,
        };
        let mut op = Op::new(dec!(1), false, 0);
        op.start();
        op.next(
            &p,
            &Response::ConditionFailed {
                old: vec![(Key::Shard(0), item(dec!(0.5), false))],
            },
            &mut rng,
        );
        let step = op.next(
            &p,
            &Response::Items(vec![
                (Key::Pool, item(dec!(0.25), false)),
                (Key::Shard(0), item(dec!(0.5), false)),
            ]),
            &mut rng,
        );
        // probe = 1: the pool, the home shard and one sibling.
        let Step::Send(Request::Read { keys }) = step else {
            panic!("expected a probe, got {step:?}")
        };
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[..2], [Key::Pool, Key::Shard(0)]);
        let sibling = keys[2];
        let mut rich = op.clone();
        let poor = op.next(
            &p,
            &Response::Items(vec![
                (Key::Pool, item(dec!(0.25), false)),
                (Key::Shard(0), item(dec!(0.5), false)),
                (sibling, item(dec!(0.2), false)),
            ]),
            &mut rng,
        );
        assert_eq!(poor, Step::Denied { tight: false });
        let step = rich.next(
            &p,
            &Response::Items(vec![
                (Key::Pool, item(dec!(0.25), false)),
                (Key::Shard(0), item(dec!(0.5), false)),
                (sibling, item(dec!(0.3), false)),
            ]),
            &mut rng,
        );
        assert!(matches!(step, Step::Send(Request::Transact { .. })));
        assert_eq!(rich.next(&p, &Response::Done, &mut rng), Step::Admitted);
        assert!(!rich.via_home() && !rich.via_refill());
    }

    #[test]
    fn siblings_are_distinct_and_never_the_home_shard() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let picked: Vec<usize> = pick_siblings(8, 3, 5, &mut rng).collect();
            assert_eq!(picked.len(), 5);
            assert!(!picked.contains(&3));
            let mut sorted = picked.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 5);
        }
        assert_eq!(
            pick_siblings(2, 0, 5, &mut rng).collect::<Vec<_>>(),
            vec![1]
        );
    }
}
