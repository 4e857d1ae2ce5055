//! stage-import on Snowflake, through the real binary, against fakesnow behind its compatibility
//! proxy (`support::fakesnow`). Each test has a database of its own.
//!
//! fakesnow cannot run the COPY stage-import sends (a transforming
//! `COPY INTO ... FROM (SELECT $1, ..., METADATA$FILENAME ...)` with `ON_ERROR = 'CONTINUE'`):
//! the proxy answers COPY INTO itself (`tests/snowflake_compat/copy_into.py`), reading the
//! stage's `file://` files with the file format bootstrap created and inserting the rows into
//! fakesnow on the job's own session. `copy_emulator_answers_as_snowflake_documents` checks that
//! emulation with Snowflake's own Python connector (`check_copy.py`); the other tests cover
//! configuration, login failures, bootstrap, and loading: every built-in source over a backfill
//! with malformed lines (per-file report, exit 3), an unreadable file, a second run that loads
//! nothing twice, `--reload` replacing a day, SIGTERM during a reload (nothing committed, 130),
//! a user catalog, and S3 end to end: the preflight lists the bucket (moto) and COPY reads the
//! stage's objects from it. The files are `sample-data`'s, as in `stage_import.rs`, whose DuckDB
//! runs give the same reports.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::support::fakesnow::{FakeSnow, Rule, server};
use crate::support::moto::{Moto, moto};
use crate::support::stage_import::{
    diagnostics_logs, files, first_records, make_older_log, outcome_of, parse_report,
    plans_catalog, statuses, strip_log_header, swap_license_header, write_empty_logs,
};
use crate::support::{Run, bin, job, run};

const PASSWORD: &str = "pw-Sn0wfl4ke-do-not-log";
const AWS_SECRET: &str = "aws-secret-do-not-print";
const DAY: &str = "2026-11-26";
/// The generated days; the middle one has the generator's malformed lines.
const DAYS: [&str; 3] = ["2026-11-24", "2026-11-25", DAY];

