//! `/tokens/deny` and `/users/{user_id}/tokens/revoke`: the token denylist and per-user
//! revoke-before times.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchboard_core::{Timestamp, TokenId, UserId};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::disconnect::disconnect_quietly;
use super::paths::{TokenPath, UserPath};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, JsonBody, Path};
use crate::gateway::DisconnectTarget;
use crate::state::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(deny_token))
        .routes(routes!(get_denied_token, undeny_token))
        .routes(routes!(revoke_user_tokens, get_user_revocation))
}

/// Deny a token until it expires: by its `jti`, or the whole token (exactly one of the two).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DenyToken {
    /// The token's `jti`.
    #[serde(default)]
    jti: Option<TokenId>,
    /// The whole token (at most 16 KiB), for apps whose tokens have no `jti`: stored by its
    /// digest, `sha256:<hex of the token's SHA-256>`, never as such.
    #[serde(default)]
    token: Option<String>,
    /// The token's `exp`: the denial is kept exactly until then.
    expires_at: Timestamp,
}

/// A denied token.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeniedToken {
    /// The denial's id: the token's `jti`, or the digest of a token denied whole (use it in
    /// `GET` and `DELETE /tokens/deny/{jti}`).
    jti: TokenId,
    /// Until when it is denied; `null` when `expires_at` had already passed (nothing is stored:
    /// the token is expired anyway).
    denied_until: Option<Timestamp>,
}

/// Revoke a user's tokens issued before a time.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeTokens {
    /// Tokens issued (`iat`) before this time are rejected (default: now).
    #[serde(default)]
    before: Option<Timestamp>,
}

/// A user's revoke-before time.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Revocation {
    /// The user.
    user_id: UserId,
    /// Tokens issued before this time are rejected; `null` when none is set.
    revoked_before: Option<Timestamp>,
}

fn not_denied() -> ApiError {
    ApiError::not_found("token is not denied")
}

/// Deny a token (by `jti`, or the whole token by its digest) until its expiry, and end the
/// WebSocket connections made with it on every node. Denying again keeps the later expiry.
#[utoipa::path(
    post,
    path = "/tokens/deny",
    tag = "tokens",
    request_body = DenyToken,
    responses(
        (status = OK, description = "The denial in force", body = DeniedToken),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn deny_token(
    State(state): State<AppState>,
    Json(req): Json<DenyToken>,
) -> Result<Json<DeniedToken>, ApiError> {
    let tokens = state.sb().tokens();
    let jti = match (req.jti, req.token) {
        (Some(jti), None) => {
            tokens.deny(&jti, req.expires_at).await?;
            jti
        }
        (None, Some(token)) => tokens.deny_token(&token, req.expires_at).await?,
        _ => return Err(ApiError::invalid("jti: give exactly one of `jti` and `token`")),
    };
    // Read back the time in force: an earlier denial with a later expiry wins.
    let denied_until = tokens.denied_until(&jti).await?;
    Ok(Json(DeniedToken { jti, denied_until }))
}

/// Whether a token is denied, and until when.
#[utoipa::path(
    get,
    path = "/tokens/deny/{jti}",
    tag = "tokens",
    params(TokenPath),
    responses(
        (status = OK, description = "Denied", body = DeniedToken),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, description = "Not denied", body = ErrorBody),
    )
)]
pub(crate) async fn get_denied_token(
    State(state): State<AppState>,
    Path(TokenPath { jti: raw }): Path<TokenPath>,
) -> Result<Json<DeniedToken>, ApiError> {
    let jti = raw;
    match state.sb().tokens().denied_until(&jti).await? {
        Some(until) => Ok(Json(DeniedToken { jti, denied_until: Some(until) })),
        None => Err(not_denied()),
    }
}

/// Take a token off the denylist.
#[utoipa::path(
    delete,
    path = "/tokens/deny/{jti}",
    tag = "tokens",
    params(TokenPath),
    responses(
        (status = NO_CONTENT, description = "Removed"),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, description = "Was not denied", body = ErrorBody),
    )
)]
pub(crate) async fn undeny_token(
    State(state): State<AppState>,
    Path(TokenPath { jti: raw }): Path<TokenPath>,
) -> Result<StatusCode, ApiError> {
    let jti = raw;
    if state.sb().tokens().undeny(&jti).await? { Ok(StatusCode::NO_CONTENT) } else { Err(not_denied()) }
}

/// Reject every token of the user issued before `before` (default now): logout everywhere for
/// JWTs. The body is optional. Revoke times never move backwards; the answer is the time in force.
/// WebSocket connections made with older tokens are closed with a reconnect, so clients come
/// back with fresh tokens.
#[utoipa::path(
    post,
    path = "/users/{user_id}/tokens/revoke",
    tag = "tokens",
    params(UserPath),
    request_body(content = Option<RevokeTokens>, description = "Optional; an empty body means `before` = now"),
    responses(
        (status = OK, body = Revocation),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn revoke_user_tokens(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
    body: JsonBody,
) -> Result<Json<Revocation>, ApiError> {
    let req: RevokeTokens = body.parse_optional()?.unwrap_or_default();
    let revoked_before = state.sb().tokens().revoke_before(&user, req.before).await?;
    // Clients holding older tokens reconnect, and must then present fresh ones.
    let target =
        DisconnectTarget { issued_before: Some(revoked_before), reconnect: true, ..DisconnectTarget::default() };
    disconnect_quietly(&state, &user, target).await;
    Ok(Json(Revocation { user_id: user, revoked_before: Some(revoked_before) }))
}

/// The user's revoke-before time, if any.
#[utoipa::path(
    get,
    path = "/users/{user_id}/tokens/revoke",
    tag = "tokens",
    params(UserPath),
    responses(
        (status = OK, body = Revocation),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn get_user_revocation(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
) -> Result<Json<Revocation>, ApiError> {
    let revoked_before = state.sb().tokens().revoked_before(&user).await?;
    Ok(Json(Revocation { user_id: user, revoked_before }))
}
