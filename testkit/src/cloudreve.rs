//! A mock Cloudreve v4 server: `POST /api/v4/session/token/refresh`,
//! sign-out and one authorized route, answering as Cloudreve does.
//!
//! Every answer is HTTP 200 with the envelope
//! `{"code", "data"?, "msg", "error"?, "correlation_id"?}`; `code == 0` is
//! success. Refresh tokens do not rotate: a refresh issues a new pair, and
//! the old refresh token stays valid until it expires or the session is
//! signed out.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::{OffsetDateTime, UtcOffset};

use crate::clock::{Now, exp_passed, system_clock, unix_secs};
use crate::ids;
use crate::jwt;
use crate::server::{
    self, MockServer, Provider, authorization, common_methods, json_response, lock,
};

/// `POST` — the refresh route, body `{"refresh_token": "..."}`.
pub const REFRESH_ROUTE: &str = "/api/v4/session/token/refresh";
/// `DELETE` — sign out, body `{"refresh_token": "..."}`.
pub const SIGN_OUT_ROUTE: &str = "/api/v4/session/token";
/// `GET` — an authorized route (`Authorization: Bearer <access_token>`).
pub const ME_ROUTE: &str = "/api/v4/user/me";

/// Envelope code of success.
pub const CODE_OK: i64 = 0;
/// Envelope code of a missing or malformed parameter.
pub const CODE_PARAM_ERROR: i64 = 40001;
/// Envelope code of any refresh failure.
pub const CODE_TOKEN_PAIR_FAILED: i64 = 40020;
/// Envelope code of a route needing login called without a valid access token.
pub const CODE_LOGIN_REQUIRED: i64 = 401;

const CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// A session's tokens, as the refresh route's `data` holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudreveTokens {
    /// The access JWT, sent as `Authorization: Bearer`.
    pub access_token: String,
    /// The refresh JWT, sent in the refresh body.
    pub refresh_token: String,
    /// When the access token expires.
    pub access_expires: SystemTime,
    /// When the refresh token expires.
    pub refresh_expires: SystemTime,
}

/// A mock Cloudreve v4 server on `127.0.0.1`; it stops when dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use refresh_endpoint_testkit::CloudreveMock;
///
/// let cloud = CloudreveMock::start().await;
/// let tokens = cloud.issue_tokens("alice");
/// let envelope: serde_json::Value = reqwest::Client::new()
///     .post(format!("{}/api/v4/session/token/refresh", cloud.url()))
///     .json(&serde_json::json!({"refresh_token": tokens.refresh_token}))
///     .send()
///     .await
///     .unwrap()
///     .json()
///     .await
///     .unwrap();
/// assert_eq!(envelope["code"], 0);
/// assert!(envelope["data"]["access_expires"].as_str().unwrap().ends_with("+08:00"));
/// # }
/// ```
pub struct CloudreveMock {
    server: MockServer,
    inner: Arc<Inner>,
}

/// Configures a [`CloudreveMock`] before starting it.
#[must_use = "a builder does nothing until `.start().await`"]
pub struct CloudreveMockBuilder {
    clock: Now,
    access_ttl: Duration,
    refresh_ttl: Duration,
    utc_offset: UtcOffset,
    debug: bool,
}

impl Default for CloudreveMockBuilder {
    fn default() -> Self {
        Self {
            clock: system_clock(),
            access_ttl: Duration::from_secs(60 * 60),
            refresh_ttl: Duration::from_secs(14 * 24 * 60 * 60),
            utc_offset: UtcOffset::from_whole_seconds(8 * 60 * 60).unwrap_or(UtcOffset::UTC),
            debug: false,
        }
    }
}

impl CloudreveMockBuilder {
    /// The clock the mock judges expiry with (default: the wall clock).
    pub fn clock(mut self, now: Now) -> Self {
        self.clock = now;
        self
    }

