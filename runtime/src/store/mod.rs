//! [`Store`]: where a session's tokens survive restarts.
//!
//! [`MemoryStore`] keeps them for the life of the process (and lets several
//! sessions share them); [`FileStore`] writes them atomically to a file.

mod file;
mod memory;

pub use file::FileStore;
pub use memory::MemoryStore;

use futures_util::future::BoxFuture;

use crate::tokens::Tokens;
use crate::{Error, Secret};

/// What [`Store::save`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// The tokens were written.
    Written,
    /// The store held another refresh token than expected: someone else
    /// refreshed first. These are the tokens it holds (`None`: it was cleared).
    Conflict(Option<Tokens>),
}

/// Persists one session's tokens, with compare-and-swap on the refresh token.
///
/// `save` writes only if the stored refresh token is `expected` (or the
/// store is empty when `expected` is `None`), so a stale writer can never
/// overwrite a newer refresh token. Implementations must make each write
/// atomic: a reader sees the old tokens or the new ones, never a mix.
pub trait Store: Send + Sync + 'static {
    /// The stored tokens, if any.
    fn load(&self) -> BoxFuture<'_, Result<Option<Tokens>, Error>>;

    /// Writes `tokens` if the stored refresh token is `expected`.
    fn save<'a>(
        &'a self,
        expected: Option<&'a Secret>,
        tokens: &'a Tokens,
    ) -> BoxFuture<'a, Result<Saved, Error>>;

    /// Removes the tokens if the stored refresh token is still `expected`
    /// (a newer session written by another process is kept).
    fn clear<'a>(&'a self, expected: &'a Secret) -> BoxFuture<'a, Result<(), Error>>;
}
