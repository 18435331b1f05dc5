//! `meter subscription set`: the rules of PUT /user/{id}/subscription from the command line.

use anyhow::Result;
use clap::ValueEnum;
use meter_core::domain::{PlanName, SubscriptionStatus, TenantId, UserId};
use meter_core::periods::{Anchor, BillingCycle};
use meter_core::service::SubscriptionChange;

use crate::StoreArgs;

#[derive(Clone, Copy, ValueEnum)]
enum CycleArg {
    Monthly,
    Yearly,
}

#[derive(Clone, Copy, ValueEnum)]
enum AnchorArg {
    Calendar,
    Anniversary,
}

#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
enum StatusArg {
    Active,
    PastDue,
    Suspended,
    Cancelled,
}

#[derive(clap::Args)]
pub struct SetArgs {
    #[arg(long, default_value = "default")]
    tenant: TenantId,
    #[arg(long)]
    user: UserId,
    /// The plan (an upgrade applies at once and is prorated; a downgrade waits for the
    /// next period).
    #[arg(long)]
    plan: Option<PlanName>,
    /// New subscriptions only.
    #[arg(long, value_enum)]
    billing_cycle: Option<CycleArg>,
    /// New subscriptions only.
    #[arg(long, value_enum)]
    anchor: Option<AnchorArg>,
    #[arg(long, value_enum)]
    status: Option<StatusArg>,
    #[arg(long)]
    auto_renew: Option<bool>,
    #[command(flatten)]
    store: StoreArgs,
}

impl SetArgs {
    fn change(&self) -> SubscriptionChange {
        SubscriptionChange {
            plan: self.plan.clone(),
            billing_cycle: self.billing_cycle.map(|c| match c {
                CycleArg::Monthly => BillingCycle::Monthly,
                CycleArg::Yearly => BillingCycle::Yearly,
            }),
            anchor: self.anchor.map(|a| match a {
                AnchorArg::Calendar => Anchor::Calendar,
                AnchorArg::Anniversary => Anchor::Anniversary,
            }),
            status: self.status.map(|s| match s {
                StatusArg::Active => SubscriptionStatus::Active,
                StatusArg::PastDue => SubscriptionStatus::PastDue,
                StatusArg::Suspended => SubscriptionStatus::Suspended,
                StatusArg::Cancelled => SubscriptionStatus::Cancelled,
            }),
            auto_renew: self.auto_renew,
        }
    }
}

pub async fn set(args: SetArgs) -> Result<()> {
    let (meter, caller) = crate::admin::meter_on(&args.store, &args.tenant).await?;
    let written = meter
        .put_subscription(&caller, &args.user, &args.change())
        .await
        .map_err(crate::admin::refused)?;
    crate::admin::print(&written)
}
