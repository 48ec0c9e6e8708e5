//! The one refresh in flight: call the endpoint, retry what may pass, save
//! before publishing, sign out on a dead refresh token.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures_util::future::FutureExt;
use tracing::Instrument;

use super::state::{Active, Kind, State};
use super::{Flight, Inner, RefreshEndpoint, Status};
use crate::client::unwrap_scrubbed;
use crate::envelope::{Envelope, RawResponse};
use crate::scrub::Scrubber;
use crate::store::{Lease, Saved};
use crate::tokens::{IntoTokens, Issued, Tokens};
use crate::{ApiError, Error, ErrorKind, Secret};

/// Starts the refresh in its own task and returns a future every caller can
/// await. Dropping callers does not cancel the task; a panic in it becomes
/// an error for the callers and leaves the previous state in place.
pub(super) fn spawn<E: RefreshEndpoint>(inner: Arc<Inner<E>>) -> Flight {
    let task = tokio::spawn(async move {
        let _clear = ClearFlight(&inner);
        run(&inner).await
    });
    async move {
        task.await.unwrap_or_else(|error| {
            Err(match error.is_panic() {
                true => panicked(),
                false => ErrorKind::Invalid(
                    "the refresh was cancelled (the runtime is shutting down); the session is unchanged"
                        .into(),
                )
                .into(),
            })
        })
    }
    .boxed()
    .shared()
}

/// The error every waiter gets when user code called by the refresh
/// panicked. The panic's message is left out: it may quote a token.
fn panicked() -> Error {
    ErrorKind::Invalid(
        "the refresh panicked in user code (a custom Envelope, Auth, IntoTokens or Store); \
         the session keeps its tokens and stays usable"
            .into(),
    )
    .into()
}

/// Empties the flight slot when the task ends, also by panic.
struct ClearFlight<'a, E>(&'a Inner<E>);

impl<E> Drop for ClearFlight<'_, E> {
    fn drop(&mut self) {
        *self.0.flight.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

async fn run<E: RefreshEndpoint>(inner: &Inner<E>) -> Result<(), Error> {
    let span = tracing::info_span!(
        "refresh_endpoint.refresh",
        endpoint = E::NAME,
        attempts = tracing::field::Empty,
        outcome = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    );
    let started = Instant::now();
    let result = refresh(inner, &span).instrument(span.clone()).await;
    span.record("duration_ms", started.elapsed().as_millis() as u64);
    let outcome = match &result {
        Ok(()) => "refreshed",
        Err(error) if error.is_terminal() => "signed_out",
        Err(error) if error.is_retryable() => "failed_retryable",
        Err(_) => "failed",
    };
    span.record("outcome", outcome);
    match &result {
        Ok(()) => tracing::info!(parent: &span, "session refreshed"),
        Err(error) => tracing::warn!(parent: &span, %error, "session refresh failed"),
    }
    result
}

async fn refresh<E: RefreshEndpoint>(inner: &Inner<E>, span: &tracing::Span) -> Result<(), Error> {
    let state = inner.state.load_full();
    let active = match &state.kind {
        Kind::SignedOut(reason) => return Err(ErrorKind::SignInAgain(reason.clone()).into()),
        Kind::Active(active) => active,
    };
    if let Some(expected) = &active.unsaved {
        // A refresh succeeded but its tokens are not stored yet: store them
        // first, never refresh again with a token the store does not know.
        return save_and_publish(inner, expected.as_ref(), active.tokens.clone(), Due::Floor).await;
    }
    let mut current = active.tokens.clone();
    let guard = loop {
        match inner.store.lease(&current).await {
            Ok(Lease::Refreshed(stored)) => {
                let adopted = Active::new(stored, inner.skew, inner.jitter, inner.clock.now());
                if adopted.is_fresh(inner.clock.now()) {
                    tracing::debug!(parent: span, "another process refreshed; using its tokens");
                    publish(inner, Kind::Active(adopted));
                    return Ok(());
                }
                // Newer than ours but due as well (stored long ago): refresh
                // those, under the lease.
                current = adopted.tokens;
            }
            Ok(Lease::Acquired(guard)) => break guard,
            Err(error) => {
                // A shared store that cannot be reached: no refresh without
                // the lease; the tokens are kept, the session stays active.
                note_failure(inner);
                return Err(error);
            }
        }
    };
    // A panic in user code (a custom Auth, Envelope, IntoTokens or Store)
    // still releases the lease; the waiters get an error, the state stays.
    let result = AssertUnwindSafe(refresh_holding_lease(inner, current, span))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(panicked()));
    guard.release().await;
    result
}

