//! Counting the requests a store makes, per operation, through an SDK interceptor
//! (tests assert the request budget of each port method with it).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Requests sent, per operation name (`GetItem`, `TransactWriteItems`, …). Every
/// transmitted attempt counts, SDK retries included. Clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl RequestCounter {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, u64>) -> T) -> T {
        let mut guard = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Requests of `operation` so far.
    pub fn get(&self, operation: &str) -> u64 {
        self.with(|c| c.get(operation).copied().unwrap_or(0))
    }

    /// All counts so far.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.with(|c| c.clone())
    }

    /// All counts so far, and zero from now on.
    pub fn take(&self) -> BTreeMap<String, u64> {
        self.with(std::mem::take)
    }

    pub fn total(&self) -> u64 {
        self.with(|c| c.values().sum())
    }

    fn count(&self, operation: &str) {
        self.with(|c| *c.entry(operation.to_owned()).or_default() += 1);
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "meter::RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg.load::<Metadata>().map_or("unknown", Metadata::name);
        self.count(name);
        Ok(())
    }
}

/// A DynamoDB client built from `sdk_config` that counts its requests.
pub fn counting_client(
    sdk_config: &aws_config::SdkConfig,
) -> (aws_sdk_dynamodb::Client, RequestCounter) {
    let counter = RequestCounter::default();
    let config = aws_sdk_dynamodb::config::Builder::from(sdk_config)
        .interceptor(counter.clone())
        .build();
    (aws_sdk_dynamodb::Client::from_conf(config), counter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_shared_between_clones_and_taken_once() {
        let c = RequestCounter::default();
        let d = c.clone();
        c.count("GetItem");
        d.count("GetItem");
        c.count("UpdateItem");
        assert_eq!(c.get("GetItem"), 2);
        assert_eq!(d.total(), 3);
        assert_eq!(c.take().len(), 2);
        assert_eq!(d.total(), 0);
    }
}
