//! The protocol's numbers: reply error codes, disconnect (WebSocket close) codes and unsubscribe
//! codes, with the reconnect / resubscribe rule the SDKs apply to each.
//!
//! The numbers and reasons are the Centrifugo client protocol's (centrifuge's `errors.go`,
//! `disconnect.go`, `unsubscribe.go`); the retry rules are the ones centrifuge-js applies. They are
//! part of the wire contract: never renumber.

use switchboard_core::Error;

/// An error code sent in a command's reply (`{"id": 1, "error": {"code": 103, ...}}`).
///
/// SDKs retry a failed connect or subscribe when the error is [`temporary`](Self::temporary) or
/// is [`ErrorCode::TokenExpired`] (they fetch a new token first); any other error is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 100: the server failed; the client is not at fault. Temporary.
    Internal,
    /// 101: the request is not authorized.
    Unauthorized,
    /// 102: the channel does not exist (unknown namespace or malformed name).
    UnknownChannel,
    /// 103: the client may not access this resource.
    PermissionDenied,
    /// 104: the RPC method (or command) is not known.
    MethodNotFound,
    /// 105: the client is already subscribed to the channel.
    AlreadySubscribed,
    /// 106: a limit (subscriptions, sizes, ...) is exceeded.
    LimitExceeded,
    /// 107: the request is malformed; retrying it does not help.
    BadRequest,
    /// 108: the resource or feature is not enabled.
    NotAvailable,
    /// 109: the connection or subscription token expired; the SDK gets a new one and retries.
    TokenExpired,
    /// 110: the connection expired (no token involved).
    Expired,
    /// 111: rate limited. Temporary.
    TooManyRequests,
    /// 112: the stream no longer holds the requested position (trimmed, expired or new epoch).
    UnrecoverablePosition,
}

impl ErrorCode {
    /// Every error code, in numeric order.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::Internal,
        ErrorCode::Unauthorized,
        ErrorCode::UnknownChannel,
        ErrorCode::PermissionDenied,
        ErrorCode::MethodNotFound,
        ErrorCode::AlreadySubscribed,
        ErrorCode::LimitExceeded,
        ErrorCode::BadRequest,
        ErrorCode::NotAvailable,
        ErrorCode::TokenExpired,
        ErrorCode::Expired,
        ErrorCode::TooManyRequests,
        ErrorCode::UnrecoverablePosition,
    ];

    /// The number on the wire.
    pub const fn code(self) -> u32 {
        match self {
            ErrorCode::Internal => 100,
            ErrorCode::Unauthorized => 101,
            ErrorCode::UnknownChannel => 102,
            ErrorCode::PermissionDenied => 103,
            ErrorCode::MethodNotFound => 104,
            ErrorCode::AlreadySubscribed => 105,
            ErrorCode::LimitExceeded => 106,
            ErrorCode::BadRequest => 107,
            ErrorCode::NotAvailable => 108,
            ErrorCode::TokenExpired => 109,
            ErrorCode::Expired => 110,
            ErrorCode::TooManyRequests => 111,
            ErrorCode::UnrecoverablePosition => 112,
        }
    }

    /// The protocol's message for the code (sent as `error.message`).
    pub const fn reason(self) -> &'static str {
        match self {
            ErrorCode::Internal => "internal server error",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::UnknownChannel => "unknown channel",
            ErrorCode::PermissionDenied => "permission denied",
            ErrorCode::MethodNotFound => "method not found",
            ErrorCode::AlreadySubscribed => "already subscribed",
            ErrorCode::LimitExceeded => "limit exceeded",
            ErrorCode::BadRequest => "bad request",
            ErrorCode::NotAvailable => "not available",
            ErrorCode::TokenExpired => "token expired",
            ErrorCode::Expired => "expired",
            ErrorCode::TooManyRequests => "too many requests",
            ErrorCode::UnrecoverablePosition => "unrecoverable position",
        }
    }

    /// Whether the reply carries `"temporary": true` (the reference server sets it on these two).
    pub const fn temporary(self) -> bool {
        matches!(self, ErrorCode::Internal | ErrorCode::TooManyRequests)
    }

    /// Whether an SDK retries after this error on connect (reconnects) or subscribe
    /// (resubscribes): temporary errors and "token expired".
    pub const fn reconnect(self) -> bool {
        self.temporary() || matches!(self, ErrorCode::TokenExpired)
    }

    /// The code with number `code`, if the protocol defines it.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The code for a core error returned while handling a command. The reply carries the
    /// protocol's message, never the core message (internals must not leak).
    ///
    /// `InvalidArgument` -> bad request, `PayloadTooLarge` -> limit exceeded, `NotFound` ->
    /// bad request (the handler knows better when it is an unknown channel), `Conflict` -> bad
    /// request, `PermissionDenied` -> permission denied, `RateLimited` -> too many requests,
    /// `Unavailable` and `Internal` -> internal (temporary, so SDKs retry).
    pub fn from_core(error: &Error) -> Self {
        match error {
            Error::InvalidArgument(_) | Error::NotFound(_) | Error::Conflict(_) => ErrorCode::BadRequest,
            Error::PayloadTooLarge(_) => ErrorCode::LimitExceeded,
            Error::PermissionDenied(_) => ErrorCode::PermissionDenied,
            Error::RateLimited { .. } => ErrorCode::TooManyRequests,
            // Unknown kinds too: temporary, so SDKs retry.
            _ => ErrorCode::Internal,
        }
    }
}

