//! What a session knows at one moment; replaced whole, never mutated.

use std::time::{Duration, SystemTime};

use crate::retry::random_unit;
use crate::tokens::{Tokens, jwt_expiry};
use crate::{ApiError, Secret};

/// One published state of a session. Readers load it without a lock.
pub(crate) struct State {
    /// Bumped on every change, so a waiter can tell that a refresh happened.
    pub generation: u64,
    pub kind: Kind,
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
    /// Tokens received at `now`. The proactive margin is the skew plus
    /// jitter, but never more than half the lifetime left at `now`, so a
    /// short-lived token (Clerk's 60 s) is not refreshed on every call.
    pub fn new(tokens: Tokens, skew: Duration, jitter: Duration, now: SystemTime) -> Self {
        let expires_at = tokens
            .access_expires_at
            .or_else(|| jwt_expiry(&tokens.access_token));
        let refresh_at = expires_at.map(|at| {
            let left = at.duration_since(now).unwrap_or_default();
            let margin = (skew + jitter.mul_f64(random_unit())).min(left / 2);
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

    /// Saved, and not yet due for a proactive refresh.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.unsaved.is_none() && self.refresh_at.is_none_or(|at| now < at)
    }

    /// Saved, and the access token has not expired.
    pub fn is_usable(&self, now: SystemTime) -> bool {
        self.unsaved.is_none() && self.expires_at.is_none_or(|at| now < at)
    }
}
