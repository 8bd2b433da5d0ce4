//! One conformance suite per capability, run against every engine through [`suite!`]. A case is
//! an async function taking a [`TestEngine`]; the macro turns every case into its own
//! `#[tokio::test]` for the engine factory it is given, so the memory and Redis engines run the
//! very same code and cannot drift apart.
//!
//! # Layout
//! - [`harness`]: [`TestEngine`], the engine factories (memory, durable memory on a [`TempDir`],
//!   Redis), [`RedisServer`] (a real `redis-server` started on a free port), [`RedisCluster`] and
//!   [`RedisSentinel`] (deployments of such servers) and [`eventually`].
//! - [`sessions`], [`denylist`], [`rate_limits`], [`conversations`]: the cases of each capability.
//! - [`streams`]: streams, recovery, pending/ack, and live delivery through the hub.
//! - [`presence`]: devices, live entries, status, queries, contacts and transitions.
//! - [`typing`]: typing entries, throttling and stop-on-expiry.
//! - [`messages`]: the message cache, fill, edit/delete, receipts and their events.
//! - [`inbox`]: per-user lists, exact unread counters, read-up-to and totals.
//! - [`cache`]: TTL, tags (also racing sets), mget/mset, prefixes, stats, single-flight,
//!   leases and stale-while-revalidate.
//! - [`notifications`]: idempotent create, lists, read/dismiss/read-all, retention, events.
//! - [`jobs`]: the job store: priorities, delays, backoff, leases, dead set, unique keys,
//!   counts, retention, lists, concurrent fetchers and schedules.
//! - [`jobs_service`]: the jobs service: schedules fired by two nodes, the library worker,
//!   the long-poll.

pub mod cache;
pub mod conversations;
pub mod denylist;
pub mod harness;
pub mod inbox;
pub mod jobs;
pub mod jobs_service;
pub mod messages;
pub mod notifications;
pub mod presence;
pub mod rate_limits;
pub mod sessions;
pub mod streams;
pub mod typing;

pub use harness::{
    RedisCluster, RedisSentinel, RedisServer, TempDir, TestEngine, durable_engine, eventually, free_port,
    memory_engine, redis_cluster_engine, redis_engine, redis_sentinel_engine,
};

// The README's code blocks, compiled and run as doctests so its library example stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

