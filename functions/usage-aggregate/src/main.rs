//! `usage-aggregate`: the scheduled aggregation (EventBridge schedule, `lambda_runtime`).
//! Each invocation runs one pass (`Meter::aggregate`) within the invocation's remaining
//! time; a pass cut short resumes at the next schedule from its stored cursors.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lambda_http::lambda_runtime::{self, service_fn, Error, LambdaEvent};
use meter_core::service::aggregate::AggregateOptions;
use serde_json::Value;

/// Time kept free at the end of an invocation to finish the current page and answer: a
/// quarter of the time left, at most 20 s (the template's 300 s timeout gives a 280 s pass).
const SAFETY: Duration = Duration::from_secs(20);

/// The budget when the deadline has already passed as the handler starts. Lambda never
/// does that; local runtimes do (`cargo lambda watch` sends a fixed `600000` ms, i.e.
/// 1970), and a pass with no time at all would do nothing.
const NO_DEADLINE_BUDGET: Duration = Duration::from_secs(30);

/// How long the pass may work, given the invocation's deadline.
fn budget(deadline: SystemTime, now: SystemTime) -> Duration {
    match deadline.duration_since(now) {
        Ok(remaining) if !remaining.is_zero() => {
            remaining.saturating_sub(SAFETY.min(remaining / 4))
        }
        _ => {
            tracing::warn!(
                budget_s = NO_DEADLINE_BUDGET.as_secs(),
                "the invocation's deadline has passed already (a local runtime?): using a fixed budget"
            );
            NO_DEADLINE_BUDGET
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let meter = Arc::new(meter_core::config::meter_from_env().await?);
    tracing::info!(function = "usage-aggregate", "starting");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let meter = meter.clone();
        async move {
            let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(event.context.deadline);
            let budget = budget(deadline, SystemTime::now());
            tracing::info!(budget_ms = budget.as_millis(), "aggregation pass starts");
            let opts = AggregateOptions {
                budget: Some(budget),
                ..AggregateOptions::default()
            };
            let report = meter
                .aggregate(&opts)
                .await
                .map_err(|e| Error::from(e.to_string()))?;
            // Business metrics (invoices, expired holds, the outbox left) as EMF lines.
            meter_core::metrics::observe_aggregation(meter.store.as_ref(), &report, meter.now())
                .await;
            meter_core::metrics::emf::flush();
            Ok::<Value, Error>(serde_json::to_value(report)?)
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_a_quarter_of_the_time_left_at_most_twenty_seconds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let s = Duration::from_secs;
        assert_eq!(budget(now + s(300), now), s(280));
        assert_eq!(budget(now + s(80), now), s(60));
        assert_eq!(budget(now + s(3), now), Duration::from_millis(2250));
    }

    #[test]
    fn a_deadline_in_the_past_gets_the_fixed_budget() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let cargo_lambda_watch = SystemTime::UNIX_EPOCH + Duration::from_millis(600_000);
        assert_eq!(budget(cargo_lambda_watch, now), NO_DEADLINE_BUDGET);
        assert_eq!(budget(now, now), NO_DEADLINE_BUDGET);
    }
}
