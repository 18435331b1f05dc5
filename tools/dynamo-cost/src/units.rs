//! Capacity units of a DynamoDB request, computed from item sizes with DynamoDB's published
//! rules (the emulator's own `ConsumedCapacity` is a constant per operation, not a size).
//!
//! - Item size: attribute name bytes + value bytes; a string is its UTF-8 length, a
//!   number ⌈significant digits / 2⌉ + 1, a boolean or null 1, a map or list 3 + 1 per
//!   element + its contents, a set the sum of its members.
//! - Reads: ⌈size / 4 KB⌉ read units for a strongly consistent read (minimum 1), half
//!   for an eventually consistent one; a `GetItem` is charged for the whole item even with
//!   a projection; a `BatchGetItem` for each key as a `GetItem` (a key without an item
//!   the minimum); a `Query` for the sum of the items it returns, rounded up once.
//! - Writes: ⌈max(size before, size after) / 1 KB⌉ write units per item (minimum 1).
//! - Transactions: twice the units of the same requests outside a transaction.
//! - Global secondary indexes: a write that adds an item to an index, removes it, or
//!   changes its projected attributes costs ⌈projected size / 1 KB⌉ per index write (a
//!   changed index key is a delete plus a put). Not doubled inside transactions.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{json, Map, Value};

use crate::capture::Call;

/// An item in DynamoDB JSON (`{"PK": {"S": "…"}, …}`).
pub type Item = Map<String, Value>;

/// Every item of the table, by (PK, SK).
pub type Snapshot = BTreeMap<(String, String), Item>;

const KB: u64 = 1024;

/// The table's global secondary indexes: name, key attributes, projected non-key attributes
/// (`None` = all attributes).
const INDEXES: [(&str, &str, &str, Option<&[&str]>); 4] = [
    ("holds", "HOLDS_PK", "HOLDS_SK", Some(&[])),
    ("by_user", "USER_PK", "USER_SK", None),
    ("outbox", "OUTBOX_PK", "OUTBOX_SK", None),
    ("subs", "SUBS_PK", "SUBS_SK", Some(&["sub"])),
];

/// Units of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Units {
    pub read: Decimal,
    pub write: Decimal,
    /// Of `write`: the part spent on index writes.
    pub index_write: Decimal,
}

impl std::ops::AddAssign for Units {
    fn add_assign(&mut self, o: Units) {
        self.read += o.read;
        self.write += o.write;
        self.index_write += o.index_write;
    }
}

/// The DynamoDB JSON of an SDK attribute value.
pub fn to_json(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b.as_ref().len() }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::Ss(s) => json!({ "SS": s }),
        AttributeValue::Ns(n) => json!({ "NS": n }),
        AttributeValue::Bs(b) => {
            json!({ "BS": b.iter().map(|x| x.as_ref().len()).collect::<Vec<_>>() })
        }
        AttributeValue::M(m) => {
            json!({ "M": m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect::<Map<_, _>>() })
        }
        AttributeValue::L(l) => json!({ "L": l.iter().map(to_json).collect::<Vec<_>>() }),
        _ => Value::Null,
    }
}

/// The bytes of a number by DynamoDB's rules (the store's own rule).
fn number_size(n: &str) -> u64 {
    meter_core::store::dynamo::item_size::number_size(n) as u64
}

/// Bytes of one value in DynamoDB JSON.
pub fn value_size(v: &Value) -> u64 {
    let Some((kind, inner)) = v.as_object().and_then(|m| m.iter().next()) else {
        return 0;
    };
    let strings = |x: &Value| -> Vec<String> {
        x.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, |s| s.len() as u64),
        "N" => inner.as_str().map_or(1, number_size),
        // Binary values appear here as their decoded length.
        "B" => inner.as_u64().unwrap_or(0),
        "BOOL" | "NULL" => 1,
        "SS" => strings(inner).iter().map(|s| s.len() as u64).sum(),
        "NS" => strings(inner).iter().map(|s| number_size(s)).sum(),
        "BS" => inner
            .as_array()
            .map_or(0, |a| a.iter().filter_map(Value::as_u64).sum()),
        "M" => inner.as_object().map_or(3, |m| {
            3 + m
                .iter()
                .map(|(k, v)| k.len() as u64 + value_size(v) + 1)
                .sum::<u64>()
        }),
        "L" => inner
            .as_array()
            .map_or(3, |l| 3 + l.iter().map(|v| value_size(v) + 1).sum::<u64>()),
        _ => 0,
    }
}

/// Bytes of an item: names plus values.
pub fn item_size(item: &Item) -> u64 {
    item.iter()
        .map(|(k, v)| k.len() as u64 + value_size(v))
        .sum()
}

