//! Ended windows on budget counter items (docs/dynamodb.md, "Budget counters"): a counter
//! item holds its scope's counters of every window as attributes named by window and
//! start, so the windows that ended must be removed or the item would grow with time.
//!
//! Which are stale needs no clock: per window kind, an item keeps its newest windows —
//! the current one, the one before it (where a late event, a closing reservation's hold
//! or an org invoice may still write or read) and one after it (an event may be
//! timestamped up to 5 minutes ahead, which can open the next window early); for minute
//! windows the 5 minutes ahead too — and every older one is stale. A read
//! of counter items notes the attribute names of stale windows here, by item; the next
//! write of that item from this process `REMOVE`s them in the same update (a write that
//! does not happen leaves them for the next reader). Everything that writes counter
//! items on the check path reads them first (the check's one `BatchGetItem`), and ingest
//! reads them for its budget alerts, so an item in use keeps at most a few windows per
//! kind. The counters of the org reads (the org's, the member's and the team's `period`
//! usage) are written by every event naming the org and read by nobody on the ingest
//! path: an event batch's read of its definitions includes them once a day per process
//! ([`Sweeps`]), in the room its `BatchGetItem` has left (never a request more), so the
//! batch's own write removes their ended windows.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::codec::Item;
use super::expressions::Update;

/// Most items remembered (the map is emptied when full: only a shortcut to cleaning).
const MAX_ITEMS: usize = 10_000;
/// How often a process reads, with an event batch's definitions, a counter item that it
/// writes for the org reads but otherwise never reads ([`Sweeps`]).
const SWEEP_EVERY: Duration = Duration::from_secs(24 * 3600);
/// Most names one write removes (the update expression stays far below 4 KB).
const MAX_REMOVED: usize = 64;
/// Windows of one kind an item keeps: the current one, the previous one and one opened
/// early by an event timestamped ahead (at most 5 minutes: one window of an hour or
/// more, five of a minute).
fn kept(code: &str) -> usize {
    match code {
        "mi" => 7,
        _ => 3,
    }
}

/// The attribute prefix `<window code><start>` of a counter attribute name and its
/// parts, when `name` is one (`d1773100800|c|gemini` → `d1773100800`, `d`, 1773100800).
fn prefix_of(name: &str) -> Option<(&str, &str, i64)> {
    let prefix = name.split('|').next()?;
    let digits = prefix.find(|c: char| c.is_ascii_digit() || c == '-')?;
    let (code, start) = prefix.split_at(digits);
    if code.is_empty() || !code.chars().all(|c| c.is_ascii_lowercase()) {
        return None;
    }
    Some((prefix, code, start.parse().ok()?))
}

/// The names of the attributes of `item` that belong to stale windows.
pub(super) fn stale_names(item: &Item) -> BTreeSet<String> {
    let mut starts: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    for name in item.keys() {
        if let Some((_, code, start)) = prefix_of(name) {
            starts.entry(code).or_default().insert(start);
        }
    }
    let stale: BTreeSet<(&str, i64)> = starts
        .iter()
        .flat_map(|(code, s)| {
            s.iter()
                .rev()
                .skip(kept(code))
                .map(move |start| (*code, *start))
        })
        .collect();
    item.keys()
        .filter(|name| {
            prefix_of(name).is_some_and(|(_, code, start)| stale.contains(&(code, start)))
        })
        .cloned()
        .collect()
}

/// Stale attribute names seen on counter items, by the item's `PK`.
#[derive(Debug, Default, Clone)]
pub(super) struct StaleWindows(Arc<Mutex<HashMap<String, BTreeSet<String>>>>);

impl StaleWindows {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeSet<String>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes what a read of the counter item `pk` showed.
    pub(super) fn note(&self, pk: &str, item: &Item) {
        let names = stale_names(item);
        let mut map = self.map();
        if names.is_empty() {
            map.remove(pk);
            return;
        }
        if map.len() >= MAX_ITEMS {
            map.clear();
        }
        map.insert(pk.to_owned(), names);
    }

