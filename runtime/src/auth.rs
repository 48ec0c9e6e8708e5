//! [`Auth`]: where an endpoint's credentials go.
//!
//! The built-in schemes, chosen with `auth = …` on the attribute:
//!
//! | key | type | what is sent |
//! |---|---|---|
//! | `refresh_bearer` | [`RefreshBearer`] | the refresh token as `Authorization: Bearer` (AT Protocol) |
//! | `body` | [`InBody`] | nothing extra: the `#[refresh_token]` field carries it (Cloudreve, OAuth 2.0) |
//! | `bearer` | [`ClientBearer`] | the client's secret as `Authorization: Bearer` (Clerk's secret key) |
//! | `basic` | [`ClientBasic`] | RFC 6749 §2.3.1: client id and secret as `Authorization: Basic` |
//! | `client_body` | [`ClientInBody`] | RFC 6749 §2.3.1: `client_id` and `client_secret` in the form or JSON body |
//! | `api_key("X-Api-Key")` | [`ApiKey`] | the client's secret in the named header, marked sensitive |
//! | `none` | [`NoAuth`] | nothing |
//!
//! The client id and secret are set once on the client with
//! [`ClientBuilder::client_credentials`](crate::ClientBuilder::client_credentials)
//! (or [`ClientBuilder::secret`](crate::ClientBuilder::secret) for a key
//! alone). Every scheme but `refresh_bearer` combines with a
//! `#[refresh_token]` field in the body.

use std::marker::PhantomData;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};

use crate::{Error, ErrorKind, Secret};

/// The credentials at hand when a request is built.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct Credentials<'a> {
    /// The refresh token passed to the call, if any.
    pub refresh_token: Option<&'a Secret>,
    /// The client-level secret set with [`ClientBuilder::secret`](crate::ClientBuilder::secret)
    /// or [`ClientBuilder::client_credentials`](crate::ClientBuilder::client_credentials).
    pub client_secret: Option<&'a Secret>,
    /// The client id set with [`ClientBuilder::client_credentials`](crate::ClientBuilder::client_credentials)
    /// or [`ClientBuilder::client_id`](crate::ClientBuilder::client_id).
    pub client_id: Option<&'a str>,
}

impl<'a> Credentials<'a> {
    /// Credentials holding a refresh token and a client secret.
    pub fn new(refresh_token: Option<&'a Secret>, client_secret: Option<&'a Secret>) -> Self {
        Credentials {
            refresh_token,
            client_secret,
            client_id: None,
        }
    }

