//! Test-only: the local servers tests talk to, started by the tests themselves, once per test
//! binary. A crate of its own so that the end-to-end suite (`tests/`) and a library's own
//! integration tests (`crates/snowflake-conn/tests`) start them the same way from one source.
//!
//! Today: [`fakesnow`], the Snowflake emulator behind its compatibility proxy
//! (`tests/snowflake_compat/proxy.py`). Tools come from the project's Python venv
//! (`DATA_JOBS_VENV`, as `make venv` and `.ci/run` set it); when one is missing a test skips
//! loudly, except under `CI=true`, where it fails.

#![allow(clippy::print_stderr, clippy::disallowed_methods)]

pub mod fakesnow;
pub mod keys;

use std::path::PathBuf;

/// A tool installed in the project's Python venv (`make venv`): fakesnow, python, moto_server.
pub fn venv_tool(name: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("DATA_JOBS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv"));
    let path = venv.join("bin").join(name);
    path.exists().then_some(path)
}

/// True when running under CI, where every server a test needs must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Call when a server or tool the test needs is missing: fails under CI, else skips loudly.
/// Returns `true` when the test should return early.
pub fn missing(what: &str) -> bool {
    assert!(
        !in_ci(),
        "{what} is missing, and CI=true: this test must run"
    );
    eprintln!("SKIPPED (not in CI): {what} is missing");
    true
}

pub(crate) fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
