//! Wallets (docs/dynamodb.md, "Wallets"): one partition per wallet,
//! `PK = T#<tenant>#WALLET#<user|org>#<id>`, holding
//!
//! - `SK = WALLET`, the head: `grants_n` (N, every grant ever put, the cap's counter),
//!   `low_balance_usd` (N, absent: no alarm) and one *credit bucket* per expiry instant,
//!   `credit#<expires_at>` / `credit#never` (N): Σ `remaining_usd` of the wallet's
//!   non-voided grants with that expiry. `available_usd` at `t` is the sum of the buckets
//!   expiring after `t` (minus what later steps keep here: overdraft and holds), so the
//!   prepaid check can read it from this one small item, in the same request as the user's
//!   state item, with expiry exact at its instant and no write at expiry;
//! - `SK = G#<grant_id>`, one item per grant: `grant_id`, `amount_usd` and `remaining_usd`
//!   (N, exact), `expires_at`, `priority` (N), `kind`, `note`, `created_at`, `voided_at`.
//!
//! Reading a wallet is one `Query` of its partition, `SK >= G#` (at most 100 grants of at
//! most ~1.3 KB: one page; pruned grants' archives `A#…` and the period draws `DRAWN#…`
//! sort before). Putting a grant is one `TransactWriteItems`: the grant under
//! `attribute_not_exists(PK)` (the stored grant comes back when it exists), the head's
//! `ADD grants_n 1, credit#… amount` under `grants_n < 100`, and a check that no archive
//! holds the id (grant upkeep, `super::grant_upkeep`). Voiding is a `GetItem` and
//! one `TransactWriteItems`: the grant's `voided_at` under "not voided and `remaining_usd`
//! as read", and the head's bucket minus that remaining.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;

use super::codec::{decimal_of, get_s, n, s, time_of, Item};
use super::expressions::Update;
use super::layout;
use super::requests::{gave_up, key, reason_code, Retries};
use super::DynamoStore;
use crate::credits::{Grant, GrantKind, Subscriber};
use crate::domain::{GrantId, TenantId};
use crate::store::{
    GrantInsert, GrantVoid, StoreError, StoreResult, WalletRecord, WalletStore,
    MAX_GRANTS_PER_WALLET,
};

pub(super) const HEAD_SK: &str = "WALLET";
const GRANT_PREFIX: &str = "G#";
const GRANTS_N: &str = "grants_n";
pub(super) const LOW_BALANCE: &str = "low_balance_usd";

pub(super) fn wallet_pk(tenant: &TenantId, wallet: &Subscriber) -> String {
    format!("T#{tenant}#WALLET#{}#{}", wallet.kind(), wallet.id())
}

/// The tenant and wallet of a wallet partition's key (the inverse of [`wallet_pk`]).
pub(super) fn wallet_of_pk(pk: &str) -> StoreResult<(TenantId, Subscriber)> {
    let corrupt = || StoreError::Corrupt(format!("wallet partition key {pk:?}"));
    let (tenant, rest) = pk
        .strip_prefix("T#")
        .and_then(|r| r.split_once("#WALLET#"))
        .ok_or_else(corrupt)?;
    let (kind, id) = rest.split_once('#').ok_or_else(corrupt)?;
    let tenant = TenantId::parse(tenant).map_err(|_| corrupt())?;
    let wallet = format!("{kind}/{id}")
        .parse::<Subscriber>()
        .map_err(|_| corrupt())?;
    Ok((tenant, wallet))
}

