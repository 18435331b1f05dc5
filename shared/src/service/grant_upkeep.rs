//! The aggregation's grant upkeep (§11: "the aggregation writes the expiry";
//! docs/credits.md "Expiry and pruning"): each pass reads the grants the due index lists
//! as due ([`crate::store::GrantUpkeepStore`]), records the expiry of those that expired
//! (once: a conditional write; of racing passes one writes it) and prunes those finished
//! [`FINISHED_GRANT_KEPT`] ago. A PUT that finds its wallet full prunes the wallet's
//! finished grants at once ([`Meter::prune_finished_grants`]) and tries again.

use chrono::{DateTime, Utc};

use super::{Meter, Result};
use crate::credits::{Grant, Subscriber};
use crate::domain::TenantId;
use crate::store::{is_finished, with_expiry_recorded, FINISHED_GRANT_KEPT};

/// How many due grants one pass reads.
const DUE_PAGE: usize = 500;
/// Attempts per grant when racing writes keep changing it.
const ATTEMPTS: usize = 4;

/// What one upkeep step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Upkeep {
    pub expired: usize,
    pub pruned: usize,
}

/// What is next for `g` at `now`, with `keep` the time a finished grant stays.
enum Next {
    Record,
    Prune,
    Nothing,
}

fn next(g: &Grant, now: DateTime<Utc>, keep: chrono::Duration) -> Next {
    if g.voided_at.is_none() && g.expired_usd.is_none() && g.is_expired(now) {
        return Next::Record;
    }
    let finished_at = match (g.voided_at, g.expired_usd, g.expires_at) {
        (Some(v), _, _) => Some(v),
        (None, Some(_), Some(e)) => Some(e),
        _ => None,
    };
    match finished_at {
        Some(f) if f + keep <= now => Next::Prune,
        _ => Next::Nothing,
    }
}

impl Meter {
    /// Records or prunes one grant as `next` says, re-reading it when a racing write
    /// changed it; adds what it did to `done`.
    async fn upkeep_grant(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        mut g: Grant,
        now: DateTime<Utc>,
        keep: chrono::Duration,
        done: &mut Upkeep,
    ) -> Result<()> {
        for _ in 0..ATTEMPTS {
            let wrote = match next(&g, now, keep) {
                Next::Nothing => return Ok(()),
                Next::Record => {
                    let ok = self.store.record_grant_expiry(tenant, wallet, &g).await?;
                    if ok {
                        done.expired += 1;
                        tracing::info!(tenant = %tenant, wallet = %wallet, grant = %g.id,
                            expired_usd = %g.remaining_usd, "grant expiry recorded");
                        g = with_expiry_recorded(&g);
                        // The expiry lowered the balance at its instant: a level it crossed
                        // raises its alarm now, within the pass that records it.
                        if let Err(e) = self.observe_wallet_of(tenant, wallet).await {
                            tracing::warn!(error = %e, wallet = %wallet,
                                "could not observe the wallet after recording an expiry");
                        }
                    }
                    ok
                }
                Next::Prune => {
                    let ok = self.store.archive_grant(tenant, wallet, &g).await?;
                    if ok {
                        done.pruned += 1;
                        return Ok(());
                    }
                    ok
                }
            };
            if !wrote {
                // Changed by a racing pass, a void or a draw: read it again.
                match self
                    .store
                    .get_wallet(tenant, wallet)
                    .await?
                    .grants
                    .into_iter()
                    .find(|x| x.id == g.id)
                {
                    Some(fresh) => g = fresh,
                    None => return Ok(()), // pruned meanwhile
                }
            }
        }
        Ok(())
    }

    /// One aggregation step: the grants due at `now`.
    pub(super) async fn upkeep_grants(&self, now: DateTime<Utc>) -> Result<Upkeep> {
        let mut done = Upkeep::default();
        for due in self.store.due_grants(now, DUE_PAGE).await? {
            if let Err(e) = self
                .upkeep_grant(
                    &due.tenant,
                    &due.wallet,
                    due.grant,
                    now,
                    FINISHED_GRANT_KEPT,
                    &mut done,
                )
                .await
            {
                tracing::error!(error = %e, tenant = %due.tenant, wallet = %due.wallet,
                    "grant upkeep failed; the next pass retries it");
            }
        }
        Ok(done)
    }

    /// Prunes every finished grant of the wallet at `now` (recording an expiry first when
    /// the aggregation has not yet): what a PUT does when it finds the wallet full. One
    /// read of the wallet, then one write per finished grant. Returns how many were pruned.
    pub(super) async fn prune_finished_grants(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let mut done = Upkeep::default();
        for g in self.store.get_wallet(tenant, wallet).await?.grants {
            if !is_finished(&g, now) {
                continue;
            }
            let drawn_out = g.voided_at.is_none() && !g.is_expired(now);
            if drawn_out {
                // Drawn to 0 before any expiry: no instant to be due at, pruned here.
                if self.store.archive_grant(tenant, wallet, &g).await? {
                    done.pruned += 1;
                }
            } else {
                self.upkeep_grant(tenant, wallet, g, now, chrono::Duration::zero(), &mut done)
                    .await?;
            }
        }
        Ok(done.pruned)
    }
}
