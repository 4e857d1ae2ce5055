//! Running a split script on a session: statement by statement over the simple-query protocol
//! (what psql does, so every statement psql accepts works, one round trip each), inside one
//! transaction unless the script runs without. Each statement's time and rows go to the log.
//!
//! Failure is reported so that a person can act without rerunning anything: the file and line
//! of the statement (and of the error position in it), SQLSTATE, message, detail, hint and
//! context, and what became of the changes (rolled back, or which statements stay applied).
//! A cancellation (SIGTERM) sends the server a cancel request for the running statement, so the
//! query does not run on after the pod is gone, then rolls back.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use job_kit::secret;
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::error::{DbError, ErrorPosition, SqlState};
use tokio_util::sync::CancellationToken;

use crate::split::{Script, Statement};
use pg_conn::{Session, Settings};

/// How the statements are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `BEGIN`, the statements, `COMMIT`: all or nothing.
    Transaction,
    /// Each statement commits on its own (for `VACUUM`, `CREATE INDEX CONCURRENTLY`).
    NoTransaction,
}

/// What a successful run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub statements: usize,
    pub rows: u64,
    pub elapsed: Duration,
}

/// Where the run was when it stopped.
#[derive(Debug, Clone)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub number: usize,
    pub total: usize,
    pub label: String,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: statement {} of {} ({})",
            self.file.display(),
            self.line,
            self.number,
            self.total,
            self.label
        )
    }
}

/// What became of the changes when a run stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    RolledBack,
    /// No transaction: the statements before this one stay applied.
    EarlierApplied(usize),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::RolledBack => {
                f.write_str("the transaction was rolled back: nothing of this run was applied")
            }
            Outcome::EarlierApplied(0) => f.write_str(
                "no transaction (no-transaction mode): no earlier statement had been applied",
            ),
            Outcome::EarlierApplied(1) => {
                f.write_str("no transaction (no-transaction mode): statement 1 stays applied")
            }
            Outcome::EarlierApplied(n) => write!(
                f,
                "no transaction (no-transaction mode): statements 1 to {n} stay applied"
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{location} failed:\n{}\n  {outcome}", describe(.error))]
    Statement {
        location: Location,
        error: Box<DbError>,
        outcome: Outcome,
    },
    #[error(
        "{location} was cancelled (SIGTERM/SIGINT): a cancel request was sent to the server\n  {outcome}"
    )]
    Interrupted {
        location: Location,
        outcome: Outcome,
    },
    #[error("interrupted before {location} started\n  {outcome}")]
    InterruptedBetween {
        location: Location,
        outcome: Outcome,
    },
    #[error("{location}: the connection failed: {message}\n  {}", connection_outcome(*.outcome))]
    Connection {
        location: Location,
        message: String,
        outcome: Outcome,
    },
    #[error("{}: COMMIT failed, the transaction was rolled back: nothing of this run was applied:\n{}", .file.display(), describe(.error))]
    Commit { file: PathBuf, error: Box<DbError> },
    #[error("{}: COMMIT failed ({message}); whether the transaction committed is unknown", .file.display())]
    CommitUnknown { file: PathBuf, message: String },
    #[error("{}: cannot start (BEGIN and session settings): {message}", .file.display())]
    Setup { file: PathBuf, message: String },
}

fn connection_outcome(outcome: Outcome) -> String {
    match outcome {
        Outcome::RolledBack => {
            "the transaction was not committed: the server rolls it back, nothing of this run was applied".into()
        }
        Outcome::EarlierApplied(n) => format!(
            "no transaction (no-transaction mode): statements before it ({n}) stay applied; whether this one was is unknown"
        ),
    }
}

/// The server's error as psql shows it, every part scrubbed of credentials.
fn describe(error: &DbError) -> String {
    let mut out = format!(
        "  {} {}: {}",
        error.severity(),
        error.code().code(),
        secret::scrub(error.message())
    );
    for (label, part) in [
        ("DETAIL", error.detail()),
        ("HINT", error.hint()),
        ("CONTEXT", error.where_()),
    ] {
        if let Some(part) = part {
            let _ = write!(out, "\n  {label}: {}", secret::scrub(part));
        }
    }
    if *error.code() == SqlState::ACTIVE_SQL_TRANSACTION {
        out.push_str(
            "\n  HINT: this statement cannot run inside a transaction: run the script with \
             --no-transaction, PG_JOB_NO_TRANSACTION=true, or a `-- pg-job: no-transaction` \
             header line",
        );
    }
    out
}