    /// Access token lifetime (default: 1 hour).
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// Refresh token lifetime (default: 2 weeks).
    pub fn refresh_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_ttl = ttl;
        self
    }

    /// The server's local UTC offset, used in `access_expires` and
    /// `refresh_expires` (default: `+08:00`; UTC is written `Z`).
    pub fn utc_offset(mut self, offset: UtcOffset) -> Self {
        self.utc_offset = offset;
        self
    }

    /// Debug mode: error envelopes carry an `error` detail (default: off,
    /// as in production).
    pub fn debug(mut self, debug: bool) -> Self {
        self.debug = debug;
        self
    }

    /// Starts the mock on `127.0.0.1:0` in the current tokio runtime.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound; see [`try_start`](Self::try_start).
    pub async fn start(self) -> CloudreveMock {
        server::started("Cloudreve", self.try_start().await)
    }

    /// Starts the mock on `127.0.0.1:0`, reporting a bind failure.
    pub async fn try_start(self) -> io::Result<CloudreveMock> {
        let listener = MockServer::bind().await?;
        let inner = Arc::new(Inner {
            clock: self.clock,
            secret: ids::random_bytes(32),
            access_ttl: self.access_ttl,
            refresh_ttl: self.refresh_ttl,
            utc_offset: self.utc_offset,
            debug: self.debug,
            state: Mutex::default(),
        });
        let router = Router::new()
            .route(REFRESH_ROUTE, post(refresh))
            .route(SIGN_OUT_ROUTE, delete(sign_out))
            .route(ME_ROUTE, get(me))
            .with_state(Arc::clone(&inner));
        let provider = Provider {
            is_refresh: |path| path == REFRESH_ROUTE,
            rate_limited: |_| {
                json_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    CONTENT_TYPE,
                    &json!({"code": 429, "msg": "Too many requests"}),
                )
            },
        };
        Ok(CloudreveMock {
            server: MockServer::spawn(listener, router, provider)?,
            inner,
        })
    }
}

impl CloudreveMock {
    /// Starts a mock with the defaults: wall clock, 1 h access tokens,
    /// 2 week refresh tokens, `+08:00` timestamps.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// A builder to set the clock, token lifetimes, UTC offset and debug mode.
    pub fn builder() -> CloudreveMockBuilder {
        CloudreveMockBuilder::default()
    }

    common_methods!("/api/v4/session/token/refresh");

    /// The HS256 secret every token is signed with.
    pub fn jwt_secret(&self) -> &[u8] {
        &self.inner.secret
    }

    /// Logs `user` (a nickname; the user is created on first use) in,
    /// directly, without HTTP: a new session and its first token pair.
    pub fn issue_tokens(&self, user: &str) -> CloudreveTokens {
        let mut state = lock(&self.inner.state);
        let id = match state.users.iter().find(|(_, u)| u.nickname == user) {
            Some((id, _)) => id.clone(),
            None => {
                let id = loop {
                    let id = ids::random_string(4, ids::ALNUM_LOWER);
                    if !state.users.contains_key(&id) {
                        break id;
                    }
                };
                state.users.insert(id.clone(), User::new(user));
                id
            }
        };
        state.next_session += 1;
        let session = state.next_session;
        let tokens = self.inner.mint(&mut state, &id, session);
        // Tokens carry no unique id (as Cloudreve's): minted in the same
        // second for the same user they are identical, and the new login
        // takes the token over.
        state.sessions.insert(tokens.refresh_token.clone(), session);
        tokens
    }

    /// Signs the session of `refresh_token` out, as `DELETE
    /// /api/v4/session/token` does: every refresh token of that session stops
    /// working. Returns whether the token belonged to a session.
    pub fn sign_out(&self, refresh_token: &str) -> bool {
        let mut state = lock(&self.inner.state);
        match state.sessions.get(refresh_token).copied() {
            Some(session) => {
                state.signed_out.insert(session);
                true
            }
            None => false,
        }
    }

    /// Changes `user`'s password: every refresh token the user holds stops
    /// working (Cloudreve binds them to a hash of the password). Returns
    /// whether the user exists.
    pub fn change_password(&self, user: &str) -> bool {
        let mut state = lock(&self.inner.state);
        match state.users.values_mut().find(|u| u.nickname == user) {
            Some(found) => {
                found.state_hash = random_state_hash();
                true
            }
            None => false,
        }
    }
}

impl fmt::Debug for CloudreveMock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudreveMock")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

struct Inner {
    clock: Now,
    secret: Vec<u8>,
    access_ttl: Duration,
    refresh_ttl: Duration,
    utc_offset: UtcOffset,
    debug: bool,
    state: Mutex<CrState>,
}

#[derive(Default)]
struct CrState {
    /// By user id (a short hashid such as `lpua`).
    users: HashMap<String, User>,
    /// The session each issued refresh token belongs to.
    sessions: HashMap<String, u64>,
    signed_out: HashSet<u64>,
    next_session: u64,
}

struct User {
    nickname: String,
    state_hash: String,
}

impl User {
    fn new(nickname: &str) -> Self {
        Self {
            nickname: nickname.to_owned(),
            state_hash: random_state_hash(),
        }
    }
}

