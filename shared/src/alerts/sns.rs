//! The SNS adapter of the alert port: one `Publish` per message, JSON body, with message
//! attributes (`type`, `tenant_id`, `user_id`, `metric`, `threshold`, `severity`) for filter
//! policies.

use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;

use super::{AlertPublisher, OutboxMessage, PublishError};

/// Publishes to one SNS topic. Built once per process.
#[derive(Debug, Clone)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsPublisher {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

#[async_trait]
impl AlertPublisher for SnsPublisher {
    #[tracing::instrument(skip_all, fields(kind = m.kind, id = %m.id))]
    async fn publish(&self, m: &OutboxMessage) -> Result<(), PublishError> {
        let mut req = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(m.subject.chars().take(100).collect::<String>())
            .message(m.body.to_string());
        for (name, value) in &m.attributes {
            let attr = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| PublishError(e.to_string()))?;
            req = req.message_attributes(*name, attr);
        }
        req.send().await.map_err(|e| {
            let e = aws_sdk_sns::error::DisplayErrorContext(e);
            tracing::warn!(error = %e, "SNS publish failed; the message stays in the outbox");
            PublishError("SNS publish failed".to_owned())
        })?;
        Ok(())
    }
}
