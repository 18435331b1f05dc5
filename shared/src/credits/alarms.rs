//! `wallet.low_balance` and `wallet.depleted`: once per crossing, re-armed on rising.
//!
//! Both watch `available_usd`:
//! - **low balance** fires when available falls *below* `low_balance_usd`
//!   (`before >= low > after`); it is re-armed when available is no longer below it
//!   (`>= low`). No level set: it never fires.
//! - **depleted** fires when available reaches 0 or less (`before > 0 >= after`); it is
//!   re-armed when available is above 0 again.
//!
//! One change may cross both (low balance first). [`crossings`] is the stateless edge
//! rule between two known levels; [`WalletAlarms`] is the same rule as a state machine fed
//! only the level after each change, for changes whose "before" nobody observed (a grant
//! expiring at its instant, with no write): the armed flags remember whether the alarm
//! fired and the level has not risen since. Fed a sequence of levels, starting from
//! [`WalletAlarms::initial`] of the first, it fires exactly what [`crossings`] of each
//! consecutive pair fires.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// An alarm a change of `available_usd` fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum WalletEvent {
    /// `wallet.low_balance`: available fell below the wallet's `low_balance_usd`.
    #[serde(rename = "wallet.low_balance")]
    LowBalance {
        #[serde(with = "rust_decimal::serde::str")]
        available_usd: Decimal,
        #[serde(with = "rust_decimal::serde::str")]
        low_balance_usd: Decimal,
    },
    /// `wallet.depleted`: available reached 0 or below.
    #[serde(rename = "wallet.depleted")]
    Depleted {
        #[serde(with = "rust_decimal::serde::str")]
        available_usd: Decimal,
    },
}

impl WalletEvent {
    /// The alert type (`wallet.low_balance`, `wallet.depleted`).
    pub fn name(&self) -> &'static str {
        match self {
            WalletEvent::LowBalance { .. } => "wallet.low_balance",
            WalletEvent::Depleted { .. } => "wallet.depleted",
        }
    }
}

fn is_low(available: Decimal, low: Decimal) -> bool {
    available < low
}

fn is_depleted(available: Decimal) -> bool {
    available <= Decimal::ZERO
}

/// What a change of available credit from `before` to `after` crosses, given the wallet's
/// `low_balance_usd`: low balance first, then depleted. Nothing when available does not
/// fall, or was already past the level.
pub fn crossings(
    before: Decimal,
    after: Decimal,
    low_balance_usd: Option<Decimal>,
) -> Vec<WalletEvent> {
    let mut events = Vec::new();
    if let Some(low) = low_balance_usd {
        if !is_low(before, low) && is_low(after, low) {
            events.push(WalletEvent::LowBalance {
                available_usd: after,
                low_balance_usd: low,
            });
        }
    }
    if !is_depleted(before) && is_depleted(after) {
        events.push(WalletEvent::Depleted {
            available_usd: after,
        });
    }
    events
}

/// Whether each alarm can fire: `false` after it fired, until available rises past its
/// level again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WalletAlarms {
    pub low_armed: bool,
    pub depleted_armed: bool,
}

impl Default for WalletAlarms {
    /// The alarms of a new, empty wallet ([`WalletAlarms::initial`] of 0 with no level):
    /// depleted is not armed until credit arrives.
    fn default() -> Self {
        Self::initial(Decimal::ZERO, None)
    }
}

impl WalletAlarms {
    /// The state that fires nothing at `available`: each alarm armed iff available is not
    /// already past its level. Also the state to take for the low-balance alarm when
    /// the level is changed (see [`WalletAlarms::with_low_balance`]).
    pub fn initial(available: Decimal, low_balance_usd: Option<Decimal>) -> Self {
        Self {
            low_armed: low_balance_usd.is_none_or(|low| !is_low(available, low)),
            depleted_armed: !is_depleted(available),
        }
    }

    /// The transition on a new level of available credit: the events that fire (low
    /// balance first) and the next state. Pure; [`WalletAlarms::observe`] applies it.
    pub fn next(
        self,
        available: Decimal,
        low_balance_usd: Option<Decimal>,
    ) -> (Self, Vec<WalletEvent>) {
        let mut events = Vec::new();
        let mut state = self;
        if let Some(low) = low_balance_usd {
            let low_now = is_low(available, low);
            if state.low_armed && low_now {
                events.push(WalletEvent::LowBalance {
                    available_usd: available,
                    low_balance_usd: low,
                });
            }
            state.low_armed = !low_now;
        }
        let depleted_now = is_depleted(available);
        if state.depleted_armed && depleted_now {
            events.push(WalletEvent::Depleted {
                available_usd: available,
            });
        }
        state.depleted_armed = !depleted_now;
        (state, events)
    }

    /// [`WalletAlarms::next`] in place: the events to publish.
    pub fn observe(
        &mut self,
        available: Decimal,
        low_balance_usd: Option<Decimal>,
    ) -> Vec<WalletEvent> {
        let (state, events) = self.next(available, low_balance_usd);
        *self = state;
        events
    }

    /// The state after the low-balance level changes to `low_balance_usd` at
    /// `available`: setting a level is not a crossing, so nothing fires for it; the
    /// alarm is armed iff available is not below the new level. Depleted is unchanged.
    pub fn with_low_balance(self, available: Decimal, low_balance_usd: Option<Decimal>) -> Self {
        Self {
            low_armed: Self::initial(available, low_balance_usd).low_armed,
            ..self
        }
    }
}
