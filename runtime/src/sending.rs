//! [`Sending`]: the future of a call, a named type rather than an `async fn`'s.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::client::unwrap_scrubbed;
use crate::endpoint::Endpoint;
use crate::envelope::RawResponse;
use crate::scrub::Scrubber;
use crate::{Client, Error, Secret};

/// The answer of the part of a call that does not depend on the endpoint.
type Exchange<'a> =
    Pin<Box<dyn Future<Output = Result<(RawResponse, Scrubber), Error>> + Send + 'a>>;

/// A call in flight: what [`Client::send`] and the `send` method that
/// `#[refresh_endpoint]` writes return. Await it for the endpoint's
/// response:
///
/// ```no_run
/// # use refresh_endpoint::{Client, Secret, refresh_endpoint};
/// # use refresh_endpoint::providers::atproto::AtpSession;
/// #[refresh_endpoint(path = "/xrpc/com.atproto.server.refreshSession",
///                    auth = refresh_bearer, envelope = xrpc, response = AtpSession)]
/// struct RefreshSession;
///
/// # async fn run(client: Client, refresh_jwt: Secret) -> Result<(), refresh_endpoint::Error> {
/// let session: AtpSession = RefreshSession.send(&client, &refresh_jwt).await?;
/// # let _ = session; Ok(()) }
/// ```
///
/// Nothing is sent until it is first polled. It is `Send` when the endpoint
/// is `Sync`, as an `async fn` holding `&endpoint` would be.
///
/// A named type, rather than an `async fn`'s, so that a crate declaring
/// many endpoints does not have the compiler infer and check a future type
/// for each of their `send` methods; the part of the call that does not
/// depend on the endpoint is one future, compiled once.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Sending<'a, E: Endpoint + ?Sized> {
    client: &'a Client,
    endpoint: &'a E,
    refresh_token: Option<&'a Secret>,
    exchange: Option<Exchange<'a>>,
}

impl<'a, E: Endpoint + ?Sized> Sending<'a, E> {
    pub(crate) fn new(
        client: &'a Client,
        endpoint: &'a E,
        refresh_token: Option<&'a Secret>,
    ) -> Self {
        Sending {
            client,
            endpoint,
            refresh_token,
            exchange: None,
        }
    }
}

impl<E: Endpoint + ?Sized> Future for Sending<'_, E> {
    type Output = Result<E::Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let exchange = match &mut this.exchange {
            Some(exchange) => exchange,
            None => {
                let client = this.client;
                let (request, scrubber) = client.prepare(this.endpoint, this.refresh_token)?;
                this.exchange.insert(Box::pin(client.execute_prepared(
                    E::NAME,
                    request,
                    scrubber,
                )))
            }
        };
        let (response, scrubber) = std::task::ready!(exchange.as_mut().poll(cx))?;
        Poll::Ready(unwrap_scrubbed::<E::Envelope, E::Response>(
            &response, &scrubber,
        ))
    }
}

impl<E: Endpoint + ?Sized> fmt::Debug for Sending<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sending")
            .field("endpoint", &E::NAME)
            .field("started", &self.exchange.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::oauth2::Refresh;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn is_send_and_sends_nothing_before_it_is_polled() {
        // Port 9 (discard): nothing may be listening; nothing is sent anyway.
        let client = Client::new("http://127.0.0.1:9").unwrap();
        let endpoint: Refresh = Refresh::new().refresh_token("rt");
        let sending = client.send(&endpoint, None);
        assert_send(&sending);
        assert_eq!(
            format!("{sending:?}"),
            "Sending { endpoint: \"oauth2_refresh\", started: false, .. }"
        );
    }
}
