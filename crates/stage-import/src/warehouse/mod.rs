//! The warehouse a load goes into: Snowflake, or an embedded DuckDB file when no Snowflake is
//! configured. One interface, so that the catalog, the preflight, the report and the exit code
//! are written once and both backends keep the same semantics: per-file outcomes, nothing
//! loaded twice, `--reload` replacing a day atomically.

#[cfg(feature = "duckdb")]
pub mod duckdb;
pub mod snowflake;

use tokio_util::sync::CancellationToken;

use crate::catalog::{ColumnType, Load, Source};
use crate::report::FileOutcome;
use crate::stage::StagedFile;

/// Where a backend reads a load's files from.
#[derive(Debug, Clone)]
pub enum FileSource {
    /// The files are in this local directory, at their stage paths.
    Local(std::path::PathBuf),
    /// The warehouse reads them from its own stage (Snowflake): nothing is fetched for it.
    Stage,
}

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("{0}")]
    Setup(String),
    #[error("table {table} does not exist: run `stage-import bootstrap` first")]
    MissingTable { table: String },
    #[error("{what}: {message}")]
    Query { what: String, message: String },
    #[error("interrupted")]
    Interrupted,
    #[error("{what}: {source}")]
    Snowflake {
        what: String,
        #[source]
        source: snowflake_conn::Error,
    },
}

impl WarehouseError {
    /// The exit code this error deserves: a missing table or a refused login is configuration
    /// (2), the rest a failure (1); an interruption is decided by the kit (130).
    pub fn exit(&self) -> job_kit::Exit {
        use job_kit::JobError;
        match self {
            WarehouseError::MissingTable { .. } => job_kit::Exit::Usage,
            WarehouseError::Snowflake { source, .. } => source.exit(),
            _ => job_kit::Exit::Failure,
        }
    }
}

#[allow(async_fn_in_trait)]
pub trait Warehouse {
    /// For logs and the report: `duckdb:warehouse.duckdb`, `snowflake:account`.
    fn describe(&self) -> String;

    /// True when the warehouse reads a load's files from its own stage, so that the job
    /// fetches nothing for it.
    fn reads_stages(&self) -> bool {
        false
    }

    /// The statements that create (idempotently) what these sources load into.
    fn bootstrap_sql(&self, sources: &[(&Source, Vec<Load>)]) -> Vec<String>;

    /// Runs statements in order, stopping at the first failure.
    async fn execute(
        &mut self,
        statements: &[String],
        cancel: &CancellationToken,
    ) -> Result<(), WarehouseError>;

    /// Loads `files` (already matched by the preflight) for one load, skipping files loaded
    /// before unless `reload`, which replaces them in one transaction.
    async fn load(
        &mut self,
        load: &Load,
        files: &[StagedFile],
        from: &FileSource,
        reload: bool,
        cancel: &CancellationToken,
    ) -> Result<Vec<FileOutcome>, WarehouseError>;

    /// The files (`_source_file`) the load's table holds rows of below the load's listing
    /// prefix: what a `--reload` compares with the stage.
    async fn files_held(
        &mut self,
        load: &Load,
        cancel: &CancellationToken,
    ) -> Result<Vec<String>, WarehouseError>;
}

/// The query behind [`Warehouse::files_held`], with the backend's string literal.
pub fn files_held_sql(load: &Load, literal: impl Fn(&str) -> String) -> String {
    format!(
        "SELECT DISTINCT {SOURCE_FILE_COLUMN} AS file FROM {}.{} \
         WHERE LEFT({SOURCE_FILE_COLUMN}, {}) = {}",
        load.schema,
        load.table,
        load.list_prefix.chars().count(),
        literal(&load.list_prefix)
    )
}

/// The first column of `query_text`'s rows, NULLs left out.
pub fn first_column(rows: Vec<Vec<Option<String>>>) -> Vec<String> {
    rows.into_iter()
        .filter_map(|row| row.into_iter().next().flatten())
        .collect()
}

/// The warehouse a run uses: Snowflake when configured, else the embedded one.
pub enum Backend {
    #[cfg(feature = "duckdb")]
    DuckDb(duckdb::DuckDbWarehouse),
    Snowflake(snowflake::SnowflakeWarehouse),
}

