//! Clerk Backend API: `POST /v1/sessions/{session_id}/refresh`: the
//! response type [`SessionRefresh`], the [`Clerk`] envelope and the
//! ready-made [`RefreshSession`] endpoint.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, JsonEnvelope, Outcome, RawResponse, Rule};
use crate::tokens::{IntoTokens, Issued};
use crate::{Error, ErrorKind, Secret};

/// The `Clerk-API-Version` the ready-made endpoint sends: the one the
/// current official SDKs send (`clerk-backend-api` 7.0).
pub const API_VERSION: &str = "2025-11-10";

/// `POST /v1/sessions/{session_id}/refresh` with the instance's secret key
/// as `Authorization: Bearer` (set it with
/// [`ClientBuilder::secret`](crate::ClientBuilder::secret)) and the JSON body
/// the SDKs send. A session fills in `expired_token` and `refresh_token`.
///
/// ```
/// use refresh_endpoint::providers::clerk::RefreshSession;
///
/// let refresh = RefreshSession::new("sess_123", "https://app.example.com");
/// assert_eq!(refresh.session_id, "sess_123");
/// ```
#[crate::refresh_endpoint(crate = crate, path = "/v1/sessions/{session_id}/refresh", auth = bearer,
                          envelope = clerk, header("Clerk-API-Version" = "2025-11-10"),
                          response = SessionRefresh)]
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RefreshSession {
    /// The session's id (the `sid` claim of its JWT).
    #[path]
    pub session_id: String,
    /// The expired session JWT (the `__session` cookie).
    #[access_token]
    pub expired_token: Secret,
    /// The refresh token (the `__refresh` cookie).
    #[refresh_token]
    pub refresh_token: Secret,
    /// The origin of the browser request being served.
    pub request_origin: String,
    /// `token` (the default) or `cookie`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// The browser request's headers, `{name: [values]}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<BTreeMap<String, Vec<String>>>,
    /// The browser's IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_originating_ip: Option<String>,
}

impl RefreshSession {
    /// A refresh of `session_id` for requests from `request_origin`.
    pub fn new(session_id: impl Into<String>, request_origin: impl Into<String>) -> Self {
        RefreshSession {
            session_id: session_id.into(),
            request_origin: request_origin.into(),
            ..RefreshSession::default()
        }
    }
}

impl IntoTokens for SessionRefresh {
    fn into_tokens(self, _: SystemTime) -> Result<Issued, Error> {
        let jwt = self.session_jwt().ok_or_else(|| ErrorKind::Decode {
            endpoint: "clerk",
            path: "cookies".into(),
            message: "no `__session` cookie in the response".into(),
        })?;
        Ok(Issued::access(jwt))
    }
}

/// What a session refresh returns, told apart by its `object` field.
///
/// ```
/// use refresh_endpoint::providers::clerk::SessionRefresh;
///
/// let token: SessionRefresh = serde_json::from_str(r#"{"object":"token","jwt":"a.b.c"}"#).unwrap();
/// assert!(matches!(token, SessionRefresh::Token { .. }));
/// let cookies: SessionRefresh =
///     serde_json::from_str(r#"{"object":"cookies","cookies":["__session=a.b.c; Path=/"]}"#).unwrap();
/// assert!(matches!(cookies, SessionRefresh::Cookies { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "object", rename_all = "lowercase")]
#[non_exhaustive]
pub enum SessionRefresh {
    /// `{"object": "token", "jwt": "…"}`: the new session JWT (format `token`).
    Token {
        /// The new session JWT.
        jwt: Secret,
    },
    /// `{"object": "cookies", "cookies": [...]}`: `Set-Cookie` directives (format `cookie`).
    Cookies {
        /// The `Set-Cookie` directives; they contain the session JWT.
        cookies: Vec<Secret>,
    },
}

impl SessionRefresh {
    /// The new session JWT: the `jwt`, or the value of the `__session` cookie.
    pub fn session_jwt(&self) -> Option<Secret> {
        match self {
            SessionRefresh::Token { jwt } => Some(jwt.clone()),
            SessionRefresh::Cookies { cookies } => cookies.iter().find_map(|cookie| {
                let pair = cookie.expose().split(';').next()?;
                let (name, value) = pair.split_once('=')?;
                (name.trim() == "__session").then(|| Secret::new(value.trim()))
            }),
        }
    }
}

/// The `format` of the response asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `{"object": "token", "jwt"}` (the default).
    #[default]
    Token,
    /// `{"object": "cookies", "cookies"}`.
    Cookie,
}

/// The Clerk Backend API envelope: a 2xx body is the response; an error is
/// `{"errors": [{"message", "long_message", "code"}], "clerk_trace_id"}`.
///
/// 401 ends the session (Clerk answers it when the session cannot be
/// refreshed and a full sign-in is needed), except `clerk_key_*` errors: a
/// wrong secret key is the server's configuration, and signing the user out
/// would not help. 429 and 5xx are retryable; other errors are
/// [`ErrorKind::Api`], with the first error's code
/// and long message. A 401 without Clerk's envelope (from a proxy) is an
/// [`ErrorKind::Unrecognized`]. A preset of
/// [`JsonEnvelope`]: [`Clerk::ENVELOPE`].
///
/// ```
/// use refresh_endpoint::envelope::{Clerk, Envelope, RawResponse};
///
/// let signed_out = RawResponse {
///     endpoint: "refresh",
///     status: 401,
///     headers: Default::default(),
///     body: br#"{"errors":[{"message":"Signed out","long_message":"You are signed out","code":"signed_out"}],"clerk_trace_id":"t1"}"#.to_vec(),
/// };
/// let error = Clerk::unwrap::<serde_json::Value>(&signed_out).unwrap_err();
/// assert!(error.is_terminal());
/// assert_eq!(error.api().unwrap().code, "signed_out");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Clerk;

impl Clerk {
    /// The declaration.
    pub const ENVELOPE: JsonEnvelope = JsonEnvelope::new("clerk")
        .code("/errors/0/code")
        .message(&["/errors/0/long_message", "/errors/0/message"])
        .trace_id("clerk_trace_id")
        .rules(&[
            Rule {
                status: 401,
                code: "clerk_key*",
                outcome: Outcome::Keep,
            },
            Rule {
                status: 401,
                code: "",
                outcome: Outcome::Terminal,
            },
        ]);
}

impl Envelope for Clerk {
    fn unwrap<T: DeserializeOwned>(response: &RawResponse) -> Result<T, Error> {
        Self::ENVELOPE.unwrap(response)
    }
}
