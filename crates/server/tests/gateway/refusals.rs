//! Refusals: bad tokens, revoked tokens, other users' channels, malformed and oversize frames.

use std::time::Duration;

use serde_json::json;
use switchboard_conformance::TestEngine;
use switchboard_core::{Timestamp, TokenId, UserId};

use crate::common::{Claims, Server, now_s, token};

pub(crate) async fn bad_tokens_are_refused_with_protocol_codes(t: TestEngine) {
    let server = Server::start(t).await;
    // Expired: error 109 so SDKs fetch a new token; the socket stays usable.
    let mut c = server.client().await;
    let expired = Claims { iat: now_s() - 7200, exp: now_s() - 3600, ..Claims::new("gina", "phone") }.sign();
    let reply = c.connect(&expired, json!({})).await;
    assert_eq!(reply["error"]["code"], json!(109), "{reply}");
    // Wrong key: closed with 3500 (invalid token, no reconnect).
    let mut c = server.client().await;
    let wrong = Claims::new("gina", "phone").sign_with("another-secret");
    c.send(json!({"connect": {"token": wrong}})).await;
    assert_eq!(c.closed().await, Some(3500));
    // alg: none.
    let header = base64_url(r#"{"alg":"none","typ":"JWT"}"#);
    let payload =
        base64_url(&format!(r#"{{"sub":"gina","device":"phone","iat":{},"exp":{}}}"#, now_s(), now_s() + 600));
    let mut c = server.client().await;
    c.send(json!({"connect": {"token": format!("{header}.{payload}.")}})).await;
    assert_eq!(c.closed().await, Some(3500));
    // Commands before connect are a protocol violation.
    let mut c = server.client().await;
    c.send(json!({"subscribe": {"channel": "chat:x"}})).await;
    assert_eq!(c.closed().await, Some(3501));
}

fn base64_url(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

pub(crate) async fn denied_and_revoked_tokens_are_refused(t: TestEngine) {
    let server = Server::start(t).await;
    let tokens = server.sb.tokens();
    tokens.deny(&TokenId::new("tok-denied").unwrap(), Timestamp::now().plus(Duration::from_secs(600))).await.unwrap();
    let mut c = server.client().await;
    let denied = Claims { jti: Some("tok-denied"), ..Claims::new("hank", "phone") }.sign();
    c.send(json!({"connect": {"token": denied}})).await;
    assert_eq!(c.closed().await, Some(3500));

    tokens.revoke_before(&UserId::new("ivy").unwrap(), None).await.unwrap();
    let mut c = server.client().await;
    c.send(json!({"connect": {"token": Claims { iat: now_s() - 60, ..Claims::new("ivy", "phone") }.sign()}})).await;
    assert_eq!(c.closed().await, Some(3500), "issued before the revoke time");
    // A session id that does not exist.
    let mut c = server.client().await;
    let sid = switchboard_core::SessionId::generate(&UserId::new("hank").unwrap()).unwrap();
    let with_sid = Claims { sid: Some(sid.as_str()), ..Claims::new("hank", "phone") }.sign();
    c.send(json!({"connect": {"token": with_sid}})).await;
    assert_eq!(c.closed().await, Some(3500));
}

pub(crate) async fn channels_of_others_are_refused(t: TestEngine) {
    let server = Server::start(t).await;
    let mut c = server.client().await;
    c.connect(&token("judy", "phone"), json!({})).await;
    for channel in ["user:mallory", "chat:secret", "presence:mallory", "nonsense:x", "user:judy"] {
        let id = c.send(json!({"subscribe": {"channel": channel}})).await;
        let reply = c.reply(id).await;
        let code = reply["error"]["code"].as_u64();
        let expected = match channel {
            "nonsense:x" => 102,
            "user:judy" => 105,
            _ => 103,
        };
        assert_eq!(code, Some(expected), "{channel}: {reply}");
    }
    let id = c.send(json!({"history": {"channel": "chat:secret", "limit": 10}})).await;
    assert_eq!(c.reply(id).await["error"]["code"], json!(103));
    let id = c.send(json!({"rpc": {"method": "presence.get", "data": {"user_ids": ["mallory"]}}})).await;
    assert_eq!(c.reply(id).await["error"]["code"], json!(103));
    let id = c.send(json!({"rpc": {"method": "typing", "data": {"conversation_id": "secret", "typing": true}}})).await;
    assert_eq!(c.reply(id).await["error"]["code"], json!(103));
    let id = c.send(json!({"rpc": {"method": "no.such.method", "data": {}}})).await;
    assert_eq!(c.reply(id).await["error"]["code"], json!(104));
    let id = c.send(json!({"publish": {"channel": "user:judy", "data": {}}})).await;
    assert_eq!(c.reply(id).await["error"]["code"], json!(103));
    // Contacts may see each other's presence.
    server
        .sb
        .presence()
        .set_contacts(&UserId::new("judy").unwrap(), &[UserId::new("ken").unwrap()], None)
        .await
        .unwrap();
    let id = c.send(json!({"subscribe": {"channel": "presence:ken"}})).await;
    assert!(c.reply(id).await.get("error").is_none());
    // Several users at once: all must be yourself or contacts, answered in the order asked.
    let id = c.send(json!({"rpc": {"method": "presence.get", "data": {"user_ids": ["judy", "ken", "mallory"]}}})).await;
    assert_eq!(c.reply(id).await["error"]["code"], json!(103));
    let id = c.send(json!({"rpc": {"method": "presence.get", "data": {"user_ids": ["ken", "judy"]}}})).await;
    let reply = c.reply(id).await;
    let presences = &reply["rpc"]["data"]["presences"];
    assert_eq!((&presences[0]["user_id"], &presences[1]["user_id"]), (&json!("ken"), &json!("judy")), "{reply}");
    assert_eq!((&presences[0]["online"], &presences[1]["online"]), (&json!(false), &json!(true)), "{reply}");
}

pub(crate) async fn malformed_and_oversize_frames_close_the_connection(t: TestEngine) {
    let server = Server::start(t).await;
    let mut c = server.client().await;
    c.connect(&token("leo", "phone"), json!({})).await;
    c.send_text("{not json").await;
    assert_eq!(c.closed().await, Some(3501));
    let mut c = server.client().await;
    c.connect(&token("leo", "phone"), json!({})).await;
    c.send_text(format!(r#"{{"id":9,"rpc":{{"method":"typing","data":"{}"}}}}"#, "x".repeat(70 * 1024))).await;
    let code = c.closed().await;
    assert!(matches!(code, Some(1009) | Some(3501)), "oversize frame closes: {code:?}");
}

pub(crate) async fn limits_hold_per_user_and_per_connection(t: TestEngine) {
    let gateway = switchboard_server::gateway::GatewayConfig {
        max_connections_per_user: 2,
        max_subscriptions: 2,
        ..switchboard_server::gateway::GatewayConfig::default()
    };
    let server = Server::start_with(t, gateway).await;
    let mut first = server.client().await;
    first.connect(&token("max", "phone"), json!({})).await;
    let mut second = server.client().await;
    second.connect(&token("max", "laptop"), json!({})).await;
    let mut third = server.client().await;
    third.send(json!({"connect": {"token": token("max", "tablet")}})).await;
    assert_eq!(third.closed().await, Some(3504), "connection limit");
    // The personal channel does not count: two subscriptions fit, the third does not.
    let contacts: Vec<UserId> = ["a", "b", "c"].iter().map(|u| UserId::new(*u).unwrap()).collect();
    server.sb.presence().set_contacts(&UserId::new("max").unwrap(), &contacts, None).await.unwrap();
    for channel in ["presence:a", "presence:b"] {
        let id = first.send(json!({"subscribe": {"channel": channel}})).await;
        assert!(first.reply(id).await.get("error").is_none(), "{channel} fits");
    }
    let id = first.send(json!({"subscribe": {"channel": "presence:c"}})).await;
    assert_eq!(first.reply(id).await["error"]["code"], json!(106));
    // Typing is rate limited per user (5 per second by default).
    let codes: Vec<Option<u64>> = {
        let mut codes = Vec::new();
        for _ in 0..8 {
            let id = first
                .send(json!({"rpc": {"method": "typing", "data": {"conversation_id": "nowhere", "typing": true}}}))
                .await;
            codes.push(first.reply(id).await["error"]["code"].as_u64());
        }
        codes
    };
    assert!(codes.contains(&Some(111)), "typing calls beyond the limit are refused: {codes:?}");
}

pub(crate) async fn shutdown_tells_clients_to_reconnect(t: TestEngine) {
    let server = Server::start(t).await;
    let mut c = server.client().await;
    c.connect(&token("nina", "phone"), json!({})).await;
    server.stop();
    assert_eq!(c.closed().await, Some(3001), "shutdown, reconnect elsewhere");
}
