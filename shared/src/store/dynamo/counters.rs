//! Counter increments, and where each lands: the state item or a period item.
//!
//! An increment names what it counts — (period, field, provider), a period's write counter
//! or its pending adjustment — not an attribute. [`Increments::render`] places it once the
//! writer knows which periods are closed: limit counters of an open period on the state
//! item (`c|<period id>|<code>|<provider>`, so a guard compares one attribute), of a closed
//! period on its period item; display-only counts always on the period item; write
//! counters of open periods and adjustments on the state item.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::codec::{count_of, decimal_of, n, Item};
use super::expressions::{Expr, Update};
use super::layout::{self, AdjustmentPart, Field};
use crate::domain::{ProviderId, UsageEvent};
use crate::store::{Adjustment, StoreError, StoreResult};
use crate::usage::{PeriodUsage, ProviderUsage, Tally};

/// What an increment counts within its period.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot {
    /// A counter of one provider, or of all (`None`, the `*` totals of the `*_used` fields).
    Counter(Field, Option<ProviderId>),
    /// The period's write counter (state item, open periods only).
    Writes,
    /// The period's pending adjustment (state item).
    Adjust(AdjustmentPart),
}

/// Summed increments by (period, slot), applied with one `ADD` each.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Increments(pub BTreeMap<(DateTime<Utc>, Slot), Decimal>);

/// Where a period's writes go.
pub trait Placement {
    /// Whether the period starting at `start` is closed (starts before `billed_to`).
    fn closed(&self, start: DateTime<Utc>) -> bool;
}

/// Every period open: the common path, whose state write requires it (see
/// [`open_condition`]).
pub struct AllOpen;

impl Placement for AllOpen {
    fn closed(&self, _: DateTime<Utc>) -> bool {
        false
    }
}

/// Periods starting before a known `billed_to` text are closed.
pub struct BilledTo<'a>(pub Option<&'a str>);

impl Placement for BilledTo<'_> {
    fn closed(&self, start: DateTime<Utc>) -> bool {
        self.0
            .is_some_and(|b| layout::billed_to(start).as_str() < b)
    }
}

/// What one period item gets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PeriodWrite {
    pub adds: BTreeMap<String, Decimal>,
    /// The period is closed: its limit counters are on this item (sets the marker).
    pub closed: bool,
}

impl PeriodWrite {
    /// The update of the period item (`None` when there is nothing to write).
    pub fn update(&self) -> Option<Update> {
        if self.adds.is_empty() && !self.closed {
            return None;
        }
        let mut u = Update::new();
        for (attr, by) in &self.adds {
            u.add(attr, n(by));
        }
        if self.closed {
            u.set(layout::PERIOD_CLOSED, AttributeValue::Bool(true));
        }
        Some(u)
    }
}

/// Increments placed on items.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// `ADD`s on the state item (zeros dropped).
    pub state: BTreeMap<String, Decimal>,
    /// Writes of each period item.
    pub periods: BTreeMap<DateTime<Utc>, PeriodWrite>,
    /// Open periods with attributes written on the state item: the state write must
    /// require that they are still open.
    pub open: BTreeSet<DateTime<Utc>>,
}

impl Rendered {
    /// Adds the state `ADD`s to `u`.
    pub fn add_state(&self, u: &mut Update) {
        for (attr, by) in &self.state {
            u.add(attr, n(by));
        }
    }
}

/// `attribute_not_exists(billed_to) OR billed_to <= :earliest`: every period from
/// `earliest` on is still open.
pub fn open_condition(x: &mut Expr, earliest: DateTime<Utc>) -> String {
    let b = x.name(layout::BILLED_TO);
    let v = x.value(super::codec::s(layout::billed_to(earliest)));
    format!("attribute_not_exists({b}) OR {b} <= {v}")
}

/// `billed_to` is still exactly `billed` (absent for `None`).
pub fn billed_condition(x: &mut Expr, billed: Option<&str>) -> String {
    let b = x.name(layout::BILLED_TO);
    match billed {
        Some(v) => format!("{b} = {}", x.value(super::codec::s(v))),
        None => format!("attribute_not_exists({b})"),
    }
}

