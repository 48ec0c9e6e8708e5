//! A real PostgreSQL server for the PostgreSQL store's tests and
//! benchmarks: `initdb` on a temporary directory and `pg_ctl start` on
//! `127.0.0.1` and a free port (trust authentication, `fsync=off`), stopped
//! with `pg_ctl stop -m immediate` and its directory removed when dropped
//! (also when the test panics).
//!
//! The binaries come from Debian's `postgresql` package (`.ci/run` installs
//! it), which does not put them on PATH: they are looked for on PATH, then
//! in `/usr/lib/postgresql/*/bin` (newest first) and `/usr/local/bin`.
//! `initdb` refuses to run as root: as root, every command runs as the
//! `postgres` user (`runuser -u postgres --`) and the directory is owned by
//! it. `initdb` runs once per machine: its result is kept under the
//! temporary directory (`refresh-endpoint-pg-template-…`) and copied. When PostgreSQL is missing, [`PostgresServer::start_or_skip`] says
//! why and answers `None`, except under `CI=true`, where it panics.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::redis_server::{TempDir, TlsFiles, required};

/// A running PostgreSQL that this process started.
#[derive(Debug)]
pub struct PostgresServer {
    bin: PathBuf,
    as_postgres: bool,
    port: u16,
    running: bool,
    tls: Option<TlsFiles>,
    dir: TempDir,
}

impl PostgresServer {
    /// Starts a server, or returns `None` after printing why the caller
    /// should skip; panics under `CI=true` when PostgreSQL is missing.
    pub fn start_or_skip() -> Option<PostgresServer> {
        Self::start_or_skip_with(false)
    }

    /// Like [`start_or_skip`](Self::start_or_skip), for a server that
    /// accepts TLS connections only (`hostssl` in `pg_hba.conf`), with a
    /// certificate from a throw-away CA ([`tls`](Self::tls)).
    pub fn start_tls_or_skip() -> Option<PostgresServer> {
        Self::start_or_skip_with(true)
    }

    fn start_or_skip_with(tls: bool) -> Option<PostgresServer> {
        let bin = match find_bin() {
            Ok(bin) => bin,
            Err(why) => {
                assert!(
                    !required(),
                    "{why}, and CI=true: .ci/run should have installed it"
                );
                eprintln!("skipped: {why}");
                return None;
            }
        };
        match Self::start(bin, tls) {
            Ok(server) => Some(server),
            Err(error) => panic!("postgresql: {error}"),
        }
    }

    fn start(bin: PathBuf, tls: bool) -> Result<PostgresServer, String> {
        let as_postgres = is_root();
        let dir = TempDir::new("postgres")?;
        let tls = if tls {
            let files = TlsFiles::generate(dir.path())?;
            let key = files.path("server-key.pem");
            std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .map_err(|error| format!("{}: {error}", key.display()))?;
            Some(files)
        } else {
            None
        };
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()))?;
        }
        let mut server = PostgresServer {
            bin,
            as_postgres,
            port: 0,
            running: false,
            tls,
            dir,
        };
        // A copy of a data directory made once by `initdb` (about 2 s each).
        let template = server.template()?;
        run(Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(server.data()))?;
        if server.tls.is_some() {
            // Overwritten in place: the file keeps its owner.
            std::fs::write(
                server.data().join("pg_hba.conf"),
                "hostssl all all 127.0.0.1/32 trust\n",
            )
            .map_err(|error| format!("pg_hba.conf: {error}"))?;
        }
        let mut last = String::new();
        // Another process may take the free port between our look and the
        // server's bind: try a few.
        for _ in 0..3 {
            server.port = free_port()?;
            match server.pg_ctl_start() {
                Ok(()) => return Ok(server),
                Err(why) => last = why,
            }
        }
        Err(last)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A fresh `initdb` data directory, made once per machine and version
    /// under the temporary directory and copied for each server.
    fn template(&self) -> Result<PathBuf, String> {
        let version = self
            .bin
            .display()
            .to_string()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        let user = if self.as_postgres { "postgres" } else { "user" };
        let template =
            std::env::temp_dir().join(format!("refresh-endpoint-pg-template-{user}-{version}"));
        if template.join("PG_VERSION").is_file() {
            return Ok(template);
        }
        let scratch = TempDir::new("postgres-initdb")?;
        if self.as_postgres {
            run(Command::new("chown")
                .args(["postgres:postgres"])
                .arg(scratch.path()))?;
        }
        let data = scratch.path().join("data");
        run(self.command("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]))?;
        // Another test process may have made it meanwhile: either is good.
        if std::fs::rename(&data, &template).is_err() && !template.join("PG_VERSION").is_file() {
            return Err(format!(
                "cannot keep the template at {}",
                template.display()
            ));
        }
        Ok(template)
    }

    /// A command from PostgreSQL's bin directory, as the `postgres` user
    /// when this process is root.
    fn command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn pg_ctl_start(&mut self) -> Result<(), String> {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        if let Some(tls) = &self.tls {
            options += &format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={} -c ssl_ca_file={}",
                tls.path("server.pem").display(),
                tls.path("server-key.pem").display(),
                tls.path("ca.pem").display()
            );
        }
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-o", &options, "-w", "-t", "30", "start"]))?;
        self.running = true;
        Ok(())
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`, with
    /// `?sslmode=require` for a TLS server.
    pub fn url(&self) -> String {
        let tls = if self.tls.is_some() {
            "?sslmode=require"
        } else {
            ""
        };
        format!("postgres://postgres@127.0.0.1:{}/postgres{tls}", self.port)
    }

    /// The TLS material of a [`start_tls_or_skip`](Self::start_tls_or_skip) server.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// The port it listens on (the same after [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server at once (`-m immediate`: no shutdown checkpoint,
    /// the nearest thing to a crash); its data stays on disk.
    pub fn stop(&mut self) {
        if self.running {
            self.running = false;
            let _ = run(self.command("pg_ctl").arg("-D").arg(self.data()).args([
                "-m",
                "immediate",
                "-w",
                "stop",
            ]));
        }
    }

    /// Starts the server again on the same port, with its data.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.pg_ctl_start()
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// The directory holding `initdb` and `pg_ctl`.
fn find_bin() -> Result<PathBuf, String> {
    let has = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has(&dir) {
                return Ok(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.into_iter().rev().find(|(_, dir)| has(dir)) {
        return Ok(dir);
    }
    let local = PathBuf::from("/usr/local/bin");
    if has(&local) {
        return Ok(local);
    }
    Err("PostgreSQL is not installed (no initdb and pg_ctl on PATH, in /usr/lib/postgresql/*/bin or /usr/local/bin); `apt-get install postgresql`".into())
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|error| format!("no free loopback port: {error}"))
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("{command:?}: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
