//! Client connection tokens: [`TokenVerifier`] checks a JWT's signature with the one configured
//! algorithm and key and returns its [`ClientClaims`].
//!
//! Only the token itself is checked here. The denylist (`jti`), the user's revoke-before time and
//! the `sid` session belong to the connect handler, which calls the core services with the
//! claims returned.

use std::fmt;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use switchboard_core::{DeviceId, SessionId, Timestamp, TokenId, UserId};

use super::codes::{DisconnectCode, ErrorCode};
use super::protocol::RawJson;

/// Longest token accepted, in bytes; longer input is refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Default allowance for clock skew when checking `exp` (and `nbf`).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

/// The key client tokens are signed with, and so the only algorithm accepted.
#[derive(Clone)]
pub enum TokenKey {
    /// HS256 with a shared secret.
    Hs256(String),
    /// RS256; the RSA public key in PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`).
    Rs256(String),
    /// ES256; the P-256 public key in PEM (`PUBLIC KEY`).
    Es256(String),
}

impl TokenKey {
    /// The algorithm's JOSE name.
    pub fn algorithm(&self) -> &'static str {
        match self {
            TokenKey::Hs256(_) => "HS256",
            TokenKey::Rs256(_) => "RS256",
            TokenKey::Es256(_) => "ES256",
        }
    }
}

impl fmt::Debug for TokenKey {
    // The secret never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenKey::Hs256(_) => f.write_str("Hs256(<redacted>)"),
            TokenKey::Rs256(_) => f.write_str("Rs256(<public key>)"),
            TokenKey::Es256(_) => f.write_str("Es256(<public key>)"),
        }
    }
}

/// A [`TokenKey`] that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenKeyError {
    /// The HS256 secret is empty.
    #[error("token: the HS256 secret must not be empty")]
    EmptySecret,
    /// The PEM text is not a public key of the algorithm's kind.
    #[error("token: the {algorithm} public key is not a valid PEM public key")]
    BadPublicKey {
        /// `RS256` or `ES256`.
        algorithm: &'static str,
    },
}

/// The claims of a verified client token that the gateway uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientClaims {
    /// `sub`: the user.
    pub user: UserId,
    /// `device`: the device the connection belongs to.
    pub device: DeviceId,
    /// `sid`: the session the token belongs to; when present it must exist (checked at connect).
    pub session: Option<SessionId>,
    /// `jti`: the token's id, checked against the denylist.
    pub token_id: Option<TokenId>,
    /// The token's digest ([`switchboard_core::denylist::token_digest`]), checked against the
    /// denylist too: an app may deny the whole token rather than its `jti`.
    pub digest: TokenId,
    /// `iat`: when it was issued, checked against the user's revoke-before time.
    pub issued_at: Timestamp,
    /// `exp`: when it expires.
    pub expires_at: Timestamp,
    /// `info`: optional connection info shown to others (presence, join/leave).
    pub info: Option<RawJson>,
}

impl ClientClaims {
    /// Whole seconds from `now` until the token expires (0 when past), for the connect result's
    /// `ttl`.
    pub fn ttl_seconds(&self, now: Timestamp) -> u32 {
        let ms = now.millis_until(self.expires_at);
        u32::try_from(ms / 1000).unwrap_or(u32::MAX)
    }
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Correctly signed but expired (or not valid yet): the SDK should fetch a new token.
    #[error("token expired")]
    Expired,
    /// Anything else: the token cannot be used, and trying again with it will not help.
    #[error("invalid token: {0}")]
    Invalid(InvalidToken),
}

impl TokenError {
    /// The error code for the connect (or refresh) reply: [`ErrorCode::TokenExpired`] (109) for
    /// an expired token, so SDKs get a new one and reconnect; [`ErrorCode::Unauthorized`] (101)
    /// otherwise, which SDKs do not retry.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            TokenError::Expired => ErrorCode::TokenExpired,
            TokenError::Invalid(_) => ErrorCode::Unauthorized,
        }
    }

    /// How the reference server (Centrifugo) ends the connection instead of replying: `None`
    /// for an expired token (it replies with 109), [`DisconnectCode::InvalidToken`] (3500,
    /// terminal) for an invalid one.
    pub fn disconnect(&self) -> Option<DisconnectCode> {
        match self {
            TokenError::Expired => None,
            TokenError::Invalid(_) => Some(DisconnectCode::InvalidToken),
        }
    }
}

/// What is wrong with an invalid token; for logs only, the client is told "invalid token".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidToken {
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("too long")]
    TooLong,
    /// Not a JWT (shape, base64, JSON header).
    #[error("malformed")]
    Malformed,
    /// Signed with another algorithm than the configured one (including `none`).
    #[error("wrong algorithm")]
    WrongAlgorithm,
    /// The signature does not verify with the configured key.
    #[error("bad signature")]
    BadSignature,
    /// A claim is missing or malformed; names the claim.
    #[error("claim {0} missing or invalid")]
    Claim(&'static str),
}

