//! A mock Clerk Backend API: "Refresh a session"
//! (`POST /v1/sessions/{session_id}/refresh`) and one authorized route.
//!
//! The refresh route is called by a backend with the instance's secret key
//! (`Authorization: Bearer sk_test_…`) and a JSON body naming the expired
//! session JWT, the session's refresh token and the request origin. It
//! answers `{"object": "token", "jwt": …}` or, with `"format": "cookie"`,
//! `{"object": "cookies", "cookies": [<Set-Cookie directives>]}`. Errors use
//! Clerk's envelope `{"errors": [{"message", "long_message", "code",
//! "meta"?}], "clerk_trace_id"}`. The refresh token does not rotate.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::clock::{Now, exp_passed, system_clock, unix_secs};
use crate::ids;
use crate::jwt;
use crate::server::{
    self, MockServer, Provider, authorization, common_methods, json_response, lock,
};

/// `POST` — the refresh route, with the session id in place of `{session_id}`.
pub const REFRESH_ROUTE: &str = "/v1/sessions/{session_id}/refresh";
/// `GET` — an authorized route standing in for the app's own API
/// (`Authorization: Bearer <session JWT>`).
pub const ME_ROUTE: &str = "/v1/me";

const CONTENT_TYPE: &str = "application/json";
const REQUIRED: [&str; 3] = ["expired_token", "refresh_token", "request_origin"];
const OPTIONAL: [&str; 3] = ["request_headers", "format", "request_originating_ip"];

/// The refresh route's path for one session: `/v1/sessions/{id}/refresh`.
///
/// ```
/// assert_eq!(
///     refresh_endpoint_testkit::clerk::refresh_path("sess_123"),
///     "/v1/sessions/sess_123/refresh"
/// );
/// ```
pub fn refresh_path(session_id: &str) -> String {
    format!("/v1/sessions/{session_id}/refresh")
}

