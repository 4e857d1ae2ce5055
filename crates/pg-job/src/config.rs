//! The environment contract of pg-job, and its command line besides the mirrored variables.
//! `HEROKU_POSTGRESQL_URL` is the name existing Secrets use; `DATABASE_URL` is read too.

use job_kit::{EnvVar, Kind, Secret};
use serde::Deserialize;

pub const URL_VAR: &str = "HEROKU_POSTGRESQL_URL";
pub const URL_ALIAS: &str = "DATABASE_URL";
pub const SCRIPT_VAR: &str = "PG_JOB_SCRIPT";

pub const VARS: &[EnvVar] = &[
    EnvVar::new(
        URL_VAR,
        Kind::Url,
        "Postgres URL to run the script against: postgres://user:password@host:port/db, with \
         libpq's sslmode (default require; plain text only with sslmode=disable) and sslrootcert. Needed to run a \
         script; --dry-run does not connect",
    )
    .secret()
    .aliases(&[URL_ALIAS]),
    EnvVar::new(
        SCRIPT_VAR,
        Kind::Text,
        "Script to run: a file name in the scripts directory, without .sql; hyphens and \
         underscores are interchangeable. The SCRIPT argument wins",
    ),
    EnvVar::new(
        "PG_JOB_SCRIPTS_DIR",
        Kind::Path,
        "Directory of the .sql scripts; a relative path is taken from the working directory \
         (the image's is /, holding /transform/sql)",
    )
    .default("transform/sql")
    .flag("scripts-dir"),
    EnvVar::new(
        "PG_JOB_NO_TRANSACTION",
        Kind::Bool,
        "Run each statement on its own instead of the whole script in one transaction (for \
         VACUUM, CREATE INDEX CONCURRENTLY); a script can ask for it with a \
         `-- pg-job: no-transaction` header line",
    )
    .default("false")
    .flag("no-transaction"),
    EnvVar::new(
        "PG_JOB_STATEMENT_TIMEOUT_SECS",
        Kind::Seconds,
        "Longest a statement may run (the session's statement_timeout)",
    )
    .default("3600"),
    EnvVar::new(
        "PG_JOB_LOCK_TIMEOUT_SECS",
        Kind::Seconds,
        "Longest a statement may wait for a lock (lock_timeout)",
    )
    .default("60"),
    EnvVar::new(
        "PG_JOB_IDLE_IN_TRANSACTION_TIMEOUT_SECS",
        Kind::Seconds,
        "Longest the session may sit idle inside a transaction before the server ends it \
         (idle_in_transaction_session_timeout)",
    )
    .default("300"),
    EnvVar::new(
        "PG_JOB_CONNECTION_CHECK_SECS",
        Kind::Seconds,
        "How often the server checks, while a statement runs, that pg-job is still there, and \
         cancels the statement (and frees its locks) if it was killed \
         (client_connection_check_interval, PostgreSQL 14 and later); also the TCP keepalive \
         idle time",
    )
    .default("10"),
    EnvVar::new(
        "PG_JOB_CONNECT_TIMEOUT_SECS",
        Kind::Seconds,
        "Timeout of one connection attempt (TCP, TLS and login)",
    )
    .default("10"),
    EnvVar::new(
        "PG_JOB_CONNECT_ATTEMPTS",
        Kind::Integer { min: 1, max: 20 },
        "Connection attempts in all before giving up (refused, reset, timed out, server starting \
         up or full are retried; a wrong password is not)",
    )
    .default("5"),
    EnvVar::new(
        "PG_JOB_APPLICATION_NAME",
        Kind::Text,
        "application_name the session shows in pg_stat_activity; default pg-job:<script>, or \
         the URL's application_name",
    ),
];

#[derive(Debug, Deserialize)]
pub struct Config {
    pub heroku_postgresql_url: Option<Secret<url::Url>>,
    pub pg_job_script: Option<String>,
    pub pg_job_scripts_dir: std::path::PathBuf,
    pub pg_job_no_transaction: bool,
    pub pg_job_statement_timeout_secs: Option<f64>,
    pub pg_job_lock_timeout_secs: Option<f64>,
    pub pg_job_idle_in_transaction_timeout_secs: f64,
    pub pg_job_connection_check_secs: f64,
    pub pg_job_connect_timeout_secs: f64,
    pub pg_job_connect_attempts: u32,
    pub pg_job_application_name: Option<String>,
}

/// The command line besides the flags that mirror the variables.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Script to run (wins over PG_JOB_SCRIPT): e.g. account-arr for transform/sql/account_arr.sql
    #[arg(value_name = "SCRIPT")]
    pub script: Option<String>,
    /// List the script's statements with their line numbers, without connecting
    #[arg(long)]
    pub dry_run: bool,
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_struct_matches_the_variable_table() {
        job_kit::env::check_contract::<super::Config>(super::VARS).unwrap();
    }
}
