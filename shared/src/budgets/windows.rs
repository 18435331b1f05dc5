//! Budget windows: the stretch of time a budget's usage is counted over, all UTC.
//!
//! `minute`, `hour` and `day` are aligned on the UTC clock; `week` is the ISO week
//! (Monday 00:00 UTC to the next Monday); `month` is the calendar month; `period` is the
//! subscriber's limit period from its [`Schedule`] (calendar months without a
//! subscription: pass [`Schedule::calendar`]). UTC has no daylight saving time, so every
//! minute, hour, day and week has the same length; windows are half-open `[start, end)`
//! and consecutive windows tile time.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::periods::{Period, PeriodError, Schedule};

/// How long a budget's usage is counted before it starts again from zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    Minute,
    Hour,
    Day,
    /// ISO week: Monday 00:00 UTC to the next Monday.
    Week,
    /// Calendar month: day 1, 00:00 UTC.
    Month,
    /// The subscriber's limit period (calendar month without a subscription).
    Period,
}

const MINUTE: i64 = 60;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;
/// 1970-01-05, the first Monday of the Unix epoch (1970-01-01 was a Thursday).
const FIRST_MONDAY: i64 = 4 * DAY;

impl Window {
    /// Every window, shortest first.
    pub const ALL: [Window; 6] = [
        Window::Minute,
        Window::Hour,
        Window::Day,
        Window::Week,
        Window::Month,
        Window::Period,
    ];

    /// The name used in JSON and in keys: `minute`, `hour`, `day`, `week`, `month`,
    /// `period`.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Week => "week",
            Window::Month => "month",
            Window::Period => "period",
        }
    }

    /// The window named `name` (the names of [`Window::as_str`]); `None` for any other.
    pub fn parse(name: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.as_str() == name)
    }

    /// The window containing `at` (`start <= at < end`). `period_schedule` is the
    /// schedule of the subscriber whose period a `period` window follows
    /// ([`Schedule::calendar`] without a subscription); the other windows ignore it.
    /// An instant whose window does not fit chrono's range is an error, never a panic.
    pub fn containing(
        self,
        at: DateTime<Utc>,
        period_schedule: &Schedule,
    ) -> Result<Period, PeriodError> {
        match self {
            Window::Minute => fixed(at, MINUTE, 0),
            Window::Hour => fixed(at, HOUR, 0),
            Window::Day => fixed(at, DAY, 0),
            Window::Week => fixed(at, WEEK, FIRST_MONDAY),
            Window::Month => Schedule::calendar().period_containing(at),
            Window::Period => period_schedule.period_containing(at),
        }
    }

    /// Whether an allowed check counts its call in this window at once: true for the
    /// rate-limit windows `minute` and `hour` (they count attempts). Tokens and cost
    /// still count when the event is recorded, and an event does not count its call
    /// again in these windows. In every other window calls count when recorded.
    pub fn counts_calls_at_check(self) -> bool {
        matches!(self, Window::Minute | Window::Hour)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The window of `len` seconds containing `at`, windows starting at `offset + k × len`
/// seconds after the Unix epoch. Sub-second parts of `at` fall in the window of their
/// whole second.
fn fixed(at: DateTime<Utc>, len: i64, offset: i64) -> Result<Period, PeriodError> {
    let secs = at.timestamp();
    let start = secs
        .checked_sub(offset)
        .map(|s| s.div_euclid(len))
        .and_then(|k| k.checked_mul(len))
        .and_then(|s| s.checked_add(offset))
        .ok_or(PeriodError::OutOfRange)?;
    let end = start.checked_add(len).ok_or(PeriodError::OutOfRange)?;
    let instant = |s| DateTime::<Utc>::from_timestamp(s, 0).ok_or(PeriodError::OutOfRange);
    Ok(Period {
        start: instant(start)?,
        end: instant(end)?,
    })
}
