//! pg-replicate into Snowflake, through the real binary: a real PostgreSQL shaped like Heroku
//! Connect's, the extracts written to S3 (moto) and loaded by `COPY INTO` from the stage the job
//! creates (the COPY emulator reads the bucket), into fakesnow behind its compatibility proxy.
//! The first run copies every table, the second merges what changed, the third writes nothing,
//! a dropped column is kept and a new one added and backfilled, `--reload` copies in full;
//! a run killed (`kill -9`) while its COPY runs leaves the tables and bookmarks as they were,
//! and the next run resumes.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::fakesnow::{FakeSnow, Rule, server};
use crate::support::moto::{Moto, moto};
use crate::support::postgres::{self, Server, assert_no_password};
use crate::support::{job, run, sigterm};

const PASSWORD: &str = "pw-Sn0wfl4ke-do-not-log";
const AWS_SECRET: &str = "aws-secret-do-not-print";

struct Setup {
    dir: tempfile::TempDir,
    database: String,
    bucket: String,
    snow: &'static FakeSnow,
    moto: &'static Moto,
}

impl Setup {
    fn new(label: &str) -> Option<Setup> {
        let snow = server()?;
        let moto = moto()?;
        snow.use_s3(&moto.endpoint);
        let dir = tempfile::tempdir().unwrap();
        let bucket = format!("pg-replicate-{label}-{}", std::process::id()).replace('_', "-");
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        moto.upload_dir(&bucket, "", &dir.path().join("empty"));
        Some(Setup {
            database: snow.database(label),
            dir,
            bucket,
            snow,
            moto,
        })
    }

    fn command(&self, url: &str) -> Command {
        let mut command = job("pg-replicate");
        command
            .env("HEROKU_POSTGRESQL_URL", url)
            .env("PG_REPLICATE_CONNECT_TIMEOUT_SECS", "5")
            .env("PG_REPLICATE_WORK_DIR", self.dir.path())
            .env(
                "PG_REPLICATE_STAGE_URL",
                format!("s3://{}/extracts", self.bucket),
            )
            .env("SNOWFLAKE_ACCOUNT", "xy12345")
            .env("SNOWFLAKE_LOAD_USER", "loader_test")
            .env("SNOWFLAKE_LOAD_PASSWORD", PASSWORD)
            .env("SNOWFLAKE_LOAD_WAREHOUSE", "LOADING")
            .env("SNOWFLAKE_LOAD_DATABASE", &self.database)
            .env("SNOWFLAKE_URL", self.snow.base_url())
            .env("S3_ENDPOINT_URL", &self.moto.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test-key")
            .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
            .env("WAREHOUSE_PATH", self.embedded());
        command
    }

    /// Where the embedded warehouse would be: it must never be written.
    fn embedded(&self) -> std::path::PathBuf {
        self.dir.path().join("must-not-exist.duckdb")
    }

    fn replicate_ok(&self, command: Command) -> Value {
        let out = run(command);
        assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
        assert_no_password(&out);
        for secret in [PASSWORD, AWS_SECRET] {
            assert!(
                !out.stdout.contains(secret) && !out.stderr.contains(secret),
                "a secret was printed"
            );
        }
        assert!(!self.embedded().exists(), "the embedded warehouse ran");
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
    }

    /// Rows of a query in the test's database, each as `a|b|c` (NULL empty).
    fn rows(&self, sql: &str) -> Vec<String> {
        let sql = sql
            .replace("ORGM.", &format!("{}.ORGM.", self.database))
            .replace(
                "_PG_REPLICATE.",
                &format!("{}._PG_REPLICATE.", self.database),
            );
        self.snow.rows(&sql)
    }
}

fn entry<'a>(report: &'a Value, table: &str) -> &'a Value {
    report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["table"] == table)
        .unwrap_or_else(|| panic!("{table} not in the report: {report:#}"))
}

fn pg_rows(server: &Server, db: &str, sql: &str) -> Vec<String> {
    let out = server.psql(db, sql);
    out.lines().map(str::to_owned).collect()
}

fn assert_accounts_match(setup: &Setup, server: &Server, db: &str) {
    assert_eq!(
        setup.rows(
            "SELECT SFID, NAME, COALESCE(INDUSTRY, ''), ISDELETED::VARCHAR FROM ORGM.ACCOUNT \
             ORDER BY SFID"
        ),
        pg_rows(
            server,
            db,
            "SELECT sfid, name, coalesce(industry, ''), isdeleted::varchar \
             FROM salesforce.account ORDER BY sfid"
        )
    );
}

