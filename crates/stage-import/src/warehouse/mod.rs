//! What stage-import does with a warehouse: bootstrap the sources' tables and load files into
//! them, on Snowflake or the embedded DuckDB file. The warehouse crate opens and runs them; this
//! module adds one loading interface, so that the catalog, the preflight, the report and the
//! exit code are written once and both backends keep the same semantics: per-file outcomes,
//! nothing loaded twice, `--reload` replacing a day atomically.

#[cfg(feature = "duckdb")]
pub mod duckdb;
pub mod snowflake;

pub use ::warehouse::{Backend, Warehouse, WarehouseError};
use std::collections::BTreeMap;

use tokio_util::sync::CancellationToken;

use crate::catalog::{Column, ColumnType, Load, Source};
use crate::header::Decision;
use crate::report::FileOutcome;
use crate::stage::StagedFile;
use snowflake::StageAccess;

/// Where a backend reads a load's files from.
#[derive(Debug, Clone)]
pub enum FileSource {
    /// The files are in this local directory, at their stage paths.
    Local(std::path::PathBuf),
    /// The warehouse reads them from its own stage (Snowflake): nothing is fetched for it. The
    /// job read each file's start: what that decided, by path (a file missing here is read by
    /// the format alone).
    Stage(BTreeMap<String, Decision>),
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

    /// The statement that adds `column` (nullable) to an existing table.
    fn add_column_sql(&self, schema: &str, table: &str, column: &Column) -> String;

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

    fn add_column_sql(&self, schema: &str, table: &str, column: &Column) -> String {
        match self {
            #[cfg(feature = "duckdb")]
            Backend::DuckDb(w) => w.add_column_sql(schema, table, column),
            Backend::Snowflake(w) => w.add_column_sql(schema, table, column),
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

/// A table's columns as the warehouse's `information_schema` lists them: name and data type.
pub fn existing_columns_sql(schema: &str, table: &str, literal: impl Fn(&str) -> String) -> String {
    format!(
        "SELECT column_name, data_type FROM information_schema.columns \
         WHERE upper(table_schema) = upper({}) AND upper(table_name) = upper({}) \
         ORDER BY ordinal_position",
        literal(schema),
        literal(table)
    )
}

/// What bootstrap does to a table that existed before it, whose columns (`existing`: name and
/// `information_schema` data type) are not the source's: the catalog's columns it lacks are
/// added, nullable (the rows it holds get NULL); a column of another type, or one the catalog
/// does not have, is refused, naming each, since a load would fail on it. No table (nothing
/// listed) needs nothing.
pub fn missing_columns<'a>(
    table: &str,
    columns: &'a [Column],
    existing: &[(String, String)],
) -> Result<Vec<&'a Column>, String> {
    if existing.is_empty() {
        return Ok(Vec::new());
    }
    let mut problems = Vec::new();
    for (name, data_type) in existing {
        if name.eq_ignore_ascii_case(SOURCE_FILE_COLUMN)
            || name.eq_ignore_ascii_case(LOADED_AT_COLUMN)
        {
            continue;
        }
        match columns.iter().find(|c| c.name.eq_ignore_ascii_case(name)) {
            None => problems.push(format!("column {name} ({data_type}) is not in the catalog")),
            Some(column) if type_family(data_type) != Some(column.kind) => problems.push(format!(
                "column {name} is {data_type}; the catalog has it as {}",
                kind_name(column.kind)
            )),
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "table {table} exists with other columns than the catalog's: {}. Alter or drop \
             the table, or change the catalog; bootstrap changed nothing",
            problems.join("; ")
        ));
    }
    Ok(columns
        .iter()
        .filter(|c| {
            !existing
                .iter()
                .any(|(name, _)| c.name.eq_ignore_ascii_case(name))
        })
        .collect())
}

/// The catalog type an `information_schema` data type holds (DuckDB's or Snowflake's names).
fn type_family(data_type: &str) -> Option<ColumnType> {
    let upper = data_type.to_ascii_uppercase();
    let base = upper.split('(').next().unwrap_or("").trim();
    Some(match base {
        "VARCHAR" | "TEXT" | "STRING" | "CHAR" | "CHARACTER VARYING" => ColumnType::Text,
        "BIGINT" | "INTEGER" | "INT" | "NUMBER" | "DECIMAL" | "NUMERIC" => ColumnType::Integer,
        "DOUBLE" | "FLOAT" | "REAL" | "DOUBLE PRECISION" => ColumnType::Number,
        "DATE" => ColumnType::Date,
        "TIME" => ColumnType::Time,
        "TIMESTAMP" | "TIMESTAMP_NTZ" | "TIMESTAMP WITHOUT TIME ZONE" => ColumnType::Timestamp,
        "BOOLEAN" => ColumnType::Boolean,
        _ => return None,
    })
}

pub fn kind_name(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::Text => "text",
        ColumnType::Integer => "integer",
        ColumnType::Number => "number",
        ColumnType::Date => "date",
        ColumnType::Time => "time",
        ColumnType::Timestamp => "timestamp",
        ColumnType::Boolean => "boolean",
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
