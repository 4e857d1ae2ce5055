//! pg-job against real PostgreSQL servers (`support::postgres`): the example scripts on seed
//! data, rollback on failure with file:line and SQLSTATE, statements psql would split the same
//! way, the no-transaction mode, SIGTERM cancelling the query on the server, libpq's sslmode
//! semantics against a TLS-only server, and the ways connecting can fail. No test may find the
//! password in any output.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::postgres::{self, assert_no_password};
use crate::support::{assert_contains, job, repo, run, sigterm};

fn pg_job(url: &str) -> Command {
    let mut command = job("pg-job");
    command
        .env("HEROKU_POSTGRESQL_URL", url)
        .env("PG_JOB_SCRIPTS_DIR", repo().join("transform/sql"))
        .env("PG_JOB_CONNECT_TIMEOUT_SECS", "5");
    command
}

/// A scripts directory holding `files` (name, SQL).
fn scripts(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, sql) in files {
        std::fs::write(dir.path().join(name), sql).unwrap();
    }
    dir
}

#[test]
fn runs_the_hourly_chain_on_seed_data_and_reruns_idempotently() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = server.seeded("hourly_chain");
    for _ in 0..2 {
        for script in [
            "account-arr",
            "opportunity-snapshot",
            "opportunitylineitem_snapshot",
        ] {
            let mut command = pg_job(&server.url(&db, ""));
            command.arg(script);
            let out = run(command);
            assert_eq!(out.code, Some(0), "{script}: {out:?}");
            assert_contains(&out.stderr, &["done, committed", "rows="]);
            assert_no_password(&out);
        }
    }
    assert_eq!(
        server.psql(
            &db,
            "SELECT account_name || '=' || arr || '/' || active_lines FROM reporting.account_arr \
             WHERE snapshot_date = current_date ORDER BY account_name"
        ),
        "Acme Corp=22000.00/2\nGlobex=6000.00/1"
    );
    assert_eq!(
        server.psql(
            &db,
            "SELECT count(*), count(*) FILTER (WHERE is_won), \
                    min(fiscal_quarter) FILTER (WHERE opportunity_sfid = '0061000000AcmeWon'), \
                    min(fiscal_quarter) FILTER (WHERE opportunity_sfid = '0061000000GlxNew1') \
             FROM reporting.opportunity_snapshot"
        ),
        "7|5|FY2027-Q1|FY2026-Q4"
    );
    assert_eq!(
        server.psql(
            &db,
            "SELECT count(*), count(*) FILTER (WHERE is_active), sum(arr) \
             FROM reporting.opportunitylineitem_snapshot"
        ),
        "7|5|42000.00"
    );
}

#[test]
fn the_maintenance_script_runs_without_a_transaction() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = server.seeded("maintenance");
    for script in [
        "account-arr",
        "opportunity-snapshot",
        "opportunitylineitem-snapshot",
        "reporting-maintenance",
    ] {
        let mut command = pg_job(&server.url(&db, ""));
        command.env("PG_JOB_SCRIPT", script);
        let out = run(command);
        assert_eq!(out.code, Some(0), "{script}: {out:?}");
        if script == "reporting-maintenance" {
            assert_contains(
                &out.stderr,
                &["transaction=false", "each statement committed on its own"],
            );
        }
    }
    assert_eq!(
        server.psql(
            &db,
            "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes \
             WHERE schemaname = 'reporting' AND indexname LIKE '%account_idx'"
        ),
        "account_arr_account_idx,opportunity_snapshot_account_idx"
    );
    assert_eq!(
        server.psql(
            &db,
            "SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = 'reporting' \
             AND last_vacuum IS NOT NULL AND last_analyze IS NOT NULL"
        ),
        "3"
    );
}