/// Instantiates every conformance case for one engine factory (an `async fn() -> TestEngine`).
///
/// ```ignore
/// switchboard_conformance::suite!(switchboard_conformance::memory_engine);
/// ```
#[macro_export]
macro_rules! suite {
    ($factory:path) => {
        $crate::cases!(
            $factory,
            sessions,
            [
                create_then_get_returns_every_field,
                unknown_session_is_none,
                touch_slides_the_idle_expiry,
                touch_is_capped_by_the_absolute_expiry,
                data_is_updated_field_by_field,
                concurrent_field_updates_lose_nothing,
                oversize_data_is_refused_and_changes_nothing,
                delete_removes_the_session,
                list_is_most_recently_active_first,
                max_per_user_evicts_the_least_recently_active,
                concurrent_creates_never_exceed_the_maximum,
                delete_user_sessions_keeps_the_exception_and_other_users,
                count_active_follows_creates_deletes_and_expiry,
                login_on_a_device_replaces_its_session,
                concurrent_logins_on_a_device_leave_one_session,
                caller_chosen_session_ids,
                active_sessions_count_their_device_online,
            ]
        );
        $crate::cases!(
            $factory,
            conversations,
            [
                put_get_replace_and_delete,
                members_are_added_and_removed,
                member_limits_hold_and_refusals_change_nothing,
                concurrent_additions_lose_nothing,
            ]
        );
        $crate::cases!(
            $factory,
            messages,
            [
                post_recent_and_before_paging,
                cache_keeps_the_newest_100,
                fill_is_cache_aside,
                retention_counts_from_caching,
                edit_and_delete,
                refusals_change_nothing,
                status_never_goes_backwards,
                concurrent_receipts_count_exactly,
                small_conversations_also_deliver_on_user_channels,
            ]
        );
        $crate::cases!(
            $factory,
            inbox,
            [
                order_filters_and_paging,
                unread_is_exact_under_concurrent_posts,
                read_up_to_resets_and_syncs,
                totals_keep_muted_apart,
                fan_out_is_idempotent_by_message_id,
                an_explicit_preview_replaces_the_content_in_lists,
                import_fills_the_list_and_marks_it_loaded,
                unread_can_be_set_explicitly,
                entries_carry_the_conversation_name_type_and_avatar,
            ]
        );
        $crate::cases!(
            $factory,
            denylist,
            [
                denied_until_expiry_then_forgotten,
                deny_keeps_the_later_time,
                deny_in_the_past_stores_nothing,
                undeny_removes,
                revoke_before_never_moves_backwards,
                token_check_reports_denied_revoked_and_valid,
                revoke_before_counts_whole_seconds,
                a_whole_token_is_denied_by_its_digest,
            ]
        );
        $crate::cases!(
            $factory,
            rate_limits,
            [
                gcra_allows_the_burst_then_denies_with_retry_after,
                sliding_window_denies_over_the_limit_and_recovers,
                sliding_log_is_exact_and_recovers,
                cost_counts_several_units,
                status_consumes_nothing,
                reset_forgets_the_key,
                multi_key_check_is_all_or_nothing,
                concurrent_checks_never_admit_more_than_the_limit,
                state_of_another_algorithm_counts_as_empty,
                idle_state_disappears_after_its_window,
                named_policies_resolve_and_unknown_names_are_refused,
            ]
        );
        $crate::cases!(
            $factory,
            presence,
            [
                devices_are_upserted_listed_and_removed,
                connections_drive_online_and_maybe_offline,
                connections_expire_after_their_ttl,
                heartbeats_mark_a_device_online_until_their_ttl,
                batch_refresh_keeps_many_connections_alive,
                status_text_and_invisible,
                bulk_answers_in_order,
                online_users_pages_cover_everyone_once,
                contacts_set_add_remove_and_expire,
                grace_period_hides_a_quick_reconnect,
                expiry_is_announced_once_by_concurrent_sweepers,
                status_changes_are_announced_and_invisible_users_stay_quiet,
                get_list_and_count_agree_on_who_is_online,
                ending_a_heartbeat_is_explicit_offline,
                presence_reaches_followers_on_their_user_channel,
                node_reports_are_shared_and_expire,
            ]
        );
        $crate::cases!(
            $factory,
            notifications,
            [
                create_is_idempotent_by_id,
                list_is_newest_first_paged_and_filtered,
                unread_count_follows_read_dismiss_and_read_all,
                mutations_report_only_real_changes,
                retention_by_count_evicts_the_oldest,
                retention_by_age_expires_notifications,
                concurrent_read_and_dismiss_report_each_change_once,
                push_is_asked_only_when_no_device_is_online,
                mark_unread_clears_read,
            ]
        );
        $crate::cases!(
            $factory,
            cache,
            [
                set_get_exists_and_delete,
                values_expire_after_their_ttl,
                tags_invalidate_their_values,
                a_set_racing_an_invalidation_never_survives_it,
                mget_and_mset,
                prefix_invalidation_removes_only_matching_keys,
                stats_count_per_namespace,
                bounds_are_enforced,
                get_or_set_computes_once_for_concurrent_callers,
                get_or_set_value_computed_across_an_invalidation_is_a_miss,
                one_lease_among_concurrent_callers,
                waiting_callers_receive_the_leased_value,
                an_expired_lease_lets_a_new_caller_in,
                a_set_with_the_token_releases_the_lease,
                a_leased_value_computed_across_an_invalidation_is_a_miss,
                tags_invalidate_in_every_namespace,
                stale_values_are_served_while_one_caller_revalidates,
                lease_bounds_and_stats_of_all_namespaces,
                keys_are_listed_by_prefix_and_paged,
            ]
        );
        $crate::cases!(
            $factory,
            jobs,
            [
                priority_then_fifo_within_a_level,
                queues_are_drained_in_order_and_paused_ones_skipped,
                delayed_jobs_wait_until_due,
                failures_back_off_by_the_job_schedule,
                expired_lease_requeues_and_counts_an_attempt,
                heartbeat_extends_the_lease,
                dead_after_max_attempts_then_retry_or_remove,
                unique_key_dedups_until_the_holder_finishes,
                cancel_by_unique_key_prefix,
                enqueue_is_idempotent_by_id,
                wrong_token_or_unknown_job_is_refused,
                progress_result_and_errors_are_recorded,
                release_does_not_count_the_attempt,
                counts_follow_every_operation,
                retention_by_count_keeps_the_newest,
                retention_by_age_drops_old_finished_jobs,
                lists_are_ordered_and_paged,
                concurrent_fetchers_take_every_job_exactly_once,
                schedules_are_stored_listed_and_due,
                concurrent_fires_of_one_tick_enqueue_once,
            ]
        );
        $crate::cases!(
            $factory,
            jobs_service,
            [
                two_schedulers_fire_each_tick_once,
                worker_runs_jobs_within_its_concurrency,
                worker_failures_and_panics_are_recorded_and_retried,
                worker_shutdown_finishes_or_releases,
                complete_many_answers_each_job,
                long_poll_returns_when_a_job_arrives,
                fetch_by_types_leases_only_those,
            ]
        );
        $crate::cases!(
            $factory,
            typing,
            [start_stop_and_list, repeated_starts_are_throttled, expiry_announces_one_stop, non_members_may_not_type,]
        );
        $crate::cases!(
            $factory,
            streams,
            [
                offsets_grow_by_one_per_publication,
                read_since_returns_exactly_the_missed_ones,
                retention_by_count_keeps_the_newest,
                retention_by_age_expires_publications,
                epoch_is_stable_and_a_wrong_epoch_is_not_recovered,
                history_is_the_newest_n_oldest_first,
                pending_filters_excluded_and_targeted_devices,
                ack_never_moves_backwards,
                ten_thousand_publications_read_back_in_pages,
                concurrent_publishers_get_consecutive_offsets,
                hub_subscribers_receive_later_publications_in_order,
                reserved_types_are_refused_except_as_control_events,
                publications_reach_subscribers_on_other_nodes,
                a_new_device_starts_at_the_current_position,
                audiences_resolve_to_user_channels,
            ]
        );
    };
}

/// Implementation detail of [`suite!`]: one test module per capability.
#[doc(hidden)]
#[macro_export]
macro_rules! cases {
    ($factory:path, $module:ident, [$($case:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let engine = $factory().await;
                    $crate::$module::$case(&engine).await;
                }
            )*
        }
    };
}
