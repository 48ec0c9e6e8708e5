//! The file store under `kill -9`, against a local attacker who can write to
//! the token file's folder, and shared by two processes.
//!
//! Children are this test binary run again with an `--ignored` child test
//! and an environment variable naming the file.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use refresh_endpoint::Secret;
use refresh_endpoint::store::{FileStore, Saved, Store};
use refresh_endpoint::tokens::Tokens;

const CHILD_ENV: &str = "REFRESH_ENDPOINT_FILE_STORE_CHILD";
const WRITER_ENV: &str = "REFRESH_ENDPOINT_FILE_STORE_WRITER";
const WRITER_TAG_ENV: &str = "REFRESH_ENDPOINT_FILE_STORE_WRITER_TAG";

fn tokens(n: u64) -> Tokens {
    Tokens::new(
        Secret::new(format!("access-{n}")),
        Secret::new(format!("refresh-{n}")),
    )
}

fn counter(tokens: &Tokens) -> u64 {
    tokens
        .refresh_token
        .expose()
        .trim_start_matches("refresh-")
        .parse()
        .unwrap()
}

/// A fresh folder under the system's temporary folder, removed on drop
/// (even when the test panics).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("refresh-endpoint-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn names(&self) -> BTreeSet<String> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn this_test_binary(child_test: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            child_test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    command
}

/// Runs only as the child of `survives_sigkill_at_any_moment`: saves
/// `refresh-1, refresh-2, …` after whatever the file holds, printing each
/// number once its save has returned.
#[test]
#[ignore = "the child process of survives_sigkill_at_any_moment"]
fn file_store_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = FileStore::new(path);
        let mut current = store.load().await.unwrap();
        loop {
            let next = tokens(current.as_ref().map_or(1, |t| counter(t) + 1));
            let expected = current.as_ref().map(|t| &t.refresh_token);
            assert_eq!(store.save(expected, &next).await.unwrap(), Saved::Written);
            println!("saved {}", counter(&next));
            current = Some(next);
        }
    });
}

#[test]
fn survives_sigkill_at_any_moment() {
    let dir = TempDir::new("file-store");
    let path = dir.join("session.json");
    let mut last_acknowledged = 0;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    for round in 0..200u64 {
        let mut child = this_test_binary("file_store_child")
            .env(CHILD_ENV, &path)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Let it save a varying number of times, then kill it mid-loop.
        let saves = 1 + round % 5;
        let mut seen = 0;
        while seen < saves {
            let line = lines.next().expect("the child saves").unwrap();
            if let Some(n) = line.strip_prefix("saved ") {
                last_acknowledged = n.parse().unwrap();
                seen += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // A save acknowledged after we stopped reading still counts.
        for line in lines.map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("saved ") {
                last_acknowledged = n.parse().unwrap();
            }
        }

        let stored = runtime
            .block_on(FileStore::new(&path).load())
            .unwrap_or_else(|e| panic!("round {round}: unreadable file: {e}"))
            .expect("the file exists");
        let n = counter(&stored);
        assert!(
            n == last_acknowledged || n == last_acknowledged + 1,
            "round {round}: file holds {n}, last acknowledged save was {last_acknowledged}"
        );
        assert_eq!(
            stored,
            tokens(n),
            "round {round}: access and refresh token from one save"
        );
    }

    // The next store on this file removes what the last killed child left.
    let store = FileStore::new(&path);
    let stored = runtime.block_on(store.load()).unwrap().unwrap();
    let next = tokens(counter(&stored) + 1);
    assert_eq!(
        runtime
            .block_on(store.save(Some(&stored.refresh_token), &next))
            .unwrap(),
        Saved::Written
    );
    assert_private_file(&path, &dir);
    assert_eq!(
        dir.names(),
        BTreeSet::from(["session.json".into(), ".session.json.lock".into()]),
        "the file and its lock file, no temporary file left behind"
    );
    assert_private_file(&dir.join(".session.json.lock"), &dir);
}

#[tokio::test]
async fn compare_and_swap_refuses_a_stale_writer_and_clear_keeps_newer_tokens() {
    let dir = TempDir::new("cas");
    let store = FileStore::new(dir.join("s.json"));
    assert_eq!(store.save(None, &tokens(1)).await.unwrap(), Saved::Written);
    assert_eq!(
        store.save(None, &tokens(2)).await.unwrap(),
        Saved::Conflict(Some(tokens(1)))
    );
    assert_eq!(
        store
            .save(Some(&tokens(1).refresh_token), &tokens(2))
            .await
            .unwrap(),
        Saved::Written
    );
    // A stale writer (expecting 1) cannot overwrite 2.
    assert_eq!(
        store
            .save(Some(&tokens(1).refresh_token), &tokens(3))
            .await
            .unwrap(),
        Saved::Conflict(Some(tokens(2)))
    );
    // Clearing a dead token leaves the newer one.
    store.clear(&tokens(1).refresh_token).await.unwrap();
    assert_eq!(store.load().await.unwrap(), Some(tokens(2)));
    store.clear(&tokens(2).refresh_token).await.unwrap();
    assert_eq!(store.load().await.unwrap(), None);
    std::fs::write(dir.join("s.json"), b"{not json").unwrap();
    let error = store.load().await.unwrap_err();
    assert!(
        !error.is_retryable(),
        "a corrupt file is not retried: {error}"
    );
}

/// `path` is a regular file (not a symbolic link), mode 0600, owned by the
/// owner of `dir` (the test's user, who created it).
#[cfg(unix)]
fn assert_private_file(path: &Path, dir: &TempDir) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).unwrap();
    assert!(
        meta.file_type().is_file(),
        "{} is a regular file, not {:?}",
        path.display(),
        meta.file_type()
    );
    assert_eq!(
        meta.mode() & 0o777,
        0o600,
        "{}: only the owner can read the tokens",
        path.display()
    );
    let ours = std::fs::metadata(&dir.0).unwrap().uid();
    assert_eq!(meta.uid(), ours, "{} is owned by us", path.display());
}

