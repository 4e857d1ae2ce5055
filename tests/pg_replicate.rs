//! pg-replicate against a real PostgreSQL (`support::postgres`) and the embedded DuckDB file,
//! read back with DuckDB itself: the first run's full copy, merges that are idempotent, ties on
//! the bookmark, a transaction that commits late, NULL keys, the type mapping, `--reload`, a
//! column dropped at the source, one added and backfilled, types widened and one that cannot
//! be, hard deletes found by reconciling key buckets (marked or deleted, and only the differing
//! buckets' keys read), a failing table beside good ones, a bad catalog, SIGTERM during the
//! read, and `kill -9` at several points of a load. No test may find the password in any output.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::postgres::{self, Server, assert_no_password};
use crate::support::{assert_contains, job, run, sigterm};

fn pg_replicate(url: &str, warehouse: &Path) -> Command {
    let mut command = job("pg-replicate");
    command
        .env("HEROKU_POSTGRESQL_URL", url)
        .env("WAREHOUSE_PATH", warehouse)
        .env("PG_REPLICATE_CONNECT_TIMEOUT_SECS", "5")
        .env("DUCKDB_MEMORY_LIMIT", "256MB")
        .env("DUCKDB_THREADS", "2");
    command
}

/// A database with schema `salesforce` and the tables `sql` creates.
fn database(server: &Server, name: &str, sql: &str) -> String {
    let db = server.database(name);
    server.psql(&db, &format!("CREATE SCHEMA salesforce; {sql}"));
    db
}

/// Rows of a DuckDB query, each as `a|b|c` with NULL as an empty field (as psql -A prints).
fn duck(warehouse: &Path, sql: &str) -> Vec<String> {
    let connection = duckdb::Connection::open(warehouse).expect("open the warehouse");
    let sql = format!("SELECT COLUMNS(*)::VARCHAR FROM ({sql})");
    let mut statement = connection
        .prepare(&sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows = statement.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        let width = row.as_ref().column_count();
        let fields: Vec<String> = (0..width)
            .map(|i| row.get::<_, Option<String>>(i).unwrap().unwrap_or_default())
            .collect();
        out.push(fields.join("|"));
    }
    out
}

fn duck_one(warehouse: &Path, sql: &str) -> String {
    let rows = duck(warehouse, sql);
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    rows.into_iter().next().unwrap()
}

fn pg_rows(server: &Server, db: &str, sql: &str) -> Vec<String> {
    let out = server.psql(db, sql);
    if out.is_empty() {
        Vec::new()
    } else {
        out.lines().map(str::to_owned).collect()
    }
}

/// The report's entry for `table`.
fn entry<'a>(report: &'a Value, table: &str) -> &'a Value {
    report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["table"] == table)
        .unwrap_or_else(|| panic!("{table} not in the report: {report:#}"))
}

#[track_caller]
fn replicate_ok(command: Command) -> Value {
    let out = run(command);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_no_password(&out);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// The columns of salesforce.account, rendered alike by Postgres and DuckDB.
const ACCOUNT: &str = "sfid, name, type, industry, isdeleted, systemmodstamp, _hc_lastop";

#[track_caller]
fn assert_accounts_match(server: &Server, db: &str, warehouse: &Path) {
    let columns: Vec<String> = ACCOUNT.split(", ").map(|c| format!("{c}::text")).collect();
    let columns = columns.join(", ");
    assert_eq!(
        duck(
            warehouse,
            &format!("SELECT {columns} FROM orgm.account ORDER BY sfid")
        ),
        pg_rows(
            server,
            db,
            &format!("SELECT {columns} FROM salesforce.account ORDER BY sfid")
        )
    );
}

#[test]
fn replicates_heroku_connect_tables_then_merges_changes_idempotently() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = server.seeded("replicate");
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse.duckdb");
    let url = server.url(&db, "");

    let first = replicate_ok(pg_replicate(&url, &warehouse));
    assert_eq!(first["tables_failed"], 0);
    for (table, rows) in [
        ("salesforce.account", 5),
        ("salesforce.opportunity", 8),
        ("salesforce.opportunitylineitem", 8),
        ("salesforce.product2", 2),
    ] {
        let e = entry(&first, table);
        assert_eq!(e["status"], "ok", "{e}");
        assert_eq!(e["mode"], "full", "{e}");
        assert_eq!(e["full_copy_reason"], "first run", "{e}");
        assert_eq!(e["rows_read"], rows, "{e}");
        assert_eq!(e["inserted"], rows, "{e}");
    }
    // The seed's products have no systemmodstamp: counted, and replicated anyway.
    assert_eq!(entry(&first, "salesforce.product2")["null_key_rows"], 2);
    assert_eq!(
        duck_one(&warehouse, "SELECT count(*) FROM orgm.product2"),
        "2"
    );
    assert_accounts_match(server, &db, &warehouse);
    let bookmark = entry(&first, "salesforce.account")["bookmark_after"].clone();
    assert!(bookmark.is_string(), "{first:#}");

    server.psql(
        &db,
        "UPDATE salesforce.account SET industry = 'Aerospace', systemmodstamp = now() + interval '1 second' \
         WHERE sfid IN ('0011000000AcmeAAA', '0011000000HooliAA'); \
         INSERT INTO salesforce.account (sfid, name, isdeleted, systemmodstamp, _hc_lastop) \
         VALUES ('0011000000NewcoAA', 'Newco', false, now() + interval '1 second', 'SYNCED')",
    );
    let second = replicate_ok(pg_replicate(&url, &warehouse));
    let account = entry(&second, "salesforce.account");
    assert_eq!(account["mode"], "incremental", "{account}");
    assert_eq!(account["inserted"], 1, "{account}");
    assert_eq!(account["updated"], 2, "{account}");
    assert_eq!(account["bookmark_before"], bookmark);
    assert!(
        account["bookmark_after"].as_str().unwrap() > bookmark.as_str().unwrap(),
        "{account}"
    );
    // The lookback re-read the seed rows too: merged, not duplicated, not counted as changes.
    assert!(account["rows_read"].as_u64().unwrap() >= 3, "{account}");
    let opportunity = entry(&second, "salesforce.opportunity");
    assert_eq!(
        (&opportunity["inserted"], &opportunity["updated"]),
        (&Value::from(0), &Value::from(0))
    );
    assert_accounts_match(server, &db, &warehouse);
    let stamps_before = duck(
        &warehouse,
        "SELECT sfid, _replicated_at FROM orgm.account ORDER BY sfid",
    );

    // Nothing changed: nothing is written, not even the metadata column.
    let third = replicate_ok(pg_replicate(&url, &warehouse));
    for table in third["tables"].as_array().unwrap() {
        assert_eq!(table["inserted"], 0, "{table}");
        assert_eq!(table["updated"], 0, "{table}");
    }
    assert_eq!(
        duck(
            &warehouse,
            "SELECT sfid, _replicated_at FROM orgm.account ORDER BY sfid"
        ),
        stamps_before
    );
    assert_eq!(
        duck_one(&warehouse, "SELECT count(*) FROM _pg_replicate.bookmarks"),
        "4"
    );
}

