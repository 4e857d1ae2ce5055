//! pg-job: runs a named SQL script (`transform/sql/<name>.sql`) against the operational Postgres
//! database, the way `psql -v ON_ERROR_STOP=1 -1 -f` would but safer: one transaction by
//! default, statements split as psql splits them, libpq's TLS modes, a cancel request on
//! SIGTERM, and errors that name the file, line and SQLSTATE without leaking the password.

pub mod config;
pub mod run;
pub mod script;
pub mod split;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use job_kit::retry::RetryError;
use job_kit::{Context, EnvVar, Exit, Job, JobError};

pub use config::{Args, Config};

pub struct PgJob;

#[derive(Debug, thiserror::Error)]
pub enum PgJobError {
    #[error("{0}")]
    Script(#[from] script::ScriptError),
    #[error("{}:{}: {source}", .file.display(), .source.line())]
    Split {
        file: PathBuf,
        source: split::SplitError,
    },
    #[error("{} holds no statements", .file.display())]
    Empty { file: PathBuf },
    #[error(
        "{}:{line}: `{label}` would end or nest the transaction pg-job runs the script in; \
         remove it (the whole script is one transaction), or run the script without one \
         (--no-transaction, PG_JOB_NO_TRANSACTION=true, or a `-- pg-job: no-transaction` header)",
        .file.display()
    )]
    TransactionControl {
        file: PathBuf,
        line: usize,
        label: String,
    },
    #[error(
        "{} is not set (nor {}): it is needed to run a script; only --dry-run works without it",
        config::URL_VAR,
        config::URL_ALIAS
    )]
    NoUrl,
    #[error("{}: {source}", config::URL_VAR)]
    Url { source: pg_conn::UrlError },
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        source: RetryError<pg_conn::ConnectFailure>,
    },
    #[error("{0}")]
    Run(#[from] run::RunError),
    #[error("cannot write the dry run to stdout: {0}")]
    Output(std::io::Error),
}

impl JobError for PgJobError {
    fn exit(&self) -> Exit {
        match self {
            PgJobError::Script(_)
            | PgJobError::Split { .. }
            | PgJobError::Empty { .. }
            | PgJobError::TransactionControl { .. }
            | PgJobError::NoUrl
            | PgJobError::Url { .. } => Exit::Usage,
            PgJobError::Connect { source, .. }
                if source.error.as_ref().is_some_and(|e| e.refused_credentials) =>
            {
                Exit::Usage
            }
            _ => Exit::Failure,
        }
    }
}

impl Job for PgJob {
    const NAME: &'static str = "pg-job";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const ABOUT: &'static str = "Runs a named SQL script against the operational Postgres \
                                 database, statement by statement, in one transaction.";
    const VARS: &'static [EnvVar] = config::VARS;
    type Config = Config;
    type Args = Args;
    type Error = PgJobError;

    /// A run is its script's, named by its file as the run names it.
    fn scope(config: &Config, args: &Args) -> Option<(&'static str, String)> {
        let name = args.script.as_ref().or(config.pg_job_script.as_ref())?;
        let file = script::resolve(&config.pg_job_scripts_dir, name).ok()?;
        Some(("script", file.file_stem()?.to_str()?.to_owned()))
    }