impl Increments {
    pub fn add(&mut self, period: DateTime<Utc>, slot: Slot, by: Decimal) -> StoreResult<()> {
        let entry = self.0.entry((period, slot)).or_default();
        *entry = entry
            .checked_add(by)
            .ok_or_else(|| StoreError::Overflow("counter increment".into()))?;
        Ok(())
    }

    fn counter(
        &mut self,
        period: DateTime<Utc>,
        field: Field,
        provider: Option<&ProviderId>,
        by: Decimal,
    ) -> StoreResult<()> {
        self.add(period, Slot::Counter(field, provider.cloned()), by)
    }

    fn add_used(
        &mut self,
        period: DateTime<Utc>,
        provider: &ProviderId,
        t: &Tally,
        sign: Decimal,
    ) -> StoreResult<()> {
        for p in [Some(provider), None] {
            self.counter(period, Field::CallsUsed, p, Decimal::from(t.calls) * sign)?;
            self.counter(period, Field::TokensUsed, p, Decimal::from(t.tokens) * sign)?;
            self.counter(period, Field::CostUsed, p, t.cost_usd * sign)?;
        }
        Ok(())
    }

    fn add_held(
        &mut self,
        period: DateTime<Utc>,
        provider: &ProviderId,
        t: &Tally,
        sign: Decimal,
    ) -> StoreResult<()> {
        let p = Some(provider);
        self.counter(period, Field::CallsHeld, p, Decimal::from(t.calls) * sign)?;
        self.counter(period, Field::TokensHeld, p, Decimal::from(t.tokens) * sign)?;
        self.counter(period, Field::CostHeld, p, t.cost_usd * sign)
    }

    /// A write that changes attributes of `period` on the state item moves its write
    /// counter (a close that moves the period's attributes conditions on it).
    pub fn touch(&mut self, period: DateTime<Utc>) -> StoreResult<()> {
        self.add(period, Slot::Writes, Decimal::ONE)
    }

    /// What recording `e` adds to its period's counters (and its write counter). The
    /// error count is always written (0 or 1), so every event's period item exists.
    pub fn record(&mut self, e: &UsageEvent) -> StoreResult<()> {
        let (period, p) = (e.period_start, Some(&e.provider));
        self.add_used(period, &e.provider, &e.tally(), Decimal::ONE)?;
        self.touch(period)?;
        let one = |yes: bool| if yes { Decimal::ONE } else { Decimal::ZERO };
        self.counter(period, Field::Unpriced, p, one(e.cost_usd.is_none()))?;
        self.counter(period, Field::Estimated, p, one(e.estimated))?;
        self.counter(
            period,
            Field::Errors,
            p,
            one(e.status_code.is_some_and(|c| c >= 400)),
        )?;
        if let Some(ms) = e.latency_ms {
            self.counter(period, Field::LatencySum, p, Decimal::from(ms))?;
            self.counter(period, Field::LatencyCount, p, Decimal::ONE)?;
        }
        Ok(())
    }

    /// Pricing an unpriced event of `period` at `cost`: cost moves by exactly `cost`, the
    /// event is no longer unpriced, and the period's write counter moves.
    pub fn price(
        &mut self,
        period: DateTime<Utc>,
        provider: &ProviderId,
        cost: Decimal,
    ) -> StoreResult<()> {
        for p in [Some(provider), None] {
            self.counter(period, Field::CostUsed, p, cost)?;
        }
        self.counter(period, Field::Unpriced, Some(provider), -Decimal::ONE)?;
        self.touch(period)
    }

    /// One change of `cost` to an invoiced period, pending in its adjustment.
    pub fn adjust(&mut self, period: DateTime<Utc>, cost: Decimal) -> StoreResult<()> {
        self.add(period, Slot::Adjust(AdjustmentPart::Events), Decimal::ONE)?;
        self.add(period, Slot::Adjust(AdjustmentPart::Cost), cost)
    }

    /// Holding `held`: counts as used and as held.
    pub fn hold(
        &mut self,
        period: DateTime<Utc>,
        provider: &ProviderId,
        held: &Tally,
    ) -> StoreResult<()> {
        self.add_used(period, provider, held, Decimal::ONE)?;
        self.add_held(period, provider, held, Decimal::ONE)?;
        self.touch(period)
    }

