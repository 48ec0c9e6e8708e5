//! Clerk Backend API: `POST /v1/sessions/{session_id}/refresh`.

use serde::{Deserialize, Serialize};

use crate::Secret;

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
