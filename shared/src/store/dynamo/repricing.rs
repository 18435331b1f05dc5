//! Pricing an unpriced event that a prepaid wallet pays for, on DynamoDB (see
//! [`crate::store::RepriceStore`], docs/dynamodb.md "Wallets"). One `TransactWriteItems`
//! holds what `price_event` writes (the event item under "still unpriced", the state item
//! under "`billed_to` as read", the day's rollup, the period items) and what an ingest's
//! draw writes (`prepaid::ChunkDraws` of this one event, from one `Query` of the wallet):
//! the event item keeps its draws (`draws`, or `org_draws` and a ledger item when an org
//! pays), one conditional update per drawn grant (`remaining_usd >= d`, not voided), the
//! head's buckets and overdraft and, for a user's wallet, the `DRAWN#<period>` sums.
//!
//! Once per event: the event item's condition fails for every pass but the first (the
//! answer is `false`, nothing written). Any other failed condition — `billed_to` moved, a
//! grant drawn, voided or expired meanwhile — reads the state and the wallet again and
//! tries again.

use async_trait::async_trait;
use rust_decimal::Decimal;

use super::codec::{n, s};
use super::expressions::Update;
use super::layout;
use super::prepaid::ChunkDraws;
use super::requests::{first_condition_failed, gave_up, MAX_ATTEMPTS};
use super::DynamoStore;
use crate::credits::Subscriber;
use crate::domain::{EventId, TenantId};
use crate::store::{RepriceStore, StoreResult, WalletStore};

#[async_trait]
impl RepriceStore for DynamoStore {
    async fn price_event_paying(
        &self,
        tenant: &TenantId,
        event_id: &EventId,
        cost: Decimal,
        price_version: &str,
        payer: &Subscriber,
    ) -> StoreResult<bool> {
        let event_pk = layout::event_pk(tenant, event_id);
        let Some(item) = self
            .get_item(event_pk.clone(), layout::EVENT_SK, &[])
            .await?
        else {
            return Ok(false);
        };
        let mut e = super::items::event_of(&item)?;
        if e.cost_usd.is_some() {
            return Ok(false);
        }
        e.cost_usd = Some(cost);
        let mut day = Update::new();
        day.add(&layout::day_attr("cost", &e.provider), n(cost));
        let state_pk = layout::user_pk(tenant, e.user.as_str());
        let wallet_pk = super::wallets::wallet_pk(tenant, payer);
        for _ in 0..MAX_ATTEMPTS {
            let state = self
                .get_state(tenant, &e.user, &[layout::BILLED_TO])
                .await?;
            let billed = super::codec::get_s(&state, layout::BILLED_TO).map(str::to_owned);
            let (u, rendered) = super::usage::priced_writes(&e, cost, billed.as_deref())?;
            let grants = self.get_wallet(tenant, payer).await?.grants;
            let drawn = ChunkDraws::of(std::slice::from_ref(&e), &[0], &grants)?;
            let mut event = Update::new();
            event
                .set("cost_usd", s(cost.to_string()))
                .set("price_version", s(price_version))
                .remove(layout::OUTBOX_PK)
                .remove(layout::OUTBOX_SK);
            let mut ledger = None;
            if let Some(one) = drawn.events.get(&0) {
                match payer {
                    Subscriber::User(_) => {
                        event.set(
                            super::prepaid::EVENT_DRAWS,
                            super::prepaid::draws_attr(one)?,
                        );
                    }
                    Subscriber::Org(org) => {
                        event.set(
                            super::org_wallets::EVENT_ORG_DRAWS,
                            super::prepaid::draws_attr(one)?,
                        );
                        ledger = Some(super::org_wallets::ledger_item(&e, org, one)?);
                    }
                }
            }
            event.condition(|x| {
                let (pk, c) = (x.name(layout::PK), x.name("cost_usd"));
                let null = x.value(s("NULL"));
                format!(
                    "attribute_exists({pk}) AND (attribute_not_exists({c}) OR attribute_type({c}, {null}))"
                )
            });
            let mut head = Update::new();
            drawn.head_adds(&mut head);
            // A user's draw sums; an event of an invoiced period's go to the invoice that
            // bills its adjustment (late_draws).
            let sums = super::late_draws::draw_sum_updates(
                &drawn,
                std::slice::from_ref(&e),
                billed.as_deref(),
            )?;
            let res = self
                .transact_until_decided("pricing an event that draws credit", || {
                    // The event item first: its failed condition alone means "priced already".
                    let mut tx = vec![
                        self.tx_update(event_pk.clone(), layout::EVENT_SK, &event)?,
                        self.tx_update(state_pk.clone(), layout::STATE_SK, &u)?,
                    ];
                    if !cost.is_zero() {
                        tx.push(self.tx_update(
                            state_pk.clone(),
                            &layout::day_sk(e.timestamp.date_naive()),
                            &day,
                        )?);
                    }
                    for (period, w) in &rendered.periods {
                        if let Some(pu) = w.update() {
                            tx.push(self.tx_update(
                                state_pk.clone(),
                                &layout::period_sk(*period),
                                &pu,
                            )?);
                        }
                    }
                    for (sk, gu) in drawn.grant_updates() {
                        tx.push(self.tx_update(wallet_pk.clone(), &sk, &gu)?);
                    }
                    if !head.update_expression().is_empty() {
                        tx.push(self.tx_update(
                            wallet_pk.clone(),
                            super::prepaid::HEAD_SK,
                            &head,
                        )?);
                    }
                    if matches!(payer, Subscriber::User(_)) {
                        for (sk, pu) in &sums {
                            tx.push(self.tx_update(wallet_pk.clone(), sk, pu)?);
                        }
                    }
                    if let Some(l) = &ledger {
                        tx.push(self.tx_put(l.clone(), false)?);
                    }
                    Ok(tx)
                })
                .await?;
            match res {
                Ok(()) => return Ok(true),
                // Priced meanwhile (by a racing pass, or expired): nothing changed.
                Err(reasons) if first_condition_failed(&reasons) => return Ok(false),
                // `billed_to` moved, or a grant changed since the wallet was read: again.
                Err(_) => {}
            }
        }
        Err(gave_up("pricing an event that draws credit"))
    }
}
