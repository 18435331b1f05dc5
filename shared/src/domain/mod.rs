//! Validated identifiers and the records the service keeps.

pub mod ids;

pub use ids::{EventId, IdError, ModelId, PlanName, ProviderId, TenantId, UserId};
