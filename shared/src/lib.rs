//! meter-core: the domain of usage metering and usage-based subscriptions.
//!
//! Folders name the domain: [`pricing`] (catalog, cost of an event, LiteLLM import),
//! [`usage`] (counts and provider usage objects), [`periods`] (billing periods),
//! [`limits`] (plans and the check decision), [`domain`] (ids, events, subscriptions,
//! alerts, invoices). Storage and HTTP live at the edge in later modules.

pub mod alerts;
pub mod auth;
pub mod billing;
pub mod domain;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod periods;
pub mod pricing;
pub mod service;
pub mod store;
pub mod usage;