/// The longest close reason a WebSocket close frame can carry (125 bytes of payload minus the
/// 2-byte code).
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

/// Whether an SDK reconnects after a disconnect with `code` (a WebSocket close code or a
/// `disconnect` push): codes 3500–3999 and 4500–4999 are terminal; 3000–3499, 4000–4499 and
/// 5000 and above reconnect. Below 3000 the transport decides; centrifuge-js reconnects except on
/// 1009 (message too big).
pub const fn reconnects(code: u32) -> bool {
    !matches!(code, 1009 | 3500..=3999 | 4500..=4999)
}

/// Why the server closes a connection: the close code and reason of the WebSocket close frame
/// (or of a `disconnect` push on other transports).
///
/// Codes 3000–3499 ask the SDK to reconnect, 3500–3999 to stop (see [`reconnects`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectCode {
    /// 3000: the connection closed without advice from the server (never sent; for metrics).
    ConnectionClosed,
    /// 3001: the node is shutting down. Reconnect.
    Shutdown,
    /// 3004: internal server error. Reconnect.
    ServerError,
    /// 3005: the connection expired (its token was not refreshed in time). Reconnect.
    Expired,
    /// 3006: a subscription expired. Reconnect.
    SubscriptionExpired,
    /// 3008: the client reads too slowly; its send queue overflowed. Reconnect.
    Slow,
    /// 3009: writing to the connection failed. Reconnect.
    WriteError,
    /// 3010: the server found a gap in the client's stream position. Reconnect (and recover).
    InsufficientState,
    /// 3011: the server asks the client to reconnect.
    ForceReconnect,
    /// 3012: no pong to the server's ping in time. Reconnect.
    NoPong,
    /// 3013: too many commands. Reconnect.
    TooManyRequests,
    /// 3014: the client's cached state or token is no longer valid; the SDK drops its token and
    /// subscription state, then reconnects.
    StateInvalidated,
    /// 3500: the connection token is invalid. Terminal.
    InvalidToken,
    /// 3501: malformed protocol frames or a protocol violation. Terminal.
    BadRequest,
    /// 3502: no connect command in time after the WebSocket opened. Terminal.
    Stale,
    /// 3503: the server disconnects the client and asks it not to come back. Terminal.
    ForceNoReconnect,
    /// 3504: too many connections (per user or in total). Terminal.
    ConnectionLimit,
    /// 3505: too many channels. Terminal.
    ChannelLimit,
    /// 3506: the connection's format cannot carry the data (e.g. binary to a JSON client). Terminal.
    InappropriateProtocol,
    /// 3507: the client has no permission to connect. Terminal.
    PermissionDenied,
    /// 3508: the feature the client used is not available. Terminal.
    NotAvailable,
    /// 3509: the client caused too many errors. Terminal.
    TooManyErrors,
}

impl DisconnectCode {
    /// Every disconnect code, in numeric order.
    pub const ALL: [DisconnectCode; 22] = [
        DisconnectCode::ConnectionClosed,
        DisconnectCode::Shutdown,
        DisconnectCode::ServerError,
        DisconnectCode::Expired,
        DisconnectCode::SubscriptionExpired,
        DisconnectCode::Slow,
        DisconnectCode::WriteError,
        DisconnectCode::InsufficientState,
        DisconnectCode::ForceReconnect,
        DisconnectCode::NoPong,
        DisconnectCode::TooManyRequests,
        DisconnectCode::StateInvalidated,
        DisconnectCode::InvalidToken,
        DisconnectCode::BadRequest,
        DisconnectCode::Stale,
        DisconnectCode::ForceNoReconnect,
        DisconnectCode::ConnectionLimit,
        DisconnectCode::ChannelLimit,
        DisconnectCode::InappropriateProtocol,
        DisconnectCode::PermissionDenied,
        DisconnectCode::NotAvailable,
        DisconnectCode::TooManyErrors,
    ];