/// Verifies client tokens with one algorithm and key; cheap to clone into every connection task.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
    algorithm: &'static str,
    leeway: Duration,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier").field("algorithm", &self.algorithm).field("leeway", &self.leeway).finish()
    }
}

impl TokenVerifier {
    /// A verifier for tokens signed with `key`, with [`DEFAULT_LEEWAY`].
    pub fn new(key: &TokenKey) -> Result<Self, TokenKeyError> {
        let algorithm = key.algorithm();
        let (decoding, alg) = match key {
            TokenKey::Hs256(secret) if secret.is_empty() => return Err(TokenKeyError::EmptySecret),
            TokenKey::Hs256(secret) => (DecodingKey::from_secret(secret.as_bytes()), Algorithm::HS256),
            // A private key is refused too: jsonwebtoken would take it and then fail every token.
            TokenKey::Rs256(pem) if pem.contains("PUBLIC KEY-----") => (
                DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| TokenKeyError::BadPublicKey { algorithm })?,
                Algorithm::RS256,
            ),
            TokenKey::Es256(pem) if pem.contains("PUBLIC KEY-----") => (
                DecodingKey::from_ec_pem(pem.as_bytes()).map_err(|_| TokenKeyError::BadPublicKey { algorithm })?,
                Algorithm::ES256,
            ),
            TokenKey::Rs256(_) | TokenKey::Es256(_) => return Err(TokenKeyError::BadPublicKey { algorithm }),
        };
        // Only the signature and the algorithm are left to jsonwebtoken: the time claims are
        // checked below against an explicit clock, so that expiry is its own error (code 109).
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        Ok(TokenVerifier { key: decoding, validation, algorithm, leeway: DEFAULT_LEEWAY })
    }

    /// The same verifier with another clock-skew allowance for `exp` and `nbf`.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The accepted algorithm's JOSE name.
    pub fn algorithm(&self) -> &'static str {
        self.algorithm
    }

    /// Verifies `token` now.
    pub fn verify(&self, token: &str) -> Result<ClientClaims, TokenError> {
        self.verify_at(token, Timestamp::now())
    }

    /// Verifies `token` as of `now`: algorithm, signature, then claims. Expiry is reported only
    /// for correctly signed tokens.
    pub fn verify_at(&self, token: &str, now: Timestamp) -> Result<ClientClaims, TokenError> {
        let invalid = TokenError::Invalid;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid(InvalidToken::TooLong));
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation).map_err(|e| {
            invalid(match e.kind() {
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::MissingAlgorithm => {
                    InvalidToken::WrongAlgorithm
                }
                ErrorKind::InvalidSignature => InvalidToken::BadSignature,
                _ => InvalidToken::Malformed,
            })
        })?;
        let claims = data.claims;

        let leeway_ms = i64::try_from(self.leeway.as_millis()).unwrap_or(i64::MAX);
        let expires_at = numeric_date(&claims, "exp")?.ok_or(invalid(InvalidToken::Claim("exp")))?;
        if now.as_millis() >= expires_at.as_millis().saturating_add(leeway_ms) {
            return Err(TokenError::Expired);
        }
        // As Centrifugo does, a token that is not valid yet counts as expired: the SDK asks for a
        // new one.
        if let Some(not_before) = numeric_date(&claims, "nbf")?
            && now.as_millis().saturating_add(leeway_ms) < not_before.as_millis()
        {
            return Err(TokenError::Expired);
        }
        // `iat` is required: without it a revoke-before time could not apply to the token.
        let issued_at = numeric_date(&claims, "iat")?.ok_or(invalid(InvalidToken::Claim("iat")))?;

        let user = string_claim(&claims, "sub")?.and_then(|s| UserId::new(s).ok());
        let device = string_claim(&claims, "device")?.and_then(|s| DeviceId::new(s).ok());
        let session = string_claim(&claims, "sid")?.map(|s| SessionId::new(s).map_err(|_| invalid_claim("sid")));
        let token_id = string_claim(&claims, "jti")?.map(|s| TokenId::new(s).map_err(|_| invalid_claim("jti")));
        let info = match claims.get("info") {
            None | Some(Value::Null) => None,
            Some(v) => Some(RawJson::to_json(v).map_err(|_| invalid_claim("info"))?),
        };
        Ok(ClientClaims {
            user: user.ok_or(invalid_claim("sub"))?,
            device: device.ok_or(invalid_claim("device"))?,
            session: session.transpose()?,
            token_id: token_id.transpose()?,
            digest: switchboard_core::denylist::token_digest(token).map_err(|_| invalid(InvalidToken::TooLong))?,
            issued_at,
            expires_at,
            info,
        })
    }
}

fn invalid_claim(name: &'static str) -> TokenError {
    TokenError::Invalid(InvalidToken::Claim(name))
}

/// A JWT NumericDate (seconds since the epoch, integer or fraction) as a timestamp; `None` when
/// absent or null.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<Timestamp>, TokenError> {
    let secs = match claims.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64().filter(|s| s.is_finite() && *s >= 0.0),
        Some(_) => None,
    };
    // Up to year ~292 million in ms fits i64; anything beyond is not a real date.
    match secs {
        Some(s) if s < 9.0e15 => Ok(Some(Timestamp::from_millis((s * 1000.0) as i64))),
        _ => Err(invalid_claim(name)),
    }
}

