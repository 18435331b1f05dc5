//! Router tests of the hot path, in-process on the SQLite store.

mod aggregate;
mod bad_input;
mod dashboard;
mod helpers;
mod hot_path;
mod logs;
mod messages;
mod metrics;
mod privacy;
mod reads;
mod subscriptions;