fn random_state_hash() -> String {
    STANDARD.encode(Sha256::digest(ids::random_bytes(32)))
}

impl Inner {
    fn now(&self) -> SystemTime {
        (self.clock)()
    }

    /// Mints a token pair for `user_id` in `session` and records it.
    fn mint(&self, state: &mut CrState, user_id: &str, session: u64) -> CloudreveTokens {
        let now = self.now();
        let access_expires = now + self.access_ttl;
        let refresh_expires = now + self.refresh_ttl;
        let header = json!({"alg": "HS256", "typ": "JWT"});
        let access_token = jwt::sign(
            &self.secret,
            &header,
            &json!({
                "token_type": "access",
                "sub": user_id,
                "exp": unix_secs(access_expires),
                "nbf": unix_secs(now),
            }),
        );
        let state_hash = state
            .users
            .get(user_id)
            .map(|u| u.state_hash.clone())
            .unwrap_or_default();
        let refresh_token = jwt::sign(
            &self.secret,
            &header,
            &json!({
                "token_type": "refresh",
                "sub": user_id,
                "exp": unix_secs(refresh_expires),
                "nbf": unix_secs(now),
                "state_hash": state_hash,
            }),
        );
        state
            .sessions
            .entry(refresh_token.clone())
            .or_insert(session);
        CloudreveTokens {
            access_token,
            refresh_token,
            access_expires,
            refresh_expires,
        }
    }

    /// Refreshes with `refresh_token`, or says why not (the `error` detail).
    fn refresh(&self, refresh_token: &str) -> Result<CloudreveTokens, &'static str> {
        let claims =
            jwt::verify(&self.secret, refresh_token).map_err(|_| "token signature is invalid")?;
        if claims.get("token_type").and_then(Value::as_str) != Some("refresh") {
            return Err("not a refresh token");
        }
        match claims.get("exp").and_then(Value::as_u64) {
            Some(exp) if !exp_passed(exp, self.now()) => {}
            _ => return Err("token is expired"),
        }
        let user_id = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or("token has no subject")?;
        let mut state = lock(&self.state);
        let user = state.users.get(user_id).ok_or("user not found")?;
        if claims.get("state_hash").and_then(Value::as_str) != Some(user.state_hash.as_str()) {
            return Err("token state mismatch: password changed");
        }
        let session = match state.sessions.get(refresh_token).copied() {
            Some(session) if state.signed_out.contains(&session) => return Err("token is revoked"),
            Some(session) => session,
            // A valid token minted outside this mock (e.g. with `jwt_secret`):
            // give it a session of its own.
            None => {
                state.next_session += 1;
                state.next_session
            }
        };
        state
            .sessions
            .entry(refresh_token.to_owned())
            .or_insert(session);
        Ok(self.mint(&mut state, user_id, session))
    }

    /// The user behind a valid access token.
    fn authorize(&self, headers: &HeaderMap) -> Option<(String, String)> {
        let token = authorization(headers)?
            .ok()?
            .strip_prefix("Bearer ")?
            .trim();
        let claims = jwt::verify(&self.secret, token).ok()?;
        if claims.get("token_type").and_then(Value::as_str) != Some("access") {
            return None;
        }
        let exp = claims.get("exp").and_then(Value::as_u64)?;
        if exp_passed(exp, self.now()) {
            return None;
        }
        let user_id = claims.get("sub").and_then(Value::as_str)?;
        let state = lock(&self.state);
        let user = state.users.get(user_id)?;
        Some((user_id.to_owned(), user.nickname.clone()))
    }

    /// An RFC 3339 timestamp with microseconds in the server's offset, as Go
    /// prints `2025-04-26T15:58:28.456762+08:00`.
    fn timestamp(&self, at: SystemTime) -> String {
        rfc3339_micros(OffsetDateTime::from(at).to_offset(self.utc_offset))
    }

    fn envelope_error(&self, code: i64, msg: &str, detail: &str, correlation: bool) -> Response {
        let mut body = json!({"code": code, "msg": msg});
        if self.debug {
            body["error"] = json!(detail);
        }
        if correlation {
            body["correlation_id"] = json!(ids::uuid_v4());
        }
        json_response(StatusCode::OK, CONTENT_TYPE, &body)
    }
}

