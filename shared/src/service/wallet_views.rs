//! The views of wallets (issue 19, SPEC §11, §14): the org export (GET
//! `/org/{org_id}/export`: what is stored about an org, its wallet and the draws its
//! wallet paid) and the tenant's wallets for the admin view (GET `/admin/wallets`, a page
//! at a time). The user export's draws (whichever wallet paid) are in
//! [`super::privacy`].

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::budgets::BudgetView;
use super::dashboard::InvoiceView;
use super::wallets::WalletView;
use super::{Caller, Error, Meter, Result};
use crate::budgets::Scope;
use crate::credits::Subscriber;
use crate::domain::money::{normalized, normalized_option};
use crate::domain::{OrgId, Role, Subscription, TenantId};
use crate::store::{EventDraws, WalletSummary};

/// Default and largest page of `GET /admin/wallets`.
pub const DEFAULT_WALLETS_PAGE: usize = 50;
pub const MAX_WALLETS_PAGE: usize = 100;

/// Everything stored about an org (admin): its subscription, invoices, wallet, the
/// budgets on the org and on its teams, and what its wallet paid for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgExport {
    pub org_id: OrgId,
    pub tenant_id: TenantId,
    pub exported_at: DateTime<Utc>,
    pub subscription: Option<Subscription>,
    /// Oldest period first.
    pub invoices: Vec<InvoiceView>,
    /// The org's wallet as GET `/wallet/org/{id}` shows it.
    pub wallet: WalletView,
    /// The budgets on the org's scope, then on each team named on the org's events of
    /// its current period (team id order).
    pub budgets: Vec<BudgetView>,
    /// The draws of the events the org's wallet paid for (its ledger), oldest first.
    pub draws: Vec<EventDraws>,
}

/// One wallet of the tenant's admin view, at `as_of`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantWalletView {
    pub subscriber: Subscriber,
    #[serde(serialize_with = "normalized")]
    pub balance_usd: Decimal,
    #[serde(serialize_with = "normalized")]
    pub held_usd: Decimal,
    #[serde(serialize_with = "normalized")]
    pub available_usd: Decimal,
    #[serde(serialize_with = "normalized_option")]
    pub low_balance_usd: Option<Decimal>,
    /// `available_usd` is below `low_balance_usd` (false without a level).
    pub low_balance: bool,
    /// `available_usd` is 0 or less.
    pub depleted: bool,
}

/// `GET /admin/wallets`: a page of the tenant's wallets (those that hold or held grants)
/// in key order: orgs, then users, by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantWalletsView {
    pub wallets: Vec<TenantWalletView>,
    /// Pass as `cursor` for the next page; `null` after the last.
    pub next_cursor: Option<String>,
    pub as_of: DateTime<Utc>,
}

fn summary_view(w: WalletSummary, at: DateTime<Utc>) -> Result<TenantWalletView> {
    let money = |e| {
        tracing::error!(error = %e, wallet = %w.wallet, "a wallet's figures overflow");
        Error::Internal
    };
    let balance_usd = w.credit.balance(at).map_err(money)?;
    let available_usd = w.credit.available(at).map_err(money)?;
    Ok(TenantWalletView {
        balance_usd: balance_usd.normalize(),
        held_usd: w.credit.held_usd.normalize(),
        available_usd: available_usd.normalize(),
        low_balance: w.low_balance_usd.is_some_and(|low| available_usd < low),
        depleted: available_usd <= Decimal::ZERO,
        low_balance_usd: w.low_balance_usd,
        subscriber: w.wallet,
    })
}

impl Meter {
    /// Everything stored about an org (admin).
    pub async fn export_org(&self, caller: &Caller, org: &OrgId) -> Result<OrgExport> {
        caller.require(Role::Admin)?;
        let tenant = &caller.tenant;
        let now = self.now();
        let subscription = self.org_subscription(tenant, org).await?;
        let mut invoices = self.store.list_org_invoices(tenant, org).await?;
        invoices.sort_by_key(|i| i.period.start);
        let payer = Subscriber::Org(org.clone());
        let wallet = self.wallet(caller, &payer).await?;
        let mut scopes = vec![Scope::Org {
            org_id: org.clone(),
        }];
        let (period, _) = self.org_period(tenant, org, now).await?;
        let members = self.store.org_members(tenant, org, period.start).await?;
        scopes.extend(members.teams.into_iter().map(|team_id| Scope::Team {
            org_id: org.clone(),
            team_id,
        }));
        let mut budgets = Vec::new();
        for scope in &scopes {
            let listed = self.store.list_budgets(tenant, scope).await?;
            budgets.extend(listed.iter().map(BudgetView::from));
        }
        let draws = self.store.wallet_draws(tenant, &payer, None).await?;
        Ok(OrgExport {
            org_id: org.clone(),
            tenant_id: tenant.clone(),
            exported_at: now,
            subscription,
            invoices: invoices.iter().map(InvoiceView::from).collect(),
            wallet,
            budgets,
            draws,
        })
    }

    /// GET /admin/wallets: up to `limit` of the tenant's wallets after `after`, with their
    /// figures at the service's clock.
    pub async fn tenant_wallets(
        &self,
        caller: &Caller,
        after: Option<&Subscriber>,
        limit: usize,
    ) -> Result<TenantWalletsView> {
        caller.require(Role::Admin)?;
        let now = self.now();
        let page = self
            .store
            .list_wallets(&caller.tenant, after, limit)
            .await?;
        let wallets = page
            .items
            .into_iter()
            .map(|w| summary_view(w, now))
            .collect::<Result<Vec<_>>>()?;
        Ok(TenantWalletsView {
            wallets,
            next_cursor: page.next,
            as_of: now,
        })
    }
}
