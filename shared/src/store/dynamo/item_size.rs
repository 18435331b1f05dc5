//! Item sizes by DynamoDB's rules (names plus values; a number one byte per two
//! significant digits plus one; a map or list 3 bytes plus one per element), as the
//! store bounds them (`inline_bound`), the emulator tests measure them
//! (`tests/emulator/state_size.rs`) and `tools/dynamo-cost` reports them.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// The bytes of a number by DynamoDB's rules: one per two significant digits, plus one.
pub fn number_size(n: &str) -> usize {
    let digits: String = n
        .trim_start_matches('-')
        .split(['e', 'E'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let significant = digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1);
    significant.div_ceil(2) + 1
}

/// The bytes of a value by DynamoDB's item size rules.
pub fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::Ss(ss) => ss.iter().map(String::len).sum(),
        AttributeValue::Ns(ns) => ns.iter().map(|n| number_size(n)).sum(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| k.len() + value_size(v) + 1)
                .sum::<usize>()
        }
        AttributeValue::L(l) => 3 + l.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        _ => 1,
    }
}

/// The bytes of an item by DynamoDB's rules: its names plus its values.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_dynamodbs_rules() {
        assert_eq!(value_size(&AttributeValue::N("12345".into())), 4);
        assert_eq!(value_size(&AttributeValue::N("0.0100".into())), 2);
        assert_eq!(value_size(&AttributeValue::S("abc".into())), 3);
        let m = AttributeValue::M([("k".to_owned(), AttributeValue::S("ab".into()))].into());
        assert_eq!(value_size(&m), 3 + 1 + 2 + 1);
        let l = AttributeValue::L(vec![AttributeValue::S("ab".into())]);
        assert_eq!(value_size(&l), 3 + 2 + 1);
    }
}