#[test]
fn a_failing_statement_rolls_back_everything_and_says_where_and_why() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = server.database("rollback");
    let dir = scripts(&[(
        "load_accounts.sql",
        "CREATE TABLE staged (id int PRIMARY KEY, name text);\n\
         INSERT INTO staged VALUES (1, 'one'), (2, 'two');\n\
         UPDATE staged SET name = upper(name);\n\
         -- the check below fails: it must undo everything above\n\
         DO $$\n\
         BEGIN\n\
           IF (SELECT count(*) FROM staged) < 3 THEN\n\
             RAISE EXCEPTION 'only % accounts staged; expected at least 3', (SELECT count(*) FROM staged)\n\
               USING DETAIL = 'the Salesforce sync looks incomplete', HINT = 'check Heroku Connect', ERRCODE = 'P0001';\n\
           END IF;\n\
         END\n\
         $$;\n\
         INSERT INTO staged VALUES (3, 'three');\n",
    )]);
    let mut command = pg_job(&server.url(&db, ""));
    command
        .env("PG_JOB_SCRIPTS_DIR", dir.path())
        .arg("load-accounts");
    let out = run(command);
    assert_eq!(out.code, Some(1), "{out:?}");
    let file = dir.path().join("load_accounts.sql");
    assert_contains(
        &out.stderr,
        &[
            &format!("{}:5: statement 4 of 5 (DO $$…) failed:", file.display()),
            "ERROR P0001: only 2 accounts staged; expected at least 3",
            "DETAIL: the Salesforce sync looks incomplete",
            "HINT: check Heroku Connect",
            "CONTEXT: PL/pgSQL function inline_code_block line 4 at RAISE",
            "the transaction was rolled back: nothing of this run was applied",
        ],
    );
    assert_no_password(&out);
    assert_eq!(
        server.psql(&db, "SELECT to_regclass('staged') IS NULL"),
        "t"
    );

    // A syntax error deep inside a statement: the line of the error too.
    let dir = scripts(&[(
        "typo.sql",
        "CREATE TABLE t (a int);\nINSERT INTO t\nSELECT a\nFROM generate_series(1, 3) AS g (a)\nWHER a > 1;\n",
    )]);
    let mut command = pg_job(&server.url(&db, ""));
    command.env("PG_JOB_SCRIPTS_DIR", dir.path()).arg("typo");
    let out = run(command);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_contains(
        &out.stderr,
        &[
            "typo.sql:2: statement 2 of 2 (INSERT INTO t…; error at line 5) failed:",
            "ERROR 42601: syntax error at or near \"WHER\"",
        ],
    );
    assert_eq!(server.psql(&db, "SELECT to_regclass('t') IS NULL"), "t");
}

#[test]
fn a_failing_commit_rolls_back_too() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = server.database("commit_fails");
    // The deferred foreign key is checked at COMMIT, after every statement succeeded.
    let dir = scripts(&[(
        "deferred.sql",
        "CREATE TABLE parent (id int PRIMARY KEY);\n\
         CREATE TABLE child (parent_id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);\n\
         INSERT INTO child VALUES (42);\n",
    )]);
    let mut command = pg_job(&server.url(&db, ""));
    command
        .env("PG_JOB_SCRIPTS_DIR", dir.path())
        .arg("deferred");
    let out = run(command);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_contains(
        &out.stderr,
        &[
            "deferred.sql: COMMIT failed, the transaction was rolled back",
            "ERROR 23503",
            "DETAIL: Key (parent_id)=(42) is not present in table \"parent\".",
        ],
    );
    assert_eq!(
        server.psql(&db, "SELECT to_regclass('parent') IS NULL"),
        "t"
    );
}

#[test]
fn dollar_quotes_and_semicolons_in_strings_and_comments_split_as_psql_does() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = server.database("splitting");
    let sql = r#"/* A header comment; with a semicolon /* and a nested one; */ still comment; */
CREATE TABLE notes (id serial PRIMARY KEY, body text, "odd;name" text);

CREATE FUNCTION add_note(body text) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    new_id int;  -- a comment; inside the body
BEGIN
    INSERT INTO notes (body, "odd;name") VALUES (body, 'x;y') RETURNING id INTO new_id;
    RETURN new_id;
