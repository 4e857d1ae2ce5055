//! The dbt project (`transform/dbt`) built for real on the embedded warehouse: sample-data writes
//! a few days of files in the sources' layouts, stage-import loads them, pg-replicate replicates
//! the Heroku Connect shaped fixture from a real PostgreSQL into the same DuckDB file, and
//! `dbt build` (dbt-duckdb, from the dbt venv: `make venv`, `DATA_JOBS_DBT_VENV`) builds every
//! model and runs every data and unit test over them. The models' numbers are checked against
//! what the generator wrote and what the jobs reported.
//!
//! The prod target (Snowflake) is built the same way on the emulator: stage-import and
//! pg-replicate load fakesnow (through the COPY emulator), and `dbt build --target prod`
//! (dbt-snowflake, over the Snowflake protocol) builds every model there, then again
//! incrementally (the compatibility proxy gives fakesnow the temporary tables dbt's merge
//! creates: tests/snowflake_compat/temporary.py). The unit tests are left out on the emulator:
//! fakesnow cannot `DESCRIBE` a table of another database, which dbt's unit-test fixtures do.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::fakesnow;
use crate::support::moto::moto;
use crate::support::{job, missing, postgres, repo, run};

/// The last day of the sample; fixed, so that the numbers do not move with the calendar.
const END: &str = "2026-11-30";
const DAYS: u32 = 3;
/// sample-data's default: every one of them pings every day at its default file sizes.
const SERVERS: u64 = 300;

/// dbt from the dbt venv; `None` (after `missing`) when it is not installed.
/// The QUERY_TAG the DAG helper renders for a dbt task (data_jobs_pod.py's DBT_ENV).
const DBT_QUERY_TAG: &str = r#"{"job": "dbt", "version": "0.1.0", "dag_id": "transform", "task_id": "dbt-build", "dag_run_id": "scheduled__2026-12-01T04:00:00+00:00", "try_number": 1}"#;

fn dbt() -> Option<PathBuf> {
    #[allow(clippy::disallowed_methods)] // the venv's place is the test's own setting
    let venv = std::env::var_os("DATA_JOBS_DBT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv-dbt"));
    let path = venv.join("bin/dbt");
    if path.exists() {
        Some(path)
    } else {
        missing(&format!("{} (make venv)", path.display()));
        None
    }
}

/// `dbt <args>` on the project, against the warehouse file, its artefacts in `work`.
fn dbt_command(dbt: &Path, warehouse: &Path, work: &Path, args: &[&str]) -> Command {
    let project = repo().join("transform/dbt");
    let mut command = Command::new(dbt);
    command
        .args(args)
        .current_dir(&project)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", work)
        .env("DBT_PROFILES_DIR", &project)
        .env("DBT_TARGET_PATH", work.join("target"))
        .env("DBT_LOG_PATH", work.join("logs"))
        .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        .env("WAREHOUSE_PATH", warehouse);
    command
}

