//! Billing periods: calendar and anniversary months, yearly cycles, all UTC.
//!
//! Usage limits reset monthly whatever the billing cycle. A period is named by its start
//! date `YYYY-MM-DD`; query parameters also accept `YYYY-MM`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How often the plan's base price is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BillingCycle {
    #[default]
    Monthly,
    Yearly,
}

/// Where monthly periods start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Anchor {
    /// Day 1, 00:00 UTC; a subscription starting mid-month has a partial first period.
    #[default]
    Calendar,
    /// The subscription's start instant, every month; day 29–31 clamps to the month's end.
    Anniversary,
}

/// A half-open interval `[start, end)` of one monthly limit period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}