fn is_refresh_path(path: &str) -> bool {
    path.strip_prefix("/v1/sessions/")
        .and_then(|rest| rest.strip_suffix("/refresh"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// A signed-in session, as a Clerk frontend would hold it in cookies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClerkSession {
    /// The session id, `sess_…` (the `sid` claim of its JWTs).
    pub session_id: String,
    /// The user id, `user_…` (the `sub` claim).
    pub user_id: String,
    /// A session JWT (the `__session` cookie), valid for the token TTL.
    pub session_jwt: String,
    /// The session's refresh token (the `__refresh` cookie).
    pub refresh_token: String,
}

/// A mock Clerk Backend API on `127.0.0.1`; it stops when dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use refresh_endpoint_testkit::ClerkMock;
/// use serde_json::json;
///
/// let clerk = ClerkMock::start().await;
/// let session = clerk.create_session("alice");
/// let answer: serde_json::Value = reqwest::Client::new()
///     .post(format!("{}/v1/sessions/{}/refresh", clerk.url(), session.session_id))
///     .bearer_auth(clerk.secret_key())
///     .json(&json!({
///         "expired_token": session.session_jwt,
///         "refresh_token": session.refresh_token,
///         "request_origin": "https://app.example",
///     }))
///     .send()
///     .await
///     .unwrap()
///     .json()
///     .await
///     .unwrap();
/// assert_eq!(answer["object"], "token");
/// # }
/// ```
pub struct ClerkMock {
    server: MockServer,
    inner: Arc<Inner>,
}

/// Configures a [`ClerkMock`] before starting it.
#[must_use = "a builder does nothing until `.start().await`"]
pub struct ClerkMockBuilder {
    clock: Now,
    token_ttl: Duration,
}

impl Default for ClerkMockBuilder {
    fn default() -> Self {
        Self {
            clock: system_clock(),
            token_ttl: Duration::from_secs(60),
        }
    }
}

impl ClerkMockBuilder {
    /// The clock the mock judges expiry with (default: the wall clock).
    pub fn clock(mut self, now: Now) -> Self {
        self.clock = now;
        self
    }

    /// Session JWT lifetime (default: 60 seconds, as Clerk's).
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// Starts the mock on `127.0.0.1:0` in the current tokio runtime.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound; see [`try_start`](Self::try_start).
    pub async fn start(self) -> ClerkMock {
        server::started("Clerk", self.try_start().await)
    }

    /// Starts the mock on `127.0.0.1:0`, reporting a bind failure.
    pub async fn try_start(self) -> io::Result<ClerkMock> {
        let listener = MockServer::bind().await?;
        let inner = Arc::new(Inner {
            clock: self.clock,
            token_ttl: self.token_ttl,
            secret: ids::random_bytes(32),
            secret_key: format!("sk_test_{}", ids::random_string(40, ids::ALNUM)),
            cookie_suffix: ids::random_string(8, ids::ALNUM),
            url: MockServer::url_of(&listener)?,
            state: Mutex::default(),
        });
        let router = Router::new()
            .route(REFRESH_ROUTE, post(refresh))
            .route(ME_ROUTE, get(me))
            .with_state(Arc::clone(&inner));
        let provider = Provider {
            is_refresh: is_refresh_path,
            rate_limited: |_| {
                clerk_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    vec![error_entry(
                        "Too many requests",
                        "Too many requests, please try again later.",
                        "too_many_requests",
                        None,
                    )],
                )
                .into_response()
            },
        };
        Ok(ClerkMock {
            server: MockServer::spawn(listener, router, provider)?,
            inner,
        })
    }
}

impl ClerkMock {
    /// Starts a mock with the defaults: wall clock, 60 s session JWTs.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// A builder to set the clock and session JWT lifetime.
    pub fn builder() -> ClerkMockBuilder {
        ClerkMockBuilder::default()
    }

    common_methods!("/v1/sessions/{session_id}/refresh");

    /// The HS256 secret session JWTs are signed with (real Clerk uses RS256;
    /// the mock keeps to HS256 like the other mocks).
    pub fn jwt_secret(&self) -> &[u8] {
        &self.inner.secret
    }

    /// The instance's secret key, `sk_test_…`, which the refresh route
    /// requires as `Authorization: Bearer`.
    pub fn secret_key(&self) -> &str {
        &self.inner.secret_key
    }

    /// The suffix of the suffixed cookies (`__session_<suffix>`) sent when a
    /// refresh asks `?suffixed_cookies=true`.
    pub fn cookie_suffix(&self) -> &str {
        &self.inner.cookie_suffix
    }

    /// Signs `user` in (the user is created on first use), directly, without
    /// HTTP: a new session with a fresh session JWT and refresh token.
    pub fn create_session(&self, user: &str) -> ClerkSession {
        let mut state = lock(&self.inner.state);
        let user_id = state
            .users
            .entry(user.to_owned())
            .or_insert_with(|| format!("user_{}", ids::random_string(27, ids::ALNUM)))
            .clone();
        let session_id = format!("sess_{}", ids::random_string(27, ids::ALNUM));
        let refresh_token = ids::random_string(40, ids::ALNUM);
        state.sessions.insert(
            session_id.clone(),
            Session {
                user_id: user_id.clone(),
                refresh_token: refresh_token.clone(),
                revoked: false,
            },
        );
        let now = self.inner.now();
        let session_jwt = self.inner.session_jwt(
            &session_id,
            &user_id,
            now + self.inner.token_ttl,
            &self.inner.url,
        );
        ClerkSession {
            session_id,
            user_id,
            session_jwt,
            refresh_token,
        }
    }

    /// Mints a session JWT for an existing session expiring at `exp` (which
    /// may be in the past). `None` if the session is unknown.
    pub fn mint_session_jwt(&self, session_id: &str, exp: SystemTime) -> Option<String> {
        let user_id = lock(&self.inner.state)
            .sessions
            .get(session_id)?
            .user_id
            .clone();
        Some(
            self.inner
                .session_jwt(session_id, &user_id, exp, &self.inner.url),
        )
    }

    /// Revokes (signs out) a session: its refresh answers `401 signed_out`.
    /// Returns whether the session exists.
    pub fn revoke(&self, session_id: &str) -> bool {
        match lock(&self.inner.state).sessions.get_mut(session_id) {
            Some(session) => {
                session.revoked = true;
                true
            }
            None => false,
        }
    }

    /// The JSON body of the last refresh request (`None` before the first,
    /// or if it was not JSON).
    pub fn last_request_body(&self) -> Option<Value> {
        let state = lock(&self.inner.state);
        serde_json::from_str(state.last.as_ref()?.body.as_str()).ok()
    }

    /// The raw body of the last refresh request, lossily decoded as UTF-8.
    pub fn last_raw_body(&self) -> Option<String> {
        Some(lock(&self.inner.state).last.as_ref()?.body.clone())
    }

    /// The `suffixed_cookies` query value of the last refresh request
    /// (`None` if absent there, or before the first request).
    pub fn last_suffixed_cookies(&self) -> Option<String> {
        lock(&self.inner.state)
            .last
            .as_ref()?
            .suffixed_cookies
            .clone()
    }

    /// The `Clerk-API-Version` header of the last refresh request (`None` if
    /// absent there, or before the first request).
    pub fn last_api_version(&self) -> Option<String> {
        lock(&self.inner.state).last.as_ref()?.api_version.clone()
    }
}

impl fmt::Debug for ClerkMock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClerkMock")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

struct Inner {
    clock: Now,
    token_ttl: Duration,
    secret: Vec<u8>,
    secret_key: String,
    cookie_suffix: String,
    url: String,
    state: Mutex<ClerkState>,
}

#[derive(Default)]
struct ClerkState {
    /// User ids by the name given to `create_session`.
    users: HashMap<String, String>,
    sessions: HashMap<String, Session>,
    last: Option<LastRequest>,
}

struct Session {
    user_id: String,
    refresh_token: String,
    revoked: bool,
}

struct LastRequest {
    body: String,
    suffixed_cookies: Option<String>,
    api_version: Option<String>,
}

impl Inner {
    fn now(&self) -> SystemTime {
        (self.clock)()
    }

    fn session_jwt(&self, session_id: &str, user_id: &str, exp: SystemTime, azp: &str) -> String {
        let now = unix_secs(self.now());
        jwt::sign(
            &self.secret,
            &json!({"alg": "HS256", "kid": "ins_testkit", "typ": "JWT"}),
            &json!({
                "azp": azp,
                "exp": unix_secs(exp),
                "iat": now,
                "iss": self.url,
                "nbf": now.saturating_sub(10),
                "sid": session_id,
                "sub": user_id,
            }),
        )
    }

    /// The `Set-Cookie` directives of a cookie-format answer.
    fn cookies(&self, jwt: &str, suffixed: bool) -> Vec<String> {
        let now = self.now();
        let expires = http_date(now + Duration::from_secs(365 * 24 * 60 * 60));
        let uat = unix_secs(now);
        let mut names = vec![(String::from("__session"), String::from("__client_uat"))];
        if suffixed {
            names.push((
                format!("__session_{}", self.cookie_suffix),
                format!("__client_uat_{}", self.cookie_suffix),
            ));
        }
        let mut cookies = Vec::new();
        for (session, client_uat) in names {
            cookies.push(format!(
                "{session}={jwt}; Path=/; Expires={expires}; SameSite=Lax"
            ));
            cookies.push(format!(
                "{client_uat}={uat}; Path=/; Expires={expires}; SameSite=Lax"
            ));
        }
        cookies
    }

    /// Refreshes a session with a validated body.
    fn refresh(
        &self,
        session_id: &str,
        body: &Map<String, Value>,
        suffixed: bool,
    ) -> Result<Value, ClerkError> {
        let text = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or_default();
        let token_invalid = || {
            clerk_error(
                StatusCode::UNAUTHORIZED,
                vec![error_entry(
                    "Invalid token",
                    "The expired_token is not a session token of this session.",
                    "token_invalid",
                    None,
                )],
            )
        };
        let signed_out = || {
            clerk_error(
                StatusCode::UNAUTHORIZED,
                vec![error_entry(
                    "Signed out",
                    "You are signed out",
                    "signed_out",
                    None,
                )],
            )
        };
        let claims =
            jwt::verify(&self.secret, text("expired_token")).map_err(|_| token_invalid())?;
        if claims.get("sid").and_then(Value::as_str) != Some(session_id) {
            return Err(token_invalid());
        }
        let user_id = {
            let state = lock(&self.state);
            match state.sessions.get(session_id) {
                Some(session)
                    if !session.revoked && session.refresh_token == text("refresh_token") =>
                {
                    session.user_id.clone()
                }
                _ => return Err(signed_out()),
            }
        };
        let jwt = self.session_jwt(
            session_id,
            &user_id,
            self.now() + self.token_ttl,
            text("request_origin"),
        );
        Ok(match body.get("format").and_then(Value::as_str) {
            Some("cookie") => json!({"object": "cookies", "cookies": self.cookies(&jwt, suffixed)}),
            _ => json!({"object": "token", "jwt": jwt}),
        })
    }
}

/// An IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(at: SystemTime) -> String {
    let t = OffsetDateTime::from(at);
    let weekday = t.weekday().to_string();
    let month = t.month().to_string();
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        weekday.get(..3).unwrap_or_default(),
        t.day(),
        month.get(..3).unwrap_or_default(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn error_entry(message: &str, long_message: &str, code: &str, param: Option<&str>) -> Value {
    let mut entry = json!({"message": message, "long_message": long_message, "code": code});
    if let Some(param) = param {
        entry["meta"] = json!({"param_name": param});
    }
    entry
}

/// A Clerk error: `{"errors": [...], "clerk_trace_id"}` with a status.
struct ClerkError {
    status: StatusCode,
    errors: Vec<Value>,
}

impl IntoResponse for ClerkError {
    fn into_response(self) -> Response {
        json_response(
            self.status,
            CONTENT_TYPE,
            &json!({
                "errors": self.errors,
                "clerk_trace_id": ids::random_string(32, b"0123456789abcdef"),
            }),
        )
    }
}

fn clerk_error(status: StatusCode, errors: Vec<Value>) -> ClerkError {
    ClerkError { status, errors }
}

/// Validates the body as Clerk's form binding does: unknown parameters,
/// then missing ones, then types and values.
fn validate(body: &[u8]) -> Result<Map<String, Value>, ClerkError> {
    let bad_request = |errors| clerk_error(StatusCode::BAD_REQUEST, errors);
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(bad_request(vec![error_entry(
            "Request body invalid",
            "The request body is not a valid JSON object.",
            "request_body_invalid",
            None,
        )]));
    };
    let unknown: Vec<Value> = fields
        .keys()
        .filter(|name| !REQUIRED.contains(&name.as_str()) && !OPTIONAL.contains(&name.as_str()))
        .map(|name| {
            error_entry(
                "is unknown",
                &format!("{name} is not a valid parameter for this request."),
                "form_param_unknown",
                Some(name),
            )
        })
        .collect();
    if !unknown.is_empty() {
        return Err(bad_request(unknown));
    }
    let missing: Vec<Value> = REQUIRED
        .iter()
        .filter(|name| fields.get(**name).is_none_or(Value::is_null))
        .map(|name| {
            error_entry(
                "missing required parameter",
                &format!("{name} must be included."),
                "form_param_missing",
                Some(name),
            )
        })
        .collect();
    if !missing.is_empty() {
        return Err(bad_request(missing));
    }
    let mut invalid = Vec::new();
    for (name, value) in &fields {
        let well_typed = match (name.as_str(), value) {
            (_, Value::Null) => true,
            ("request_headers", value) => value.is_object(),
            (_, value) => value.is_string(),
        };
        if !well_typed {
            invalid.push(error_entry(
                "is invalid",
                &format!("{name} has an invalid type."),
                "form_param_format_invalid",
                Some(name),
            ));
        }
    }
    if let Some(format) = fields.get("format").and_then(Value::as_str)
        && format != "token"
        && format != "cookie"
    {
        invalid.push(error_entry(
            "is invalid",
            "format must be one of: token, cookie.",
            "form_param_value_invalid",
            Some("format"),
        ));
    }
    if invalid.is_empty() {
        Ok(fields)
    } else {
        Err(bad_request(invalid))
    }
}

async fn refresh(
    State(inner): State<Arc<Inner>>,
    Path(session_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ClerkError> {
    let suffixed_cookies = query
        .and_then(|query| serde_urlencoded::from_str::<Vec<(String, String)>>(&query).ok())
        .and_then(|pairs| {
            pairs
                .into_iter()
                .find(|(name, _)| name == "suffixed_cookies")
        })
        .map(|(_, value)| value);
    let api_version = headers
        .get("clerk-api-version")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let suffixed = suffixed_cookies.as_deref() == Some("true");
    lock(&inner.state).last = Some(LastRequest {
        body: String::from_utf8_lossy(&body).into_owned(),
        suffixed_cookies,
        api_version,
    });
    let authorized = matches!(
        authorization(&headers),
        Some(Ok(value)) if value.strip_prefix("Bearer ") == Some(inner.secret_key.as_str())
    );
    if !authorized {
        let message = "The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key is correct.";
        return Err(clerk_error(
            StatusCode::UNAUTHORIZED,
            vec![error_entry(message, message, "clerk_key_invalid", None)],
        ));
    }
    let fields = validate(&body)?;
    let answer = inner.refresh(&session_id, &fields, suffixed)?;
    Ok(json_response(StatusCode::OK, CONTENT_TYPE, &answer))
}

async fn me(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Result<Response, ClerkError> {
    let unauthorized = |message: &str, code: &str| {
        clerk_error(
            StatusCode::UNAUTHORIZED,
            vec![error_entry(message, message, code, None)],
        )
    };
    let token = match authorization(&headers) {
        Some(Ok(value)) => value.strip_prefix("Bearer ").unwrap_or_default().trim(),
        _ => "",
    };
    let Ok(claims) = jwt::verify(&inner.secret, token) else {
        return Err(unauthorized(
            "Invalid authentication",
            "authentication_invalid",
        ));
    };
    match claims.get("exp").and_then(Value::as_u64) {
        Some(exp) if !exp_passed(exp, inner.now()) => {}
        _ => return Err(unauthorized("Session token expired", "token_expired")),
    }
    let session_id = claims
        .get("sid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let user_id = {
        let state = lock(&inner.state);
        match state.sessions.get(session_id) {
            Some(session) if !session.revoked => session.user_id.clone(),
            _ => return Err(unauthorized("Signed out", "signed_out")),
        }
    };
    Ok(json_response(
        StatusCode::OK,
        CONTENT_TYPE,
        &json!({"object": "user", "id": user_id, "session_id": session_id}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn http_dates_are_imf_fixdates() {
        let at = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(at), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn refresh_paths_are_recognized() {
        assert!(is_refresh_path("/v1/sessions/sess_1/refresh"));
        assert!(!is_refresh_path("/v1/sessions//refresh"));
        assert!(!is_refresh_path("/v1/sessions/a/b/refresh"));
        assert!(!is_refresh_path("/v1/me"));
        assert_eq!(refresh_path("sess_1"), "/v1/sessions/sess_1/refresh");
    }
}