/// One value of a query on the warehouse file, as text.
fn value(warehouse: &Path, sql: &str) -> String {
    let connection = duckdb::Connection::open(warehouse).expect("open the warehouse");
    connection
        .query_row(&format!("SELECT CAST(({sql}) AS VARCHAR)"), [], |row| {
            row.get::<_, Option<String>>(0)
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or_default()
}

/// Rows of a query, each as `a|b|c`.
fn rows(warehouse: &Path, sql: &str) -> Vec<String> {
    let connection = duckdb::Connection::open(warehouse).expect("open the warehouse");
    let mut statement = connection
        .prepare(&format!("SELECT CAST(COLUMNS(*) AS VARCHAR) FROM ({sql})"))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let columns = statement.column_count();
    statement
        .query_map([], |row| {
            (0..columns)
                .map(|i| Ok(row.get::<_, Option<String>>(i)?.unwrap_or_default()))
                .collect::<Result<Vec<_>, _>>()
                .map(|v| v.join("|"))
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[test]
fn dbt_builds_every_model_and_test_over_what_the_jobs_loaded() {
    let Some(dbt) = dbt() else { return };
    let Some(server) = postgres::plain() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let stage = dir.path().join("stage");
    let warehouse = dir.path().join("warehouse.duckdb");

    let mut sample = job("sample-data");
    sample
        .args(["stage", "--out"])
        .arg(&stage)
        .args(["--days", &DAYS.to_string(), "--end", END]);
    let out = run(sample);
    assert_eq!(out.code, Some(0), "{out:?}");

    let stage_import = |args: &[&str]| {
        let mut command = job("stage-import");
        command
            .args(args)
            .env("STAGE_ROOT", &stage)
            .env("WAREHOUSE_PATH", &warehouse)
            .env("RELEASE_LOCATION", "E1RELEASES")
            .env("DIAGNOSTIC_LOCATION_ONE", "E1DIAGNOSTICS")
            .env("DIAGNOSTIC_LOCATION_TWO", "E2DIAGNOSTICS")
            .env("AWS_ACCOUNT_ID", "123456789012");
        run(command)
    };
    let out = stage_import(&["bootstrap"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    // Exit 3: the sample's malformed lines are rejected, the rest loads.
    let out = stage_import(&["all", "--from", "2026-11-28", "--to", END]);
    assert_eq!(out.code, Some(3), "{out:?}");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let rows_of = |table: &str| -> u64 {
        report["loads"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["table"] == table)
            .flat_map(|l| l["files"].as_array().unwrap())
            .map(|f| f["rows_loaded"].as_u64().unwrap_or(0))
            .sum()
    };

    let db = server.seeded("dbt_build");
    let mut replicate = job("pg-replicate");
    replicate
        .env("HEROKU_POSTGRESQL_URL", server.url(&db, ""))
        .env("WAREHOUSE_PATH", &warehouse)
        .env("PG_REPLICATE_WORK_DIR", dir.path());
    let out = run(replicate);
    assert_eq!(out.code, Some(0), "{out:?}");

    let work = dir.path().join("dbt");
    let build = run(dbt_command(&dbt, &warehouse, &work, &["build"]));
    assert_eq!(
        build.code,
        Some(0),
        "dbt build failed:\n{}\n{}",
        build.stdout,
        build.stderr
    );
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("dbt build took {:.1} s\n", build.elapsed.as_secs_f64()).as_bytes(),
    );
    // Every model, data test and unit test ran, none failed, warned or was skipped.
    let summary = build
        .stdout
        .lines()
        .find(|l| l.contains("Done. PASS="))
        .unwrap_or_else(|| panic!("no summary: {}", build.stdout));
    assert!(summary.contains("WARN=0 ERROR=0 SKIP=0"), "{summary}");

    // Every server pinged every day.
    assert_eq!(
        rows(
            &warehouse,
            "SELECT day, active_servers FROM marts.daily_active_usage ORDER BY day"
        ),
        [
            format!("2026-11-28|{SERVERS}"),
            format!("2026-11-29|{SERVERS}"),
            format!("2026-11-30|{SERVERS}"),
        ]
    );
    assert_eq!(
        value(
            &warehouse,
            "SELECT count(*) FROM marts.server_daily_details"
        ),
        (SERVERS * u64::from(DAYS)).to_string()
    );
    // The users of a day are those the servers reported in their last ping.
    assert_eq!(
        value(
            &warehouse,
            "SELECT sum(active_users) FROM marts.server_daily_details WHERE day = DATE '2026-11-30'"
        ),
        value(
            &warehouse,
            "SELECT active_users FROM marts.daily_active_usage WHERE day = DATE '2026-11-30'"
        )
    );
    // Each push the proxies logged is counted once, by day, environment and platform.
    let pushes = rows_of("push_proxy.logs")
        + rows_of("push_proxy.test_logs")
        + rows_of("push_proxy.de_logs");
    assert!(pushes > 0);
    assert_eq!(
        value(
            &warehouse,
            "SELECT sum(requests) FROM marts.push_notifications_daily"
        ),
        pushes.to_string()
    );
    assert_eq!(
        value(
            &warehouse,
            "SELECT count(*) FROM marts.push_notifications_daily WHERE platform = 'unknown'"
        ),
        "0"
    );
    let releases = rows_of("releases.log_entries");
    assert_eq!(
        value(
            &warehouse,
            "SELECT sum(downloads + not_modified + failed) FROM marts.server_downloads_daily"
        ),
        releases.to_string()
    );
    // The latest export holds every license once (the malformed row was rejected).
    assert_eq!(
        value(&warehouse, "SELECT count(*) FROM marts.current_licenses"),
        SERVERS.to_string()
    );
    assert_eq!(
        value(
            &warehouse,
            "SELECT max(export_date) FROM marts.current_licenses"
        ),
        END
    );
    // ARR today (the spine's last day), as the fixture's comment works it out: Acme's two
    // lines, Globex's live one; Initech lost, Umbrella deleted, Hooli's line starts next week.
    assert_eq!(
        rows(
            &warehouse,
            "SELECT account_name, arr, active_lines FROM marts.account_daily_arr \
             WHERE day = (SELECT max(day) FROM marts.account_daily_arr) ORDER BY account_name"
        ),
        ["Acme Corp|22000.00|2", "Globex|6000.00|1"]
    );

    // A second build changes nothing: the incremental models rebuild their last days only.
    let before = value(
        &warehouse,
        "SELECT count(*) FROM marts.server_daily_details",
    );
    let again = run(dbt_command(&dbt, &warehouse, &work, &["build"]));
    assert_eq!(again.code, Some(0), "{}", again.stdout);
    assert_eq!(
        value(
            &warehouse,
            "SELECT count(*) FROM marts.server_daily_details"
        ),
        before
    );

    // Every source is fresh: the loads just ran. A pg-replicate whose last run is two days old
    // is stale (its error_after is 12 hours), which fails the freshness check.
    let fresh = run(dbt_command(
        &dbt,
        &warehouse,
        &work,
        &["source", "freshness"],
    ));
    assert_eq!(fresh.code, Some(0), "{}", fresh.stdout);
    assert_eq!(
        fresh
            .stdout
            .lines()
            .filter(|l| l.contains("PASS freshness of"))
            .count(),
        7,
        "{}",
        fresh.stdout
    );
    duckdb::Connection::open(&warehouse)
        .unwrap()
        .execute_batch(
            "UPDATE _pg_replicate.bookmarks SET replicated_at = replicated_at - INTERVAL 2 DAY",
        )
        .unwrap();
    let stale = run(dbt_command(
        &dbt,
        &warehouse,
        &work,
        &["source", "freshness"],
    ));
    assert_eq!(stale.code, Some(1), "{}", stale.stdout);
    assert!(
        stale
            .stdout
            .lines()
            .any(|l| l.contains("ERROR STALE") && l.contains("pg_replicate.bookmarks")),
        "{}",
        stale.stdout
    );

    let docs = run(dbt_command(&dbt, &warehouse, &work, &["docs", "generate"]));
    assert_eq!(docs.code, Some(0), "{}", docs.stdout);
    let catalog = std::fs::read_to_string(work.join("target/catalog.json")).unwrap();
    assert!(catalog.contains("server_daily_details"), "{catalog}");
}

#[test]
fn dbt_builds_the_prod_target_on_the_emulated_snowflake_the_jobs_loaded() {
    let Some(dbt) = dbt() else { return };
    let Some(server) = postgres::plain() else {
        return;
    };
    let (Some(snow), Some(s3)) = (fakesnow::server(), moto()) else {
        return;
    };
    snow.use_s3(&s3.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let stage = dir.path().join("stage");
    let raw = snow.database("dbt_raw");
    let analytics = snow.database("dbt_analytics");
    let servers = 10;

    let mut sample = job("sample-data");
    sample
        .args(["stage", "--out"])
        .arg(&stage)
        .args([
            "--days",
            "2",
            "--end",
            END,
            "--servers",
            &servers.to_string(),
        ])
        .args(["--files-per-day", "1", "--rows-per-file", "40"]);
    let out = run(sample);
    assert_eq!(out.code, Some(0), "{out:?}");
    let loader = |command: &mut Command| {
        command
            .env("SNOWFLAKE_ACCOUNT", "xy12345")
            .env("SNOWFLAKE_LOAD_USER", "loader")
            .env("SNOWFLAKE_LOAD_PASSWORD", "loader-pw")
            .env("SNOWFLAKE_LOAD_WAREHOUSE", "LOADING")
            .env("SNOWFLAKE_LOAD_DATABASE", &raw)
            .env("SNOWFLAKE_URL", snow.base_url());
    };
    for args in [
        &["bootstrap"][..],
        &["all", "--from", "2026-11-29", "--to", END][..],
    ] {
        let mut command = job("stage-import");
        command
            .args(args)
            .env("STAGE_ROOT", format!("file://{}", stage.display()))
            .env("RELEASE_LOCATION", "E1RELEASES")
            .env("DIAGNOSTIC_LOCATION_ONE", "E1DIAGNOSTICS")
            .env("DIAGNOSTIC_LOCATION_TWO", "E2DIAGNOSTICS")
            .env("AWS_ACCOUNT_ID", "123456789012");
        loader(&mut command);
        let out = run(command);
        // Exit 3: the generator's malformed lines are rejected (2026-11-30 has them).
        assert!(matches!(out.code, Some(0 | 3)), "{out:?}");
    }

    let db = server.seeded("dbt_prod");
    let bucket = format!("dbt-prod-{}", std::process::id());
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    s3.upload_dir(&bucket, "", &empty);
    let mut replicate = job("pg-replicate");
    replicate
        .env("HEROKU_POSTGRESQL_URL", server.url(&db, ""))
        .env("PG_REPLICATE_WORK_DIR", dir.path())
        .env("PG_REPLICATE_STAGE_URL", format!("s3://{bucket}/extracts"))
        .env("S3_ENDPOINT_URL", &s3.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test-key")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret");
    loader(&mut replicate);
    let out = run(replicate);
    assert_eq!(out.code, Some(0), "{out:?}");

    let url = snow.base_url().trim_end_matches('/');
    let (scheme, host_port) = url.split_once("://").unwrap();
    let (host, port) = host_port.rsplit_once(':').unwrap();
    let work = dir.path().join("dbt");
    let build = || {
        let mut build = dbt_command(
            &dbt,
            &dir.path().join("unused.duckdb"),
            &work,
            &[
                "build",
                "--target",
                "prod",
                "--exclude",
                "test_type:unit",
                "--vars",
                &format!("{{raw_database: {raw}}}"),
            ],
        );
        build
            .env("SNOWFLAKE_ACCOUNT", "xy12345")
            .env("SNOWFLAKE_TRANSFORM_USER", "transformer")
            .env("SNOWFLAKE_TRANSFORM_PASSWORD", "transformer-pw")
            .env("SNOWFLAKE_TRANSFORM_ROLE", "TRANSFORMER")
            .env("SNOWFLAKE_TRANSFORM_WAREHOUSE", "TRANSFORMING")
            .env("SNOWFLAKE_TRANSFORM_SCHEMA", "DBT")
            .env("SNOWFLAKE_TRANSFORM_DATABASE", &analytics)
            .env("SNOWFLAKE_TRANSFORM_HOST", host)
            .env("SNOWFLAKE_TRANSFORM_PORT", port)
            .env("SNOWFLAKE_TRANSFORM_PROTOCOL", scheme)
            .env("DBT_QUERY_TAG", DBT_QUERY_TAG);
        run(build)
    };
    let out = build();
    assert_eq!(
        out.code,
        Some(0),
        "dbt build --target prod failed:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        !dir.path().join("unused.duckdb").exists(),
        "dbt used DuckDB"
    );
    let summary = out
        .stdout
        .lines()
        .find(|l| l.contains("Done. PASS="))
        .unwrap_or_else(|| panic!("no summary: {}", out.stdout));
    assert!(summary.contains("WARN=0 ERROR=0 SKIP=0"), "{summary}");
    assert!(
        !snow.events_of("login", "transformer").is_empty(),
        "dbt did not log in to the emulator as the transform user"
    );

    let rows = |sql: &str| snow.rows(&sql.replace("MARTS.", &format!("{analytics}.MARTS.")));
    // The Snowflake side of the dialect macros parsed the query strings as DuckDB's did.
    assert_eq!(
        rows("SELECT TO_VARCHAR(DAY), ACTIVE_SERVERS FROM MARTS.DAILY_ACTIVE_USAGE ORDER BY DAY"),
        [
            format!("2026-11-29|{servers}"),
            format!("2026-11-30|{servers}")
        ]
    );
    assert_eq!(
        rows(
            "SELECT COUNT(*) FROM MARTS.SERVER_DAILY_DETAILS WHERE SERVER_VERSION IS NULL \
             OR EDITION IS NULL OR ACTIVE_USERS IS NULL"
        ),
        ["0"]
    );
    assert_eq!(
        rows(
            "SELECT ACCOUNT_NAME, ARR FROM MARTS.ACCOUNT_DAILY_ARR \
             WHERE DAY = (SELECT MAX(DAY) FROM MARTS.ACCOUNT_DAILY_ARR) ORDER BY ACCOUNT_NAME"
        ),
        ["Acme Corp|22000.00", "Globex|6000.00"]
    );

    // Again: the incremental models merge their last days through temporary tables, which end
    // with dbt's sessions; the numbers stay.
    let days_before =
        rows("SELECT TO_VARCHAR(DAY), ACTIVE_SERVERS FROM MARTS.DAILY_ACTIVE_USAGE ORDER BY DAY");
    let again = build();
    assert_eq!(
        again.code,
        Some(0),
        "the second dbt build --target prod failed:\n{}\n{}",
        again.stdout,
        again.stderr
    );
    let merges = snow.events_of("statement", "create or replace temporary table");
    assert!(
        !merges.is_empty(),
        "the second build merged nothing through a temporary table"
    );
    // dbt's sessions carry the task run's tag, as the DAG helper sets it (profiles.yml).
    for merge in &merges {
        assert_eq!(merge["query_tag"], DBT_QUERY_TAG, "{merge}");
    }
    assert_eq!(
        rows("SELECT TO_VARCHAR(DAY), ACTIVE_SERVERS FROM MARTS.DAILY_ACTIVE_USAGE ORDER BY DAY"),
        days_before
    );
    assert_eq!(
        rows(&format!(
            "SELECT COUNT(*) FROM {analytics}.INFORMATION_SCHEMA.TABLES \
             WHERE TABLE_NAME ILIKE '%dbt_tmp%'"
        )),
        ["0"],
        "a temporary table outlived its session"
    );
}
