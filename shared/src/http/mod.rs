//! The HTTP API as axum `Router`s, shared by the Lambda functions and `meter serve`: request
//! bodies and query strings parsed into the service's inputs, results and errors written as
//! JSON answers.

pub mod admin;
pub mod amounts;
pub mod budgets;
pub mod call_scopes;
pub mod error;
pub mod extract;
pub mod fields;
pub mod limit_details;
pub mod ops;
pub mod orgs;
mod paging;
pub mod routes;
pub mod tenant;
pub mod tenant_orgs;
pub mod tokens;
pub mod wallet_views;
pub mod wallets;
pub mod web;
pub mod wire;

pub use error::{ApiError, FieldError};
pub use routes::{app, check_router, dashboard_router, usage_router};
