use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt};

use super::{Saved, Store};
use crate::tokens::Tokens;
use crate::{Error, ErrorKind, Secret};

/// Keeps tokens in a JSON file, written atomically: a temporary file in the
/// same folder, `fsync`, `rename` over the old file, `fsync` of the folder.
/// The file is created with mode `0600` on Unix. A crash at any moment
/// leaves either the previous tokens or the new ones, never a torn file.
///
/// One process should own a file; several replicas share a session through
/// a shared store instead (see the README's "Running on several replicas").
///
/// ```no_run
/// use refresh_endpoint::store::FileStore;
///
/// let store = FileStore::new("session.json");
/// ```
#[derive(Debug, Clone)]
pub struct FileStore {
    path: Arc<PathBuf>,
    /// Serializes this process's read-compare-write cycles.
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl FileStore {
    /// A store at `path` (created on first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStore {
            path: Arc::new(path.into()),
            lock: Arc::default(),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Path) -> io::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let path = Arc::clone(&self.path);
        tokio::task::spawn_blocking(move || work(&path))
            .await
            .map_err(|e| store_error(io::Error::other(e)))?
            .map_err(store_error)
    }
}

fn store_error(error: io::Error) -> Error {
    ErrorKind::Store {
        message: format!("file store: {error}"),
        retryable: !matches!(
            error.kind(),
            io::ErrorKind::PermissionDenied | io::ErrorKind::InvalidData
        ),
    }
    .into()
}

fn read(path: &Path) -> io::Result<Option<Tokens>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a token file: {e}", path.display()),
            )
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // One fixed name: a write cut short by a crash is overwritten by the next.
    let temp = dir.join(format!(".{name}.tmp"));
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = (|| {
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        // The rename itself must reach the disk.
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

impl Store for FileStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<Tokens>, Error>> {
        async move {
            let _guard = self.lock.lock().await;
            self.blocking(read).await
        }
        .boxed()
    }

    fn save<'a>(
        &'a self,
        expected: Option<&'a Secret>,
        tokens: &'a Tokens,
    ) -> BoxFuture<'a, Result<Saved, Error>> {
        async move {
            let _guard = self.lock.lock().await;
            let expected = expected.cloned();
            let bytes =
                serde_json::to_vec_pretty(tokens).map_err(|e| store_error(io::Error::other(e)))?;
            self.blocking(move |path| {
                let current = read(path)?;
                if current.as_ref().map(|t| &t.refresh_token) != expected.as_ref() {
                    return Ok(Saved::Conflict(current));
                }
                write_atomically(path, &bytes)?;
                Ok(Saved::Written)
            })
            .await
        }
        .boxed()
    }

    fn clear<'a>(&'a self, expected: &'a Secret) -> BoxFuture<'a, Result<(), Error>> {
        async move {
            let _guard = self.lock.lock().await;
            let expected = expected.clone();
            self.blocking(move |path| match read(path) {
                Ok(Some(current)) if current.refresh_token != expected => Ok(()),
                _ => remove(path),
            })
            .await
        }
        .boxed()
    }
}
