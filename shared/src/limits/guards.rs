//! Reservation guards: the limit conditions a reservation's write must pass atomically in
//! the store, one per limited metric that applies to the call — [`requirement`], the same
//! rule [`decide`](super::decide) applies, so a check and its reservation agree.

use rust_decimal::Decimal;

use super::{requirement, CallEstimate, Limits, Metric};

/// A limit condition checked atomically with a reservation: the reservation succeeds only
/// if `used + increment <= limit` (`< limit` when `strict`) for the guarded metric, where
/// `used` includes every open hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    pub metric: Metric,
    pub increment: Decimal,
    pub limit: Decimal,
    pub strict: bool,
}

/// The guards a reservation of `call` must pass under `limits`: [`requirement`] of every
/// limited metric that covers the call.
pub fn guards_for(limits: &Limits, call: &CallEstimate) -> Vec<Guard> {
    limits
        .0
        .iter()
        .filter_map(|(metric, &limit)| {
            let req = requirement(metric, limit, call)?;
            Some(Guard {
                metric: metric.clone(),
                increment: req.increment,
                limit,
                strict: req.strict,
            })
        })
        .collect()
}
