//! An SDK interceptor that asks DynamoDB for `ReturnConsumedCapacity: TOTAL` on every
//! request and keeps each request's and answer's JSON, so units can be derived from them.

use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use serde_json::Value;

/// One request sent and what came back.
#[derive(Debug, Clone)]
pub struct Call {
    pub operation: String,
    pub request: Value,
    pub response: Value,
    pub status: u16,
}

#[derive(Debug, Clone)]
struct SentBody(Value);

impl Storable for SentBody {
    type Storer = StoreReplace<Self>;
}

/// Every call made through the client, in order. Clones share the list.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Capture {
    /// The calls so far, and none from now on.
    pub fn take(&self) -> Vec<Call> {
        let mut guard = self
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::take(&mut *guard)
    }
}

impl Intercept for Capture {
    fn name(&self) -> &'static str {
        "dynamo-cost::Capture"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let Some(bytes) = request.body().bytes() else {
            return Ok(());
        };
        let mut body: Value = serde_json::from_slice(bytes)?;
        if let Value::Object(map) = &mut body {
            map.insert("ReturnConsumedCapacity".into(), Value::from("TOTAL"));
        }
        let text = serde_json::to_vec(&body)?;
        request
            .headers_mut()
            .insert("content-length", text.len().to_string());
        *request.body_mut() = SdkBody::from(text);
        cfg.interceptor_state().store_put(SentBody(body));
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response();
        let body = response
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let call = Call {
            operation: cfg
                .load::<Metadata>()
                .map_or("unknown", Metadata::name)
                .to_owned(),
            request: cfg.load::<SentBody>().map_or(Value::Null, |s| s.0.clone()),
            response: body,
            status: response.status().as_u16(),
        };
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(call);
        Ok(())
    }
}
