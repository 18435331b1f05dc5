//! Billing: the billing state of a period and its version, closing a period into an
//! invoice (which moves the period's attributes off the state item to its period item),
//! the invoice outbox and job cursors (docs/dynamodb.md, "Billing").

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::claims;
use super::codec::{decimal_attr, decimal_of, from_item, get_s, n, s, time_of, to_item, Item};
use super::counters::{adjustments, recorded_periods};
use super::expressions::{Expr, Update};
use super::items;
use super::layout::{self, AdjustmentPart};
use super::requests::{first_condition_failed, key, page_size};
use super::DynamoStore;
use crate::domain::{Invoice, TenantId, UserId};
use crate::store::{BillingState, CloseOutcome, InvoiceStore, StoreError, StoreResult};

/// What a [`crate::store::BillingState`] version stands for: the state attributes a close
/// requires unchanged. Text: `<billed_to or ->|<w|P or 0>|<adjv or 0>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BillingVersion {
    pub(super) billed_to: Option<String>,
    pub(super) writes: Decimal,
    pub(super) adjv: Decimal,
}

impl BillingVersion {
    pub(super) fn of(item: &Item, period: DateTime<Utc>) -> StoreResult<Self> {
        Ok(Self {
            billed_to: get_s(item, layout::BILLED_TO).map(str::to_owned),
            writes: decimal_attr(item, &layout::writes(period))?,
            adjv: decimal_attr(item, layout::ADJ_VERSION)?,
        })
    }

    pub(super) fn text(&self) -> String {
        let b = self.billed_to.as_deref().unwrap_or("-");
        format!("{b}|{}|{}", self.writes, self.adjv)
    }

    /// `None` for text no [`BillingVersion::text`] wrote.
    pub(super) fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('|');
        let (b, w, a) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            billed_to: (b != "-").then(|| b.to_owned()),
            writes: w.parse().ok()?,
            adjv: a.parse().ok()?,
        })
    }

    /// The condition that the state item still has this version, for period `period`.
    pub(super) fn condition(&self, x: &mut Expr, period: DateTime<Utc>) -> String {
        let b = x.name(layout::BILLED_TO);
        let billed = match &self.billed_to {
            Some(v) => format!("{b} = {}", x.value(s(v.clone()))),
            None => format!("attribute_not_exists({b})"),
        };
        let mut counter = |attr: &str, v: Decimal| {
            let a = x.name(attr);
            let val = x.value(n(v));
            if v.is_zero() {
                format!("(attribute_not_exists({a}) OR {a} = {val})")
            } else {
                format!("{a} = {val}")
            }
        };
        let writes = counter(&layout::writes(period), self.writes);
        let adjv = counter(layout::ADJ_VERSION, self.adjv);
        format!("{billed} AND {writes} AND {adjv}")
    }
}

/// What closing a period moves off the state item: every attribute of the periods that
/// start before the new `billed_to` (the period invoiced, and any earlier one left there
/// — one with only holds, never invoiced), to the period items.
#[derive(Debug, Default)]
pub(super) struct PeriodMoves {
    /// By period: its attributes on the state item (removed), and its period item's writes.
    periods: BTreeMap<DateTime<Utc>, Moved>,
}

#[derive(Debug, Default)]
struct Moved {
    names: Vec<String>,
    counters: BTreeMap<String, Decimal>,
    fired: Vec<String>,
    /// The period's write counter as read (`None`: absent).
    writes: Option<Decimal>,
}

impl PeriodMoves {
    pub(super) fn of(
        state: &Item,
        period: DateTime<Utc>,
        billed_to: DateTime<Utc>,
    ) -> StoreResult<Self> {
        let mut out = PeriodMoves::default();
        // The invoiced period's item is always written: it is marked closed.
        out.periods.entry(period).or_default();
        for (name, value) in state {
            let Some(start) = layout::period_of_attr(name) else {
                continue;
            };
            if start >= billed_to {
                continue;
            }
            let m = out.periods.entry(start).or_default();
            m.names.push(name.clone());
            if let Some((_, field, provider)) = layout::parse_counter(name) {
                let v = decimal_of(value)?;
                if !v.is_zero() {
                    m.counters.insert(
                        format!(
                            "{}|{}",
                            field.code(),
                            provider.unwrap_or(layout::ALL_PROVIDERS)
                        ),
                        v,
                    );
                }
            } else if name.starts_with(layout::FIRED_PREFIX) {
                if let AttributeValue::Ss(keys) = value {
                    m.fired.extend(keys.iter().cloned());
                }
            } else if name.starts_with(layout::WRITES_PREFIX) {
                m.writes = Some(decimal_of(value)?);
            }
        }
        Ok(out)
    }

