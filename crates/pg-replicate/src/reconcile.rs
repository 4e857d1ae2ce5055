//! Finding hard deletes without CDC: bucketed key reconciliation.
//!
//! A row deleted at the source leaves no trace a replication key can show. So, as often as the
//! catalog says, the table's keys are compared with the warehouse's, cheaply:
//!
//! 1. Each side hashes every key (`md5` of the key's text, the columns joined by `chr(31)`), puts
//!    it in one of `buckets` buckets by its hash, and sums per bucket the count and a 32-bit part
//!    of the hash (modulo 2³²). Postgres and the warehouse compute the same numbers from the same
//!    text, so a bucket whose keys match has the same count and sum on both sides.
//! 2. Both sides sum at the same time. The source's bucket summaries (a few bytes per 32 keys)
//!    travel to the job, which compares them with the warehouse's: only the buckets that differ
//!    are looked at again.
//! 3. The source's keys of those buckets travel to the warehouse (all of them when more than a
//!    quarter of the buckets differ, which costs less than listing them). A warehouse row in one
//!    of them whose key the source no longer has was deleted at the source: it is marked
//!    (`_deleted_at`) or deleted, in one transaction with the time of the reconciliation.
//!
//! Steps 1 and 3 read one snapshot of the source. Reconciling a table of 1M rows where 0.1% were
//! deleted reads about 1000 buckets' keys, some 3% of them, and 31250 summaries.
//!
//! The key's columns must render the same text on both sides: integer, decimal, text, uuid, date
//! and timestamp columns do (`key_problem` refuses the others; the suite checks each against
//! PostgreSQL).

use std::path::{Path, PathBuf};

use crate::catalog::{HardDeletes, TableName};
use crate::types::{ColumnPlan, Select, quote};

/// The column a row found deleted at the source gets (`hard_deletes: mark`): the start of the run
/// that found it gone. NULL while the source has the row.
pub const DELETED_AT: &str = "_deleted_at";

/// Keys per bucket the bucket count aims at: the summaries cost about as much as the keys of
/// the buckets that differ when a table loses a few rows in a thousand.
const KEYS_PER_BUCKET: u64 = 32;
const MAX_BUCKETS: u64 = 1 << 20;
/// The modulus of a bucket's hash sum.
pub(crate) const HASH_MODULUS: u64 = 1 << 32;

/// The bucket count for a table whose warehouse holds `live_rows`.
pub fn buckets_for(live_rows: u64) -> u64 {
    live_rows.div_ceil(KEYS_PER_BUCKET).clamp(1, MAX_BUCKETS)
}

/// Why these key columns cannot be reconciled, if they cannot: their text differs between
/// Postgres and the warehouse.
pub fn key_problem(key: &[ColumnPlan]) -> Option<String> {
    let text_type = |source: &str| {
        matches!(source, "text" | "citext" | "name" | "character")
            || source.starts_with("character varying")
            || source.starts_with("character(")
    };
    key.iter()
        .find(|c| {
            let same_text = c.select == Select::Text
                && (matches!(
                    c.target_type.as_str(),
                    "SMALLINT" | "INTEGER" | "BIGINT" | "UUID" | "DATE" | "TIMESTAMP"
                ) || c.target_type.starts_with("DECIMAL(")
                    || text_type(&c.source_type));
            !same_text
        })
        .map(|c| {
            format!(
                "the primary key column {} is {}: reconciliation (finding hard deletes) compares \
                 keys as text, which only integer, decimal, text, uuid, date and timestamp \
                 keys render alike in Postgres and the warehouse; set reconcile: off for this \
                 table, or a primary_key of such columns",
                c.name, c.source_type
            )
        })
}

