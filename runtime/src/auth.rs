//! [`Auth`]: where an endpoint's credentials go.
//!
//! The built-in schemes, chosen with `auth = …` on the attribute:
//!
//! | key | type | what is sent |
//! |---|---|---|
//! | `refresh_bearer` | [`RefreshBearer`] | the refresh token as `Authorization: Bearer` (AT Protocol) |
//! | `body` | [`InBody`] | nothing extra: the `#[refresh_token]` field carries it (Cloudreve, OAuth 2.0) |
//! | `bearer` | [`ClientBearer`] | the client's secret as `Authorization: Bearer` (Clerk's secret key) |
//! | `none` | [`NoAuth`] | nothing |

use reqwest::header::{AUTHORIZATION, HeaderValue};

use crate::{Error, ErrorKind, Secret};

/// The credentials at hand when a request is built.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct Credentials<'a> {
    /// The refresh token passed to the call, if any.
    pub refresh_token: Option<&'a Secret>,
    /// The client-level secret set with [`ClientBuilder::secret`](crate::ClientBuilder::secret).
    pub client_secret: Option<&'a Secret>,
}

impl<'a> Credentials<'a> {
    /// Credentials holding a refresh token and a client secret.
    pub fn new(refresh_token: Option<&'a Secret>, client_secret: Option<&'a Secret>) -> Self {
        Credentials {
            refresh_token,
            client_secret,
        }
    }
}

/// Puts credentials into a request.
///
/// A scheme of your own, such as an API key header:
///
/// ```
/// use refresh_endpoint::auth::{Auth, Credentials, bearer_value};
/// use refresh_endpoint::{Error, ErrorKind};
///
/// pub struct ApiKeyHeader;
///
/// impl Auth for ApiKeyHeader {
///     fn apply(request: &mut reqwest::Request, credentials: Credentials<'_>) -> Result<(), Error> {
///         let key = credentials
///             .client_secret
///             .ok_or_else(|| ErrorKind::Invalid("set the API key with ClientBuilder::secret".into()))?;
///         let mut value = reqwest::header::HeaderValue::from_str(key.expose())
///             .map_err(|_| ErrorKind::Invalid("the API key is not a valid header value".into()))?;
///         value.set_sensitive(true);
///         request.headers_mut().insert("x-api-key", value);
///         Ok(())
///     }
/// }
/// # let _ = bearer_value;
/// ```
pub trait Auth {
    /// Whether this scheme sends a secret, so that it is refused over plain
    /// `http://` to a host that is not loopback.
    const SENDS_SECRET: bool = true;

    /// Adds the credentials to `request`.
    fn apply(request: &mut reqwest::Request, credentials: Credentials<'_>) -> Result<(), Error>;
}

/// `auth = refresh_bearer`: the refresh token as `Authorization: Bearer`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RefreshBearer;

impl Auth for RefreshBearer {
    fn apply(request: &mut reqwest::Request, credentials: Credentials<'_>) -> Result<(), Error> {
        let token = credentials.refresh_token.ok_or_else(|| {
            ErrorKind::Invalid(
                "this endpoint sends the refresh token as a bearer token, and none was given"
                    .into(),
            )
        })?;
        request
            .headers_mut()
            .insert(AUTHORIZATION, bearer_value(token)?);
        Ok(())
    }
}

/// `auth = body`: the `#[refresh_token]` field carries the token; nothing is added.
#[derive(Debug, Clone, Copy, Default)]
pub struct InBody;

impl Auth for InBody {
    fn apply(_: &mut reqwest::Request, _: Credentials<'_>) -> Result<(), Error> {
        Ok(())
    }
}

/// `auth = bearer`: the client's secret (an API key) as `Authorization: Bearer`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientBearer;

impl Auth for ClientBearer {
    fn apply(request: &mut reqwest::Request, credentials: Credentials<'_>) -> Result<(), Error> {
        let secret = credentials.client_secret.ok_or_else(|| {
            ErrorKind::Invalid(
                "this endpoint needs the client's secret key; set it with ClientBuilder::secret"
                    .into(),
            )
        })?;
        request
            .headers_mut()
            .insert(AUTHORIZATION, bearer_value(secret)?);
        Ok(())
    }
}

/// `auth = none`: no credentials.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAuth;

impl Auth for NoAuth {
    const SENDS_SECRET: bool = false;

    fn apply(_: &mut reqwest::Request, _: Credentials<'_>) -> Result<(), Error> {
        Ok(())
    }
}

/// `Bearer <token>` as a header value marked sensitive (hidden from `Debug`).
pub fn bearer_value(token: &Secret) -> Result<HeaderValue, Error> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose()))
        .map_err(|_| ErrorKind::Invalid("the token is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}
