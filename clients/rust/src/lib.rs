//! Client of meter (usage metering and usage-based subscriptions) for app backends: check limits before a paid AI
//! call, record its usage after, and guard the call so that a reservation is always settled
//! or released.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use meter_client::{GuardOptions, Meter, OnUnavailable};
//! use std::time::Duration;
//!
//! let meter = Meter::builder("http://127.0.0.1:8080", "mk_…")
//!     .timeout(Duration::from_secs(2))
//!     .on_unavailable(OnUnavailable::Deny)
//!     .build()?;
//! let out = meter
//!     .guard(GuardOptions::new("alice", "gpt-4o-mini").provider("openai").estimate(500, 200), || async {
//!         // call the provider; any `Serialize` response with a usage object
//!         Ok::<_, std::io::Error>(serde_json::json!({"usage": {"prompt_tokens": 480, "completion_tokens": 150}}))
//!     })
//!     .await?;
//! println!("recorded {:?}", out.record.events[0].cost_usd);
//! # Ok(()) }
//! ```
//!
//! Errors: [`Error::LimitExceeded`] carries the 429 details, [`Error::Unavailable`] means
//! meter could not answer in time (or answered 5xx after the retries), [`Error::Api`] is
//! any other error answer with its code, message and details.

mod client;
mod error;
mod guard;
mod types;
mod usage;

pub use client::{Meter, MeterBuilder, OnUnavailable};
pub use error::{ApiError, Error, GuardError, LimitExceeded, MeterUnavailable};
pub use guard::{GuardOptions, Guarded};
pub use types::*;
pub use usage::read_usage;
