//! Credits on invoices: the `credits_applied` line.
//!
//! **Postpaid**: when a period is invoiced, the wallet's credit reduces the
//! invoice's usage, overage and proration lines — not the base price (a subscription fee
//! is not usage; credit is sold as usage credit, and the contract names the three lines) and
//! not the adjustments (usage of earlier periods, which it does not name either).
//! [`apply_credits`] computes how much, drawn from the grants in the draw order at the
//! invoice's instant:
//!
//! `credits_applied = min(usage + overage + proration, exact total, Σ remaining)`, never
//! below 0. So the total never goes below zero, and unused credit stays in the wallet.
//!
//! **Prepaid**: usage was drawn from the grants when it was recorded; the invoice shows the
//! period's usage lines and a `credits_applied` line of what the period's events drew
//! ([`CreditsApplied::already_drawn`]), so what is left to pay of the usage is exactly the
//! period's shortfall — the overdraft, "billed as overage on the next invoice"; the
//! service then takes it off the wallet ([`super::Wallet::settle_overdraft`]).
//!
//! Either way [`apply_to_invoice`] adds the line (a negative amount) to an invoice
//! [`crate::billing::build_invoice`] made and re-rounds its total under the same rule.

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

use super::{draw, exact_sub, exact_sum, CreditError, Draws, Grant};
use crate::domain::{Invoice, LineItem};

/// The kind of the invoice line credits appear on.
pub const CREDITS_APPLIED: &str = "credits_applied";

/// The amounts of an invoice's lines, by kind, before credits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InvoiceAmounts {
    pub base_usd: Decimal,
    pub usage_usd: Decimal,
    pub overage_usd: Decimal,
    pub proration_usd: Decimal,
    pub adjustments_usd: Decimal,
}

impl InvoiceAmounts {
    /// The amounts of an invoice [`crate::billing::build_invoice`] made.
    pub fn from_invoice(invoice: &Invoice) -> Self {
        Self {
            base_usd: invoice.base_usd,
            usage_usd: invoice.usage_usd,
            overage_usd: invoice.overage_usd,
            proration_usd: invoice.proration_usd,
            adjustments_usd: invoice.adjustments_usd,
        }
    }

    /// What credit may reduce: usage + overage + proration, never below 0.
    pub fn creditable(&self) -> Result<Decimal, CreditError> {
        let sum = exact_sum([self.usage_usd, self.overage_usd, self.proration_usd])?;
        Ok(sum.max(Decimal::ZERO))
    }

    /// The exact total before credits: every line.
    pub fn exact_total(&self) -> Result<Decimal, CreditError> {
        exact_sum([
            self.base_usd,
            self.usage_usd,
            self.overage_usd,
            self.proration_usd,
            self.adjustments_usd,
        ])
    }

    /// At most what credits may take off: the creditable lines, and never more than the
    /// total (so it never goes below zero).
    pub fn credit_cap(&self) -> Result<Decimal, CreditError> {
        Ok(self
            .creditable()?
            .min(self.exact_total()?)
            .max(Decimal::ZERO))
    }
}

impl InvoiceAmounts {
    /// At most what a prepaid invoice's credit takes off: [`Self::credit_cap`] with the
    /// adjustments too — on a prepaid plan a late event drew its cost when it was
    /// recorded, and the invoice that bills its adjustment credits that draw
    /// (docs/credits.md, "Late events on prepaid plans"). Never more than the total.
    pub fn prepaid_credit_cap(&self) -> Result<Decimal, CreditError> {
        let sum = exact_sum([
            self.usage_usd,
            self.overage_usd,
            self.proration_usd,
            self.adjustments_usd,
        ])?;
        Ok(sum
            .max(Decimal::ZERO)
            .min(self.exact_total()?)
            .max(Decimal::ZERO))
    }
}

/// Credit taken off one invoice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreditsApplied {
    /// `>= 0`; shown on the invoice as a line of `−amount_usd`.
    pub amount_usd: Decimal,
    /// The grants it was drawn from (no shortfall). Empty for a prepaid invoice, whose
    /// credit was drawn event by event.
    pub draws: Draws,
}

impl CreditsApplied {
    /// A prepaid invoice's credit: what the period's events and the late events whose
    /// adjustments it bills drew from the grants, capped at
    /// [`InvoiceAmounts::prepaid_credit_cap`].
    pub fn already_drawn(
        lines: &InvoiceAmounts,
        drawn_in_period: Decimal,
    ) -> Result<Self, CreditError> {
        Ok(Self {
            amount_usd: drawn_in_period
                .max(Decimal::ZERO)
                .min(lines.prepaid_credit_cap()?),
            draws: Draws::default(),
        })
    }
}

/// A postpaid invoice's credit at `at` (its creation): the least of what the lines allow
/// ([`InvoiceAmounts::credit_cap`]) and what the counting grants hold, drawn from them in
/// the draw order. Nothing is changed: apply `draws` to the grants
/// ([`Draws::apply`]) in the same write that stores the invoice.
pub fn apply_credits(
    lines: &InvoiceAmounts,
    grants: &[Grant],
    at: DateTime<Utc>,
) -> Result<CreditsApplied, CreditError> {
    let credit = exact_sum(
        grants
            .iter()
            .filter(|g| g.counts(at))
            .map(|g| g.remaining_usd.max(Decimal::ZERO)),
    )?;
    let amount = lines.credit_cap()?.min(credit);
    // No shortfall: `amount` is at most what the grants drawn from hold.
    let draws = draw(grants, amount, at)?;
    Ok(CreditsApplied {
        amount_usd: amount,
        draws,
    })
}

/// Adds (or replaces) the `credits_applied` line of `invoice` and re-computes its total:
/// exact total − credits, rounded to cents half away from zero
/// ([`crate::billing::ROUNDING`]). `extra` records `credits_applied_usd` and the new
/// `exact_total_usd`. No line when nothing was applied. Applying again with the same
/// credits changes nothing.
pub fn apply_to_invoice(
    invoice: &mut Invoice,
    applied: &CreditsApplied,
) -> Result<(), CreditError> {
    let exact_before = InvoiceAmounts::from_invoice(invoice).exact_total()?;
    let exact = exact_sub(exact_before, applied.amount_usd)?;
    invoice.line_items.retain(|l| l.kind != CREDITS_APPLIED);
    invoice.extra.remove("credits_applied_usd");
    if applied.amount_usd > Decimal::ZERO {
        let grants = applied.draws.draws.len();
        let description = if grants == 0 {
            "prepaid credits drawn by the period's usage".to_owned()
        } else {
            format!("prepaid credits applied from {grants} grant(s)")
        };
        invoice.line_items.push(LineItem {
            kind: CREDITS_APPLIED.into(),
            description,
            amount_usd: -applied.amount_usd,
        });
        invoice.extra.insert(
            "credits_applied_usd".to_owned(),
            applied.amount_usd.normalize().to_string(),
        );
    }
    invoice
        .extra
        .insert("exact_total_usd".to_owned(), exact.normalize().to_string());
    invoice.total_usd = exact.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    Ok(())
}
