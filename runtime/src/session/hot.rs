//! [`Published`]: a session's current [`State`], and the hot path that hands
//! out its access token without a lock or a shared write.
//!
//! The state sits behind an [`ArcSwap`], replaced whole on every change, and
//! a version counter bumped after each replacement. The hot path keeps, per
//! thread, a copy of what it needs from the state of a few sessions (the
//! version it was taken at, the hand-out deadline, a token): a call whose
//! thread holds an entry of the current version, and whose clock reading is
//! before the deadline, clones the token from that entry. That is one
//! thread-local lookup, one atomic load of the version and the token's
//! reference count, and the token is one of several copies of the same
//! string (one per thread, up to [`max_copies`]), so that threads on
//! different cores do not write to the same cache line.
//!
//! Anything else is answered from the state itself: its deadline and its
//! token. An entry is only (re)filled when the same session misses at the
//! same slot twice in a row, so a thread that serves many sessions at random
//! (a server holding thousands of accounts) neither evicts its entries on
//! every call nor drops a token of another session (a write to a cold cache
//! line) to cache one it will not see again; and a state's extra copies of
//! its token are made only when a thread first caches it, so an idle session
//! holds its token once.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::{ArcSwap, Guard};

use super::state::State;
use crate::Secret;

/// Entries per thread, each for one session: a thread that calls up to this
/// many sessions in turn keeps all of them cached (more share the slots).
const SLOTS: usize = 4;

/// A session's published state, as the hot path and the refresh see it.
pub(crate) struct Published {
    /// Tells this session's entries apart in the per-thread cache; never
    /// reused within a process.
    id: u64,
    /// Bumped after every `store`: a cached entry of an older version is
    /// not used.
    version: AtomicU64,
    state: ArcSwap<State>,
}

impl Published {
    pub fn new(state: State) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Published {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            version: AtomicU64::new(0),
            state: ArcSwap::from_pointee(state),
        }
    }

    /// The current state, briefly (for a quick look).
    pub fn load(&self) -> Guard<Arc<State>> {
        self.state.load()
    }

    /// The current state, to hold across an `.await`.
    pub fn load_full(&self) -> Arc<State> {
        self.state.load_full()
    }

    /// Replaces the state. The version is bumped after the state is in
    /// place, so an entry filled at the new version holds the new state.
    pub fn store(&self, state: State) {
        self.state.store(Arc::new(state));
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The access token, if it may be handed out as it is at `now`
    /// (nanoseconds since the Unix epoch, a reading no earlier than the
    /// exact time). `None` sends the caller to the slow path.
    #[inline]
    pub fn fresh_token(&self, now: u64) -> Option<Secret> {
        // Read before the state: an entry is never newer than its version.
        let version = self.version.load(Ordering::Acquire);
        // During thread teardown the cache may be gone: the slow path answers.
        let cached = CACHE.try_with(|cache| {
            let cache = &mut *cache.borrow_mut();
            let slot = self.id as usize % SLOTS;
            let entry = &mut cache.entries[slot];
            if entry.session == self.id && entry.version == version {
                return match now < entry.hand_out_until {
                    true => entry.token.clone(),
                    false => None,
                };
            }
            self.miss(cache, slot, version, now)
        });
        cached.ok().flatten()
    }

    /// The answer from the state itself; the entry is filled when this
    /// session missed at this slot just before.
    #[cold]
    fn miss(&self, cache: &mut Cache, slot: usize, version: u64, now: u64) -> Option<Secret> {
        let state = self.state.load();
        if cache.missed[slot] != self.id {
            cache.missed[slot] = self.id;
            return match now < state.hand_out_until {
                true => state.token.clone(),
                false => None,
            };
        }
        let shard = *cache.shard.get_or_insert_with(next_shard);
        let entry = &mut cache.entries[slot];
        *entry = Entry {
            session: self.id,
            version,
            hand_out_until: state.hand_out_until,
            token: state.copy(shard),
        };
        match now < entry.hand_out_until {
            true => entry.token.clone(),
            false => None,
        }
    }
}

impl State {
    /// The copy of the token the thread of `shard` takes (made on first use).
    fn copy(&self, shard: usize) -> Option<Secret> {
        let token = self.token.as_ref()?;
        match shard % max_copies() {
            0 => Some(token.clone()),
            i => {
                let copies = self.copies.get_or_init(|| {
                    (1..max_copies())
                        .map(|_| Secret::new(token.expose()))
                        .collect()
                });
                copies.get(i - 1).cloned()
            }
        }
    }
}

/// How many copies of an access token a state holds for the hot path: one
/// per core, at most 8 (the token itself and up to 7 separate copies).
pub(crate) fn max_copies() -> usize {
    static COPIES: OnceLock<usize> = OnceLock::new();
    *COPIES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(8)))
}

/// One thread's view of up to [`SLOTS`] sessions.
struct Cache {
    /// Which copy of a token this thread takes, chosen at its first call.
    shard: Option<usize>,
    entries: [Entry; SLOTS],
    /// Per slot, the session that last missed there (0 for none).
    missed: [u64; SLOTS],
}

/// Spreads threads over the copies: each new thread takes the next one.
fn next_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

struct Entry {
    /// The session's [`Published::id`]; 0 for an empty entry.
    session: u64,
    version: u64,
    hand_out_until: u64,
    token: Option<Secret>,
}

thread_local! {
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache {
            shard: None,
            entries: [const {
                Entry {
                    session: 0,
                    version: 0,
                    hand_out_until: 0,
                    token: None,
                }
            }; SLOTS],
            missed: [0; SLOTS],
        })
    };
}
