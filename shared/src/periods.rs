//! Billing periods: calendar and anniversary months, yearly cycles, all UTC.
//!
//! Usage limits reset monthly whatever the billing cycle. A period is named by its start
//! date `YYYY-MM-DD`; query parameters also accept `YYYY-MM`.
//!
//! A [`Schedule`] turns a subscription (anchor, origin, cycle) into periods:
//! - **Calendar** anchor: limit periods are calendar months (day 1, 00:00 UTC), whenever
//!   the subscription started, so period keys are stable. A subscription that starts
//!   mid-month has a partial first billing period; its base price is prorated by
//!   [`Schedule::first_period_fraction`].
//! - **Anniversary** anchor: periods start every month at the origin's day and
//!   time-of-day; day 29–31 clamps to the month's last day, computed from the origin for
//!   every month, so the clamp never drifts (Jan 31 → Feb 28/29 → Mar 31 → Apr 30).
//!
//! Every computation uses chrono's checked operations: an instant outside chrono's range
//! is a [`PeriodError::OutOfRange`], never a panic.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use rust_decimal::Decimal;
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

/// Why a period could not be computed or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// The period would start or end outside the range of dates chrono represents.
    #[error("date out of the supported range")]
    OutOfRange,
    /// A `billing_period` parameter that is not `YYYY-MM` or `YYYY-MM-DD` (a real date).
    #[error("billing period `{0}` is not YYYY-MM or YYYY-MM-DD")]
    InvalidParam(String),
}

impl Period {
    /// The period's name: its start date, `YYYY-MM-DD`.
    pub fn name(&self) -> String {
        // `NaiveDate`'s Display is `%Y-%m-%d`, written without parsing a format string.
        self.start.date_naive().to_string()
    }

    /// Whether `at` lies in `[start, end)`.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end
    }

    /// Length of the period in whole seconds.
    pub fn seconds(&self) -> i64 {
        self.end.signed_duration_since(self.start).num_seconds()
    }

    /// See [`elapsed_fraction`].
    pub fn elapsed_fraction(&self, at: DateTime<Utc>) -> Decimal {
        elapsed_fraction(self, at)
    }
}

/// Seconds of `period` elapsed at `at` divided by the period's seconds, clamped to
/// `0..=1` (0 before the start, 1 at or after the end). Whole seconds, exact decimal
/// division: used for projections and proration.
pub fn elapsed_fraction(period: &Period, at: DateTime<Utc>) -> Decimal {
    let total = period.seconds();
    if total <= 0 {
        return if at >= period.end {
            Decimal::ONE
        } else {
            Decimal::ZERO
        };
    }
    let elapsed = at.signed_duration_since(period.start).num_seconds();
    ratio(elapsed, total)
}

/// `part / total` clamped to `0..=1`, for `total > 0` (1 otherwise).
fn ratio(part: i64, total: i64) -> Decimal {
    if total <= 0 {
        return Decimal::ONE;
    }
    Decimal::from(part.clamp(0, total))
        .checked_div(Decimal::from(total))
        .unwrap_or(Decimal::ONE)
}

/// Parses a `billing_period` query parameter: `YYYY-MM` (the first of that month) or
/// `YYYY-MM-DD`. Exactly four-digit years, two-digit months and days, a real date.
///
/// To find the period such a parameter names, use [`Schedule::period_for_param`], which
/// also knows whether the day was given.
pub fn parse_period_param(s: &str) -> Result<NaiveDate, PeriodError> {
    parse_param(s).map(|(date, _)| date)
}

/// The date and whether it was given with a day (`YYYY-MM-DD`) or not (`YYYY-MM`).
fn parse_param(s: &str) -> Result<(NaiveDate, bool), PeriodError> {
    let err = || PeriodError::InvalidParam(s.chars().take(40).collect());
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Result<u32, PeriodError> {
        let part = b.get(r).ok_or_else(err)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err(err());
        }
        Ok(part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let (with_day, day) = match b.len() {
        7 => (false, 1),
        10 if b[7] == b'-' => (true, digits(8..10)?),
        _ => return Err(err()),
    };
    if b[4] != b'-' {
        return Err(err());
    }
    let year = i32::try_from(digits(0..4)?).map_err(|_| err())?;
    let month = digits(5..7)?;
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or_else(err)?;
    Ok((date, with_day))
}

/// A user's period schedule: where monthly limit periods start and how often the base
/// price is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Schedule {
    pub anchor: Anchor,
    /// The subscription's start instant.
    pub origin: DateTime<Utc>,
    pub cycle: BillingCycle,
}

