use chrono::{Datelike, TimeDelta, Timelike, Weekday};
use proptest::prelude::*;

use super::*;
use crate::periods::{Anchor, BillingCycle, Period, PeriodError, Schedule};

fn window_of(w: Window, at: DateTime<Utc>) -> Period {
    w.containing(at, &Schedule::calendar()).unwrap()
}

#[test]
fn windows_containing_an_instant_table() {
    let ms = |at: DateTime<Utc>, n| at + TimeDelta::milliseconds(n);
    // (case, window, instant, expected start, expected end)
    type Case = (
        &'static str,
        Window,
        DateTime<Utc>,
        DateTime<Utc>,
        DateTime<Utc>,
    );
    let cases: Vec<Case> = vec![
        (
            "minute, sub-second instant",
            Window::Minute,
            ms(utc(2025, 3, 14, 12, 34, 56), 789),
            utc(2025, 3, 14, 12, 34, 0),
            utc(2025, 3, 14, 12, 35, 0),
        ),
        (
            "minute, its first instant",
            Window::Minute,
            utc(2025, 3, 14, 12, 35, 0),
            utc(2025, 3, 14, 12, 35, 0),
            utc(2025, 3, 14, 12, 36, 0),
        ),
        (
            "hour, last second of the day",
            Window::Hour,
            utc(2025, 3, 14, 23, 59, 59),
            utc(2025, 3, 14, 23, 0, 0),
            day(2025, 3, 15),
        ),
        (
            "day, last second of the year",
            Window::Day,
            utc(2024, 12, 31, 23, 59, 59),
            day(2024, 12, 31),
            day(2025, 1, 1),
        ),
        (
            "day, the UTC day whatever daylight saving does elsewhere",
            Window::Day,
            utc(2025, 3, 30, 1, 30, 0),
            day(2025, 3, 30),
            day(2025, 3, 31),
        ),
        (
            "week, Sunday night belongs to the week of the Monday before",
            Window::Week,
            utc(2025, 3, 16, 23, 59, 59),
            day(2025, 3, 10),
            day(2025, 3, 17),
        ),
        (
            "week, Monday 00:00 starts a week",
            Window::Week,
            day(2025, 3, 17),
            day(2025, 3, 17),
            day(2025, 3, 24),
        ),
        (
            "week across a year end (ISO week 1 of 2025)",
            Window::Week,
            day(2025, 1, 1),
            day(2024, 12, 30),
            day(2025, 1, 6),
        ),
        (
            "week before the Unix epoch's first Monday",
            Window::Week,
            day(1970, 1, 1),
            day(1969, 12, 29),
            day(1970, 1, 5),
        ),
        (
            "month, leap day",
            Window::Month,
            utc(2024, 2, 29, 12, 0, 0),
            day(2024, 2, 1),
            day(2024, 3, 1),
        ),
        (
            "month, February of a common year",
            Window::Month,
            utc(2023, 2, 28, 23, 59, 59),
            day(2023, 2, 1),
            day(2023, 3, 1),
        ),
        (
            "month, 2100 is not a leap year",
            Window::Month,
            day(2100, 2, 28),
            day(2100, 2, 1),
            day(2100, 3, 1),
        ),
        (
            "month, 2000 is a leap year",
            Window::Month,
            day(2000, 2, 29),
            day(2000, 2, 1),
            day(2000, 3, 1),
        ),
        (
            "month, December ends at the new year",
            Window::Month,
            utc(2025, 12, 31, 23, 59, 59),
            day(2025, 12, 1),
            day(2026, 1, 1),
        ),
        (
            "period without a subscription: the calendar month",
            Window::Period,
            utc(2025, 4, 30, 12, 0, 0),
            day(2025, 4, 1),
            day(2025, 5, 1),
        ),
    ];
    for (name, w, at, start, end) in cases {
        assert_eq!(window_of(w, at), Period { start, end }, "{name}");
    }
}

#[test]
fn period_windows_follow_the_subscribers_schedule() {
    let anniversary = Schedule::new(
        Anchor::Anniversary,
        utc(2025, 1, 15, 9, 0, 0),
        BillingCycle::Monthly,
    );
    let at = utc(2025, 3, 15, 8, 59, 59);
    assert_eq!(
        Window::Period.containing(at, &anniversary).unwrap(),
        Period {
            start: utc(2025, 2, 15, 9, 0, 0),
            end: utc(2025, 3, 15, 9, 0, 0)
        }
    );
    assert_eq!(
        Window::Month.containing(at, &anniversary).unwrap(),
        Period {
            start: day(2025, 3, 1),
            end: day(2025, 4, 1)
        },
        "month is the calendar month whatever the schedule"
    );
}

#[test]
fn month_windows_last_as_long_as_their_month() {
    let days = |y, mo| window_of(Window::Month, day(y, mo, 10)).seconds() / 86_400;
    let cases = [
        (2024, 1, 31),
        (2024, 2, 29),
        (2025, 2, 28),
        (2100, 2, 28),
        (2000, 2, 29),
        (2025, 4, 30),
        (2025, 12, 31),
    ];
    for (y, mo, expected) in cases {
        assert_eq!(days(y, mo), expected, "{y}-{mo}");
    }
}