END;
$$;

CREATE FUNCTION shout(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $fn$ SELECT upper(t) || ';' $fn$;

CREATE FUNCTION twice(a int) RETURNS int LANGUAGE sql
BEGIN ATOMIC
    SELECT a + a;
END;

SELECT add_note('semi;colon'), add_note(E'it\'s; escaped'), add_note('it''s; doubled');  -- trailing; comment
INSERT INTO notes (body) VALUES (shout('dollar $$ inside;')), ($q$ $not_the_end$ ; $q$);
INSERT INTO notes (body) SELECT twice(21)::text
"#;
    let dir = scripts(&[("split_check.sql", sql)]);
    let mut command = pg_job("");
    command
        .env_remove("HEROKU_POSTGRESQL_URL")
        .env("DATABASE_URL", server.url(&db, "sslmode=disable"))
        .env("PG_JOB_SCRIPTS_DIR", dir.path())
        .arg("split-check");
    let out = run(command);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_contains(
        &out.stderr,
        &[
            "statements=7",
            "line=20 statement=5 rows=1",
            "line=21 statement=6 rows=2",
        ],
    );
    assert_eq!(
        server.psql(&db, "SELECT string_agg(body || '|' || coalesce(\"odd;name\", '-'), '\n' ORDER BY id) FROM notes"),
        "semi;colon|x;y\nit's; escaped|x;y\nit's; doubled|x;y\nDOLLAR $$ INSIDE;;|-\n $not_the_end$ ; |-\n42|-"
    );

    // --dry-run shows the same split without connecting (no URL at all).
    let mut command = job("pg-job");
    command
        .env("PG_JOB_SCRIPTS_DIR", dir.path())
        .args(["--dry-run", "split_check"]);
    let out = run(command);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_contains(
        &out.stdout,
        &[
            "split_check.sql: 7 statements, in one transaction",
            "-- statement 1, line 2\nCREATE TABLE notes",
            "-- statement 2, line 4\nCREATE FUNCTION add_note",
            "-- statement 4, line 15\nCREATE FUNCTION twice(a int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n    SELECT a + a;\nEND;\n",
            "-- statement 7, line 22\nINSERT INTO notes (body) SELECT twice(21)::text;",
        ],
    );
}

#[test]
fn statements_that_need_no_transaction_fail_loudly_inside_one() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = server.database("concurrently");
    server.psql(&db, "CREATE TABLE events (id int, kind text)");
    let sql = "CREATE INDEX CONCURRENTLY events_kind_idx ON events (kind);\nVACUUM events;\n";
    let dir = scripts(&[("index_events.sql", sql)]);
    let mut command = pg_job(&server.url(&db, ""));
    command
        .env("PG_JOB_SCRIPTS_DIR", dir.path())
        .arg("index-events");
    let out = run(command);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_contains(
        &out.stderr,
        &[
            "index_events.sql:1: statement 1 of 2",
            "ERROR 25001: CREATE INDEX CONCURRENTLY cannot run inside a transaction block",
            "HINT: this statement cannot run inside a transaction: run the script with --no-transaction",
        ],
    );

    let mut command = pg_job(&server.url(&db, ""));
    command
        .env("PG_JOB_SCRIPTS_DIR", dir.path())
        .args(["--no-transaction", "index-events"]);
    let out = run(command);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        server.psql(
            &db,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'events_kind_idx'"
        ),
        "1"
    );

    // Without a transaction a failure says which statements stay applied.
    let dir = scripts(&[(
        "partial.sql",
        "-- pg-job: no-transaction\nCREATE TABLE kept (a int);\nCREATE INDEX CONCURRENTLY ON kept (a);\nSELECT 1/0;\nCREATE TABLE never (a int);\n",
    )]);
    let mut command = pg_job(&server.url(&db, ""));
    command.env("PG_JOB_SCRIPTS_DIR", dir.path()).arg("partial");
    let out = run(command);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_contains(
        &out.stderr,
        &[
            "partial.sql:4: statement 3 of 4 (SELECT 1/0) failed:",
            "ERROR 22012: division by zero",
            "no transaction (no-transaction mode): statements 1 to 2 stay applied",
        ],
    );
    assert_eq!(
        server.psql(
            &db,
            "SELECT to_regclass('kept') IS NOT NULL, to_regclass('never') IS NULL"
        ),
        "t|t"
    );
}

