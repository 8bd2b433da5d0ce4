//! `/users/{user_id}/contacts`: whose presence a user may see.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchboard_core::UserId;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paths::UserPath;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path};
use crate::state::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set_contacts, get_contacts))
        .routes(routes!(add_contacts))
        .routes(routes!(remove_contacts))
}

/// A user's whole contact list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetContacts {
    /// The contacts (at most the configured maximum, default 5000).
    contacts: Vec<UserId>,
    /// Forget the whole list after this many seconds, 1..=31536000 (a friends cache); kept
    /// until replaced when absent.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 31536000)]
    ttl_seconds: Option<u64>,
}

/// Contacts to add or remove.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContactsChange {
    /// At most 1000 users.
    contacts: Vec<UserId>,
}

/// A user's contacts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ContactList {
    /// The contacts.
    contacts: Vec<UserId>,
}

/// How many contacts a change added or removed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ContactsChanged {
    /// Contacts that were new (add) or present (remove).
    changed: usize,
}

/// Replace a user's contacts, optionally expiring after `ttl_seconds`.
#[utoipa::path(
    put,
    path = "/users/{user_id}/contacts",
    tag = "contacts",
    params(UserPath),
    request_body = SetContacts,
    responses(
        (status = NO_CONTENT, description = "Replaced"),
        (status = BAD_REQUEST, description = "Invalid ids, too many contacts, or `ttl_seconds` 0", body = ErrorBody),
    )
)]
pub(crate) async fn set_contacts(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
    Json(req): Json<SetContacts>,
) -> Result<StatusCode, ApiError> {
    state.sb().presence().set_contacts(&user, &req.contacts, req.ttl_seconds).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's contacts.
#[utoipa::path(
    get,
    path = "/users/{user_id}/contacts",
    tag = "contacts",
    params(UserPath),
    responses(
        (status = OK, body = ContactList),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn get_contacts(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
) -> Result<Json<ContactList>, ApiError> {
    Ok(Json(ContactList { contacts: state.sb().presence().contacts(&user).await? }))
}

/// Add contacts (at most 1000 per call, and the configured maximum in all).
#[utoipa::path(
    post,
    path = "/users/{user_id}/contacts/add",
    tag = "contacts",
    params(UserPath),
    request_body = ContactsChange,
    responses(
        (status = OK, description = "How many were new", body = ContactsChanged),
        (status = BAD_REQUEST, description = "Invalid ids, over 1000, or the list would exceed the maximum", body = ErrorBody),
    )
)]
pub(crate) async fn add_contacts(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
    Json(req): Json<ContactsChange>,
) -> Result<Json<ContactsChanged>, ApiError> {
    Ok(Json(ContactsChanged { changed: state.sb().presence().add_contacts(&user, &req.contacts).await? }))
}

/// Remove contacts (at most 1000 per call).
#[utoipa::path(
    post,
    path = "/users/{user_id}/contacts/remove",
    tag = "contacts",
    params(UserPath),
    request_body = ContactsChange,
    responses(
        (status = OK, description = "How many were present", body = ContactsChanged),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn remove_contacts(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
    Json(req): Json<ContactsChange>,
) -> Result<Json<ContactsChanged>, ApiError> {
    Ok(Json(ContactsChanged { changed: state.sb().presence().remove_contacts(&user, &req.contacts).await? }))
}