    /// The close code.
    pub const fn code(self) -> u32 {
        match self {
            DisconnectCode::ConnectionClosed => 3000,
            DisconnectCode::Shutdown => 3001,
            DisconnectCode::ServerError => 3004,
            DisconnectCode::Expired => 3005,
            DisconnectCode::SubscriptionExpired => 3006,
            DisconnectCode::Slow => 3008,
            DisconnectCode::WriteError => 3009,
            DisconnectCode::InsufficientState => 3010,
            DisconnectCode::ForceReconnect => 3011,
            DisconnectCode::NoPong => 3012,
            DisconnectCode::TooManyRequests => 3013,
            DisconnectCode::StateInvalidated => 3014,
            DisconnectCode::InvalidToken => 3500,
            DisconnectCode::BadRequest => 3501,
            DisconnectCode::Stale => 3502,
            DisconnectCode::ForceNoReconnect => 3503,
            DisconnectCode::ConnectionLimit => 3504,
            DisconnectCode::ChannelLimit => 3505,
            DisconnectCode::InappropriateProtocol => 3506,
            DisconnectCode::PermissionDenied => 3507,
            DisconnectCode::NotAvailable => 3508,
            DisconnectCode::TooManyErrors => 3509,
        }
    }

    /// The close reason (short, well under [`MAX_CLOSE_REASON_BYTES`]).
    pub const fn reason(self) -> &'static str {
        match self {
            DisconnectCode::ConnectionClosed => "connection closed",
            DisconnectCode::Shutdown => "shutdown",
            DisconnectCode::ServerError => "internal server error",
            DisconnectCode::Expired => "connection expired",
            DisconnectCode::SubscriptionExpired => "subscription expired",
            DisconnectCode::Slow => "slow",
            DisconnectCode::WriteError => "write error",
            DisconnectCode::InsufficientState => "insufficient state",
            DisconnectCode::ForceReconnect => "force reconnect",
            DisconnectCode::NoPong => "no pong",
            DisconnectCode::TooManyRequests => "too many requests",
            DisconnectCode::StateInvalidated => "state invalidated",
            DisconnectCode::InvalidToken => "invalid token",
            DisconnectCode::BadRequest => "bad request",
            DisconnectCode::Stale => "stale",
            DisconnectCode::ForceNoReconnect => "force disconnect",
            DisconnectCode::ConnectionLimit => "connection limit",
            DisconnectCode::ChannelLimit => "channel limit",
            DisconnectCode::InappropriateProtocol => "inappropriate protocol",
            DisconnectCode::PermissionDenied => "permission denied",
            DisconnectCode::NotAvailable => "not available",
            DisconnectCode::TooManyErrors => "too many errors",
        }
    }

    /// Whether the SDK reconnects after this disconnect (see [`reconnects`]).
    pub const fn reconnect(self) -> bool {
        reconnects(self.code())
    }

    /// The disconnect with close code `code`, if the protocol defines it.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.code() == code)
    }
}

/// Why the server ends one subscription (the `unsubscribe` push). Codes of 2500 and above make
/// the SDK resubscribe; codes below it are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnsubscribeCode {
    /// 2000: the server unsubscribed the client. Final.
    Server,
    /// 2403: the permission behind the subscription ended (removed from the conversation, the
    /// conversation replaced or deleted, no longer a contact). Final.
    AccessRevoked,
    /// 2500: the server found a gap in the subscription's stream; resubscribe and recover.
    InsufficientState,
    /// 2501: the subscription expired; resubscribe.
    Expired,
    /// 2502: the subscription's token or cached state is no longer valid; the SDK drops both and
    /// resubscribes.
    StateInvalidated,
}

impl UnsubscribeCode {
    /// Every unsubscribe code the server sends, in numeric order.
    pub const ALL: [UnsubscribeCode; 5] = [
        UnsubscribeCode::Server,
        UnsubscribeCode::AccessRevoked,
        UnsubscribeCode::InsufficientState,
        UnsubscribeCode::Expired,
        UnsubscribeCode::StateInvalidated,
    ];