/// Stitch's blind spots: many rows sharing the bookmark's exact key, and a row whose
/// transaction commits after a run with a key older than that run's bookmark.
#[test]
fn ties_on_the_bookmark_and_a_late_commit_are_neither_lost_nor_duplicated() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = database(
        server,
        "ties",
        "CREATE TABLE salesforce.task (id serial PRIMARY KEY, sfid varchar(18), \
         systemmodstamp timestamp, subject text); \
         INSERT INTO salesforce.task (sfid, systemmodstamp, subject) \
         SELECT 'T' || g, '2026-12-01 10:00:00', 'first' FROM generate_series(1, 500) g;",
    );
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse.duckdb");
    let url = server.url(&db, "");

    // A transaction that writes a row keyed 09:58 and commits only after the first run.
    let mut late = server.psql_spawn(
        &db,
        "BEGIN; INSERT INTO salesforce.task (sfid, systemmodstamp, subject) \
         VALUES ('LATE', '2026-12-01 09:58:00', 'late'); SELECT pg_sleep(4); COMMIT;",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.psql(
        &db,
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'BEGIN; INSERT INTO salesforce.task%'",
    ) != "1"
    {
        assert!(Instant::now() < deadline, "the late transaction never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = replicate_ok(pg_replicate(&url, &warehouse));
    let task = entry(&first, "salesforce.task");
    assert_eq!(task["rows_read"], 500, "{task}");
    assert_eq!(task["bookmark_after"], "2026-12-01 10:00:00", "{task}");
    assert!(late.wait().unwrap().success());

    // 300 more rows on the bookmark's exact key.
    server.psql(
        &db,
        "INSERT INTO salesforce.task (sfid, systemmodstamp, subject) \
         SELECT 'U' || g, '2026-12-01 10:00:00', 'tie' FROM generate_series(1, 300) g",
    );
    let second = replicate_ok(pg_replicate(&url, &warehouse));
    let task = entry(&second, "salesforce.task");
    assert_eq!(task["mode"], "incremental", "{task}");
    assert_eq!(task["rows_read"], 801, "{task}");
    assert_eq!(task["inserted"], 301, "{task}");
    assert_eq!(task["updated"], 0, "{task}");
    assert_eq!(
        duck_one(
            &warehouse,
            "SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE sfid = 'LATE') FROM orgm.task"
        ),
        "801|801|1"
    );

    // With no lookback the late row would have been missed: the setting is what saves it.
    let lookback_free = database(
        server,
        "ties_no_lookback",
        "CREATE TABLE salesforce.task (id serial PRIMARY KEY, systemmodstamp timestamp); \
         INSERT INTO salesforce.task (systemmodstamp) VALUES ('2026-12-01 10:00:00');",
    );
    let warehouse = dir.path().join("no-lookback.duckdb");
    let url = server.url(&lookback_free, "");
    let mut command = pg_replicate(&url, &warehouse);
    command.env("PG_REPLICATE_LOOKBACK_SECS", "0");
    replicate_ok(command);
    server.psql(
        &lookback_free,
        "INSERT INTO salesforce.task (systemmodstamp) VALUES ('2026-12-01 09:58:00')",
    );
    let mut command = pg_replicate(&url, &warehouse);
    command.env("PG_REPLICATE_LOOKBACK_SECS", "0");
    let report = replicate_ok(command);
    assert_eq!(entry(&report, "salesforce.task")["inserted"], 0);
}

#[test]
fn rows_with_a_null_key_are_counted_and_replicated_on_every_run() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = database(
        server,
        "null_keys",
        "CREATE TABLE salesforce.contact (id int PRIMARY KEY, systemmodstamp timestamp, name text); \
         INSERT INTO salesforce.contact VALUES (1, '2026-12-01 10:00:00', 'a'), (2, NULL, 'b'), (3, NULL, 'c');",
    );
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse.duckdb");
    let url = server.url(&db, "");
    let out = run(pg_replicate(&url, &warehouse));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_contains(
        &out.stderr,
        &["salesforce.contact: 2 rows have a NULL systemmodstamp"],
    );
    server.psql(&db, "UPDATE salesforce.contact SET name = 'B' WHERE id = 2");
    let report = replicate_ok(pg_replicate(&url, &warehouse));
    let contact = entry(&report, "salesforce.contact");
    assert_eq!(contact["null_key_rows"], 2, "{contact}");
    assert_eq!(contact["updated"], 1, "{contact}");
    assert_eq!(contact["inserted"], 0, "{contact}");
    assert_eq!(
        duck(&warehouse, "SELECT id, name FROM orgm.contact ORDER BY id"),
        ["1|a", "2|B", "3|c"]
    );
}

#[test]
fn postgres_types_map_to_duckdb_types_as_documented() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = database(
        server,
        "types",
        r#"CREATE TABLE salesforce.typed (
            id bigint PRIMARY KEY, systemmodstamp timestamptz, t text, v varchar(5),
            n numeric(12,3), nn numeric, i integer, si smallint, b boolean, d date,
            ts timestamp, j jsonb, u uuid, ia integer[], ta text[], raw bytea,
            f double precision, empty text);
        INSERT INTO salesforce.typed VALUES
            (1, '2026-12-01 10:00:00.5+02', E'a "quoted", text\nwith a newline', 'abc',
             12345.678, 1.5, 42, 7, true, '2026-12-01', '2026-12-01 10:00:00.123456',
             '{"a": [1, 2]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{1,2,NULL}',
             '{"x,y","z\"q"}', '\x00ff10', 0.1, ''),
            (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
             NULL, NULL, NULL, NULL);"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse.duckdb");
    replicate_ok(pg_replicate(&server.url(&db, ""), &warehouse));
    let types = duck(
        &warehouse,
        "SELECT column_name, data_type FROM information_schema.columns \
         WHERE table_schema = 'orgm' AND table_name = 'typed' ORDER BY ordinal_position",
    );
    assert_eq!(
        types,
        [
            "id|BIGINT",
            "systemmodstamp|TIMESTAMP WITH TIME ZONE",
            "t|VARCHAR",
            "v|VARCHAR",
            "n|DECIMAL(12,3)",
            "nn|DOUBLE",
            "i|INTEGER",
            "si|SMALLINT",
            "b|BOOLEAN",
            "d|DATE",
            "ts|TIMESTAMP",
            "j|VARCHAR",
            "u|UUID",
            "ia|INTEGER[]",
            "ta|VARCHAR",
            "raw|BLOB",
            "f|DOUBLE",
            "empty|VARCHAR",
            "_replicated_at|TIMESTAMP",
            // The built-in catalog marks the hard deletes of schema salesforce's tables.
            "_deleted_at|TIMESTAMP",
        ]
    );
    let connection = duckdb::Connection::open(&warehouse).unwrap();
    let text: String = connection
        .query_row("SELECT t FROM orgm.typed WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(text, "a \"quoted\", text\nwith a newline");
    drop(connection);
    assert_eq!(
        duck_one(
            &warehouse,
            "SELECT epoch_ms(systemmodstamp), v, n, nn, i, si, b, d, ts, j, u, ia, ta, hex(raw), f, \
             empty = '' FROM orgm.typed WHERE id = 1"
        ),
        "1796112000500|abc|12345.678|1.5|42|7|true|2026-12-01|2026-12-01 10:00:00.123456|\
         {\"a\": [1, 2]}|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|[1, 2, NULL]|[\"x,y\",\"z\\\"q\"]|\
         00FF10|0.1|true"
    );
    // NULL stays NULL in every type (an empty string above stayed a string).
    assert_eq!(
        duck_one(
            &warehouse,
            "SELECT count(*) FROM orgm.typed WHERE id = 2 AND systemmodstamp IS NULL AND t IS NULL \
             AND n IS NULL AND b IS NULL AND ia IS NULL AND ta IS NULL AND raw IS NULL AND empty IS NULL"
        ),
        "1"
    );
}

