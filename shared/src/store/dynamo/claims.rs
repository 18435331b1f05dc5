//! Publishing claims of outbox items (alerts, invoices): one conditional `UpdateItem`
//! takes a claim, one gives it back (see the promises of `store`).

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::codec::s;
use super::expressions::Update;
use super::layout;

/// `SET claimed_until = until` if the item exists, is unpublished and no claim holds at
/// `now`.
pub(super) fn claim(now: DateTime<Utc>, until: DateTime<Utc>) -> Update {
    let mut u = Update::new();
    u.set(layout::CLAIMED_UNTIL, s(layout::sortable(until)));
    u.condition(|x| {
        let (pk, published, claimed) = (
            x.name(layout::PK),
            x.name("published"),
            x.name(layout::CLAIMED_UNTIL),
        );
        let (no, now) = (
            x.value(AttributeValue::Bool(false)),
            x.value(s(layout::sortable(now))),
        );
        format!(
            "attribute_exists({pk}) AND {published} = {no} \
             AND (attribute_not_exists({claimed}) OR {claimed} <= {now})"
        )
    });
    u
}

/// `REMOVE claimed_until` if it is still the claim taken until `until`.
pub(super) fn release(until: DateTime<Utc>) -> Update {
    let mut u = Update::new();
    u.remove(layout::CLAIMED_UNTIL);
    u.condition(|x| {
        let claimed = x.name(layout::CLAIMED_UNTIL);
        format!("{claimed} = {}", x.value(s(layout::sortable(until))))
    });
    u
}

/// `SET published = true REMOVE OUTBOX_*, claimed_until` if the item exists.
pub(super) fn published() -> Update {
    let mut u = Update::new();
    u.set("published", AttributeValue::Bool(true))
        .remove(layout::OUTBOX_PK)
        .remove(layout::OUTBOX_SK)
        .remove(layout::CLAIMED_UNTIL);
    u.condition(|x| format!("attribute_exists({})", x.name(layout::PK)));
    u
}
