//! Every rule a request or an aggregation pass runs, fed extreme limits, counts, costs and
//! prices (up to `u64::MAX` and `Decimal::MAX`): none may panic. Plans are bounded at 10^15
//! when written, but stored data may predate the bound, and counters are sums of many
//! events; every product and sum on these paths is checked.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;

use crate::alerts::{due_alerts, AlertScope};
use crate::billing::{base_price, build_invoice, InvoiceInput};
use crate::domain::{PlanName, ProviderId, Subscription, SubscriptionStatus, TenantId, UserId};
use crate::limits::{
    self, guards_for, projected_cost, recommendations, CallEstimate, Limits, Metric, Plan,
};
use crate::periods::{Anchor, BillingCycle, Period};
use crate::subscriptions::{proration_amount, rearm_keys};
use crate::usage::{PeriodUsage, ProviderUsage, Tally};

fn decimal() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        Just(Decimal::ZERO),
        Just(Decimal::ONE),
        Just(Decimal::MAX),
        Just(Decimal::from(1_000_000_000_000_000u64)),
        any::<u64>().prop_map(Decimal::from),
        (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Decimal::new(m, s).abs()),
        (any::<u32>(), any::<u32>(), any::<u32>(), 0u32..=28)
            .prop_map(|(lo, mid, hi, s)| Decimal::from_parts(lo, mid, hi, false, s)),
    ]
}

fn count() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(1), Just(u64::MAX), any::<u64>()]
}

fn tally() -> impl Strategy<Value = Tally> {
    (count(), count(), decimal()).prop_map(|(calls, tokens, cost_usd)| Tally {
        calls,
        tokens,
        cost_usd,
    })
}

fn usage() -> impl Strategy<Value = PeriodUsage> {
    proptest::collection::vec(
        (
            prop_oneof![Just("gemini"), Just("openai")],
            tally(),
            tally(),
            count(),
        ),
        0..3,
    )
    .prop_map(|entries| {
        let mut u = PeriodUsage::default();
        for (p, recorded, held, unpriced) in entries {
            u.by_provider.insert(
                ProviderId::parse(p).unwrap(),
                ProviderUsage {
                    recorded,
                    held,
                    unpriced_calls: unpriced,
                    ..ProviderUsage::default()
                },
            );
        }
        u
    })
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        proptest::collection::btree_map(
            prop_oneof![
                Just("calls:gemini"),
                Just("tokens:gemini"),
                Just("calls:*"),
                Just("tokens:*"),
                Just("cost_usd")
            ],
            decimal(),
            0..5,
        ),
        decimal(),
        proptest::option::of(decimal()),
        proptest::collection::btree_set(1u8..=100, 0..4),
    )
        .prop_map(|(limits, price, overage, thresholds)| Plan {
            name: PlanName::parse("extreme").unwrap(),
            tier: crate::limits::PlanTier::Custom,
            monthly_price_usd: price,
            yearly_price_usd: price,
            description: String::new(),
            features: Vec::new(),
            alert_thresholds: thresholds.into_iter().collect(),
            limits: Limits(
                limits
                    .into_iter()
                    .map(|(m, v)| (Metric::parse(m).unwrap(), v))
                    .collect(),
            ),
            overage_rate: overage,
            payment: Default::default(),
            active: true,
        })
}

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_rule_panics_on_extreme_limits_counts_costs_and_prices(
        plan in plan(),
        other in plan(),
        usage in usage(),
        tokens in count(),
        cost in proptest::option::of(decimal()),
        spent in decimal(),
    ) {
        let call = CallEstimate {
            provider: ProviderId::parse("gemini").unwrap(),
            estimated_tokens: tokens,
            estimated_cost: cost,
        };
        let _ = limits::decide(&plan.limits, &usage, &call);
        let _ = limits::remaining(&plan.limits, &usage);
        let _ = limits::percentages(&plan.limits, &usage);
        let _ = limits::usage_status(&plan.limits, &usage);
        for g in guards_for(&plan.limits, &call) {
            let req = limits::Requirement { increment: g.increment, strict: g.strict };
            let _ = req.allows(spent, g.limit);
        }
        let period = Period { start: at(2025, 3, 1), end: at(2025, 4, 1) };
        let now = at(2025, 3, 20);
        let projected = projected_cost(spent, &period, now);
        let plans = [plan.clone(), other.clone()];
        let _ = recommendations(&plans, &plan, &usage, projected);
        let _ = limits::cheapest_plan_allowing(&plans, &plan.name, &usage, &call);
        let (t, u) = (TenantId::parse("t").unwrap(), UserId::parse("u").unwrap());
        let scope = AlertScope { tenant: &t, user: &u, period_start: period.start, now };
        let _ = due_alerts(scope, &plan, &usage, &BTreeSet::new(), &period);
        let fired: BTreeSet<String> = ["calls:gemini@80", "cost_usd@100", "projected_cost"]
            .into_iter()
            .map(String::from)
            .collect();
        let _ = rearm_keys(&fired, &plan, &usage, projected);
        let _ = proration_amount(plan.monthly_price_usd, other.monthly_price_usd, &period, now);
        let sub = Subscription {
            tenant: t.clone(),
            user: u.clone(),
            plan: plan.name.clone(),
            cycle: BillingCycle::Monthly,
            anchor: Anchor::Calendar,
            started_at: at(2025, 2, 10),
            current_period: period,
            status: SubscriptionStatus::Active,
            auto_renew: true,
            pending_plan: None,
            prorations: Vec::new(),
            history: Vec::new(),
            version: 1,
            updated_at: now,
        };
        let _ = base_price(Some(&sub), &plan, &period);
        let adjustments = BTreeMap::from([(
            at(2025, 2, 1),
            crate::domain::Adjustment { events: u64::MAX, cost_usd: spent },
        )]);
        let _ = build_invoice(
            &InvoiceInput {
                tenant: &t,
                user: &u,
                period,
                subscription: Some(&sub),
                plan: &plan,
                usage: &usage,
                adjustments: &adjustments,
                created_at: now,
            },
            "inv".into(),
        );
    }
}