#[test]
fn sigterm_cancels_the_running_query_on_the_server() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = server.database("sigterm");
    let dir = scripts(&[(
        "slow.sql",
        "CREATE TABLE started (a int);\nSELECT pg_sleep(60);\nCREATE TABLE finished (a int);\n",
    )]);
    let application = "pg-job-sigterm-test";
    let mut command = pg_job(&server.url(&db, ""));
    command
        .env("PG_JOB_SCRIPTS_DIR", dir.path())
        .env("PG_JOB_APPLICATION_NAME", application)
        .arg("slow")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().unwrap();
    let sleeping = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{application}' \
         AND state = 'active' AND query LIKE 'SELECT pg_sleep%'"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.psql(&db, &sleeping) != "1" {
        assert!(Instant::now() < deadline, "the query never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    sigterm(&child);
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        elapsed < Duration::from_secs(10),
        "took {elapsed:?} to stop"
    );
    // The job waited for the server to end the query: nothing of it runs on.
    assert_eq!(server.psql(&db, &sleeping), "0");
    assert_contains(
        &stderr,
        &[
            "cancelling the running statement on the server",
            "slow.sql:2: statement 2 of 3 (SELECT pg_sleep(60)) was cancelled",
            "the transaction was rolled back",
        ],
    );
    assert_eq!(
        server.psql(&db, "SELECT to_regclass('started') IS NULL"),
        "t"
    );
}

/// `kill -9` gives no chance to cancel: the server itself must notice that the client is gone
/// (client_connection_check_interval), end the statement and free its lock.
#[test]
fn a_killed_job_leaves_no_statement_running_and_no_lock_held() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = server.database("kill9");
    server.psql(&db, "CREATE TABLE accounts (id int)");
    let dir = scripts(&[(
        "locker.sql",
        "LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE;\nSELECT pg_sleep(120);\n",
    )]);
    let application = "pg-job-kill9-test";
    let mut command = pg_job(&server.url(&db, ""));
    command
        .env("PG_JOB_SCRIPTS_DIR", dir.path())
        .env("PG_JOB_APPLICATION_NAME", application)
        .env("PG_JOB_CONNECTION_CHECK_SECS", "1")
        .arg("locker")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    let running = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{application}' \
         AND state = 'active' AND query LIKE 'SELECT pg_sleep%'"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.psql(&db, &running) != "1" {
        assert!(Instant::now() < deadline, "the statement never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.psql(&db, &running) != "0" {
        assert!(
            Instant::now() < deadline,
            "the killed job's statement still runs on the server"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The lock went with it: taking it again does not wait.
    assert_eq!(
        server.psql(
            &db,
            "SET lock_timeout = 2000; LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE; SELECT 'free'"
        ),
        "free"
    );
}

#[test]
fn statement_timeout_stops_a_long_statement() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = server.database("timeout");
    let dir = scripts(&[("sleepy.sql", "SELECT pg_sleep(30);\n")]);
    let mut command = pg_job(&server.url(&db, ""));
    command
        .env("PG_JOB_SCRIPTS_DIR", dir.path())
        .env("PG_JOB_STATEMENT_TIMEOUT_SECS", "0.3")
        .arg("sleepy");
    let out = run(command);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.elapsed < Duration::from_secs(10), "{:?}", out.elapsed);
    assert_contains(
        &out.stderr,
        &["ERROR 57014: canceling statement due to statement timeout"],
    );
}

