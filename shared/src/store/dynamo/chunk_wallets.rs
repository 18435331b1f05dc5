//! The wallets one user's events draw from while they are recorded (issue 19,
//! `recording`): read once per batch, drawn from chunk by chunk.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use super::prepaid::ChunkDraws;
use super::requests::MAX_TX_ITEMS;
use super::DynamoStore;
use crate::credits::{Grant, Subscriber};
use crate::domain::{TenantId, UsageEvent};
use crate::store::{StoreError, StoreResult};

/// The grants of the wallets one user's events pay from (issue 19), read once per batch:
/// each chunk draws from this working copy, and a committed chunk's draws are applied to
/// it, so that the next chunk continues from them without reading again.
#[derive(Default)]
pub(super) struct Wallets(BTreeMap<Subscriber, Vec<Grant>>);

impl Wallets {
    /// Reads (again) the wallets among `payers` of `idxs`: one `Query` each (none when no
    /// event pays); the others keep their working copy.
    pub(super) async fn read(
        &mut self,
        store: &DynamoStore,
        tenant: &TenantId,
        payers: &[Option<Subscriber>],
        idxs: &[usize],
    ) -> StoreResult<()> {
        let wanted: BTreeSet<&Subscriber> = idxs
            .iter()
            .filter_map(|&i| payers.get(i)?.as_ref())
            .collect();
        for w in wanted {
            let grants = crate::store::WalletStore::get_wallet(store, tenant, w)
                .await?
                .grants;
            self.0.insert(w.clone(), grants);
        }
        Ok(())
    }

    /// The draws of events `todo` (in order), per wallet, from the working copy.
    pub(super) fn draws(
        &self,
        events: &[UsageEvent],
        payers: &[Option<Subscriber>],
        todo: &[usize],
    ) -> StoreResult<BTreeMap<Subscriber, ChunkDraws>> {
        let mut by_wallet: BTreeMap<&Subscriber, Vec<usize>> = BTreeMap::new();
        for &i in todo {
            if let Some(w) = payers.get(i).and_then(Option::as_ref) {
                by_wallet.entry(w).or_default().push(i);
            }
        }
        let mut out = BTreeMap::new();
        for (wallet, mine) in by_wallet {
            let grants = self
                .0
                .get(wallet)
                .ok_or_else(|| StoreError::Corrupt(format!("wallet {wallet} was not read")))?;
            out.insert(wallet.clone(), ChunkDraws::of(events, &mine, grants)?);
        }
        Ok(out)
    }

    /// Applies committed draws to the working copy.
    pub(super) fn apply(&mut self, draws: &BTreeMap<Subscriber, ChunkDraws>) -> StoreResult<()> {
        for (wallet, d) in draws {
            if let Some(grants) = self.0.get_mut(wallet) {
                for e in d.events.values() {
                    e.apply(grants)
                        .map_err(|e| StoreError::Corrupt(format!("wallet: {e}")))?;
                }
            }
        }
        Ok(())
    }

    /// Per prefix of `idxs` (`out[k]`: its first `k + 1` events), the wallet items their
    /// transaction holds: each drawn grant once, one head per wallet drawn from, one
    /// ledger item per event an org pays for, and one head per settled reservation (its
    /// released credit; counted even when it shares a head).
    pub(super) fn items(
        &self,
        events: &[UsageEvent],
        payers: &[Option<Subscriber>],
        idxs: &[usize],
    ) -> StoreResult<Vec<usize>> {
        let mut work = self.0.clone();
        let mut touched: BTreeSet<(&Subscriber, String)> = BTreeSet::new();
        let mut heads: BTreeSet<&Subscriber> = BTreeSet::new();
        let (mut ledger, mut settles) = (0usize, 0usize);
        let mut out = Vec::with_capacity(idxs.len());
        for &i in idxs.iter().take(MAX_TX_ITEMS) {
            let e = &events[i];
            settles += usize::from(e.reservation_id.is_some());
            if let (Some(wallet), Some(grants)) = (
                payers.get(i).and_then(Option::as_ref),
                payers
                    .get(i)
                    .and_then(Option::as_ref)
                    .and_then(|w| work.get_mut(w)),
            ) {
                if e.cost_usd.unwrap_or_default() > Decimal::ZERO {
                    let d = ChunkDraws::of(events, &[i], grants)?;
                    for sk in d.grants.keys() {
                        touched.insert((wallet, sk.clone()));
                    }
                    for one in d.events.values() {
                        one.apply(grants)
                            .map_err(|e| StoreError::Corrupt(format!("wallet: {e}")))?;
                    }
                    heads.insert(wallet);
                    ledger += usize::from(matches!(wallet, Subscriber::Org(_)));
                }
            }
            out.push(touched.len() + heads.len() + ledger + settles);
        }
        Ok(out)
    }
}
