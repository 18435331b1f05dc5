//! The HTTP API (SPEC §6) as axum `Router`s, shared by the Lambda functions and `meter serve`.

pub mod admin;
pub mod error;
pub mod extract;
pub mod fields;
pub mod ops;
pub mod routes;
pub mod wire;

pub use error::{ApiError, FieldError};
pub use routes::{app, check_router, dashboard_router, usage_router};
