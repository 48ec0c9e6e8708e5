//! Declare a "refresh my session" endpoint with one attribute, call it with
//! typed results and typed errors, and keep tokens fresh.
//!
//! ```
//! use refresh_endpoint::providers::atproto::AtpSession;
//! use refresh_endpoint::refresh_endpoint;
//!
//! /// `com.atproto.server.refreshSession`: the refresh JWT as a bearer token, no body.
//! #[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
//!                    auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
//! pub struct RefreshSession;
//!
//! # async fn run(refresh_jwt: refresh_endpoint::Secret) -> Result<(), refresh_endpoint::Error> {
//! let client = refresh_endpoint::Client::new("https://bsky.social")?;
//! let session = RefreshSession.send(&client, &refresh_jwt).await?;
//! println!("{} is {}", session.handle, session.did);
//! # Ok(()) }
//! ```
//!
//! The modules, one concept each: [`endpoint`] (what the attribute
//! implements), [`auth`] (where credentials go), [`envelope`] (how answers
//! are unwrapped), [`Client`] (the connection, limits and secret), [`Error`]
//! (what failed and what to do), [`Secret`] (tokens that never print),
//! [`providers`] (one home per provider: response type, envelope preset and
//! ready-made endpoint), [`clock`] (time, steerable in tests).
//!
//! The attribute's whole reference follows; it is also the documentation of
//! [`refresh_endpoint`](macro@refresh_endpoint).
//!
#![doc = include_str!("../../macros/ATTRIBUTE.md")]
#![deny(missing_docs)]

pub mod auth;
mod client;
pub mod clock;
pub mod endpoint;
pub mod envelope;
pub mod error;
mod exchange;
#[cfg(feature = "middleware")]
pub mod middleware;
mod peek;
pub mod providers;
pub mod retry;
mod scrub;
mod secret;
mod sending;
pub mod session;
pub mod store;
pub mod tokens;
#[cfg(feature = "tower")]
pub mod tower;

#[doc(hidden)]
pub mod __private;

pub use client::{
    Client, ClientBuilder, DEFAULT_API_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT,
    DEFAULT_USER_AGENT,
};
pub use endpoint::Endpoint;
pub use error::{ApiError, Error, ErrorKind};
pub use refresh_endpoint_macros::refresh_endpoint;
pub use secret::Secret;
pub use sending::Sending;

/// The HTTP client this crate is built on, for custom [`auth::Auth`] schemes
/// and for calls made with [`Client::http`].
pub use reqwest;

/// The middleware crate [`middleware::SessionMiddleware`] plugs into.
#[cfg(feature = "middleware")]
pub use reqwest_middleware;

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