#[cfg(not(unix))]
fn assert_private_file(path: &Path, _dir: &TempDir) {
    assert!(
        std::fs::symlink_metadata(path)
            .unwrap()
            .file_type()
            .is_file()
    );
}

/// Makes `path` belong to another user (nobody), when this test may (it
/// runs as root); says so and answers `false` otherwise.
#[cfg(unix)]
fn give_away(path: &Path) -> bool {
    match std::os::unix::fs::chown(path, Some(65534), Some(65534)) {
        Ok(()) => true,
        Err(error) => {
            eprintln!("not root ({error}): the file stays ours, only its mode is planted");
            false
        }
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The attacker predicted the temporary file's name (the old store used a
/// fixed `.session.json.tmp`) and planted a symbolic link there.
#[cfg(unix)]
#[tokio::test]
async fn a_symlink_planted_at_the_temporary_path_receives_nothing() {
    let dir = TempDir::new("planted-symlink");
    let path = dir.join("session.json");
    let victim = dir.join("attackers-file");
    std::fs::write(&victim, "the attacker's file").unwrap();
    set_mode(&victim, 0o644);
    std::os::unix::fs::symlink(&victim, dir.join(".session.json.tmp")).unwrap();

    let store = FileStore::new(&path);
    assert_eq!(store.save(None, &tokens(1)).await.unwrap(), Saved::Written);
    assert_eq!(
        store
            .save(Some(&tokens(1).refresh_token), &tokens(2))
            .await
            .unwrap(),
        Saved::Written
    );

    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "the attacker's file",
        "the link's target never receives a token"
    );
    assert_private_file(&path, &dir);
    assert_eq!(store.load().await.unwrap(), Some(tokens(2)));
}

/// A regular file planted at the old temporary path, readable by everyone
/// and (when the test runs as root) owned by someone else.
#[cfg(unix)]
#[tokio::test]
async fn a_file_planted_at_the_temporary_path_never_becomes_the_token_file() {
    let dir = TempDir::new("planted-file");
    let path = dir.join("session.json");
    let planted = dir.join(".session.json.tmp");
    std::fs::write(&planted, "planted").unwrap();
    set_mode(&planted, 0o666);
    give_away(&planted);

    let store = FileStore::new(&path);
    assert_eq!(store.save(None, &tokens(1)).await.unwrap(), Saved::Written);
    assert_private_file(&path, &dir);
    assert_eq!(store.load().await.unwrap(), Some(tokens(1)));
}

/// A token file left readable by others (written by hand, or by an older
/// version) is private again once the store touches it.
#[cfg(unix)]
#[tokio::test]
async fn an_existing_0644_token_file_becomes_0600() {
    let dir = TempDir::new("mode-0644");
    let path = dir.join("session.json");
    std::fs::write(&path, serde_json::to_vec(&tokens(1)).unwrap()).unwrap();
    set_mode(&path, 0o644);
    let store = FileStore::new(&path);

    assert_eq!(store.load().await.unwrap(), Some(tokens(1)));
    assert_private_file(&path, &dir);

    set_mode(&path, 0o644);
    assert_eq!(
        store
            .save(Some(&tokens(1).refresh_token), &tokens(2))
            .await
            .unwrap(),
        Saved::Written
    );
    assert_private_file(&path, &dir);
}

/// `session.json` replaced by a symbolic link to another file: the store
/// refuses to read it (the attacker's tokens would be adopted) and never
/// writes the link's target.
#[cfg(unix)]
#[tokio::test]
async fn a_symlinked_token_file_is_refused_and_its_target_never_written() {
    let dir = TempDir::new("symlinked-file");
    let path = dir.join("session.json");
    let other = dir.join("other.json");
    let other_bytes = serde_json::to_vec(&tokens(1)).unwrap();
    std::fs::write(&other, &other_bytes).unwrap();
    set_mode(&other, 0o600);
    std::os::unix::fs::symlink(&other, &path).unwrap();
    let store = FileStore::new(&path);

    let error = store.load().await.unwrap_err();
    assert!(!error.is_retryable(), "not retried: {error}");
    assert!(
        error.to_string().contains("symbolic link"),
        "says why: {error}"
    );
    for expected in [None, Some(&tokens(1).refresh_token)] {
        let error = store.save(expected, &tokens(2)).await.unwrap_err();
        assert!(!error.is_retryable(), "not retried: {error}");
    }
    assert!(store.clear(&tokens(1).refresh_token).await.is_err());

    assert_eq!(std::fs::read(&other).unwrap(), other_bytes, "never written");
    assert!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the user's link is left for them to look at"
    );
}