#[test]
fn replicates_into_snowflake_through_the_s3_stage_then_merges_changes() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let Some(setup) = Setup::new("pgr_sf") else {
        return;
    };
    let db = server.seeded("replicate_snowflake");
    let url = server.url(&db, "");

    let first = setup.replicate_ok(setup.command(&url));
    assert_eq!(first["tables_failed"], 0, "{first:#}");
    for (table, rows) in [
        ("salesforce.account", 5),
        ("salesforce.opportunity", 8),
        ("salesforce.opportunitylineitem", 8),
        ("salesforce.product2", 2),
    ] {
        let e = entry(&first, table);
        assert_eq!(e["status"], "ok", "{e}");
        assert_eq!(e["mode"], "full", "{e}");
        assert_eq!(e["rows_read"], rows, "{e}");
        assert_eq!(e["inserted"], rows, "{e}");
    }
    assert!(
        first["warehouse"]
            .as_str()
            .unwrap()
            .starts_with("snowflake:"),
        "{first:#}"
    );
    assert_accounts_match(&setup, server, &db);
    assert_eq!(
        setup.rows("SELECT COUNT(*) FROM ORGM.PRODUCT2"),
        ["2"],
        "rows with a NULL key are replicated too"
    );
    let bookmark = entry(&first, "salesforce.account")["bookmark_after"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        setup.rows(
            "SELECT BOOKMARK FROM _PG_REPLICATE.BOOKMARKS WHERE SOURCE_TABLE = 'salesforce.account'"
        ),
        std::slice::from_ref(&bookmark)
    );
    // The microseconds survive Snowflake: the bookmark is Postgres's greatest key.
    assert_eq!(
        pg_rows(
            server,
            &db,
            "SELECT max(systemmodstamp)::text FROM salesforce.account"
        ),
        std::slice::from_ref(&bookmark)
    );

    server.psql(
        &db,
        "UPDATE salesforce.account SET industry = 'Aerospace', systemmodstamp = now() + interval '1 second' \
         WHERE sfid IN ('0011000000AcmeAAA', '0011000000HooliAA'); \
         INSERT INTO salesforce.account (sfid, name, isdeleted, systemmodstamp, _hc_lastop) \
         VALUES ('0011000000NewcoAA', 'Newco \"quoted\", with a comma\\ and a backslash', false, \
         now() + interval '1 second', 'SYNCED')",
    );
    let second = setup.replicate_ok(setup.command(&url));
    let account = entry(&second, "salesforce.account");
    assert_eq!(account["mode"], "incremental", "{account}");
    assert_eq!(
        (&account["inserted"], &account["updated"]),
        (&Value::from(1), &Value::from(2)),
        "{account}"
    );
    assert!(
        account["bookmark_after"].as_str().unwrap() > bookmark.as_str(),
        "{account}"
    );
    assert_accounts_match(&setup, server, &db);

    // Nothing changed: nothing is written.
    let third = setup.replicate_ok(setup.command(&url));
    for table in third["tables"].as_array().unwrap() {
        assert_eq!(
            (&table["inserted"], &table["updated"]),
            (&Value::from(0), &Value::from(0)),
            "{table}"
        );
    }
    assert_eq!(
        setup.rows("SELECT COUNT(*) FROM _PG_REPLICATE.BOOKMARKS"),
        ["4"]
    );

    // A column dropped at the source is kept, NULL in the rows written from then on.
    server.psql(
        &db,
        "ALTER TABLE salesforce.account DROP COLUMN type; \
         UPDATE salesforce.account SET name = 'Acme Corporation', \
         systemmodstamp = now() + interval '2 seconds' WHERE sfid = '0011000000AcmeAAA'",
    );
    let fourth = setup.replicate_ok(setup.command(&url));
    let account = entry(&fourth, "salesforce.account");
    assert_eq!(account["mode"], "incremental", "{account}");
    assert_eq!(account["columns_dropped"], serde_json::json!(["type"]));
    assert_eq!(
        setup.rows(
            "SELECT NAME, COALESCE(TYPE, 'NULL') FROM ORGM.ACCOUNT WHERE SFID IN \
             ('0011000000AcmeAAA', '0011000000UmbrlaA') ORDER BY SFID"
        ),
        ["Acme Corporation|NULL", "Umbrella|Customer"]
    );

    // A new column is added and filled in for every row, without a full copy.
    server.psql(
        &db,
        "ALTER TABLE salesforce.account ADD COLUMN rating text DEFAULT 'warm'; \
         UPDATE salesforce.account SET rating = 'hot' WHERE sfid = '0011000000HooliAA'",
    );
    let fifth = setup.replicate_ok(setup.command(&url));
    let account = entry(&fifth, "salesforce.account");
    assert_eq!(account["mode"], "incremental", "{account}");
    assert_eq!(account["columns_added"], serde_json::json!(["rating"]));
    assert_eq!(account["rows_backfilled"], 6, "{account}");
    assert_eq!(
        setup.rows("SELECT RATING, COUNT(*) FROM ORGM.ACCOUNT GROUP BY 1 ORDER BY 1"),
        ["hot|1", "warm|5"]
    );

    // --reload copies it in full, with the columns the source has now.
    let mut reload = setup.command(&url);
    reload.args(["--reload", "account"]);
    let reloaded = setup.replicate_ok(reload);
    assert_eq!(entry(&reloaded, "salesforce.account")["mode"], "full");
    assert_eq!(
        setup.rows("SELECT COUNT(*), COUNT_IF(RATING = 'warm') FROM ORGM.ACCOUNT"),
        ["6|5"]
    );
}

