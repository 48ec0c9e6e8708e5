//! [`Clock`]: where the session reads the time and waits, so tests can steer both.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A boxed future returned by [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The time source of a session: the wall clock in production, a
/// [`ManualClock`] in tests.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
    /// Waits for `duration` (between refresh retries).
    fn sleep(&self, duration: Duration) -> Sleep;
    /// Completes once `duration` has passed on this clock, without moving
    /// it: how long a caller waits for a refresh at most. By default a
    /// tokio timer.
    fn deadline(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The real clock: [`SystemTime::now`] and [`tokio::time::sleep`].
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// How far [`coarse_unix_nanos`] may lag behind [`SystemTime::now`], with
/// room to spare: the coarse clock is the time of the last scheduler tick
/// (1–10 ms ago).
pub(crate) const COARSE_LAG_NANOS: u64 = 1_000_000_000;

/// Nanoseconds since the Unix epoch as of the last scheduler tick: never
/// ahead of [`SystemTime::now`], behind it by less than
/// [`COARSE_LAG_NANOS`], and about five times cheaper to read (no cycle
/// counter). For "is it still well before then?" checks that leave the close
/// calls to the exact clock.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline]
pub(crate) fn coarse_unix_nanos() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable `timespec` for the whole call.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) };
    match (read, u64::try_from(now.tv_sec), u64::try_from(now.tv_nsec)) {
        (0, Ok(secs), Ok(nanos)) => secs.saturating_mul(1_000_000_000).saturating_add(nanos),
        _ => unix_nanos(SystemTime::now()),
    }
}

/// Other systems have no cheaper clock to offer: the exact one.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn coarse_unix_nanos() -> u64 {
    unix_nanos(SystemTime::now())
}

/// `time` as nanoseconds since the Unix epoch (0 before it, saturating
/// after the year 2554).
pub(crate) fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// A clock that moves only when told to; `sleep` advances it at once, and a
/// `deadline` completes when the clock has been moved past it.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use refresh_endpoint::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_060));
/// ```
#[derive(Debug)]
pub struct ManualClock {
    shared: Arc<Manual>,
}

#[derive(Debug)]
struct Manual {
    now: Mutex<SystemTime>,
    /// Woken whenever the clock moves, for pending deadlines.
    moved: tokio::sync::Notify,
}

impl Manual {
    fn lock(&self) -> std::sync::MutexGuard<'_, SystemTime> {
        self.now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ManualClock {
    /// A clock that reads `start` until moved.
    pub fn new(start: SystemTime) -> Self {
        ManualClock {
            shared: Arc::new(Manual {
                now: Mutex::new(start),
                moved: tokio::sync::Notify::new(),
            }),
        }
    }

    /// A clock that starts at the real current time.
    pub fn starting_now() -> Self {
        Self::new(SystemTime::now())
    }

    /// Moves the clock forward (no further than a [`SystemTime`] reaches).
    pub fn advance(&self, by: Duration) {
        {
            let mut now = self.shared.lock();
            if let Some(later) = now.checked_add(by) {
                *now = later;
            }
        }
        self.shared.moved.notify_waiters();
    }

    /// Sets the clock.
    pub fn set(&self, to: SystemTime) {
        *self.shared.lock() = to;
        self.shared.moved.notify_waiters();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.shared.lock()
    }
    fn sleep(&self, duration: Duration) -> Sleep {
        self.advance(duration);
        Box::pin(std::future::ready(()))
    }
    fn deadline(&self, duration: Duration) -> Sleep {
        let shared = Arc::clone(&self.shared);
        let until = self.now().checked_add(duration);
        Box::pin(async move {
            let Some(until) = until else {
                return std::future::pending().await;
            };
            loop {
                let moved = shared.moved.notified();
                let mut moved = std::pin::pin!(moved);
                moved.as_mut().enable();
                if *shared.lock() >= until {
                    return;
                }
                moved.await;
            }
        })
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
    fn sleep(&self, duration: Duration) -> Sleep {
        (**self).sleep(duration)
    }
    fn deadline(&self, duration: Duration) -> Sleep {
        (**self).deadline(duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_is_never_ahead_and_lags_less_than_its_bound() {
        for _ in 0..10_000 {
            let before = unix_nanos(SystemTime::now());
            let coarse = coarse_unix_nanos();
            let after = unix_nanos(SystemTime::now());
            assert!(coarse <= after, "ahead of the exact clock");
            assert!(
                coarse + COARSE_LAG_NANOS > before,
                "lags by a second or more"
            );
        }
    }

    #[tokio::test]
    async fn a_manual_deadline_completes_when_the_clock_passes_it() {
        use futures_util::FutureExt;
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH);
        let mut deadline = clock.deadline(Duration::from_secs(30));
        assert!((&mut deadline).now_or_never().is_none());
        clock.advance(Duration::from_secs(29));
        assert!((&mut deadline).now_or_never().is_none());
        clock.advance(Duration::from_secs(1));
        deadline.await;
        let never = clock.deadline(Duration::MAX);
        clock.advance(Duration::from_secs(1 << 40));
        assert!(never.now_or_never().is_none());
    }

    #[test]
    fn unix_nanos_saturates() {
        assert_eq!(unix_nanos(SystemTime::UNIX_EPOCH), 0);
        assert_eq!(
            unix_nanos(SystemTime::UNIX_EPOCH + Duration::new(1, 5)),
            1_000_000_005
        );
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 40);
        assert_eq!(unix_nanos(far), u64::MAX);
    }
}
