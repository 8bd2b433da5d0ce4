//! Extractors whose rejections become the JSON error envelope: [`Json`], [`Path`], [`Query`],
//! and [`JsonBody`] for bodies that are optional or whose shape is decided after a first look.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON request body (axum's `Json`, with [`ApiError`] rejections: 400 with serde's message
/// naming the field, 413 over the body limit, 415 without a JSON content type). As a response it
/// serializes `T` like axum's `Json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(rejection, state.config().max_body_bytes)),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(rejection: JsonRejection, limit: usize) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => body_too_large(limit),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => not_json(),
        _ => ApiError::invalid(name_field_once(&rejection.body_text())),
    }
}

/// serde prefixes the field's path and an id's own check names its field too
/// (`jti: jti: must be ...`): keep one.
fn name_field_once(text: &str) -> String {
    let Some((head, rest)) = text.split_once("target type: ") else { return text.to_owned() };
    let Some((path, message)) = rest.split_once(": ") else { return text.to_owned() };
    let field = path.rsplit('.').next().unwrap_or(path);
    match message.strip_prefix(field).and_then(|m| m.strip_prefix(": ")) {
        Some(message) => format!("{head}target type: {path}: {message}"),
        None => text.to_owned(),
    }
}

fn body_too_large(limit: usize) -> ApiError {
    ApiError::too_large(format!("request body is larger than the limit of {limit} bytes"))
}

fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_argument",
        "expected a request with `Content-Type: application/json`",
    )
}

fn bytes_rejection(rejection: BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        body_too_large(limit)
    } else {
        ApiError::invalid(rejection.body_text())
    }
}

/// A raw body that must be JSON when it is not empty; parse it with [`JsonBody::parse`] or
/// [`JsonBody::parse_optional`]. Used where the body is optional or has two shapes.
#[derive(Debug, Clone)]
pub struct JsonBody(Bytes);

impl JsonBody {
    /// Whether the body is empty (or only whitespace).
    pub fn is_empty(&self) -> bool {
        self.0.trim_ascii().is_empty()
    }

    /// Parses the body as `T`, with the same errors as [`Json`].
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        match axum::Json::<T>::from_bytes(&self.0) {
            Ok(axum::Json(value)) => Ok(value),
            Err(rejection) => Err(ApiError::invalid(rejection.body_text())),
        }
    }

    /// `None` for an empty body or a JSON `null` (as the document's `null | T` says), else
    /// [`JsonBody::parse`].
    pub fn parse_optional<T: DeserializeOwned>(&self) -> Result<Option<T>, ApiError> {
        if self.is_empty() { Ok(None) } else { self.parse::<Option<T>>() }
    }
}

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let json = is_json(req.headers());
        let limit = state.config().max_body_bytes;
        let bytes = Bytes::from_request(req, state).await.map_err(|r| bytes_rejection(r, limit))?;
        let body = JsonBody(bytes);
        if !body.is_empty() && !json {
            return Err(not_json());
        }
        Ok(body)
    }
}

/// `application/json` or `application/<something>+json`, parameters ignored.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Path parameters (axum's `Path`) into a struct of validated ids (the routes' `paths`); a
/// rejection is a 400 `invalid_argument` whose message is the id's own, naming the parameter.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            // An id's own check fails with a message that names the parameter ("user_id: ...").
            Err(PathRejection::FailedToDeserializePathParams(e)) => match e.into_kind() {
                ErrorKind::Message(message) => Err(ApiError::invalid(message)),
                kind => Err(ApiError::invalid(kind.to_string())),
            },
            Err(rejection) => Err(ApiError::invalid(rejection.body_text())),
        }
    }
}

/// The query string (axum's `Query`); a rejection is a 400 `invalid_argument` naming the field.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(ApiError::invalid(rejection.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_is_named_once() {
        let doubled = "Failed to deserialize the JSON body into the target type: jobs[0].job_id: job_id: too long";
        assert_eq!(
            name_field_once(doubled),
            "Failed to deserialize the JSON body into the target type: jobs[0].job_id: too long"
        );
        let once = "Failed to deserialize the JSON body into the target type: ids[2]: notification_id: too long";
        assert_eq!(name_field_once(once), once);
        assert_eq!(name_field_once("expected value at line 1"), "expected value at line 1");
    }

    #[test]
    fn json_content_types() {
        let check = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, v.parse().unwrap());
            is_json(&h)
        };
        assert!(check("application/json"));
        assert!(check("Application/JSON; charset=utf-8"));
        assert!(check("application/merge-patch+json"));
        assert!(!check("text/plain"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
