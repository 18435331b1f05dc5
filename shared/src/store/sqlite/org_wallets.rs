//! Org wallets on SQLite (see [`crate::store::OrgWalletStore`]): the same tables as a
//! user's prepaid wallet (`sqlite::prepaid`), keyed by the wallet (`user/<id>` or
//! `org/<id>`). Each event's draw runs on the writer thread in the transaction that
//! records the event, from the wallet its payer names.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::SqliteStore;
use crate::budgets::CounterWrite;
use crate::credits::Subscriber;
use crate::domain::{OrgId, TenantId, UsageEvent, UserId};
use crate::store::{
    CreditState, EventDraws, OrgWalletStore, PeriodPicker, RecordOutcome, StoreError, StoreResult,
    UsageStore, UserUsage,
};

#[async_trait]
impl OrgWalletStore for SqliteStore {
    async fn get_user_limits_with_wallets(
        &self,
        tenant: &TenantId,
        user: &UserId,
        org: Option<&OrgId>,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<(UserUsage, CreditState, Option<CreditState>)> {
        let usage = self.get_user_limits(tenant, user, pick).await?;
        let (t, u, o) = (
            tenant.clone(),
            Subscriber::User(user.clone()).to_string(),
            org.map(|o| Subscriber::Org(o.clone()).to_string()),
        );
        let (mine, org) = self
            .read(move |c| {
                let mine = super::prepaid::credit_state(c, t.as_str(), &u)?;
                let org = o
                    .map(|o| super::prepaid::credit_state(c, t.as_str(), &o))
                    .transpose()?;
                Ok((mine, org))
            })
            .await?;
        Ok((usage, mine, org))
    }

    async fn record_events_paying(
        &self,
        events: &[UsageEvent],
        writes: &[Vec<CounterWrite>],
        payers: &[Option<Subscriber>],
    ) -> StoreResult<Vec<RecordOutcome>> {
        if payers.len() != events.len() {
            return Err(StoreError::Corrupt(
                "one payer (or none) per event is expected".to_owned(),
            ));
        }
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (events, writes) = (events.to_vec(), writes.to_vec());
        let payers: Vec<Option<String>> = payers
            .iter()
            .map(|p| p.as_ref().map(ToString::to_string))
            .collect();
        self.write(move |c| {
            let mut outcomes = Vec::with_capacity(events.len());
            for (i, e) in events.iter().enumerate() {
                let outcome = super::usage::record_event(c, e)?;
                if outcome == RecordOutcome::Recorded {
                    if let Some(w) = writes.get(i).filter(|w| !w.is_empty()) {
                        super::budget_counters::apply_all(c, e.tenant.as_str(), w, e.recorded_at)?;
                    }
                    if let Some(wallet) = &payers[i] {
                        super::prepaid::draw_event(c, e, wallet)?;
                    }
                }
                outcomes.push(outcome);
            }
            Ok(outcomes)
        })
        .await
    }

    async fn wallet_draws(
        &self,
        tenant: &TenantId,
        wallet: &Subscriber,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<EventDraws>> {
        let (tenant, wallet) = (tenant.clone(), wallet.clone());
        self.read(move |c| super::prepaid::read_draws(c, &tenant, &wallet, since))
            .await
    }
}
