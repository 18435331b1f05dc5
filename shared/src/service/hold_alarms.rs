//! Wallet alarms after a check's hold (issue 19, docs/credits.md "Alarms"): a reservation
//! that holds credit lowers `available_usd`, so it can cross `low_balance_usd` or 0. The
//! check read the wallet already (`CreditHold::read`: available before the hold, the
//! level, the alarms as stored), so whether the hold crosses is decided from that read
//! and the amount held, with no request; only a hold that crosses (or finds an armed
//! alarm already past its level: a crossing nobody observed yet) observes the wallet
//! (`Meter::observe_wallet_of`: the alert once per crossing through the outbox, the
//! alarms' state under the version read). Racing holds that each cross raise it once (of
//! racing observers one moves the state on); racing holds that cross only together are
//! seen by the next observation (the next hold, ingest, grant or void).

use rust_decimal::Decimal;

use super::Meter;
use crate::credits::exact_sub;
use crate::domain::TenantId;
use crate::store::CreditHold;

/// Whether `hold`, as its check read the wallet, takes an armed alarm past its level.
pub(super) fn hold_crosses(hold: &CreditHold) -> bool {
    let amount = hold.amount();
    if amount <= Decimal::ZERO {
        return false;
    }
    let read = &hold.read;
    let Ok(after) = read
        .available(hold.at)
        .and_then(|before| exact_sub(before, amount))
    else {
        // Not representable exactly: let the observation (which reports it) decide.
        return true;
    };
    let (_, events) = read
        .alarms
        .unwrap_or_default()
        .next(after, read.low_balance_usd);
    !events.is_empty()
}

impl Meter {
    /// After a reservation held `hold` (issue 19): observes the wallet's alarms when the
    /// hold crosses a level (see the module); nothing, and no request, otherwise.
    pub(super) async fn observe_after_hold(&self, tenant: &TenantId, hold: &CreditHold) {
        if !hold_crosses(hold) {
            return;
        }
        if let Err(e) = self.observe_wallet_of(tenant, &hold.wallet).await {
            tracing::warn!(error = %e, wallet = %hold.wallet, "could not observe the wallet after a hold");
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use rust_decimal_macros::dec;

    use super::*;
    use crate::credits::{Subscriber, WalletAlarms};
    use crate::domain::UserId;
    use crate::store::CreditState;

    fn hold(credit: Decimal, held: Decimal, estimate: Decimal, alarms: WalletAlarms) -> CreditHold {
        let mut read = CreditState {
            held_usd: held,
            low_balance_usd: Some(dec!(5)),
            alarms: Some(alarms),
            ..Default::default()
        };
        read.buckets.insert(None, credit);
        CreditHold {
            wallet: Subscriber::User(UserId::parse("u").unwrap()),
            estimate: Some(estimate),
            read,
            at: Utc.with_ymd_and_hms(2025, 3, 10, 12, 0, 0).unwrap(),
        }
    }

    const ARMED: WalletAlarms = WalletAlarms {
        low_armed: true,
        depleted_armed: true,
    };

    #[test]
    fn a_hold_crosses_only_past_an_armed_level() {
        // $10 available, level $5: $5 keeps it at the level, $5.01 crosses.
        assert!(!hold_crosses(&hold(dec!(10), dec!(0), dec!(5), ARMED)));
        assert!(hold_crosses(&hold(dec!(10), dec!(0), dec!(5.01), ARMED)));
        // What is held already counts: $10 − $4 held − $1.01.
        assert!(hold_crosses(&hold(dec!(10), dec!(4), dec!(1.01), ARMED)));
        // Fired already (not re-armed): nothing to observe.
        let fired = WalletAlarms {
            low_armed: false,
            depleted_armed: true,
        };
        assert!(!hold_crosses(&hold(dec!(10), dec!(0), dec!(6), fired)));
        // Depleted: to 0 exactly.
        assert!(hold_crosses(&hold(dec!(3), dec!(0), dec!(3), fired)));
        // Nothing held: no crossing.
        assert!(!hold_crosses(&hold(dec!(10), dec!(0), dec!(0), ARMED)));
    }
}