/// A row deleted at the source stays in the warehouse until a full copy (hard deletes are part
/// 2): `--reload` copies the table anew and swaps it in.
/// A column dropped at the source (Stitch copied such a table again only on a manual reset):
/// the table is merged as before, not copied in full; the warehouse keeps the column, NULL in
/// the rows written from then on, and the report names it.
#[test]
fn a_column_dropped_at_the_source_is_kept_and_the_table_merged() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = server.seeded("dropped");
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse.duckdb");
    let url = server.url(&db, "");
    replicate_ok(pg_replicate(&url, &warehouse));
    let industries = duck(
        &warehouse,
        "SELECT sfid, industry FROM orgm.account WHERE industry IS NOT NULL ORDER BY sfid",
    );
    assert!(industries.len() >= 2, "{industries:?}");

    let changed = &industries[0][..industries[0].find('|').unwrap()];
    server.psql(
        &db,
        &format!(
            "ALTER TABLE salesforce.account DROP COLUMN industry; \
             UPDATE salesforce.account SET name = 'Renamed', systemmodstamp = now() + interval '1 second' \
             WHERE sfid = '{changed}'; \
             INSERT INTO salesforce.account (sfid, name, isdeleted, systemmodstamp, _hc_lastop) \
             VALUES ('0011000000DropcoA', 'Dropco', false, now() + interval '1 second', 'SYNCED')"
        ),
    );
    let out = run(pg_replicate(&url, &warehouse));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("no longer has industry"),
        "{}",
        out.stderr
    );
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let account = entry(&report, "salesforce.account");
    assert_eq!(account["mode"], "incremental", "{account}");
    assert_eq!(account["columns_dropped"], serde_json::json!(["industry"]));
    assert_eq!(account["inserted"], 1, "{account}");
    assert_eq!(account["updated"], 1, "{account}");
    // Kept: the untouched rows keep their value; the rows written now have none.
    assert_eq!(
        duck(
            &warehouse,
            &format!(
                "SELECT sfid, industry FROM orgm.account WHERE sfid IN ('{changed}', \
                 '0011000000DropcoA') ORDER BY sfid"
            ),
        ),
        [format!("{changed}|"), "0011000000DropcoA|".to_owned()]
    );
    for kept in &industries[1..] {
        assert!(
            duck(&warehouse, "SELECT sfid, industry FROM orgm.account").contains(kept),
            "{kept} lost"
        );
    }
}

