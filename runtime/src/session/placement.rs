//! [`TokenPlacement`]: where a session puts the access token on API requests.

use std::fmt;

use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use crate::{Error, ErrorKind, Secret};

/// Where the access token goes on an authorized API request:
/// `Authorization: Bearer <token>` by default, another scheme, or another
/// header. Set it with
/// [`SessionBuilder::token_placement`](crate::session::SessionBuilder::token_placement).
///
/// The header value is marked sensitive (hidden from `Debug`), and the token
/// is scrubbed from errors wherever it goes.
///
/// ```
/// use refresh_endpoint::session::TokenPlacement;
///
/// let dpop = TokenPlacement::scheme("DPoP").unwrap(); // Authorization: DPoP <token>
/// let raw = TokenPlacement::header("X-Auth-Token").unwrap(); // X-Auth-Token: <token>
/// assert_eq!(raw.header_name(), "x-auth-token");
/// assert_eq!(TokenPlacement::default().header_name(), "authorization");
/// assert!(TokenPlacement::scheme("two words").is_err());
/// # let _ = dpop;
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TokenPlacement {
    name: HeaderName,
    /// `Bearer `, `DPoP `, … with its trailing space; empty for a raw token.
    prefix: Box<str>,
}

impl Default for TokenPlacement {
    fn default() -> Self {
        Self::bearer()
    }
}

impl TokenPlacement {
    /// `Authorization: Bearer <token>` (RFC 6750), the default.
    pub fn bearer() -> Self {
        TokenPlacement {
            name: AUTHORIZATION,
            prefix: "Bearer ".into(),
        }
    }

    /// `Authorization: <scheme> <token>`, such as `DPoP` or `Token`.
    pub fn scheme(scheme: &str) -> Result<Self, Error> {
        Self::header_with_scheme(AUTHORIZATION.as_str(), scheme)
    }

    /// `<name>: <token>`, the token alone, such as `X-Auth-Token`.
    pub fn header(name: &str) -> Result<Self, Error> {
        Ok(TokenPlacement {
            name: header_name(name)?,
            prefix: "".into(),
        })
    }

    /// `<name>: <scheme> <token>`.
    pub fn header_with_scheme(name: &str, scheme: &str) -> Result<Self, Error> {
        let valid = !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid {
            return Err(ErrorKind::Invalid(format!(
                "`{scheme}` is not an authorization scheme (one HTTP token, such as `Bearer`)"
            ))
            .into());
        }
        Ok(TokenPlacement {
            name: header_name(name)?,
            prefix: format!("{scheme} ").into(),
        })
    }

    /// The header that carries the token.
    pub fn header_name(&self) -> &HeaderName {
        &self.name
    }

    /// The header value for `token`, marked sensitive.
    pub(crate) fn value(&self, token: &Secret) -> Result<HeaderValue, Error> {
        let token = token.expose();
        let mut text = String::with_capacity(self.prefix.len() + token.len());
        text.push_str(&self.prefix);
        text.push_str(token);
        let mut value = HeaderValue::try_from(text)
            .map_err(|_| ErrorKind::Invalid("the token is not a valid header value".into()))?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Puts `value` (from [`TokenPlacement::value`]) in `headers`, replacing
    /// any value the header had.
    pub(crate) fn apply(&self, headers: &mut HeaderMap, value: &HeaderValue) {
        headers.insert(self.name.clone(), value.clone());
    }
}

fn header_name(name: &str) -> Result<HeaderName, Error> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ErrorKind::Invalid(format!("`{name}` is not a header name")).into())
}

impl fmt::Debug for TokenPlacement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenPlacement({}: {}<token>)", self.name, self.prefix)
    }
}
