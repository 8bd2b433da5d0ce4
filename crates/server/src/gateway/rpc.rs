//! The RPC methods clients may call (docs/PROTOCOL.md, "RPC methods"): `typing`,
//! `presence.status`, `presence.get`, `notifications.read`, `notifications.dismiss`,
//! `conversations.read`, `messages.delivered`.
//! Each acts only on the caller's own state, or reads what the caller may see.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use switchboard_core::{DeviceId, Error, NotificationId, UserId};

use switchboard_core::{ConversationId, DeliveryStatus, MessageId};

use super::Shared;
use super::codes::ErrorCode;
use super::connection::{PresenceGetArgs, StatusArgs, TypingArgs};

/// Most users one `presence.get` may ask about.
const MAX_PRESENCE_GET: usize = 100;

/// `notifications.read {ids}` or `{all: true}`; `notifications.dismiss {ids}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationArgs {
    #[serde(default)]
    ids: Vec<NotificationId>,
    #[serde(default)]
    all: bool,
}

/// `conversations.read {conversation_id, message_id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadArgs {
    conversation_id: ConversationId,
    message_id: MessageId,
}

/// `messages.delivered {conversation_id, message_ids}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveredArgs {
    conversation_id: ConversationId,
    message_ids: Vec<MessageId>,
}

fn args<T: DeserializeOwned>(data: &str) -> Result<T, ErrorCode> {
    serde_json::from_str(data).map_err(|_| ErrorCode::BadRequest)
}

fn engine(e: &Error) -> ErrorCode {
    ErrorCode::from_core(e)
}

/// Runs RPC `method` for `user` with JSON `data`; the answer becomes the RPC result's data.
pub(crate) async fn call(
    shared: &Shared,
    user: &UserId,
    device: Option<&DeviceId>,
    method: &str,
    data: &str,
) -> Result<Value, ErrorCode> {
    let sb = &shared.sb;
    match method {
        "typing" => {
            let a: TypingArgs = args(data)?;
            sb.typing().set(&a.conversation_id, user, a.typing).await.map_err(|e| engine(&e))?;
            Ok(json!({}))
        }
        "presence.status" => {
            let a: StatusArgs = args(data)?;
            let presence = sb.presence().set_status(user, a).await.map_err(|e| engine(&e))?;
            serde_json::to_value(presence).map_err(|_| ErrorCode::Internal)
        }
        "presence.get" => {
            let a: PresenceGetArgs = args(data)?;
            if a.user_ids.len() > MAX_PRESENCE_GET {
                return Err(ErrorCode::LimitExceeded);
            }
            // Only yourself and your contacts: one read of the contacts, one bulk read of the
            // presences, however many users are asked for.
            if a.user_ids.iter().any(|other| other != user) {
                let contacts = sb.presence().contacts(user).await.map_err(|e| engine(&e))?;
                let contacts: std::collections::HashSet<&UserId> = contacts.iter().collect();
                if a.user_ids.iter().any(|other| other != user && !contacts.contains(other)) {
                    return Err(ErrorCode::PermissionDenied);
                }
            }
            let found = sb.presence().bulk(&a.user_ids).await.map_err(|e| engine(&e))?;
            let found: Vec<_> =
                found.into_iter().map(|p| if &p.user_id == user { p } else { p.visible_to_others() }).collect();
            Ok(json!({ "presences": found }))
        }
        // The caller's own notifications only; their device is the source, so it does not get
        // the `notification.updated` events of its own change.
        "notifications.read" | "notifications.dismiss" => {
            let a: NotificationArgs = args(data)?;
            let svc = sb.notifications();
            let changes = match (method, a.all) {
                ("notifications.read", true) if a.ids.is_empty() => svc.read_all(user, device).await,
                (_, true) => return Err(ErrorCode::BadRequest),
                ("notifications.read", false) => svc.read(user, &a.ids, device).await,
                _ => svc.dismiss(user, &a.ids, device).await,
            };
            Ok(json!({ "changes": changes.map_err(|e| engine(&e))? }))
        }
        // The caller reads as themselves (members only); their device is the source, so it does
        // not get the `unread.changed` of its own read.
        "conversations.read" => {
            let a: ReadArgs = args(data)?;
            let outcome = sb.messages().read(user, &a.conversation_id, &a.message_id, device).await;
            serde_json::to_value(outcome.map_err(|e| engine(&e))?).map_err(|_| ErrorCode::Internal)
        }
        "messages.delivered" => {
            let a: DeliveredArgs = args(data)?;
            let messages = sb.messages();
            let change = messages.set_status(&a.conversation_id, user, &a.message_ids, DeliveryStatus::Delivered).await;
            serde_json::to_value(change.map_err(|e| engine(&e))?).map_err(|_| ErrorCode::Internal)
        }
        _ => Err(ErrorCode::MethodNotFound),
    }
}