/// A column new at the source is added to the table and filled in for the rows it holds,
/// without copying the table again: the backfill reads the key and that column alone. Here
/// the table's bodies add up to four times the read limit, so a read of the whole table fails.
#[test]
fn a_new_column_is_added_and_backfilled_reading_only_the_key_and_the_column() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = database(
        server,
        "backfill",
        "CREATE TABLE salesforce.note (sfid varchar(18) PRIMARY KEY, body text, \
         systemmodstamp timestamp); \
         INSERT INTO salesforce.note SELECT 'n' || i, repeat('x', 10000), \
         timestamp '2026-01-01' + i * interval '1 day' FROM generate_series(1, 20) i;",
    );
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse.duckdb");
    let url = server.url(&db, "");
    replicate_ok(pg_replicate(&url, &warehouse));

    server.psql(
        &db,
        "ALTER TABLE salesforce.note ADD COLUMN rating text DEFAULT 'warm'; \
         UPDATE salesforce.note SET rating = 'hot' WHERE sfid = 'n3';",
    );
    let mut command = pg_replicate(&url, &warehouse);
    command.env("PG_REPLICATE_MAX_TABLE_BYTES", "50000");
    let report = replicate_ok(command);
    let note = entry(&report, "salesforce.note");
    assert_eq!(note["mode"], "incremental", "{note}");
    assert_eq!(note["columns_added"], serde_json::json!(["rating"]));
    assert_eq!(note["rows_backfilled"], 20, "{note}");
    assert_eq!(
        duck(
            &warehouse,
            "SELECT rating, count(*) FROM orgm.note GROUP BY 1 ORDER BY 1"
        ),
        ["hot|1", "warm|19"]
    );
    assert_eq!(
        duck_one(
            &warehouse,
            "SELECT count(*) FROM orgm.note WHERE length(body) = 10000"
        ),
        "20"
    );
    // The whole table is over the limit: only a copy of all of it would fail.
    let mut command = pg_replicate(&url, &warehouse);
    command
        .env("PG_REPLICATE_MAX_TABLE_BYTES", "50000")
        .args(["--reload", "salesforce.note"]);
    let out = run(command);
    assert_ne!(out.code, Some(0), "{}", out.stdout);
}

/// A type grown at the source (a wider integer, a decimal with more digits, a longer varchar)
/// is widened in the warehouse and the table merged, not copied; a type the warehouse column
/// cannot take fails that table alone, naming the column and both types (exit 3), and leaves it
/// as it was.
#[test]
fn a_widened_type_is_widened_and_an_incompatible_one_fails_its_table() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = database(
        server,
        "retyped",
        "CREATE TABLE salesforce.widget (sfid varchar(18) PRIMARY KEY, qty integer, \
         price numeric(10,2), label varchar(10), systemmodstamp timestamp); \
         INSERT INTO salesforce.widget VALUES ('w1', 7, 12.50, 'small', '2026-12-01 10:00:00'); \
         CREATE TABLE salesforce.gadget (sfid varchar(18) PRIMARY KEY, code text, \
         systemmodstamp timestamp); \
         INSERT INTO salesforce.gadget VALUES ('g1', '42', '2026-12-01 10:00:00');",
    );
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse.duckdb");
    let url = server.url(&db, "");
    replicate_ok(pg_replicate(&url, &warehouse));

    server.psql(
        &db,
        "ALTER TABLE salesforce.widget ALTER COLUMN qty TYPE bigint, \
         ALTER COLUMN price TYPE numeric(14,2), ALTER COLUMN label TYPE varchar(40); \
         INSERT INTO salesforce.widget VALUES ('w2', 5000000000, 1234567890.25, \
         'a label longer than ten', '2026-12-02 10:00:00'); \
         ALTER TABLE salesforce.gadget ALTER COLUMN code TYPE integer USING code::integer;",
    );
    let out = run(pg_replicate(&url, &warehouse));
    assert_eq!(out.code, Some(3), "{}\n{}", out.stdout, out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let widget = entry(&report, "salesforce.widget");
    assert_eq!(widget["status"], "ok", "{widget}");
    assert_eq!(widget["mode"], "incremental", "{widget}");
    assert_eq!(
        widget["columns_widened"],
        serde_json::json!(["qty BIGINT", "price DECIMAL(14,2)"])
    );
    assert_eq!(widget["inserted"], 1, "{widget}");
    assert_eq!(
        duck(
            &warehouse,
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_name = 'widget' AND column_name IN ('qty', 'price') ORDER BY 1"
        ),
        ["price|DECIMAL(14,2)", "qty|BIGINT"]
    );
    assert_eq!(
        duck(
            &warehouse,
            "SELECT sfid, qty, price, label FROM orgm.widget ORDER BY 1"
        ),
        [
            "w1|7|12.50|small",
            "w2|5000000000|1234567890.25|a label longer than ten"
        ]
    );
    let gadget = entry(&report, "salesforce.gadget");
    assert_eq!(gadget["status"], "failed", "{gadget}");
    assert_contains(
        gadget["error"].as_str().unwrap(),
        &[
            "column code changed type from text to integer",
            "VARCHAR",
            "--reload",
        ],
    );
    assert_eq!(
        duck(&warehouse, "SELECT sfid, code FROM orgm.gadget"),
        ["g1|42"]
    );
}

