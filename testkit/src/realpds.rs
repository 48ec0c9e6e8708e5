//! The AT Protocol reference server, run for real: the PDS
//! (`@atproto/pds`) and the did:plc directory it registers accounts with
//! (`@did-plc/server`), started by node on free loopback ports as one child
//! process. A test that refreshes against it tests against the real thing,
//! not against the reading of the docs that [`AtprotoMock`](crate::AtprotoMock)
//! is.
//!
//! The node side lives in the workspace's `realpds/` folder: `package.json`
//! and `package-lock.json` pin the two packages, `start.mjs` starts both
//! servers, creates the account `alice.test` and prints one JSON line.
//! [`RealPds::start`] runs `npm ci` there once if `node_modules` is missing,
//! starts the script and reads that line. Dropping the [`RealPds`] stops the
//! server (its whole process group), also when the test panics.
//!
//! ```no_run
//! use std::time::{Duration, SystemTime};
//! use refresh_endpoint_testkit::realpds::{Availability, RealPds};
//!
//! let pds = match RealPds::start().expect("CI=true and the server cannot run") {
//!     Availability::Ready(pds) => pds,
//!     Availability::Skipped(why) => {
//!         eprintln!("skipped: {why}");
//!         return;
//!     }
//! };
//! println!("{} at {}: {}", pds.handle, pds.url, pds.did);
//! // An access token that expired an hour ago, signed with the server's key.
//! let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
//! let expired = pds.mint_access_token(an_hour_ago);
//! # let _ = expired;
//! ```
//!
//! Environment:
//! - `REALPDS_DIR`: the folder holding `start.mjs` and `package.json`
//!   (default: [`RealPds::default_dir`], the workspace's `realpds/`).
//! - `CI=true`: a missing node or a failed `npm ci` is an error instead of
//!   a skip.
//! - `REALPDS_LOG=info` (or `debug`, ...): server logs are copied to stderr.
//! - `REALPDS_START_TIMEOUT_SECS`: how long to wait for the server (60).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::atproto::SERVICE_DID;
use crate::jwt;

/// A running reference PDS with one account (`alice.test`).
/// Dropping it kills the server (its whole process group) and waits for it.
pub struct RealPds {
    /// `http://127.0.0.1:PORT` of the PDS.
    pub url: String,
    /// `http://127.0.0.1:PORT` of the PLC directory the PDS registers with.
    pub plc_url: String,
    /// The account's DID, `did:plc:…`.
    pub did: String,
    /// The account's handle, `alice.test`.
    pub handle: String,
    /// The account's email.
    pub email: String,
    /// The access JWT `createAccount` returned (valid for 2 hours).
    pub access_jwt: String,
    /// The refresh JWT `createAccount` returned (valid for 90 days).
    pub refresh_jwt: String,
    /// `PDS_JWT_SECRET`: HS256 key of the access and refresh JWTs.
    pub jwt_secret: String,
    /// `PDS_ADMIN_PASSWORD`, for HTTP Basic `admin:<password>`.
    pub admin_password: String,
    /// The account's password (for `com.atproto.server.createSession`).
    pub password: String,
    process: ServerProcess,
}

/// Whether the reference server could be run here.
#[allow(clippy::large_enum_variant)]
pub enum Availability {
    /// The server is up.
    Ready(RealPds),
    /// Not runnable on this machine (no node, install failed) and not in CI.
    Skipped(String),
}

impl std::fmt::Debug for RealPds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealPds")
            .field("url", &self.url)
            .field("did", &self.did)
            .field("handle", &self.handle)
            .field("pid", &self.process.pid)
            .finish_non_exhaustive()
    }
}

const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Waiting for another test's `npm ci` (a cold one takes ~2 minutes).
const INSTALL_WAIT: Duration = Duration::from_secs(15 * 60);
/// A lock directory without an owner file, older than this, is left over.
const OWNERLESS_LOCK_STALE: Duration = Duration::from_secs(60);
const LOCK_NAME: &str = ".install.lock";

impl RealPds {
    /// Starts the server from `$REALPDS_DIR`, or else from
    /// [`default_dir`](Self::default_dir). Blocks for the start (about 2 s;
    /// a first `npm ci` takes minutes): from async code, call it through
    /// `tokio::task::spawn_blocking`.
    ///
    /// `Ok(Skipped)` when node is missing or too old or the install fails,
    /// outside CI; under `CI=true` those are errors. A server that does not
    /// come up is always an error.
    pub fn start() -> Result<Availability, String> {
        let dir = match std::env::var_os("REALPDS_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => Self::default_dir(),
        };
        Self::start_in(&dir)
    }

