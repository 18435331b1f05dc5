//! Fault injection: every failure of a check, a reservation, an ingest, a release or an
//! aggregation step leaves the store consistent, the client sees 503 `store_unavailable`,
//! and a retry of the same request completes the work exactly once (SQLite store behind
//! [`faulty::FaultyStore`], router in-process). With the emulator feature, DynamoDB
//! throttling and transaction conflicts injected by an SDK interceptor.

mod aggregate;
#[cfg(feature = "emulator")]
mod contention;
mod faulty;
mod helpers;
mod outbox;
mod overlap;
mod random;
mod sweep;
#[cfg(feature = "emulator")]
mod throttle;
mod tokens;
