//! What a session knows at one moment; replaced whole, never mutated.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use crate::clock::unix_nanos;
use crate::retry::{random_unit, scale};
use crate::tokens::{Tokens, jwt_expiry, within_horizon};
use crate::{ApiError, Secret};

/// One published state of a session. Readers load it without a lock.
pub(crate) struct State {
    /// Bumped on every change, so a waiter can tell that a refresh happened.
    pub generation: u64,
    /// Until when (nanoseconds since the Unix epoch) a caller may take the
    /// access token as it is, without asking for a refresh: the hot path's
    /// one comparison. 0 when signed out or unsaved.
    pub hand_out_until: u64,
    /// The access token for the hot path (see [`super::hot`]); `None` when
    /// it may not be handed out as it is.
    pub token: Option<Secret>,
    /// Separately allocated copies of `token`, made when a thread first
    /// caches this state, so that threads on different cores bump different
    /// reference counts.
    pub copies: OnceLock<Box<[Secret]>>,
    pub kind: Kind,
}

impl State {
    pub fn new(generation: u64, kind: Kind) -> Self {
        let hand_out_until = match &kind {
            Kind::Active(active) if active.unsaved.is_none() => {
                active.hand_out_until().map_or(u64::MAX, unix_nanos)
            }
            _ => 0,
        };
        let token = match (&kind, hand_out_until) {
            (_, 0) | (Kind::SignedOut(_), _) => None,
            (Kind::Active(active), _) => Some(active.tokens.access_token.clone()),
        };
        State {
            generation,
            hand_out_until,
            token,
            copies: OnceLock::new(),
            kind,
        }
    }
}

pub(crate) enum Kind {
    Active(Active),
    SignedOut(Option<ApiError>),
}

pub(crate) struct Active {
    pub tokens: Tokens,
    /// When the access token expires (provider field, else JWT `exp`).
    pub expires_at: Option<SystemTime>,
    /// When a caller should start a proactive refresh: expiry − skew − jitter.
    pub refresh_at: Option<SystemTime>,
    /// `Some(expected)` while the tokens are not yet in the store: the
    /// refresh token the store holds, to compare-and-swap against.
    pub unsaved: Option<Option<Secret>>,
    /// After a failed proactive refresh, no new attempt before this time
    /// while the access token is still valid.
    pub retry_not_before: Option<SystemTime>,
}

impl Active {
    /// Tokens received at `now`. An expiry beyond
    /// [`EXPIRY_HORIZON`](crate::tokens::EXPIRY_HORIZON) counts as none. The proactive margin is the skew plus
    /// jitter, but never more than half the lifetime left at `now`, so a
    /// short-lived token (Clerk's 60 s) is not refreshed on every call.
    pub fn new(tokens: Tokens, skew: Duration, jitter: Duration, now: SystemTime) -> Self {
        let expires_at = tokens
            .access_expires_at
            .or_else(|| jwt_expiry(&tokens.access_token))
            .and_then(|at| within_horizon(at, now));
        let refresh_at = expires_at.map(|at| {
            let left = at.duration_since(now).unwrap_or_default();
            let margin = skew
                .saturating_add(scale(jitter, random_unit()))
                .min(left / 2);
            at.checked_sub(margin).unwrap_or(SystemTime::UNIX_EPOCH)
        });
        Active {
            tokens,
            expires_at,
            refresh_at,
            unsaved: None,
            retry_not_before: None,
        }
    }

    /// Not due for a proactive refresh before `at` (when the token has an
    /// expiry at all): the minimum refresh interval.
    pub fn not_before(mut self, at: Option<SystemTime>) -> Self {
        if let (Some(refresh_at), Some(at)) = (self.refresh_at, at) {
            self.refresh_at = Some(refresh_at.max(at));
        }
        self
    }

    /// Until when the access token may be handed out as it is (if saved):
    /// the refresh time or, after a failed refresh, the end of the cooldown
    /// unless the token expires first. `None`: no end.
    fn hand_out_until(&self) -> Option<SystemTime> {
        let refresh_at = self.refresh_at?;
        let cooldown = match (self.retry_not_before, self.expires_at) {
            (Some(cooldown), Some(expires)) => Some(cooldown.min(expires)),
            (cooldown, None) => cooldown,
            (None, Some(_)) => None,
        };
        Some(cooldown.map_or(refresh_at, |cooldown| cooldown.max(refresh_at)))
    }

    /// Saved, and not yet due for a proactive refresh.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.unsaved.is_none() && self.refresh_at.is_none_or(|at| now < at)
    }

    /// Saved, and the access token has not expired.
    pub fn is_usable(&self, now: SystemTime) -> bool {
        self.unsaved.is_none() && self.expires_at.is_none_or(|at| now < at)
    }
}
