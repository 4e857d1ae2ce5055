//! The run's JSON report on stdout: one entry per table, with what was read and changed and
//! where the bookmark moved, so that a scheduler's log or a person sees each table's outcome.

use serde::Serialize;

use crate::catalog::HardDeletes;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub job: &'static str,
    /// The source URL without its password.
    pub source: String,
    pub warehouse: String,
    pub started_at: String,
    pub seconds: f64,
    pub tables_failed: usize,
    pub tables: Vec<TableReport>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Failed,
    /// Stopped by SIGTERM/SIGINT: nothing of it committed, its bookmark unchanged.
    Interrupted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Copied in full into a new table swapped in at the commit.
    Full,
    /// The rows from the bookmark on, merged on the primary key.
    Incremental,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub table: String,
    pub target: String,
    pub status: Status,
    pub mode: Option<Mode>,
    /// Why the table was copied in full.
    pub full_copy_reason: Option<&'static str>,
    pub replication_key: Option<String>,
    pub rows_read: u64,
    /// The size of what was read (the spooled CSV, new columns' second read included).
    pub bytes_read: u64,
    pub inserted: u64,
    pub updated: u64,
    /// Rows whose replication key is NULL: read and merged on every run.
    pub null_key_rows: u64,
    /// Columns the warehouse table keeps that the source dropped (NULL in rows written since).
    pub columns_dropped: Vec<String>,
    /// Columns whose warehouse type this run widened (`name TYPE`), the source's having grown.
    pub columns_widened: Vec<String>,
    /// Columns new at the source, added to the table and filled in for the rows it held.
    pub columns_added: Vec<String>,
    pub rows_backfilled: u64,
    /// The search for hard deletes, when this run made one.
    pub reconciliation: Option<Reconciliation>,
    pub bookmark_before: Option<String>,
    pub bookmark_after: Option<String>,
    pub seconds: f64,
    pub error: Option<String>,
    /// The rows and bookmark committed, whatever came after (a reconciliation that failed).
    #[serde(skip)]
    pub committed: bool,
}

impl TableReport {
    pub fn new(table: String, target: String) -> TableReport {
        TableReport {
            table,
            target,
            status: Status::Failed,
            mode: None,
            full_copy_reason: None,
            replication_key: None,
            rows_read: 0,
            bytes_read: 0,
            inserted: 0,
            updated: 0,
            null_key_rows: 0,
            columns_dropped: Vec::new(),
            columns_widened: Vec::new(),
            columns_added: Vec::new(),
            rows_backfilled: 0,
            reconciliation: None,
            bookmark_before: None,
            bookmark_after: None,
            seconds: 0.0,
            error: None,
            committed: false,
        }
    }
}

/// What a reconciliation of the table's keys with the source's found, and what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct Reconciliation {
    /// What became of the rows found deleted at the source.
    pub hard_deletes: HardDeletes,
    /// The buckets both sides summed their keys into, and those whose sums differed.
    pub buckets: u64,
    pub buckets_differing: u64,
    /// Rows the source has, and rows the warehouse table had that were not marked deleted.
    pub source_rows: u64,
    pub warehouse_rows: u64,
    /// Keys read from the source: those of the differing buckets only.
    pub keys_read: u64,
    /// Bytes read from the source, the bucket summaries and the keys.
    pub bytes_read: u64,
    /// Rows the warehouse had that the source no longer has: marked or deleted.
    pub rows_deleted_at_source: u64,
    pub seconds: f64,
}

/// Seconds rounded to milliseconds.
pub fn seconds(elapsed: std::time::Duration) -> f64 {
    (elapsed.as_secs_f64() * 1000.0).round() / 1000.0
}
