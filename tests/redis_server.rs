//! A real `redis-server` for the Redis store's tests and benchmarks: started
//! on `127.0.0.1` and a free port, in memory only (`--save "" --appendonly
//! no`), killed and reaped when dropped (also when the test panics).
//! [`RedisServer::start_tls`] serves TLS only, with a throw-away CA, a
//! server and a client certificate (mutual TLS) and an ACL user;
//! [`RedisCluster`] is a Redis Cluster of three primaries (and, if asked,
//! one replica each) joined with `redis-cli --cluster create`.
//!
//! `redis-server` comes from Debian's `redis-server` package (`.ci/run`
//! installs it). When it is missing, [`RedisServer::start`] answers
//! [`Availability::Skipped`], except under `CI=true`, where it is an error.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a starting server may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The ACL user of the TLS server, and its password.
pub const TLS_USER: &str = "app";
/// The password of [`TLS_USER`].
pub const TLS_PASSWORD: &str = "app-password-1";

/// A running `redis-server` that this process started.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// Arguments besides the port's.
    args: Vec<String>,
    tls: Option<TlsFiles>,
    dir: Option<TempDir>,
}

/// PEM files of a throw-away CA, a server certificate (`localhost`,
/// `127.0.0.1`) and a client certificate, all signed by that CA.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA certificate.
    pub ca_pem: String,
    /// The client's certificate.
    pub client_cert_pem: String,
    /// The client's private key.
    pub client_key_pem: String,
    dir: PathBuf,
}

impl TlsFiles {
    /// Makes a CA, a server and a client certificate in `dir`.
    pub fn generate(dir: &Path) -> Result<TlsFiles, String> {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let fail = |error: rcgen::Error| format!("rcgen: {error}");
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name
            .push(DnType::CommonName, "refresh-endpoint test CA");
        let ca =
            CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(fail)?).map_err(fail)?;
        let leaf = |names: Vec<String>, usage| -> Result<(String, String), String> {
            let mut params = CertificateParams::new(names).map_err(fail)?;
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().map_err(fail)?;
            let cert = params.signed_by(&key, &ca).map_err(fail)?;
            Ok((cert.pem(), key.serialize_pem()))
        };
        let (server_cert, server_key) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (client_cert_pem, client_key_pem) =
            leaf(vec!["client".into()], ExtendedKeyUsagePurpose::ClientAuth)?;
        let files = TlsFiles {
            ca_pem: ca.pem(),
            client_cert_pem,
            client_key_pem,
            dir: dir.to_owned(),
        };
        for (name, pem) in [
            ("ca.pem", &files.ca_pem),
            ("server.pem", &server_cert),
            ("server-key.pem", &server_key),
            ("client.pem", &files.client_cert_pem),
            ("client-key.pem", &files.client_key_pem),
        ] {
            std::fs::write(dir.join(name), pem).map_err(|error| format!("{name}: {error}"))?;
        }
        Ok(files)
    }

    /// The path of one of the files: `ca.pem`, `server.pem`,
    /// `server-key.pem`, `client.pem`, `client-key.pem`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A directory removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory under the system's temporary directory.
    pub fn new(what: &str) -> Result<TempDir, String> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "refresh-endpoint-{what}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|error| format!("{}: {error}", path.display()))?;
        Ok(TempDir(path))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether the tests must fail rather than skip when a server is missing.
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|ci| ci == "true")
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
        Self::start_with(Vec::new(), None, None)
    }

    /// Starts a server that speaks TLS only (`--port 0 --tls-port P`),
    /// wants a client certificate signed by a throw-away CA, and has an ACL
    /// user [`TLS_USER`] with password [`TLS_PASSWORD`] (the `default` user
    /// is off).
    pub fn start_tls() -> Result<Availability, String> {
        let dir = TempDir::new("redis-tls")?;
        let tls = TlsFiles::generate(dir.path())?;
        let path = |name: &str| tls.path(name).display().to_string();
        let args = [
            "--tls-cert-file".to_owned(),
            path("server.pem"),
            "--tls-key-file".into(),
            path("server-key.pem"),
            "--tls-ca-cert-file".into(),
            path("ca.pem"),
            "--tls-auth-clients".into(),
            "yes".into(),
            "--user".into(),
            "default".into(),
            "off".into(),
            "--user".into(),
            TLS_USER.into(),
            "on".into(),
            format!(">{TLS_PASSWORD}"),
            "~*".into(),
            "&*".into(),
            "+@all".into(),
        ];
        Self::start_with(args.to_vec(), Some(tls), Some(dir))
    }

    fn start_with(
        args: Vec<String>,
        tls: Option<TlsFiles>,
        dir: Option<TempDir>,
    ) -> Result<Availability, String> {
        if let Err(why) = installed() {
            if required() {
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
            let mut server = RedisServer {
                port,
                child: None,
                args: args.clone(),
                tls: tls.clone(),
                dir: None,
            };
            match spawn(port, &server.port_args(), &server.args) {
                Ok(child) => {
                    server.child = Some(child);
                    server.dir = dir;
                    return Ok(Availability::Ready(server));
                }
                Err(why) => last = why,
            }
        }
        Err(last)
    }

    fn port_args(&self) -> Vec<String> {
        if self.tls.is_some() {
            vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                self.port.to_string(),
            ]
        } else {
            vec!["--port".into(), self.port.to_string()]
        }
    }

    /// [`start_tls`](Self::start_tls), or `None` after printing why the
    /// caller should skip; panics under `CI=true` when there is no
    /// `redis-server`.
    pub fn start_tls_or_skip() -> Option<RedisServer> {
        match RedisServer::start_tls() {
            Ok(Availability::Ready(server)) => Some(server),
            Ok(Availability::Skipped(why)) => {
                eprintln!("skipped: {why}");
                None
            }
            Err(error) => panic!("redis-server: {error}"),
        }
    }

    /// The TLS material of a [`start_tls`](Self::start_tls) server.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
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

    /// `redis://127.0.0.1:PORT`, or for a TLS server
    /// `rediss://app:PASSWORD@127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        if self.tls.is_some() {
            format!("rediss://{TLS_USER}:{TLS_PASSWORD}@127.0.0.1:{}", self.port)
        } else {
            format!("redis://127.0.0.1:{}", self.port)
        }
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
        self.child = Some(spawn(self.port, &self.port_args(), &self.args)?);
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(data_dir(self.port));
    }
}