/// Why these key columns cannot be reconciled on Snowflake, if they cannot: there a timestamp's
/// text has a fixed number of fraction digits, where Postgres drops trailing zeros.
pub fn snowflake_key_problem(key: &[ColumnPlan]) -> Option<String> {
    key_problem(key).or_else(|| {
        key.iter().find(|c| c.target_type == "TIMESTAMP").map(|c| {
            format!(
                "the primary key column {} is {}: on Snowflake, reconciliation (finding hard \
                     deletes) compares integer, decimal, text, uuid and date keys only; set \
                     reconcile: off for this table, or a primary_key of such columns",
                c.name, c.source_type
            )
        })
    })
}

/// Snowflake: each bucket's number, key count and hash sum over the table's live rows, the
/// same numbers Postgres computes for the same keys.
pub fn snowflake_summary_sql(table: &str, key: &[ColumnPlan], buckets: u64, live: &str) -> String {
    let parts: Vec<String> = key
        .iter()
        .map(|c| format!("TO_VARCHAR({})", snowflake_conn::quote_ident(&c.name)))
        .collect();
    format!(
        "SELECT TO_NUMBER(SUBSTR(H, 9, 8), 'XXXXXXXX') % {buckets} AS B, COUNT(*) AS N, \
         SUM(TO_NUMBER(SUBSTR(H, 1, 8), 'XXXXXXXX')) % {HASH_MODULUS} AS S \
         FROM (SELECT MD5(CONCAT_WS(CHR(31), {})) AS H FROM {table} WHERE {live}) GROUP BY 1",
        parts.join(", ")
    )
}

/// Snowflake: the condition a row of the listed buckets meets.
pub fn snowflake_in_buckets(key: &[ColumnPlan], buckets: u64, differing: Option<&[u64]>) -> String {
    let Some(list) = differing else {
        return "TRUE".to_owned();
    };
    let parts: Vec<String> = key
        .iter()
        .map(|c| format!("TO_VARCHAR(t.{})", snowflake_conn::quote_ident(&c.name)))
        .collect();
    let list: Vec<String> = list.iter().map(u64::to_string).collect();
    format!(
        "TO_NUMBER(SUBSTR(MD5(CONCAT_WS(CHR(31), {})), 9, 8), 'XXXXXXXX') % {buckets} IN ({})",
        parts.join(", "),
        list.join(", ")
    )
}

/// The buckets whose count or hash sum differ between the source's summaries (the CSV spool of
/// [`source_summary_sql`]) and the warehouse's (`bucket, count, sum`), in order; and the keys
/// the source has.
pub fn differing_buckets(
    summary_spool: &Path,
    warehouse: impl IntoIterator<Item = (u64, u64, u64)>,
) -> std::io::Result<Compared> {
    use std::io::BufRead;
    let mut source = std::collections::BTreeMap::new();
    let mut source_rows = 0;
    for line in std::io::BufReader::new(std::fs::File::open(summary_spool)?).lines() {
        let line = line?;
        let numbers: Vec<u64> = line
            .split(',')
            .map(|n| n.parse())
            .collect::<Result<_, _>>()
            .map_err(|e| std::io::Error::other(format!("summary line {line:?}: {e}")))?;
        let [bucket, count, sum] = numbers[..] else {
            return Err(std::io::Error::other(format!("summary line {line:?}")));
        };
        source_rows += count;
        source.insert(bucket, (count, sum));
    }
    let mut differing = std::collections::BTreeSet::new();
    for (bucket, count, sum) in warehouse {
        if source.remove(&bucket) != Some((count, sum)) {
            differing.insert(bucket);
        }
    }
    differing.extend(source.into_keys());
    Ok(Compared {
        differing: differing.into_iter().collect(),
        source_rows,
    })
}

/// The text of a key in Postgres, as the COPY renders it.
fn source_key_text(key: &[ColumnPlan]) -> String {
    let parts: Vec<String> = key
        .iter()
        .map(|c| format!("{}::text", quote(&c.name)))
        .collect();
    format!("concat_ws(chr(31), {})", parts.join(", "))
}

fn source_from(table: &TableName) -> String {
    format!("{}.{}", quote(&table.schema), quote(&table.table))
}

