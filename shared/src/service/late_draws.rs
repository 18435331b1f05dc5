//! Late events on prepaid plans (docs/credits.md, "Late events on prepaid plans").
//!
//! A prepaid user's event recorded or re-priced after its period was invoiced draws its
//! cost from the wallet when it is written, and its cost goes to the pending adjustment
//! that the next invoice bills as an `adjustment` line. So that it is paid once, the draw
//! belongs to that invoice, not to the closed period: the store keeps it under the
//! user's `billed_to` at the write (`store::PeriodDrawsStore::late_draws`), which is the
//! `billed_to` of the billing state the next close reads (each close moves it on, and
//! consumes every pending adjustment). That invoice credits the period's draws and the
//! late draws (`credits_applied`, its cap including the adjustments:
//! `credits::CreditsApplied::already_drawn`), and settles both shortfalls from the
//! wallet's overdraft.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::{Error, Meter, Result};
use crate::credits::exact_add;
use crate::domain::{TenantId, UserId};
use crate::periods::Period;

impl Meter {
    /// What a user's prepaid invoice of `period`, closed over a billing state whose
    /// `billed_to` is `billed_to`, credits and settles: (Σ drawn, Σ shortfall) of the
    /// period's own events and of the late events whose adjustments it bills. Both read
    /// strongly consistent, after the billing state (a late event written in between
    /// changed the state's version: the close starts over).
    pub(super) async fn user_prepaid_draws(
        &self,
        tenant: &TenantId,
        user: &UserId,
        period: &Period,
        billed_to: Option<DateTime<Utc>>,
    ) -> Result<(Decimal, Decimal)> {
        let own = self.store.period_draws(tenant, user, period).await?;
        let Some(billed_to) = billed_to else {
            return Ok((own.drawn_usd, own.shortfall_usd));
        };
        let late = self.store.late_draws(tenant, user, billed_to).await?;
        let drawn = exact_add(own.drawn_usd, late.drawn_usd).map_err(Error::overflow)?;
        let shortfall =
            exact_add(own.shortfall_usd, late.shortfall_usd).map_err(Error::overflow)?;
        Ok((drawn, shortfall))
    }
}
