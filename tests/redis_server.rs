//! A real `redis-server` for the Redis store's tests and benchmarks: started
//! on `127.0.0.1` and a free port, in memory only (`--save "" --appendonly
//! no`), killed and reaped when dropped (also when the test panics).
//!
//! `redis-server` comes from Debian's `redis-server` package (`.ci/run`
//! installs it). When it is missing, [`RedisServer::start`] answers
//! [`Availability::Skipped`], except under `CI=true`, where it is an error.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a starting server may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `redis-server` that this process started.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

/// Whether a server could be started here.
#[derive(Debug)]
pub enum Availability {
    /// It runs.
    Ready(RedisServer),
    /// `redis-server` is not installed (and `CI` is not `true`).
    Skipped(String),
}

impl RedisServer {
    /// Starts a server on a free loopback port. Blocks until it accepts
    /// connections (a few milliseconds).
    pub fn start() -> Result<Availability, String> {
        if let Err(why) = installed() {
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                return Err(format!(
                    "{why}, and CI=true: .ci/run should have installed it"
                ));
            }
            return Ok(Availability::Skipped(why));
        }
        let mut last = String::new();
        // Another process may take the free port between our look and
        // redis-server's bind: try a few.
        for _ in 0..3 {
            let port = free_port()?;
            match spawn(port) {
                Ok(child) => {
                    return Ok(Availability::Ready(RedisServer {
                        port,
                        child: Some(child),
                    }));
                }
                Err(why) => last = why,
            }
        }
        Err(last)
    }

    /// Starts a server, or returns `None` after printing why the caller
    /// should skip; panics under `CI=true` when there is no `redis-server`.
    pub fn start_or_skip() -> Option<RedisServer> {
        match RedisServer::start() {
            Ok(Availability::Ready(server)) => Some(server),
            Ok(Availability::Skipped(why)) => {
                eprintln!("skipped: {why}");
                None
            }
            Err(error) => panic!("redis-server: {error}"),
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (the same after [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL, as a crash would) and reaps it. Its data
    /// is gone: it kept none on disk.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.child = Some(spawn(self.port)?);
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn installed() -> Result<(), String> {
    match Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("`redis-server --version` failed ({status})")),
        Err(error) => Err(format!(
            "redis-server is not installed ({error}); `apt-get install redis-server`"
        )),
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|error| format!("no free loopback port: {error}"))
}

/// Starts `redis-server` on `port` and waits for "Ready to accept connections".
fn spawn(port: u16) -> Result<Child, String> {
    let mut child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--daemonize", "no", "--logfile", ""])
        .arg("--dir")
        .arg(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| format!("cannot start redis-server: {error}"))?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err("redis-server has no stdout".into());
    };
    let (ready, ready_rx) = mpsc::channel();
    // Reads the log to its end (so the server never blocks on a full pipe).
    std::thread::spawn(move || {
        let mut log = Vec::new();
        let mut told = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !told && line.contains("Ready to accept connections") {
                told = true;
                let _ = ready.send(Ok(()));
            }
            if !told {
                log.push(line);
            }
        }
        if !told {
            let _ = ready.send(Err(log.join("\n")));
        }
    });
    match ready_rx.recv_timeout(READY_TIMEOUT) {
        Ok(Ok(())) => Ok(child),
        outcome => {
            let _ = child.kill();
            let _ = child.wait();
            let log = match outcome {
                Ok(Err(log)) => log,
                _ => "(no answer in time)".into(),
            };
            Err(format!("redis-server on port {port} did not start:\n{log}"))
        }
    }
}
