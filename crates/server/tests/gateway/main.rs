//! End-to-end tests of the WebSocket gateway with real WebSocket clients, on both engines.

mod chat;
mod common;
mod delivery;
mod isolation;
mod lifecycle;
mod protobuf;
mod refusals;
mod revocation;

/// Runs each listed case on the memory engine and on a real redis-server.
macro_rules! on_both_engines {
    ($module:ident as $tests:ident: $($case:ident),* $(,)?) => {
        mod $tests {
            mod memory {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        crate::$module::$case(switchboard_conformance::memory_engine().await).await;
                    }
                )*
            }
            mod redis {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        crate::$module::$case(switchboard_conformance::redis_engine().await).await;
                    }
                )*
            }
        }
    };
}

on_both_engines!(delivery as delivery_tests:
    personal_channel_delivery_and_positions,
    offline_device_recovers_10000_publications_in_order,
    recovery_beyond_retention_is_not_recovered,
    chat_members_subscribe_and_see_typing,
    disconnect_orders_reach_the_connection,
    notification_reads_sync_to_the_other_devices,
    websocket_delivery_advances_the_device_cursor,
    the_personal_channel_carries_messages_and_contacts_presence,
    nothing_arrives_between_unsubscribe_and_the_next_subscribe,
);

on_both_engines!(chat as chat_tests:
    three_members_post_read_and_receipts,
);

on_both_engines!(refusals as refusal_tests:
    bad_tokens_are_refused_with_protocol_codes,
    denied_and_revoked_tokens_are_refused,
    channels_of_others_are_refused,
    malformed_and_oversize_frames_close_the_connection,
    limits_hold_per_user_and_per_connection,
    shutdown_tells_clients_to_reconnect,
);

on_both_engines!(isolation as isolation_tests:
    notifications_of_others_cannot_be_read_or_changed,
    personal_channels_and_sessions_of_others_are_refused,
    conversation_lists_of_others_cannot_be_read_or_changed,
);

on_both_engines!(revocation as revocation_tests:
    a_removed_member_stops_receiving_at_once,
    a_replaced_or_deleted_conversation_ends_subscriptions,
    a_removed_contact_ends_the_presence_subscription,
    a_denied_token_is_disconnected_on_every_node,
    a_token_denied_whole_is_disconnected_on_every_node,
);

on_both_engines!(protobuf as protobuf_tests:
    handshake_selects_the_variant,
    several_commands_per_frame_and_batched_replies,
    ping_and_pong_are_empty_messages,
    bad_framing_closes_with_bad_request,
    unknown_fields_are_skipped,
    frames_of_the_other_variant_are_refused,
    delivery_rpc_recovery_and_refusals,
);

on_both_engines!(lifecycle as lifecycle_tests:
    shutdown_ends_every_task_and_closes_the_engine,
);
