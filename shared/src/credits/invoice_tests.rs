//! Credits on invoices: postpaid `apply_credits`, prepaid `already_drawn`, and the
//! `credits_applied` line on an invoice `billing::build_invoice` made.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;

use super::test_support::*;
use super::*;
use crate::billing::{build_invoice, InvoiceInput};
use crate::domain::{
    Invoice, PlanName, ProviderId, Subscription, SubscriptionStatus, TenantId, UserId,
};
use crate::limits::{default_plans, Plan};
use crate::periods::{Anchor, BillingCycle, Period, Schedule};
use crate::usage::{PeriodUsage, ProviderUsage, Tally};

fn amounts(base: &str, usage: &str, overage: &str, proration: &str, adj: &str) -> InvoiceAmounts {
    InvoiceAmounts {
        base_usd: d(base),
        usage_usd: d(usage),
        overage_usd: d(overage),
        proration_usd: d(proration),
        adjustments_usd: d(adj),
    }
}

#[test]
fn postpaid_credits_table() {
    // (lines: base, usage, overage, proration, adjustments; grants' remaining; applied)
    let cases: [(InvoiceAmounts, &[&str], &str); 9] = [
        // Credit reduces usage, not the base.
        (amounts("29", "12", "0", "0", "0"), &["10"], "10"),
        (amounts("29", "12", "0", "0", "0"), &["50"], "12"),
        // Overage and proration are credited too.
        (amounts("29", "12", "2.4", "33.33", "0"), &["100"], "47.73"),
        // Adjustments are not.
        (amounts("0", "1", "0", "0", "5"), &["100"], "1"),
        // Across several grants.
        (amounts("0", "7.5", "0", "0", "0"), &["2", "3", "4"], "7.5"),
        // Nothing to credit, or no credit.
        (amounts("29", "0", "0", "0", "0"), &["10"], "0"),
        (amounts("29", "12", "0", "0", "0"), &[], "0"),
        // Never below zero even with a negative line.
        (amounts("0", "5", "0", "0", "-4"), &["10"], "1"),
        (amounts("0", "5", "0", "-9", "0"), &["10"], "0"),
    ];
    for (lines, remaining, applied) in cases {
        let grants: Vec<Grant> = remaining
            .iter()
            .enumerate()
            .map(|(i, r)| grant(&format!("g{i}"), r))
            .collect();
        let a = apply_credits(&lines, &grants, h(1)).unwrap();
        assert_eq!(a.amount_usd, d(applied), "{lines:?} with {remaining:?}");
        assert_eq!(a.draws.drawn_usd().unwrap(), d(applied));
        assert_eq!(a.draws.shortfall_usd, Decimal::ZERO);
        let total = lines.exact_total().unwrap() - a.amount_usd;
        assert!(total >= Decimal::ZERO || lines.exact_total().unwrap() < Decimal::ZERO);
    }
}

#[test]
fn postpaid_credits_come_from_counting_grants_in_order_and_the_rest_stays() {
    let mut grants = vec![
        grant("purchase", "10"),
        grant("promo", "5").expires(h(100)).created(h(1)),
        grant("expired", "50").priority(0).expires(h(2)),
        grant("voided", "50").priority(0).voided(h(1)),
    ];
    let lines = amounts("29", "6", "0", "0", "0");
    let a = apply_credits(&lines, &grants, h(50)).unwrap();
    let drawn: Vec<_> = a
        .draws
        .draws
        .iter()
        .map(|x| (x.grant_id.as_str(), x.amount_usd))
        .collect();
    assert_eq!(drawn, [("promo", d("5")), ("purchase", d("1"))]);
    a.draws.apply(&mut grants).unwrap();
    assert_eq!(grants[0].remaining_usd, d("9"));
    assert_eq!(grants[1].remaining_usd, d("0"));
    assert_eq!(grants[2].remaining_usd, d("50"));
}

fn at(y: i32, m: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, day, 0, 0, 0).unwrap()
}

fn plan(name: &str) -> Plan {
    default_plans()
        .into_iter()
        .find(|p| p.name.as_str() == name)
        .unwrap()
}

/// A real invoice of April 2025 on `basic` ($29 base) with the given usage costs.
fn invoice(costs: &[(&str, &str)]) -> Invoice {
    let (t, u) = (TenantId::parse("t").unwrap(), UserId::parse("u").unwrap());
    let started = at(2025, 1, 1);
    let schedule = Schedule::new(Anchor::Calendar, started, BillingCycle::Monthly);
    let sub = Subscription {
        tenant: t.clone(),
        user: u.clone(),
        plan: PlanName::parse("basic").unwrap(),
        cycle: BillingCycle::Monthly,
        anchor: Anchor::Calendar,
        started_at: started,
        current_period: schedule.period_containing(started).unwrap(),
        status: SubscriptionStatus::Active,
        auto_renew: true,
        pending_plan: None,
        prorations: Vec::new(),
        history: Vec::new(),
        version: 1,
        updated_at: started,
    };
    let mut usage = PeriodUsage::default();
    for (p, c) in costs {
        usage.by_provider.insert(
            ProviderId::parse(*p).unwrap(),
            ProviderUsage {
                recorded: Tally {
                    calls: 1,
                    tokens: 10,
                    cost_usd: d(c),
                },
                ..ProviderUsage::default()
            },
        );
    }
    let period = Period {
        start: at(2025, 4, 1),
        end: at(2025, 5, 1),
    };
    let basic = plan("basic");
    build_invoice(
        &InvoiceInput {
            tenant: &t,
            user: &u,
            period,
            subscription: Some(&sub),
            plan: &basic,
            usage: &usage,
            adjustments: &BTreeMap::new(),
            created_at: period.end,
        },
        "inv".into(),
    )
    .unwrap()
}

