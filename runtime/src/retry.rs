//! [`RetryPolicy`]: how often and how patiently a failed refresh is retried.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The longest `Retry-After` the library honours or reports: 60 s. A
/// longer one asked by a server is read as this
/// ([`RawResponse::retry_after`](crate::envelope::RawResponse::retry_after),
/// [`Error::retry_after`](crate::Error::retry_after)).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Bounded exponential backoff with jitter, honouring `Retry-After`.
///
/// Only retryable failures ([`Error::is_retryable`](crate::Error::is_retryable))
/// are retried; the delay before retry `n` is drawn between half and all of
/// `initial_backoff × 2ⁿ⁻¹` (at most `max_backoff`), or the server's
/// `Retry-After` when that is longer (at most `max_retry_after`).
///
/// ```
/// use std::time::Duration;
/// use refresh_endpoint::retry::RetryPolicy;
///
/// let policy = RetryPolicy::default();
/// let delay = policy.delay(1, None);
/// assert!(delay >= Duration::from_millis(125) && delay <= Duration::from_millis(250));
/// assert_eq!(policy.delay(1, Some(Duration::from_secs(5))), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// How many times a refresh is attempted in all (1 = no retry). Default 4.
    pub max_attempts: u32,
    /// The backoff before the first retry. Default 250 ms.
    pub initial_backoff: Duration,
    /// The longest backoff. Default 8 s.
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured. Default 60 s.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            max_retry_after: MAX_RETRY_AFTER,
        }
    }
}

impl RetryPolicy {
    /// No retries: one attempt.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Sets the number of attempts (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the first and the longest backoff.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// The delay after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        let ceiling = self
            .initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        let backoff = scale(ceiling, 0.5 + 0.5 * random_unit());
        match retry_after {
            Some(asked) => backoff.max(asked.min(self.max_retry_after)),
            None => backoff,
        }
    }
}

/// `duration × factor` for a factor in `[0, 1]`, without the panic of
/// [`Duration::mul_f64`] near [`Duration::MAX`] (where `f64` rounds up).
pub(crate) fn scale(duration: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(duration.as_secs_f64() * factor)
        .map_or(duration, |scaled| scaled.min(duration))
}

/// A random number in `[0, 1)`, good enough for jitter.
pub(crate) fn random_unit() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy =
            RetryPolicy::default().with_backoff(Duration::from_secs(1), Duration::from_secs(4));
        for _ in 0..100 {
            let third = policy.delay(3, None);
            assert!(third >= Duration::from_secs(2) && third <= Duration::from_secs(4));
            assert!(policy.delay(30, None) <= Duration::from_secs(4));
        }
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn random_unit_is_in_range_and_varies() {
        let values: Vec<f64> = (0..50).map(|_| random_unit()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        assert!(values.windows(2).any(|w| w[0] != w[1]));
    }
}