/// Hard deletes on Snowflake: the keys are reconciled as on the embedded warehouse, the bucket
/// summaries computed in Snowflake; deleted rows are marked `_DELETED_AT`.
#[test]
fn hard_deletes_are_found_and_marked_on_snowflake() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let Some(setup) = Setup::new("pgr_sf_deletes") else {
        return;
    };
    let db = server.database("replicate_snowflake_deletes");
    server.psql(
        &db,
        "CREATE SCHEMA salesforce; \
         CREATE TABLE salesforce.contact (sfid varchar(18) PRIMARY KEY, name text, \
         systemmodstamp timestamp); \
         INSERT INTO salesforce.contact SELECT '003' || lpad(i::text, 15, '0'), 'n' || i, \
         timestamp '2026-12-01' + i * interval '1 second' FROM generate_series(1, 500) i;",
    );
    let url = server.url(&db, "");
    setup.replicate_ok(setup.command(&url));
    server.psql(
        &db,
        "DELETE FROM salesforce.contact WHERE sfid IN ('003000000000000007', '003000000000000400')",
    );
    let mut command = setup.command(&url);
    command.args(["--reconcile", "contact"]);
    let report = setup.replicate_ok(command);
    let found = &entry(&report, "salesforce.contact")["reconciliation"];
    assert_eq!(found["buckets"], 16, "{found}");
    assert_eq!(found["rows_deleted_at_source"], 2, "{found}");
    assert_eq!(found["source_rows"], 498, "{found}");
    let differing = found["buckets_differing"].as_u64().unwrap();
    assert!((1..=2).contains(&differing), "{found}");
    assert!(found["keys_read"].as_u64().unwrap() < 500 / 4, "{found}");
    assert_eq!(
        setup.rows("SELECT SFID FROM ORGM.CONTACT WHERE _DELETED_AT IS NOT NULL ORDER BY SFID"),
        ["003000000000000007", "003000000000000400"]
    );
    assert_eq!(setup.rows("SELECT COUNT(*) FROM ORGM.CONTACT"), ["500"]);

    // Again: the summaries now match, so no key is read.
    let mut command = setup.command(&url);
    command.args(["--reconcile", "contact"]);
    let report = setup.replicate_ok(command);
    let found = &entry(&report, "salesforce.contact")["reconciliation"];
    assert_eq!(found["buckets_differing"], 0, "{found}");
    assert_eq!(found["keys_read"], 0, "{found}");
}

