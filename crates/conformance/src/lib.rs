//! One conformance suite per capability, run against every engine through [`suite!`]. A case is
//! an async function taking a [`TestEngine`]; the macro turns every case into its own
//! `#[tokio::test]` for the engine factory it is given, so the memory and Redis engines run the
//! very same code and cannot drift apart.
//!
//! # Layout
//! - [`harness`]: [`TestEngine`], the engine factories, [`RedisServer`] (a real `redis-server`
//!   started on a free port) and [`eventually`].
//! - [`sessions`], [`denylist`], [`rate_limits`]: the cases of each capability.

pub mod denylist;
pub mod harness;
pub mod rate_limits;
pub mod sessions;

pub use harness::{RedisServer, TestEngine, eventually, memory_engine, redis_engine};

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