#[test]
fn reload_copies_a_table_in_full_and_swaps_it_in() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = server.seeded("reload");
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse.duckdb");
    let url = server.url(&db, "");
    replicate_ok(pg_replicate(&url, &warehouse));
    server.psql(
        &db,
        "DELETE FROM salesforce.account WHERE sfid = '0011000000UmbrlaA'",
    );
    let mut command = pg_replicate(&url, &warehouse);
    command.args(["account", "--reload", "salesforce.account"]);
    let report = replicate_ok(command);
    let tables = report["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 1, "{report:#}");
    let account = entry(&report, "salesforce.account");
    assert_eq!(account["mode"], "full", "{account}");
    assert_eq!(account["full_copy_reason"], "--reload", "{account}");
    assert_eq!(account["rows_read"], 4, "{account}");
    assert_accounts_match(server, &db, &warehouse);

    let mut command = pg_replicate(&url, &warehouse);
    command.arg("nosuchtable");
    let out = run(command);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_contains(
        &out.stderr,
        &[
            "\"nosuchtable\" is not a table of the catalog",
            "salesforce.account",
        ],
    );
}

#[test]
fn a_failing_table_makes_the_run_exit_3_and_the_others_still_commit() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = database(
        server,
        "partial",
        "CREATE TABLE salesforce.account (id int PRIMARY KEY, systemmodstamp timestamp); \
         INSERT INTO salesforce.account VALUES (1, '2026-12-01 10:00:00'); \
         CREATE TABLE salesforce.nokey (id int PRIMARY KEY, updated timestamp); \
         INSERT INTO salesforce.nokey VALUES (1, '2026-12-01 10:00:00'); \
         CREATE TABLE salesforce.nopk (systemmodstamp timestamp);",
    );
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse.duckdb");
    let out = run(pg_replicate(&server.url(&db, ""), &warehouse));
    assert_eq!(out.code, Some(3), "{}\n{}", out.stdout, out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["tables_failed"], 2);
    assert_eq!(entry(&report, "salesforce.account")["status"], "ok");
    let nokey = entry(&report, "salesforce.nokey");
    assert_eq!(nokey["status"], "failed");
    assert_contains(
        nokey["error"].as_str().unwrap(),
        &["salesforce.nokey has no column systemmodstamp, its replication key"],
    );
    assert_contains(
        entry(&report, "salesforce.nopk")["error"].as_str().unwrap(),
        &["salesforce.nopk has no primary key"],
    );
    assert_eq!(
        duck_one(&warehouse, "SELECT count(*) FROM orgm.account"),
        "1"
    );
    assert_eq!(
        duck(
            &warehouse,
            "SELECT source_table FROM _pg_replicate.bookmarks"
        ),
        ["salesforce.account"]
    );

    // The catalog fixes it: another key for one table, a primary key for the other.
    let catalog = dir.path().join("catalog.yml");
    std::fs::write(
        &catalog,
        "tables:\n  salesforce.nokey:\n    replication_key: updated\n  salesforce.nopk:\n    primary_key: [systemmodstamp]\n",
    )
    .unwrap();
    let mut command = pg_replicate(&server.url(&db, ""), &warehouse);
    command.env("PG_REPLICATE_CATALOG", &catalog);
    let report = replicate_ok(command);
    assert_eq!(entry(&report, "salesforce.nokey")["inserted"], 1);
}

#[test]
fn a_bad_catalog_reports_every_problem_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.yml");
    std::fs::write(
        &catalog,
        "schemas:\n  billing:\n    exclude: invoices\ntables:\n  account: {}\n  salesforce.contact:\n    primary_key: []\n",
    )
    .unwrap();
    // Nothing listens there: a connection attempt would be a different error.
    let url = format!(
        "postgres://postgres:{}@127.0.0.1:{}/db?sslmode=disable",
        postgres::PASSWORD_IN_URL,
        crate::support::free_port()
    );
    let mut command = pg_replicate(&url, &dir.path().join("w.duckdb"));
    command.env("PG_REPLICATE_CATALOG", &catalog);
    let out = run(command);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_no_password(&out);
    let shown = catalog.display().to_string();
    assert_contains(
        &out.stderr,
        &[
            "3 problems in the catalog",
            &format!("{shown}:3:14: schema billing: exclude: expected a list, found a string"),
            &format!("{shown}:5:3: table \"account\": expected schema.table"),
            &format!("{shown}:7:18: table salesforce.contact: primary_key names no column"),
        ],
    );
    assert!(!out.stderr.contains("connect"), "{}", out.stderr);
    assert!(!dir.path().join("w.duckdb").exists());

    // The merged catalog, without connecting.
    std::fs::write(
        &catalog,
        "tables:\n  billing.invoice:\n    replication_key: updated_at\n",
    )
    .unwrap();
    let mut command = pg_replicate(&url, &dir.path().join("w.duckdb"));
    command
        .env("PG_REPLICATE_CATALOG", &catalog)
        .arg("--print-catalog");
    let out = run(command);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_contains(
        &out.stdout,
        &[
            "  salesforce:\n    replication_key: systemmodstamp\n    exclude: [_hcmeta, _sf_event_log, _trigger_log, _trigger_log_archive]",
            "  billing.invoice:\n    replication_key: updated_at",
        ],
    );
}

