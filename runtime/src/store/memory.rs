use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, FutureExt};

use super::{Saved, Store};
use crate::tokens::Tokens;
use crate::{Error, Secret};

/// Keeps tokens in memory. Clones share the same tokens, so a new session
/// built on a clone picks up where another left off.
///
/// ```
/// use refresh_endpoint::store::{MemoryStore, Saved, Store};
/// use refresh_endpoint::{Secret, tokens::Tokens};
///
/// # tokio_test_block_on(async {
/// let store = MemoryStore::new();
/// let tokens = Tokens::new(Secret::new("a"), Secret::new("r1"));
/// assert_eq!(store.save(None, &tokens).await.unwrap(), Saved::Written);
/// // A writer that expected another refresh token loses:
/// let stale = Secret::new("r0");
/// assert!(matches!(store.save(Some(&stale), &tokens).await.unwrap(), Saved::Conflict(_)));
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    tokens: Arc<Mutex<Option<Tokens>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `tokens`.
    pub fn with_tokens(tokens: Tokens) -> Self {
        MemoryStore {
            tokens: Arc::new(Mutex::new(Some(tokens))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Tokens>> {
        self.tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Store for MemoryStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<Tokens>, Error>> {
        let tokens = self.lock().clone();
        async move { Ok(tokens) }.boxed()
    }

    fn save<'a>(
        &'a self,
        expected: Option<&'a Secret>,
        tokens: &'a Tokens,
    ) -> BoxFuture<'a, Result<Saved, Error>> {
        let mut slot = self.lock();
        let current = slot.as_ref().map(|t| &t.refresh_token);
        let result = if current == expected {
            *slot = Some(tokens.clone());
            Saved::Written
        } else {
            Saved::Conflict(slot.clone())
        };
        drop(slot);
        async move { Ok(result) }.boxed()
    }

    fn clear<'a>(&'a self, expected: &'a Secret) -> BoxFuture<'a, Result<(), Error>> {
        let mut slot = self.lock();
        if slot.as_ref().is_some_and(|t| &t.refresh_token == expected) {
            *slot = None;
        }
        drop(slot);
        async move { Ok(()) }.boxed()
    }
}