/// A test's stage directory (three days of every source) and database.
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
            .args(["--days", "3", "--end", DAY, "--servers", "10"])
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

    /// The job's command with `STAGE_ROOT` at `bucket/raw/` in S3 (moto): its preflight and
    /// header checks read the bucket; COPY reads whatever the stages bootstrap made point at (the
    /// same files on disk, unless bootstrap ran with this command too).
    fn listing_s3(&self, moto: &Moto, bucket: &str, args: &[&str]) -> Command {
        let mut command = self.command(args);
        command
            .env("STAGE_ROOT", format!("s3://{bucket}/raw"))
            .env("S3_ENDPOINT_URL", &moto.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test-key")
            .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET);
        command
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_command(self.command(args))
    }

    fn run_command(&self, command: Command) -> Run {
        let out = run(command);
        assert!(
            !self.dir.path().join("must-not-exist.duckdb").exists(),
            "the embedded warehouse ran"
        );
        assert_no_secret(&out);
        out
    }

    fn bootstrap(&self) {
        let out = self.run(&["bootstrap"]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
    }

    /// The rows of a query, each a line of `stage-import query`'s table split on whitespace.
    fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let out = self.run(&["query", sql]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        out.stdout
            .lines()
            .skip(2)
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect()
    }

    fn count(&self, table: &str) -> u64 {
        let rows = self.query(&format!("SELECT COUNT(*) AS n FROM {table}"));
        rows[0][0].parse().unwrap()
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
        "SNOWFLAKE_LOAD_WAREHOUSE",
        "one of SNOWFLAKE_LOAD_PRIVATE_KEY, SNOWFLAKE_LOAD_PRIVATE_KEY_PATH, SNOWFLAKE_LOAD_TOKEN \
         or SNOWFLAKE_LOAD_PASSWORD",
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
            "CREATE STAGE IF NOT EXISTS licenses.licenses_stage\n  URL = 's3://raw-bucket/landing/licenses/'\n  CREDENTIALS = (AWS_KEY_ID = 'AKIAEXAMPLE' AWS_SECRET_KEY = '<AWS_SECRET_ACCESS_KEY>')"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("COMPRESSION = NONE"), "{}", out.stdout);
    // An existing stage gets the current keys too (an AWS_TOKEN expires).
    assert!(
        out.stdout.contains(
            "ALTER STAGE licenses.licenses_stage SET\n  CREDENTIALS = (AWS_KEY_ID = 'AKIAEXAMPLE' AWS_SECRET_KEY = '"
        ),
        "{}",
        out.stdout
    );
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

#[test]
fn copy_emulator_answers_as_snowflake_documents() {
    let (Some(snow), Some(s3)) = (server(), moto()) else {
        return;
    };
    snow.use_s3(&s3.endpoint);
    let python = crate::support::venv_tool("python").expect("the venv that runs fakesnow");
    let database = snow.database("sf_copy_emulator");
    let scratch = tempfile::tempdir().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("snowflake_compat/check_copy.py");
    let out = run({
        let mut c = Command::new(python);
        c.arg(&script)
            .arg(snow.base_url())
            .arg(&database)
            .arg(scratch.path())
            .arg(&s3.endpoint)
            .arg(format!("copy-check-{}", std::process::id()));
        c
    });
    assert_eq!(
        out.code,
        Some(0),
        "check_copy.py failed:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(out.stdout.trim(), "ok");
}

#[test]
fn every_built_in_source_loads_over_a_backfill_with_a_report_per_file() {
    let Some(snow) = server() else { return };
    let setup = Setup::new(snow, "sf_every_source");
    setup.bootstrap();
    let out = setup.run(&["all", "--from", DAYS[0], "--to", DAYS[2]]);
    // The middle day carries malformed lines: partial success, exit code 3.
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    let report = parse_report(&out);
    let loads = report["loads"].as_array().unwrap();
    // 6 sources, diagnostics with two locations, 3 days, day by day in order.
    assert_eq!(loads.len(), 7 * 3);
    let dates: Vec<&str> = loads.iter().map(|l| l["date"].as_str().unwrap()).collect();
    let mut sorted = dates.clone();
    sorted.sort();
    assert_eq!(dates, sorted, "days in order");
    for load in loads {
        assert!(load["files_found"].as_u64().unwrap() > 0, "{load}");
    }

    // The licenses export of the middle day has one bad row: PARTIALLY_LOADED, with its line.
    let licenses = files(&report, "licenses");
    let bad = licenses
        .iter()
        .find(|f| f["file"] == format!("{}/licenses-{}.csv", DAYS[1], DAYS[1]))
        .unwrap();
    assert_eq!(bad["status"], "PARTIALLY_LOADED", "{bad}");
    assert_eq!(bad["errors_seen"], 1);
    assert_eq!(bad["rows_parsed"], 11);
    assert_eq!(bad["rows_loaded"], 10);
    assert!(bad["first_error_line"].as_u64().unwrap() > 10, "{bad}");
    assert!(
        bad["first_error"].as_str().unwrap().contains("'many'"),
        "{bad}"
    );
    // A bad CloudFront line and a bad ELB line are rejected the same way.
    for source in ["diagnostics", "push_proxy"] {
        let partial: Vec<_> = files(&report, source)
            .into_iter()
            .filter(|f| f["status"] == "PARTIALLY_LOADED")
            .collect();
        assert_eq!(partial.len(), 1, "{source}: {partial:#?}");
        assert_eq!(partial[0]["errors_seen"], 1, "{source}: {partial:#?}");
    }
    assert_eq!(statuses(&report), ["LOADED", "PARTIALLY_LOADED"]);
    assert!(
        out.stderr.contains("partially loaded: rows rejected"),
        "{}",
        out.stderr
    );

    // What the report says was loaded is in the tables; rows carry their file (its path below
    // the stage, as in the report) and load time.
    assert_eq!(setup.count("licenses.licenses"), 10 * 3);
    let reported: u64 = loads
        .iter()
        .filter(|l| l["source"] == "diagnostics")
        .map(|l| l["rows_loaded"].as_u64().unwrap())
        .sum();
    assert_eq!(setup.count("diagnostics.log_entries"), reported);
    let sources = setup.query("SELECT DISTINCT _source_file FROM licenses.licenses ORDER BY 1");
    let expected: Vec<Vec<String>> = DAYS
        .iter()
        .map(|d| vec![format!("{d}/licenses-{d}.csv")])
        .collect();
    assert_eq!(sources, expected);
    let values = setup.query(
        "SELECT COUNT(DISTINCT _source_file) AS files, \
         COUNT_IF(_loaded_at IS NULL) AS no_time FROM diagnostics.log_entries",
    );
    assert_eq!(values, [["6", "0"]]);
    // Typed on the way in: numbers, dates and quoted fields with newlines.
    let license = setup.query(&format!(
        "SELECT seats, starts_at, is_trial FROM licenses.licenses \
         WHERE license_id = 'lic-000000' AND _source_file LIKE '{}%'",
        DAYS[2]
    ));
    assert_eq!(license.len(), 1, "{license:?}");
    assert_eq!(license[0][0], "50");
    assert_eq!(license[0][2], "true");
}

#[test]
fn an_unreadable_file_fails_alone() {
    let Some(snow) = server() else { return };
    let setup = Setup::new(snow, "sf_unreadable");
    let boot = setup.run(&["bootstrap", "diagnostics"]);
    assert_eq!(boot.code, Some(0), "{}", boot.stderr);
    let location = setup.stage().join("diagnostics/E1DIAGNOSTICS");
    std::fs::write(
        location.join(format!("E1DIAGNOSTICS.{DAY}-23.deadbeef.gz")),
        b"this is not gzip",
    )
    .unwrap();
    let out = setup.run(&["diagnostics", "--date", DAY]);
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    let report = parse_report(&out);
    let files = files(&report, "diagnostics");
    let broken: Vec<_> = files
        .iter()
        .filter(|f| f["status"] == "LOAD_FAILED")
        .collect();
    assert_eq!(broken.len(), 1, "{files:#?}");
    assert_eq!(
        broken[0]["file"],
        format!("E1DIAGNOSTICS/E1DIAGNOSTICS.{DAY}-23.deadbeef.gz")
    );
    assert!(
        broken[0]["first_error"]
            .as_str()
            .unwrap()
            .contains("decompression"),
        "{broken:#?}"
    );
    assert_eq!(
        files.iter().filter(|f| f["status"] == "LOADED").count(),
        2,
        "{files:#?}"
    );
    assert!(setup.count("diagnostics.log_entries") > 0);
}

#[test]
fn a_second_run_loads_nothing_twice_and_reload_replaces_the_day() {
    let Some(snow) = server() else { return };
    let setup = Setup::new(snow, "sf_rerun");
    setup.bootstrap();
    let first = setup.run(&["licenses", "diagnostics", "--date", DAY]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(statuses(&parse_report(&first)), ["LOADED"]);
    let licenses = setup.count("licenses.licenses");
    let pings = setup.count("diagnostics.log_entries");
    assert_eq!(licenses, 10);
    assert!(pings > 0);

    // Snowflake's load metadata skips every file: the report says so, per file.
    let second = setup.run(&["licenses", "diagnostics", "--date", DAY]);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    let report = parse_report(&second);
    assert_eq!(statuses(&report), ["LOAD_SKIPPED"]);
    assert_eq!(report["files_skipped"], 3);
    assert_eq!(report["rows_loaded"], 0);
    assert!(
        second.stderr.contains("skipped: loaded before"),
        "{}",
        second.stderr
    );
    assert_eq!(setup.count("licenses.licenses"), licenses);
    assert_eq!(setup.count("diagnostics.log_entries"), pings);

    // --reload deletes the day's files' rows and loads them again, in one transaction.
    let reload = setup.run(&["licenses", "diagnostics", "--date", DAY, "--reload"]);
    assert_eq!(reload.code, Some(0), "{}", reload.stderr);
    let report = parse_report(&reload);
    assert_eq!(statuses(&report), ["LOADED"]);
    assert_eq!(report["loads"][0]["reload"], true);
    assert_eq!(report["rows_loaded"], licenses + pings);
    assert_eq!(
        setup.count("licenses.licenses"),
        licenses,
        "replaced, not doubled"
    );
    assert_eq!(setup.count("diagnostics.log_entries"), pings);
    // The other days were not touched, and a load after the reload still skips the day.
    let other = setup.run(&["licenses", "--date", DAYS[0]]);
    assert_eq!(other.code, Some(0), "{}", other.stderr);
    assert_eq!(setup.count("licenses.licenses"), licenses * 2);
    let reload_again = setup.run(&["licenses", "--date", DAY, "--reload"]);
    assert_eq!(reload_again.code, Some(0), "{}", reload_again.stderr);
    assert_eq!(setup.count("licenses.licenses"), licenses * 2);
    let after = setup.run(&["licenses", "--date", DAY]);
    assert_eq!(statuses(&parse_report(&after)), ["LOAD_SKIPPED"]);

    // The day's file gone from the stage: --reload finds nothing to load, names the file the
    // table still holds rows of, and keeps them.
    let file = setup
        .stage()
        .join(format!("licenses/{DAY}/licenses-{DAY}.csv"));
    std::fs::remove_file(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let gone = setup.run(&["licenses", "--date", DAY, "--reload"]);
    let report = parse_report(&gone);
    assert_eq!(
        report["loads"][0]["files_gone"],
        serde_json::json!([format!("{DAY}/licenses-{DAY}.csv")]),
        "{report}"
    );
    assert!(
        gone.stderr.contains("no longer in the stage"),
        "{}",
        gone.stderr
    );
    assert_eq!(
        setup.count("licenses.licenses"),
        licenses * 2,
        "its rows kept"
    );
}

/// Snowflake's COPY loads a re-staged file whose ETag changed as a new file: the job deletes
/// that file's rows from its earlier load in the COPY's transaction, and reports RELOADED.
#[test]
fn a_rewritten_file_replaces_its_earlier_rows() {
    let Some(snow) = server() else { return };
    let setup = Setup::new(snow, "sf_rewrite");
    setup.bootstrap();
    let first = setup.run(&["licenses", "--date", DAY]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(setup.count("licenses.licenses"), 10);
    let other_day = setup.run(&["licenses", "--date", DAYS[0]]);
    assert_eq!(other_day.code, Some(0), "{}", other_day.stderr);

    let export = setup
        .stage()
        .join(format!("licenses/{DAY}/licenses-{DAY}.csv"));
    let text = std::fs::read_to_string(&export).unwrap();
    std::fs::write(&export, first_records(&text, 6)).unwrap();
    let rewritten = setup.run(&["licenses", "--date", DAY]);
    assert_eq!(rewritten.code, Some(0), "{}", rewritten.stderr);
    let report = parse_report(&rewritten);
    assert_eq!(statuses(&report), ["RELOADED"], "{report}");
    let outcome = &report["loads"][0]["files"][0];
    assert_eq!(outcome["rows_loaded"], 6, "{report}");
    assert_eq!(outcome["rows_replaced"], 10, "{report}");
    assert_eq!(
        setup.count("licenses.licenses"),
        6 + 10,
        "the day replaced, not added to; the other day untouched"
    );

    let again = setup.run(&["licenses", "--date", DAY]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(statuses(&parse_report(&again)), ["LOAD_SKIPPED"]);
    assert_eq!(setup.count("licenses.licenses"), 16);

    // Rewritten to its header line only: its rows are replaced by none, in the same
    // transaction; from then on the day has no data (EMPTY, exit 4).
    std::fs::write(&export, first_records(&text, 0)).unwrap();
    let emptied = setup.run(&["licenses", "--date", DAY]);
    assert_eq!(emptied.code, Some(0), "{}", emptied.stderr);
    let report = parse_report(&emptied);
    assert_eq!(statuses(&report), ["RELOADED"], "{report}");
    let outcome = &report["loads"][0]["files"][0];
    assert_eq!(outcome["rows_loaded"], 0, "{report}");
    assert_eq!(outcome["rows_replaced"], 6, "{report}");
    assert_eq!(
        setup.count("licenses.licenses"),
        10,
        "the other day untouched"
    );
    let after = setup.run(&["licenses", "--date", DAY]);
    assert_eq!(after.code, Some(4), "{}", after.stderr);
    assert_eq!(statuses(&parse_report(&after)), ["EMPTY"]);
}

/// A re-run 30 days after the load, when COPY_HISTORY (14 days) has forgotten it but COPY's
/// load metadata (64 days) still skips the files: the table's `_source_file` proves the
/// earlier load, so they are LOAD_SKIPPED, where every file used to be UNKNOWN and fail.
#[test]
fn a_rerun_a_month_after_the_load_skips_what_the_table_holds() {
    let Some(snow) = server() else { return };
    let setup = Setup::new(snow, "sf_month_old");
    setup.bootstrap();
    let first = setup.run(&["licenses", "diagnostics", "--date", DAY]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let (licenses, pings) = (
        setup.count("licenses.licenses"),
        setup.count("diagnostics.log_entries"),
    );
    assert!(snow.age_loads(&setup.database, 30) >= 3);

    let again = setup.run(&["licenses", "diagnostics", "--date", DAY]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    let report = parse_report(&again);
    assert_eq!(statuses(&report), ["LOAD_SKIPPED"], "{report}");
    assert_eq!(report["files_skipped"], 3);
    assert_eq!(setup.count("licenses.licenses"), licenses);
    assert_eq!(setup.count("diagnostics.log_entries"), pings);
}

/// A listed file COPY's result leaves out (gone from the stage when the COPY ran) is never
/// taken as loaded before: COPY_HISTORY has no load of it, so it is UNKNOWN and fails the run.
/// The files the history does show loaded are LOAD_SKIPPED as before.
#[test]
fn a_file_left_out_of_copys_result_is_unknown_unless_its_history_shows_a_load() {
    let Some(snow) = server() else { return };
    let setup = Setup::new(snow, "sf_vanished");
    setup.bootstrap();
    snow.script(
        Rule::statement("COPY INTO licenses.licenses")
            .vanish(&format!("licenses-{DAY}"))
            .for_user("VANISH_TEST"),
    );
    let run_as = |args: &[&str]| {
        let mut command = setup.command(args);
        command.env("SNOWFLAKE_LOAD_USER", "vanish_test");
        setup.run_command(command)
    };
    let out = run_as(&["licenses", "--date", DAY]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let report = parse_report(&out);
    assert_eq!(statuses(&report), ["UNKNOWN"]);
    let file = &files(&report, "licenses")[0];
    assert!(
        file["first_error"]
            .as_str()
            .unwrap()
            .contains("COPY_HISTORY"),
        "{file}"
    );
    assert_eq!(setup.count("licenses.licenses"), 0);
    assert!(
        !snow.events_of("statement", "COPY_HISTORY").is_empty(),
        "the history was asked"
    );

    // The history cannot be read: the file is UNKNOWN, and says that it could not be checked
    // (not that no earlier load was found).
    snow.script(
        Rule::statement("COPY INTO licenses.licenses")
            .vanish(&format!("licenses-{DAY}"))
            .for_user("BLIND_TEST"),
    );
    snow.script(
        Rule::statement("COPY_HISTORY")
            .http_status(403)
            .times(-1)
            .for_user("BLIND_TEST"),
    );
    let mut blind = setup.command(&["licenses", "--date", DAY]);
    blind.env("SNOWFLAKE_LOAD_USER", "blind_test");
    let out = setup.run_command(blind);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let report = parse_report(&out);
    assert_eq!(statuses(&report), ["UNKNOWN"]);
    let error = files(&report, "licenses")[0]["first_error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("could not be checked: reading COPY_HISTORY failed")
            && !error.contains("holds no row"),
        "{error}"
    );

    // Back on the stage: loaded; then skipped, as the history confirms.
    let again = run_as(&["licenses", "--date", DAY]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(statuses(&parse_report(&again)), ["LOADED"]);
    let third = run_as(&["licenses", "--date", DAY]);
    assert_eq!(third.code, Some(0), "{}", third.stderr);
    assert_eq!(statuses(&parse_report(&third)), ["LOAD_SKIPPED"]);
    assert_eq!(setup.count("licenses.licenses"), 10);
}

/// A day staged more than 64 days ago is past Snowflake's load metadata: COPY would skip its
/// files as of unknown status. The table's own `_source_file` says which were loaded; the
/// others load with LOAD_UNCERTAIN_FILES, and a re-run loads nothing twice.
#[test]
fn a_day_past_snowflakes_load_metadata_loads_once_with_load_uncertain_files() {
    let Some(snow) = server() else { return };
    let setup = Setup::new(snow, "sf_old_day");
    let old_day = "2026-09-01";
    let mut generate = Command::new(bin("sample-data"));
    generate
        .args(["stage", "--out"])
        .arg(setup.stage())
        .args(["--days", "1", "--end", old_day, "--servers", "10"])
        .args(["--files-per-day", "1", "--rows-per-file", "20"]);
    let out = run(generate);
    assert_eq!(out.code, Some(0), "{out:?}");
    setup.bootstrap();
    let first = setup.run(&["licenses", "--date", old_day]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(statuses(&parse_report(&first)), ["LOADED"]);
    let copies = snow.events_of("statement", &format!("licenses-{old_day}"));
    assert!(
        copies.iter().any(|e| e["text"]
            .as_str()
            .unwrap()
            .contains("LOAD_UNCERTAIN_FILES = TRUE")),
        "{copies:?}"
    );
    let rows = setup.count("licenses.licenses");
    assert_eq!(rows, 10);
    let second = setup.run(&["licenses", "--date", old_day]);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert_eq!(statuses(&parse_report(&second)), ["LOAD_SKIPPED"]);
    assert_eq!(
        setup.count("licenses.licenses"),
        rows,
        "nothing loaded twice"
    );
}

#[test]
fn sigterm_during_a_reload_commits_nothing() {
    let Some(snow) = server() else { return };
    let setup = Setup::new(snow, "sf_sigterm");
    let boot = setup.run(&["bootstrap", "diagnostics"]);
    assert_eq!(boot.code, Some(0), "{}", boot.stderr);
    // A day of its own, so that the held statement is this test's alone.
    let day = "2026-11-20";
    let out = run({
        let mut c = Command::new(bin("sample-data"));
        c.args(["cloudfront", "--out"]).arg(setup.stage()).args([
            "--date",
            day,
            "--files",
            "1",
            "--rows-per-file",
            "50",
        ]);
        c
    });
    assert_eq!(out.code, Some(0), "{out:?}");
    let first = setup.run(&["diagnostics", "--date", day, "--allow-empty"]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let loaded = setup.count("diagnostics.log_entries");
    assert_eq!(loaded, 50);

    // The reload's DELETE runs; its COPY is held until the job aborts it.
    let copy = format!("FILES = ('E1DIAGNOSTICS/E1DIAGNOSTICS.{day}");
    snow.script(Rule::statement(&copy).hang(60));
    let mut command = setup.command(&["diagnostics", "--date", day, "--allow-empty", "--reload"]);
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while snow.events_of("statement", &copy).len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the reload's COPY never came"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let waited = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        waited.elapsed() < std::time::Duration::from_secs(20),
        "the held COPY was not aborted: {stderr}"
    );
    assert!(stderr.contains("received SIGTERM: stopping"), "{stderr}");
    let held = snow.events_of("statement", &copy).pop().unwrap();
    assert!(
        snow.events_of("abort", "")
            .iter()
            .any(|e| e["request_id"] == held["request_id"]),
        "no abort-request for the held COPY reached the server"
    );
    assert_eq!(
        setup.count("diagnostics.log_entries"),
        loaded,
        "the interrupted reload's DELETE was rolled back"
    );
    // The day is still recorded as loaded: the next run skips it.
    let again = setup.run(&["diagnostics", "--date", day, "--allow-empty"]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(statuses(&parse_report(&again)), ["LOAD_SKIPPED"]);
    assert_eq!(setup.count("diagnostics.log_entries"), loaded);
}

#[test]
fn a_user_catalog_adds_a_source() {
    let Some(snow) = server() else { return };
    let setup = Setup::new(snow, "sf_catalog");
    let catalog = plans_catalog(
        setup.dir.path(),
        "plan\tprice\nstarter\t10\npro\t42\nbroken\tfree\n",
    );
    let with_catalog = |args: &[&str]| {
        let mut command = setup.command(args);
        command.env("STAGE_IMPORT_CATALOG", &catalog);
        setup.run_command(command)
    };
    let boot = with_catalog(&["bootstrap", "plans"]);
    assert_eq!(boot.code, Some(0), "{}", boot.stderr);
    let out = with_catalog(&["plans", "--date", DAY]);
    // Its only file has a rejected row (more than STAGE_IMPORT_MAX_ERRORS_PER_FILE's 0): every
    // file of the run failed, exit 1, as on the embedded warehouse.
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let report = parse_report(&out);
    let plans = files(&report, "plans");
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0]["file"], "2026/11/26/plans.tsv");
    assert_eq!(plans[0]["status"], "PARTIALLY_LOADED");
    assert_eq!(plans[0]["rows_loaded"], 2);
    assert_eq!(plans[0]["first_error_line"], 4);
    let out = with_catalog(&[
        "query",
        "SELECT plan, price, _source_file FROM billing.plans ORDER BY price",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            ["starter", "10", "2026/11/26/plans.tsv"],
            ["pro", "42", "2026/11/26/plans.tsv"]
        ]
    );
}

/// S3 end to end, as in production: bootstrap points the stages at the bucket (with the AWS keys
/// as their CREDENTIALS), the preflight lists it, and COPY reads the objects from it (the
/// emulator fetches them from moto). A file only on disk is not seen.
#[test]
fn an_s3_stage_is_listed_and_copied_from_s3() {
    let Some(snow) = server() else { return };
    let Some(moto) = moto() else { return };
    snow.use_s3(&moto.endpoint);
    let setup = Setup::new(snow, "sf_s3");
    let bucket = format!("sf-stage-test-{}", std::process::id());
    moto.upload_dir(&bucket, "raw/", &setup.stage());
    let out = setup.run_command(setup.listing_s3(moto, &bucket, &["bootstrap"]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // On disk only: a listing of the disk, or a COPY from it, would find it.
    std::fs::write(
        setup.stage().join(format!(
            "licenses/{}/licenses-extra-{}.csv",
            DAYS[1], DAYS[1]
        )),
        "license_id\nlic-extra\n",
    )
    .unwrap();
    let Some(receiver) = crate::support::lineage::Receiver::start() else {
        return;
    };
    let mut all = setup.listing_s3(moto, &bucket, &["all", "--date", DAYS[1]]);
    all.env("OPENLINEAGE_URL", &receiver.url);
    let out = setup.run_command(all);
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    // Lineage: a partial run FAILs, naming each day of a stage by its S3 prefix and each table
    // by its Snowflake account and DATABASE.SCHEMA.TABLE, with what was loaded into it.
    let events = receiver.valid_events();
    assert_eq!(events.len(), 2, "{events:#?}");
    let failed = &events[1];
    assert_eq!(failed["eventType"], "FAIL");
    assert_eq!(failed["job"]["name"], "stage-import");
    let inputs = failed["inputs"].as_array().unwrap();
    let licenses_day = inputs
        .iter()
        .find(|i| i["name"].as_str().unwrap().starts_with("raw/licenses/"))
        .unwrap_or_else(|| panic!("{inputs:#?}"));
    assert_eq!(licenses_day["namespace"], format!("s3://{bucket}"));
    assert!(
        licenses_day["name"].as_str().unwrap().contains(DAYS[1]),
        "{licenses_day}"
    );
    let table = format!("{}.LICENSES.LICENSES", setup.database.to_uppercase());
    let output = failed["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == table.as_str())
        .unwrap_or_else(|| panic!("no {table} in {:#}", failed["outputs"]));
    assert_eq!(output["namespace"], "snowflake://xy12345");
    assert_eq!(output["outputFacets"]["outputStatistics"]["rowCount"], 10);
    assert!(
        out.stderr.contains("preflight listed the stages"),
        "{}",
        out.stderr
    );
    let report = parse_report(&out);
    assert_eq!(report["loads"].as_array().unwrap().len(), 7);
    assert_eq!(statuses(&report), ["LOADED", "PARTIALLY_LOADED"]);
    let licenses = files(&report, "licenses");
    assert_eq!(
        licenses.len(),
        1,
        "listed from S3, not the disk: {licenses:#?}"
    );
    assert_eq!(licenses[0]["rows_loaded"], 10);
    assert_eq!(setup.count("licenses.licenses"), 10);
    // The stages hold s3:// URLs only: the rows came from the bucket's one object of the day.
    assert_eq!(
        setup.query("SELECT DISTINCT _source_file FROM licenses.licenses"),
        [[format!("{}/licenses-{}.csv", DAYS[1], DAYS[1])]]
    );

    // A second run loads nothing twice: the objects' load metadata holds.
    let out = setup.run_command(setup.listing_s3(moto, &bucket, &["licenses", "--date", DAYS[1]]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(setup.count("licenses.licenses"), 10);
}

/// On Snowflake too, a file is read by its own header, fetched from S3 with a ranged GET: a
/// CloudFront log without its `#` lines keeps its first rows (COPY skipped 2 lines of every
/// file), an older log with fewer #Fields loads them with the rest NULL, files without a data
/// row are EMPTY without a COPY, and a license export whose header names other columns fails
/// with both lists where COPY used to load its values into the wrong columns.
#[test]
fn a_files_own_header_decides_how_copy_reads_it() {
    let Some(snow) = server() else { return };
    let Some(moto) = moto() else { return };
    let setup = Setup::new(snow, "sf_header");
    setup.bootstrap();
    let logs = diagnostics_logs(&setup.stage(), DAYS[2]);
    // One log per distribution: E1's, then E2's. Each gets an empty one beside it.
    assert_eq!(logs.len(), 2, "{logs:?}");
    let (headless_log, older_log) = (&logs[0], &logs[1]);
    let beside = |log: &std::path::PathBuf| {
        let name = log.file_name().unwrap().to_string_lossy().into_owned();
        log.with_file_name(name.replace("-00.", "-01."))
    };
    let (empty_gzip, header_only) = (beside(&logs[0]), beside(&logs[1]));
    let empties = [&empty_gzip, &header_only];
    let headless = strip_log_header(headless_log);
    let (older, fields_line) = make_older_log(older_log, 24, false);
    write_empty_logs(empties[0], empties[1], &fields_line);
    let export = swap_license_header(&setup.stage(), DAYS[2]);

    let bucket = format!("sf-header-test-{}", std::process::id());
    moto.upload_dir(&bucket, "raw/", &setup.stage());
    let out = setup.run_command(setup.listing_s3(
        moto,
        &bucket,
        &["diagnostics", "licenses", "--date", DAYS[2]],
    ));
    // The logs load; the license export alone fails: some files failed.
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    let report = parse_report(&out);
    let outcome = |path: &std::path::Path| outcome_of(&report, path);
    let headless_outcome = outcome(headless_log);
    assert_eq!(headless_outcome["status"], "LOADED", "{report}");
    assert_eq!(headless_outcome["rows_loaded"], headless.len() as u64);
    let older_outcome = outcome(older_log);
    assert_eq!(older_outcome["status"], "LOADED", "{report}");
    assert_eq!(older_outcome["rows_loaded"], older.len() as u64);
    for empty in empties {
        assert_eq!(outcome(empty)["status"], "EMPTY", "{report}");
    }
    let failed = outcome(&export);
    assert_eq!(failed["status"], "LOAD_FAILED", "{report}");
    let error = failed["first_error"].as_str().unwrap();
    assert!(
        error.contains("edition, is_trial, seats, issued_at")
            && error.contains("edition, seats, is_trial, issued_at"),
        "{error}"
    );
    assert_eq!(setup.count("licenses.licenses"), 0);
    assert_eq!(
        setup.count("diagnostics.log_entries"),
        (headless.len() + older.len()) as u64
    );
    let older_name = older_log
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        setup.count(&format!(
            "diagnostics.log_entries WHERE _source_file LIKE '%{older_name}' \
             AND protocol_version IS NOT NULL AND client_port IS NULL"
        )),
        older.len() as u64
    );
    assert_eq!(
        setup.count("diagnostics.log_entries WHERE client_port IS NOT NULL"),
        headless.len() as u64
    );
}

#[test]
fn an_airflow_tasks_context_is_on_every_log_line_and_in_every_statements_query_tag() {
    let Some(snow) = server() else { return };
    let setup = Setup::new(snow, "sf_run_context");
    let mut command = setup.command(&["bootstrap"]);
    command
        .env("LOG_FORMAT", "json")
        .env("AIRFLOW_CTX_DAG_ID", "stage_import")
        .env("AIRFLOW_CTX_TASK_ID", "licenses")
        .env("AIRFLOW_CTX_DAG_RUN_ID", "manual__sf_run_context")
        .env("AIRFLOW_CTX_TRY_NUMBER", "2");
    let out = setup.run_command(command);
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    let lines: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(!lines.is_empty());
    let run_id = lines[0]["job_run_id"].as_str().unwrap().to_owned();
    for line in &lines {
        assert_eq!(line["job_run_id"], run_id.as_str(), "{line}");
        assert_eq!(line["dag_id"], "stage_import", "{line}");
        assert_eq!(line["task_id"], "licenses", "{line}");
        assert_eq!(line["dag_run_id"], "manual__sf_run_context", "{line}");
        assert_eq!(line["try_number"], 2, "{line}");
    }

    let stage_path = format!("file://{}/", setup.stage().display());
    let ours: Vec<_> = snow
        .events_of("statement", "")
        .into_iter()
        .filter(|e| e["query_tag"].as_str().unwrap_or("").contains(&run_id))
        .collect();
    assert!(
        ours.iter()
            .any(|e| e["text"].as_str().unwrap().contains(&stage_path)),
        "{ours:#?}"
    );
    for event in &ours {
        let tag: serde_json::Value =
            serde_json::from_str(event["query_tag"].as_str().unwrap()).unwrap();
        assert_eq!(
            tag,
            serde_json::json!({
                "job": "stage-import",
                "version": env!("CARGO_PKG_VERSION"),
                "job_run_id": run_id,
                "dag_id": "stage_import",
                "task_id": "licenses",
                "dag_run_id": "manual__sf_run_context",
                "try_number": 2,
            })
        );
    }
    // Every statement that created this setup's stages came from that tagged session.
    let untagged: Vec<_> = snow
        .events_of("statement", &stage_path)
        .into_iter()
        .filter(|e| !e["query_tag"].as_str().unwrap_or("").contains(&run_id))
        .collect();
    assert!(untagged.is_empty(), "{untagged:#?}");
}
