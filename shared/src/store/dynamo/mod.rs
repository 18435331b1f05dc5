//! The DynamoDB adapter: one table, single-table design (docs/dynamodb.md).
//!
//! The heart of it is one USER STATE item per (tenant, user) holding the subscription,
//! the limit counters and fired alert keys of the open periods, and up to eight open
//! reservations; closed periods and the display-only counts are PERIOD items of their
//! own, and further reservations items of their own, so that no item grows with history.
//! A check reads one item, a reservation is one write request, and recording events is
//! one `TransactWriteItems` (event items + one state update + one update per daily rollup
//! and per period item).
//!
//! One file per port trait, named as in `store::sqlite`: `tenants`, `catalog`,
//! `subscriptions`, `usage` (events are recorded in `recording`, each chunk planned in
//! `chunk_plan` and drawn from the wallets of `chunk_wallets`), `alerts`, `billing`,
//! `privacy`. Beneath them: `reservations` (inline and spilled), `period_items` (reading a
//! period from the state and period items), `claims` (publishing claims of the outbox),
//! `requests` (the requests and their retries), `layout` (key, index and attribute
//! names), `items` (the item of each record type), `counters` (increments and where they
//! land), `codec` (attribute values), `expressions`, `errors`, `schema` (creating the
//! table), `request_counter`, and `migrate` (from the previous layout, whose names are in
//! `legacy`). Tests are in `tests/`.

use aws_sdk_dynamodb::Client;

mod alerts;
mod batch_definitions;
mod billing;
mod budget_alerts;
mod budget_counters;
mod budgets;
mod catalog;
mod check_view;
mod chunk_plan;
mod chunk_wallets;
mod claims;
mod codec;
mod counters;
mod dashboard;
mod directory;
mod errors;
mod expressions;
mod grant_upkeep;
mod inline_bound;
pub mod item_size;
mod items;
mod late_draws;
pub mod layout;
pub mod legacy;
pub mod migrate;
pub mod migrate_budgets;
pub mod migrate_grants;
pub mod migrate_org_billed;
mod open_reservations;
mod org_billing;
mod org_late_draws;
mod org_members;
mod org_wallets;
mod orgs;
mod period_draws;
mod period_items;
mod prepaid;
mod privacy;
mod recording;
mod repricing;
mod request_counter;
mod requests;
mod reservations;
mod schema;
mod stale_windows;
mod subscriptions;
mod tenant_orgs;
mod tenants;
mod token_keys;
mod usage;
mod view_parts;
mod wallet_views;
mod wallets;

/// The former name of [`layout`], kept for callers outside the store.
pub use layout as keys;
pub use migrate::MigrationReport;
pub use request_counter::{counting_client, RequestCounter};
pub use schema::create_table;
pub use tenants::KeyUpgrade;

/// The storage port on one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    crowded: reservations::Crowded,
    /// Issue 18: ended windows seen on budget counter items, removed by the next write.
    stale: stale_windows::StaleWindows,
    /// Issue 18: counter items an event batch's read included lately for their stale
    /// windows alone.
    sweeps: stale_windows::Sweeps,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            crowded: reservations::Crowded::default(),
            stale: stale_windows::StaleWindows::default(),
            sweeps: stale_windows::Sweeps::default(),
        }
    }

    /// A store whose client counts its requests (per operation) in the returned counter.
    pub fn with_request_counter(
        sdk_config: &aws_config::SdkConfig,
        table: impl Into<String>,
    ) -> (Self, RequestCounter) {
        let (client, counter) = counting_client(sdk_config);
        (Self::new(client, table), counter)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

#[cfg(test)]
mod tests;