/// Months since year 0, January: a total order of months that is easy to step.
fn month_index(date: NaiveDate) -> i64 {
    i64::from(date.year()) * 12 + i64::from(date.month0())
}

/// `(year, month)` (month 1–12) of a month index.
fn year_month(index: i64) -> Result<(i32, u32), PeriodError> {
    let year = i32::try_from(index.div_euclid(12)).map_err(|_| PeriodError::OutOfRange)?;
    let month = u32::try_from(index.rem_euclid(12) + 1).map_err(|_| PeriodError::OutOfRange)?;
    Ok((year, month))
}

/// The last day (28–31) of a month.
fn last_day(year: i32, month: u32) -> Result<u32, PeriodError> {
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|first| first.checked_add_months(chrono::Months::new(1)))
        .and_then(|next| next.pred_opt())
        .map(|last| last.day())
        .ok_or(PeriodError::OutOfRange)
}

impl Schedule {
    pub fn new(anchor: Anchor, origin: DateTime<Utc>, cycle: BillingCycle) -> Self {
        Self {
            anchor,
            origin,
            cycle,
        }
    }

    /// The schedule of a user without a subscription: calendar months, monthly.
    pub fn calendar() -> Self {
        Self::new(
            Anchor::Calendar,
            DateTime::<Utc>::UNIX_EPOCH,
            BillingCycle::Monthly,
        )
    }

    /// The date on which the period of month `index` starts.
    fn start_date(&self, index: i64) -> Result<NaiveDate, PeriodError> {
        let (year, month) = year_month(index)?;
        let day = match self.anchor {
            Anchor::Calendar => 1,
            Anchor::Anniversary => self.origin.day().min(last_day(year, month)?),
        };
        NaiveDate::from_ymd_opt(year, month, day).ok_or(PeriodError::OutOfRange)
    }

    /// The instant at which the period of month `index` starts.
    fn start_of(&self, index: i64) -> Result<DateTime<Utc>, PeriodError> {
        let time = match self.anchor {
            Anchor::Calendar => NaiveTime::MIN,
            Anchor::Anniversary => self.origin.time(),
        };
        Ok(NaiveDateTime::new(self.start_date(index)?, time).and_utc())
    }

    /// The period that starts in month `index`.
    fn period_at(&self, index: i64) -> Result<Period, PeriodError> {
        let next = index.checked_add(1).ok_or(PeriodError::OutOfRange)?;
        Ok(Period {
            start: self.start_of(index)?,
            end: self.start_of(next)?,
        })
    }

    /// The month index of the period containing `at`.
    fn index_containing(&self, at: DateTime<Utc>) -> Result<i64, PeriodError> {
        let index = month_index(at.date_naive());
        if self.start_of(index)? <= at {
            Ok(index)
        } else {
            index.checked_sub(1).ok_or(PeriodError::OutOfRange)
        }
    }

    /// The monthly limit period containing `at` (`start <= at < end`).
    pub fn period_containing(&self, at: DateTime<Utc>) -> Result<Period, PeriodError> {
        self.period_at(self.index_containing(at)?)
    }

    /// The period that starts where `period` ends.
    pub fn next(&self, period: &Period) -> Result<Period, PeriodError> {
        self.period_containing(period.end)
    }

    /// The period that ends where `period` starts.
    pub fn previous(&self, period: &Period) -> Result<Period, PeriodError> {
        let before = period
            .start
            .checked_sub_signed(TimeDelta::nanoseconds(1))
            .ok_or(PeriodError::OutOfRange)?;
        self.period_containing(before)
    }

    /// The last `n` periods, oldest first, ending with the period containing `at`. These
    /// are real periods (months of their own length), never 30-day steps. `n = 0` gives
    /// an empty list.
    pub fn last_n(&self, at: DateTime<Utc>, n: usize) -> Result<Vec<Period>, PeriodError> {
        let mut periods = Vec::with_capacity(n.min(64));
        if n == 0 {
            return Ok(periods);
        }
        let mut current = self.period_containing(at)?;
        periods.push(current);
        while periods.len() < n {
            current = self.previous(&current)?;
            periods.push(current);
        }
        periods.reverse();
        Ok(periods)
    }

