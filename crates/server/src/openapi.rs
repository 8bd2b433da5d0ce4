//! The OpenAPI 3.1 document: generated from the handlers' `#[utoipa::path]` attributes, plus the
//! bearer security scheme, the answers every authenticated route can give (401, 503), and the
//! id rules (pattern and length) on every id schema and path or query parameter.

use switchboard_core::channel::NAMESPACES;
use switchboard_core::ids::{ID_PATTERN, LEASE_TOKEN_PATTERN, RATE_LIMIT_KEY_PATTERN, SESSION_ID_PATTERN};
use switchboard_core::limits::MAX_ID_BYTES;
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;
use crate::{health, metrics, routes as api};

/// Where the API is mounted.
pub(crate) const API_PREFIX: &str = "/api/v1";
/// Where the document is served.
pub(crate) const SPEC_PATH: &str = "/api/v1/openapi.json";
/// Name of the security scheme.
const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard HTTP API",
        description = "Real-time state for chat, social and notification apps, for app backends: \
sessions, revoked tokens, rate limits, devices, presence, contacts, typing, conversations, and \
publications on WebSocket channels with history and per-device offline delivery. Every \
`/api/v1` route needs `Authorization: Bearer <api key>`. Errors are `{\"error\": {\"code\", \
\"message\"}}`. A denied rate-limit check answers 200 with `\"allowed\": false`: it is the \
answer to the backend's question, not a limit on the backend.",
        license(name = "Apache-2.0"),
    ),
    tags(
        (name = "sessions", description = "Multi-device sessions with idle and absolute expiry"),
        (name = "tokens", description = "Token denylist and per-user revoke-before times"),
        (name = "rate-limits", description = "GCRA, sliding-window and sliding-log rate limits"),
        (name = "devices", description = "Device registry and backend heartbeats"),
        (name = "presence", description = "User presence and status, bulk queries, online users"),
        (name = "contacts", description = "Whose presence a user may see"),
        (name = "typing", description = "Typing indicators of conversation members"),
        (name = "pubsub", description = "Publish, broadcast, history, channel presence, pending/ack, disconnect"),
        (name = "conversations", description = "Conversations and their members (who may use `chat:` channels)"),
        (name = "messages", description = "Recent messages, receipts, per-user conversation lists and unread counters"),
        (name = "notifications", description = "Notifications with read/dismissed state synced across a user's devices"),
        (name = "cache", description = "Tagged cache: namespaces with TTLs, race-free tag invalidation, leases against stampedes, stale-while-revalidate"),
        (name = "jobs", description = "Job queues with priorities, delays, leases, retries, a dead set and schedules"),
        (name = "info", description = "Server identity and counts"),
        (name = "operations", description = "Health and metrics (no authentication)"),
    )
)]
struct ApiDoc;

/// The `/api/v1` routes (without authentication) and the public ones, with the document
/// describing them. `api` lets the caller add layers (authentication) to the API routes only.
pub(crate) fn assemble(api: OpenApiRouter<AppState>) -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let public = OpenApiRouter::new()
        .routes(routes!(health::health))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(health::component))
        .routes(routes!(metrics::render));
    let (router, mut doc) =
        OpenApiRouter::with_openapi(ApiDoc::openapi()).nest(API_PREFIX, api).merge(public).split_for_parts();
    finish(&mut doc);
    (router, doc)
}

/// The OpenAPI 3.1 document of the HTTP API, as served at `/api/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    assemble(api::api()).1
}