async fn refresh_holding_lease<E: RefreshEndpoint>(
    inner: &Inner<E>,
    mut tokens: Tokens,
    span: &tracing::Span,
) -> Result<(), Error> {
    // Another session or process on the same store may have refreshed already.
    let stored = inner
        .store
        .load()
        .await
        .inspect_err(|_| note_failure(inner))?;
    if let Some(stored) = stored
        && stored.refresh_token != tokens.refresh_token
    {
        let adopted = Active::new(stored.clone(), inner.skew, inner.jitter, inner.clock.now());
        if adopted.is_fresh(inner.clock.now()) {
            tracing::debug!(parent: span, "adopted tokens refreshed elsewhere");
            publish(inner, Kind::Active(adopted));
            return Ok(());
        }
        tokens = stored;
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        span.record("attempts", attempt);
        let mut endpoint = inner.endpoint.clone();
        endpoint.set_refresh_token(&tokens.refresh_token);
        endpoint.set_access_token(&tokens.access_token);
        let result = match inner
            .client
            .execute_scrubbed(&endpoint, Some(&tokens.refresh_token))
            .await
        {
            Ok((answer, mut scrubber)) => {
                let received_at = inner.clock.now();
                match read_answer::<E>(&answer, received_at, &mut scrubber) {
                    Err(Unread { error, salvage }) if salvage && answer.is_success() => {
                        // The provider may have spent the old refresh token:
                        // keep what the answer holds, then report the error.
                        return match salvage_answer::<E>(&answer, received_at, &tokens) {
                            Some((next, due)) => {
                                tracing::warn!(parent: span, %error, "the refresh answer did not decode; its tokens were salvaged");
                                save_and_publish(inner, Some(&tokens.refresh_token), next, due)
                                    .await
                                    .and(Err(error))
                            }
                            None => {
                                note_failure(inner);
                                Err(error)
                            }
                        };
                    }
                    read => read.map_err(|unread| unread.error),
                }
            }
            Err(error) => Err(error),
        };
        match result {
            Ok(issued) => {
                let next = issued.into_tokens(&tokens);
                return save_and_publish(inner, Some(&tokens.refresh_token), next, Due::Floor)
                    .await;
            }
            Err(error) if error.is_terminal() => {
                sign_out(inner, &tokens.refresh_token, error.api().cloned()).await;
                return Err(error);
            }
            Err(error) if error.is_retryable() && attempt < inner.retry.max_attempts => {
                let delay = inner.retry.delay(attempt, error.retry_after());
                tracing::debug!(parent: span, attempt, %error, delay_ms = delay.as_millis() as u64, "retrying refresh");
                inner.clock.sleep(delay).await;
            }
            Err(error) => {
                note_failure(inner);
                return Err(error);
            }
        }
    }
}

/// Why an answer gave no tokens, and whether its token fields should be
/// salvaged (it did not decode, or user code panicked on it).
struct Unread {
    error: Error,
    salvage: bool,
}

/// The tokens in an answer, through the endpoint's envelope and the
/// response's [`IntoTokens`]: user code, which may panic.
fn read_answer<E: RefreshEndpoint>(
    answer: &RawResponse,
    received_at: SystemTime,
    scrubber: &mut Scrubber,
) -> Result<Issued, Unread> {
    let read = catch_unwind(AssertUnwindSafe(|| {
        unwrap_scrubbed::<E::Envelope, E::Response>(answer, scrubber)?
            .into_tokens(received_at)
            .map_err(|e| e.scrubbed(scrubber))
    }));
    match read {
        Ok(Ok(issued)) => Ok(issued),
        Ok(Err(error)) => {
            let salvage = matches!(error.kind(), ErrorKind::Decode { .. });
            Err(Unread { error, salvage })
        }
        Err(_) => Err(Unread {
            error: panicked(),
            salvage: true,
        }),
    }
}

/// The next tokens from the token fields of a 2xx answer that gave no
/// tokens otherwise ([`IntoTokens::salvage`]), and when they are due.
fn salvage_answer<E: RefreshEndpoint>(
    answer: &RawResponse,
    received_at: SystemTime,
    previous: &Tokens,
) -> Option<(Tokens, Due)> {
    // The envelope's view of the answer (Cloudreve's `data`, say), else the
    // whole body: the envelope is user code too, and may panic again.
    let success = catch_unwind(AssertUnwindSafe(|| {
        E::Envelope::unwrap::<serde_json::Value>(answer)
    }))
    .ok()
    .and_then(Result::ok)
    .or_else(|| answer.json::<serde_json::Value>().ok())?;
    let salvaged = catch_unwind(AssertUnwindSafe(|| {
        E::Response::salvage(&success, received_at)
    }))
    .ok()??;
    Some(match salvaged.access_token {
        Some(access_token) => {
            let next = Issued::access(access_token)
                .with_refresh_token(Some(salvaged.refresh_token))
                .with_access_expires_at(salvaged.access_expires_at)
                .into_tokens(previous);
            let due = match next.access_expires_at {
                Some(_) => Due::Floor,
                None => Due::Soon,
            };
            (next, due)
        }
        // The old access token stays, and the next call refreshes.
        None => {
            let mut next = previous.clone();
            next.refresh_token = salvaged.refresh_token;
            next.refresh_expires_at = None;
            (next, Due::Now)
        }
    })
}

