//! Router tests of the hot path, in-process on the SQLite store.

mod aggregate;
mod alert_resolved;
mod bad_input;
mod billing_rules;
mod budget_alerts;
mod budgets;
mod dashboard;
mod enforcement;
mod exact_bodies;
mod hot_path;
mod logs;
mod messages;
mod metrics;
mod org_alerts;
mod org_wallets;
mod orgs;
mod prepaid;
mod privacy;
mod reads;
mod review;
mod scopes;
mod subscriptions;
mod tenant;
mod tokens;
mod wallets;
mod web;
