//! [`Endpoint`]: what `#[refresh_endpoint]` implements for a struct.

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

use crate::auth::Auth;
use crate::envelope::Envelope;
use crate::{Error, Secret};

/// A request body, serialized.
#[derive(Debug, Clone)]
pub struct Body {
    /// The `Content-Type` of the body.
    pub content_type: &'static str,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A refresh endpoint: how to build its request and unwrap its response.
///
/// `#[refresh_endpoint(...)]` writes this impl; implement it by hand only for
/// what the attribute cannot express. [`Client::send`](crate::Client::send)
/// sends any `Endpoint`.
pub trait Endpoint {
    /// What a successful call returns.
    type Response: DeserializeOwned;
    /// Where the credentials go.
    type Auth: Auth;
    /// How the response is unwrapped.
    type Envelope: Envelope;

    /// A name for logs and errors: the struct's name.
    const NAME: &'static str;
    /// The HTTP method: `POST` unless given.
    const METHOD: Method = Method::POST;
    /// Whether a field carries the refresh token (`#[refresh_token]`).
    const CARRIES_REFRESH_TOKEN: bool = false;

    /// The path (starting with `/`) when it has no parameters: what the
    /// default [`write_path`](Endpoint::write_path) appends.
    const PATH: &'static str = "";

    /// Appends the path (starting with `/`) with its parameters
    /// percent-encoded. By default, [`PATH`](Endpoint::PATH).
    fn write_path(&self, path: &mut String) -> Result<(), Error> {
        path.push_str(Self::PATH);
        Ok(())
    }

    /// Appends the query parameters.
    fn write_query(&self, query: &mut Vec<(&'static str, String)>) -> Result<(), Error> {
        let _ = query;
        Ok(())
    }

    /// Adds the headers from `#[header]` fields.
    fn write_headers(&self, headers: &mut HeaderMap) -> Result<(), Error> {
        let _ = headers;
        Ok(())
    }

    /// The body, if the endpoint sends one.
    fn body(&self) -> Result<Option<Body>, Error> {
        Ok(None)
    }

    /// Stores a refresh token in the `#[refresh_token]` field, if there is one.
    fn set_refresh_token(&mut self, token: &Secret) {
        let _ = token;
    }

    /// Stores the current access token in the `#[access_token]` field, if
    /// there is one (Clerk sends the expired session token back).
    fn set_access_token(&mut self, token: &Secret) {
        let _ = token;
    }
}