    /// The period a `billing_period` parameter names: for `YYYY-MM`, the period that
    /// starts in that month (every month has exactly one period start, with either
    /// anchor); for `YYYY-MM-DD`, the latest period starting on or before that date (so
    /// a period's own name finds it).
    pub fn period_for_param(&self, param: &str) -> Result<Period, PeriodError> {
        let (date, with_day) = parse_param(param)?;
        let mut index = month_index(date);
        if with_day && self.start_date(index)? > date {
            index = index.checked_sub(1).ok_or(PeriodError::OutOfRange)?;
        }
        self.period_at(index)
    }

    /// Whether `period` starts a billing cycle: every period when monthly; when yearly,
    /// the period that starts each year of the subscription (the period containing the
    /// origin, and every twelfth period from it, before or after).
    pub fn starts_cycle(&self, period: &Period) -> Result<bool, PeriodError> {
        match self.cycle {
            BillingCycle::Monthly => Ok(true),
            BillingCycle::Yearly => Ok(self.months_from_origin(period.start)?.rem_euclid(12) == 0),
        }
    }

    /// How many periods lie between the period containing the origin and the one
    /// containing `at` (negative before the origin).
    fn months_from_origin(&self, at: DateTime<Utc>) -> Result<i64, PeriodError> {
        let origin = self.index_containing(self.origin)?;
        self.index_containing(at)?
            .checked_sub(origin)
            .ok_or(PeriodError::OutOfRange)
    }

    /// The full billing cycle containing `at`: its limit period when monthly; when
    /// yearly, the twelve periods starting with the cycle's first. With a calendar
    /// anchor the first cycle starts at the beginning of the origin's month (see
    /// [`Schedule::first_period_fraction`] for the part of it that is billed).
    pub fn cycle_containing(&self, at: DateTime<Utc>) -> Result<Period, PeriodError> {
        let index = self.index_containing(at)?;
        let months = match self.cycle {
            BillingCycle::Monthly => return self.period_at(index),
            BillingCycle::Yearly => 12,
        };
        let offset = self.months_from_origin(at)?.rem_euclid(months);
        let first = index.checked_sub(offset).ok_or(PeriodError::OutOfRange)?;
        let after = first.checked_add(months).ok_or(PeriodError::OutOfRange)?;
        Ok(Period {
            start: self.start_of(first)?,
            end: self.start_of(after)?,
        })
    }

    /// The share of the first billing cycle's base price that is charged: with a
    /// calendar anchor, the seconds from the origin to the end of its cycle divided by
    /// the cycle's seconds (a subscription starting on the 16th of a 31-day month pays
    /// 16/31 of the month; exactly 1 when it starts at 00:00 on day 1); with an
    /// anniversary anchor, always 1 (periods start at the origin).
    pub fn first_period_fraction(&self) -> Result<Decimal, PeriodError> {
        if self.anchor == Anchor::Anniversary {
            return Ok(Decimal::ONE);
        }
        let cycle = self.cycle_containing(self.origin)?;
        let remaining = cycle.end.signed_duration_since(self.origin).num_seconds();
        Ok(ratio(remaining, cycle.seconds()))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    use super::*;

    fn utc(y: i32, m: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, mi, s).unwrap()
    }

    fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        utc(y, m, d, 0, 0, 0)
    }

    fn monthly(anchor: Anchor, origin: DateTime<Utc>) -> Schedule {
        Schedule::new(anchor, origin, BillingCycle::Monthly)
    }

    #[test]
    fn calendar_periods_are_calendar_months_whatever_the_origin() {
        let s = monthly(Anchor::Calendar, utc(2025, 3, 16, 13, 5, 0));
        let p = s.period_containing(utc(2025, 3, 31, 23, 59, 59)).unwrap();
        assert_eq!(
            p,
            Period {
                start: day(2025, 3, 1),
                end: day(2025, 4, 1)
            }
        );
        assert_eq!(p.name(), "2025-03-01");
        let p = s.period_containing(day(2025, 4, 1)).unwrap();
        assert_eq!(
            p.start,
            day(2025, 4, 1),
            "the end instant belongs to the next period"
        );
        assert_eq!(
            s.period_containing(day(2024, 12, 31)).unwrap().end,
            day(2025, 1, 1)
        );
    }

    #[test]
    fn anniversary_on_the_31st_clamps_without_drifting_through_leap_and_common_februaries() {
        let s = monthly(Anchor::Anniversary, utc(2023, 12, 31, 10, 30, 15));
        let mut p = s.period_containing(utc(2023, 12, 31, 10, 30, 15)).unwrap();
        let mut starts = vec![p.start];
        for _ in 0..15 {
            p = s.next(&p).unwrap();
            starts.push(p.start);
        }
        let t = |y, m, d| utc(y, m, d, 10, 30, 15);
        assert_eq!(
            starts,
            vec![
                t(2023, 12, 31),
                t(2024, 1, 31),
                t(2024, 2, 29), // leap year
                t(2024, 3, 31), // back to the 31st: no drift
                t(2024, 4, 30),
                t(2024, 5, 31),
                t(2024, 6, 30),
                t(2024, 7, 31),
                t(2024, 8, 31),
                t(2024, 9, 30),
                t(2024, 10, 31),
                t(2024, 11, 30),
                t(2024, 12, 31),
                t(2025, 1, 31),
                t(2025, 2, 28), // common year
                t(2025, 3, 31),
            ]
        );
    }

    #[test]
    fn anniversary_boundaries_are_exact_to_the_second() {
        let s = monthly(Anchor::Anniversary, utc(2025, 1, 15, 9, 0, 0));
        let before = s.period_containing(utc(2025, 3, 15, 8, 59, 59)).unwrap();
        assert_eq!(
            before,
            Period {
                start: utc(2025, 2, 15, 9, 0, 0),
                end: utc(2025, 3, 15, 9, 0, 0)
            }
        );
        let at = s.period_containing(utc(2025, 3, 15, 9, 0, 0)).unwrap();
        assert_eq!(at.start, utc(2025, 3, 15, 9, 0, 0));
        assert_eq!(at.name(), "2025-03-15");
        // Before the origin the schedule extends backwards the same way.
        let early = s.period_containing(utc(2024, 12, 20, 0, 0, 0)).unwrap();
        assert_eq!(early.start, utc(2024, 12, 15, 9, 0, 0));
    }

    #[test]
    fn anniversary_on_feb_29_keeps_day_29_in_later_months() {
        let s = monthly(Anchor::Anniversary, day(2024, 2, 29));
        let p = s.period_containing(day(2025, 2, 28)).unwrap();
        assert_eq!(
            p,
            Period {
                start: day(2025, 2, 28),
                end: day(2025, 3, 29)
            }
        );
    }

    #[test]
    fn last_n_on_march_31_gives_six_distinct_consecutive_real_months() {
        let s = Schedule::calendar();
        let periods = s.last_n(utc(2025, 3, 31, 12, 0, 0), 6).unwrap();
        let names: Vec<String> = periods.iter().map(Period::name).collect();
        assert_eq!(
            names,
            [
                "2024-10-01",
                "2024-11-01",
                "2024-12-01",
                "2025-01-01",
                "2025-02-01",
                "2025-03-01"
            ]
        );
        for pair in periods.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        assert_eq!(periods[4].seconds(), 28 * 86_400);
        assert!(s.last_n(day(2025, 3, 31), 0).unwrap().is_empty());
    }

    #[test]
    fn last_n_on_an_anniversary_schedule_follows_clamped_starts() {
        let s = monthly(Anchor::Anniversary, day(2024, 8, 31));
        let names: Vec<String> = s
            .last_n(day(2025, 3, 31), 4)
            .unwrap()
            .iter()
            .map(Period::name)
            .collect();
        assert_eq!(
            names,
            ["2024-12-31", "2025-01-31", "2025-02-28", "2025-03-31"]
        );
    }

    #[test]
    fn previous_undoes_next() {
        let s = monthly(Anchor::Anniversary, utc(2024, 1, 30, 23, 59, 59));
        let p = s.period_containing(day(2024, 2, 10)).unwrap();
        assert_eq!(s.previous(&s.next(&p).unwrap()).unwrap(), p);
        assert_eq!(s.next(&s.previous(&p).unwrap()).unwrap(), p);
    }

    #[test]
    fn yearly_cycle_starting_mid_year_starts_every_twelfth_period() {
        let s = Schedule::new(
            Anchor::Anniversary,
            utc(2024, 7, 31, 8, 0, 0),
            BillingCycle::Yearly,
        );
        let mut p = s.period_containing(s.origin).unwrap();
        let mut starting = Vec::new();
        for _ in 0..25 {
            if s.starts_cycle(&p).unwrap() {
                starting.push(p.name());
            }
            p = s.next(&p).unwrap();
        }
        assert_eq!(starting, ["2024-07-31", "2025-07-31", "2026-07-31"]);
        let cycle = s.cycle_containing(utc(2025, 2, 28, 9, 0, 0)).unwrap();
        assert_eq!(
            cycle,
            Period {
                start: utc(2024, 7, 31, 8, 0, 0),
                end: utc(2025, 7, 31, 8, 0, 0)
            }
        );
    }

    #[test]
    fn yearly_calendar_cycle_runs_from_the_origin_month() {
        let s = Schedule::new(
            Anchor::Calendar,
            utc(2024, 6, 16, 0, 0, 0),
            BillingCycle::Yearly,
        );
        assert!(s
            .starts_cycle(&s.period_containing(day(2024, 6, 20)).unwrap())
            .unwrap());
        assert!(!s
            .starts_cycle(&s.period_containing(day(2024, 7, 1)).unwrap())
            .unwrap());
        assert!(s
            .starts_cycle(&s.period_containing(day(2025, 6, 1)).unwrap())
            .unwrap());
        let cycle = s.cycle_containing(day(2025, 1, 1)).unwrap();
        assert_eq!(
            cycle,
            Period {
                start: day(2024, 6, 1),
                end: day(2025, 6, 1)
            }
        );
        // 2024-06-16 .. 2025-06-01 = 350 of 365 days.
        assert_eq!(
            s.first_period_fraction().unwrap(),
            Decimal::from(350) / Decimal::from(365)
        );
    }

    #[test]
    fn monthly_cycles_start_every_period() {
        let s = monthly(Anchor::Calendar, day(2025, 1, 1));
        assert!(s
            .starts_cycle(&s.period_containing(day(2031, 9, 9)).unwrap())
            .unwrap());
        assert_eq!(
            s.cycle_containing(day(2025, 2, 3)).unwrap(),
            s.period_containing(day(2025, 2, 3)).unwrap()
        );
    }

    #[test]
    fn calendar_first_period_fraction_is_prorated_by_seconds() {
        let cases = [
            // (origin, expected fraction of the first month billed)
            (day(2025, 3, 1), dec!(1)),
            (day(2025, 3, 16), Decimal::from(16) / Decimal::from(31)),
            (day(2024, 2, 15), Decimal::from(15) / Decimal::from(29)),
            (
                utc(2025, 4, 30, 12, 0, 0),
                Decimal::from(43_200) / Decimal::from(30 * 86_400),
            ),
        ];
        for (origin, expected) in cases {
            let s = monthly(Anchor::Calendar, origin);
            assert_eq!(
                s.first_period_fraction().unwrap(),
                expected,
                "origin {origin}"
            );
        }
        let anniversary = monthly(Anchor::Anniversary, day(2025, 3, 16));
        assert_eq!(anniversary.first_period_fraction().unwrap(), Decimal::ONE);
    }

    #[test]
    fn elapsed_fraction_is_clamped_and_exact() {
        let p = Period {
            start: day(2025, 4, 1),
            end: day(2025, 5, 1),
        };
        assert_eq!(elapsed_fraction(&p, day(2025, 3, 1)), Decimal::ZERO);
        assert_eq!(elapsed_fraction(&p, day(2025, 4, 1)), Decimal::ZERO);
        assert_eq!(elapsed_fraction(&p, day(2025, 4, 16)), dec!(0.5));
        assert_eq!(elapsed_fraction(&p, day(2025, 5, 1)), Decimal::ONE);
        assert_eq!(elapsed_fraction(&p, day(2026, 1, 1)), Decimal::ONE);
        let empty = Period {
            start: day(2025, 4, 1),
            end: day(2025, 4, 1),
        };
        assert_eq!(elapsed_fraction(&empty, day(2025, 4, 1)), Decimal::ONE);
    }

    #[test]
    fn period_params_accept_month_and_date_forms_only() {
        let ok = [
            ("2025-03", NaiveDate::from_ymd_opt(2025, 3, 1)),
            ("2025-03-01", NaiveDate::from_ymd_opt(2025, 3, 1)),
            ("2024-02-29", NaiveDate::from_ymd_opt(2024, 2, 29)),
            ("9999-12", NaiveDate::from_ymd_opt(9999, 12, 1)),
        ];
        for (param, expected) in ok {
            assert_eq!(parse_period_param(param).ok(), expected, "{param}");
        }
        let bad = [
            "",
            "2025",
            "2025-3",
            "2025-13",
            "2025-00",
            "2025-02-30",
            "2023-02-29",
            "2025/03",
            "2025-03-1",
            "+2025-03",
            "2025-03-01T00:00",
            "२०२५-03",
            "2025-03-0a",
            "-025-03",
        ];
        for param in bad {
            assert!(
                matches!(parse_period_param(param), Err(PeriodError::InvalidParam(_))),
                "{param} should be rejected"
            );
        }
    }

    #[test]
    fn period_params_find_the_named_period() {
        let s = monthly(Anchor::Anniversary, utc(2025, 1, 15, 9, 30, 0));
        let start = |p: &str| s.period_for_param(p).unwrap().name();
        assert_eq!(start("2025-03"), "2025-03-15");
        assert_eq!(start("2025-03-15"), "2025-03-15");
        assert_eq!(start("2025-03-14"), "2025-02-15");
        assert_eq!(start("2025-03-01"), "2025-02-15");
        let c = Schedule::calendar();
        assert_eq!(c.period_for_param("2025-03").unwrap().name(), "2025-03-01");
        assert_eq!(
            c.period_for_param("2025-03-20").unwrap().name(),
            "2025-03-01"
        );
    }

    #[test]
    fn extreme_instants_are_errors_not_panics() {
        let s = monthly(Anchor::Anniversary, day(2025, 1, 31));
        assert_eq!(
            s.period_containing(DateTime::<Utc>::MAX_UTC),
            Err(PeriodError::OutOfRange)
        );
        assert_eq!(
            s.period_containing(DateTime::<Utc>::MIN_UTC),
            Err(PeriodError::OutOfRange)
        );
        let p = s.period_containing(utc(9999, 12, 31, 23, 59, 59)).unwrap();
        assert_eq!(p.start, day(9999, 12, 31));
        assert!(s.next(&p).is_ok(), "year 10000 is still in chrono's range");
    }

    /// Instants from 1970 to the end of 9999, with sub-second parts.
    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        (0i64..253_402_300_800, 0u32..1_000_000_000)
            .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).unwrap())
    }

    fn schedule() -> impl Strategy<Value = Schedule> {
        (
            prop_oneof![Just(Anchor::Calendar), Just(Anchor::Anniversary)],
            instant(),
            prop_oneof![Just(BillingCycle::Monthly), Just(BillingCycle::Yearly)],
        )
            .prop_map(|(anchor, origin, cycle)| Schedule::new(anchor, origin, cycle))
    }

    proptest! {
        #[test]
        fn period_containing_contains_the_instant(s in schedule(), at in instant()) {
            let p = s.period_containing(at).unwrap();
            prop_assert!(p.contains(at), "{p:?} does not contain {at}");
            let days = p.seconds() / 86_400;
            prop_assert!((28..=31).contains(&days), "{p:?} lasts {days} days");
            prop_assert_eq!(p.start.date_naive().day(), s.start_date(month_index(p.start.date_naive())).unwrap().day());
        }

        #[test]
        fn consecutive_periods_are_contiguous_and_never_overlap(s in schedule(), at in instant(), n in 1usize..30) {
            let periods = s.last_n(at, n).unwrap();
            prop_assert_eq!(periods.len(), n);
            prop_assert!(periods[n - 1].contains(at));
            for pair in periods.windows(2) {
                prop_assert_eq!(pair[0].end, pair[1].start);
                prop_assert!(pair[0].start < pair[0].end);
                prop_assert_eq!(s.next(&pair[0]).unwrap(), pair[1]);
                prop_assert_eq!(s.previous(&pair[1]).unwrap(), pair[0]);
            }
        }

        #[test]
        fn exactly_one_in_twelve_periods_starts_a_yearly_cycle(s in schedule(), at in instant()) {
            let s = Schedule { cycle: BillingCycle::Yearly, ..s };
            let periods = s.last_n(at, 12).unwrap();
            let starting = periods.iter().filter(|p| s.starts_cycle(p).unwrap()).count();
            prop_assert_eq!(starting, 1);
            let cycle = s.cycle_containing(at).unwrap();
            prop_assert!(cycle.contains(at));
            prop_assert!(s.starts_cycle(&s.period_containing(cycle.start).unwrap()).unwrap());
        }

        #[test]
        fn a_period_name_finds_its_period(s in schedule(), at in instant()) {
            let p = s.period_containing(at).unwrap();
            prop_assert_eq!(s.period_for_param(&p.name()).unwrap(), p);
            prop_assert_eq!(s.period_for_param(&p.start.format("%Y-%m").to_string()).unwrap(), p);
        }

        #[test]
        fn first_period_fraction_is_within_zero_and_one(s in schedule()) {
            let f = s.first_period_fraction().unwrap();
            prop_assert!(f > Decimal::ZERO && f <= Decimal::ONE, "{f}");
        }
    }
}