    /// Returning `held` (settle, release, expire).
    pub fn unhold(
        &mut self,
        period: DateTime<Utc>,
        provider: &ProviderId,
        held: &Tally,
    ) -> StoreResult<()> {
        self.add_used(period, provider, held, -Decimal::ONE)?;
        self.add_held(period, provider, held, -Decimal::ONE)?;
        self.touch(period)
    }

    /// Places every increment (see the module). Zeros are dropped, but for the error
    /// count on a period item, which keeps the item of every recorded event's period.
    pub fn render(&self, placement: &dyn Placement) -> Rendered {
        let mut out = Rendered::default();
        for ((period, slot), by) in &self.0 {
            let closed = placement.closed(*period);
            match slot {
                Slot::Counter(field, provider) if field.is_limit() => {
                    if closed {
                        let w = out.periods.entry(*period).or_default();
                        w.closed = true;
                        if !by.is_zero() {
                            w.adds
                                .insert(layout::period_counter(*field, provider.as_ref()), *by);
                        }
                    } else if !by.is_zero() {
                        out.state
                            .insert(layout::counter(*period, *field, provider.as_ref()), *by);
                        out.open.insert(*period);
                    }
                }
                Slot::Counter(field, provider) => {
                    if !by.is_zero() || *field == Field::Errors {
                        out.periods
                            .entry(*period)
                            .or_default()
                            .adds
                            .insert(layout::period_counter(*field, provider.as_ref()), *by);
                    }
                }
                Slot::Writes => {
                    if !closed && !by.is_zero() {
                        out.state.insert(layout::writes(*period), *by);
                        out.open.insert(*period);
                    }
                }
                Slot::Adjust(part) => {
                    if !by.is_zero() {
                        out.state.insert(layout::adjustment(*period, *part), *by);
                    }
                }
            }
        }
        out
    }
}

/// Raw counters of one provider.
#[derive(Default, Clone)]
pub struct Raw {
    fields: BTreeMap<Field, Decimal>,
}

impl Raw {
    fn get(&self, f: Field) -> Decimal {
        self.fields.get(&f).copied().unwrap_or_default()
    }

    fn add(&mut self, f: Field, v: Decimal) -> StoreResult<()> {
        let slot = self.fields.entry(f).or_default();
        *slot = slot
            .checked_add(v)
            .ok_or_else(|| StoreError::Overflow("counter".into()))?;
        Ok(())
    }
}

/// Counters of one period by provider, gathered from items.
#[derive(Default, Clone)]
pub struct RawPeriod(pub BTreeMap<ProviderId, Raw>);

impl RawPeriod {
    /// Adds the state item's counters of `start` (the limit counters of an open period).
    pub fn add_state(&mut self, state: &Item, start: DateTime<Utc>) -> StoreResult<()> {
        for (name, value) in state {
            let Some((period, field, Some(provider))) = layout::parse_counter(name) else {
                continue;
            };
            if period == start {
                self.add(provider, field, value)?;
            }
        }
        Ok(())
    }

    /// Adds a period item's counters; `limits` whether its limit counters count too.
    pub fn add_period_item(&mut self, item: &Item, limits: bool) -> StoreResult<()> {
        for (name, value) in item {
            let Some((field, Some(provider))) = layout::parse_period_counter(name) else {
                continue;
            };
            if field.is_limit() && !limits {
                continue;
            }
            self.add(provider, field, value)?;
        }
        Ok(())
    }

    fn add(&mut self, provider: &str, field: Field, value: &AttributeValue) -> StoreResult<()> {
        let provider =
            ProviderId::parse(provider).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.0
            .entry(provider)
            .or_default()
            .add(field, decimal_of(value)?)
    }

