//! stage-import on Snowflake, through the real binary, against fakesnow behind its compatibility
//! proxy (`support::fakesnow`): configuration, login failures, bootstrap from nothing (twice),
//! a day without files, and no secret in the output. Each test has a database of its own.
//!
//! Loading itself is not covered here yet: fakesnow cannot run a transforming
//! `COPY INTO ... FROM (SELECT $1, ..., METADATA$FILENAME ...)` nor `ON_ERROR = 'CONTINUE'`
//! (see crates/stage-import/README.md); the COPY text and the reading of its result are unit
//! tests in `warehouse/snowflake.rs`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::support::fakesnow::{FakeSnow, Rule, server};
use crate::support::{Run, bin, job, run};

const PASSWORD: &str = "pw-Sn0wfl4ke-do-not-log";
const AWS_SECRET: &str = "aws-secret-do-not-print";
const DAY: &str = "2026-11-26";

/// A test's stage directory (one day of every source) and database.
struct Setup {
    dir: tempfile::TempDir,
    database: String,
    snow: &'static FakeSnow,
}

impl Setup {
    fn new(snow: &'static FakeSnow, label: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let mut generate = Command::new(bin("sample-data"));
        generate
            .args(["stage", "--out"])
            .arg(dir.path().join("stage"))
            .args(["--days", "1", "--end", DAY, "--servers", "10"])
            .args(["--files-per-day", "1", "--rows-per-file", "20"]);
        let out = run(generate);
        assert_eq!(out.code, Some(0), "{out:?}");
        Setup {
            dir,
            database: snow.database(label),
            snow,
        }
    }

    fn stage(&self) -> PathBuf {
        self.dir.path().join("stage")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = job("stage-import");
        command
            .args(args)
            .env("STAGE_ROOT", format!("file://{}", self.stage().display()))
            .env("RELEASE_LOCATION", "E1RELEASES")
            .env("DIAGNOSTIC_LOCATION_ONE", "E1DIAGNOSTICS")
            .env("DIAGNOSTIC_LOCATION_TWO", "E2DIAGNOSTICS")
            .env("AWS_ACCOUNT_ID", "123456789012")
            .env("SNOWFLAKE_ACCOUNT", "xy12345")
            .env("SNOWFLAKE_LOAD_USER", "loader_test")
            .env("SNOWFLAKE_LOAD_PASSWORD", PASSWORD)
            .env("SNOWFLAKE_LOAD_WAREHOUSE", "LOADING")
            .env("SNOWFLAKE_LOAD_DATABASE", &self.database)
            .env("SNOWFLAKE_URL", self.snow.base_url())
            // A local stage keeps the embedded warehouse out of it: a file it wrote would
            // show that the wrong backend ran.
            .env(
                "WAREHOUSE_PATH",
                self.dir.path().join("must-not-exist.duckdb"),
            );
        command
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = run(self.command(args));
        assert!(
            !self.dir.path().join("must-not-exist.duckdb").exists(),
            "the embedded warehouse ran"
        );
        assert_no_secret(&out);
        out
    }
}

fn assert_no_secret(out: &Run) {
    for secret in [PASSWORD, AWS_SECRET] {
        assert!(
            !out.stderr.contains(secret),
            "secret in logs: {}",
            out.stderr
        );
        assert!(
            !out.stdout.contains(secret),
            "secret in output: {}",
            out.stdout
        );
    }
}

#[test]
fn missing_snowflake_variables_are_named_together() {
    let mut command = job("stage-import");
    command
        .args(["licenses", "--date", DAY])
        .env("STAGE_ROOT", "/nonexistent")
        .env("SNOWFLAKE_ACCOUNT", "xy12345");
    let out = run(command);
    assert_eq!(out.code, Some(2), "{out:?}");
    for name in [
        "SNOWFLAKE_LOAD_USER",
        "SNOWFLAKE_LOAD_PASSWORD",
        "SNOWFLAKE_LOAD_WAREHOUSE",
    ] {
        assert!(
            out.stderr.contains(name),
            "{name} not named: {}",
            out.stderr
        );
    }
}

