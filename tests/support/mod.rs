//! What the end-to-end tests share: finding the job binaries, running them, local servers, and
//! the rule that a missing server fails the test under `CI=true` instead of skipping it.

#![allow(clippy::print_stderr, clippy::disallowed_methods)]

pub mod fakesnow;
pub mod grant_emulator;
pub mod lineage;
pub mod moto;
pub mod postgres;
pub mod pushgateway;
pub mod receiver;
pub mod stage_import;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The helpers the library tests use too (`crates/test-servers`): one rule for missing servers.
pub use test_servers::{missing, venv_tool};

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every one of `needles` is in `text`.
#[track_caller]
pub fn assert_contains(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}

/// The debug binary of a job, built by `cargo build --workspace` next to this test binary.
pub fn bin(job: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join(job);
    assert!(
        path.exists(),
        "{} is missing: build the jobs first (`cargo build --workspace`, as `make test` does)",
        path.display()
    );
    path
}

/// A job run: exit code, stdout, stderr, and how long it took.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// A command for `job` with an empty environment (tests say every variable they mean).
pub fn job(job: &str) -> Command {
    let mut command = Command::new(bin(job));
    command.env_clear().stdin(Stdio::null());
    command
}

pub fn run(mut command: Command) -> Run {
    let started = Instant::now();
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("run job");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// Starts a server process that ends when this test process does, even though servers are kept
/// in statics (which are never dropped): a shell watchdog polls for the test process and kills
/// the server once it is gone.
#[must_use = "keep the watchdog, or wait on it"]
pub fn spawn_server(program: &std::path::Path, args: &[&str]) -> std::process::Child {
    let mut quoted = vec![shell_quote(&program.display().to_string())];
    quoted.extend(args.iter().map(|a| shell_quote(a)));
    let script = format!(
        "{} >/dev/null 2>&1 & server=$!; trap 'kill $server 2>/dev/null' EXIT; \
         while kill -0 {} 2>/dev/null && kill -0 $server 2>/dev/null; do sleep 0.5; done",
        quoted.join(" "),
        std::process::id()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .expect("start server watchdog")
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Sends SIGTERM to a child process, as Kubernetes stops a pod.
#[track_caller]
pub fn sigterm(child: &std::process::Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM {} failed", child.id());
}

/// Waits until something listens on `port` (127.0.0.1).
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A job's environment contract as it prints it (`--env-schema`): checked to be its own.
pub fn env_schema(name: &str) -> serde_json::Value {
    let mut command = job(name);
    command.arg("--env-schema");
    let out = run(command);
    assert_eq!(out.code, Some(0), "{name} --env-schema: {out:?}");
    let schema: serde_json::Value =
        serde_json::from_str(&out.stdout).expect("--env-schema prints JSON");
    assert_eq!(schema["job"], name, "{name}'s schema names another job");
    schema
}

/// The variable names of an `--env-schema`, in its order.
pub fn variable_names(schema: &serde_json::Value) -> Vec<&str> {
    schema["variables"]
        .as_array()
        .expect("variables")
        .iter()
        .map(|v| v["name"].as_str().expect("name"))
        .collect()
}
