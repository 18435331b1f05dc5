//! meter-core: the domain of usage metering and usage-based subscriptions, its service,
//! its storage and alert adapters, and its HTTP routes.
//!
//! Layers run one way: `http` (routes, JSON shapes) → [`service`] (the use cases, typed
//! inputs and results, one error type) → the domain modules and the storage port.
//! Folders name the domain: [`pricing`] (catalog, cost of an event, LiteLLM import),
//! [`usage`] (counts and provider usage objects), [`periods`] (billing periods),
//! [`limits`] (plans, the check decision, guards, recommendations), [`budgets`] (scopes,
//! budgets, windows and the decision over every applicable limit), [`subscriptions`]
//! (subscription changes and proration), [`billing`] (invoices), [`credits`] (prepaid
//! wallets: grants, draws, balances), [`alerts`] (what fires,
//! and the publishing port), [`domain`] (ids and records). [`store`] is the storage port
//! with its SQLite and DynamoDB adapters (cargo features `sqlite` and `dynamo`), and
//! [`config`] wires adapters from flags or the environment. `testing` (cargo feature
//! `testing`) holds the fixtures the tests share.

pub mod alerts;
pub mod auth;
pub mod billing;
pub mod budgets;
pub mod config;
pub mod credits;
pub mod domain;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod periods;
pub mod pricing;
pub mod service;
pub mod store;
pub mod subscriptions;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tokens;
pub mod usage;

#[cfg(test)]
mod overflow_tests;
