//! Reading a user's usage from the state item and the period items.
//!
//! The state item holds the limit counters of open periods; a period item (`SP#<start>`)
//! holds the display-only counts of its period and, once the period is closed (marked
//! `closed`), its limit counters and fired alert keys. [`UserItems`] decodes a period
//! from whichever of the two holds it.
//!
//! Reads of several items are not one snapshot: a read of the state item after a close
//! and of the period item before it would see the closed period's limit counters
//! nowhere. Every recorded event writes its period item, so such a period item is there
//! without the marker while the state says the period is closed and holds none of its
//! counters: [`UserItems::unsettled`] names those, and they are read again.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::codec::{get_s, Item};
use super::counters::RawPeriod;
use super::layout;
use super::requests::key;
use super::DynamoStore;
use crate::domain::{TenantId, UserId};
use crate::store::StoreResult;
use crate::usage::PeriodUsage;

/// Items of one user: the state item (empty when absent) and some of its period items.
#[derive(Debug, Default, Clone)]
pub struct UserItems {
    pub state: Item,
    pub periods: BTreeMap<DateTime<Utc>, Item>,
}

/// Whether a period item is marked closed (its limit counters are on it).
pub fn is_closed_item(item: &Item) -> bool {
    matches!(
        item.get(layout::PERIOD_CLOSED),
        Some(AttributeValue::Bool(true))
    )
}

impl UserItems {
    /// Sorts items of a user's partition: the state item and period items (others ignored).
    pub fn from_items(items: impl IntoIterator<Item = Item>) -> Self {
        let mut out = UserItems::default();
        for item in items {
            match get_s(&item, layout::SK) {
                Some(layout::STATE_SK) => out.state = item,
                Some(sk) => {
                    if let Some(start) = layout::parse_period_sk(sk) {
                        out.periods.insert(start, item);
                    }
                }
                None => {}
            }
        }
        out
    }

    pub fn billed_to(&self) -> Option<&str> {
        get_s(&self.state, layout::BILLED_TO)
    }

    /// Whether the period starting at `start` is closed (starts before `billed_to`).
    pub fn closed(&self, start: DateTime<Utc>) -> bool {
        self.billed_to()
            .is_some_and(|b| layout::billed_to(start).as_str() < b)
    }

    /// The usage of the period starting at `start` (zeros when nothing was recorded).
    pub fn usage(&self, start: DateTime<Utc>) -> StoreResult<PeriodUsage> {
        let item = self.periods.get(&start);
        let mut raw = RawPeriod::default();
        // A marked item holds the limit counters; whatever the state item still showed of
        // the period was read before the close moved it.
        if !item.is_some_and(is_closed_item) {
            raw.add_state(&self.state, start)?;
        }
        if let Some(item) = item {
            raw.add_period_item(item, true)?;
        }
        raw.usage()
    }

    /// What limits and billing read of the period (see [`PeriodUsage::limits_only`]).
    pub fn limits(&self, start: DateTime<Utc>) -> StoreResult<PeriodUsage> {
        Ok(self.usage(start)?.limits_only())
    }

    /// The once-only keys of the alerts fired in the period.
    pub fn fired(&self, start: DateTime<Utc>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if let Some(AttributeValue::Ss(keys)) = self.state.get(&layout::fired(start)) {
            out.extend(keys.iter().cloned());
        }
        if let Some(item) = self.periods.get(&start) {
            if let Some(AttributeValue::Ss(keys)) = item.get(layout::PERIOD_FIRED) {
                out.extend(keys.iter().cloned());
            }
        }
        out
    }

    /// Periods of `starts` read in the middle of their close (see the module): closed by
    /// the state item, which holds none of their attributes, and a period item without
    /// the marker.
    pub fn unsettled(&self, starts: &[DateTime<Utc>]) -> Vec<DateTime<Utc>> {
        let on_state: BTreeSet<DateTime<Utc>> = super::counters::state_periods(&self.state);
        starts
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|s| {
                self.closed(*s)
                    && !on_state.contains(s)
                    && self.periods.get(s).is_some_and(|i| !is_closed_item(i))
            })
            .collect()
    }

    /// Whether the period has counters (zero or not) on the state item or its period item.
    pub fn has_counters(&self, start: DateTime<Utc>) -> bool {
        self.state
            .keys()
            .any(|k| layout::parse_counter(k).is_some_and(|(p, _, _)| p == start))
            || self.periods.get(&start).is_some_and(|item| {
                item.keys()
                    .any(|k| layout::parse_period_counter(k).is_some())
            })
    }

    /// Every period with attributes on the state item or a period item, oldest first.
    pub fn all_periods(&self) -> BTreeSet<DateTime<Utc>> {
        let mut out = super::counters::state_periods(&self.state);
        out.extend(self.periods.keys().copied());
        out
    }
}

