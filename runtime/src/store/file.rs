use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};

use super::{Saved, Store};
use crate::tokens::Tokens;
use crate::{Error, ErrorKind, Secret};

/// How long [`FileStore`] waits for another process's lock on the file
/// before a save fails with a retryable error; see [`FileStore::lock_timeout`].
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Keeps tokens in a JSON file, written atomically, private to its owner,
/// and safe to share between processes of one user on one machine.
///
/// # What it guarantees
///
/// - **Atomic.** A save writes a new temporary file in the same folder,
///   `fsync`s it, `rename`s it over the token file and `fsync`s the folder.
///   A crash (even `kill -9`) at any moment leaves the previous tokens or the
///   new ones, never a torn file. Temporary files a crash leaves behind
///   (`.{name}.tmp-` and 16 random hex digits) are removed by the next save
///   to the file, from any process.
/// - **Private (Unix).** The temporary file is created exclusively
///   (`O_CREAT | O_EXCL | O_NOFOLLOW`) with an unpredictable name and mode
///   `0600` from its creation, so what lands at the token path is always a
///   new regular file of this process's user, readable by nobody else.
///   Planting a file or a symbolic link next to it changes nothing. A token
///   file found with group or other permissions (written by hand, say) is
///   set to `0600` when read, with a warning in the log.
/// - **No symbolic link is followed (Unix)** at the token path or the lock
///   path. `rename` replaces a link itself, never its target. A token file
///   that is a symbolic link, not a regular file (a FIFO, a folder), or owned
///   by another user is refused with a non-retryable [`ErrorKind::Store`]
///   error and left as it is: its tokens may have been chosen by someone
///   else, and a link may be the user's own doing, so the store neither
///   reads it nor replaces it. Point the store at the real file instead.
///   Only the last component of the path is checked: the folders above it
///   must be trusted.
/// - **Shared safely (Unix).** Every compare-and-swap ([`Store::save`],
///   [`Store::clear`]) runs under an advisory `flock` on a lock file next to
///   the token file (`.{name}.lock`, mode `0600`, kept after use). Two
///   processes sharing one file (a CLI next to a daemon) never both replace
///   the same refresh token: one of them gets [`Saved::Conflict`] with the
///   other's tokens. A process killed while holding the lock releases it at
///   once. A lock held longer than [`FileStore::lock_timeout`] fails the save
///   with a retryable error rather than blocking forever. Locks are taken on
///   tokio's blocking threads, never on the runtime's workers.
///
/// # What it does not guarantee
///
/// - Protection from the same user or root: they can read, replace or delete
///   the file whatever its mode. Nor from someone who can write the token
///   file's folder deleting or renaming files there: that can sign the
///   session out (or make saves fail), but cannot make the store write
///   tokens anywhere but a new private file, nor read tokens it did not
///   write as long as the attacker is another user.
/// - A lease: two processes may both call the provider with the same
///   refresh token; the second save is refused ([`Saved::Conflict`]) and its
///   session adopts the stored tokens. With strictly single-use refresh
///   tokens the provider may refuse the second request first; several
///   processes that refresh often should use a shared store with a lease
///   (see the README's "Running on several replicas").
/// - On other platforms than Unix: atomic writes and exclusive creation of
///   the temporary file only; no lock between processes, no owner or mode
///   checks.
///
/// ```no_run
/// use refresh_endpoint::store::FileStore;
///
/// let store = FileStore::new("session.json");
/// ```
#[derive(Debug, Clone)]
pub struct FileStore {
    path: Arc<PathBuf>,
    /// Serializes this process's read-compare-write cycles (the `flock`
    /// serializes processes).
    lock: Arc<tokio::sync::Mutex<()>>,
    lock_timeout: Duration,
}

impl FileStore {
    /// A store at `path` (created on first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStore {
            path: Arc::new(path.into()),
            lock: Arc::default(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }

    /// How long a save or clear waits for another process that holds the
    /// file's lock, before failing with a retryable error. Default:
    /// [`DEFAULT_LOCK_TIMEOUT`] (10 s); a save holds the lock for the time
    /// of two `fsync`s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use refresh_endpoint::store::FileStore;
    ///
    /// let store = FileStore::new("session.json").lock_timeout(Duration::from_secs(2));
    /// ```
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
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

    /// Runs `work` on a blocking thread with the file locked against this
    /// process's other tasks and against other processes, after removing
    /// stale temporary files.
    async fn locked<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Paths) -> io::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let _guard = self.lock.lock().await;
        let timeout = self.lock_timeout;
        self.blocking(move |path| {
            let paths = Paths::new(path)?;
            let _lock = FileLock::acquire(&paths.lock, timeout)?;
            paths.sweep_stale_temporaries();
            work(&paths)
        })
        .await
    }
}

