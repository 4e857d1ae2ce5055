//! The environment contract of pg-replicate, and its command line besides the mirrored variables.
//! The source URL has pg-job's name and rules; the embedded warehouse has stage-import's names.

use job_kit::{EnvVar, Kind, Secret};
use serde::Deserialize;

pub const URL_VAR: &str = "HEROKU_POSTGRESQL_URL";
pub const URL_ALIAS: &str = "DATABASE_URL";

pub const VARS: &[EnvVar] = &[
    EnvVar::new(
        URL_VAR,
        Kind::Url,
        "The Heroku Connect Postgres to replicate from: postgres://user:password@host:port/db, \
         with libpq's sslmode (default require; plain text only with sslmode=disable) and \
         sslrootcert. A read-only user is enough",
    )
    .secret()
    .aliases(&[URL_ALIAS]),
    EnvVar::new(
        "PG_REPLICATE_CATALOG",
        Kind::Path,
        "A YAML catalog that adds to the built-in one (every table of schema salesforce but \
         Heroku Connect's own, hard deletes looked for daily): schemas and tables to replicate, \
         each table's replication key, primary key and columns to skip, how often its keys are \
         reconciled to find hard deletes (reconcile: off, every_run, 24h) and whether those \
         rows are marked _deleted_at or deleted (hard_deletes: mark, delete)",
    )
    .flag("catalog"),
    EnvVar::new(
        "PG_REPLICATE_TARGET_SCHEMA",
        Kind::Text,
        "Warehouse schema the tables are replicated into (one table per source table, same name)",
    )
    .default("orgm"),
    EnvVar::new(
        "PG_REPLICATE_LOOKBACK_SECS",
        Kind::Integer {
            min: 0,
            max: 604_800,
        },
        "How far before the bookmark each run reads again, for a time-valued replication key: \
         rows whose transaction committed after the last run with an older key are not lost. \
         Re-read rows are merged, never duplicated",
    )
    .default("600"),
    EnvVar::new(
        "PG_REPLICATE_WORK_DIR",
        Kind::Path,
        "Directory where a table's rows are spooled between the COPY out of Postgres and the load \
         (one table at a time, removed after its load); default: the system's temporary directory",
    ),
    EnvVar::new(
        "PG_REPLICATE_MAX_TABLE_BYTES",
        Kind::Integer {
            min: 1,
            max: i64::MAX,
        },
        "Most bytes one table's read may spool (as CSV) before the table fails: a runaway \
         table does not fill the pod's disk",
    )
    .default("107374182400"),
    EnvVar::new(
        "PG_REPLICATE_STATEMENT_TIMEOUT_SECS",
        Kind::Seconds,
        "Longest one table's read may run on the server (the session's statement_timeout)",
    )
    .default("3600"),
    EnvVar::new(
        "PG_REPLICATE_CONNECTION_CHECK_SECS",
        Kind::Seconds,
        "How often the server checks that the job is still there while a read runs, and ends \
         the read if it was killed (PostgreSQL 14 and later); also the TCP keepalive idle time",
    )
    .default("10"),
    EnvVar::new(
        "PG_REPLICATE_CONNECT_TIMEOUT_SECS",
        Kind::Seconds,
        "Timeout of one connection attempt (TCP, TLS and login)",
    )
    .default("10"),
    EnvVar::new(
        "PG_REPLICATE_CONNECT_ATTEMPTS",
        Kind::Integer { min: 1, max: 20 },
        "Connection attempts in all before giving up (refused, reset, timed out, server starting \
         up or full are retried; a wrong password is not)",
    )
    .default("5"),
    warehouse::WAREHOUSE_PATH_VAR,
    warehouse::DUCKDB_MEMORY_LIMIT_VAR,
    warehouse::DUCKDB_THREADS_VAR,
];

#[derive(Debug, Deserialize)]
pub struct Config {
    pub heroku_postgresql_url: Option<Secret<url::Url>>,
    pub pg_replicate_catalog: Option<std::path::PathBuf>,
    pub pg_replicate_target_schema: String,
    pub pg_replicate_lookback_secs: u32,
    pub pg_replicate_work_dir: Option<std::path::PathBuf>,
    pub pg_replicate_max_table_bytes: u64,
    pub pg_replicate_statement_timeout_secs: f64,
    pub pg_replicate_connection_check_secs: f64,
    pub pg_replicate_connect_timeout_secs: f64,
    pub pg_replicate_connect_attempts: u32,
    pub warehouse_path: std::path::PathBuf,
    pub duckdb_memory_limit: String,
    pub duckdb_threads: Option<u32>,
}

/// The command line besides the flags that mirror the variables.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Replicate only these tables (schema.table, or table when one schema has it); default: every
    /// table of the catalog
    #[arg(value_name = "TABLE")]
    pub tables: Vec<String>,
    /// Copy this table in full into a new table swapped in atomically, ignoring its bookmark
    /// (repeatable; it is replicated even when TABLE arguments leave it out)
    #[arg(long, value_name = "TABLE")]
    pub reload: Vec<String>,
    /// Reconcile this table's keys with the warehouse's in this run, whatever its catalog's
    /// reconcile says: rows deleted at the source are marked (_deleted_at) or deleted, as its
    /// hard_deletes says (repeatable; it is replicated even when TABLE arguments leave it out)
    #[arg(long, value_name = "TABLE")]
    pub reconcile: Vec<String>,
    /// Print the catalog (built-in and PG_REPLICATE_CATALOG merged) as the job reads it, without
    /// connecting
    #[arg(long)]
    pub print_catalog: bool,
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_struct_matches_the_variable_table() {
        job_kit::env::check_contract::<super::Config>(super::VARS).unwrap();
    }
}