#[test]
fn a_bad_url_or_password_is_a_usage_error_that_shows_no_password() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("w.duckdb");
    let url = server.url_for("127.0.0.1", "wrong-Pa55word", "postgres", "sslmode=disable");
    let out = run(pg_replicate(&url, &warehouse));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_no_password(&out);
    assert_contains(&out.stderr, &["password authentication failed"]);

    let out = run(pg_replicate(
        &server.url("postgres", "sslmode=sometimes"),
        &warehouse,
    ));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_no_password(&out);
    assert_contains(&out.stderr, &["HEROKU_POSTGRESQL_URL", "sslmode"]);

    let out = run(job("pg-replicate"));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_contains(&out.stderr, &["HEROKU_POSTGRESQL_URL is not set"]);
}

/// The read waits on a lock another session holds; SIGTERM must cancel it on the server, roll
/// back and leave the bookmark where it was.
#[test]
fn sigterm_cancels_the_read_on_the_server_and_keeps_the_bookmark() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = server.seeded("replicate_sigterm");
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse.duckdb");
    let url = server.url(&db, "");
    let mut command = pg_replicate(&url, &warehouse);
    command.arg("salesforce.account");
    replicate_ok(command);
    let bookmark = duck(&warehouse, "SELECT bookmark FROM _pg_replicate.bookmarks");
    server.psql(
        &db,
        "UPDATE salesforce.account SET name = 'changed', systemmodstamp = now() + interval '1 hour'",
    );

    let mut locker = server.psql_spawn(
        &db,
        "BEGIN; LOCK TABLE salesforce.account IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);",
    );
    let mut command = pg_replicate(&url, &warehouse);
    command
        .arg("salesforce.account")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().unwrap();
    let reading = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg-replicate' \
                   AND state = 'active' AND query LIKE 'COPY%'";
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.psql(&db, reading) != "1" {
        assert!(Instant::now() < deadline, "the read never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_eq!(server.psql(&db, reading), "0");
    assert_contains(
        &stderr,
        &[
            "cancelling the running read on the server",
            "interrupted (SIGTERM/SIGINT) during salesforce.account",
        ],
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        entry(&report, "salesforce.account")["status"],
        "interrupted"
    );
    let _ = locker.kill();
    let _ = locker.wait();
    assert_eq!(
        duck(&warehouse, "SELECT bookmark FROM _pg_replicate.bookmarks"),
        bookmark
    );
    assert_eq!(
        duck_one(
            &warehouse,
            "SELECT count(*) FROM orgm.account WHERE name = 'changed'"
        ),
        "0"
    );
}

/// A load killed with SIGKILL at several points leaves the table and its bookmark as the last
/// committed run left them (all of the second run or none of it), and the next run resumes.
#[test]
fn a_load_killed_at_any_point_changes_nothing_and_the_next_run_resumes() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = database(
        server,
        "replicate_kill9",
        "CREATE TABLE salesforce.big (id int PRIMARY KEY, systemmodstamp timestamp, payload text); \
         INSERT INTO salesforce.big SELECT g, '2026-12-01'::timestamp + g * interval '1 second', \
         repeat('a', 100) FROM generate_series(1, 40000) g;",
    );
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse.duckdb");
    let url = server.url(&db, "");
    replicate_ok(pg_replicate(&url, &warehouse));
    let first = duck_one(&warehouse, "SELECT bookmark FROM _pg_replicate.bookmarks");
    server.psql(
        &db,
        "UPDATE salesforce.big SET payload = repeat('b', 100), \
         systemmodstamp = systemmodstamp + interval '30 days'",
    );
    let mut outcomes = Vec::new();
    for delay_ms in [100, 300, 600, 1000, 1500, 2500] {
        let mut command = pg_replicate(&url, &warehouse);
        command.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = command.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        child.wait().unwrap();
        let state = duck_one(
            &warehouse,
            "SELECT (SELECT bookmark FROM _pg_replicate.bookmarks), count(*), \
             count(*) FILTER (WHERE payload LIKE 'b%') FROM orgm.big",
        );
        let (bookmark, rest) = state.split_once('|').unwrap();
        // Either nothing of the second run, or all of it.
        if bookmark == first {
            assert_eq!(rest, "40000|0", "killed after {delay_ms} ms: {state}");
        } else {
            assert_eq!(rest, "40000|40000", "killed after {delay_ms} ms: {state}");
        }
        outcomes.push(bookmark == first);
    }
    let report = replicate_ok(pg_replicate(&url, &warehouse));
    let big = entry(&report, "salesforce.big");
    assert_eq!(
        duck_one(
            &warehouse,
            "SELECT count(*), count(*) FILTER (WHERE payload LIKE 'b%') FROM orgm.big"
        ),
        "40000|40000",
        "{big}"
    );
    assert!(
        outcomes.iter().any(|untouched| *untouched),
        "no kill landed before the commit: {outcomes:?}"
    );
}