/// Adds the bearer scheme, marks `/api/v1` operations as needing it (and the others as open),
/// and documents the answers every authenticated operation can give: 401, 503 (and, with a
/// request body, 408, 413 and 415).
fn finish(doc: &mut utoipa::openapi::OpenApi) {
    stamp_id_rules(doc);
    let scheme = Http::builder()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some("An API key from the server's configuration (`SWITCHBOARD_API_KEYS`)."))
        .build();
    doc.components.get_or_insert_with(Default::default).add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
            .build()
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let secured = path.starts_with(&format!("{API_PREFIX}/"));
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for op in ops.into_iter().flatten() {
            set_security(op, secured);
            if secured {
                let responses = &mut op.responses.responses;
                responses.entry("401".into()).or_insert_with(|| error("Missing or invalid API key").into());
                responses.entry("503".into()).or_insert_with(|| {
                    error(
                        "`engine_unavailable`: the engine cannot be reached; `unavailable`: the request ran past \
                         `request_timeout_ms`, or the server is at its connection limit",
                    )
                    .into()
                });
                if op.request_body.is_some() {
                    responses
                        .entry("408".into())
                        .or_insert_with(|| error("The body did not arrive within `body_read_timeout_ms`").into());
                    responses.entry("413".into()).or_insert_with(|| error("The body is over `max_body_bytes`").into());
                    responses.entry("415".into()).or_insert_with(|| {
                        error("The body is not JSON (`Content-Type: application/json` or `application/*+json`)").into()
                    });
                }
            }
        }
    }
}

fn set_security(op: &mut Operation, secured: bool) {
    // An empty list means "no authentication" for the open routes.
    op.security = Some(if secured { vec![SecurityRequirement::new(BEARER, Vec::<String>::new())] } else { Vec::new() });
}

/// The pattern (which also bounds the length) of every id schema, by schema name.
fn schema_patterns() -> Vec<(&'static str, String)> {
    let mut rules: Vec<(&'static str, String)> = [
        "UserId",
        "DeviceId",
        "ConversationId",
        "NotificationId",
        "MessageId",
        "TokenId",
        "QueueName",
        "JobType",
        "JobId",
        "ScheduleName",
    ]
    .into_iter()
    .map(|name| (name, ID_PATTERN.to_owned()))
    .collect();
    rules.push(("RateLimitKey", RATE_LIMIT_KEY_PATTERN.to_owned()));
    rules.push(("SessionId", SESSION_ID_PATTERN.to_owned()));
    rules.push(("LeaseToken", LEASE_TOKEN_PATTERN.to_owned()));
    rules.push(("ChannelName", channel_pattern()));
    rules
}

/// The pattern of a query parameter that names an id but is read as a plain string (path
/// parameters are typed: their schemas are the id schemas).
fn query_pattern(name: &str) -> Option<&'static str> {
    match name {
        "source_device" => Some(ID_PATTERN),
        "except" => Some(SESSION_ID_PATTERN),
        "key" => Some(RATE_LIMIT_KEY_PATTERN),
        _ => None,
    }
}

/// `<namespace>:<id>` with the namespaces a caller may name.
fn channel_pattern() -> String {
    let namespaces: Vec<&str> = NAMESPACES.iter().map(|(ns, _)| *ns).collect();
    format!("^({}):[A-Za-z0-9._:@-]{{1,{MAX_ID_BYTES}}}$", namespaces.join("|"))
}

fn pattern_schema(pattern: &str) -> Schema {
    Schema::Object(
        ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).pattern(Some(pattern.to_owned())).build(),
    )
}

/// Puts the id rules on the id schemas and the id parameters, so clients and generators see
/// what the server accepts.
fn stamp_id_rules(doc: &mut utoipa::openapi::OpenApi) {
    if let Some(components) = doc.components.as_mut() {
        for (name, pattern) in schema_patterns() {
            if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) {
                object.pattern = Some(pattern);
                object.min_length = Some(1);
            }
        }
    }
    for item in doc.paths.paths.values_mut() {
        let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for op in ops.into_iter().flatten() {
            for param in op.parameters.iter_mut().flatten() {
                if let (ParameterIn::Query, Some(pattern)) = (&param.parameter_in, query_pattern(&param.name)) {
                    param.schema = Some(RefOr::T(pattern_schema(pattern)));
                }
            }
        }
    }
}