/// When tokens a refresh produced are due for the next proactive refresh.
#[derive(Clone, Copy)]
enum Due {
    /// At their expiry (less the skew), but not before the minimum refresh
    /// interval: an answer saying "expired already" causes no storm.
    Floor,
    /// Their expiry is unknown (salvaged): after the minimum interval (or
    /// at their expiry, if that is later).
    Soon,
    /// At the next call (a salvaged refresh token next to an old access token).
    Now,
}

/// The session state for tokens a refresh produced at `now`.
fn activate<E>(inner: &Inner<E>, tokens: Tokens, due: Due) -> Active {
    let now = inner.clock.now();
    let active = Active::new(tokens, inner.skew, inner.jitter, now);
    let after_interval = now.checked_add(inner.min_refresh_interval);
    match due {
        Due::Floor => active.not_before(after_interval),
        Due::Soon => Active {
            refresh_at: Some(active.refresh_at.max(after_interval).unwrap_or(now)),
            ..active
        },
        Due::Now => Active {
            refresh_at: Some(now),
            ..active
        },
    }
}

/// Saves `next` (compare-and-swap against `expected`) and only then
/// publishes it. If the store keeps failing, the tokens stay in memory
/// marked unsaved, so a rotated refresh token is never lost.
async fn save_and_publish<E: RefreshEndpoint>(
    inner: &Inner<E>,
    expected: Option<&Secret>,
    next: Tokens,
    due: Due,
) -> Result<(), Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match inner.store.save(expected, &next).await {
            Ok(Saved::Written) => {
                publish(inner, Kind::Active(activate(inner, next, due)));
                return Ok(());
            }
            Ok(Saved::Conflict(Some(stored))) => {
                tracing::debug!("the store holds newer tokens; using them");
                publish(inner, Kind::Active(activate(inner, stored, Due::Floor)));
                return Ok(());
            }
            Ok(Saved::Conflict(None)) if expected.is_some() => {
                // Cleared meanwhile (signed out elsewhere): these tokens are
                // newer than that sign-out, keep them.
                return Box::pin(save_and_publish(inner, None, next, due)).await;
            }
            Ok(Saved::Conflict(None)) => return unreachable_conflict(),
            Err(error) if error.is_retryable() && attempt < inner.retry.max_attempts => {
                inner.clock.sleep(inner.retry.delay(attempt, None)).await;
            }
            Err(error) => {
                let mut active = activate(inner, next, due);
                active.unsaved = Some(expected.cloned());
                publish(inner, Kind::Active(active));
                return Err(error);
            }
        }
    }
}

/// A store answering "conflict, empty" to a write that expected it empty
/// breaks the `Store` contract; treat it as a retryable store failure.
fn unreachable_conflict() -> Result<(), Error> {
    Err(ErrorKind::Store {
        message: "the store reported a conflict on an empty slot".into(),
        retryable: true,
    }
    .into())
}

async fn sign_out<E: RefreshEndpoint>(inner: &Inner<E>, dead: &Secret, reason: Option<ApiError>) {
    if let Err(error) = inner.store.clear(dead).await {
        tracing::warn!(%error, "could not clear the store after sign-out");
    }
    publish(inner, Kind::SignedOut(reason.clone()));
    // No copy of a dead session's access token stays behind.
    inner.header_value.store(None);
    inner
        .status_sender()
        .send_replace(Status::SignedOut(reason));
}

/// After a failed refresh, hold off proactive attempts for a while.
fn note_failure<E: RefreshEndpoint>(inner: &Inner<E>) {
    let state = inner.state.load();
    if let Kind::Active(active) = &state.kind {
        let mut next = Active::new(
            active.tokens.clone(),
            inner.skew,
            inner.jitter,
            inner.clock.now(),
        );
        next.refresh_at = active.refresh_at;
        next.unsaved = active.unsaved.clone();
        next.retry_not_before = inner.clock.now().checked_add(inner.cooldown);
        // Same generation: nothing was refreshed, waiters must not assume so.
        inner
            .state
            .store(State::new(state.generation, Kind::Active(next)));
    }
}

fn publish<E>(inner: &Inner<E>, kind: Kind) {
    let generation = inner.state.load().generation + 1;
    inner.state.store(State::new(generation, kind));
}