/// Stitch never sees a row deleted at the source. Reconciliation compares the keys bucket by
/// bucket and marks the rows gone (`_deleted_at`) or deletes them, per table; it runs as often
/// as the catalog says (here: daily, the built-in, so not on the next run), every run, or when
/// `--reconcile` asks. A marked row the source has again is unmarked by the merge, and
/// Heroku Connect's `isdeleted` travels like any column.
#[test]
fn hard_deletes_are_found_by_reconciling_keys_and_marked_or_deleted_per_table() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let table = |name: &str| {
        format!(
            "CREATE TABLE salesforce.{name} (sfid varchar(18) PRIMARY KEY, name text, \
             isdeleted boolean NOT NULL DEFAULT false, systemmodstamp timestamp); \
             INSERT INTO salesforce.{name} SELECT '003' || lpad(i::text, 15, '0'), 'n' || i, \
             false, timestamp '2026-12-01' + i * interval '1 second' \
             FROM generate_series(1, 2000) i;"
        )
    };
    let db = database(
        server,
        "deletes",
        &format!("{} {}", table("contact"), table("lead")),
    );
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse.duckdb");
    let catalog = dir.path().join("catalog.yml");
    std::fs::write(
        &catalog,
        "tables:\n  salesforce.lead:\n    hard_deletes: delete\n",
    )
    .unwrap();
    let url = server.url(&db, "");
    let replicate = || {
        let mut command = pg_replicate(&url, &warehouse);
        command.env("PG_REPLICATE_CATALOG", &catalog);
        command
    };
    let first = replicate_ok(replicate());
    assert_eq!(entry(&first, "salesforce.contact")["mode"], "full");
    assert_eq!(
        entry(&first, "salesforce.contact")["reconciliation"],
        Value::Null
    );
    let gone = [
        "003000000000000007",
        "003000000000001500",
        "003000000000001999",
    ];
    let gone_list = gone.map(|k| format!("'{k}'")).join(", ");
    server.psql(
        &db,
        &format!(
            "DELETE FROM salesforce.contact WHERE sfid IN ({gone_list}); \
             DELETE FROM salesforce.lead WHERE sfid IN ({gone_list}); \
             UPDATE salesforce.contact SET isdeleted = true, systemmodstamp = now() \
             WHERE sfid = '003000000000000042';"
        ),
    );

    // Daily: the full copy a moment ago counts as a reconciliation, so none is due yet.
    let report = replicate_ok(replicate());
    let contact = entry(&report, "salesforce.contact");
    assert_eq!(contact["mode"], "incremental", "{contact}");
    assert_eq!(contact["reconciliation"], Value::Null, "{contact}");
    assert_eq!(contact["updated"], 1, "{contact}");
    assert_eq!(
        duck_one(&warehouse, "SELECT count(*) FROM orgm.lead"),
        "2000"
    );
    assert_eq!(
        duck_one(
            &warehouse,
            "SELECT isdeleted FROM orgm.contact WHERE sfid = '003000000000000042'"
        ),
        "true"
    );

    let mut command = replicate();
    command.args(["--reconcile", "contact", "--reconcile", "salesforce.lead"]);
    let report = replicate_ok(command);
    let started_at = report["started_at"].as_str().unwrap().to_owned();
    for (table, policy) in [
        ("salesforce.contact", "mark"),
        ("salesforce.lead", "delete"),
    ] {
        let found = &entry(&report, table)["reconciliation"];
        assert_eq!(found["hard_deletes"], policy, "{found}");
        assert_eq!(found["rows_deleted_at_source"], 3, "{found}");
        assert_eq!(found["source_rows"], 1997, "{found}");
        assert_eq!(found["warehouse_rows"], 2000, "{found}");
        assert_eq!(found["buckets"], 63, "{found}");
        let differing = found["buckets_differing"].as_u64().unwrap();
        assert!((1..=3).contains(&differing), "{found}");
        // Only the differing buckets' keys: about 32 a bucket, never the table's 2000.
        let keys_read = found["keys_read"].as_u64().unwrap();
        assert!(keys_read > 0 && keys_read <= 3 * 80, "{found}");
    }
    assert_eq!(
        duck(
            &warehouse,
            "SELECT sfid FROM orgm.contact WHERE _deleted_at IS NOT NULL ORDER BY sfid"
        ),
        gone
    );
    // The mark is the start of the run that found the row gone.
    let marked_at = duck_one(
        &warehouse,
        "SELECT DISTINCT strftime(_deleted_at, '%Y-%m-%dT%H:%M:%S') FROM orgm.contact \
         WHERE _deleted_at IS NOT NULL",
    );
    assert!(
        started_at.starts_with(&marked_at),
        "{marked_at} {started_at}"
    );
    assert_eq!(
        duck_one(&warehouse, "SELECT count(*) FROM orgm.contact"),
        "2000"
    );
    assert_eq!(
        duck(&warehouse, "SELECT sfid FROM orgm.lead ORDER BY sfid"),
        pg_rows(
            server,
            &db,
            "SELECT sfid FROM salesforce.lead ORDER BY sfid"
        )
    );
    assert!(
        !duck(
            &warehouse,
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'lead'"
        )
        .contains(&"_deleted_at".to_owned()),
        "hard_deletes: delete adds no _deleted_at"
    );

    // The row comes back at the source: the merge writes it and clears the mark. Nothing else
    // differs now, so a reconciliation reads no key.
    server.psql(
        &db,
        "INSERT INTO salesforce.contact VALUES ('003000000000000007', 'back', false, now())",
    );
    let mut command = replicate();
    command.args(["--reconcile", "contact"]);
    let report = replicate_ok(command);
    let contact = entry(&report, "salesforce.contact");
    assert_eq!(contact["updated"], 1, "{contact}");
    assert_eq!(
        contact["reconciliation"]["buckets_differing"], 0,
        "{contact}"
    );
    assert_eq!(contact["reconciliation"]["keys_read"], 0, "{contact}");
    assert_eq!(
        duck(
            &warehouse,
            "SELECT name, _deleted_at IS NULL FROM orgm.contact WHERE sfid = '003000000000000007'"
        ),
        ["back|true"]
    );

    // reconcile: every_run needs no flag.
    std::fs::write(
        &catalog,
        "tables:\n  salesforce.lead:\n    hard_deletes: delete\n    reconcile: every_run\n",
    )
    .unwrap();
    server.psql(
        &db,
        "DELETE FROM salesforce.lead WHERE sfid = '003000000000000100'",
    );
    let report = replicate_ok(replicate());
    assert_eq!(
        entry(&report, "salesforce.lead")["reconciliation"]["rows_deleted_at_source"],
        1
    );
    assert_eq!(
        entry(&report, "salesforce.contact")["reconciliation"],
        Value::Null
    );
    assert_eq!(
        duck_one(&warehouse, "SELECT count(*) FROM orgm.lead"),
        "1996"
    );
}