/// A token file that belongs to someone else (only checkable as root) holds
/// tokens the attacker chose: refused.
#[cfg(unix)]
#[tokio::test]
async fn a_token_file_owned_by_someone_else_is_refused() {
    let dir = TempDir::new("foreign-owner");
    let path = dir.join("session.json");
    std::fs::write(&path, serde_json::to_vec(&tokens(1)).unwrap()).unwrap();
    set_mode(&path, 0o600);
    if !give_away(&path) {
        return;
    }
    let store = FileStore::new(&path);
    let error = store.load().await.unwrap_err();
    assert!(!error.is_retryable(), "not retried: {error}");
    assert!(error.to_string().contains("owned by"), "says why: {error}");
    assert!(
        store
            .save(Some(&tokens(1).refresh_token), &tokens(2))
            .await
            .is_err()
    );
}

/// A FIFO at the token path would block a plain `read` forever.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_fifo_at_the_token_path_is_refused_without_blocking() {
    let dir = TempDir::new("fifo");
    let path = dir.join("session.json");
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let store = FileStore::new(&path);
    let answer = tokio::time::timeout(Duration::from_secs(10), store.load()).await;
    if answer.is_err() {
        // Unblock the stuck reader so that the runtime can shut down.
        drop(std::fs::OpenOptions::new().write(true).open(&path));
        panic!("load blocked on a FIFO");
    }
    let error = answer.unwrap().unwrap_err();
    assert!(!error.is_retryable(), "not retried: {error}");
}

/// A symbolic link planted at the lock file's path: refused, its target
/// untouched.
#[cfg(unix)]
#[tokio::test]
async fn a_symlink_at_the_lock_path_is_refused() {
    let dir = TempDir::new("lock-symlink");
    let path = dir.join("session.json");
    let victim = dir.join("attackers-file");
    std::fs::write(&victim, "the attacker's file").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join(".session.json.lock")).unwrap();
    let store = FileStore::new(&path);
    let error = store.save(None, &tokens(1)).await.unwrap_err();
    assert!(!error.is_retryable(), "not retried: {error}");
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "the attacker's file"
    );
}

/// Temporary files left by a crash (the store's prefix and a random
/// suffix) are removed at every save; nothing else in the folder is.
#[tokio::test]
async fn stale_temporary_files_are_removed() {
    let dir = TempDir::new("stale-temp");
    let stale = [
        ".session.json.tmp-0123456789abcdef",
        ".session.json.tmp-fedcba9876543210",
    ];
    let kept = [
        ".session.json.tmp",
        ".session.json.tmp-not-ours",
        ".other.json.tmp-0123456789abcdef",
        "notes.txt",
    ];
    for name in stale.iter().chain(&kept) {
        std::fs::write(dir.join(name), "left over").unwrap();
    }
    let store = FileStore::new(dir.join("session.json"));
    assert_eq!(store.save(None, &tokens(1)).await.unwrap(), Saved::Written);

    let mut expected: BTreeSet<String> = kept.iter().map(|s| s.to_string()).collect();
    expected.insert("session.json".into());
    expected.insert(".session.json.lock".into());
    assert_eq!(dir.names(), expected);

    // Another process crashed meanwhile: the next save, by the same store,
    // removes its leftover too.
    std::fs::write(dir.join(".session.json.tmp-00000000deadbeef"), "left over").unwrap();
    assert_eq!(
        store
            .save(Some(&tokens(1).refresh_token), &tokens(2))
            .await
            .unwrap(),
        Saved::Written
    );
    assert_eq!(dir.names(), expected);
}