fn store_error(error: io::Error) -> Error {
    ErrorKind::Store {
        message: format!("file store: {error}"),
        retryable: !matches!(
            error.kind(),
            io::ErrorKind::PermissionDenied
                | io::ErrorKind::InvalidData
                | io::ErrorKind::InvalidInput
        ),
    }
    .into()
}

/// A refusal to use what is at `path`: not retried.
fn refused(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{}: {why}", path.display()),
    )
}

/// The token file and its siblings: the lock file and the temporary files.
struct Paths {
    file: PathBuf,
    dir: PathBuf,
    lock: PathBuf,
    /// `.{name}.tmp-`, followed by 16 random hex digits.
    temp_prefix: OsString,
}

impl Paths {
    fn new(file: &Path) -> io::Result<Self> {
        let name = file.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} does not name a file", file.display()),
            )
        })?;
        let dir = match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let sibling = |suffix: &str| {
            let mut sibling = OsString::from(".");
            sibling.push(name);
            sibling.push(suffix);
            sibling
        };
        Ok(Paths {
            file: file.to_path_buf(),
            lock: dir.join(sibling(".lock")),
            temp_prefix: sibling(".tmp-"),
            dir,
        })
    }

    fn is_temporary(&self, name: &OsStr) -> bool {
        let (name, prefix) = (name.as_encoded_bytes(), self.temp_prefix.as_encoded_bytes());
        name.strip_prefix(prefix).is_some_and(|suffix| {
            suffix.len() == 16
                && suffix
                    .iter()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        })
    }

    /// Removes temporary files a crash left behind. Called with the lock
    /// held, so no save of a cooperating process is under way. Best effort:
    /// a folder that cannot be listed is not an error.
    fn sweep_stale_temporaries(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let not_a_folder = entry.file_type().is_ok_and(|t| !t.is_dir());
            if not_a_folder && self.is_temporary(&entry.file_name()) {
                // `unlink` removes a link itself, never its target.
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Creates a new temporary file exclusively, mode 0600 from creation.
    fn create_temporary(&self) -> io::Result<(File, PathBuf)> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        }
        let mut attempts = 0;
        loop {
            let mut name = self.temp_prefix.clone();
            name.push(random_suffix());
            let temp = self.dir.join(name);
            match options.open(&temp) {
                Ok(file) => return Ok((file, temp)),
                // Someone planted a file at the name we drew: draw again.
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists && attempts < 16 => {
                    attempts += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn write_atomically(&self, bytes: &[u8]) -> io::Result<()> {
        let (mut file, temp) = self.create_temporary()?;
        let result = (|| {
            file.write_all(bytes)?;
            file.sync_all()?;
            drop(file);
            // Replaces whatever is at the path, a symbolic link included,
            // never writing through it.
            fs::rename(&temp, &self.file)?;
            // The rename itself must reach the disk.
            #[cfg(unix)]
            File::open(&self.dir)?.sync_all()?;
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }
}

/// 16 hex digits nobody can predict: SipHash under the process's random
/// keys (std's `RandomState`, seeded by the OS) of a counter and the time.
fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    format!("{:016x}", hasher.finish())
}

/// The token file, opened for reading without following a symbolic link
/// and without blocking on a FIFO, then checked.
fn open_token_file(path: &Path) -> io::Result<Option<File>> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = match options.open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(explain_symlink(error, path)),
    };
    let meta = file.metadata()?;
    if meta.file_type().is_symlink() {
        // Possible only where the platform has no `O_NOFOLLOW`.
        return Err(refused(path, SYMLINK));
    }
    if !meta.file_type().is_file() {
        return Err(refused(path, "not a regular file; refusing to read it"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // SAFETY: geteuid has no preconditions and cannot fail.
        let us = unsafe { libc::geteuid() };
        if meta.uid() != us {
            return Err(refused(
                path,
                format_args!(
                    "owned by user {}, not by this process's user {us}; refusing \
                     tokens another user could have written (chown the file to {us}, \
                     or remove it and sign in again)",
                    meta.uid()
                ),
            ));
        }
        if meta.mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:o}", meta.mode() & 0o777),
                "token file was open to other users; setting its mode to 0600",
            );
            // `fchmod` on the file just checked, not on whatever the path
            // names now.
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(Some(file))
}

const SYMLINK: &str = "a symbolic link; refusing to follow it (point the store at the real file)";

/// An error opening `path` with `O_NOFOLLOW` because it is a symbolic link
/// (ELOOP on Linux and macOS, EMLINK on FreeBSD) becomes a clear refusal.
fn explain_symlink(error: io::Error, path: &Path) -> io::Error {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link {
        refused(path, SYMLINK)
    } else {
        error
    }
}

fn read(path: &Path) -> io::Result<Option<Tokens>> {
    let Some(mut file) = open_token_file(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a token file: {e}", path.display()),
        )
    })
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// An exclusive `flock` on the lock file, released when dropped (and by the
/// kernel when the process dies).
struct FileLock {
    #[cfg(unix)]
    _file: File,
}

impl FileLock {
    #[cfg(unix)]
    fn acquire(path: &Path, timeout: Duration) -> io::Result<FileLock> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        use std::os::unix::io::AsRawFd;
        use std::time::Instant;

        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        let mut wait = || {
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} stayed locked by another process for {timeout:?}",
                        path.display()
                    ),
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
            Ok(())
        };
        loop {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(path)
                .map_err(|e| explain_symlink(e, path))?;
            let opened = file.metadata()?;
            if !opened.file_type().is_file() {
                return Err(refused(path, "lock file is not a regular file"));
            }
            loop {
                // SAFETY: a valid descriptor, owned by `file` for the call.
                if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                    break;
                }
                let error = io::Error::last_os_error();
                match error.raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(libc::EWOULDBLOCK) => wait()?,
                    _ => return Err(error),
                }
            }
            // The lock counts only if the file locked is still the one at the
            // path: if it was removed or replaced in between, a process that
            // opens the path now would lock another file.
            match fs::symlink_metadata(path) {
                Ok(now) if now.dev() == opened.dev() && now.ino() == opened.ino() => {
                    return Ok(FileLock { _file: file });
                }
                _ => wait()?,
            }
        }
    }

    /// Elsewhere, only the in-process mutex serializes saves.
    #[cfg(not(unix))]
    fn acquire(_path: &Path, _timeout: Duration) -> io::Result<FileLock> {
        Ok(FileLock {})
    }
}

