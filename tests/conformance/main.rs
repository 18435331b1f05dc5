//! The storage conformance suite: every promise of the storage port, checked under real
//! concurrency, run unchanged against each adapter.
//!
//! SQLite runs always. DynamoDB runs with `--features emulator` against the emulator that
//! `scripts/with-moto` starts (the README's test command does both); without the feature the
//! DynamoDB module is not built at all, so it can never be skipped silently.

mod accounts;
mod alerts;
mod batch_definitions;
mod billing;
mod budgets;
mod check_view;
mod directory;
mod enforcement;
mod events;
mod fixtures;
mod grant_upkeep;
mod history;
mod holds;
mod late_draws;
mod org_alerts;
mod org_late;
mod org_late_draws;
mod org_repricing;
mod org_wallets;
mod orgs;
mod period_draws;
mod prepaid;
mod privacy;
mod repricing;
mod reservations;
mod review;
mod scopes;
mod tenant_orgs;
mod wallet_views;
mod wallets;

/// One `#[tokio::test]` per listed test of each module, on a fresh store from `$factory`.
macro_rules! conformance {
    ($factory:path) => {
        conformance!(@module events $factory;
            redelivered_events_are_counted_exactly_once,
            same_event_id_with_other_content_is_a_conflict,
            settling_adjusts_counters_by_actual_minus_held,
            unpriced_estimated_error_and_latency_counts_are_kept,
            daily_rollups_follow_event_days,
            period_usage_is_per_period_and_zero_filled,
            user_usage_reads_the_period_the_subscription_picks,
            dashboard_reads_equal_the_separate_reads,
            the_state_read_with_a_write_includes_its_event,
        );
        conformance!(@module reservations $factory;
            reservations_never_overspend_under_concurrency,
            a_hold_is_returned_exactly_once_whatever_races,
            expired_reservations_return_their_holds,
            guards_cover_totals_tokens_and_strict_cost,
            event_settling_another_users_reservation_does_not_touch_it,
        );
        conformance!(@module alerts $factory;
            alert_is_stored_once_under_concurrency,
            alerts_list_newest_first_with_total_unread_and_outbox,
            rearmed_alert_keys_can_fire_again_and_old_alerts_stay_listed,
        );
        conformance!(@module accounts $factory;
            subscription_writes_are_versioned,
            plans_prices_and_keys_round_trip,
            invoices_are_stored_once_per_period,
            tenants_are_isolated,
        );
        conformance!(@module billing $factory;
            users_with_a_subscription_or_usage_are_listed_once,
            closing_a_period_stores_one_invoice_and_moves_billed_to,
            concurrent_closes_store_one_invoice,
            a_close_over_a_stale_state_changes_nothing,
            late_events_are_billed_once_as_adjustments,
            repricing_moves_counters_rollups_and_adjustments_exactly,
            job_cursors_round_trip,
        );
        conformance!(@module tenant_orgs $factory;
            tenant_orgs_list_subscribed_and_noted_orgs_once_in_id_order,
        );
        conformance!(@module directory $factory;
            tenant_users_are_paged_in_id_order_with_their_period_usage,
            tenant_alerts_are_newest_first_and_one_alert_reads_back,
            token_keys_are_created_once_and_replaced_by_version,
        );
        conformance!(@module privacy $factory;
            export_then_erase_then_export_leaves_only_pseudonymised_invoices,
            erasure_during_concurrent_ingest_completes_once_traffic_stops,
        );
        // Issue 18: budget definitions.
        conformance!(@module budgets $factory;
            budgets_round_trip_exactly_with_versions_and_are_listed_by_exact_scope,
            a_budgets_scope_is_fixed_for_its_id,
            a_scope_holds_at_most_the_cap_even_when_creations_race,
            racing_puts_and_deletes_of_one_id_stay_consistent,
            budgets_are_isolated_by_tenant,
        );
        // Issue 18: the check's one read.
        conformance!(@module check_view $factory;
            the_check_view_reads_the_named_scopes_budgets_and_the_picked_counters,
        );
        // Issue 18: an event batch's read of the definitions of several calls.
        conformance!(@module batch_definitions $factory;
            the_definitions_of_several_calls_are_read_at_once,
        );
        // Issue 18: scopes named on events.
        conformance!(@module scopes $factory;
            an_events_org_and_team_round_trip,
        );
        // Issue 18: budget counters.
        conformance!(@module enforcement $factory;
            racing_call_writes_admit_exactly_the_org_limit_and_no_member_over_its_own,
            racing_cost_writes_never_pass_a_cent_of_the_day_budget,
            a_failing_guard_writes_no_counter,
            events_add_to_their_counters_exactly_once_under_redelivery,
        );
        // Issue 18: reservations holding on budget counters, through the service.
        conformance!(@module holds $factory;
            two_hundred_racing_reservations_hold_exactly_the_org_calls_budget_and_no_member_over_ten,
            two_hundred_racing_reservations_never_hold_a_cent_over_the_daily_cost_budget,
            racing_reservations_never_pass_a_period_budget_on_the_users_own_scope,
            racing_prepaid_reservations_hold_the_budget_and_the_credit_in_one_write,
        );
        // Issue 18: org subscriptions and their invoices.
        conformance!(@module orgs $factory;
            org_subscription_writes_are_versioned_and_listed_once,
            racing_org_closes_store_one_invoice_and_roll_once,
            an_org_close_over_a_stale_version_or_invoiced_period_changes_nothing,
            org_member_directories_are_sets_per_org_period_and_tenant,
            budget_alerts_are_stored_once_under_concurrency,
        );
        // Issue 18: late org events billed as adjustments (store::OrgBillingStore).
        conformance!(@module org_late $factory;
            late_org_events_are_billed_once_as_adjustments,
            an_org_close_over_a_changed_state_changes_nothing,
            racing_an_org_close_bills_every_event_exactly_once,
        );
        // Issue 18: re-pricing an event that names an org.
        conformance!(@module org_repricing $factory;
            repricing_an_org_event_adds_its_cost_to_the_orgs_counters_once,
            repricing_an_org_event_of_an_invoiced_period_is_one_org_adjustment,
            repricing_an_org_event_an_org_wallet_pays_draws_and_counts_once,
            repricing_a_prepaid_org_event_of_an_invoiced_period_draws_as_a_late_event,
        );
        // Issue 19 with 18: a prepaid org's late draws go with their adjustments.
        conformance!(@module org_late_draws $factory;
            late_org_draws_go_with_their_adjustments_to_the_next_close,
            late_org_draws_racing_the_close_go_with_their_adjustments,
        );
        // Issue 18: alerts of budgets on an org's or team's pooled usage.
        conformance!(@module org_alerts $factory;
            org_budget_alerts_are_stored_once_and_listed_for_the_org,
            denied_limits_are_noted_once_and_resolved_once,
            denied_limits_are_paged_oldest_first_each_once,
            short_window_budget_alerts_expire_once_with_their_unread_count,
        );
        // Issue 17 (storage that does not grow with time).
        conformance!(@module history $factory;
            twenty_four_closed_periods_read_as_they_did_open,
            twenty_concurrent_reservations_never_overspend_and_each_closes_once,
            reservations_outliving_their_periods_close_return_holds_exactly,
        );
        // Issue 19: prepaid-credit wallets and grants.
        conformance!(@module wallets $factory;
            wallets_keep_grants_exactly_and_store_an_id_once,
            wallets_void_a_grant_once_and_report_unknown_grants,
            wallets_racing_inserts_of_one_grant_id_have_exactly_one_winner,
            wallets_hold_at_most_the_cap_even_when_inserts_race,
            wallets_settings_are_set_and_cleared_and_tenants_isolated,
        );
        // Issue 19: the period draw sums a prepaid invoice reads.
        conformance!(@module period_draws $factory;
            period_draws_sum_each_events_draws_once_per_period,
        );
        // Issue 19: grant upkeep (expiry recorded once, finished grants pruned).
        conformance!(@module grant_upkeep $factory;
            grant_upkeep_records_an_expiry_once_under_racing_passes,
            grant_upkeep_prunes_a_finished_grant_once_freeing_its_slot_and_keeping_its_id,
        );
        // Issue 19: prepaid plans (credit holds, draws with events).
        conformance!(@module prepaid $factory;
            prepaid_300_concurrent_reserve_and_settle_flows_never_overspend_and_draw_exactly,
            prepaid_a_grant_expiring_mid_run_stops_counting_at_its_instant,
            prepaid_racing_closes_take_an_invoices_credit_exactly_once,
            prepaid_racing_alarm_writes_move_the_state_once_per_version,
        );
        // Issue 19: org wallets (who pays; batches of draws).
        // Issue 19: the views of wallets (export draws, the tenant's wallets).
        conformance!(@module wallet_views $factory;
            a_users_draws_name_the_wallet_that_paid,
            tenant_wallets_are_paged_in_key_order_with_their_figures,
        );
        conformance!(@module org_wallets $factory;
            org_wallet_batches_draw_exactly_once_under_racing_retries,
            an_org_hold_is_given_back_to_the_org_wallet_by_its_close,
            racing_org_closes_take_the_org_invoices_credit_exactly_once,
            a_batch_drawing_across_many_grants_records_every_event_exactly,
        );
        // Issue 19: unpriced events draw from their payer's wallet once re-priced.
        conformance!(@module repricing $factory;
            repricing_draws_an_unpriced_events_cost_once_under_racing_passes,
        );
        // Late events of prepaid users: paid once, by the invoice that bills them.
        conformance!(@module late_draws $factory;
            a_prepaid_late_event_is_paid_once,
            late_prepaid_events_racing_the_next_close_are_paid_exactly_once,
            a_prepaid_event_repriced_after_its_period_was_invoiced_is_paid_once,
            a_late_draw_is_credited_after_its_grant_was_pruned,
        );
        // Issue 16 (review findings).
        conformance!(@module review $factory;
            concurrent_claims_of_an_unpublished_record_have_exactly_one_winner,
            an_expired_or_released_claim_can_be_taken_again,
            a_published_record_cannot_be_claimed,
            erasing_a_user_twice_keeps_every_invoice_under_the_pseudonym,
            keys_are_listed_and_revoked_by_id_within_their_tenant,
        );
    };
    (@module $module:ident $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let fresh = $factory().await;
                crate::$module::$name(fresh.store.clone()).await;
            }
        )*
    };
}

mod sqlite {
    conformance!(crate::fixtures::sqlite_store);
}

#[cfg(feature = "emulator")]
mod dynamo {
    conformance!(crate::fixtures::dynamo_store);
}
