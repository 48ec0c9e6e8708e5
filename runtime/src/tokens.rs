//! [`Tokens`]: what a session keeps, and [`IntoTokens`]: how a refresh
//! response becomes them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::{Deserialize, Serialize};

use crate::{Error, Secret};

/// A session's tokens: serialized as they are stored (expiries in Unix seconds).
///
/// ```
/// use refresh_endpoint::{Secret, tokens::Tokens};
///
/// let tokens = Tokens::new(Secret::new("access"), Secret::new("refresh"));
/// assert!(tokens.access_expires_at.is_none());
/// assert!(!format!("{tokens:?}").contains("refresh\""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Tokens {
    /// The access token.
    pub access_token: Secret,
    /// The refresh token.
    pub refresh_token: Secret,
    /// When the access token expires, if known.
    #[serde(
        default,
        with = "unix_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub access_expires_at: Option<SystemTime>,
    /// When the refresh token expires, if known.
    #[serde(
        default,
        with = "unix_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub refresh_expires_at: Option<SystemTime>,
}

impl Tokens {
    /// Tokens with unknown expiries; the access token's expiry is read from
    /// its JWT `exp` claim when it is a JWT.
    pub fn new(access_token: impl Into<Secret>, refresh_token: impl Into<Secret>) -> Self {
        let access_token = access_token.into();
        Tokens {
            access_expires_at: jwt_expiry(&access_token),
            access_token,
            refresh_token: refresh_token.into(),
            refresh_expires_at: None,
        }
    }

    /// Sets when the access token expires.
    pub fn with_access_expires_at(mut self, at: SystemTime) -> Self {
        self.access_expires_at = Some(at);
        self
    }

    /// Sets when the refresh token expires.
    pub fn with_refresh_expires_at(mut self, at: SystemTime) -> Self {
        self.refresh_expires_at = Some(at);
        self
    }
}

/// Tokens a refresh response issued. A `None` refresh token means "keep the
/// old one" (allowed by OAuth 2.0); a `None` access expiry is read from the
/// JWT `exp` claim, if the token is a JWT.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Issued {
    /// The new access token.
    pub access_token: Secret,
    /// The new refresh token, if the provider rotated it.
    pub refresh_token: Option<Secret>,
    /// When the new access token expires, if the response says.
    pub access_expires_at: Option<SystemTime>,
    /// When the refresh token expires, if the response says.
    pub refresh_expires_at: Option<SystemTime>,
}

impl Issued {
    /// An access token alone: no rotation, expiry from the JWT if any.
    pub fn access(access_token: Secret) -> Self {
        Issued {
            access_token,
            refresh_token: None,
            access_expires_at: None,
            refresh_expires_at: None,
        }
    }

    /// Sets the rotated refresh token.
    pub fn with_refresh_token(mut self, refresh_token: Option<Secret>) -> Self {
        self.refresh_token = refresh_token;
        self
    }

    /// Sets the access token's expiry.
    pub fn with_access_expires_at(mut self, at: Option<SystemTime>) -> Self {
        self.access_expires_at = at;
        self
    }

    /// Sets the refresh token's expiry.
    pub fn with_refresh_expires_at(mut self, at: Option<SystemTime>) -> Self {
        self.refresh_expires_at = at;
        self
    }

    /// The session's next tokens: the issued ones, keeping the previous
    /// refresh token when none was issued.
    pub fn into_tokens(self, previous: &Tokens) -> Tokens {
        let rotated = self.refresh_token.is_some();
        Tokens {
            access_expires_at: self
                .access_expires_at
                .or_else(|| jwt_expiry(&self.access_token)),
            access_token: self.access_token,
            refresh_token: self
                .refresh_token
                .unwrap_or_else(|| previous.refresh_token.clone()),
            refresh_expires_at: match rotated {
                true => self.refresh_expires_at,
                false => self.refresh_expires_at.or(previous.refresh_expires_at),
            },
        }
    }
}

/// A refresh response a session can take tokens from.
///
/// Implemented beside each provider's response type in [`providers`](crate::providers). For a response of your own:
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use refresh_endpoint::Secret;
/// use refresh_endpoint::tokens::{IntoTokens, Issued};
///
/// #[derive(serde::Deserialize)]
/// struct MyRefresh { token: Secret, next_refresh: Secret, ttl_seconds: u64 }
///
/// impl IntoTokens for MyRefresh {
///     fn into_tokens(self, received_at: SystemTime) -> Result<Issued, refresh_endpoint::Error> {
///         Ok(Issued::access(self.token)
///             .with_refresh_token(Some(self.next_refresh))
///             .with_access_expires_at(Some(received_at + Duration::from_secs(self.ttl_seconds))))
///     }
/// }
/// ```
pub trait IntoTokens {
    /// The tokens in this response; `received_at` is when it arrived (for
    /// relative lifetimes such as OAuth's `expires_in`).
    fn into_tokens(self, received_at: SystemTime) -> Result<Issued, Error>;
}

/// The `exp` claim of a JWT, read without verifying the signature; `None`
/// when the token is not a JWT or has no `exp`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use refresh_endpoint::{Secret, tokens::jwt_expiry};
///
/// // {"alg":"none"}.{"exp":1700000000}.
/// let jwt = Secret::new("eyJhbGciOiJub25lIn0.eyJleHAiOjE3MDAwMDAwMDB9.");
/// assert_eq!(jwt_expiry(&jwt), Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
/// assert_eq!(jwt_expiry(&Secret::new("opaque")), None);
/// ```
pub fn jwt_expiry(token: &Secret) -> Option<SystemTime> {
    const BASE64URL: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    #[derive(Deserialize)]
    struct Claims {
        exp: f64,
    }
    let mut parts = token.expose().split('.');
    let (_header, claims) = (parts.next()?, parts.next()?);
    parts.next()?;
    let claims: Claims = serde_json::from_slice(&BASE64URL.decode(claims).ok()?).ok()?;
    (claims.exp.is_finite() && claims.exp >= 0.0)
        .then(|| UNIX_EPOCH + Duration::from_secs_f64(claims.exp))
}

mod unix_seconds {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        at: &Option<SystemTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => {
                let seconds = at
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64();
                serializer.serialize_some(&seconds)
            }
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        let seconds = Option::<f64>::deserialize(deserializer)?;
        Ok(seconds
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| UNIX_EPOCH + Duration::from_secs_f64(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_through_json() {
        let tokens = Tokens::new(Secret::new("a"), Secret::new("r"))
            .with_access_expires_at(UNIX_EPOCH + Duration::from_millis(1_700_000_000_500));
        let json = serde_json::to_string(&tokens).unwrap();
        assert_eq!(
            json,
            r#"{"access_token":"a","refresh_token":"r","access_expires_at":1700000000.5}"#
        );
        assert_eq!(serde_json::from_str::<Tokens>(&json).unwrap(), tokens);
    }

    #[test]
    fn issued_without_refresh_keeps_the_old_one() {
        let previous = Tokens::new(Secret::new("a"), Secret::new("r1"));
        let next = Issued::access(Secret::new("a2")).into_tokens(&previous);
        assert_eq!(next.refresh_token.expose(), "r1");
        let next = Issued::access(Secret::new("a3"))
            .with_refresh_token(Some(Secret::new("r2")))
            .into_tokens(&previous);
        assert_eq!(next.refresh_token.expose(), "r2");
    }
}
