//! The warehouse a job writes to: Snowflake, or an embedded DuckDB file when no Snowflake is
//! configured, so that a data engineer without an account runs the same job on a laptop. This
//! crate holds what every job needs of a warehouse whatever it loads: opening or logging in,
//! running statements (off the async runtime for DuckDB, interrupted on SIGTERM), reading
//! results as text, errors with their exit codes, and SQL literals. What a job loads and how
//! (stage-import's COPY, pg-replicate's MERGE) lives in the job, on top of [`Warehouse`].

#[cfg(feature = "duckdb")]
pub mod duckdb;
pub mod snowflake;

use tokio_util::sync::CancellationToken;

/// The embedded warehouse's variables, the same in every job that has one (its config struct
/// has the fields `warehouse_path`, `duckdb_memory_limit` and `duckdb_threads`).
pub const WAREHOUSE_PATH_VAR: job_kit::EnvVar = job_kit::EnvVar::new(
    "WAREHOUSE_PATH",
    job_kit::Kind::Path,
    "The embedded DuckDB database file: the warehouse when no Snowflake is configured (in the \
     builds with the embedded warehouse, not the images)",
)
.default("warehouse.duckdb");
pub const DUCKDB_MEMORY_LIMIT_VAR: job_kit::EnvVar = job_kit::EnvVar::new(
    "DUCKDB_MEMORY_LIMIT",
    job_kit::Kind::Text,
    "Memory the embedded database may use (e.g. 512MB, 2GB); larger loads spill to disk",
)
.default("1GB");
pub const DUCKDB_THREADS_VAR: job_kit::EnvVar = job_kit::EnvVar::new(
    "DUCKDB_THREADS",
    job_kit::Kind::Integer { min: 1, max: 1024 },
    "Threads of the embedded database; default: one per core",
);

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("{0}")]
    Setup(String),
    /// `fix` says which command creates the table.
    #[error("table {table} does not exist: {fix}")]
    MissingTable { table: String, fix: &'static str },
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

/// Column names, and rows as text (NULL as `None`).
pub type TextRows = (Vec<String>, Vec<Vec<Option<String>>>);

#[allow(async_fn_in_trait)]
pub trait Warehouse {
    /// For logs and reports: `duckdb:warehouse.duckdb`, `snowflake:account/database`.
    fn describe(&self) -> String;

    /// A table of this warehouse as lineage names it.
    fn dataset(&self, schema: &str, table: &str) -> job_kit::lineage::Dataset;

    /// Runs statements in order, stopping at the first failure. Each must be safe to repeat
    /// (`CREATE ... IF NOT EXISTS`): Snowflake's connection retries one whose answer was lost.
    async fn execute(
        &mut self,
        statements: &[String],
        cancel: &CancellationToken,
    ) -> Result<(), WarehouseError>;

    /// Runs a read query; its column names and rows as text.
    async fn query_text(
        &self,
        sql: &str,
        cancel: &CancellationToken,
    ) -> Result<TextRows, WarehouseError>;
}

/// The warehouse a run uses: Snowflake when configured, else the embedded one.
pub enum Backend {
    #[cfg(feature = "duckdb")]
    DuckDb(duckdb::DuckDbWarehouse),
    Snowflake(snowflake::SnowflakeWarehouse),
}

impl Warehouse for Backend {
    fn describe(&self) -> String {
        match self {
            #[cfg(feature = "duckdb")]
            Backend::DuckDb(w) => w.describe(),
            Backend::Snowflake(w) => w.describe(),
        }
    }

    fn dataset(&self, schema: &str, table: &str) -> job_kit::lineage::Dataset {
        match self {
            #[cfg(feature = "duckdb")]
            Backend::DuckDb(w) => w.dataset(schema, table),
            Backend::Snowflake(w) => w.dataset(schema, table),
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

    async fn query_text(
        &self,
        sql: &str,
        cancel: &CancellationToken,
    ) -> Result<TextRows, WarehouseError> {
        match self {
            #[cfg(feature = "duckdb")]
            Backend::DuckDb(w) => w.query_text(sql, cancel).await,
            Backend::Snowflake(w) => w.query_text(sql, cancel).await,
        }
    }
}

/// The first column of [`Warehouse::query_text`]'s rows, NULLs left out.
pub fn first_column(rows: Vec<Vec<Option<String>>>) -> Vec<String> {
    rows.into_iter()
        .filter_map(|row| row.into_iter().next().flatten())
        .collect()
}

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

/// A string literal for SQL: single quotes doubled.
pub fn sql_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `path` as a glob that matches only itself. DuckDB's readers expand `*`, `?` and `[` in every
/// path they get, so a file named `*-2026-11-27.csv` would also load its neighbours. A
/// one-character class (`[*]`) is literal, and `filename` still reports the real name.
pub fn literal_glob(path: &str) -> String {
    let mut glob = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[') {
            glob.push('[');
            glob.push(c);
            glob.push(']');
        } else {
            glob.push(c);
        }
    }
    glob
}

/// A statement's first line, without its `;`: how an error names the statement that failed.
pub fn first_line(statement: &str) -> String {
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
    fn a_glob_of_a_path_matches_only_that_path() {
        assert_eq!(literal_glob("/d/a*[1]?.csv"), "/d/a[*][[]1][?].csv");
    }

    #[test]
    fn literals_cannot_break_out() {
        assert_eq!(sql_literal("it's"), "'it''s'");
    }
}
