//! The embedded warehouse: the DuckDB file a run writes when no Snowflake is configured
//! (`make demo`, a laptop, the tests). Only in builds with the `duckdb` feature; the images
//! leave it out, as stage-import's do.

pub mod load;
pub mod reconcile;

use std::path::Path;

use duckdb::{Connection, OptionalExt, params};
use warehouse::{WarehouseError, literal_glob, sql_literal};

use crate::load::Bookmark;
use crate::types::{ColumnPlan, Load, quote};

/// What the job keeps in the warehouse besides the tables.
pub const SETUP_SQL: &str = "CREATE SCHEMA IF NOT EXISTS _pg_replicate;
CREATE TABLE IF NOT EXISTS _pg_replicate.bookmarks (
    source_table VARCHAR NOT NULL,
    target_table VARCHAR NOT NULL,
    replication_key VARCHAR NOT NULL,
    bookmark VARCHAR,
    columns_signature VARCHAR NOT NULL,
    replicated_at TIMESTAMP NOT NULL
);
ALTER TABLE _pg_replicate.bookmarks ADD COLUMN IF NOT EXISTS reconciled_at TIMESTAMP;";

pub(crate) fn query_error(what: &str) -> impl Fn(duckdb::Error) -> WarehouseError + '_ {
    move |e| WarehouseError::Query {
        what: what.to_owned(),
        message: e.to_string(),
    }
}

pub fn read_bookmark(
    connection: &Connection,
    source_table: &str,
    target_schema: &str,
    target_table: &str,
) -> Result<Option<Bookmark>, WarehouseError> {
    let fail = query_error("reading the bookmark");
    let found: Option<(Option<String>, String, Option<i64>)> = connection
        .query_row(
            "SELECT bookmark, columns_signature, CAST(epoch(reconciled_at) AS BIGINT) \
             FROM _pg_replicate.bookmarks WHERE source_table = ?",
            params![source_table],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .map_err(&fail)?;
    let target_exists: bool = connection
        .query_row(
            "SELECT count(*) > 0 FROM information_schema.tables \
             WHERE table_schema = ? AND table_name = ?",
            params![target_schema, target_table],
            |row| row.get(0),
        )
        .map_err(&fail)?;
    Ok(found.map(|(value, signature, reconciled_at)| Bookmark {
        value,
        signature,
        target_exists,
        reconciled_at,
    }))
}

/// The longest row of a spool the reader takes (Salesforce's longest text fields hold 128k
/// characters). DuckDB's reader buffers 16 times this unless told otherwise, up to the whole
/// file: at 128 MB, a 1 GB spool was read in one allocation, past the memory limit.
const MAX_ROW_BYTES: usize = 16 << 20;
const READ_BUFFER_BYTES: usize = 2 * MAX_ROW_BYTES;

/// The spooled CSV, each field cast to its column's type. Postgres's CSV writes NULL as an
/// empty field and an empty string as `""`: `allow_quoted_nulls = false` keeps them apart.
pub(crate) fn batch_select(columns: &[ColumnPlan], spool: &Path) -> String {
    let fields: Vec<String> = (0..columns.len())
        .map(|i| format!("'f{i}': 'VARCHAR'"))
        .collect();
    let casts: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let value = match c.load {
                Load::Cast => format!("CAST(f{i} AS {})", c.target_type),
                Load::Unhex => format!("unhex(f{i})"),
            };
            format!("{value} AS {}", quote(&c.name))
        })
        .collect();
    format!(
        "SELECT {} FROM read_csv({}, columns = {{{}}}, header = false, delim = ',', \
         quote = '\"', escape = '\"', nullstr = '', allow_quoted_nulls = false, \
         auto_detect = false, strict_mode = true, max_line_size = {MAX_ROW_BYTES}, \
         buffer_size = {READ_BUFFER_BYTES})",
        casts.join(", "),
        sql_literal(&literal_glob(&spool.display().to_string())),
        fields.join(", ")
    )
}