#[test]
fn the_invoice_shows_a_negative_credits_applied_line_and_a_re_rounded_total() {
    let mut inv = invoice(&[("openai", "12.3449"), ("gemini", "0.0000001")]);
    assert_eq!(inv.total_usd, d("41.34"));
    let lines = InvoiceAmounts::from_invoice(&inv);
    assert_eq!(lines.creditable().unwrap(), d("12.3449001"));
    let a = apply_credits(&lines, &[grant("promo", "10.005")], at(2025, 5, 1)).unwrap();
    assert_eq!(a.amount_usd, d("10.005"));
    apply_to_invoice(&mut inv, &a).unwrap();
    let line = inv.line_items.last().unwrap();
    assert_eq!(line.kind, CREDITS_APPLIED);
    assert_eq!(line.amount_usd, d("-10.005"));
    // 29 + 12.3449001 − 10.005 = 31.3399001 → 31.34.
    assert_eq!(inv.extra["exact_total_usd"], "31.3399001");
    assert_eq!(inv.extra["credits_applied_usd"], "10.005");
    assert_eq!(inv.total_usd, d("31.34"));
    let line_sum: Decimal = inv.line_items.iter().map(|l| l.amount_usd).sum();
    assert_eq!(line_sum, d("31.3399001"));
    // Applying again replaces the line: nothing changes.
    let once = inv.clone();
    apply_to_invoice(&mut inv, &a).unwrap();
    assert_eq!(inv, once);
    // Applying nothing removes it.
    apply_to_invoice(&mut inv, &CreditsApplied::default()).unwrap();
    assert!(inv.line_items.iter().all(|l| l.kind != CREDITS_APPLIED));
    assert_eq!(inv.total_usd, d("41.34"));
    assert!(!inv.extra.contains_key("credits_applied_usd"));
}

#[test]
fn credits_never_take_the_base_price() {
    let mut inv = invoice(&[("openai", "3")]);
    let a = apply_credits(
        &InvoiceAmounts::from_invoice(&inv),
        &[grant("big", "1000")],
        at(2025, 5, 1),
    )
    .unwrap();
    assert_eq!(a.amount_usd, d("3"));
    apply_to_invoice(&mut inv, &a).unwrap();
    assert_eq!(inv.total_usd, d("29.00"));
}

#[test]
fn a_prepaid_invoice_credits_what_the_period_drew_and_bills_the_shortfall() {
    // The period's usage cost $12; its events drew $10 from the grants, $2 overdrew.
    let mut inv = invoice(&[("openai", "12")]);
    let lines = InvoiceAmounts::from_invoice(&inv);
    let a = CreditsApplied::already_drawn(&lines, d("10")).unwrap();
    assert!(a.draws.draws.is_empty());
    apply_to_invoice(&mut inv, &a).unwrap();
    // Base + the $2 of usage the grants did not cover.
    assert_eq!(inv.total_usd, d("31.00"));
    assert!(inv
        .line_items
        .iter()
        .any(|l| l.kind == CREDITS_APPLIED && l.description.contains("drawn by the period")));
    // Capped by the creditable lines.
    assert_eq!(
        CreditsApplied::already_drawn(&lines, d("40"))
            .unwrap()
            .amount_usd,
        d("12")
    );
    assert_eq!(
        CreditsApplied::already_drawn(&lines, d("-1"))
            .unwrap()
            .amount_usd,
        d("0")
    );
}

#[test]
fn a_prepaid_invoice_credits_the_late_draws_of_the_adjustments_it_bills() {
    // $29 base, $12 of the period's usage and $6 of adjustments (a late event that drew
    // $3.75 and overdrew $2.25): the prepaid cap includes the adjustments, the
    // postpaid one does not.
    let lines = InvoiceAmounts {
        base_usd: d("29"),
        usage_usd: d("12"),
        adjustments_usd: d("6"),
        ..Default::default()
    };
    assert_eq!(lines.credit_cap().unwrap(), d("12"));
    assert_eq!(lines.prepaid_credit_cap().unwrap(), d("18"));
    assert_eq!(
        CreditsApplied::already_drawn(&lines, d("13.75"))
            .unwrap()
            .amount_usd,
        d("13.75")
    );
    assert_eq!(
        CreditsApplied::already_drawn(&lines, d("30"))
            .unwrap()
            .amount_usd,
        d("18")
    );
    // Never below a zero total: negative lines (none today) cap it at the total.
    let negative = InvoiceAmounts {
        usage_usd: d("2"),
        adjustments_usd: d("-3"),
        ..Default::default()
    };
    assert_eq!(negative.prepaid_credit_cap().unwrap(), d("0"));
}