    /// The workspace's `realpds/` folder, next to this crate's folder.
    pub fn default_dir() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../realpds"))
    }

    /// Starts the server from `dir` (the folder holding `start.mjs`).
    pub fn start_in(dir: &Path) -> Result<Availability, String> {
        let dir = dir
            .canonicalize()
            .map_err(|e| format!("realpds folder {}: {e}", dir.display()))?;
        if !dir.join("start.mjs").is_file() {
            return Err(format!("no start.mjs in {}", dir.display()));
        }

        let version = match node_version() {
            Ok(v) => v,
            Err(why) => return unavailable(why),
        };
        let major = version
            .trim()
            .trim_start_matches('v')
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok());
        if major.is_some_and(|m| m < 18) {
            return unavailable(format!(
                "node {} is too old for @atproto/pds (needs >= 18.7)",
                version.trim()
            ));
        }

        if let Err(why) = ensure_installed(&dir) {
            return unavailable(why);
        }

        spawn_server(&dir).map(Availability::Ready)
    }

    /// `{url}/xrpc/{nsid}`.
    pub fn xrpc(&self, nsid: &str) -> String {
        format!("{}/xrpc/{}", self.url, nsid)
    }

    /// The server's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// The last lines the server wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        self.process.stderr_tail()
    }

    /// Signs `header` and `claims` (HS256) with the server's JWT key, which
    /// is the UTF-8 bytes of [`jwt_secret`](Self::jwt_secret) as given (a
    /// hex string, not decoded).
    pub fn mint(&self, header: &Value, claims: &Value) -> String {
        jwt::sign(self.jwt_secret.as_bytes(), header, claims)
    }

    /// An access JWT for the account, shaped as the server issues them,
    /// issued an hour before `exp`. With `exp` in the past the server answers
    /// `400 ExpiredToken "Token has expired"` to it.
    pub fn mint_access_token(&self, exp: SystemTime) -> String {
        let exp = exp.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.mint(
            &json!({"typ": "at+jwt", "alg": "HS256"}),
            &json!({
                "scope": "com.atproto.access",
                "aud": SERVICE_DID,
                "sub": self.did,
                "iat": exp.saturating_sub(3600),
                "exp": exp,
            }),
        )
    }
}

fn in_ci() -> bool {
    matches!(
        std::env::var("CI").map(|v| v.trim().to_ascii_lowercase()),
        Ok(ref v) if v == "true" || v == "1"
    )
}

/// In CI a server that cannot run fails the run; elsewhere the test skips.
fn unavailable(why: String) -> Result<Availability, String> {
    if in_ci() {
        Err(format!("{why} (CI=true, so this is an error)"))
    } else {
        Ok(Availability::Skipped(why))
    }
}

fn node_version() -> Result<String, String> {
    match Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => Err(format!("node --version failed: {}", out.status)),
        Err(e) => Err(format!(
            "node not found on PATH ({e}); install node >= 18.7 to run the real-PDS tests"
        )),
    }
}

fn is_installed(dir: &Path) -> bool {
    // npm writes node_modules/.package-lock.json at the end of an install.
    dir.join("node_modules/.package-lock.json").is_file()
        && dir.join("node_modules/@atproto/pds/package.json").is_file()
        && dir
            .join("node_modules/@did-plc/server/package.json")
            .is_file()
}

/// Removes the lock directory when the installer is done (or panics).
struct InstallLock(PathBuf);

