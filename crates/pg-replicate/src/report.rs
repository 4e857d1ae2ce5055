//! The run's JSON report on stdout: one entry per table, with what was read and changed and
//! where the bookmark moved, so that a scheduler's log or a person sees each table's outcome.

use serde::Serialize;

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
    pub bookmark_before: Option<String>,
    pub bookmark_after: Option<String>,
    pub seconds: f64,
    pub error: Option<String>,
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
            inserted: 0,
            updated: 0,
            null_key_rows: 0,
            columns_dropped: Vec::new(),
            columns_widened: Vec::new(),
            columns_added: Vec::new(),
            rows_backfilled: 0,
            bookmark_before: None,
            bookmark_after: None,
            seconds: 0.0,
            error: None,
        }
    }
}

/// Seconds rounded to milliseconds.
pub fn seconds(elapsed: std::time::Duration) -> f64 {
    (elapsed.as_secs_f64() * 1000.0).round() / 1000.0
}