#[test]
fn instants_at_the_ends_of_time_are_errors_not_panics() {
    for w in Window::ALL {
        let last = w.containing(DateTime::<Utc>::MAX_UTC, &Schedule::calendar());
        assert_eq!(
            last,
            Err(PeriodError::OutOfRange),
            "{w}: its end is past chrono's range"
        );
        let first = DateTime::<Utc>::MIN_UTC;
        match w.containing(first, &Schedule::calendar()) {
            Ok(p) => assert!(p.contains(first), "{w}"),
            Err(e) => assert_eq!(e, PeriodError::OutOfRange, "{w}"),
        }
    }
}

#[test]
fn only_rate_limit_windows_count_calls_at_check() {
    let counting: Vec<Window> = Window::ALL
        .into_iter()
        .filter(|w| w.counts_calls_at_check())
        .collect();
    assert_eq!(counting, [Window::Minute, Window::Hour]);
}

#[test]
fn windows_are_snake_case_in_json() {
    for w in Window::ALL {
        let json = serde_json::to_value(w).unwrap();
        assert_eq!(json, serde_json::json!(w.as_str()));
        assert_eq!(serde_json::from_value::<Window>(json).unwrap(), w);
        assert_eq!(w.to_string(), w.as_str());
        assert_eq!(Window::parse(w.as_str()), Some(w));
    }
    for bad in ["fortnight", "Minute", "", "year"] {
        assert!(serde_json::from_value::<Window>(serde_json::json!(bad)).is_err());
        assert_eq!(Window::parse(bad), None, "{bad}");
    }
}

/// Instants from 1900 to the end of 9999, with sub-second parts.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (-2_208_988_800i64..253_402_300_800, 0u32..1_000_000_000)
        .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).unwrap())
}

fn window() -> impl Strategy<Value = Window> {
    prop::sample::select(Window::ALL.to_vec())
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (
        prop_oneof![Just(Anchor::Calendar), Just(Anchor::Anniversary)],
        0i64..4_102_444_800,
    )
        .prop_map(|(anchor, origin)| {
            Schedule::new(
                anchor,
                DateTime::from_timestamp(origin, 0).unwrap(),
                BillingCycle::Monthly,
            )
        })
}

proptest! {
    #[test]
    fn the_window_contains_the_instant_and_windows_tile_time(w in window(), at in instant(), s in schedule()) {
        let p = w.containing(at, &s).unwrap();
        prop_assert!(p.contains(at), "{w}: {p:?} does not contain {at}");
        // The next window starts where this one ends; the previous one ends where it starts.
        prop_assert_eq!(w.containing(p.end, &s).unwrap().start, p.end);
        let before = p.start - TimeDelta::nanoseconds(1);
        prop_assert_eq!(w.containing(before, &s).unwrap().end, p.start);
        // Every instant of the window finds the same window.
        prop_assert_eq!(w.containing(p.start, &s).unwrap(), p);
        prop_assert_eq!(w.containing(p.end - TimeDelta::nanoseconds(1), &s).unwrap(), p);
    }

    #[test]
    fn clock_windows_have_fixed_lengths_and_aligned_starts(at in instant()) {
        let cases = [
            (Window::Minute, 60),
            (Window::Hour, 3_600),
            (Window::Day, 86_400),
            (Window::Week, 604_800),
        ];
        for (w, seconds) in cases {
            let p = window_of(w, at);
            prop_assert_eq!(p.seconds(), seconds, "{}", w);
            prop_assert_eq!(p.start.nanosecond(), 0);
            prop_assert_eq!(p.start.second(), 0);
        }
        let hour = window_of(Window::Hour, at);
        prop_assert_eq!(hour.start.minute(), 0);
        let day = window_of(Window::Day, at);
        prop_assert_eq!((day.start.hour(), day.start.minute()), (0, 0));
        let week = window_of(Window::Week, at);
        prop_assert_eq!(week.start.weekday(), Weekday::Mon);
        prop_assert_eq!(week.start.hour(), 0);
        let month = window_of(Window::Month, at);
        prop_assert_eq!((month.start.day(), month.start.hour()), (1, 0));
        prop_assert!((28..=31).contains(&(month.seconds() / 86_400)));
    }

    #[test]
    fn shorter_windows_nest_in_longer_ones(at in instant()) {
        let inside = |a: Period, b: Period| b.start <= a.start && a.end <= b.end;
        let [minute, hour, day, week, month] = [
            Window::Minute, Window::Hour, Window::Day, Window::Week, Window::Month,
        ].map(|w| window_of(w, at));
        prop_assert!(inside(minute, hour));
        prop_assert!(inside(hour, day));
        prop_assert!(inside(day, week));
        prop_assert!(inside(day, month));
    }
}
