//! One table's load, whichever the warehouse: what it is given (the spool, the columns, the
//! bookmark it started from), what it reports, and the checks both warehouses make before they
//! merge. `embedded::load` runs it on DuckDB, `snowflake` on Snowflake.

use std::path::PathBuf;

use warehouse::WarehouseError;

use crate::types::ColumnPlan;

/// The metadata column every replicated table gets: when the run that last wrote the row started.
pub const REPLICATED_AT: &str = "_replicated_at";

/// A table's bookmark as the last committed run left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bookmark {
    /// The greatest replication key value read so far; `None` when every row's key was NULL.
    pub value: Option<String>,
    /// The columns and settings the table was loaded with: when they change, the table is
    /// copied in full again.
    pub signature: String,
    pub target_exists: bool,
    /// When the table's keys were last reconciled with the source's (or the table copied in
    /// full), in seconds since the epoch.
    pub reconciled_at: Option<i64>,
}

/// One table's load.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// `schema.table` in the source: the bookmark's name.
    pub source_table: String,
    pub target_schema: String,
    pub target_table: String,
    pub columns: Vec<ColumnPlan>,
    pub primary_key: Vec<String>,
    pub replication_key: String,
    pub signature: String,
    pub spool: PathBuf,
    pub full: bool,
    /// A full copy gets the column `_deleted_at` (NULL), the table's hard deletes being marked.
    pub marks_deletes: bool,
    /// Columns whose warehouse type is widened first: `(column, type)`.
    pub widen: Vec<(String, String)>,
    /// New columns, added to the table and filled in for every row it holds, before the merge.
    pub backfill: Option<Backfill>,
    /// The bookmark the read started from; kept when this load finds no greater key.
    pub previous: Option<String>,
    /// The run's start, `YYYY-MM-DD HH:MM:SS.ffffff` UTC: every row it writes gets it.
    pub replicated_at: String,
}

/// The new columns of a table, read for every row of the source with the primary key.
#[derive(Debug, Clone)]
pub struct Backfill {
    /// The primary key's columns, then the new ones, as the spool holds them.
    pub columns: Vec<ColumnPlan>,
    pub added: Vec<String>,
    pub spool: PathBuf,
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    pub rows_read: u64,
    pub inserted: u64,
    pub updated: u64,
    pub null_key_rows: u64,
    pub bookmark: Option<String>,
    /// Columns the table has that the source no longer does: kept, NULL in the rows written.
    pub columns_dropped: Vec<String>,
    /// Rows of the table whose new columns the backfill filled in.
    pub rows_backfilled: u64,
}

/// The rows read can be matched on the primary key: none has a NULL in it, and no two share it.
pub(crate) fn check_primary_key(
    plan: &LoadPlan,
    rows_read: u64,
    distinct_keys: u64,
    null_primary_keys: u64,
) -> Result<(), WarehouseError> {
    if null_primary_keys > 0 {
        return Err(WarehouseError::Query {
            what: plan.source_table.clone(),
            message: format!(
                "{null_primary_keys} rows have a NULL in the primary key ({}): rows cannot be \
                 matched without one; set primary_key in the catalog",
                plan.primary_key.join(", ")
            ),
        });
    }
    if distinct_keys != rows_read {
        return Err(WarehouseError::Query {
            what: plan.source_table.clone(),
            message: format!(
                "the primary key ({}) is not unique: {} rows share a value with another; set \
                 primary_key in the catalog to columns that are unique",
                plan.primary_key.join(", "),
                rows_read.saturating_sub(distinct_keys)
            ),
        });
    }
    Ok(())
}
