//! stage-import on the embedded warehouse (DuckDB), through the real binary: sample files made by
//! `sample-data` in the real sources' layouts, from a local stage and from a local S3 server.

use std::path::PathBuf;
use std::process::Command;

use crate::support::moto::moto;
use crate::support::stage_import::{
    diagnostics_logs, files, first_records, gzip, make_older_log, outcome_of, parse_report,
    plans_catalog, statuses, strip_log_header, swap_license_header, walk_files, write_empty_logs,
};
use crate::support::{Run, bin, env_schema, job, run, sigterm, variable_names};

const DAYS: [&str; 3] = ["2026-11-24", "2026-11-25", "2026-11-26"];

/// A test's own stage directory and warehouse file.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// Three days of every source (with the generator's malformed lines on the middle day).
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let mut generate = Command::new(bin("sample-data"));
        generate
            .args(["stage", "--out"])
            .arg(dir.path().join("stage"))
            .args(["--days", "3", "--end", DAYS[2], "--servers", "40"])
            .args(["--files-per-day", "2", "--rows-per-file", "60"]);
        let out = run(generate);
        assert_eq!(out.code, Some(0), "{out:?}");
        Setup { dir }
    }

    fn stage(&self) -> PathBuf {
        self.dir.path().join("stage")
    }

    fn warehouse(&self) -> PathBuf {
        self.dir.path().join("warehouse.duckdb")
    }

    /// stage-import with the demo's environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = job("stage-import");
        command
            .args(args)
            .env("STAGE_ROOT", self.stage())
            .env("RELEASE_LOCATION", "E1RELEASES")
            .env("DIAGNOSTIC_LOCATION_ONE", "E1DIAGNOSTICS")
            .env("DIAGNOSTIC_LOCATION_TWO", "E2DIAGNOSTICS")
            .env("AWS_ACCOUNT_ID", "123456789012")
            .env("WAREHOUSE_PATH", self.warehouse())
            .env("DUCKDB_MEMORY_LIMIT", "256MB")
            .env("DUCKDB_THREADS", "2");
        command
    }

    fn run(&self, args: &[&str]) -> Run {
        run(self.command(args))
    }

    /// stage-import with a user catalog.
    fn run_with_catalog(&self, catalog: &std::path::Path, args: &[&str]) -> Run {
        let mut command = self.command(args);
        command.env("STAGE_IMPORT_CATALOG", catalog);
        run(command)
    }

    fn bootstrap(&self) {
        let out = self.run(&["bootstrap"]);
        assert_eq!(out.code, Some(0), "{out:?}");
    }

    fn count(&self, table: &str) -> u64 {
        let out = self.run(&["query", &format!("SELECT count(*) AS n FROM {table}")]);
        assert_eq!(out.code, Some(0), "{out:?}");
        out.stdout.lines().nth(2).unwrap().trim().parse().unwrap()
    }
}