    /// The usage these counters stand for (`*_used` includes holds; recorded = used − held).
    pub fn usage(&self) -> StoreResult<PeriodUsage> {
        let mut usage = PeriodUsage::default();
        for (provider, r) in &self.0 {
            let held = Tally {
                calls: count_of(r.get(Field::CallsHeld), "calls held")?,
                tokens: count_of(r.get(Field::TokensHeld), "tokens held")?,
                cost_usd: r.get(Field::CostHeld),
            };
            let recorded = Tally {
                calls: count_of(r.get(Field::CallsUsed) - r.get(Field::CallsHeld), "calls")?,
                tokens: count_of(
                    r.get(Field::TokensUsed) - r.get(Field::TokensHeld),
                    "tokens",
                )?,
                cost_usd: r.get(Field::CostUsed) - r.get(Field::CostHeld),
            };
            let pu = ProviderUsage {
                recorded,
                held,
                unpriced_calls: count_of(r.get(Field::Unpriced), "unpriced")?,
                estimated_calls: count_of(r.get(Field::Estimated), "estimated")?,
                error_calls: count_of(r.get(Field::Errors), "errors")?,
                latency_ms_sum: count_of(r.get(Field::LatencySum), "latency sum")?,
                latency_count: count_of(r.get(Field::LatencyCount), "latency count")?,
            };
            if pu != ProviderUsage::default() {
                usage.by_provider.insert(provider.clone(), pu);
            }
        }
        Ok(usage)
    }
}

/// Starts of the periods with attributes on a state item (counters, fired keys, write
/// counters), oldest first.
pub fn state_periods(item: &Item) -> BTreeSet<DateTime<Utc>> {
    item.keys()
        .filter_map(|name| layout::period_of_attr(name))
        .collect()
}

/// Starts of the periods of a state item with recorded usage, oldest first.
pub fn recorded_periods(item: &Item) -> StoreResult<Vec<DateTime<Utc>>> {
    let mut out = Vec::new();
    for start in state_periods(item) {
        let mut raw = RawPeriod::default();
        raw.add_state(item, start)?;
        if raw
            .usage()?
            .by_provider
            .values()
            .any(|u| u.recorded.calls > 0)
        {
            out.push(start);
        }
    }
    Ok(out)
}