impl DynamoStore {
    /// The state item and the period items of `starts` (one consistent `BatchGetItem`
    /// per 100 keys), period items caught in the middle of a close read again.
    pub(super) async fn read_user_items(
        &self,
        tenant: &TenantId,
        user: &UserId,
        starts: &[DateTime<Utc>],
    ) -> StoreResult<UserItems> {
        let pk = layout::user_pk(tenant, user.as_str());
        let unique: BTreeSet<DateTime<Utc>> = starts.iter().copied().collect();
        let mut wanted = vec![key(pk.clone(), layout::STATE_SK)];
        wanted.extend(
            unique
                .iter()
                .map(|s| key(pk.clone(), layout::period_sk(*s))),
        );
        let mut items = UserItems::from_items(self.batch_get(wanted, true).await?);
        self.settle_reads(&pk, &mut items, starts).await?;
        Ok(items)
    }

    /// Reads again the period items of `starts` that [`UserItems::unsettled`] names.
    pub(super) async fn settle_reads(
        &self,
        pk: &str,
        items: &mut UserItems,
        starts: &[DateTime<Utc>],
    ) -> StoreResult<()> {
        let again = items.unsettled(starts);
        if again.is_empty() {
            return Ok(());
        }
        let wanted = again
            .iter()
            .map(|s| key(pk.to_owned(), layout::period_sk(*s)))
            .collect();
        for item in self.batch_get(wanted, true).await? {
            if let Some(start) = get_s(&item, layout::SK).and_then(layout::parse_period_sk) {
                items.periods.insert(start, item);
            }
        }
        Ok(())
    }

    /// The period item of `start`, added to `items` (one consistent `GetItem`).
    pub(super) async fn read_period_item(
        &self,
        tenant: &TenantId,
        user: &UserId,
        items: &mut UserItems,
        start: DateTime<Utc>,
    ) -> StoreResult<()> {
        if let Some(item) = self
            .get_item(
                layout::user_pk(tenant, user.as_str()),
                &layout::period_sk(start),
                &[],
            )
            .await?
        {
            items.periods.insert(start, item);
        }
        Ok(())
    }

    /// The state item and the newest period item (one consistent `Query`, newest first,
    /// from `STATE` down to `SP#`): a usage read of the current period in one request.
    pub(super) async fn read_state_and_latest(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<(UserItems, bool)> {
        let pk = layout::user_pk(tenant, user.as_str());
        let page = self
            .query()
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
            .expression_attribute_names("#pk", layout::PK)
            .expression_attribute_names("#sk", layout::SK)
            .expression_attribute_values(":pk", super::codec::s(pk))
            .expression_attribute_values(":from", super::codec::s(layout::PERIOD_PREFIX))
            .expression_attribute_values(":to", super::codec::s(layout::STATE_SK))
            .scan_index_forward(false)
            .consistent_read(true)
            .limit(2)
            .send()
            .await
            .map_err(|e| super::errors::sdk_err("Query", e))?;
        let more = page.last_evaluated_key().is_some_and(|k| !k.is_empty());
        Ok((UserItems::from_items(page.items.unwrap_or_default()), more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::dynamo::codec::{n, s};
    use chrono::TimeZone;

    fn march() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap()
    }

    fn state(billed: Option<DateTime<Utc>>) -> Item {
        let mut st = key("T#a#U#b", layout::STATE_SK);
        if let Some(b) = billed {
            st.insert(layout::BILLED_TO.into(), s(layout::billed_to(b)));
        }
        st
    }

    #[test]
    fn a_closed_period_reads_from_its_marked_item_and_an_open_one_from_the_state() {
        let april = Utc.with_ymd_and_hms(2025, 4, 1, 0, 0, 0).unwrap();
        let mut open = state(None);
        open.insert("c|1740787200|cu|gemini".into(), n(3));
        let mut item = key("T#a#U#b", layout::period_sk(march()));
        item.insert("er|gemini".into(), n(1));
        let items = UserItems::from_items([open.clone(), item.clone()]);
        let g = items.usage(march()).unwrap().by_provider;
        let g = &g[&crate::testing::provider("gemini")];
        assert_eq!((g.recorded.calls, g.error_calls), (3, 1));
        assert!(items.unsettled(&[march()]).is_empty());

        // Closed, moved: the item is marked and holds the counters; a stale state read
        // that still shows them does not count them twice.
        let mut moved = item.clone();
        moved.insert("cu|gemini".into(), n(3));
        moved.insert(layout::PERIOD_CLOSED.into(), AttributeValue::Bool(true));
        let mut stale = open.clone();
        stale.insert(layout::BILLED_TO.into(), s(layout::billed_to(april)));
        let items = UserItems::from_items([stale, moved.clone()]);
        assert!(items.closed(march()));
        assert_eq!(
            items.usage(march()).unwrap(),
            UserItems::from_items([open, item.clone()])
                .usage(march())
                .unwrap()
        );

        // The state after the close, the item before it: read again.
        let items = UserItems::from_items([state(Some(april)), item]);
        assert_eq!(items.unsettled(&[march()]), vec![march()]);
        let items = UserItems::from_items([state(Some(april)), moved]);
        assert!(items.unsettled(&[march()]).is_empty());
        assert_eq!(items.limits(march()).unwrap().by_provider.len(), 1);
    }
}
