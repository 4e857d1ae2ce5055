//! Real PostgreSQL servers for the tests, from Debian's `postgresql` package: one plain server
//! and one that accepts only TLS (a throwaway CA and a server certificate for `localhost`, made
//! with the openssl CLI that the package pulls in), each started once per test binary on a free
//! port on 127.0.0.1. Each test creates its own database on them.
//!
//! initdb refuses to run as root, and CI runs as root: then the server runs as the `postgres`
//! user the package creates (or `nobody`). A small shell wrapper owns the server and its
//! directory; it gets SIGTERM when the test process ends (parent-death signal), stops the
//! server fast and removes the directory, since statics are never dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{Run, free_port, missing, repo};

/// The superuser's password: with characters that must be percent-encoded in a URL, so that
/// tests see that neither form of it leaks.
pub const PASSWORD: &str = "Pg/s3cret%pw";
pub const PASSWORD_IN_URL: &str = "Pg%2Fs3cret%25pw";

/// Neither spelling of the password (as typed, as percent-encoded in the URL), nor the wrong
/// one the tests try, in any output of a job.
#[track_caller]
pub fn assert_no_password(out: &Run) {
    for secret in [PASSWORD, PASSWORD_IN_URL, "wrong-Pa55word"] {
        assert!(
            !out.stderr.contains(secret) && !out.stdout.contains(secret),
            "{secret:?} leaked:\n{}{}",
            out.stdout,
            out.stderr
        );
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    pub port: u16,
    /// Only for the TLS server: its CA, and a CA that did not sign its certificate.
    pub tls: Option<TlsFiles>,
    psql: PathBuf,
}

#[derive(Debug)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub other_ca: PathBuf,
}

/// The plain (no TLS) server; `None` when PostgreSQL is not installed and not in CI.
pub fn plain() -> Option<&'static Server> {
    static SERVER: OnceLock<Option<Server>> = OnceLock::new();
    SERVER.get_or_init(|| start(false)).as_ref()
}

/// The server that accepts TLS connections only.
pub fn tls() -> Option<&'static Server> {
    static SERVER: OnceLock<Option<Server>> = OnceLock::new();
    SERVER.get_or_init(|| start(true)).as_ref()
}

impl Server {
    /// A URL for the superuser on 127.0.0.1; `query` without the `?`.
    pub fn url(&self, database: &str, query: &str) -> String {
        self.url_for("127.0.0.1", PASSWORD_IN_URL, database, query)
    }