    /// Adds to `u`, an update of the item `pk` that writes the windows `written`
    /// (attribute prefixes), the removal of its stale attributes noted (not of a window
    /// it writes: a late write to an old window keeps it).
    pub(super) fn remove_into(&self, pk: &str, written: &BTreeSet<String>, u: &mut Update) {
        let Some(names) = self.map().remove(pk) else {
            return;
        };
        for name in names
            .iter()
            .filter(|n| prefix_of(n).is_some_and(|(p, _, _)| !written.contains(p)))
            .take(MAX_REMOVED)
        {
            u.remove(name);
        }
    }
}

/// Counter items this process read lately for their stale windows alone, by `PK`: one
/// that an event batch writes but never reads is read with the batch's definitions at
/// most once per [`SWEEP_EVERY`] (issue 18, SPEC §12: no item grows with history).
#[derive(Debug, Default, Clone)]
pub(super) struct Sweeps(Arc<Mutex<HashMap<String, Instant>>>);

impl Sweeps {
    /// Whether the item `pk` is due to be read for its stale windows; if so, it counts
    /// as read from now (a read that fails waits for the next day: only cleaning).
    pub(super) fn take_due(&self, pk: &str) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(pk).is_some_and(|at| at.elapsed() < SWEEP_EVERY) {
            return false;
        }
        if map.len() >= MAX_ITEMS {
            map.clear();
        }
        map.insert(pk.to_owned(), Instant::now());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    fn item(names: &[&str]) -> Item {
        names
            .iter()
            .map(|n| ((*n).to_owned(), AttributeValue::N("1".into())))
            .collect()
    }

    #[test]
    fn the_newest_windows_of_each_kind_stay() {
        let i = item(&[
            "PK",
            "d100|c|*",
            "d100|e",
            "d150|c|*",
            "d200|c|*",
            "d300|c|*",
            "d300|$|gemini",
            "mi60|c|*",
            "mi120|c|*",
            "mi180|c|*",
            "mi240|c|*",
            "mi300|c|*",
            "mi360|c|*",
            "mi420|c|*",
            "mi480|c|*",
            "p5|c|*",
        ]);
        let stale = stale_names(&i);
        assert_eq!(
            stale,
            ["d100|c|*", "d100|e", "mi60|c|*"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        );
        assert_eq!(
            prefix_of("mo1740787200|hc|x"),
            Some(("mo1740787200", "mo", 1740787200))
        );
        assert_eq!(prefix_of("PK"), None);
        assert_eq!(prefix_of("ttl"), None);
    }

    #[test]
    fn a_write_removes_what_a_read_noted_except_its_own_windows() {
        let w = StaleWindows::default();
        w.note(
            "pk",
            &item(&["d1|c|*", "d2|c|*", "d3|c|*", "d4|c|*", "d5|c|*"]),
        );
        let mut u = Update::new();
        let written: BTreeSet<String> = ["d1".to_owned()].into();
        w.remove_into("pk", &written, &mut u);
        let expr = u.update_expression();
        assert!(expr.starts_with("REMOVE"), "{expr}");
        assert_eq!(expr.matches('#').count(), 1, "only d2 is removed: {expr}");
        let mut again = Update::new();
        w.remove_into("pk", &written, &mut again);
        assert!(again.update_expression().is_empty(), "taken once");
    }

    #[test]
    fn an_item_is_due_for_a_sweep_once_a_day() {
        let sweeps = Sweeps::default();
        assert!(sweeps.take_due("a"));
        assert!(!sweeps.take_due("a"), "read a moment ago");
        assert!(sweeps.take_due("b"));
        sweeps
            .0
            .lock()
            .unwrap()
            .insert("a".into(), Instant::now() - SWEEP_EVERY);
        assert!(sweeps.take_due("a"), "a day later");
    }
}