impl Drop for InstallLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `npm ci` once if `node_modules` is missing. Parallel tests (threads
/// or processes) serialize on a lock directory; the losers wait for the
/// winner's install.
fn ensure_installed(dir: &Path) -> Result<(), String> {
    if is_installed(dir) {
        return Ok(());
    }
    let lock_path = dir.join(LOCK_NAME);
    let started = Instant::now();
    let _lock = loop {
        match std::fs::create_dir(&lock_path) {
            Ok(()) => {
                let _ = std::fs::write(
                    lock_path.join("owner"),
                    format!("pid {}\n", std::process::id()),
                );
                break InstallLock(lock_path.clone());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Someone else is installing: wait until they let go (the
                // install is only complete once the lock is gone).
                if lock_is_stale(&lock_path) {
                    let _ = std::fs::remove_dir_all(&lock_path);
                    continue;
                }
                if started.elapsed() > INSTALL_WAIT {
                    return Err(format!(
                        "waited {}s for another npm install ({} exists)",
                        INSTALL_WAIT.as_secs(),
                        lock_path.display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(format!("cannot create {}: {e}", lock_path.display())),
        }
    };
    if is_installed(dir) {
        return Ok(());
    }
    eprintln!(
        "realpds: running `npm ci` in {} (about 2 minutes when the npm cache is cold)",
        dir.display()
    );
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("npm not runnable ({e}); cannot install the reference PDS"))?;
    if !out.status.success() || !is_installed(dir) {
        return Err(format!(
            "`npm ci` in {} failed ({}): {}",
            dir.display(),
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 20)
        ));
    }
    Ok(())
}

/// Left behind by a killed run: its owner process is gone (or, if it names
/// no owner, it is older than a minute).
fn lock_is_stale(lock_path: &Path) -> bool {
    let owner = std::fs::read_to_string(lock_path.join("owner"))
        .ok()
        .and_then(|s| {
            s.trim()
                .strip_prefix("pid ")
                .and_then(|p| p.parse::<u32>().ok())
        });
    match owner {
        Some(pid) => {
            Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists()
        }
        None => std::fs::metadata(lock_path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > OWNERLESS_LOCK_STALE),
    }
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// The node child: its own process group, stdin held open (closing it tells
/// the server to exit), stderr drained into a ring buffer.
struct ServerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl ServerProcess {
    fn stderr_tail(&self) -> String {
        let buf = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        buf.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    fn signal_group(&self, sig: &str) {
        // The child is not reaped yet, so its pid still names our group.
        let _ = Command::new("kill")
            .args([sig, "--", &format!("-{}", self.pid)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn wait_for_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return true,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => return false,
                Err(_) => return false,
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // Closing stdin alone makes start.mjs exit and delete its temp dir;
        // SIGTERM to the group does the same and reaches anything it spawned.
        drop(self.stdin.take());
        self.signal_group("-TERM");
        if !self.wait_for_exit(Duration::from_secs(10)) {
            self.signal_group("-KILL");
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

const STDERR_KEEP: usize = 200;

fn spawn_server(dir: &Path) -> Result<RealPds, String> {
    use std::os::unix::process::CommandExt;

    let timeout = std::env::var("REALPDS_START_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_START_TIMEOUT);

    let mut child = Command::new("node")
        .arg("start.mjs")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot spawn `node start.mjs` in {}: {e}", dir.display()))?;
    let pid = child.id();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr_pipe = child.stderr.take().expect("piped stderr");

    let stderr = Arc::new(Mutex::new(VecDeque::new()));
    {
        let stderr = Arc::clone(&stderr);
        let echo = std::env::var_os("REALPDS_LOG").is_some_and(|v| !v.is_empty());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                if echo {
                    eprintln!("realpds[{pid}]: {line}");
                }
                let mut buf = stderr.lock().unwrap_or_else(|p| p.into_inner());
                if buf.len() == STDERR_KEEP {
                    buf.pop_front();
                }
                buf.push_back(line);
            }
        });
    }
    // From here on, dropping `process` kills the server.
    let process = ServerProcess {
        child,
        stdin,
        pid,
        stderr,
    };

    let (tx, rx) = mpsc::channel::<std::io::Result<String>>();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let first = reader.read_line(&mut line).map(|_| line);
        let _ = tx.send(first);
        // Keep draining so the server never blocks on a full pipe.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });

    let line = match rx.recv_timeout(timeout) {
        Ok(Ok(line)) if !line.trim().is_empty() => line,
        Ok(Ok(_)) => {
            return Err(format!(
                "the server exited before it was ready; its stderr:\n{}",
                process.stderr_tail()
            ));
        }
        Ok(Err(e)) => return Err(format!("reading the server's stdout: {e}")),
        Err(_) => {
            let tail = process.stderr_tail();
            drop(process);
            return Err(format!(
                "the server was not ready within {}s; its stderr:\n{tail}",
                timeout.as_secs()
            ));
        }
    };

    let v: Value = serde_json::from_str(line.trim())
        .map_err(|e| format!("the server's ready line is not JSON ({e}): {line}"))?;
    let field = |name: &str| -> Result<String, String> {
        v.get(name)
            .and_then(|x| x.as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("the server's ready line lacks \"{name}\": {line}"))
    };
    Ok(RealPds {
        url: field("url")?,
        plc_url: field("plc_url")?,
        did: field("did")?,
        handle: field("handle")?,
        email: field("email").unwrap_or_default(),
        access_jwt: field("access_jwt")?,
        refresh_jwt: field("refresh_jwt")?,
        jwt_secret: field("jwt_secret")?,
        admin_password: field("admin_password")?,
        password: field("password")?,
        process,
    })
}
