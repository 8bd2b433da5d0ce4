//! The RPC methods clients may call (SPEC §4): `typing`, `presence.status`, `presence.get`.
//! Each acts only on the caller's own state, or reads what the caller may see.

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use switchboard_core::{DeviceId, Error, UserId};

use super::Shared;
use super::codes::ErrorCode;
use super::connection::{PresenceGetArgs, StatusArgs, TypingArgs};

/// Most users one `presence.get` may ask about.
const MAX_PRESENCE_GET: usize = 100;

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
    _device: Option<&DeviceId>,
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
            let mut found = Vec::with_capacity(a.user_ids.len());
            for other in &a.user_ids {
                // Only yourself and your contacts (SPEC §4).
                if other != user && !sb.presence().is_contact(user, other).await.map_err(|e| engine(&e))? {
                    return Err(ErrorCode::PermissionDenied);
                }
                found.push(sb.presence().get_for(user, other).await.map_err(|e| engine(&e))?);
            }
            Ok(json!({ "presences": found }))
        }
        _ => Err(ErrorCode::MethodNotFound),
    }
}
