//! What stage-import does with a warehouse: bootstrap the sources' tables and load files into
//! them, on Snowflake or the embedded DuckDB file. The warehouse crate opens and runs them; this
//! module adds one loading interface, so that the catalog, the preflight, the report and the
//! exit code are written once and both backends keep the same semantics: per-file outcomes,
//! nothing loaded twice, `--reload` replacing a day atomically.

#[cfg(feature = "duckdb")]
pub mod duckdb;
pub mod snowflake;

pub use ::warehouse::{Backend, Warehouse, WarehouseError};
use tokio_util::sync::CancellationToken;

use crate::catalog::{ColumnType, Load, Source};
use crate::report::FileOutcome;
use crate::stage::StagedFile;
use snowflake::StageAccess;

/// Where a backend reads a load's files from.
#[derive(Debug, Clone)]
pub enum FileSource {
    /// The files are in this local directory, at their stage paths.
    Local(std::path::PathBuf),
    /// The warehouse reads them from its own stage (Snowflake): nothing is fetched for it.
    Stage,
}

/// What creates a missing table.
pub const BOOTSTRAP_FIX: &str = "run `stage-import bootstrap` first";

#[allow(async_fn_in_trait)]
pub trait Loader: Warehouse {
    /// True when the warehouse reads a load's files from its own stage, so that the job
    /// fetches nothing for it.
    fn reads_stages(&self) -> bool {
        false
    }

    /// The statements that create (idempotently) what these sources load into; S3 stages reach
    /// their bucket with `stage_access`.
    fn bootstrap_sql(
        &self,
        sources: &[(&Source, Vec<Load>)],
        stage_access: &StageAccess,
    ) -> Vec<String>;

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

/// The query behind [`Loader::files_held`], with the backend's string literal.
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

impl Loader for Backend {
    fn reads_stages(&self) -> bool {
        match self {
            #[cfg(feature = "duckdb")]
            Backend::DuckDb(w) => w.reads_stages(),
            Backend::Snowflake(w) => w.reads_stages(),
        }
    }

    fn bootstrap_sql(
        &self,
        sources: &[(&Source, Vec<Load>)],
        stage_access: &StageAccess,
    ) -> Vec<String> {
        match self {
            #[cfg(feature = "duckdb")]
            Backend::DuckDb(w) => w.bootstrap_sql(sources, stage_access),
            Backend::Snowflake(w) => w.bootstrap_sql(sources, stage_access),
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

/// DuckDB's type for a catalog column type.
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