/// A string claim; `None` when absent or null, an error when of another type.
fn string_claim<'a>(claims: &'a Map<String, Value>, name: &'static str) -> Result<Option<&'a str>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid_claim(name)),
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::*;

    const SECRET: &str = "test-secret-0123456789";
    const NOW_S: i64 = 1_800_000_000;

    fn now() -> Timestamp {
        Timestamp::from_millis(NOW_S * 1000)
    }

    fn hs256(claims: &Value) -> String {
        encode(&Header::default(), claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap_or_default()
    }

    fn verifier() -> TokenVerifier {
        TokenVerifier::new(&TokenKey::Hs256(SECRET.into())).unwrap_or_else(|e| panic!("{e}"))
    }

    fn base() -> Value {
        json!({"sub": "alice", "device": "phone-1", "iat": NOW_S - 10, "exp": NOW_S + 600})
    }

    #[test]
    fn minimal_token() {
        let claims = verifier().verify_at(&hs256(&base()), now()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(claims.user.as_str(), "alice");
        assert_eq!(claims.device.as_str(), "phone-1");
        assert_eq!(claims.session, None);
        assert_eq!(claims.token_id, None);
        assert_eq!(claims.issued_at, Timestamp::from_millis((NOW_S - 10) * 1000));
        assert_eq!(claims.ttl_seconds(now()), 600);
    }

    #[test]
    fn leeway_applies_to_exp() {
        let mut c = base();
        c["exp"] = json!(NOW_S - 3);
        assert!(verifier().verify_at(&hs256(&c), now()).is_ok());
        assert_eq!(verifier().with_leeway(Duration::ZERO).verify_at(&hs256(&c), now()), Err(TokenError::Expired));
        c["exp"] = json!(NOW_S - 5);
        assert_eq!(verifier().verify_at(&hs256(&c), now()), Err(TokenError::Expired));
    }

    #[test]
    fn fractional_dates_and_nbf() {
        let mut c = base();
        c["exp"] = json!(NOW_S as f64 + 60.5);
        assert!(verifier().verify_at(&hs256(&c), now()).is_ok());
        c["nbf"] = json!(NOW_S + 60);
        assert_eq!(verifier().verify_at(&hs256(&c), now()), Err(TokenError::Expired));
    }

    #[test]
    fn claims_are_validated() {
        let cases: [(&str, Value, &str); 9] = [
            ("sub", json!("bad user!"), "sub"),
            ("sub", Value::Null, "sub"),
            ("device", json!(7), "device"),
            ("sid", json!("not-a-session"), "sid"),
            ("jti", json!(""), "jti"),
            ("iat", Value::Null, "iat"),
            ("iat", json!("yesterday"), "iat"),
            ("exp", json!(-1), "exp"),
            ("exp", Value::Null, "exp"),
        ];
        for (field, value, named) in cases {
            let mut c = base();
            c[field] = value;
            assert_eq!(
                verifier().verify_at(&hs256(&c), now()),
                Err(TokenError::Invalid(InvalidToken::Claim(named))),
                "{field}"
            );
        }
    }

    #[test]
    fn errors_map_to_protocol_codes() {
        assert_eq!(TokenError::Expired.error_code().code(), 109);
        assert_eq!(TokenError::Expired.disconnect(), None);
        let invalid = TokenError::Invalid(InvalidToken::BadSignature);
        assert_eq!(invalid.error_code().code(), 101);
        assert_eq!(invalid.disconnect().map(DisconnectCode::code), Some(3500));
        assert!(!invalid.error_code().reconnect());
        assert!(TokenError::Expired.error_code().reconnect());
    }

    #[test]
    fn keys_are_checked_and_redacted() {
        assert_eq!(TokenVerifier::new(&TokenKey::Hs256(String::new())).err(), Some(TokenKeyError::EmptySecret));
        assert_eq!(
            TokenVerifier::new(&TokenKey::Rs256("not a pem".into())).err(),
            Some(TokenKeyError::BadPublicKey { algorithm: "RS256" })
        );
        assert_eq!(format!("{:?}", TokenKey::Hs256("hunter2".into())), "Hs256(<redacted>)");
        assert!(!format!("{:?}", verifier()).contains(SECRET));
    }

    #[test]
    fn oversized_and_garbage_tokens() {
        let v = verifier();
        assert_eq!(
            v.verify_at(&"a".repeat(MAX_TOKEN_BYTES + 1), now()),
            Err(TokenError::Invalid(InvalidToken::TooLong))
        );
        for garbage in ["", ".", "..", "a.b.c", "a.b", "ey.ey.ey", "\u{0}\u{1}"] {
            assert!(matches!(v.verify_at(garbage, now()), Err(TokenError::Invalid(_))), "{garbage:?}");
        }
    }
}
