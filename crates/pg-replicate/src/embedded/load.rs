//! Loading a spooled table into the embedded warehouse. Everything a table's load changes (its
//! rows and its bookmark) commits in one DuckDB transaction: a run killed at any point leaves the table and its
//! bookmark as the last committed run left them, and the next run resumes from there.
//!
//! - A full copy (first run, new columns, `--reload`) builds the table anew with
//!   `CREATE OR REPLACE TABLE … AS` inside the transaction: readers see the old table until the
//!   commit, then the new one, never an empty or half-filled one.
//! - An incremental load keeps the rows that differ from what the table holds (`EXCEPT`), then
//!   MERGEs them on the primary key: re-read rows that did not change touch nothing, so that
//!   re-reads (the lookback, ties on the bookmark, NULL keys) are idempotent.

use std::sync::atomic::{AtomicBool, Ordering};

use duckdb::{Connection, OptionalExt, params};
use warehouse::{WarehouseError, sql_literal};

use super::{batch_select, query_error};
use crate::load::{Backfill, LoadPlan, Loaded, REPLICATED_AT, check_primary_key};
use crate::reconcile::DELETED_AT;
use crate::types::quote;

/// Loads `plan.spool` in one transaction; rolls back (by dropping it) on any failure, and when
/// `interrupted` is set before the commit.
pub fn load(
    connection: &mut Connection,
    plan: &LoadPlan,
    interrupted: &AtomicBool,
) -> Result<Loaded, WarehouseError> {
    let transaction = connection.transaction().map_err(query_error("BEGIN"))?;
    let target = format!(
        "{}.{}",
        quote(&plan.target_schema),
        quote(&plan.target_table)
    );
    let names: Vec<String> = plan.columns.iter().map(|c| quote(&c.name)).collect();
    let key = quote(&plan.replication_key);
    let key_type = &plan
        .columns
        .iter()
        .find(|c| c.name == plan.replication_key)
        .expect("the replication key is one of the columns")
        .target_type;

    let stamp = format!("TIMESTAMP {}", sql_literal(&plan.replicated_at));
    // A full copy streams the spool into the new table itself, which DuckDB writes out as it
    // goes: a temporary table of every row would hold the whole table in memory (a 4M-row
    // table ran out of a 1 GB limit). The rows read are counted and checked there, before the
    // commit. An incremental load's batch is the changed rows, merged from a temporary table.
    let batch = if plan.full {
        let deleted_at = if plan.marks_deletes {
            format!(", CAST(NULL AS TIMESTAMP) AS {DELETED_AT}")
        } else {
            String::new()
        };
        format!(
            "SET preserve_insertion_order = false; \
             CREATE SCHEMA IF NOT EXISTS {schema}; \
             CREATE OR REPLACE TABLE {target} AS \
             SELECT *, {stamp} AS {REPLICATED_AT}{deleted_at} FROM ({select});",
            schema = quote(&plan.target_schema),
            select = batch_select(plan.columns.as_slice(), &plan.spool),
        )
    } else {
        format!(
            "CREATE OR REPLACE TEMP TABLE _batch AS {};",
            batch_select(plan.columns.as_slice(), &plan.spool)
        )
    };
    transaction
        .execute_batch(&batch)
        .map_err(|e| WarehouseError::Query {
            what: format!("reading the rows of {} from the spool", plan.source_table),
            message: e.to_string(),
        })?;
    let read = if plan.full { target.as_str() } else { "_batch" };

    let pk: Vec<String> = plan.primary_key.iter().map(|c| quote(c)).collect();
    let pk_list = pk.join(", ");
    let (rows_read, null_key_rows, distinct_keys, null_primary_keys, greatest): (
        i64,
        i64,
        i64,
        i64,
        Option<String>,
    ) = transaction
        .query_row(
            &format!(
                "SELECT count(*), count(*) FILTER (WHERE {key} IS NULL), \
                 count(DISTINCT ({pk_list})), \
                 count(*) FILTER (WHERE {}), \
                 CAST(greatest(max({key}), CAST({} AS {key_type})) AS VARCHAR) FROM {read}",
                pk.iter()
                    .map(|c| format!("{c} IS NULL"))
                    .collect::<Vec<_>>()
                    .join(" OR "),
                plan.previous
                    .as_deref()
                    .map(sql_literal)
                    .unwrap_or_else(|| "NULL".to_owned()),
            ),
            [],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            },
        )
        .map_err(query_error("counting the rows read"))?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    check_primary_key(
        plan,
        count(rows_read),
        count(distinct_keys),
        count(null_primary_keys),
    )?;

    let mut dropped: Vec<String> = Vec::new();
    let mut backfilled: i64 = 0;
    let (inserted, updated) = if plan.full {
        (rows_read, 0)
    } else {
        if let Some(backfill) = &plan.backfill {
            backfilled = add_and_backfill(&transaction, &target, plan, backfill)?;
        }
        for (column, target_type) in &plan.widen {
            transaction
                .execute_batch(&format!(
                    "ALTER TABLE {target} ALTER COLUMN {} SET DATA TYPE {target_type};",
                    quote(column)
                ))
                .map_err(query_error("widening a column"))?;
        }
        let columns = names.join(", ");
        // The table's columns the source dropped: kept, and NULL in every row this load writes.
        let mut statement = transaction
            .prepare(
                "SELECT column_name FROM information_schema.columns \
                 WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            )
            .map_err(query_error("reading the table's columns"))?;
        let existing: Vec<String> = statement
            .query_map(params![plan.target_schema, plan.target_table], |row| {
                row.get::<_, String>(0)
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(query_error("reading the table's columns"))?;
        drop(statement);
        // A row marked deleted that the source has again is written, and unmarked.
        let marked = existing.iter().any(|c| c == DELETED_AT);
        dropped = existing
            .into_iter()
            .filter(|c| {
                c != REPLICATED_AT && c != DELETED_AT && !plan.columns.iter().any(|p| &p.name == c)
            })
            .collect();
        let live = if marked {
            format!(" AND {DELETED_AT} IS NULL")
        } else {
            String::new()
        };
        // Only the table's rows with a key read take part: a row equal to one read has its key,
        // and the comparison then hashes the batch, not the whole table (a 1M-row table's
        // merge of 10k rows took 460 MB and 0.4 s before).
        let read_keys = pk
            .iter()
            .map(|c| format!("t.{c} = b.{c}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        transaction
            .execute_batch(&format!(
                "CREATE OR REPLACE TEMP TABLE _changed AS \
                 SELECT {columns} FROM _batch EXCEPT SELECT {columns} FROM {target} t \
                 WHERE EXISTS (SELECT 1 FROM _batch b WHERE {read_keys}){live};"
            ))
            .map_err(query_error("comparing the rows read with the table"))?;
        let matches = pk
            .iter()
            .map(|c| format!("t.{c} = c.{c}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let (changed, inserted): (i64, i64) = transaction
            .query_row(
                &format!(
                    "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS \
                     (SELECT 1 FROM {target} t WHERE {matches})) FROM _changed c"
                ),
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map_err(query_error("counting the changed rows"))?;
        let set: Vec<String> = names
            .iter()
            .map(|c| format!("{c} = c.{c}"))
            .chain(dropped.iter().map(|c| format!("{} = NULL", quote(c))))
            .chain(marked.then(|| format!("{DELETED_AT} = NULL")))
            .chain([format!("{REPLICATED_AT} = {stamp}")])
            .collect();
        let values: Vec<String> = names.iter().map(|c| format!("c.{c}")).collect();
        transaction
            .execute_batch(&format!(
                "MERGE INTO {target} t USING _changed c ON ({matches}) \
                 WHEN MATCHED THEN UPDATE SET {set} \
                 WHEN NOT MATCHED THEN INSERT ({columns}, {REPLICATED_AT}) VALUES ({values}, {stamp});",
                set = set.join(", "),
                values = values.join(", "),
            ))
            .map_err(query_error("merging the changed rows"))?;
        (inserted, changed - inserted)
    };

    // A full copy holds exactly the source's rows: it counts as a reconciliation.
    let reconciled_at: Option<String> = if plan.full {
        Some(plan.replicated_at.clone())
    } else {
        transaction
            .query_row(
                "SELECT CAST(reconciled_at AS VARCHAR) FROM _pg_replicate.bookmarks \
                 WHERE source_table = ?",
                params![plan.source_table],
                |row| row.get(0),
            )
            .optional()
            .map_err(query_error("reading the bookmark"))?
            .flatten()
    };
    transaction
        .execute(
            "DELETE FROM _pg_replicate.bookmarks WHERE source_table = ?",
            params![plan.source_table],
        )
        .map_err(query_error("saving the bookmark"))?;
    transaction
        .execute(
            &format!(
                "INSERT INTO _pg_replicate.bookmarks (source_table, target_table, \
                 replication_key, bookmark, columns_signature, replicated_at, reconciled_at) \
                 VALUES (?, ?, ?, ?, ?, {stamp}, CAST(? AS TIMESTAMP))"
            ),
            params![
                plan.source_table,
                format!("{}.{}", plan.target_schema, plan.target_table),
                plan.replication_key,
                greatest,
                plan.signature,
                reconciled_at,
            ],
        )
        .map_err(query_error("saving the bookmark"))?;
    transaction
        .execute_batch("DROP TABLE IF EXISTS _batch; DROP TABLE IF EXISTS _changed;")
        .map_err(query_error("dropping the work tables"))?;
    // DuckDB forgets an interrupt that comes between statements: checked before the commit.
    if interrupted.load(Ordering::SeqCst) {
        return Err(WarehouseError::Interrupted);
    }
    transaction.commit().map_err(query_error("COMMIT"))?;
    Ok(Loaded {
        rows_read: count(rows_read),
        inserted: count(inserted),
        updated: count(updated),
        null_key_rows: count(null_key_rows),
        bookmark: greatest,
        columns_dropped: dropped,
        rows_backfilled: count(backfilled),
    })
}

/// Adds the new columns to the table and fills them in from the backfill's spool, matching rows
/// on the primary key; the count of rows filled in.
fn add_and_backfill(
    transaction: &duckdb::Transaction<'_>,
    target: &str,
    plan: &LoadPlan,
    backfill: &Backfill,
) -> Result<i64, WarehouseError> {
    for name in &backfill.added {
        let column = backfill
            .columns
            .iter()
            .find(|c| &c.name == name)
            .expect("a new column is among the backfill's");
        transaction
            .execute_batch(&format!(
                "ALTER TABLE {target} ADD COLUMN {} {};",
                quote(name),
                column.target_type
            ))
            .map_err(query_error("adding a new column"))?;
    }
    transaction
        .execute_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE _backfill AS {};",
            batch_select(&backfill.columns, &backfill.spool)
        ))
        .map_err(|e| WarehouseError::Query {
            what: format!(
                "reading the new columns of {} from the spool",
                plan.source_table
            ),
            message: e.to_string(),
        })?;
    let set: Vec<String> = backfill
        .added
        .iter()
        .map(|c| format!("{0} = b.{0}", quote(c)))
        .collect();
    let matches: Vec<String> = plan
        .primary_key
        .iter()
        .map(|c| format!("{target}.{0} = b.{0}", quote(c)))
        .collect();
    let filled = transaction
        .execute(
            &format!(
                "UPDATE {target} SET {} FROM _backfill b WHERE {}",
                set.join(", "),
                matches.join(" AND ")
            ),
            [],
        )
        .map_err(query_error("filling in the new columns"))?;
    transaction
        .execute_batch("DROP TABLE _backfill;")
        .map_err(query_error("dropping the work tables"))?;
    Ok(filled as i64)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::embedded::{SETUP_SQL, read_bookmark};
    use crate::types::plan;

    fn load_plan(spool: &Path, full: bool, previous: Option<&str>) -> LoadPlan {
        LoadPlan {
            source_table: "salesforce.account".into(),
            target_schema: "orgm".into(),
            target_table: "account".into(),
            columns: vec![
                plan("id", "integer"),
                plan("systemmodstamp", "timestamp without time zone"),
                plan("name", "text"),
            ],
            primary_key: vec!["id".into()],
            replication_key: "systemmodstamp".into(),
            signature: "sig".into(),
            spool: spool.to_owned(),
            full,
            marks_deletes: false,
            widen: Vec::new(),
            backfill: None,
            previous: previous.map(str::to_owned),
            replicated_at: "2026-12-05 10:00:00.000000".into(),
        }
    }

    fn warehouse(dir: &Path) -> Connection {
        let connection = Connection::open(dir.join("w.duckdb")).unwrap();
        connection.execute_batch(SETUP_SQL).unwrap();
        connection
    }

    fn rows(connection: &Connection) -> Vec<(i32, Option<String>)> {
        let mut statement = connection
            .prepare("SELECT id, name FROM orgm.account ORDER BY id")
            .unwrap();
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_full_copy_then_a_merge_counts_what_changed_and_keeps_the_greatest_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = warehouse(dir.path());
        let spool = dir.path().join("spool.csv");
        let not_interrupted = AtomicBool::new(false);
        // Postgres's CSV: NULL is an empty field, an empty string is "".
        std::fs::write(
            &spool,
            "1,2026-12-01 10:00:00,a\n2,,\"\"\n4,2026-12-01 09:00:00,\n",
        )
        .unwrap();
        let loaded = load(
            &mut connection,
            &load_plan(&spool, true, None),
            &not_interrupted,
        )
        .unwrap();
        assert_eq!(
            loaded,
            Loaded {
                rows_read: 3,
                inserted: 3,
                updated: 0,
                null_key_rows: 1,
                bookmark: Some("2026-12-01 10:00:00".into()),
                columns_dropped: Vec::new(),
                rows_backfilled: 0,
            }
        );
        assert_eq!(
            rows(&connection),
            [(1, Some("a".into())), (2, Some(String::new())), (4, None)]
        );

        // A re-read of row 1 (unchanged), row 2 changed, row 3 new with an older key.
        std::fs::write(
            &spool,
            "1,2026-12-01 10:00:00,a\n2,,b\n3,2026-12-01 09:30:00,c\n",
        )
        .unwrap();
        let plan = load_plan(&spool, false, Some("2026-12-01 10:00:00"));
        let loaded = load(&mut connection, &plan, &not_interrupted).unwrap();
        assert_eq!((loaded.inserted, loaded.updated), (1, 1));
        assert_eq!(loaded.bookmark.as_deref(), Some("2026-12-01 10:00:00"));
        assert_eq!(
            rows(&connection),
            [
                (1, Some("a".into())),
                (2, Some("b".into())),
                (3, Some("c".into())),
                (4, None)
            ]
        );
        let bookmark = read_bookmark(&connection, "salesforce.account", "orgm", "account")
            .unwrap()
            .unwrap();
        assert_eq!(bookmark.value.as_deref(), Some("2026-12-01 10:00:00"));
        assert!(bookmark.target_exists);
    }

    /// The work directory is the user's: a name DuckDB would expand as a glob (`w*`) must not
    /// also read a neighbour's file of the same name.
    #[test]
    fn a_spool_whose_path_looks_like_a_glob_is_read_as_itself() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = warehouse(dir.path());
        for (work, row) in [
            ("w*", "1,2026-12-01 10:00:00,a\n"),
            ("wx", "2,2026-12-01 10:00:00,b\n"),
        ] {
            std::fs::create_dir(dir.path().join(work)).unwrap();
            std::fs::write(dir.path().join(work).join("spool.csv"), row).unwrap();
        }
        let spool = dir.path().join("w*").join("spool.csv");
        let loaded = load(
            &mut connection,
            &load_plan(&spool, true, None),
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(loaded.rows_read, 1);
        assert_eq!(rows(&connection), [(1, Some("a".into()))]);
    }

    #[test]
    fn an_interrupted_load_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = warehouse(dir.path());
        let spool = dir.path().join("spool.csv");
        std::fs::write(&spool, "1,2026-12-01 10:00:00,a\n").unwrap();
        let interrupted = AtomicBool::new(true);
        let err = load(
            &mut connection,
            &load_plan(&spool, true, None),
            &interrupted,
        )
        .unwrap_err();
        assert!(matches!(err, WarehouseError::Interrupted), "{err}");
        assert_eq!(
            read_bookmark(&connection, "salesforce.account", "orgm", "account").unwrap(),
            None
        );
    }

    #[test]
    fn a_primary_key_that_is_not_unique_fails_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = warehouse(dir.path());
        let spool = dir.path().join("spool.csv");
        std::fs::write(&spool, "1,2026-12-01 10:00:00,a\n1,2026-12-01 10:00:00,b\n").unwrap();
        let err = load(
            &mut connection,
            &load_plan(&spool, true, None),
            &AtomicBool::new(false),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("the primary key (id) is not unique"),
            "{err}"
        );
    }
}
