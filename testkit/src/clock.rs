//! The injectable clock every mock judges expiry and grace periods with.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A clock: a function returning "now".
///
/// Every mock builder takes one through `.clock(now)`; the default is
/// [`system_clock`]. Tests share one [`ManualClock`] between a mock and the
/// client under test so that token expiry is driven without sleeping.
pub type Now = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The wall clock, [`SystemTime::now`], as a [`Now`].
///
/// ```
/// let now = refresh_endpoint_testkit::system_clock();
/// assert!(now() > std::time::UNIX_EPOCH);
/// ```
pub fn system_clock() -> Now {
    Arc::new(SystemTime::now)
}

/// A clock that only moves when told to.
///
/// Clones share the same time, so one clone can be handed to a mock (through
/// [`ManualClock::now_fn`]) and another kept by the test to advance it.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use refresh_endpoint_testkit::ManualClock;
///
/// let clock = ManualClock::at_unix(1_700_000_000);
/// let now = clock.now_fn();
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(now(), UNIX_EPOCH + Duration::from_secs(1_700_000_090));
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// A clock stopped at `secs` seconds after the Unix epoch.
    pub fn at_unix(secs: u64) -> Self {
        Self::new(UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// The clock's current time.
    pub fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }

    /// Sets the clock to `to` (which may be in its past).
    pub fn set(&self, to: SystemTime) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = to;
    }

    /// This clock as a [`Now`], to hand to a mock builder's `.clock(..)`.
    pub fn now_fn(&self) -> Now {
        let clock = self.clone();
        Arc::new(move || clock.now())
    }
}

impl Default for ManualClock {
    /// A manual clock stopped at the current wall-clock time.
    fn default() -> Self {
        Self::new(SystemTime::now())
    }
}

/// Whole seconds since the Unix epoch (0 before it), as JWT `exp`/`iat` use.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The instant `secs` seconds after the Unix epoch.
pub(crate) fn from_unix_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Whether a JWT `exp` claim (seconds) has passed at `now`, the way `jose`
/// and most JWT libraries judge it: expired once `exp <= now` in whole seconds.
pub(crate) fn exp_passed(exp: u64, now: SystemTime) -> bool {
    exp <= unix_secs(now)
}