impl Backend {
    /// Runs a read query; column names and rows as text (NULL as `None`).
    pub async fn query_text(
        &self,
        sql: &str,
        cancel: &CancellationToken,
    ) -> Result<(Vec<String>, Vec<Vec<Option<String>>>), WarehouseError> {
        match self {
            #[cfg(feature = "duckdb")]
            Backend::DuckDb(w) => w.query_text(sql, cancel).await,
            Backend::Snowflake(w) => w.query_text(sql, cancel).await,
        }
    }
}

impl Warehouse for Backend {
    fn describe(&self) -> String {
        match self {
            #[cfg(feature = "duckdb")]
            Backend::DuckDb(w) => w.describe(),
            Backend::Snowflake(w) => w.describe(),
        }
    }

    fn reads_stages(&self) -> bool {
        match self {
            #[cfg(feature = "duckdb")]
            Backend::DuckDb(w) => w.reads_stages(),
            Backend::Snowflake(w) => w.reads_stages(),
        }
    }

    fn bootstrap_sql(&self, sources: &[(&Source, Vec<Load>)]) -> Vec<String> {
        match self {
            #[cfg(feature = "duckdb")]
            Backend::DuckDb(w) => w.bootstrap_sql(sources),
            Backend::Snowflake(w) => w.bootstrap_sql(sources),
        }
    }

    async fn execute(
        &mut self,
        statements: &[String],
        cancel: &CancellationToken,
    ) -> Result<(), WarehouseError> {
        match self {
            #[cfg(feature = "duckdb")]
            Backend::DuckDb(w) => w.execute(statements, cancel).await,
            Backend::Snowflake(w) => w.execute(statements, cancel).await,
        }
    }

    async fn load(
        &mut self,
        load: &Load,
        files: &[StagedFile],
        from: &FileSource,
        reload: bool,
        cancel: &CancellationToken,
    ) -> Result<Vec<FileOutcome>, WarehouseError> {
        match self {
            #[cfg(feature = "duckdb")]
            Backend::DuckDb(w) => w.load(load, files, from, reload, cancel).await,
            Backend::Snowflake(w) => w.load(load, files, from, reload, cancel).await,
        }
    }

    async fn files_held(
        &mut self,
        load: &Load,
        cancel: &CancellationToken,
    ) -> Result<Vec<String>, WarehouseError> {
        match self {
            #[cfg(feature = "duckdb")]
            Backend::DuckDb(w) => w.files_held(load, cancel).await,
            Backend::Snowflake(w) => w.files_held(load, cancel).await,
        }
    }
}

/// The columns every loaded row carries besides the file's own.
pub const SOURCE_FILE_COLUMN: &str = "_source_file";
pub const LOADED_AT_COLUMN: &str = "_loaded_at";

/// A line number in an engine's error message (`... on line 12 ...`, `Line: 12`).
pub fn line_in_message(message: &str) -> Option<u64> {
    let lower = message.to_ascii_lowercase();
    for marker in ["line: ", "line ", "line="] {
        if let Some(at) = lower.find(marker) {
            let digits: String = lower[at + marker.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(line) = digits.parse() {
                return Some(line);
            }
        }
    }
    None
}

/// SQL type names, per backend.
pub fn duckdb_type(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::Text => "VARCHAR",
        ColumnType::Integer => "BIGINT",
        ColumnType::Number => "DOUBLE",
        ColumnType::Date => "DATE",
        ColumnType::Time => "TIME",
        ColumnType::Timestamp => "TIMESTAMP",
        ColumnType::Boolean => "BOOLEAN",
    }
}

/// A string literal for SQL: single quotes doubled.
pub fn sql_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A statement's first line, without its `;`: how an error names the statement that failed.
pub(crate) fn first_line(statement: &str) -> String {
    statement
        .lines()
        .next()
        .unwrap_or(statement)
        .trim()
        .trim_end_matches(';')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_line_numbers_in_engine_messages() {
        assert_eq!(
            line_in_message("CSV Error on Line: 12\nOriginal Line: x"),
            Some(12)
        );
        assert_eq!(line_in_message("error on line 7 of file"), Some(7));
        assert_eq!(line_in_message("no such file"), None);
    }

    #[test]
    fn literals_cannot_break_out() {
        assert_eq!(sql_literal("it's"), "'it''s'");
    }
}