#[test]
fn snowflake_without_its_stage_or_keys_names_what_is_missing() {
    let Some(setup) = Setup::new("pgr_sf_config") else {
        return;
    };
    let mut command = setup.command("postgres://u:pw-not-shown@127.0.0.1:1/db?sslmode=disable");
    command
        .env_remove("PG_REPLICATE_STAGE_URL")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let out = run(command);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "SNOWFLAKE_ACCOUNT is set, so the tables go to Snowflake through an S3 stage, but \
             PG_REPLICATE_STAGE_URL and AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not set"
        ),
        "{}",
        out.stderr
    );
    let mut command = setup.command("postgres://u:pw-not-shown@127.0.0.1:1/db?sslmode=disable");
    command.env("PG_REPLICATE_STAGE_URL", "https://bucket/x");
    let out = run(command);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("PG_REPLICATE_STAGE_URL \"https://bucket/x\": expected s3://bucket/prefix"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_run_killed_during_its_copy_changes_nothing_and_the_next_run_resumes() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let Some(setup) = Setup::new("pgr_sf_kill") else {
        return;
    };
    let db = server.database("replicate_snowflake_kill");
    server.psql(
        &db,
        "CREATE SCHEMA salesforce; \
         CREATE TABLE salesforce.big (id int PRIMARY KEY, systemmodstamp timestamp, payload text); \
         INSERT INTO salesforce.big SELECT g, '2026-12-01'::timestamp + g * interval '1 second', \
         repeat('a', 20) FROM generate_series(1, 2000) g;",
    );
    let url = server.url(&db, "");
    setup.replicate_ok(setup.command(&url));
    let first = setup.rows("SELECT BOOKMARK FROM _PG_REPLICATE.BOOKMARKS");
    server.psql(
        &db,
        "UPDATE salesforce.big SET payload = repeat('b', 20), \
         systemmodstamp = systemmodstamp + interval '30 days'",
    );
    // The COPY hangs at the server; the job is killed while it waits.
    let copy = "BATCH_big (id, systemmodstamp, payload) FROM";
    setup.snow.script(Rule::statement(copy).hang(20).times(1));
    let mut command = setup.command(&url);
    command.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while setup.snow.events_of("statement", copy).is_empty() {
        assert!(Instant::now() < deadline, "the load never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        setup.rows("SELECT BOOKMARK FROM _PG_REPLICATE.BOOKMARKS"),
        first
    );
    assert_eq!(
        setup.rows("SELECT COUNT(*), COUNT_IF(PAYLOAD LIKE 'b%') FROM ORGM.BIG"),
        ["2000|0"]
    );

    let report = setup.replicate_ok(setup.command(&url));
    let big = entry(&report, "salesforce.big");
    assert_eq!(big["updated"], 2000, "{big}");
    assert_eq!(
        setup.rows("SELECT COUNT(*), COUNT_IF(PAYLOAD LIKE 'b%') FROM ORGM.BIG"),
        ["2000|2000"]
    );
}

/// SIGTERM while the warehouse sums its keys for a reconciliation: the table's load committed
/// before it stays, nothing is marked deleted, the reconciliation's time is not recorded, the
/// run exits 130, and the next run reconciles.
#[test]
fn sigterm_during_a_reconciliation_keeps_the_load_and_the_next_run_reconciles() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let Some(setup) = Setup::new("pgr_sf_sigterm_reconcile") else {
        return;
    };
    let db = server.database("replicate_snowflake_sigterm_reconcile");
    server.psql(
        &db,
        "CREATE SCHEMA salesforce; \
         CREATE TABLE salesforce.sigterm_reconcile (sfid varchar(18) PRIMARY KEY, name text, \
         systemmodstamp timestamp); \
         INSERT INTO salesforce.sigterm_reconcile SELECT '003' || lpad(i::text, 15, '0'), \
         'n' || i, timestamp '2026-12-01' + i * interval '1 second' \
         FROM generate_series(1, 300) i;",
    );
    let url = server.url(&db, "");
    setup.replicate_ok(setup.command(&url));
    let reconciled = |setup: &Setup| {
        setup.rows(
            "SELECT COALESCE(TO_VARCHAR(RECONCILED_AT), 'never') FROM _PG_REPLICATE.BOOKMARKS \
             WHERE SOURCE_TABLE = 'salesforce.sigterm_reconcile'",
        )
    };
    let before = reconciled(&setup);
    server.psql(
        &db,
        "DELETE FROM salesforce.sigterm_reconcile WHERE sfid = '003000000000000011'; \
         UPDATE salesforce.sigterm_reconcile SET name = 'changed', \
         systemmodstamp = systemmodstamp + interval '30 days' WHERE sfid = '003000000000000012';",
    );

    let summing = "AS H FROM orgm.sigterm_reconcile";
    setup
        .snow
        .script(Rule::statement(summing).hang(30).times(1));
    let mut command = setup.command(&url);
    command
        .args(["--reconcile", "sigterm_reconcile"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while setup.snow.events_of("statement", summing).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the reconciliation never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    // The merge committed before the reconciliation began; the reconciliation left nothing.
    assert_eq!(
        setup.rows("SELECT NAME FROM ORGM.SIGTERM_RECONCILE WHERE SFID = '003000000000000012'"),
        ["changed"]
    );
    assert_eq!(
        setup.rows("SELECT COUNT(*) FROM ORGM.SIGTERM_RECONCILE WHERE _DELETED_AT IS NOT NULL"),
        ["0"]
    );
    assert_eq!(reconciled(&setup), before);

    let mut command = setup.command(&url);
    command.args(["--reconcile", "sigterm_reconcile"]);
    let report = setup.replicate_ok(command);
    let found = &entry(&report, "salesforce.sigterm_reconcile")["reconciliation"];
    assert_eq!(found["rows_deleted_at_source"], 1, "{found}");
    assert_eq!(
        setup.rows("SELECT SFID FROM ORGM.SIGTERM_RECONCILE WHERE _DELETED_AT IS NOT NULL"),
        ["003000000000000011"]
    );
    assert_ne!(reconciled(&setup), before);
}
