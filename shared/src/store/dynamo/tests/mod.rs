//! Tests of the DynamoDB adapter's own pieces, by topic: pure functions everywhere, and
//! request budgets and races against the emulator (`#[ignore]`d; run them with
//! `scripts/with-moto cargo test -p meter-core --lib store::dynamo -- --ignored`).
//! What the port promises is tested on both adapters by `tests/conformance`.

mod billing;
mod keys;
mod requests;
mod usage;