fn key_of(item_or_key: &Item) -> Option<(String, String)> {
    let s = |name: &str| item_or_key.get(name)?.get("S")?.as_str().map(str::to_owned);
    Some((s("PK")?, s("SK")?))
}

fn units_of(size: u64, per: u64) -> Decimal {
    Decimal::from(size.div_ceil(per).max(1))
}

fn read_units(size: u64, consistent: bool) -> Decimal {
    let units = units_of(size, 4 * KB);
    if consistent {
        units
    } else {
        units * dec!(0.5)
    }
}

/// The index entry of `item` in one index: `None` when the item is not in it.
fn index_entry(item: Option<&Item>, index: &(&str, &str, &str, Option<&[&str]>)) -> Option<Item> {
    let item = item?;
    let (_, pk, sk, projected) = *index;
    if !item.contains_key(pk) || !item.contains_key(sk) {
        return None;
    }
    Some(match projected {
        None => item.clone(),
        Some(extra) => item
            .iter()
            .filter(|(k, _)| {
                ["PK", "SK", pk, sk].contains(&k.as_str()) || extra.contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

/// Index write units of changing one item from `before` to `after`.
fn index_writes(before: Option<&Item>, after: Option<&Item>) -> Decimal {
    let mut units = Decimal::ZERO;
    for index in &INDEXES {
        let (_, pk, sk, _) = index;
        let old = index_entry(before, index);
        let new = index_entry(after, index);
        units += match (&old, &new) {
            (None, None) => Decimal::ZERO,
            (Some(_), None) => Decimal::ONE,
            (None, Some(n)) => units_of(item_size(n), KB),
            (Some(o), Some(n)) if o.get(*pk) != n.get(*pk) || o.get(*sk) != n.get(*sk) => {
                Decimal::ONE + units_of(item_size(n), KB)
            }
            (Some(o), Some(n)) if o != n => units_of(item_size(o).max(item_size(n)), KB),
            _ => Decimal::ZERO,
        };
    }
    units
}

/// Write units (table, index) of writing the item under `key`.
fn write_units(
    key: Option<(String, String)>,
    before: &Snapshot,
    after: &Snapshot,
) -> (Decimal, Decimal) {
    let Some(key) = key else {
        return (Decimal::ONE, Decimal::ZERO);
    };
    let old = before.get(&key);
    let new = after.get(&key);
    let size = old.map_or(0, item_size).max(new.map_or(0, item_size));
    (units_of(size, KB), index_writes(old, new))
}

fn obj<'a>(v: &'a Value, name: &str) -> Option<&'a Item> {
    v.get(name)?.as_object()
}

/// The units of one captured request, given the table before and after the operation
/// it belongs to.
pub fn call_units(call: &Call, before: &Snapshot, after: &Snapshot) -> Units {
    let req = &call.request;
    let consistent = req
        .get("ConsistentRead")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match call.operation.as_str() {
        "GetItem" => {
            let size = obj(req, "Key")
                .and_then(key_of)
                .and_then(|k| before.get(&k))
                .map_or(0, item_size);
            Units {
                read: read_units(size, consistent),
                ..Units::default()
            }
        }
        "Query" | "Scan" => {
            let items = call.response.get("Items").and_then(Value::as_array);
            let on_table = req.get("IndexName").is_none();
            let size: u64 = items.map_or(0, |items| {
                items
                    .iter()
                    .filter_map(Value::as_object)
                    .map(|i| {
                        // On the table, a projection does not reduce the charge.
                        let whole = on_table
                            .then(|| key_of(i).and_then(|k| before.get(&k)))
                            .flatten();
                        item_size(whole.unwrap_or(i))
                    })
                    .sum()
            });
            Units {
                read: read_units(size, consistent),
                ..Units::default()
            }
        }
        "PutItem" | "UpdateItem" | "DeleteItem" => {
            let key = obj(req, "Item")
                .or_else(|| obj(req, "Key"))
                .and_then(key_of);
            let (table, index) = write_units(key, before, after);
            Units {
                read: Decimal::ZERO,
                write: table + index,
                index_write: index,
            }
        }
        "TransactWriteItems" => {
            let mut u = Units::default();
            for t in req
                .get("TransactItems")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some((_, action)) = t.as_object().and_then(|m| m.iter().next()) else {
                    continue;
                };
                let key = obj(action, "Item")
                    .or_else(|| obj(action, "Key"))
                    .and_then(key_of);
                let (table, index) = write_units(key, before, after);
                u.write += dec!(2) * table + index;
                u.index_write += index;
            }
            u
        }
        "BatchGetItem" => {
            // Each key is read as a `GetItem` would be (rounded up per item; a key that
            // finds no item is charged the minimum).
            let mut u = Units::default();
            for spec in obj(req, "RequestItems")
                .into_iter()
                .flat_map(|t| t.values())
            {
                let consistent = spec
                    .get("ConsistentRead")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                for k in spec
                    .get("Keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let size = k
                        .as_object()
                        .and_then(key_of)
                        .and_then(|k| before.get(&k))
                        .map_or(0, item_size);
                    u.read += read_units(size, consistent);
                }
            }
            u
        }
        "TransactGetItems" => {
            let mut u = Units::default();
            for t in req
                .get("TransactItems")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let size = t
                    .get("Get")
                    .and_then(|g| obj(g, "Key"))
                    .and_then(key_of)
                    .and_then(|k| before.get(&k))
                    .map_or(0, item_size);
                u.read += dec!(2) * read_units(size, true);
            }
            u
        }
        _ => Units::default(),
    }
}

/// The emulator's own `ConsumedCapacity.CapacityUnits` in an answer (summed over tables).
pub fn reported_units(call: &Call) -> Option<Decimal> {
    let cc = call.response.get("ConsumedCapacity")?;
    let one = |c: &Value| {
        c.get("CapacityUnits")
            .and_then(Value::as_f64)
            .and_then(|f| Decimal::try_from(f).ok())
    };
    match cc {
        Value::Array(list) => Some(list.iter().filter_map(one).sum()),
        c => one(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(v: Value) -> Item {
        v.as_object().cloned().unwrap()
    }

    fn call(operation: &str, request: Value) -> Call {
        Call {
            operation: operation.into(),
            request,
            response: Value::Null,
            status: 200,
        }
    }

    #[test]
    fn sizes_follow_the_published_rules() {
        assert_eq!(number_size("12345"), 4);
        assert_eq!(number_size("-0.0012"), 2);
        assert_eq!(number_size("100"), 2);
        let i =
            item(json!({"PK": {"S": "abc"}, "n": {"N": "12"}, "m": {"M": {"x": {"BOOL": true}}}}));
        // PK 2+3, n 1+2, m 1 + (3 + (1 + 1 + 1))
        assert_eq!(item_size(&i), 5 + 3 + 7);
    }

    #[test]
    fn a_write_costs_the_larger_of_the_item_before_and_after_per_kb() {
        let key = ("T#t#U#u".to_owned(), "STATE".to_owned());
        let small = item(json!({"PK": {"S": key.0}, "SK": {"S": "STATE"}}));
        let mut big = small.clone();
        big.insert("pad".into(), json!({"S": "x".repeat(2_500)}));
        let before = Snapshot::from([(key.clone(), big)]);
        let after = Snapshot::from([(key.clone(), small)]);
        let update = call(
            "UpdateItem",
            json!({"Key": {"PK": {"S": key.0}, "SK": {"S": "STATE"}}}),
        );
        assert_eq!(call_units(&update, &before, &after).write, dec!(3));
        let tx = call(
            "TransactWriteItems",
            json!({"TransactItems": [{"Update": {"Key": {"PK": {"S": key.0}, "SK": {"S": "STATE"}}}}]}),
        );
        assert_eq!(call_units(&tx, &before, &after).write, dec!(6));
    }

    #[test]
    fn an_eventually_consistent_read_costs_half() {
        let key = ("p".to_owned(), "s".to_owned());
        let snap = Snapshot::from([(key, item(json!({"PK": {"S": "p"}, "SK": {"S": "s"}})))]);
        let get = |consistent: bool| {
            call(
                "GetItem",
                json!({"Key": {"PK": {"S": "p"}, "SK": {"S": "s"}}, "ConsistentRead": consistent}),
            )
        };
        assert_eq!(call_units(&get(true), &snap, &snap).read, dec!(1));
        assert_eq!(call_units(&get(false), &snap, &snap).read, dec!(0.5));
    }

    #[test]
    fn entering_a_keys_only_index_is_one_index_write_and_a_counter_change_none() {
        let base = item(json!({"PK": {"S": "p"}, "SK": {"S": "s"}, "c": {"N": "1"}}));
        let mut held = base.clone();
        held.insert("HOLDS_PK".into(), json!({"S": "HOLDS#1"}));
        held.insert("HOLDS_SK".into(), json!({"S": "p"}));
        assert_eq!(index_writes(Some(&base), Some(&held)), dec!(1));
        let mut counted = held.clone();
        counted.insert("c".into(), json!({"N": "2"}));
        assert_eq!(index_writes(Some(&held), Some(&counted)), dec!(0));
        assert_eq!(index_writes(Some(&held), Some(&base)), dec!(1));
    }
}