/// Runs `script` (read from `file`) on `session`.
pub async fn execute(
    session: &Session,
    script: &Script<'_>,
    file: &Path,
    mode: Mode,
    settings: &Settings,
    cancel: &CancellationToken,
) -> Result<Summary, RunError> {
    let started = Instant::now();
    let client = &session.client;
    let mut setup = settings.sql();
    if mode == Mode::Transaction {
        setup.insert_str(0, "BEGIN;");
    }
    if !setup.is_empty() {
        client
            .batch_execute(&setup)
            .await
            .map_err(|e| RunError::Setup {
                file: file.to_owned(),
                message: secret::scrub(&job_kit::exit::chain(&e)),
            })?;
    }
    let total = script.statements.len();
    let outcome = |done: usize| match mode {
        Mode::Transaction => Outcome::RolledBack,
        Mode::NoTransaction => Outcome::EarlierApplied(done),
    };
    let mut rows_total = 0u64;
    for statement in &script.statements {
        let location = || Location {
            file: file.to_owned(),
            line: statement.line,
            number: statement.number,
            total,
            label: statement.label(60),
        };
        let done = statement.number - 1;
        if cancel.is_cancelled() {
            rollback(session, mode).await;
            return Err(RunError::InterruptedBetween {
                location: location(),
                outcome: outcome(done),
            });
        }
        let statement_started = Instant::now();
        let result = run_cancellable(session, statement, cancel).await;
        let elapsed = statement_started.elapsed();
        match result {
            Ok(rows) if !cancel.is_cancelled() => {
                rows_total += rows;
                tracing::info!(
                    line = statement.line,
                    statement = statement.number,
                    rows,
                    ms = millis(elapsed),
                    "{}",
                    statement.label(80)
                );
            }
            // Cancelled: whatever the statement did, the run stops here.
            Ok(_) => {
                rollback(session, mode).await;
                return Err(RunError::Interrupted {
                    location: location(),
                    outcome: outcome(done),
                });
            }
            Err(_) if cancel.is_cancelled() => {
                rollback(session, mode).await;
                return Err(RunError::Interrupted {
                    location: location(),
                    outcome: outcome(done),
                });
            }
            Err(err) => {
                let Some(db) = err.as_db_error().cloned() else {
                    return Err(RunError::Connection {
                        location: location(),
                        message: secret::scrub(&job_kit::exit::chain(&err)),
                        outcome: outcome(done),
                    });
                };
                rollback(session, mode).await;
                let mut location = location();
                if let Some(ErrorPosition::Original(position)) = db.position() {
                    let at = statement.line_of_position(*position);
                    if at != statement.line {
                        location.label.push_str(&format!("; error at line {at}"));
                    }
                }
                return Err(RunError::Statement {
                    location,
                    error: Box::new(db),
                    outcome: outcome(done),
                });
            }
        }
    }
    if mode == Mode::Transaction
        && let Err(err) = client.batch_execute("COMMIT").await
    {
        return Err(match err.as_db_error() {
            Some(db) => RunError::Commit {
                file: file.to_owned(),
                error: Box::new(db.clone()),
            },
            None => RunError::CommitUnknown {
                file: file.to_owned(),
                message: secret::scrub(&job_kit::exit::chain(&err)),
            },
        });
    }
    Ok(Summary {
        statements: total,
        rows: rows_total,
        elapsed: started.elapsed(),
    })
}

fn millis(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 1e5).round() / 100.0
}

/// How long a cancelled statement may take to end before the job gives up on it.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// One statement; the number of rows it affected or returned.
async fn run_cancellable(
    session: &Session,
    statement: &Statement<'_>,
    cancel: &CancellationToken,
) -> Result<u64, tokio_postgres::Error> {
    let run = run_statement(&session.client, statement.text);
    tokio::pin!(run);
    tokio::select! {
        biased;
        result = &mut run => result,
        () = cancel.cancelled() => {
            tracing::warn!(
                line = statement.line,
                statement = statement.number,
                "cancelling the running statement on the server"
            );
            session.cancel_query().await;
            match tokio::time::timeout(CANCEL_WAIT, run).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!("the statement did not end within {CANCEL_WAIT:?} of the cancel request");
                    Ok(0)
                }
            }
        }
    }
}

async fn run_statement(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<u64, tokio_postgres::Error> {
    let messages = client.simple_query_raw(sql).await?;
    tokio::pin!(messages);
    let mut rows = 0;
    while let Some(message) = messages.try_next().await? {
        if let SimpleQueryMessage::CommandComplete(n) = message {
            rows += n;
        }
    }
    Ok(rows)
}

/// Ends the transaction after a failure (each statement of a no-transaction run has ended).
async fn rollback(session: &Session, mode: Mode) {
    if mode == Mode::Transaction {
        session.rollback().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_say_what_stays_applied() {
        assert_eq!(
            Outcome::EarlierApplied(3).to_string(),
            "no transaction (no-transaction mode): statements 1 to 3 stay applied"
        );
        assert!(
            Outcome::RolledBack
                .to_string()
                .contains("nothing of this run was applied")
        );
    }
}