/// The pending adjustments stored in a state item, by period start (zeros skipped).
pub fn adjustments(item: &Item) -> StoreResult<BTreeMap<DateTime<Utc>, Adjustment>> {
    let mut out: BTreeMap<DateTime<Utc>, Adjustment> = BTreeMap::new();
    for (name, value) in item {
        let Some((period, part)) = layout::parse_adjustment(name) else {
            continue;
        };
        let a = out.entry(period).or_default();
        let v = decimal_of(value)?;
        match part {
            AdjustmentPart::Events => a.events = count_of(v, name)?,
            AdjustmentPart::Cost => a.cost_usd = v,
        }
    }
    out.retain(|_, a| *a != Adjustment::default());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::dynamo::codec::n;
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    fn march() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap()
    }

    fn gemini() -> ProviderId {
        ProviderId::parse("gemini").unwrap()
    }

    #[test]
    fn holds_count_as_used_and_settling_returns_them() {
        let held = Tally {
            calls: 1,
            tokens: 1000,
            cost_usd: dec!(0.25),
        };
        let mut inc = Increments::default();
        inc.hold(march(), &gemini(), &held).unwrap();
        let r = inc.render(&AllOpen);
        assert_eq!(r.state["c|1740787200|cu|gemini"], dec!(1));
        assert_eq!(r.state["c|1740787200|cu|*"], dec!(1));
        assert_eq!(r.state["c|1740787200|$h|gemini"], dec!(0.25));
        assert_eq!(r.state["w|1740787200"], dec!(1));
        assert!(r.periods.is_empty());
        inc.unhold(march(), &gemini(), &held).unwrap();
        let r = inc.render(&AllOpen);
        assert_eq!(r.state.keys().collect::<Vec<_>>(), ["w|1740787200"]);
    }

    #[test]
    fn open_periods_keep_limits_on_the_state_and_counts_on_the_period_item() {
        let e = crate::testing::event(
            &crate::testing::tenant(),
            &crate::testing::user("ann"),
            "e1",
            10,
            "0.5",
        );
        let e = UsageEvent {
            latency_ms: Some(120),
            status_code: Some(200),
            ..e
        };
        let mut inc = Increments::default();
        inc.record(&e).unwrap();
        let r = inc.render(&AllOpen);
        let p = e.period_start;
        assert_eq!(r.open, BTreeSet::from([p]));
        assert!(r
            .state
            .keys()
            .all(|k| k.starts_with("c|") || k.starts_with("w|")));
        let item = &r.periods[&p];
        assert!(!item.closed);
        assert_eq!(
            item.adds,
            BTreeMap::from([
                ("er|gemini".to_owned(), dec!(0)),
                ("ln|gemini".to_owned(), dec!(1)),
                ("ls|gemini".to_owned(), dec!(120)),
            ])
        );

        // The same event once its period is closed: everything on the period item, marked.
        let billed = layout::billed_to(p + chrono::Duration::days(40));
        let r = inc.render(&BilledTo(Some(&billed)));
        assert!(r.state.is_empty() && r.open.is_empty());
        let item = &r.periods[&p];
        assert!(item.closed);
        assert_eq!(item.adds["cu|gemini"], dec!(1));
        assert_eq!(item.adds["cu|*"], dec!(1));
        assert_eq!(item.adds["$u|*"], dec!(0.5));
    }

    #[test]
    fn pricing_moves_cost_and_unpriced_and_the_write_counter() {
        let mut inc = Increments::default();
        inc.price(march(), &gemini(), dec!(0.0125)).unwrap();
        let r = inc.render(&AllOpen);
        assert_eq!(r.state["c|1740787200|$u|gemini"], dec!(0.0125));
        assert_eq!(r.state["c|1740787200|$u|*"], dec!(0.0125));
        assert_eq!(r.state["c|1740787200|np|gemini"], dec!(-1));
        assert_eq!(r.state["w|1740787200"], dec!(1));
        assert_eq!(r.state.len(), 4);
    }

    #[test]
    fn adjustments_read_back_per_period_and_consumed_ones_are_skipped() {
        let mut inc = Increments::default();
        inc.adjust(march(), dec!(0.5)).unwrap();
        inc.adjust(march(), dec!(0.25)).unwrap();
        let r = inc.render(&AllOpen);
        let mut item: Item = r.state.iter().map(|(k, v)| (k.clone(), n(v))).collect();
        item.insert("adj|1738368000|events".into(), n(0));
        item.insert("adj|1738368000|cost".into(), n(0));
        item.insert("adjv".into(), n(3));
        let adj = adjustments(&item).unwrap();
        assert_eq!(
            adj.into_iter().collect::<Vec<_>>(),
            vec![(
                march(),
                Adjustment {
                    events: 2,
                    cost_usd: dec!(0.75)
                }
            )]
        );
        item.insert("adj|1740787200|events".into(), n("1.5"));
        assert!(adjustments(&item).is_err());
    }

    #[test]
    fn usage_subtracts_holds_from_used_and_ignores_other_periods() {
        let mut state = Item::new();
        for (name, v) in [
            ("c|1740787200|cu|gemini", "11"),
            ("c|1740787200|ch|gemini", "1"),
            ("c|1740787200|tu|gemini", "1100"),
            ("c|1740787200|th|gemini", "100"),
            ("c|1740787200|$u|gemini", "0.351"),
            ("c|1740787200|$h|gemini", "0.001"),
            ("c|1740787200|np|gemini", "2"),
            ("c|1740787200|cu|*", "11"),
            ("c|1738368000|cu|gemini", "7"),
        ] {
            state.insert(name.to_owned(), n(v));
        }
        let mut period = Item::new();
        period.insert("er|gemini".into(), n(3));
        period.insert("cu|gemini".into(), n(99));
        let mut raw = RawPeriod::default();
        raw.add_state(&state, march()).unwrap();
        raw.add_period_item(&period, false).unwrap();
        let u = raw.usage().unwrap();
        let g = &u.by_provider[&gemini()];
        assert_eq!(
            g.recorded,
            Tally {
                calls: 10,
                tokens: 1000,
                cost_usd: dec!(0.35)
            }
        );
        assert_eq!(
            g.held,
            Tally {
                calls: 1,
                tokens: 100,
                cost_usd: dec!(0.001)
            }
        );
        assert_eq!((g.unpriced_calls, g.error_calls), (2, 3));
        assert_eq!(u.by_provider.len(), 1);
        assert_eq!(
            state_periods(&state),
            BTreeSet::from([march() - chrono::Duration::days(28), march()])
        );
    }
}