    /// Removes the moved attributes from the state update, on condition that no other
    /// moved period was written since it was read (the invoiced one's write counter is in
    /// the version already).
    pub(super) fn apply_to_state(&self, u: &mut Update, invoiced: DateTime<Utc>) {
        for (start, m) in &self.periods {
            for name in &m.names {
                u.remove(name);
            }
            if *start == invoiced {
                continue;
            }
            let w = layout::writes(*start);
            match m.writes {
                Some(v) => u.condition(|x| format!("{} = {}", x.name(&w), x.value(n(v)))),
                None => u.condition(|x| format!("attribute_not_exists({})", x.name(&w))),
            };
        }
    }

    /// The period items' updates: `ADD` the moved counters and fired keys, mark closed.
    pub(super) fn period_updates(&self) -> Vec<(DateTime<Utc>, Update)> {
        self.periods
            .iter()
            .map(|(start, m)| {
                let mut u = Update::new();
                for (attr, v) in &m.counters {
                    u.add(attr, n(v));
                }
                if !m.fired.is_empty() {
                    u.add(layout::PERIOD_FIRED, AttributeValue::Ss(m.fired.clone()));
                }
                u.set(layout::PERIOD_CLOSED, AttributeValue::Bool(true));
                (*start, u)
            })
            .collect()
    }
}

impl DynamoStore {
    /// Applies `u` (whose condition includes that the item exists) to the stored invoice;
    /// `false` when its condition failed or there is no such invoice.
    ///
    /// An invoice is at its period's key, or — an erased user's invoice kept under the
    /// pseudonym — at its period's and id's key: the first write is conditional on the id,
    /// and only when another invoice (or none) is at the period's key is the second tried.
    async fn update_invoice(&self, invoice: &Invoice, u: &Update) -> StoreResult<bool> {
        let pk = layout::user_pk(&invoice.tenant, &invoice.user);
        let mut at_period = u.clone();
        at_period.condition(|x| format!("{} = {}", x.name("id"), x.value(s(&invoice.id))));
        let res = self
            .update(
                pk.clone(),
                &layout::invoice_sk(invoice.period.start),
                &at_period,
                true,
            )
            .await?;
        match res {
            Ok(()) => return Ok(true),
            Err(Some(old)) if get_s(&old, "id") == Some(invoice.id.as_str()) => return Ok(false),
            // Another invoice of that period, or none (or an emulator that returned no
            // item: then the second write finds nothing and changes nothing).
            Err(_) => {}
        }
        let res = self
            .update(
                pk,
                &layout::pseudonymised_invoice_sk(invoice.period.start, &invoice.id),
                u,
                false,
            )
            .await?;
        Ok(res.is_ok())
    }
}

impl DynamoStore {
    /// Closes a period (see [`InvoiceStore::close_period`]) with `extra` items in the same
    /// transaction (issue 19: the wallet's draws for the invoice's `credits_applied`); any
    /// of their conditions failing is [`CloseOutcome::Changed`].
    pub(super) async fn close_period_with(
        &self,
        invoice: &Invoice,
        state: &BillingState,
        billed_to: DateTime<Utc>,
        extra: &[aws_sdk_dynamodb::types::TransactWriteItem],
    ) -> StoreResult<CloseOutcome> {
        // A version this store did not write cannot be the current one.
        let Some(version) = BillingVersion::parse(&state.version) else {
            return Ok(CloseOutcome::Changed);
        };
        // The attributes to move: read the state item again. If it is not at `version`
        // any more, the transaction fails on it (after the invoice's condition, which
        // decides first: an existing invoice is `AlreadyInvoiced` whatever the state).
        let current = self.get_state(&state.tenant, &state.user, &[]).await?;
        if super::migrate::needs_migration(&current) {
            // Its usage is under names this build does not read: invoicing it now would
            // bill zero. `meter migrate` rewrites it (docs/operations.md).
            return Err(StoreError::Unavailable(
                "the user's state item is in the previous layout: run `meter migrate`".into(),
            ));
        }
        let moves = PeriodMoves::of(&current, state.period_start, billed_to)?;
        let mut u = Update::new();
        u.set(layout::BILLED_TO, s(layout::billed_to(billed_to)));
        // Equal to the stored values (adjv is in the condition): removed, not subtracted.
        for period in state.adjustments.keys() {
            u.remove(&layout::adjustment(*period, AdjustmentPart::Events))
                .remove(&layout::adjustment(*period, AdjustmentPart::Cost));
        }
        u.add(layout::ADJ_VERSION, n(1));
        u.condition(|x| version.condition(x, state.period_start));
        moves.apply_to_state(&mut u, state.period_start);
        let state_pk = layout::user_pk(&state.tenant, state.user.as_str());
        let res = self
            .transact_until_decided("closing a period", || {
                let mut tx = vec![
                    self.tx_put(items::invoice_item(invoice)?, true)?,
                    self.tx_update(state_pk.clone(), layout::STATE_SK, &u)?,
                ];
                for (period, pu) in moves.period_updates() {
                    tx.push(self.tx_update(state_pk.clone(), &layout::period_sk(period), &pu)?);
                }
                tx.extend(extra.iter().cloned());
                Ok(tx)
            })
            .await?;
        Ok(match res {
            Ok(()) => CloseOutcome::Closed,
            Err(reasons) if first_condition_failed(&reasons) => CloseOutcome::AlreadyInvoiced,
            Err(_) => CloseOutcome::Changed,
        })
    }
}