#[test]
fn every_built_in_source_loads_with_a_report_per_file() {
    let setup = Setup::new();
    setup.bootstrap();
    let out = setup.run(&["all", "--from", DAYS[0], "--to", DAYS[2]]);
    // The middle day carries malformed lines: partial success, exit code 3.
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    let report = parse_report(&out);
    assert_eq!(
        report["warehouse"],
        format!("duckdb:{}", setup.warehouse().display())
    );
    // 6 sources, diagnostics with two locations, 3 days.
    assert_eq!(report["loads"].as_array().unwrap().len(), 7 * 3);
    for load in report["loads"].as_array().unwrap() {
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
    assert_eq!(bad["rows_loaded"], 40);
    assert!(bad["first_error_line"].as_u64().unwrap() > 40, "{bad}");
    assert!(
        bad["first_error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("many"),
        "{bad}"
    );
    // A bad CloudFront line and a bad ELB line are rejected the same way.
    let diagnostics = files(&report, "diagnostics");
    assert_eq!(
        diagnostics
            .iter()
            .filter(|f| f["status"] == "PARTIALLY_LOADED")
            .count(),
        1
    );
    let push = files(&report, "push_proxy");
    assert_eq!(
        push.iter()
            .filter(|f| f["status"] == "PARTIALLY_LOADED")
            .count(),
        1
    );
    assert_eq!(statuses(&report), ["LOADED", "PARTIALLY_LOADED"]);

    // The per-file lines in the log name the file and the error.
    assert!(
        out.stderr.contains("partially loaded: rows rejected"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(&format!("licenses-{}.csv", DAYS[1])));

    // Rows carry their file and load time; 40 licenses a day, one rejected.
    assert_eq!(setup.count("licenses.licenses"), 40 * 3);
    let out = setup.run(&[
        "query",
        "SELECT count(DISTINCT _source_file) AS files, count(*) FILTER (WHERE _loaded_at IS NULL) AS no_time FROM diagnostics.log_entries",
    ]);
    let values: Vec<&str> = out
        .stdout
        .lines()
        .nth(2)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(values, ["12", "0"], "{}", out.stdout);
}

#[test]
fn a_second_run_loads_nothing_twice_and_reload_replaces_the_day() {
    let setup = Setup::new();
    setup.bootstrap();
    let first = setup.run(&["licenses", "diagnostics", "--date", DAYS[2]]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let licenses = setup.count("licenses.licenses");
    let pings = setup.count("diagnostics.log_entries");
    assert!(licenses > 0 && pings > 0);

    let second = setup.run(&["licenses", "diagnostics", "--date", DAYS[2]]);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    let report = parse_report(&second);
    assert_eq!(statuses(&report), ["LOAD_SKIPPED"]);
    assert_eq!(report["files_skipped"], 5);
    assert_eq!(report["rows_loaded"], 0);
    assert_eq!(setup.count("licenses.licenses"), licenses);
    assert_eq!(setup.count("diagnostics.log_entries"), pings);

    let reload = setup.run(&["licenses", "diagnostics", "--date", DAYS[2], "--reload"]);
    assert_eq!(reload.code, Some(0), "{}", reload.stderr);
    let report = parse_report(&reload);
    assert_eq!(statuses(&report), ["LOADED"]);
    assert_eq!(report["loads"][0]["reload"], true);
    assert_eq!(
        setup.count("licenses.licenses"),
        licenses,
        "replaced, not doubled"
    );
    assert_eq!(setup.count("diagnostics.log_entries"), pings);

    // A file gone from the stage since: --reload names it, and keeps its rows.
    let gone = walk_files(&setup.stage())
        .into_iter()
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("E1DIAGNOSTICS.") && name.contains(DAYS[2])
        })
        .expect("a diagnostics file of the day");
    std::fs::remove_file(&gone).unwrap();
    let reload = setup.run(&["diagnostics", "--date", DAYS[2], "--reload"]);
    assert_eq!(reload.code, Some(0), "{}", reload.stderr);
    let report = parse_report(&reload);
    let named: Vec<&str> = report["loads"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["files_gone"].as_array().into_iter().flatten())
        .map(|f| f.as_str().unwrap())
        .collect();
    let gone_name = gone.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(named.len(), 1, "{report}");
    assert!(named[0].ends_with(&gone_name), "{named:?}");
    assert!(
        reload.stderr.contains("no longer in the stage"),
        "{}",
        reload.stderr
    );
    assert_eq!(
        setup.count("diagnostics.log_entries"),
        pings,
        "its rows kept"
    );
}

/// The load history knows a file by its content: a `touch` (a copy, a re-sync) loads nothing
/// again, and a file rewritten under the same name replaces its earlier rows in one
/// transaction, reported RELOADED, never doubled.
#[test]
fn a_touched_file_is_skipped_and_a_rewritten_one_replaces_its_rows() {
    let setup = Setup::new();
    setup.bootstrap();
    let first = setup.run(&["licenses", "--date", DAYS[2]]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(setup.count("licenses.licenses"), 40);
    let export = walk_files(&setup.stage())
        .into_iter()
        .find(|p| {
            p.to_string_lossy()
                .contains(&format!("licenses-{}", DAYS[2]))
        })
        .expect("the day's license export");

    let file = std::fs::File::options().write(true).open(&export).unwrap();
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(3600))
        .unwrap();
    drop(file);
    let touched = setup.run(&["licenses", "--date", DAYS[2]]);
    assert_eq!(touched.code, Some(0), "{}", touched.stderr);
    assert_eq!(statuses(&parse_report(&touched)), ["LOAD_SKIPPED"]);
    assert_eq!(setup.count("licenses.licenses"), 40);

    // The export rewritten with its last 15 licenses gone.
    let text = std::fs::read_to_string(&export).unwrap();
    std::fs::write(&export, first_records(&text, 25)).unwrap();
    let rewritten = setup.run(&["licenses", "--date", DAYS[2]]);
    assert_eq!(rewritten.code, Some(0), "{}", rewritten.stderr);
    let report = parse_report(&rewritten);
    assert_eq!(statuses(&report), ["RELOADED"]);
    let outcome = &report["loads"][0]["files"][0];
    assert_eq!(outcome["rows_loaded"], 25, "{report}");
    assert_eq!(outcome["rows_replaced"], 40, "{report}");
    assert_eq!(report["files_loaded"], 1);
    assert!(
        rewritten.stderr.contains("its earlier rows replaced"),
        "{}",
        rewritten.stderr
    );
    assert_eq!(setup.count("licenses.licenses"), 25, "replaced, not added");

    let again = setup.run(&["licenses", "--date", DAYS[2]]);
    assert_eq!(statuses(&parse_report(&again)), ["LOAD_SKIPPED"]);
    assert_eq!(setup.count("licenses.licenses"), 25);

    // Rewritten to its header line only: its rows are replaced by none.
    std::fs::write(&export, first_records(&text, 0)).unwrap();
    let emptied = setup.run(&["licenses", "--date", DAYS[2]]);
    assert_eq!(emptied.code, Some(0), "{}", emptied.stderr);
    let report = parse_report(&emptied);
    assert_eq!(statuses(&report), ["RELOADED"]);
    let outcome = &report["loads"][0]["files"][0];
    assert_eq!(outcome["rows_loaded"], 0, "{report}");
    assert_eq!(outcome["rows_replaced"], 25, "{report}");
    assert_eq!(setup.count("licenses.licenses"), 0);
    // From then on the day has no data: EMPTY, exit 4.
    let after = setup.run(&["licenses", "--date", DAYS[2]]);
    assert_eq!(after.code, Some(4), "{}", after.stderr);
    assert_eq!(statuses(&parse_report(&after)), ["EMPTY"]);
}

/// A file is read by its own header: a CloudFront log without its `#` lines keeps its first
/// rows; an older log with fewer #Fields loads them with the rest NULL, and a line shorter than
/// its file's #Fields is rejected; files without a data row are EMPTY, a warning.
#[test]
fn a_files_own_header_decides_how_it_is_read() {
    let setup = Setup::new();
    setup.bootstrap();
    let logs = diagnostics_logs(&setup.stage(), DAYS[2]);
    // Two logs per distribution: E1's first, then E2's. Each distribution keeps one with data.
    assert_eq!(logs.len(), 4, "{logs:?}");
    let (headless_log, older_log) = (&logs[0], &logs[2]);
    let empties = [&logs[1], &logs[3]];
    let headless = strip_log_header(headless_log);
    let (older, fields_line) = make_older_log(older_log, 24, true);
    write_empty_logs(empties[0], empties[1], &fields_line);

    let out = setup.run(&[
        "diagnostics",
        "--date",
        DAYS[2],
        "--max-errors-per-file",
        "1",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let report = parse_report(&out);
    let outcome = |path: &std::path::Path| outcome_of(&report, path);
    let headless_outcome = outcome(headless_log);
    assert_eq!(headless_outcome["status"], "LOADED", "{report}");
    assert_eq!(headless_outcome["rows_loaded"], headless.len() as u64);
    let older_outcome = outcome(older_log);
    assert_eq!(older_outcome["status"], "PARTIALLY_LOADED", "{report}");
    assert_eq!(older_outcome["rows_loaded"], older.len() as u64 - 1);
    assert_eq!(older_outcome["errors_seen"], 1);
    // Two header lines, then the data lines: the short one is the last.
    assert_eq!(older_outcome["first_error_line"], older.len() as u64 + 2);
    for empty in empties {
        assert_eq!(outcome(empty)["status"], "EMPTY", "{report}");
    }
    assert!(out.stderr.contains("empty: no data row"), "{}", out.stderr);
    assert_eq!(
        setup.count("diagnostics.log_entries"),
        (headless.len() + older.len() - 1) as u64
    );
    // The older log's rows have no value past its 24 fields.
    let older_name = older_log
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        setup.count(&format!(
            "diagnostics.log_entries WHERE _source_file LIKE '%{older_name}' \
             AND protocol_version IS NOT NULL AND client_port IS NULL AND time_to_first_byte IS NULL"
        )),
        older.len() as u64 - 1
    );
    assert_eq!(
        setup.count("diagnostics.log_entries WHERE client_port IS NOT NULL"),
        headless.len() as u64
    );

    // A day whose files are all empty is a day without data: exit 4, unless allowed.
    for log in diagnostics_logs(&setup.stage(), DAYS[0]) {
        gzip(&log, "#Version: 1.0\n");
    }
    let empty_day = setup.run(&["diagnostics", "--date", DAYS[0]]);
    assert_eq!(empty_day.code, Some(4), "{}", empty_day.stderr);
    assert_eq!(statuses(&parse_report(&empty_day)), ["EMPTY"]);
    let allowed = setup.run(&["diagnostics", "--date", DAYS[0], "--allow-empty"]);
    assert_eq!(allowed.code, Some(0), "{}", allowed.stderr);
}

/// A license export whose header names other columns fails with both lists, before DuckDB
/// reads a row of it (where it used to fail on a value: "Could not convert string ...").
#[test]
fn a_header_that_names_other_columns_fails_the_file_with_both_lists() {
    let setup = Setup::new();
    setup.bootstrap();
    swap_license_header(&setup.stage(), DAYS[0]);
    let out = setup.run(&["licenses", "--date", DAYS[0]]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let report = parse_report(&out);
    assert_eq!(statuses(&report), ["LOAD_FAILED"]);
    let error = report["loads"][0]["files"][0]["first_error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("edition, is_trial, seats, issued_at")
            && error.contains("edition, seats, is_trial, issued_at"),
        "{error}"
    );
    assert_eq!(setup.count("licenses.licenses"), 0);
}

/// bootstrap on a table that exists with other columns: the catalog's missing columns are
/// added (nullable); a column of another type or one the catalog lacks is refused before any
/// change, naming each, where it used to report success and leave the load a binder error.
#[test]
fn bootstrap_adds_missing_columns_and_refuses_other_ones() {
    let setup = Setup::new();
    setup.bootstrap();
    let alter = |sql: &str| {
        let connection = duckdb::Connection::open(setup.warehouse()).unwrap();
        connection.execute_batch(sql).unwrap();
    };
    alter("ALTER TABLE licenses.licenses DROP COLUMN features");
    let added = setup.run(&["bootstrap", "licenses"]);
    assert_eq!(added.code, Some(0), "{}", added.stderr);
    assert!(
        added.stderr.contains("adding a column the table lacks")
            && added.stderr.contains("features"),
        "{}",
        added.stderr
    );
    let load = setup.run(&["licenses", "--date", DAYS[0]]);
    assert_eq!(load.code, Some(0), "{}", load.stderr);
    assert_eq!(
        setup.count("licenses.licenses WHERE features IS NOT NULL"),
        40
    );

    alter(
        "ALTER TABLE licenses.licenses ALTER seats TYPE VARCHAR;
         ALTER TABLE licenses.licenses ADD COLUMN region VARCHAR;
         ALTER TABLE diagnostics.log_entries DROP COLUMN range_end;",
    );
    let refused = setup.run(&["bootstrap"]);
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    for expected in [
        "table licenses.licenses exists with other columns",
        "column seats is VARCHAR; the catalog has it as integer",
        "column region (VARCHAR) is not in the catalog",
        "bootstrap changed nothing",
    ] {
        assert!(
            refused.stderr.contains(expected),
            "{expected}: {}",
            refused.stderr
        );
    }
    // Nothing ran: the column the other table lacks was not added either.
    assert_eq!(
        setup.count(
            "information_schema.columns WHERE table_name = 'log_entries' \
             AND table_schema = 'diagnostics' AND column_name = 'range_end'"
        ),
        0
    );
}

#[test]
fn a_day_without_files_is_its_own_outcome() {
    let setup = Setup::new();
    setup.bootstrap();
    let out = setup.run(&["licenses", "--date", "2026-10-01"]);
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    let report = parse_report(&out);
    assert_eq!(report["loads"][0]["outcome"], "no_files");
    assert!(
        out.stderr
            .contains("no files match: upstream data is missing or late")
    );

    let allowed = setup.run(&["licenses", "--date", "2026-10-01", "--allow-empty"]);
    assert_eq!(allowed.code, Some(0), "{}", allowed.stderr);

    // A lookback day without files is a warning: the day that ended still loads, exit 0
    // (2026-11-23 has no files; the run used to fail, and its retries with it).
    // (The middle day's export has one malformed row: allowed here.)
    let lookback = setup.run(&[
        "licenses",
        "--date",
        DAYS[2],
        "--lookback-days",
        "3",
        "--max-errors-per-file",
        "1",
    ]);
    assert_eq!(lookback.code, Some(0), "{}", lookback.stderr);
    let report = parse_report(&lookback);
    let loads = report["loads"].as_array().unwrap();
    assert_eq!(loads.len(), 4);
    assert_eq!(loads[0]["date"], "2026-11-23");
    assert_eq!(loads[0]["outcome"], "no_files");
    assert_eq!(loads[0]["lookback"], true);
    assert_eq!(loads[3]["lookback"], false);
    assert_eq!(loads[3]["outcome"], "loaded");
    assert!(
        lookback
            .stderr
            .contains("a lookback day: a warning, not a failure"),
        "{}",
        lookback.stderr
    );
    // The day that ended without files still fails, whatever its lookback found.
    let ended = setup.run(&["licenses", "--date", "2026-11-27", "--lookback-days", "1"]);
    assert_eq!(ended.code, Some(4), "{}", ended.stderr);
}

#[test]
fn an_unreadable_file_fails_alone() {
    let setup = Setup::new();
    setup.bootstrap();
    let location = setup.stage().join("diagnostics/E1DIAGNOSTICS");
    std::fs::write(
        location.join(format!("E1DIAGNOSTICS.{}-23.deadbeef.gz", DAYS[2])),
        b"this is not gzip",
    )
    .unwrap();
    let out = setup.run(&["diagnostics", "--date", DAYS[2]]);
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
        format!("E1DIAGNOSTICS/E1DIAGNOSTICS.{}-23.deadbeef.gz", DAYS[2])
    );
    assert!(files.iter().filter(|f| f["status"] == "LOADED").count() >= 3);
    assert!(setup.count("diagnostics.log_entries") > 0);
}

#[test]
fn bad_input_is_reported_all_at_once_before_anything_runs() {
    let setup = Setup::new();
    let mut command = setup.command(&["licenses", "nonsense", "releases"]);
    command
        .env_remove("RELEASE_LOCATION")
        .env("STAGE_IMPORT_DATE", "2026-02-30");
    let out = run(command);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("STAGE_IMPORT_DATE: expected a date YYYY-MM-DD"),
        "{}",
        out.stderr
    );
    assert!(
        !setup.warehouse().exists(),
        "nothing may be created on bad input"
    );

    let out = run({
        let mut c = setup.command(&["licenses", "nonsense", "releases", "--date", DAYS[0]]);
        c.env_remove("RELEASE_LOCATION");
        c
    });
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("unknown source \"nonsense\" (known: all, diagnostics, licenses"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("source releases: path: environment variable RELEASE_LOCATION is not set"),
        "{}",
        out.stderr
    );
    assert!(
        !setup.warehouse().exists(),
        "nothing may be created on bad input"
    );
}

#[test]
fn loading_before_bootstrap_says_what_to_do() {
    let setup = Setup::new();
    let out = setup.run(&["licenses", "--date", DAYS[0]]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("table licenses.licenses does not exist: run `stage-import bootstrap` first"),
        "{}",
        out.stderr
    );
}

#[test]
fn bootstrap_is_idempotent_and_can_print_its_sql() {
    let setup = Setup::new();
    setup.bootstrap();
    setup.bootstrap();
    let out = setup.run(&["bootstrap", "--print", "push_proxy_de"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .starts_with("CREATE SCHEMA IF NOT EXISTS push_proxy;"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("CREATE TABLE IF NOT EXISTS push_proxy.de_logs (")
    );
    assert!(out.stdout.contains("\"request_time\" TIMESTAMP"));
    assert!(out.stdout.contains("_source_file VARCHAR NOT NULL"));
}

#[test]
fn a_user_catalog_adds_a_source() {
    let setup = Setup::new();
    let catalog = plans_catalog(setup.dir.path(), "plan\tprice\nstarter\t10\npro\t42\n");
    let with_catalog = |args: &[&str]| setup.run_with_catalog(&catalog, args);
    assert_eq!(with_catalog(&["bootstrap", "plans"]).code, Some(0));
    let out = with_catalog(&["plans", "--date", "2026-11-26"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let out = with_catalog(&[
        "query",
        "SELECT plan, price, _source_file FROM billing.plans ORDER BY price",
    ]);
    assert_eq!(
        out.stdout,
        "plan     price  _source_file\n-------  -----  --------------------\nstarter  10     2026/11/26/plans.tsv\npro      42     2026/11/26/plans.tsv\n"
    );
}

#[test]
fn a_rejected_row_that_quotes_a_credential_is_scrubbed_in_the_report() {
    let setup = Setup::new();
    let catalog = plans_catalog(
        setup.dir.path(),
        "plan\tprice\nstarter\t10\npro\tpassword=Hunter2-in-a-row\n",
    );
    let with_catalog = |args: &[&str]| setup.run_with_catalog(&catalog, args);
    assert_eq!(with_catalog(&["bootstrap", "plans"]).code, Some(0));
    let out = with_catalog(&["plans", "--date", "2026-11-26"]);
    let report = parse_report(&out);
    let outcome = files(&report, "plans")[0];
    assert_eq!(outcome["status"], "PARTIALLY_LOADED", "{report}");
    let error = outcome["first_error"].as_str().unwrap();
    assert!(error.contains("password=***"), "{error}");
    assert!(!out.stdout.contains("Hunter2"), "{}", out.stdout);
    assert!(!out.stderr.contains("Hunter2"), "{}", out.stderr);
}

#[test]
fn sigterm_during_a_load_leaves_nothing_half_loaded() {
    let setup = Setup::new();
    setup.bootstrap();
    // One big file, so that the load is still running when the signal comes.
    let out = run({
        let mut c = Command::new(bin("sample-data"));
        c.args(["cloudfront", "--out"]).arg(setup.stage()).args([
            "--date",
            "2026-11-20",
            "--files",
            "1",
            "--rows-per-file",
            "1000000",
        ]);
        c
    });
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut command = setup.command(&["diagnostics", "--date", "2026-11-20"]);
    command
        .env("DUCKDB_THREADS", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    // Signal as soon as the load starts: the log says so just before it does.
    let mut stderr_lines = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut stderr = String::new();
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut stderr_lines, &mut line).unwrap();
        stderr.push_str(&line);
        assert!(n > 0, "the job ended before loading: {stderr}");
        if line.contains("files found") {
            break;
        }
    }
    sigterm(&child);
    std::io::Read::read_to_string(&mut stderr_lines, &mut stderr).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("received SIGTERM: stopping"), "{stderr}");
    assert!(
        stderr.contains("the one running was rolled back"),
        "says how far the run got: {stderr}"
    );
    assert_eq!(
        setup.count("diagnostics.log_entries"),
        0,
        "the interrupted load rolled back"
    );
    // The next run loads the day whole.
    let again = setup.run(&["diagnostics", "--date", "2026-11-20", "--allow-empty"]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    let loaded = setup.count("diagnostics.log_entries");
    assert_eq!(loaded, 1_000_000, "{}", again.stderr);
}

#[test]
fn an_s3_stage_is_listed_and_loaded_like_a_local_one() {
    let Some(moto) = moto() else { return };
    let setup = Setup::new();
    let bucket = format!("stage-test-{}", std::process::id());
    moto.upload_dir(&bucket, "raw/", &setup.stage());
    setup.bootstrap();
    let secret = "s3-secret-Kq8vX2pL";
    let mut command = setup.command(&["all", "--date", DAYS[1], "--log-level", "debug"]);
    command
        .env("STAGE_ROOT", format!("s3://{bucket}/raw"))
        .env("S3_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test-key")
        .env("AWS_SECRET_ACCESS_KEY", secret);
    let out = run(command);
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    let report = parse_report(&out);
    assert_eq!(report["loads"].as_array().unwrap().len(), 7);
    assert_eq!(statuses(&report), ["LOADED", "PARTIALLY_LOADED"]);
    assert_eq!(setup.count("licenses.licenses"), 40);
    assert!(
        out.stderr.contains("preflight listed the stages"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(secret),
        "the AWS secret reached the log"
    );

    let missing_keys = {
        let mut c = setup.command(&["licenses", "--date", DAYS[1]]);
        c.env("STAGE_ROOT", format!("s3://{bucket}/raw"));
        run(c)
    };
    assert_eq!(missing_keys.code, Some(2), "{}", missing_keys.stderr);
    assert!(
        missing_keys
            .stderr
            .contains("S3 stages need AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    );
}

#[test]
fn an_s3_key_that_climbs_out_of_the_download_folder_fails_alone() {
    let Some(moto) = moto() else { return };
    let setup = Setup::new();
    let day = DAYS[2];
    let bucket = format!("climb-test-{}", std::process::id());
    moto.upload_dir(&bucket, "raw/", &setup.stage());
    let export = std::fs::read_dir(setup.stage().join("licenses").join(day))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // Below TMPDIR/stage-import-*/<day>/, four `..` land in the test's own directory.
    let tmp = setup.dir.path().join("a/b/c/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let climbing = format!("{day}/../../../../outside-{day}.csv");
    moto.put_object(
        &bucket,
        &format!("raw/licenses/{climbing}"),
        &std::fs::read(&export).unwrap(),
    );
    setup.bootstrap();
    let mut command = setup.command(&["licenses", "--date", day]);
    command
        .env("STAGE_ROOT", format!("s3://{bucket}/raw"))
        .env("S3_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test-key")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("TMPDIR", &tmp);
    let out = run(command);
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    let escaped = setup.dir.path().join(format!("a/b/outside-{day}.csv"));
    assert!(!escaped.exists(), "the key wrote {}", escaped.display());
    let report = parse_report(&out);
    let outcomes = files(&report, "licenses");
    let refused = outcomes
        .iter()
        .find(|f| f["file"] == climbing.as_str())
        .unwrap_or_else(|| panic!("no outcome for the key: {report}"));
    assert_eq!(refused["status"], "LOAD_FAILED", "{refused}");
    assert!(
        refused["first_error"].as_str().unwrap().contains("`..`"),
        "{refused}"
    );
    assert!(
        out.stderr.contains(&climbing) && out.stderr.contains("failed"),
        "{}",
        out.stderr
    );
    // The day's real export loads as ever, and only once.
    let loaded = report["rows_loaded"].as_u64().unwrap();
    assert!(loaded > 0, "{report}");
    assert_eq!(setup.count("licenses.licenses"), loaded);
}

#[test]
fn help_and_schema_list_the_original_variable_names() {
    let schema = env_schema("stage-import");
    let names = variable_names(&schema);
    for name in [
        "RELEASE_LOCATION",
        "DIAGNOSTIC_LOCATION_ONE",
        "DIAGNOSTIC_LOCATION_TWO",
        "AWS_ACCOUNT_ID",
        "AWS_SECRET_ACCESS_KEY",
        "STAGE_IMPORT_DATE",
    ] {
        assert!(names.contains(&name), "{name} missing");
    }
    let help = run({
        let mut c = job("stage-import");
        c.arg("--help");
        c
    });
    assert!(
        help.stdout.contains("--date <STAGE_IMPORT_DATE>"),
        "{}",
        help.stdout
    );
    assert!(help.stdout.contains("bootstrap"));
}

#[test]
fn an_s3_error_is_one_readable_line() {
    let Some(moto) = moto() else { return };
    let setup = Setup::new();
    setup.bootstrap();
    let mut command = setup.command(&["licenses", "--date", DAYS[1]]);
    command
        .env("STAGE_ROOT", "s3://no-such-bucket-here/raw")
        .env("S3_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test-key")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret");
    let out = run(command);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let last = out.stderr.trim().lines().last().unwrap();
    assert!(
        last.contains("s3://no-such-bucket-here/raw/")
            && last.contains("cannot list: NoSuchBucket: The specified bucket does not exist"),
        "{last}"
    );
    // The SDK's Debug rendering (the whole response, headers and all) stays out of the log.
    assert!(!out.stderr.contains("Response {"), "{}", out.stderr);
    assert!(last.len() < 300, "{last}");
}