/// The working directory of the server on `port`: its own, so that no
/// server loads what another wrote there (a replica saves the data it syncs
/// as `dump.rdb`; a server starting in a directory holding one loads it, and
/// a cluster node holding keys cannot join a new cluster).
fn data_dir(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!(
        "refresh-endpoint-redis-{}-{port}",
        std::process::id()
    ))
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

/// A loopback port free now that no server of this process was given
/// before, as a port or as a cluster bus port (the port + 10000). A cluster
/// keeps calling a killed node's address: another test's node started on
/// that port would hear its gossip and join the wrong cluster.
fn free_port() -> Result<u16, String> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..100 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .map_err(|error| format!("no free loopback port: {error}"))?;
        let taken = |p: Option<u16>| p.is_some_and(|p| handed_out.contains(&p));
        if port > u16::MAX - 10_000
            || taken(Some(port))
            || taken(port.checked_add(10_000))
            || taken(port.checked_sub(10_000))
        {
            continue;
        }
        handed_out.insert(port);
        return Ok(port);
    }
    Err("no loopback port left that this process has not used".into())
}

/// Starts `redis-server` on `port` and waits for "Ready to accept connections".
fn spawn(port: u16, port_args: &[String], args: &[String]) -> Result<Child, String> {
    // Empty at every start: a restarted server starts without data, as
    // `--save ""` means.
    let dir = data_dir(port);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    let mut child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1"])
        .args(port_args)
        .args(["--save", "", "--appendonly", "no"])
        .args(["--daemonize", "no", "--logfile", ""])
        .arg("--dir")
        .arg(&dir)
        .args(args)
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

/// A Redis Cluster on loopback: three primaries (and one replica each when
/// asked), every node a [`RedisServer`] with `--cluster-enabled yes`,
/// joined with `redis-cli --cluster create`. `cluster-node-timeout` is
/// 1 s, so a dead primary's replica takes over within a few seconds.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    _dir: TempDir,
}

