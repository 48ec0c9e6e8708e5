//! [`Sending`]: the future of a call, a named type rather than an `async fn`'s.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::client::unwrap_scrubbed;
use crate::endpoint::Endpoint;
use crate::exchange::Exchange;
use crate::scrub::Scrubber;
use crate::{Client, Error, Secret};

pin_project_lite::pin_project! {
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
    /// is `Sync`, as an `async fn` holding `&endpoint` would be. It is not
    /// `Unpin` (it holds its timer in place, as an `async fn`'s future would):
    /// `.await` it, or pin it (`std::pin::pin!`) to poll it by hand.
    ///
    /// A named type, rather than an `async fn`'s, so that a crate declaring
    /// many endpoints does not have the compiler infer and check a future type
    /// for each of their `send` methods; the part of the call that does not
    /// depend on the endpoint is one future, compiled once.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Sending<'a, E>
    where
        E: Endpoint,
        E: ?Sized,
    {
        client: &'a Client,
        endpoint: &'a E,
        refresh_token: Option<&'a Secret>,
        // The secrets the request carries, once it is built.
        scrubber: Option<Scrubber>,
        #[pin]
        exchange: Option<Exchange>,
    }
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
            scrubber: None,
            exchange: None,
        }
    }
}

impl<E: Endpoint + ?Sized> Future for Sending<'_, E> {
    type Output = Result<E::Response, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.exchange.is_none() {
            let this = self.as_mut().project();
            let (request, scrubber) = this.client.prepare(*this.endpoint, *this.refresh_token)?;
            *this.scrubber = Some(scrubber);
            let exchange = this.client.exchange(E::NAME, request);
            self.as_mut().project().exchange.set(Some(exchange));
        }
        let this = self.project();
        let exchange = this
            .exchange
            .as_pin_mut()
            .expect("the exchange was just started");
        let fetched = std::task::ready!(exchange.poll(cx));
        let scrubber = this
            .scrubber
            .take()
            .expect("a call polled after it completed");
        let response = this.client.refuse_redirect(E::NAME, fetched, &scrubber)?;
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