fn rfc3339_micros(t: OffsetDateTime) -> String {
    let offset = t.offset();
    let zone = if offset.is_utc() {
        "Z".to_owned()
    } else {
        let (h, m, _) = offset.as_hms();
        let sign = if offset.is_negative() { '-' } else { '+' };
        format!("{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}{zone}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// The `refresh_token` field of a body, as Cloudreve's binding reads it.
fn refresh_token_param(body: &[u8]) -> Result<String, (&'static str, &'static str)> {
    const PARAM: &str = "Parameter error";
    let value: Value =
        serde_json::from_slice(body).map_err(|_| (PARAM, "body is not valid JSON"))?;
    let Value::Object(fields) = value else {
        return Err((PARAM, "body is not a JSON object"));
    };
    match fields.get("refresh_token") {
        None | Some(Value::Null) => {
            Err(("RefreshToken cannot be empty", "refresh_token is required"))
        }
        Some(Value::String(token)) if token.is_empty() => {
            Err(("RefreshToken cannot be empty", "refresh_token is required"))
        }
        Some(Value::String(token)) => Ok(token.clone()),
        Some(_) => Err((PARAM, "refresh_token must be a string")),
    }
}

async fn refresh(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let token = match refresh_token_param(&body) {
        Ok(token) => token,
        Err((msg, detail)) => return inner.envelope_error(CODE_PARAM_ERROR, msg, detail, false),
    };
    match inner.refresh(&token) {
        Ok(tokens) => json_response(
            StatusCode::OK,
            CONTENT_TYPE,
            &json!({
                "data": {
                    "access_token": tokens.access_token,
                    "access_expires": inner.timestamp(tokens.access_expires),
                    "refresh_token": tokens.refresh_token,
                    "refresh_expires": inner.timestamp(tokens.refresh_expires),
                },
                "code": CODE_OK,
                "msg": "",
            }),
        ),
        Err(detail) => inner.envelope_error(
            CODE_TOKEN_PAIR_FAILED,
            "Failed to issue token pair",
            detail,
            true,
        ),
    }
}

async fn sign_out(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let token = match refresh_token_param(&body) {
        Ok(token) => token,
        Err((msg, detail)) => return inner.envelope_error(CODE_PARAM_ERROR, msg, detail, false),
    };
    {
        let mut state = lock(&inner.state);
        if let Some(session) = state.sessions.get(&token).copied() {
            state.signed_out.insert(session);
        }
    }
    json_response(
        StatusCode::OK,
        CONTENT_TYPE,
        &json!({"code": CODE_OK, "msg": ""}),
    )
}

async fn me(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    match inner.authorize(&headers) {
        Some((id, nickname)) => json_response(
            StatusCode::OK,
            CONTENT_TYPE,
            &json!({
                "data": {"id": id, "nickname": nickname},
                "code": CODE_OK,
                "msg": "",
            }),
        ),
        None => inner.envelope_error(
            CODE_LOGIN_REQUIRED,
            "Login required",
            "access token is missing or invalid",
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_look_like_go_rfc3339_with_micros() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_745_654_308_456_762_000).unwrap();
        let eight = UtcOffset::from_hms(8, 0, 0).unwrap();
        assert_eq!(
            rfc3339_micros(at.to_offset(eight)),
            "2025-04-26T15:58:28.456762+08:00"
        );
        assert_eq!(rfc3339_micros(at), "2025-04-26T07:58:28.456762Z");
        let minus = UtcOffset::from_hms(-3, -30, 0).unwrap();
        assert_eq!(
            rfc3339_micros(at.to_offset(minus)),
            "2025-04-26T04:28:28.456762-03:30"
        );
    }

    #[test]
    fn refresh_token_param_follows_the_binding() {
        assert_eq!(
            refresh_token_param(br#"{"refresh_token":"x"}"#),
            Ok("x".to_owned())
        );
        assert_eq!(
            refresh_token_param(b"{}").unwrap_err().0,
            "RefreshToken cannot be empty"
        );
        assert_eq!(
            refresh_token_param(br#"{"refresh_token":""}"#)
                .unwrap_err()
                .0,
            "RefreshToken cannot be empty"
        );
        assert_eq!(
            refresh_token_param(br#"{"refresh_token":null}"#)
                .unwrap_err()
                .0,
            "RefreshToken cannot be empty"
        );
        assert_eq!(
            refresh_token_param(br#"{"refresh_token":5}"#)
                .unwrap_err()
                .0,
            "Parameter error"
        );
        assert_eq!(
            refresh_token_param(b"refresh_token=x").unwrap_err().0,
            "Parameter error"
        );
        assert_eq!(refresh_token_param(b"[]").unwrap_err().0, "Parameter error");
    }
}