    async fn run(config: Config, args: Args, context: Context) -> Result<Exit, PgJobError> {
        let name = args
            .script
            .clone()
            .or_else(|| config.pg_job_script.clone())
            .ok_or(script::ScriptError::NotNamed)?;
        let file = script::resolve(&config.pg_job_scripts_dir, &name)?;
        let source = script::read(&file)?;
        let script = split::split(&source).map_err(|source| PgJobError::Split {
            file: file.clone(),
            source,
        })?;
        if script.statements.is_empty() {
            return Err(PgJobError::Empty { file });
        }
        let mode = if config.pg_job_no_transaction || script.no_transaction {
            run::Mode::NoTransaction
        } else {
            check_no_transaction_control(&script, &file)?;
            run::Mode::Transaction
        };
        if args.dry_run {
            return match dry_run(&script, &file, mode) {
                // `pg-job --dry-run x | head` closing the pipe early is no failure.
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(Exit::Success),
                Err(err) => Err(PgJobError::Output(err)),
                Ok(()) => Ok(Exit::Success),
            };
        }

        let url = config
            .heroku_postgresql_url
            .as_ref()
            .ok_or(PgJobError::NoUrl)?;
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or(&name);
        let application_name = config
            .pg_job_application_name
            .clone()
            .unwrap_or_else(|| format!("pg-job:{stem}"));
        let connect_timeout = Duration::from_secs_f64(config.pg_job_connect_timeout_secs);
        let connection_check = Duration::from_secs_f64(config.pg_job_connection_check_secs);
        let mut target =
            pg_conn::Target::from_url(url.expose(), &application_name, connect_timeout)
                .map_err(|source| PgJobError::Url { source })?;
        target.keep_alive(connection_check);
        tracing::info!(
            script = %file.display(),
            statements = script.statements.len(),
            transaction = mode == run::Mode::Transaction,
            database = %url.redacted(),
            sslmode = target.ssl_mode.as_str(),
            "running {stem}"
        );
        target.warn_if_unverified();
        let policy = pg_conn::connect_policy(config.pg_job_connect_attempts);
        let session = pg_conn::connect(&target, &policy, &context.cancel)
            .await
            .map_err(|source| PgJobError::Connect {
                url: url.redacted(),
                source,
            })?;
        let settings = pg_conn::Settings {
            statement_timeout: config
                .pg_job_statement_timeout_secs
                .map(Duration::from_secs_f64),
            lock_timeout: config.pg_job_lock_timeout_secs.map(Duration::from_secs_f64),
            idle_in_transaction_timeout: Some(Duration::from_secs_f64(
                config.pg_job_idle_in_transaction_timeout_secs,
            )),
            connection_check: Some(connection_check),
        };
        let tally = job_kit::metrics::tally();
        job_kit::lineage::sql(&source, "postgres");
        let result = run::execute(&session, &script, &file, mode, &settings, &context.cancel).await;
        session.close().await;
        let summary = result.inspect_err(|_| {
            let failed = job_kit::metrics::Counts {
                failed_items: 1,
                ..Default::default()
            };
            tally.record("script", stem, failed, false);
        })?;
        // The rows the statements reported (inserted, updated, deleted, selected).
        let done = job_kit::metrics::Counts {
            rows: summary.rows,
            ..Default::default()
        };
        tally.record("script", stem, done, true);
        tracing::info!(
            statements = summary.statements,
            rows = summary.rows,
            seconds = (summary.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "{stem}: done, {}",
            match mode {
                run::Mode::Transaction => "committed",
                run::Mode::NoTransaction => "each statement committed on its own",
            }
        );
        Ok(Exit::Success)
    }
}

/// A `BEGIN` or `COMMIT` inside a script run in one transaction would break the all-or-nothing
/// promise (a `COMMIT` halfway makes the first half permanent): refused before connecting.
fn check_no_transaction_control(script: &split::Script<'_>, file: &Path) -> Result<(), PgJobError> {
    match script.statements.iter().find(|s| s.controls_transaction()) {
        Some(statement) => Err(PgJobError::TransactionControl {
            file: file.to_owned(),
            line: statement.line,
            label: statement.label(40),
        }),
        None => Ok(()),
    }
}

/// The statements as SQL, each under a comment with its number and line: readable, and valid
/// input for psql.
fn dry_run(script: &split::Script<'_>, file: &Path, mode: run::Mode) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "-- {}: {} statements, {}",
        file.display(),
        script.statements.len(),
        match mode {
            run::Mode::Transaction => "in one transaction",
            run::Mode::NoTransaction => "without a transaction (each commits on its own)",
        }
    )?;
    for statement in &script.statements {
        writeln!(
            out,
            "\n-- statement {}, line {}\n{};",
            statement.number, statement.line, statement.text
        )?;
    }
    out.flush()
}