pub(super) fn grant_sk(id: &GrantId) -> String {
    format!("{GRANT_PREFIX}{id}")
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The head attribute holding the credit of the grants expiring at `expires_at`.
pub(super) fn credit_bucket(expires_at: Option<DateTime<Utc>>) -> String {
    match expires_at {
        Some(t) => format!("credit#{}", time(t)),
        None => "credit#never".to_owned(),
    }
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(format!("grant: {}", what.into()))
}

pub(super) fn grant_item(pk: String, g: &Grant) -> Item {
    let mut item = key(pk, grant_sk(&g.id));
    item.insert("grant_id".to_owned(), s(g.id.as_str()));
    item.insert("amount_usd".to_owned(), n(g.amount_usd));
    item.insert("remaining_usd".to_owned(), n(g.remaining_usd));
    item.insert("priority".to_owned(), n(g.priority));
    item.insert("kind".to_owned(), s(g.kind.as_str()));
    item.insert("created_at".to_owned(), s(time(g.created_at)));
    if let Some(t) = g.expires_at {
        item.insert("expires_at".to_owned(), s(time(t)));
    }
    if let Some(note) = &g.note {
        item.insert("note".to_owned(), s(note.as_str()));
    }
    if let Some(t) = g.voided_at {
        item.insert("voided_at".to_owned(), s(time(t)));
    }
    if let Some(e) = g.expired_usd {
        item.insert("expired_usd".to_owned(), n(e));
    }
    item
}

pub(super) fn grant_of(item: &Item) -> StoreResult<Grant> {
    let text = |name: &str| get_s(item, name).ok_or_else(|| corrupt(format!("no {name}")));
    let opt_time = |name: &str| get_s(item, name).map(time_of).transpose();
    let number = |name: &str| {
        item.get(name)
            .ok_or_else(|| corrupt(format!("no {name}")))
            .and_then(decimal_of)
    };
    let priority = number("priority")?;
    Ok(Grant {
        id: GrantId::parse(text("grant_id")?).map_err(|e| corrupt(e.to_string()))?,
        amount_usd: number("amount_usd")?,
        remaining_usd: number("remaining_usd")?,
        expires_at: opt_time("expires_at")?,
        priority: i32::try_from(priority).map_err(|_| corrupt("priority"))?,
        kind: text("kind")?
            .parse::<GrantKind>()
            .map_err(|e| corrupt(e.to_string()))?,
        note: get_s(item, "note").map(str::to_owned),
        created_at: time_of(text("created_at")?)?,
        voided_at: opt_time("voided_at")?,
        expired_usd: item.get("expired_usd").map(decimal_of).transpose()?,
    })
}

impl DynamoStore {
    async fn try_void(&self, pk: &str, g: &Grant, at: DateTime<Utc>) -> StoreResult<bool> {
        let mut voided = Update::new();
        let mut after = g.clone();
        after.void(at);
        super::grant_upkeep::set_due(&mut voided, pk, &after);
        voided.set("voided_at", s(time(at))).condition(|e| {
            format!(
                "attribute_exists({}) AND attribute_not_exists({}) AND {} = {}",
                e.name(layout::PK),
                e.name("voided_at"),
                e.name("remaining_usd"),
                e.value(n(g.remaining_usd))
            )
        });
        let mut head = Update::new();
        head.add(&credit_bucket(g.expires_at), n(-g.remaining_usd));
        let items = vec![
            self.tx_update(pk.to_owned(), &grant_sk(&g.id), &voided)?,
            self.tx_update(pk.to_owned(), HEAD_SK, &head)?,
        ];
        Ok(self
            .transact_until_decided("void grant", || Ok(items.clone()))
            .await?
            .is_ok())
    }
}

#[async_trait]
impl WalletStore for DynamoStore {
    async fn insert_grant(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        grant: &Grant,
    ) -> StoreResult<GrantInsert> {
        let pk = wallet_pk(tenant, wallet);
        let mut head = Update::new();
        head.add(GRANTS_N, n(1))
            .add(&credit_bucket(grant.expires_at), n(grant.remaining_usd));
        // The tenant's wallet listing (admin view; `super::wallet_views`).
        super::wallet_views::listed(&mut head, tenant, wallet);
        head.condition(|e| {
            let count = e.name(GRANTS_N);
            format!(
                "attribute_not_exists({count}) OR {count} < {}",
                e.value(n(MAX_GRANTS_PER_WALLET))
            )
        });
        let item = super::grant_upkeep::with_due(grant_item(pk.clone(), grant), &pk, grant);
        let items = vec![
            self.tx_put(item, true)?,
            self.tx_update(pk.clone(), HEAD_SK, &head)?,
            // A pruned grant keeps its id (grant upkeep).
            self.tx_no_archive(pk.clone(), &grant.id)?,
        ];
        let reasons = match self
            .transact_until_decided("put grant", || Ok(items.clone()))
            .await?
        {
            Ok(()) => return Ok(GrantInsert::Created(grant.clone())),
            Err(reasons) => reasons,
        };
        let failed = |i: usize| {
            reasons
                .get(i)
                .is_some_and(|r| reason_code(r) == "ConditionalCheckFailed")
        };
        if failed(0) {
            let stored = match reasons[0].item() {
                Some(item) if !item.is_empty() => grant_of(item)?,
                _ => self
                    .get_grant(tenant, wallet, &grant.id)
                    .await?
                    .ok_or_else(|| corrupt("an existing grant vanished"))?,
            };
            return Ok(GrantInsert::Exists(stored));
        }
        if failed(2) {
            let archived = match reasons[2].item() {
                Some(item) if !item.is_empty() => grant_of(item)?,
                _ => self
                    .get_archived_grant(pk.clone(), &grant.id)
                    .await?
                    .ok_or_else(|| corrupt("an archived grant vanished"))?,
            };
            return Ok(GrantInsert::Exists(archived));
        }
        if failed(1) {
            return Ok(GrantInsert::WalletFull);
        }
        Err(gave_up("put grant"))
    }

    async fn get_grant(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        id: &GrantId,
    ) -> StoreResult<Option<Grant>> {
        let pk = wallet_pk(tenant, wallet);
        match self.get_item(pk.clone(), &grant_sk(id), &[]).await? {
            Some(item) => grant_of(&item).map(Some),
            // Pruned: kept as an archive under its id (grant upkeep).
            None => self.get_archived_grant(pk, id).await,
        }
    }

    async fn void_grant(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        id: &GrantId,
        at: DateTime<Utc>,
    ) -> StoreResult<GrantVoid> {
        let pk = wallet_pk(tenant, wallet);
        let mut retries = Retries::new();
        loop {
            let Some(item) = self.get_item(pk.clone(), &grant_sk(id), &[]).await? else {
                // Pruned grants are final: a void answers them unchanged.
                return Ok(match self.get_archived_grant(pk.clone(), id).await? {
                    Some(g) => GrantVoid::AlreadyVoided(g),
                    None => GrantVoid::Unknown,
                });
            };
            let mut grant = grant_of(&item)?;
            if grant.voided_at.is_some() {
                return Ok(GrantVoid::AlreadyVoided(grant));
            }
            if self.try_void(&pk, &grant, at).await? {
                grant.void(at);
                return Ok(GrantVoid::Voided(grant));
            }
            // A racing void or draw changed the grant: read it again.
            if !retries.again().await {
                return Err(gave_up("void grant"));
            }
        }
    }

    async fn get_wallet(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
    ) -> StoreResult<WalletRecord> {
        // The head and at most 100 grants: one page, one Query.
        let items = self.wallet_items(wallet_pk(tenant, wallet)).await?;
        let mut record = WalletRecord::default();
        for item in &items {
            match get_s(item, layout::SK) {
                Some(HEAD_SK) => {
                    record.low_balance_usd = match item.get(LOW_BALANCE) {
                        Some(v) => Some(decimal_of(v)?),
                        None => None,
                    };
                    let credit = super::prepaid::credit_state_of(item)?;
                    record.overdrawn_usd = credit.overdrawn_usd;
                    record.held_usd = credit.held_usd;
                    (record.alarms, record.alarm_seq) = super::prepaid::alarms_of(item)?;
                }
                Some(sk) if sk.starts_with(GRANT_PREFIX) => record.grants.push(grant_of(item)?),
                _ => return Err(corrupt("unknown item in a wallet partition")),
            }
        }
        Ok(record)
    }

    async fn set_low_balance(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        low_balance_usd: Option<Decimal>,
    ) -> StoreResult<()> {
        let mut head = Update::new();
        match low_balance_usd {
            Some(low) => head.set(LOW_BALANCE, n(low)),
            None => head.remove(LOW_BALANCE),
        };
        // One UpdateItem of the head: no read, nothing to race with but another setting.
        self.update(wallet_pk(tenant, wallet), HEAD_SK, &head, false)
            .await?
            .map_err(|_| gave_up("set wallet settings"))
    }
}
