//! Pricing an unpriced event, with what it draws and counts, on DynamoDB (see
//! [`crate::store::RepriceStore`], docs/dynamodb.md "Wallets" and "Org subscriptions").
//! One `TransactWriteItems` holds what `price_event` writes (the event item under "still
//! unpriced", the state item under "`billed_to` as read", the day's rollup, the period
//! items), what an ingest's draw writes when a wallet pays (`prepaid::ChunkDraws` of this
//! one event, from one `Query` of the wallet: the event item keeps its draws — `draws`, or
//! `org_draws` and a ledger item when an org pays —, one conditional update per drawn
//! grant (`remaining_usd >= d`, not voided), the head's buckets and overdraft and, for a
//! user's wallet, the `DRAWN#<period>` sums) and (issue 18) the event's cost on every
//! budget counter item its ingest wrote, the org's pooled counter item guarded by the
//! org's `OB` as an ingest's is (`org_billing::OrgEventWrites`): cost of a period the org
//! has invoiced goes to that period's pending adjustment `OA<start>|…`.
//!
//! Once per event: the event item's condition fails for every pass but the first (the
//! answer is `false`, nothing written). Any other failed condition — `billed_to` or the
//! org's `OB` moved, a grant drawn, voided or expired meanwhile — reads what changed again
//! and tries again.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rust_decimal::Decimal;

use super::codec::{n, s};
use super::expressions::Update;
use super::layout;
use super::prepaid::ChunkDraws;
use super::requests::{first_condition_failed, gave_up, reason_code, MAX_ATTEMPTS};
use super::DynamoStore;
use crate::budgets::CounterWrite;
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
        self.price_event_counted(tenant, event_id, cost, price_version, Some(payer), &[])
            .await
    }

    async fn price_event_counted(
        &self,
        tenant: &TenantId,
        event_id: &EventId,
        cost: Decimal,
        price_version: &str,
        payer: Option<&Subscriber>,
        writes: &[CounterWrite],
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
        // Issue 18: the cost on the event's budget and org counters, as an ingest adds it.
        let mut budget: BTreeMap<String, super::budget_counters::CounterAdds> = BTreeMap::new();
        let mut orgs = super::org_billing::OrgEventWrites::default();
        for w in writes {
            budget.entry(w.counter.key()).or_default().add(w)?;
            // Event 0 of a one-event "chunk": its org wallet draw, when late, goes with its
            // adjustment (org_late_draws), as a recorded late event's does.
            orgs.note_of(0, tenant, w, writes)?;
        }
        let mut org_billed = super::org_billing::OrgBilled::default();
        for _ in 0..MAX_ATTEMPTS {
            let state = self
                .get_state(tenant, &e.user, &[layout::BILLED_TO])
                .await?;
            let billed = super::codec::get_s(&state, layout::BILLED_TO).map(str::to_owned);
            let (u, rendered) = super::usage::priced_writes(
                &e,
                cost,
                billed.as_deref(),
                crate::store::user_pays(&e, writes),
            )?;
            let mut event = Update::new();
            event
                .set("cost_usd", s(cost.to_string()))
                .set("price_version", s(price_version))
                .remove(layout::OUTBOX_PK)
                .remove(layout::OUTBOX_SK);
            let mut ledger = None;
            let mut wallet_items = Vec::new();
            if let Some(payer) = payer {
                let wallet_pk = super::wallets::wallet_pk(tenant, payer);
                let grants = self.get_wallet(tenant, payer).await?.grants;
                let drawn = ChunkDraws::of(std::slice::from_ref(&e), &[0], &grants)?;
                orgs.1.set_draws([(payer, &drawn.events)])?;
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
                for (sk, gu) in drawn.grant_updates() {
                    wallet_items.push(self.tx_update(wallet_pk.clone(), &sk, &gu)?);
                }
                let mut head = Update::new();
                drawn.head_adds(&mut head);
                if !head.update_expression().is_empty() {
                    wallet_items.push(self.tx_update(
                        wallet_pk.clone(),
                        super::prepaid::HEAD_SK,
                        &head,
                    )?);
                }
                if matches!(payer, Subscriber::User(_)) {
                    // A user's draw sums; an event of an invoiced period's go to the
                    // invoice that bills its adjustment (late_draws).
                    let sums = super::late_draws::draw_sum_updates(
                        &drawn,
                        std::slice::from_ref(&e),
                        billed.as_deref(),
                    )?;
                    for (sk, pu) in &sums {
                        wallet_items.push(self.tx_update(wallet_pk.clone(), sk, pu)?);
                    }
                }
                if let Some(l) = &ledger {
                    wallet_items.push(self.tx_put(l.clone(), false)?);
                }
            }
            event.condition(|x| {
                let (pk, c) = (x.name(layout::PK), x.name("cost_usd"));
                let null = x.value(s("NULL"));
                format!(
                    "attribute_exists({pk}) AND (attribute_not_exists({c}) OR attribute_type({c}, {null}))"
                )
            });
            // Issue 18: the counters, an org's pooled one guarded by the org's `OB`.
            let counters = self.guarded_counter_items(tenant, &budget, &orgs, &org_billed)?;
            let mut tx = vec![
                // The event item first: its failed condition alone means "priced already".
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
                    tx.push(self.tx_update(state_pk.clone(), &layout::period_sk(*period), &pu)?);
                }
            }
            tx.extend(wallet_items);
            let mut guarded: Vec<(usize, String)> = Vec::new();
            for (item, org) in counters {
                if let Some(pk) = org {
                    guarded.push((tx.len(), pk));
                }
                tx.push(item);
            }
            let res = self
                .transact_until_decided("pricing an event", || Ok(tx.clone()))
                .await?;
            match res {
                Ok(()) => return Ok(true),
                // Priced meanwhile (by a racing pass, or expired): nothing changed.
                Err(reasons) if first_condition_failed(&reasons) => return Ok(false),
                // `billed_to` or an org's `OB` moved, or a grant changed since read: again.
                Err(reasons) => {
                    let moved: Vec<String> = guarded
                        .into_iter()
                        .filter(|(i, _)| {
                            reasons
                                .get(*i)
                                .is_some_and(|r| reason_code(r) == "ConditionalCheckFailed")
                        })
                        .map(|(_, pk)| pk)
                        .collect();
                    org_billed.read(self, &moved).await?;
                }
            }
        }
        Err(gave_up("pricing an event"))
    }
}
