//! The environment contract of pg-replicate, and its command line besides the mirrored variables.
//! The source URL has pg-job's name and rules; the embedded warehouse has stage-import's names.

use job_kit::{EnvVar, Kind, Secret};
use serde::Deserialize;
use warehouse::snowflake::{LOAD_VARS, LoadLogin, LoadSettings};

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
    EnvVar::new(
        "PG_REPLICATE_STAGE_URL",
        Kind::Text,
        "s3://bucket/prefix where the extracts are written for Snowflake's COPY INTO (with \
         SNOWFLAKE_ACCOUNT): gzipped CSV parts below <prefix>/<schema>.<table>/<run>/; a \
         lifecycle rule on the prefix expires them",
    ),
    LOAD_VARS[0],
    LOAD_VARS[1],
    LOAD_VARS[2],
    LOAD_VARS[3],
    LOAD_VARS[4],
    LOAD_VARS[5],
    LOAD_VARS[6],
    LOAD_VARS[7],
    LOAD_VARS[8],
    LOAD_VARS[9],
    LOAD_VARS[10],
    LOAD_VARS[11],
    LOAD_VARS[12],
    s3_files::VARS[0],
    s3_files::VARS[1],
    s3_files::VARS[2],
    s3_files::VARS[3],
    s3_files::VARS[4],
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
    pub pg_replicate_stage_url: Option<String>,
    pub snowflake_account: Option<String>,
    pub snowflake_load_user: Option<String>,
    pub snowflake_load_private_key: Option<Secret<String>>,
    pub snowflake_load_private_key_path: Option<std::path::PathBuf>,
    pub snowflake_load_private_key_passphrase: Option<Secret<String>>,
    pub snowflake_load_token: Option<Secret<String>>,
    pub snowflake_load_password: Option<Secret<String>>,
    pub snowflake_load_role: String,
    pub snowflake_load_database: String,
    pub snowflake_load_warehouse: Option<String>,
    pub snowflake_url: Option<url::Url>,
    pub snowflake_storage_integration: Option<String>,
    pub snowflake_query_timeout: f64,
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<Secret<String>>,
    pub aws_session_token: Option<Secret<String>>,
    pub aws_region: String,
    pub s3_endpoint_url: Option<String>,
    pub warehouse_path: std::path::PathBuf,
    pub duckdb_memory_limit: String,
    pub duckdb_threads: Option<u32>,
}

impl Config {
    /// Snowflake's settings when `SNOWFLAKE_ACCOUNT` is set (`None`: the embedded warehouse),
    /// with the S3 stage the extracts go through; every missing variable named at once.
    pub fn snowflake(&self) -> Result<Option<(LoadSettings, s3_files::Settings, String)>, String> {
        let login = LoadLogin {
            account: self.snowflake_account.as_ref(),
            user: self.snowflake_load_user.as_ref(),
            private_key: self.snowflake_load_private_key.as_ref(),
            private_key_path: self.snowflake_load_private_key_path.as_deref(),
            passphrase: self.snowflake_load_private_key_passphrase.as_ref(),
            token: self.snowflake_load_token.as_ref(),
            password: self.snowflake_load_password.as_ref(),
            role: &self.snowflake_load_role,
            database: &self.snowflake_load_database,
            warehouse: self.snowflake_load_warehouse.as_ref(),
            url: self.snowflake_url.as_ref(),
            storage_integration: self.snowflake_storage_integration.as_ref(),
            query_timeout_secs: self.snowflake_query_timeout,
            aws_access_key_id: self.aws_access_key_id.as_ref(),
            aws_secret_access_key: self.aws_secret_access_key.as_ref(),
            aws_session_token: self.aws_session_token.as_ref(),
        };
        let Some(settings) = login.settings()? else {
            return Ok(None);
        };
        let mut missing = Vec::new();
        if self.pg_replicate_stage_url.is_none() {
            missing.push("PG_REPLICATE_STAGE_URL");
        }
        let s3 = s3_files::Settings::from_values(
            &self.aws_region,
            self.s3_endpoint_url.as_ref(),
            self.aws_access_key_id.as_ref(),
            self.aws_secret_access_key.as_ref(),
            self.aws_session_token.as_ref(),
        );
        if s3.is_none() {
            missing.push("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
        }
        let (Some(stage_url), Some(s3)) = (&self.pg_replicate_stage_url, s3) else {
            return Err(format!(
                "SNOWFLAKE_ACCOUNT is set, so the tables go to Snowflake through an S3 stage, \
                 but {} not set",
                missing.join(" and ")
            ));
        };
        crate::snowflake::parse_stage_url(stage_url)
            .map_err(|problem| format!("PG_REPLICATE_STAGE_URL {problem}"))?;
        Ok(Some((settings, s3, stage_url.clone())))
    }
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