/// Runs only as a child of `two_processes_share_one_file_without_losing_a_rotation`:
/// load, then a compare-and-swap from what it loaded to a token never seen
/// before, in a loop. Prints `rotated OLD NEW` after each written save
/// (`OLD` is `-` for an empty file), `conflict` after a refused one,
/// `error …` and stops on any failure.
#[test]
#[ignore = "a child process of two_processes_share_one_file_without_losing_a_rotation"]
fn file_store_writer_child() {
    let (Ok(path), Ok(tag)) = (std::env::var(WRITER_ENV), std::env::var(WRITER_TAG_ENV)) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = FileStore::new(path);
        for n in 0u64.. {
            let current = match store.load().await {
                Ok(current) => current,
                Err(error) => return println!("error load: {error}"),
            };
            if let Some(current) = &current {
                let access = current.access_token.expose();
                let refresh = current.refresh_token.expose();
                if access.strip_prefix("access-") != refresh.strip_prefix("refresh-") {
                    return println!("error torn: {access} {refresh}");
                }
            }
            let next = Tokens::new(
                Secret::new(format!("access-{tag}-{n}")),
                Secret::new(format!("refresh-{tag}-{n}")),
            );
            let expected = current.as_ref().map(|t| &t.refresh_token);
            match store.save(expected, &next).await {
                Ok(Saved::Written) => println!(
                    "rotated {} {}",
                    expected.map_or("-", |t| t.expose()),
                    next.refresh_token.expose()
                ),
                Ok(Saved::Conflict(_)) => println!("conflict"),
                Err(error) => return println!("error save: {error}"),
            }
        }
    });
}

/// A running writer child and the thread that forwards its lines.
fn spawn_writer(path: &Path, tag: String, lines: &mpsc::Sender<String>) -> Child {
    let mut child = this_test_binary("file_store_writer_child")
        .env(WRITER_ENV, path)
        .env(WRITER_TAG_ENV, tag)
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let lines = lines.clone();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    child
}

/// Two processes refresh through one file with strictly single-use refresh
/// tokens and are killed (SIGKILL) at random moments. A rotation is lost
/// when a compare-and-swap succeeds on a token another one already replaced:
/// the same token spent twice. There must be none, and the file must always
/// be readable, holding both tokens of one save.
#[test]
fn two_processes_share_one_file_without_losing_a_rotation() {
    let dir = TempDir::new("two-writers");
    let path = dir.join("session.json");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    // Spent token → the token that replaced it, over all rounds.
    let mut spent: HashMap<String, String> = HashMap::new();
    let mut lost = Vec::new();
    let mut conflicts = 0;
    let rounds = 40;

    for round in 0..rounds {
        let (send, receive) = mpsc::channel();
        let mut children = [
            spawn_writer(&path, format!("r{round}a"), &send),
            spawn_writer(&path, format!("r{round}b"), &send),
        ];
        drop(send);
        let mut record = |line: String| {
            if let Some(rotation) = line.strip_prefix("rotated ") {
                let (old, new) = rotation.split_once(' ').unwrap();
                if let Some(first) = spent.insert(old.to_owned(), new.to_owned()) {
                    lost.push(format!("{old} replaced by {first} and by {new}"));
                }
                true
            } else if line == "conflict" {
                conflicts += 1;
                false
            } else if line.starts_with("error") {
                panic!("round {round}: a writer failed: {line}");
            } else {
                false // the test harness's own lines
            }
        };
        // Let them rotate a varying number of times, then kill them one
        // after the other, mid-loop.
        let target = 10 + round % 15;
        let mut rotations = 0;
        while rotations < target {
            let line = receive
                .recv_timeout(Duration::from_secs(30))
                .expect("the writers rotate");
            rotations += usize::from(record(line));
        }
        for child in children.iter_mut().skip(round % 2) {
            child.kill().unwrap(); // SIGKILL
        }
        for child in children.iter_mut() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        // Rotations acknowledged after we stopped counting still count.
        for line in receive {
            record(line);
        }

        let stored = runtime
            .block_on(FileStore::new(&path).load())
            .unwrap_or_else(|e| panic!("round {round}: unreadable file: {e}"))
            .expect("the file exists");
        assert_eq!(
            stored.access_token.expose().strip_prefix("access-"),
            stored.refresh_token.expose().strip_prefix("refresh-"),
            "round {round}: access and refresh token from one save"
        );
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{} rotations and {conflicts} refused compare-and-swaps by {} processes in {elapsed:.2?}",
        spent.len(),
        2 * rounds
    );
    assert!(lost.is_empty(), "{} lost rotations: {lost:#?}", lost.len());
    assert_private_file(&path, &dir);
}