/// Postgres: each bucket's number, key count and hash sum.
pub fn source_summary_sql(table: &TableName, key: &[ColumnPlan], buckets: u64) -> String {
    format!(
        "SELECT ('x' || substr(h, 9, 8))::bit(32)::bigint % {buckets}, count(*), \
         sum(('x' || substr(h, 1, 8))::bit(32)::bigint) % {HASH_MODULUS} \
         FROM (SELECT md5({}) AS h FROM {}) k GROUP BY 1",
        source_key_text(key),
        source_from(table)
    )
}

/// Postgres: the keys of the buckets listed (every key when `differing` is `None`), as the COPY
/// of the rows renders them.
pub fn source_keys_sql(
    table: &TableName,
    key: &[ColumnPlan],
    buckets: u64,
    differing: Option<&[u64]>,
) -> String {
    let columns: Vec<String> = key
        .iter()
        .map(|c| format!("{}::text", quote(&c.name)))
        .collect();
    let columns = columns.join(", ");
    match differing {
        None => format!("SELECT {columns} FROM {}", source_from(table)),
        Some(list) => {
            let list: Vec<String> = list.iter().map(u64::to_string).collect();
            format!(
                "SELECT {columns} FROM {} WHERE ('x' || substr(md5({}), 9, 8))::bit(32)::bigint \
                 % {buckets} = ANY('{{{}}}'::bigint[])",
                source_from(table),
                source_key_text(key),
                list.join(",")
            )
        }
    }
}

/// The warehouse table: its name, and whether it has [`DELETED_AT`].
#[derive(Debug, Clone)]
pub struct Target {
    /// `"schema"."table"`.
    pub name: String,
    pub schema: String,
    pub table: String,
    pub key: Vec<ColumnPlan>,
}

/// What the comparison of the summaries found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compared {
    /// The buckets whose count or hash sum differ, in order.
    pub differing: Vec<u64>,
    /// The keys the source has, by its summaries.
    pub source_rows: u64,
}

/// Whether the differing buckets are listed in the read of the keys, or every key is read.
pub fn worth_listing(differing: &[u64], buckets: u64) -> bool {
    (differing.len() as u64) * 4 <= buckets
}

/// The rows gone at the source, applied to the warehouse.
#[derive(Debug, Clone)]
pub struct Apply {
    pub target: Target,
    pub buckets: u64,
    /// `None`: the keys spool holds every key of the source.
    pub differing: Option<Vec<u64>>,
    pub keys_spool: PathBuf,
    pub hard_deletes: HardDeletes,
    /// The bookmark row to stamp with the reconciliation.
    pub source_table: String,
    /// The run's start, `YYYY-MM-DD HH:MM:SS.ffffff` UTC.
    pub reconciled_at: String,
}

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Keys the source sent for the differing buckets.
    pub keys_read: u64,
    /// Rows of the warehouse the source no longer has: marked or deleted.
    pub rows_gone: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::plan;

    #[test]
    fn keys_that_render_alike_are_reconciled_and_others_refused() {
        assert_eq!(
            key_problem(&[
                plan("sfid", "character varying(18)"),
                plan("id", "integer"),
                plan("day", "date"),
                plan("u", "uuid"),
            ]),
            None
        );
        let problem = key_problem(&[plan("at", "timestamp with time zone")]).unwrap();
        assert!(
            problem.contains("at is timestamp with time zone"),
            "{problem}"
        );
        assert!(key_problem(&[plan("n", "numeric")]).is_some());
        assert!(key_problem(&[plan("flag", "boolean")]).is_some());
        assert!(key_problem(&[plan("tags", "text[]")]).is_some());
        assert!(key_problem(&[plan("at", "timestamp without time zone")]).is_none());
        assert!(snowflake_key_problem(&[plan("at", "timestamp without time zone")]).is_some());
        assert!(snowflake_key_problem(&[plan("id", "integer")]).is_none());
        assert_eq!(buckets_for(0), 1);
        assert_eq!(buckets_for(1_000_000), 31_250);
        assert_eq!(buckets_for(u64::MAX / 2), MAX_BUCKETS);
    }
}