#[test]
fn bootstrap_creates_everything_from_nothing_and_again_changes_nothing() {
    let Some(snow) = server() else { return };
    let setup = Setup::new(snow, "sf_bootstrap");
    let first = setup.run(&["bootstrap"]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let again = setup.run(&["bootstrap"]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);

    let tables = setup.run(&[
        "query",
        "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables \
         WHERE table_schema IN ('LICENSES', 'RELEASES', 'DIAGNOSTICS', 'PUSH_PROXY') \
         ORDER BY 1",
    ]);
    assert_eq!(tables.code, Some(0), "{}", tables.stderr);
    let names: Vec<&str> = tables.stdout.lines().skip(2).map(str::trim).collect();
    assert_eq!(
        names,
        [
            "DIAGNOSTICS.LOG_ENTRIES",
            "LICENSES.LICENSES",
            "PUSH_PROXY.DE_LOGS",
            "PUSH_PROXY.LOGS",
            "PUSH_PROXY.TEST_LOGS",
            "RELEASES.LOG_ENTRIES"
        ],
        "{}",
        tables.stdout
    );
    // The statements ran as the loader, in the configured database, one CREATE per object
    // and run: the second bootstrap sent the same IF NOT EXISTS statements again.
    let stages = snow.events_of(
        "statement",
        "CREATE STAGE IF NOT EXISTS licenses.licenses_stage",
    );
    let ours: Vec<_> = stages
        .iter()
        .filter(|e| {
            e["text"]
                .as_str()
                .unwrap()
                .contains(&format!("file://{}/licenses/", setup.stage().display()))
        })
        .collect();
    assert_eq!(ours.len(), 2, "{stages:#?}");
}

#[test]
fn bootstrap_print_needs_no_login_and_hides_the_aws_secret() {
    let Some(snow) = server() else { return };
    let setup = Setup::new(snow, "sf_print");
    let mut command = setup.command(&["bootstrap", "--print", "licenses"]);
    command
        .env("STAGE_ROOT", "s3://raw-bucket/landing")
        .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        // Nothing listens here: printing must not try to log in.
        .env("SNOWFLAKE_URL", "http://127.0.0.1:9");
    let out = run(command);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_no_secret(&out);
    assert!(
        out.stdout.contains(
            "CREATE STAGE IF NOT EXISTS licenses.licenses_stage\n  URL = 's3://raw-bucket/landing/licenses/'\n  CREDENTIALS = (AWS_KEY_ID = 'AKIAEXAMPLE' AWS_SECRET_KEY = '"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("COMPRESSION = NONE"), "{}", out.stdout);
}

#[test]
fn a_refused_login_is_a_configuration_error() {
    let Some(snow) = server() else { return };
    let setup = Setup::new(snow, "sf_login");
    let mut command = setup.command(&["bootstrap"]);
    command.env("SNOWFLAKE_LOAD_USER", "refused_loader");
    snow.script(
        Rule::login("REFUSED_LOADER")
            .login_error("390100", "Incorrect username or password was specified."),
    );
    let out = run(command);
    assert_no_secret(&out);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("Incorrect username or password"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("xy12345"), "{}", out.stderr);
}

#[test]
fn an_unreachable_snowflake_is_a_failure_that_says_where() {
    let Some(snow) = server() else { return };
    let setup = Setup::new(snow, "sf_unreachable");
    let mut command = setup.command(&["bootstrap"]);
    let port = crate::support::free_port();
    command.env("SNOWFLAKE_URL", format!("http://127.0.0.1:{port}"));
    let out = run(command);
    assert_no_secret(&out);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("127.0.0.1:{port}")),
        "{}",
        out.stderr
    );
}

#[test]
fn a_day_without_files_is_its_own_outcome() {
    let Some(snow) = server() else { return };
    let setup = Setup::new(snow, "sf_empty");
    let boot = setup.run(&["bootstrap", "licenses"]);
    assert_eq!(boot.code, Some(0), "{}", boot.stderr);
    let out = setup.run(&["licenses", "--date", "2026-10-01"]);
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["loads"][0]["outcome"], "no_files");
    assert_eq!(
        report["warehouse"],
        format!("snowflake:xy12345/{}", setup.database)
    );
}

#[test]
fn loading_before_bootstrap_says_what_to_do() {
    let Some(snow) = server() else { return };
    let setup = Setup::new(snow, "sf_no_table");
    let out = setup.run(&["licenses", "--date", DAY]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("run `stage-import bootstrap` first"),
        "{}",
        out.stderr
    );
}