/// The keys of the buckets that differ, and no others, travel: a table of 20000 rows keyed on
/// every kind of column reconciliation accepts (the warehouse must render each exactly as
/// Postgres does, or every bucket would differ) loses 10 rows; the summaries and at most ten
/// buckets' keys are read. A key that renders differently is refused before anything is read.
#[test]
fn reconciliation_reads_only_the_keys_of_the_buckets_that_differ() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let db = database(
        server,
        "buckets",
        "CREATE TABLE salesforce.event (id integer, code varchar(10), day date, \
         at timestamp, u uuid, amount numeric(10,2), big bigint, body text, \
         systemmodstamp timestamp, PRIMARY KEY (id, code, day, at, u, amount, big)); \
         INSERT INTO salesforce.event SELECT i, 'c' || (i % 7), date '2026-01-01' + (i % 300), \
         timestamp '2026-01-01 00:00:00.123456' + i * interval '1.5 second', \
         md5(i::text)::uuid, i / 100.0, i * 10000000000, repeat('b', 200), \
         timestamp '2026-12-01' FROM generate_series(1, 20000) i; \
         CREATE TABLE salesforce.flag (on_ boolean PRIMARY KEY, systemmodstamp timestamp);",
    );
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse.duckdb");
    let catalog = dir.path().join("catalog.yml");
    std::fs::write(
        &catalog,
        "tables:\n  salesforce.flag:\n    reconcile: off\n",
    )
    .unwrap();
    let url = server.url(&db, "");
    let mut command = pg_replicate(&url, &warehouse);
    command.env("PG_REPLICATE_CATALOG", &catalog);
    replicate_ok(command);

    // In step: every bucket matches, so no key is read.
    let mut command = pg_replicate(&url, &warehouse);
    command
        .env("PG_REPLICATE_CATALOG", &catalog)
        .args(["event", "--reconcile", "event"]);
    let report = replicate_ok(command);
    let found = &entry(&report, "salesforce.event")["reconciliation"];
    assert_eq!(found["buckets"], 625, "{found}");
    assert_eq!(found["buckets_differing"], 0, "{found}");
    assert_eq!(found["keys_read"], 0, "{found}");
    let summaries_bytes = found["bytes_read"].as_u64().unwrap();

    server.psql(
        &db,
        "DELETE FROM salesforce.event WHERE id IN (1, 999, 2500, 4000, 7777, 10000, 12345, \
         15000, 18000, 20000)",
    );
    let mut command = pg_replicate(&url, &warehouse);
    command
        .env("PG_REPLICATE_CATALOG", &catalog)
        .args(["event", "--reconcile", "event"]);
    let report = replicate_ok(command);
    let found = &entry(&report, "salesforce.event")["reconciliation"];
    assert_eq!(found["rows_deleted_at_source"], 10, "{found}");
    let differing = found["buckets_differing"].as_u64().unwrap();
    assert!((1..=10).contains(&differing), "{found}");
    let keys_read = found["keys_read"].as_u64().unwrap();
    // About 32 keys a bucket: a few percent of the table's 20000 keys.
    assert!(keys_read <= differing * 80, "{found}");
    assert!(keys_read < 20000 / 20, "{found}");
    let all_keys_bytes: u64 = pg_rows(
        server,
        &db,
        "SELECT sum(length(concat_ws(',', id, code, day, at, u, amount, big)) + 1) \
         FROM salesforce.event",
    )[0]
    .parse()
    .unwrap();
    let bytes_read = found["bytes_read"].as_u64().unwrap();
    assert!(
        bytes_read < summaries_bytes + all_keys_bytes / 10,
        "{bytes_read} bytes read; all keys are {all_keys_bytes}: {found}"
    );
    assert_eq!(
        duck(
            &warehouse,
            "SELECT id FROM orgm.event WHERE _deleted_at IS NOT NULL ORDER BY id"
        ),
        [
            "1", "999", "2500", "4000", "7777", "10000", "12345", "15000", "18000", "20000"
        ]
    );

    // A boolean key renders 't' in Postgres and 'true' in the warehouse: refused, named.
    let mut command = pg_replicate(&url, &warehouse);
    command
        .env("PG_REPLICATE_CATALOG", &catalog)
        .args(["flag", "--reconcile", "flag"]);
    let out = run(command);
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_contains(
        entry(&report, "salesforce.flag")["error"].as_str().unwrap(),
        &["the primary key column on_ is boolean", "reconcile: off"],
    );
}
