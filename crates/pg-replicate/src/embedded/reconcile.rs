//! Bucketed key reconciliation (`crate::reconcile`) on the embedded warehouse: DuckDB sums its
//! own keys into the buckets and compares them with the source's summaries in one query, then
//! marks or deletes the rows gone in one transaction.

use std::sync::atomic::{AtomicBool, Ordering};

use duckdb::{Connection, params};
use warehouse::{WarehouseError, sql_literal};

use super::{batch_select, query_error};
use crate::catalog::HardDeletes;
use crate::reconcile::{Applied, Apply, DELETED_AT, HASH_MODULUS, Target};
use crate::types::{ColumnPlan, quote};

/// The text of a key in the warehouse: the same as Postgres's for the types `key_problem` lets
/// through.
fn warehouse_key_text(key: &[ColumnPlan]) -> String {
    let parts: Vec<String> = key
        .iter()
        .map(|c| format!("CAST({} AS VARCHAR)", quote(&c.name)))
        .collect();
    format!("concat_ws(chr(31), {})", parts.join(", "))
}

/// The warehouse's bucket of a row, and the part of its hash that is summed.
fn warehouse_bucket(key: &[ColumnPlan], buckets: u64) -> String {
    format!(
        "CAST('0x' || substr(md5({}), 9, 8) AS BIGINT) % {buckets}",
        warehouse_key_text(key)
    )
}

impl Target {
    fn live(&self, marked: bool) -> &'static str {
        if marked {
            "_deleted_at IS NULL"
        } else {
            "true"
        }
    }
}

/// Whether the table has [`DELETED_AT`], and how many rows it holds that are not marked.
pub fn live_rows(connection: &Connection, target: &Target) -> Result<(bool, u64), WarehouseError> {
    let marked = has_deleted_at(connection, target)?;
    let rows: i64 = connection
        .query_row(
            &format!(
                "SELECT count(*) FROM {} WHERE {}",
                target.name,
                target.live(marked)
            ),
            [],
            |row| row.get(0),
        )
        .map_err(query_error("counting the table's rows"))?;
    Ok((marked, u64::try_from(rows).unwrap_or(0)))
}

fn has_deleted_at(connection: &Connection, target: &Target) -> Result<bool, WarehouseError> {
    connection
        .query_row(
            "SELECT count(*) > 0 FROM information_schema.columns \
             WHERE table_schema = ? AND table_name = ? AND column_name = ?",
            params![target.schema, target.table, DELETED_AT],
            |row| row.get(0),
        )
        .map_err(query_error("reading the table's columns"))
}