impl RedisCluster {
    /// Starts the nodes, joins them, and waits for `cluster_state:ok`;
    /// `None` after printing why when `redis-server` is missing (a panic
    /// under `CI=true`).
    pub fn start_or_skip(with_replicas: bool) -> Option<RedisCluster> {
        if let Err(why) = installed() {
            assert!(
                !required(),
                "{why}, and CI=true: .ci/run should have installed it"
            );
            eprintln!("skipped: {why}");
            return None;
        }
        match Self::start(with_replicas) {
            Ok(cluster) => Some(cluster),
            Err(error) => panic!("redis cluster: {error}"),
        }
    }

    fn start(with_replicas: bool) -> Result<RedisCluster, String> {
        let dir = TempDir::new("redis-cluster")?;
        let count = if with_replicas { 6 } else { 3 };
        let mut nodes = Vec::new();
        for n in 0..count {
            let args = vec![
                "--cluster-enabled".to_owned(),
                "yes".into(),
                "--cluster-config-file".into(),
                dir.path()
                    .join(format!("nodes-{n}.conf"))
                    .display()
                    .to_string(),
                "--cluster-node-timeout".into(),
                "1000".into(),
            ];
            match RedisServer::start_with(args, None, None)? {
                Availability::Ready(node) => nodes.push(node),
                Availability::Skipped(why) => return Err(why),
            }
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", if with_replicas { "1" } else { "0" }])
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("redis-cli: {error}"))?;
        if !output.status.success() {
            return Err(format!(
                "redis-cli --cluster create: {}",
                String::from_utf8_lossy(&output.stdout)
            ));
        }
        let cluster = RedisCluster { nodes, _dir: dir };
        cluster.wait_ok()?;
        Ok(cluster)
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,…` (every node a seed).
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// Waits until every running node reports `cluster_state:ok` and sees
    /// every slot served.
    pub fn wait_ok(&self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let ok = self
                .nodes
                .iter()
                .filter(|node| node.child.is_some())
                .all(|node| {
                    cli(node.port, &["CLUSTER", "INFO"]).is_ok_and(|info| {
                        info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
                    })
                });
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("the cluster did not reach cluster_state:ok".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port of the primary that serves `key`'s slot now.
    pub fn primary_of(&self, key: &str) -> Result<u16, String> {
        let node = self
            .nodes
            .iter()
            .find(|node| node.child.is_some())
            .ok_or("no node runs")?;
        let slot: u16 = cli(node.port, &["CLUSTER", "KEYSLOT", key])?
            .trim()
            .parse()
            .map_err(|error| format!("CLUSTER KEYSLOT: {error}"))?;
        let nodes = cli(node.port, &["CLUSTER", "NODES"])?;
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            for range in &fields[8..] {
                let (low, high) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(low), Ok(high)) = (low.parse::<u16>(), high.parse::<u16>())
                    && (low..=high).contains(&slot)
                {
                    let address = fields[1].split('@').next().unwrap_or_default();
                    let port = address.rsplit(':').next().unwrap_or_default();
                    return port.parse().map_err(|error| format!("{address}: {error}"));
                }
            }
        }
        Err(format!("no primary serves slot {slot}"))
    }

    /// Waits until the primary on `port` has a replica with every write so
    /// far (`WAIT 1`).
    pub fn wait_replicated(&self, port: u16) -> Result<(), String> {
        let acked = cli(port, &["WAIT", "1", "5000"])?;
        if acked.trim() == "1" {
            Ok(())
        } else {
            Err(format!("WAIT 1: {acked}"))
        }
    }

    /// Kills (SIGKILL) the node on `port`.
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|node| node.port == port) {
            node.stop();
        }
    }

    /// Kills every node (their data is gone; their cluster configuration
    /// files stay).
    pub fn stop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
    }

    /// Starts every node again on its port, empty but with its cluster
    /// configuration, and waits for `cluster_state:ok`.
    pub fn restart(&mut self) -> Result<(), String> {
        for node in &mut self.nodes {
            node.restart()?;
        }
        self.wait_ok()
    }
}

/// `redis-cli -p PORT ARGS…`, its output.
fn cli(port: u16, args: &[&str]) -> Result<String, String> {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|error| format!("redis-cli: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!("redis-cli {args:?} failed"))
    }
}