#[test]
fn a_wrong_password_is_not_retried_and_not_shown() {
    let Some(server) = postgres::plain() else {
        return;
    };
    // A database name of 8 characters or more would be masked in the log (the kit takes long
    // URL path segments for keys), hiding the `postgres` this test looks for.
    let db = server.database("auth");
    let url = server.url_for("127.0.0.1", "wrong-Pa55word", &db, "");
    let mut command = pg_job(&url);
    command.arg("account-arr");
    let out = run(command);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_contains(
        &out.stderr,
        &[
            "cannot connect to postgres://postgres:***@127.0.0.1:",
            "password authentication failed for user \"postgres\"",
            "(not retried: permanent)",
        ],
    );
    assert_no_password(&out);
}

#[test]
fn an_unreachable_server_is_retried_then_reported() {
    // A port nothing listens on: connection refused at every attempt.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://etl:Pg%2Fs3cret%25pw@127.0.0.1:{port}/sales");
    let mut command = pg_job(&url);
    command
        .env("PG_JOB_CONNECT_ATTEMPTS", "2")
        .arg("account_arr");
    let out = run(command);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_contains(
        &out.stderr,
        &[
            "connecting to Postgres failed, retrying: error connecting to server: Connection refused",
            "Connection refused",
            "(gave up after 2 attempts)",
        ],
    );
    assert_no_password(&out);
}

#[test]
fn an_unknown_script_lists_the_scripts_that_exist() {
    let mut command = pg_job("postgres://etl:x@127.0.0.1:9/sales");
    command.arg("account-ar");
    let out = run(command);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_contains(
        &out.stderr,
        &[
            "unknown script \"account-ar\"",
            "has account_arr, opportunity_snapshot, opportunitylineitem_snapshot, reporting_maintenance",
        ],
    );
}

#[test]
fn scripts_that_cannot_run_safely_are_refused_before_connecting() {
    let dir = scripts(&[
        (
            "unclosed.sql",
            "SELECT 1;\n\nDO $$ BEGIN RAISE NOTICE 'x'; END;\n",
        ),
        (
            "commits.sql",
            "INSERT INTO a VALUES (1);\nCOMMIT;\nINSERT INTO b VALUES (2);\n",
        ),
        ("meta.sql", "\\set ON_ERROR_STOP on\nSELECT 1;\n"),
    ]);
    for (script, expected) in [
        (
            "unclosed",
            "unclosed.sql:3: a $$ quoted body is not closed before the end of the file",
        ),
        (
            "commits",
            "commits.sql:2: `COMMIT` would end or nest the transaction",
        ),
        ("meta", "meta.sql:1: `\\set` is a psql meta-command"),
    ] {
        // The port is closed: a refusal after connecting would show as a connection error.
        let mut command = pg_job("postgres://etl:x@127.0.0.1:9/sales");
        command.env("PG_JOB_SCRIPTS_DIR", dir.path()).arg(script);
        let out = run(command);
        assert_eq!(out.code, Some(2), "{script}: {out:?}");
        assert_contains(&out.stderr, &[expected]);
    }
    let mut command = job("pg-job");
    command.env("PG_JOB_SCRIPTS_DIR", dir.path()).arg("commits");
    let out = run(command);
    assert_eq!(out.code, Some(2), "{out:?}");
}

#[test]
fn a_missing_url_or_script_is_a_usage_error() {
    let mut command = job("pg-job");
    command.arg("account-arr");
    command.env("PG_JOB_SCRIPTS_DIR", repo().join("transform/sql"));
    let out = run(command);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_contains(
        &out.stderr,
        &["HEROKU_POSTGRESQL_URL is not set (nor DATABASE_URL)"],
    );
    let out = run(pg_job("postgres://etl:x@127.0.0.1:9/sales"));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_contains(&out.stderr, &["no script was named"]);
}