    /// Sets the client id.
    pub fn with_client_id(mut self, client_id: Option<&'a str>) -> Self {
        self.client_id = client_id;
        self
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

/// `auth = basic`: HTTP Basic client authentication (RFC 6749 §2.3.1): the
/// client id and secret, each `application/x-www-form-urlencoded` first, then
/// joined by `:` and base64-encoded, as `Authorization: Basic`.
///
/// ```
/// use refresh_endpoint::auth::basic_value;
/// use refresh_endpoint::Secret;
///
/// let value = basic_value("my app", &Secret::new("s3:cr=t")).unwrap();
/// // base64("my+app:s3%3Acr%3Dt")
/// assert_eq!(value.to_str().unwrap(), "Basic bXkrYXBwOnMzJTNBY3IlM0R0");
/// assert!(value.is_sensitive());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientBasic;

impl Auth for ClientBasic {
    fn apply(request: &mut reqwest::Request, credentials: Credentials<'_>) -> Result<(), Error> {
        let (id, secret) = client_pair(credentials)?;
        request
            .headers_mut()
            .insert(AUTHORIZATION, basic_value(id, secret)?);
        Ok(())
    }
}

/// `auth = client_body`: `client_id` and `client_secret` in the request body
/// (RFC 6749 §2.3.1), added to a form body or to a JSON object body; a
/// request without a body gets a form body. A client with an id and no
/// secret (a public client) sends `client_id` alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientInBody;

impl Auth for ClientInBody {
    fn apply(request: &mut reqwest::Request, credentials: Credentials<'_>) -> Result<(), Error> {
        let id = credentials.client_id.ok_or_else(|| {
            ErrorKind::Invalid(
                "this endpoint sends client credentials in the body; set them with ClientBuilder::client_credentials".into(),
            )
        })?;
        let mut pairs = vec![("client_id", id)];
        if let Some(secret) = credentials.client_secret {
            pairs.push(("client_secret", secret.expose()));
        }
        add_body_params(request, &pairs)
    }
}

/// Adds parameters to the request's form or JSON object body (a request
/// without a body gets a form body). A parameter already in the body is
/// replaced.
pub fn add_body_params(
    request: &mut reqwest::Request,
    pairs: &[(&str, &str)],
) -> Result<(), Error> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let body = request
        .body()
        .and_then(|body| body.as_bytes())
        .unwrap_or_default();
    let bytes = match content_type.as_deref() {
        Some("application/json") => {
            let mut object: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(body).map_err(|_| {
                    ErrorKind::Invalid(
                        "client credentials go in a JSON body that is an object".into(),
                    )
                })?;
            for (name, value) in pairs {
                object.insert((*name).to_owned(), serde_json::Value::from(*value));
            }
            serde_json::to_vec(&object)
                .map_err(|e| ErrorKind::Invalid(format!("the body could not be serialized: {e}")))?
        }
        None | Some("application/x-www-form-urlencoded") => {
            let mut form: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
                .map_err(|_| ErrorKind::Invalid("the form body could not be read".into()))?;
            form.retain(|(name, _)| !pairs.iter().any(|(new, _)| new == name));
            form.extend(
                pairs
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
            );
            request.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            serde_urlencoded::to_string(&form)
                .map_err(|e| {
                    ErrorKind::Invalid(format!("the form body could not be serialized: {e}"))
                })?
                .into_bytes()
        }
        Some(other) => {
            return Err(ErrorKind::Invalid(format!(
                "client credentials cannot be added to a `{other}` body"
            ))
            .into());
        }
    };
    *request.body_mut() = Some(bytes.into());
    Ok(())
}

/// The name of the header an [`ApiKey`] scheme sends the key in; the
/// attribute implements it for `auth = api_key("Name")`.
pub trait ApiKeyHeader {
    /// The header's name, lowercase.
    const HEADER: &'static str;
}

/// `auth = api_key("X-Api-Key")`: the client's secret (set with
/// [`ClientBuilder::secret`](crate::ClientBuilder::secret)) in the header
/// `H::HEADER`, marked sensitive.
pub struct ApiKey<H: ?Sized>(PhantomData<H>);

impl<H: ApiKeyHeader + ?Sized> Auth for ApiKey<H> {
    fn apply(request: &mut reqwest::Request, credentials: Credentials<'_>) -> Result<(), Error> {
        let key = credentials.client_secret.ok_or_else(|| {
            ErrorKind::Invalid(format!(
                "this endpoint sends an API key in `{}`; set it with ClientBuilder::secret",
                H::HEADER
            ))
        })?;
        let name = HeaderName::from_bytes(H::HEADER.as_bytes())
            .map_err(|_| ErrorKind::Invalid(format!("invalid header name `{}`", H::HEADER)))?;
        let mut value = HeaderValue::from_str(key.expose())
            .map_err(|_| ErrorKind::Invalid("the API key is not a valid header value".into()))?;
        value.set_sensitive(true);
        request.headers_mut().insert(name, value);
        Ok(())
    }
}

fn client_pair<'a>(credentials: Credentials<'a>) -> Result<(&'a str, &'a Secret), Error> {
    match (credentials.client_id, credentials.client_secret) {
        (Some(id), Some(secret)) => Ok((id, secret)),
        _ => Err(ErrorKind::Invalid(
            "this endpoint authenticates the client with HTTP Basic; set the id and secret with ClientBuilder::client_credentials".into(),
        )
        .into()),
    }
}

/// `application/x-www-form-urlencoded` keeps letters, digits and `*-._`.
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

fn form_encode(text: &str) -> String {
    utf8_percent_encode(text, FORM)
        .to_string()
        .replace("%20", "+")
}

/// `Basic base64(form(id):form(secret))` (RFC 6749 §2.3.1) as a header value
/// marked sensitive.
pub fn basic_value(client_id: &str, secret: &Secret) -> Result<HeaderValue, Error> {
    let pair = format!(
        "{}:{}",
        form_encode(client_id),
        form_encode(secret.expose())
    );
    let mut value =
        HeaderValue::try_from(format!("Basic {}", STANDARD.encode(pair))).map_err(|_| {
            ErrorKind::Invalid("the client credentials are not a valid header value".into())
        })?;
    value.set_sensitive(true);
    Ok(value)
}

/// `Bearer <token>` as a header value marked sensitive (hidden from `Debug`).
pub fn bearer_value(token: &Secret) -> Result<HeaderValue, Error> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose()))
        .map_err(|_| ErrorKind::Invalid("the token is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}