impl Store for FileStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<Tokens>, Error>> {
        // No file lock: the rename makes every save atomic for readers.
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
            let expected = expected.cloned();
            let bytes =
                serde_json::to_vec_pretty(tokens).map_err(|e| store_error(io::Error::other(e)))?;
            self.locked(move |paths| {
                let current = read(&paths.file)?;
                if current.as_ref().map(|t| &t.refresh_token) != expected.as_ref() {
                    return Ok(Saved::Conflict(current));
                }
                paths.write_atomically(&bytes)?;
                Ok(Saved::Written)
            })
            .await
        }
        .boxed()
    }

    fn clear<'a>(&'a self, expected: &'a Secret) -> BoxFuture<'a, Result<(), Error>> {
        async move {
            let expected = expected.clone();
            self.locked(move |paths| match read(&paths.file) {
                Ok(None) => Ok(()),
                Ok(Some(current)) if current.refresh_token != expected => Ok(()),
                // The expected tokens, or a corrupt file nobody can use.
                Ok(Some(_)) => remove(&paths.file),
                Err(error) if error.kind() == io::ErrorKind::InvalidData => remove(&paths.file),
                // A link, a file of another user...: left alone.
                Err(error) => Err(error),
            })
            .await
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "refresh-endpoint-unit-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn temporary_names_are_recognized_and_never_repeat() {
        let paths = Paths::new(Path::new("dir/session.json")).unwrap();
        assert_eq!(paths.lock, Path::new("dir/.session.json.lock"));
        let a = random_suffix();
        let b = random_suffix();
        assert_ne!(a, b);
        let mut name = paths.temp_prefix.clone();
        name.push(&a);
        assert!(paths.is_temporary(&name), "{name:?}");
        for other in [
            ".session.json.tmp",
            ".session.json.tmp-0123456789abcdeF",
            ".session.json.tmp-0123456789abcdef0",
            ".session.json.tmp-0123456789abcde",
            ".other.json.tmp-0123456789abcdef",
            "session.json",
        ] {
            assert!(!paths.is_temporary(OsStr::new(other)), "{other}");
        }
        assert!(Paths::new(Path::new("/")).is_err());
        assert_eq!(
            Paths::new(Path::new("session.json")).unwrap().dir,
            Path::new(".")
        );
    }

    /// `rename` replaces a symbolic link at the token path, never its
    /// target, even if one appears after the compare (an attacker ignoring
    /// the lock).
    #[cfg(unix)]
    #[test]
    fn the_final_rename_replaces_a_symlink_and_leaves_its_target() {
        let dir = temp_dir("rename-symlink");
        let target = dir.join("target");
        fs::write(&target, "target").unwrap();
        let path = dir.join("session.json");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        Paths::new(&path)
            .unwrap()
            .write_atomically(b"{\"new\": true}")
            .unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "target");
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"new\": true}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_held_elsewhere_times_out_with_a_retryable_error() {
        let dir = temp_dir("lock-timeout");
        let lock = dir.join(".s.lock");
        let held = FileLock::acquire(&lock, Duration::ZERO).unwrap();
        let error = FileLock::acquire(&lock, Duration::from_millis(20))
            .err()
            .unwrap();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(store_error(error).is_retryable());
        drop(held);
        FileLock::acquire(&lock, Duration::ZERO).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
