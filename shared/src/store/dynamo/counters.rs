//! Counter increments and period usage read from the user state item.
//!
//! Per (period, provider) the item keeps `*_used` (recorded + held: what limits compare
//! with), `*_held` and the quality counts; per period the all-provider totals of the
//! `*_used` counters (`|*`), so that every guard is a comparison of one attribute.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::codec::{count_of, decimal_of, time_of, Item};
use super::layout::{self, AdjustmentPart, Field};
use crate::domain::{ProviderId, UsageEvent};
use crate::store::{Adjustment, StoreError, StoreResult};
use crate::usage::{PeriodUsage, ProviderUsage, Tally};

/// Summed increments of counter attributes, applied with one `ADD` each.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Increments(pub BTreeMap<String, Decimal>);

impl Increments {
    pub fn add(&mut self, attr: String, by: Decimal) -> StoreResult<()> {
        let slot = self.0.entry(attr).or_default();
        *slot = slot
            .checked_add(by)
            .ok_or_else(|| StoreError::Overflow("counter increment".into()))?;
        Ok(())
    }

    fn add_used(
        &mut self,
        period: DateTime<Utc>,
        provider: &ProviderId,
        t: &Tally,
        sign: Decimal,
    ) -> StoreResult<()> {
        for p in [Some(provider), None] {
            self.add(
                layout::counter(period, Field::CallsUsed, p),
                Decimal::from(t.calls) * sign,
            )?;
            self.add(
                layout::counter(period, Field::TokensUsed, p),
                Decimal::from(t.tokens) * sign,
            )?;
            self.add(
                layout::counter(period, Field::CostUsed, p),
                t.cost_usd * sign,
            )?;
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
        self.add(
            layout::counter(period, Field::CallsHeld, p),
            Decimal::from(t.calls) * sign,
        )?;
        self.add(
            layout::counter(period, Field::TokensHeld, p),
            Decimal::from(t.tokens) * sign,
        )?;
        self.add(
            layout::counter(period, Field::CostHeld, p),
            t.cost_usd * sign,
        )?;
        Ok(())
    }

    /// What recording `e` adds to its period's counters (and its write counter).
    pub fn record(&mut self, e: &UsageEvent) -> StoreResult<()> {
        let (period, p) = (e.period_start, Some(&e.provider));
        self.add_used(period, &e.provider, &e.tally(), Decimal::ONE)?;
        self.add(layout::writes(period), Decimal::ONE)?;
        let mut one = |field: Field, yes: bool| -> StoreResult<()> {
            if yes {
                self.add(layout::counter(period, field, p), Decimal::ONE)?;
            }
            Ok(())
        };
        one(Field::Unpriced, e.cost_usd.is_none())?;
        one(Field::Estimated, e.estimated)?;
        one(Field::Errors, e.status_code.is_some_and(|c| c >= 400))?;
        if let Some(ms) = e.latency_ms {
            self.add(
                layout::counter(period, Field::LatencySum, p),
                Decimal::from(ms),
            )?;
            self.add(
                layout::counter(period, Field::LatencyCount, p),
                Decimal::ONE,
            )?;
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
            self.add(layout::counter(period, Field::CostUsed, p), cost)?;
        }
        self.add(
            layout::counter(period, Field::Unpriced, Some(provider)),
            -Decimal::ONE,
        )?;
        self.add(layout::writes(period), Decimal::ONE)
    }

    /// One change of `cost` to an invoiced period, pending in its adjustment.
    pub fn adjust(&mut self, period: DateTime<Utc>, cost: Decimal) -> StoreResult<()> {
        self.add(
            layout::adjustment(period, AdjustmentPart::Events),
            Decimal::ONE,
        )?;
        self.add(layout::adjustment(period, AdjustmentPart::Cost), cost)
    }

    /// Holding `held`: counts as used and as held.
    pub fn hold(
        &mut self,
        period: DateTime<Utc>,
        provider: &ProviderId,
        held: &Tally,
    ) -> StoreResult<()> {
        self.add_used(period, provider, held, Decimal::ONE)?;
        self.add_held(period, provider, held, Decimal::ONE)
    }

    /// Returning `held` (settle, release, expire).
    pub fn unhold(
        &mut self,
        period: DateTime<Utc>,
        provider: &ProviderId,
        held: &Tally,
    ) -> StoreResult<()> {
        self.add_used(period, provider, held, -Decimal::ONE)?;
        self.add_held(period, provider, held, -Decimal::ONE)
    }

    /// Drops zero increments (an `ADD 0` would only create empty attributes).
    pub fn nonzero(&self) -> impl Iterator<Item = (&String, &Decimal)> {
        self.0.iter().filter(|(_, v)| !v.is_zero())
    }
}

#[derive(Default)]
struct Raw {
    fields: HashMap<Field, Decimal>,
}

impl Raw {
    fn get(&self, f: Field) -> Decimal {
        self.fields.get(&f).copied().unwrap_or_default()
    }
}

/// The usage of period `start` stored in a state item (zeros when absent).
pub fn period_usage(item: &Item, start: DateTime<Utc>) -> StoreResult<PeriodUsage> {
    let wanted = layout::period_key(start);
    let mut raw: BTreeMap<ProviderId, Raw> = BTreeMap::new();
    for (name, value) in item {
        let Some((period, field, Some(provider))) = layout::parse_counter(name) else {
            continue;
        };
        if period != wanted {
            continue;
        }
        let provider =
            ProviderId::parse(provider).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        raw.entry(provider)
            .or_default()
            .fields
            .insert(field, decimal_of(value)?);
    }
    let mut usage = PeriodUsage::default();
    for (provider, r) in raw {
        let held = Tally {
            calls: count_of(r.get(Field::CallsHeld), "calls_held")?,
            tokens: count_of(r.get(Field::TokensHeld), "tokens_held")?,
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
            latency_ms_sum: count_of(r.get(Field::LatencySum), "latency_sum")?,
            latency_count: count_of(r.get(Field::LatencyCount), "latency_n")?,
        };
        if pu != ProviderUsage::default() {
            usage.by_provider.insert(provider, pu);
        }
    }
    Ok(usage)
}

/// The pending adjustments stored in a state item, by period start (zeros skipped).
pub fn adjustments(item: &Item) -> StoreResult<BTreeMap<DateTime<Utc>, Adjustment>> {
    let mut out: BTreeMap<DateTime<Utc>, Adjustment> = BTreeMap::new();
    for (name, value) in item {
        let Some((period, part)) = layout::parse_adjustment(name) else {
            continue;
        };
        let a = out.entry(time_of(period)?).or_default();
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
        assert_eq!(inc.0["c|2025-03-01T00:00:00Z|calls_used|gemini"], dec!(1));
        assert_eq!(inc.0["c|2025-03-01T00:00:00Z|calls_used|*"], dec!(1));
        assert_eq!(inc.0["c|2025-03-01T00:00:00Z|cost_held|gemini"], dec!(0.25));
        inc.unhold(march(), &gemini(), &held).unwrap();
        assert_eq!(inc.nonzero().count(), 0);
    }

    #[test]
    fn pricing_moves_cost_and_unpriced_and_the_write_counter() {
        let mut inc = Increments::default();
        inc.price(march(), &gemini(), dec!(0.0125)).unwrap();
        assert_eq!(
            inc.0["c|2025-03-01T00:00:00Z|cost_used|gemini"],
            dec!(0.0125)
        );
        assert_eq!(inc.0["c|2025-03-01T00:00:00Z|cost_used|*"], dec!(0.0125));
        assert_eq!(inc.0["c|2025-03-01T00:00:00Z|unpriced|gemini"], dec!(-1));
        assert_eq!(inc.0["w|2025-03-01T00:00:00Z"], dec!(1));
        assert_eq!(inc.0.len(), 4);
    }

    #[test]
    fn adjustments_read_back_per_period_and_consumed_ones_are_skipped() {
        let mut inc = Increments::default();
        inc.adjust(march(), dec!(0.5)).unwrap();
        inc.adjust(march(), dec!(0.25)).unwrap();
        let mut item: Item = inc.nonzero().map(|(k, v)| (k.clone(), n(v))).collect();
        item.insert("adj|2025-02-01T00:00:00Z|events".into(), n(0));
        item.insert("adj|2025-02-01T00:00:00Z|cost".into(), n(0));
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
        item.insert("adj|2025-03-01T00:00:00Z|events".into(), n("1.5"));
        assert!(adjustments(&item).is_err());
    }

    #[test]
    fn period_usage_subtracts_holds_from_used_and_ignores_other_periods() {
        let mut item = Item::new();
        for (name, v) in [
            ("c|2025-03-01T00:00:00Z|calls_used|gemini", "11"),
            ("c|2025-03-01T00:00:00Z|calls_held|gemini", "1"),
            ("c|2025-03-01T00:00:00Z|tokens_used|gemini", "1100"),
            ("c|2025-03-01T00:00:00Z|tokens_held|gemini", "100"),
            ("c|2025-03-01T00:00:00Z|cost_used|gemini", "0.351"),
            ("c|2025-03-01T00:00:00Z|cost_held|gemini", "0.001"),
            ("c|2025-03-01T00:00:00Z|unpriced|gemini", "2"),
            ("c|2025-03-01T00:00:00Z|calls_used|*", "11"),
            ("c|2025-02-01T00:00:00Z|calls_used|gemini", "7"),
        ] {
            item.insert(name.to_owned(), n(v));
        }
        let u = period_usage(&item, march()).unwrap();
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
        assert_eq!(g.unpriced_calls, 2);
        assert_eq!(u.by_provider.len(), 1);
        assert_eq!(
            period_usage(&Item::new(), march()).unwrap(),
            PeriodUsage::default()
        );
    }
}