/// Compares the source's summaries (`summary_spool`, the COPY of [`source_summary_sql`]) with
/// The table's bucket summaries, `(bucket, count, hash sum)` over its live rows: the numbers
/// Postgres computes for the same keys (`reconcile::source_summary_sql`), compared with them
/// by `reconcile::differing_buckets`.
pub fn summaries(
    connection: &Connection,
    target: &Target,
    marked: bool,
    buckets: u64,
) -> Result<Vec<(u64, u64, u64)>, WarehouseError> {
    let sql = format!(
        "SELECT CAST(b AS BIGINT), count(*), CAST(sum(x) % {HASH_MODULUS} AS BIGINT) FROM \
           (SELECT {bucket} AS b, CAST('0x' || substr(md5({text}), 1, 8) AS BIGINT) AS x \
            FROM {table} WHERE {live}) GROUP BY b",
        bucket = warehouse_bucket(&target.key, buckets),
        text = warehouse_key_text(&target.key),
        table = target.name,
        live = target.live(marked),
    );
    let fail = query_error("summing the table's keys");
    let mut statement = connection.prepare(&sql).map_err(&fail)?;
    let number = |n: i64| u64::try_from(n).unwrap_or(0);
    statement
        .query_map([], |row| {
            Ok((
                number(row.get(0)?),
                number(row.get(1)?),
                number(row.get(2)?),
            ))
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(&fail)
}

/// Marks or deletes the rows of the differing buckets whose keys the source no longer has, and
/// stamps the bookmark, in one transaction.
pub fn apply(
    connection: &mut Connection,
    plan: &Apply,
    interrupted: &AtomicBool,
) -> Result<Applied, WarehouseError> {
    let transaction = connection.transaction().map_err(query_error("BEGIN"))?;
    if plan.hard_deletes == HardDeletes::Mark {
        transaction
            .execute_batch(&format!(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {DELETED_AT} TIMESTAMP;",
                plan.target.name
            ))
            .map_err(query_error("adding _deleted_at"))?;
    }
    let stamp = format!("TIMESTAMP {}", sql_literal(&plan.reconciled_at));
    let applied = if plan.differing.as_ref().is_some_and(Vec::is_empty) {
        Applied {
            keys_read: 0,
            rows_gone: 0,
        }
    } else {
        remove_gone(&transaction, plan, &stamp)?
    };
    transaction
        .execute(
            &format!(
                "UPDATE _pg_replicate.bookmarks SET reconciled_at = {stamp} WHERE source_table = ?"
            ),
            params![plan.source_table],
        )
        .map_err(query_error("saving the reconciliation's time"))?;
    // DuckDB forgets an interrupt that comes between statements: checked before the commit.
    if interrupted.load(Ordering::SeqCst) {
        return Err(WarehouseError::Interrupted);
    }
    transaction.commit().map_err(query_error("COMMIT"))?;
    Ok(applied)
}

/// Marks or deletes the rows of the differing buckets whose keys the keys spool lacks.
fn remove_gone(
    transaction: &duckdb::Transaction<'_>,
    plan: &Apply,
    stamp: &str,
) -> Result<Applied, WarehouseError> {
    let target = &plan.target;
    let marked = has_deleted_at(transaction, target)?;
    transaction
        .execute_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE _source_keys AS {};",
            batch_select(&target.key, &plan.keys_spool)
        ))
        .map_err(query_error("reading the source's keys from the spool"))?;
    let keys_read: i64 = transaction
        .query_row("SELECT count(*) FROM _source_keys", [], |row| row.get(0))
        .map_err(query_error("counting the source's keys"))?;
    let in_buckets = match &plan.differing {
        None => "true".to_owned(),
        Some(list) => {
            let list: Vec<String> = list.iter().map(u64::to_string).collect();
            format!(
                "{} IN ({})",
                warehouse_bucket(&target.key, plan.buckets),
                list.join(", ")
            )
        }
    };
    let matches: Vec<String> = target
        .key
        .iter()
        .map(|c| format!("s.{0} = t.{0}", quote(&c.name)))
        .collect();
    let columns: Vec<String> = target.key.iter().map(|c| quote(&c.name)).collect();
    transaction
        .execute_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE _gone AS SELECT {columns} FROM {table} t \
             WHERE {live} AND {in_buckets} \
             AND NOT EXISTS (SELECT 1 FROM _source_keys s WHERE {matches});",
            columns = columns.join(", "),
            table = target.name,
            live = target.live(marked),
            matches = matches.join(" AND "),
        ))
        .map_err(query_error("finding the rows the source no longer has"))?;
    let gone_matches: Vec<String> = target
        .key
        .iter()
        .map(|c| format!("{}.{1} = g.{1}", target.name, quote(&c.name)))
        .collect();
    let statement = match plan.hard_deletes {
        HardDeletes::Mark => format!(
            "UPDATE {} SET {DELETED_AT} = {stamp} FROM _gone g WHERE {}",
            target.name,
            gone_matches.join(" AND ")
        ),
        HardDeletes::Delete => format!(
            "DELETE FROM {} USING _gone g WHERE {}",
            target.name,
            gone_matches.join(" AND ")
        ),
    };
    let rows_gone = transaction
        .execute(&statement, [])
        .map_err(query_error("applying the hard deletes"))?;
    transaction
        .execute_batch("DROP TABLE _source_keys; DROP TABLE _gone;")
        .map_err(query_error("dropping the work tables"))?;
    Ok(Applied {
        keys_read: u64::try_from(keys_read).unwrap_or(0),
        rows_gone: rows_gone as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::{buckets_for, differing_buckets, worth_listing};
    use crate::types::plan;

    /// DuckDB computes the buckets and sums Postgres does (checked against Postgres in the
    /// suite); here, that the warehouse side finds exactly the bucket of a key it lacks.
    #[test]
    fn the_comparison_finds_the_buckets_whose_keys_differ() {
        let dir = tempfile::tempdir().unwrap();
        let connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch(
                "CREATE SCHEMA orgm; CREATE TABLE orgm.account AS \
                 SELECT 'a' || i AS sfid FROM range(100) t(i);",
            )
            .unwrap();
        let target = Target {
            name: "\"orgm\".\"account\"".into(),
            schema: "orgm".into(),
            table: "account".into(),
            key: vec![plan("sfid", "character varying(18)")],
        };
        let buckets = buckets_for(100);
        // The source's summaries, as the warehouse would compute them with one key less.
        let spool = dir.path().join("summary.csv");
        connection
            .execute_batch(&format!(
                "COPY (SELECT {bucket} AS b, count(*), sum(CAST('0x' || substr(md5(sfid), 1, 8) \
                 AS BIGINT)) % {HASH_MODULUS} FROM orgm.account WHERE sfid <> 'a7' GROUP BY b) \
                 TO '{}' (HEADER false);",
                spool.display(),
                bucket = warehouse_bucket(&target.key, buckets),
            ))
            .unwrap();
        let compared = differing_buckets(
            &spool,
            summaries(&connection, &target, false, buckets).unwrap(),
        )
        .unwrap();
        let a7_bucket: i64 = connection
            .query_row(
                &format!(
                    "SELECT {} FROM orgm.account WHERE sfid = 'a7'",
                    warehouse_bucket(&target.key, buckets)
                ),
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(compared.differing, [a7_bucket as u64]);
        assert_eq!(compared.source_rows, 99);
        assert!(worth_listing(&compared.differing, buckets));
    }
}