/// libpq's sslmode against a server that takes TLS only, with a certificate for `localhost`
/// signed by a test CA.
#[test]
fn sslmode_behaves_as_libpq_does() {
    let Some(server) = postgres::tls() else {
        return;
    };
    let files = server.tls.as_ref().unwrap();
    let db = server.database("tls");
    let dir = scripts(&[("ping.sql", "SELECT 1;\n")]);
    let ca = files.ca.display().to_string();
    let other = files.other_ca.display().to_string();
    let cases: Vec<(&str, String, Result<(), &str>)> = vec![
        // No verification: any certificate.
        ("127.0.0.1", "sslmode=require".into(), Ok(())),
        ("127.0.0.1", "".into(), Ok(())),
        ("127.0.0.1", "sslmode=prefer".into(), Ok(())),
        // Plain first, then TLS when the server turns plain away.
        ("127.0.0.1", "sslmode=allow".into(), Ok(())),
        (
            "127.0.0.1",
            "sslmode=disable".into(),
            Err("no pg_hba.conf entry for host \"127.0.0.1\""),
        ),
        // require with a root file checks the chain (libpq's backward-compatible rule).
        (
            "127.0.0.1",
            format!("sslmode=require&sslrootcert={ca}"),
            Ok(()),
        ),
        (
            "127.0.0.1",
            format!("sslmode=require&sslrootcert={other}"),
            Err("invalid peer certificate: UnknownIssuer"),
        ),
        // verify-ca: the chain, not the name (the certificate names localhost only).
        (
            "127.0.0.1",
            format!("sslmode=verify-ca&sslrootcert={ca}"),
            Ok(()),
        ),
        (
            "127.0.0.1",
            format!("sslmode=verify-ca&sslrootcert={other}"),
            Err("invalid peer certificate: UnknownIssuer"),
        ),
        // verify-full: the chain and the name.
        (
            "localhost",
            format!("sslmode=verify-full&sslrootcert={ca}"),
            Ok(()),
        ),
        (
            "127.0.0.1",
            format!("sslmode=verify-full&sslrootcert={ca}"),
            Err("invalid peer certificate: certificate not valid for name"),
        ),
        // Without sslrootcert the system CAs are trusted, and they do not know the test CA.
        (
            "localhost",
            "sslmode=verify-full".into(),
            Err("invalid peer certificate: UnknownIssuer"),
        ),
    ];
    for (host, query, expected) in cases {
        let unverified =
            expected.is_ok() && !query.contains("verify-") && !query.contains("sslrootcert");
        let url = server.url_for(host, "Pg%2Fs3cret%25pw", &db, &query);
        let mut command = pg_job(&url);
        command
            .env("PG_JOB_SCRIPTS_DIR", dir.path())
            .env("PG_JOB_CONNECT_ATTEMPTS", "1")
            .arg("ping");
        let out = run(command);
        match expected {
            Ok(()) => assert_eq!(out.code, Some(0), "{host} {query}: {out:?}"),
            Err(message) => {
                assert_ne!(out.code, Some(0), "{host} {query}: {out:?}");
                assert_contains(&out.stderr, &[message]);
            }
        }
        let warnings = out
            .stderr
            .matches("TLS certificate is not verified")
            .count();
        assert_eq!(warnings, usize::from(unverified), "{host} {query}: {out:?}");
        assert_no_password(&out);
    }

    // The plain server has no TLS: require (also the default) fails, prefer falls back.
    let Some(plain) = postgres::plain() else {
        return;
    };
    for (query, expected) in [
        ("sslmode=prefer", Ok(())),
        ("sslmode=disable", Ok(())),
        ("sslmode=require", Err("server does not support TLS")),
        (
            "application_name=no-sslmode",
            Err("server does not support TLS"),
        ),
    ] {
        let mut command = pg_job(&plain.url("postgres", query));
        command
            .env("PG_JOB_SCRIPTS_DIR", dir.path())
            .env("PG_JOB_CONNECT_ATTEMPTS", "1")
            .arg("ping");
        let out = run(command);
        match expected {
            Ok(()) => assert_eq!(out.code, Some(0), "{query}: {out:?}"),
            Err(message) => {
                assert_eq!(out.code, Some(1), "{query}: {out:?}");
                assert_contains(&out.stderr, &[message]);
            }
        }
    }
}