    /// An empty `query` on the plain server says `sslmode=disable`: pg-job's default is
    /// `require`.
    pub fn url_for(&self, host: &str, password: &str, database: &str, query: &str) -> String {
        let mut url = format!(
            "postgres://postgres:{password}@{host}:{}/{database}",
            self.port
        );
        let query = match query {
            "" if self.tls.is_none() => "sslmode=disable",
            _ => query,
        };
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    /// A fresh database for one test (dropped first if a previous run left it).
    pub fn database(&self, name: &str) -> String {
        let name = format!("t_{name}");
        self.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }

    fn psql_command(&self, database: &str) -> Command {
        let sslmode = if self.tls.is_some() {
            "require"
        } else {
            "disable"
        };
        let mut command = Command::new(&self.psql);
        command
            .env_clear()
            .env("PGCONNECT_TIMEOUT", "10")
            .arg(self.url(database, &format!("sslmode={sslmode}")))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .stdin(Stdio::null());
        command
    }

    /// Runs `sql` with psql; its unaligned output. Panics when psql fails.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = self
            .psql_command(database)
            .arg("-c")
            .arg(sql)
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A fresh database holding the Heroku Connect shaped fixture tables and their seed rows
    /// (transform/fixtures).
    pub fn seeded(&self, name: &str) -> String {
        let db = self.database(name);
        for fixture in ["salesforce_schema.sql", "salesforce_seed.sql"] {
            self.psql_file(&db, &repo().join("transform/fixtures").join(fixture));
        }
        db
    }

    /// Starts `sql` with psql in the background (a session that holds a lock, a transaction
    /// that commits late); the caller waits for it or kills it.
    pub fn psql_spawn(&self, database: &str, sql: &str) -> std::process::Child {
        self.psql_command(database)
            .arg("-c")
            .arg(sql)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run psql")
    }

    /// Runs a SQL file with psql (fixtures), in one transaction.
    pub fn psql_file(&self, database: &str, file: &Path) {
        let out = self
            .psql_command(database)
            .arg("-1")
            .arg("-f")
            .arg(file)
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql -f {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Debian installs each major version under /usr/lib/postgresql/<major>/bin; the newest wins.
fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let major = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Who runs the server: this user, unless it is root (initdb refuses); then `postgres` or
/// `nobody`, as `uid:gid`.
fn server_user() -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    let me = std::fs::metadata("/proc/self").ok()?;
    if me.uid() != 0 {
        return None;
    }
    for name in ["postgres", "nobody"] {
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").arg(flag).arg(name).output().ok()?;
            String::from_utf8(out.stdout).ok()?.trim().parse().ok()
        };
        if let (Some(uid), Some(gid)) = (id("-u"), id("-g")) {
            return Some((uid, gid));
        }
    }
    panic!("running as root, but neither a postgres nor a nobody user exists to run PostgreSQL");
}

fn run_ok(command: &mut Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `command` run as the server's user.
fn as_server_user(user: Option<(u32, u32)>, program: &Path) -> Command {
    match user {
        Some((uid, gid)) => {
            let mut command = Command::new("setpriv");
            command
                .arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg("--")
                .arg(program);
            command
        }
        None => Command::new(program),
    }
}

fn start(tls: bool) -> Option<Server> {
    let Some(bin) = bin_dir() else {
        missing("PostgreSQL (Debian's postgresql package: /usr/lib/postgresql/*/bin/initdb)");
        return None;
    };
    let user = server_user();
    let dir = tempfile::Builder::new()
        .prefix("pg-job-test-")
        .tempdir()
        .expect("temp dir")
        .keep();
    let data = dir.join("data");
    std::fs::write(dir.join("pwfile"), format!("{PASSWORD}\n")).unwrap();
    let tls_files = tls.then(|| make_certificates(&dir));
    if let Some((uid, gid)) = user {
        run_ok(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(&dir),
            "chown the server directory",
        );
    }
    run_ok(
        as_server_user(user, &bin.join("initdb"))
            .current_dir(&dir)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "scram-sha-256",
                "--auth-local=trust",
            ])
            .args(["-E", "UTF8", "--locale=C", "--no-sync"])
            .arg(format!("--pwfile={}", dir.join("pwfile").display())),
        "initdb",
    );
    let hba = if tls {
        // TLS only: a plain connection finds no entry and is turned away, as with Heroku.
        "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n"
    } else {
        "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
    };
    std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
    let port = free_port();
    let mut conf = format!(
        "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
         fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 50\n\
         shared_buffers = 32MB\n",
        dir.display()
    );
    if tls {
        conf.push_str(&format!(
            "ssl = on\nssl_cert_file = '{0}/server.pem'\nssl_key_file = '{0}/server.key'\n",
            dir.display()
        ));
    }
    let mut existing = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
    existing.push_str(&conf);
    std::fs::write(data.join("postgresql.conf"), existing).unwrap();
    if let Some((uid, gid)) = user {
        run_ok(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(&dir),
            "chown the server directory",
        );
    }
    spawn_server(user, &bin, &data, &dir);
    let server = Server {
        port,
        tls: tls_files,
        psql: bin.join("psql"),
    };
    wait_until_ready(&server, &dir);
    Some(server)
}

/// Starts the server under a wrapper shell that stops it and removes `dir` when it gets
/// SIGTERM, which it does when this test process ends: the wrapper is started from a thread that
/// lives as long as the process, because the parent-death signal fires when the spawning
/// *thread* ends.
fn spawn_server(user: Option<(u32, u32)>, bin: &Path, data: &Path, dir: &Path) {
    let run_as = match user {
        Some((uid, gid)) => format!("setpriv --reuid={uid} --regid={gid} --clear-groups --"),
        None => String::new(),
    };
    let script = format!(
        "{run_as} '{postgres}' -D '{data}' >'{dir}/server.log' 2>&1 &\n\
         pid=$!\n\
         trap 'kill -INT $pid 2>/dev/null; wait $pid; rm -rf \"{dir}\"; exit 0' TERM INT\n\
         wait $pid\n",
        postgres = bin.join("postgres").display(),
        data = data.display(),
        dir = dir.display(),
    );
    let cwd = dir.to_owned();
    let (sent, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "TERM", "--", "sh", "-c", &script])
            .current_dir(&cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let _ = sent.send(child.map(|c| c.id()));
        loop {
            std::thread::park();
        }
    });
    received
        .recv()
        .expect("server thread")
        .expect("start the PostgreSQL server");
}

fn wait_until_ready(server: &Server, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = server
            .psql_command("postgres")
            .env("PGCONNECT_TIMEOUT", "2")
            .args(["-c", "SELECT 1"])
            .output()
            .expect("run psql");
        if out.status.success() {
            return;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            panic!(
                "PostgreSQL did not start within 60 s: {}\nserver log:\n{log}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A CA, a server certificate it signs for `localhost` only (so that connecting to 127.0.0.1
/// fails verify-full but passes verify-ca), and an unrelated CA.
fn make_certificates(dir: &Path) -> TlsFiles {
    let openssl = |args: &[&str]| {
        run_ok(
            Command::new("openssl").current_dir(dir).args(args),
            &format!("openssl {}", args[0]),
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for (name, subject) in [
        ("ca", "/CN=pg-job test CA"),
        ("other-ca", "/CN=unrelated CA"),
    ] {
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend([
            "-days",
            "2",
            "-subj",
            subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        let key = format!("{name}.key");
        let pem = format!("{name}.pem");
        args.extend(["-keyout", &key, "-out", &pem]);
        openssl(&args);
    }
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend([
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    openssl(&args);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = DNS:localhost\nbasicConstraints = CA:FALSE\n\
         keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
    // The server refuses a key that others can read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    TlsFiles {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
    }
}