    /// The number on the wire.
    pub const fn code(self) -> u32 {
        match self {
            UnsubscribeCode::Server => 2000,
            UnsubscribeCode::AccessRevoked => 2403,
            UnsubscribeCode::InsufficientState => 2500,
            UnsubscribeCode::Expired => 2501,
            UnsubscribeCode::StateInvalidated => 2502,
        }
    }

    /// The protocol's reason.
    pub const fn reason(self) -> &'static str {
        match self {
            UnsubscribeCode::Server => "server unsubscribe",
            UnsubscribeCode::AccessRevoked => "permission revoked",
            UnsubscribeCode::InsufficientState => "insufficient state",
            UnsubscribeCode::Expired => "subscription expired",
            UnsubscribeCode::StateInvalidated => "state invalidated",
        }
    }

    /// Whether the SDK subscribes again (codes of 2500 and above).
    pub const fn resubscribe(self) -> bool {
        self.code() >= 2500
    }

    /// The code with number `code`, if the protocol defines it.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|u| u.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_the_protocols() {
        let table: Vec<(u32, &str, bool)> =
            ErrorCode::ALL.iter().map(|c| (c.code(), c.reason(), c.temporary())).collect();
        assert_eq!(
            table,
            vec![
                (100, "internal server error", true),
                (101, "unauthorized", false),
                (102, "unknown channel", false),
                (103, "permission denied", false),
                (104, "method not found", false),
                (105, "already subscribed", false),
                (106, "limit exceeded", false),
                (107, "bad request", false),
                (108, "not available", false),
                (109, "token expired", false),
                (110, "expired", false),
                (111, "too many requests", true),
                (112, "unrecoverable position", false),
            ]
        );
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(c.code()), Some(c));
        }
        assert_eq!(ErrorCode::from_code(99), None);
        assert_eq!(ErrorCode::from_code(113), None);
    }

    #[test]
    fn sdk_retries_temporary_errors_and_expired_tokens_only() {
        let retried: Vec<u32> = ErrorCode::ALL.iter().filter(|c| c.reconnect()).map(|c| c.code()).collect();
        assert_eq!(retried, vec![100, 109, 111]);
    }

    #[test]
    fn disconnect_codes_and_ranges() {
        for d in DisconnectCode::ALL {
            assert_eq!(DisconnectCode::from_code(d.code()), Some(d));
            assert!(d.reason().len() <= MAX_CLOSE_REASON_BYTES);
            let terminal = (3500..4000).contains(&d.code());
            assert_eq!(d.reconnect(), !terminal, "{d:?}");
        }
        assert_eq!(DisconnectCode::InvalidToken.code(), 3500);
        assert!(!DisconnectCode::InvalidToken.reconnect());
        assert_eq!(DisconnectCode::BadRequest.code(), 3501);
        assert_eq!(DisconnectCode::Slow.code(), 3008);
        assert!(DisconnectCode::Slow.reconnect());
        assert!(DisconnectCode::Shutdown.reconnect());
        assert_eq!(DisconnectCode::from_code(3002), None);
        // The range rule for codes the enum does not name (application codes).
        assert!(reconnects(4000) && reconnects(4499) && reconnects(5000));
        assert!(!reconnects(4500) && !reconnects(4999) && !reconnects(3999));
        assert!(!reconnects(1009));
    }

    #[test]
    fn unsubscribe_codes() {
        assert_eq!(UnsubscribeCode::ALL.map(|u| u.code()), [2000, 2403, 2500, 2501, 2502]);
        assert!(!UnsubscribeCode::AccessRevoked.resubscribe());
        assert!(!UnsubscribeCode::Server.resubscribe());
        assert!(UnsubscribeCode::InsufficientState.resubscribe());
        assert_eq!(UnsubscribeCode::from_code(2501), Some(UnsubscribeCode::Expired));
    }

    #[test]
    fn core_errors_map_without_leaking() {
        assert_eq!(ErrorCode::from_core(&Error::invalid("x", "bad")), ErrorCode::BadRequest);
        assert_eq!(ErrorCode::from_core(&Error::RateLimited { retry_after_ms: 5 }), ErrorCode::TooManyRequests);
        assert_eq!(ErrorCode::from_core(&Error::Internal("secret detail".into())), ErrorCode::Internal);
        assert_eq!(ErrorCode::from_core(&Error::PermissionDenied("no".into())), ErrorCode::PermissionDenied);
    }
}