#[async_trait]
impl InvoiceStore for DynamoStore {
    async fn put_invoice_once(&self, invoice: &Invoice) -> StoreResult<bool> {
        let mut item = to_item(invoice)?;
        item.extend(key(
            layout::user_pk(&invoice.tenant, &invoice.user),
            layout::invoice_sk(invoice.period.start),
        ));
        self.put_new(item).await
    }

    async fn billing_state(
        &self,
        tenant: &TenantId,
        user: &UserId,
        period_start: DateTime<Utc>,
    ) -> StoreResult<BillingState> {
        let items = self.read_user_items(tenant, user, &[period_start]).await?;
        let version = BillingVersion::of(&items.state, period_start)?;
        let billed_to = version.billed_to.as_deref().map(time_of).transpose()?;
        Ok(BillingState {
            tenant: tenant.clone(),
            user: user.clone(),
            period_start,
            usage: items.usage(period_start)?,
            adjustments: adjustments(&items.state)?,
            pending_periods: recorded_periods(&items.state)?
                .into_iter()
                .filter(|p| billed_to.is_none_or(|b| *p >= b))
                .collect(),
            billed_to,
            version: version.text(),
        })
    }

    async fn close_period(
        &self,
        invoice: &Invoice,
        state: &BillingState,
        billed_to: DateTime<Utc>,
    ) -> StoreResult<CloseOutcome> {
        self.close_period_with(invoice, state, billed_to, &[]).await
    }

    async fn unpublished_invoices(&self, limit: usize) -> StoreResult<Vec<Invoice>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let items = self
            .query_all(
                || {
                    self.query()
                        .index_name(layout::OUTBOX_INDEX)
                        .key_condition_expression("#o = :o")
                        .expression_attribute_names("#o", layout::OUTBOX_PK)
                        .expression_attribute_values(":o", s(layout::INVOICES_PARTITION))
                        .limit(page_size(limit))
                },
                Some(limit),
            )
            .await?;
        items.iter().map(from_item).collect()
    }

    async fn mark_invoice_published(&self, invoice: &Invoice) -> StoreResult<()> {
        // A missing invoice changes nothing.
        self.update_invoice(invoice, &claims::published()).await?;
        Ok(())
    }

    async fn claim_invoice(
        &self,
        invoice: &Invoice,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.update_invoice(invoice, &claims::claim(now, until))
            .await
    }

    async fn release_invoice_claim(
        &self,
        invoice: &Invoice,
        until: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.update_invoice(invoice, &claims::release(until))
            .await?;
        Ok(())
    }

    async fn get_job_cursor(&self, job: &str) -> StoreResult<Option<String>> {
        let item = self
            .get_item(layout::job_pk(job), layout::JOB_SK, &[layout::JOB_CURSOR])
            .await?;
        Ok(item
            .as_ref()
            .and_then(|i| get_s(i, layout::JOB_CURSOR))
            .map(str::to_owned))
    }

    async fn put_job_cursor(&self, job: &str, cursor: Option<&str>) -> StoreResult<()> {
        match cursor {
            Some(c) => {
                let mut item = key(layout::job_pk(job), layout::JOB_SK);
                item.insert(layout::JOB_CURSOR.into(), s(c));
                self.put(item).await
            }
            None => {
                self.delete(layout::job_pk(job), layout::JOB_SK).await?;
                Ok(())
            }
        }
    }

    async fn list_invoices(&self, tenant: &TenantId, user: &UserId) -> StoreResult<Vec<Invoice>> {
        let items = self
            .query_prefix(
                layout::user_pk(tenant, user.as_str()),
                layout::INVOICE_PREFIX,
                false,
            )
            .await?;
        items.iter().map(from_item).collect()
    }
}
