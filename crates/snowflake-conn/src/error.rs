//! What can go wrong talking to Snowflake, in words a data engineer can act on, and sorted into
//! kinds that decide a job's exit code: a wrong password or a missing warehouse is
//! configuration (exit 2, retrying will not help), an outage or a failed statement is a failure
//! (exit 1), a signal is an interruption (130).
//!
//! Text that comes from the server passes through `job_kit::secret::scrub` before it lands in
//! an error, and statements are shown by a scrubbed prefix only.

use std::fmt;
use std::time::Duration;

use job_kit::{Exit, JobError};

use crate::result::ValueError;

/// How an [`Error`] should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The connection settings are wrong (account, URL, user, password, role, warehouse,
    /// database, schema): retrying cannot help.
    Config,
    /// Snowflake could not be reached or kept failing after the retries.
    Unavailable,
    /// Snowflake ran the statement and rejected it (the SQL error has its code).
    Sql,
    /// The statement ran longer than its timeout; it was aborted on the server.
    Timeout,
    /// The job was told to stop; the statement was aborted on the server.
    Cancelled,
    /// The statement may or may not have run (the connection broke after it was sent); it was
    /// not repeated because it was not marked idempotent.
    Indeterminate,
    /// Snowflake's reply could not be understood, or the session ended mid-transaction.
    Protocol,
}

/// Snowflake's own description of a failed statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// Snowflake's error code, e.g. `002003` (object does not exist or not authorized).
    pub code: String,
    pub sql_state: Option<String>,
    pub message: String,
    pub query_id: Option<String>,
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Snowflake error {}", self.code)?;
        if let Some(state) = &self.sql_state {
            write!(f, " ({state})")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(id) = &self.query_id {
            write!(f, " [query {id}]")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid Snowflake connection settings: {0}")]
    InvalidOptions(String),

    #[error("cannot reach Snowflake at {url}: {detail}")]
    Unreachable { url: String, detail: String },

    #[error("Snowflake at {url} answered HTTP {status}{detail}")]
    Unavailable {
        url: String,
        status: u16,
        detail: String,
    },

    #[error(
        "{url} does not answer like Snowflake ({detail}): check the account identifier and the \
         base URL"
    )]
    NotSnowflake { url: String, detail: String },

    #[error(
        "Snowflake refused the login of user {user}: {message} (code {code}){}",
        login_hint(.code)
    )]
    LoginRejected {
        user: String,
        code: String,
        message: String,
    },

    #[error("cannot use {what} {name}: {source}")]
    Context {
        /// `role`, `warehouse`, `database` or `schema`.
        what: &'static str,
        name: String,
        #[source]
        source: Box<Error>,
    },

    #[error("{error}\n  in: {sql}")]
    Sql { error: Box<SqlError>, sql: String },

    #[error("statement did not finish within {after:?}{}; aborted it\n  in: {sql}", query_suffix(.query_id))]
    Timeout {
        after: Duration,
        sql: String,
        query_id: Option<String>,
    },

    #[error("cancelled{}; aborted the statement\n  in: {sql}", query_suffix(.query_id))]
    Cancelled {
        sql: String,
        query_id: Option<String>,
    },

    #[error(
        "the statement may or may not have run ({detail}); not repeated, since running it twice \
         may not be safe\n  in: {sql}"
    )]
    Indeterminate { sql: String, detail: String },

    #[error("Snowflake's reply could not be read: {detail}\n  in: {sql}")]
    Protocol { sql: String, detail: String },

    #[error(
        "the Snowflake session ended during a transaction: nothing since BEGIN was committed\n  \
         in: {sql}"
    )]
    SessionLost { sql: String },

    #[error("the connection is closed")]
    Closed,

    #[error("{last} (gave up after {attempts} attempts)")]
    GaveUp { attempts: u32, last: Box<Error> },

    #[error(transparent)]
    Value(#[from] ValueError),
}

/// What to do about a refused login, where Snowflake's code says which prerequisite is missing.
fn login_hint(code: &str) -> &'static str {
    match code {
        // "Network policy is required.": a programmatic access token is used only by a user
        // subject to a network policy (Snowflake's default NETWORK_POLICY_EVALUATION).
        "390432" => {
            ". A programmatic access token works only for a user subject to a network \
             policy: CREATE NETWORK POLICY ... ALLOWED_NETWORK_RULE_LIST = (...), then ALTER \
             USER <user> SET NETWORK_POLICY = <policy> (README: \"Programmatic access tokens\")"
        }
        _ => "",
    }
}

fn query_suffix(query_id: &Option<String>) -> String {
    query_id
        .as_deref()
        .map(|id| format!(" (query {id})"))
        .unwrap_or_default()
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidOptions(_)
            | Error::NotSnowflake { .. }
            | Error::LoginRejected { .. }
            | Error::Context { .. } => ErrorKind::Config,
            Error::Unreachable { .. } | Error::Unavailable { .. } | Error::Closed => {
                ErrorKind::Unavailable
            }
            Error::Sql { .. } => ErrorKind::Sql,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::Indeterminate { .. } => ErrorKind::Indeterminate,
            Error::Protocol { .. } | Error::SessionLost { .. } | Error::Value(_) => {
                ErrorKind::Protocol
            }
            Error::GaveUp { last, .. } => last.kind(),
        }
    }

    /// Snowflake's code and message, when the statement itself failed.
    pub fn sql_error(&self) -> Option<&SqlError> {
        match self {
            Error::Sql { error, .. } => Some(error),
            Error::Context { source, .. } | Error::GaveUp { last: source, .. } => {
                source.sql_error()
            }
            _ => None,
        }
    }

    /// The id of the query the error is about, when Snowflake gave one (for its query history).
    pub fn query_id(&self) -> Option<&str> {
        match self {
            Error::Sql { error, .. } => error.query_id.as_deref(),
            Error::Timeout { query_id, .. } | Error::Cancelled { query_id, .. } => {
                query_id.as_deref()
            }
            Error::Context { source, .. } | Error::GaveUp { last: source, .. } => source.query_id(),
            _ => None,
        }
    }
}

impl JobError for Error {
    fn exit(&self) -> Exit {
        match self.kind() {
            ErrorKind::Config => Exit::Usage,
            ErrorKind::Cancelled => Exit::Interrupted,
            _ => Exit::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_decide_the_exit_code() {
        let rejected = Error::LoginRejected {
            user: "ETL".into(),
            code: "390100".into(),
            message: "Incorrect username or password was specified.".into(),
        };
        assert_eq!(rejected.exit(), Exit::Usage);
        let no_policy = Error::LoginRejected {
            user: "LOADER".into(),
            code: "390432".into(),
            message: "Network policy is required.".into(),
        };
        assert_eq!(no_policy.exit(), Exit::Usage);
        assert!(
            no_policy
                .to_string()
                .contains("ALTER USER <user> SET NETWORK_POLICY"),
            "{no_policy}"
        );
        let gave_up = Error::GaveUp {
            attempts: 3,
            last: Box::new(Error::Unreachable {
                url: "https://x".into(),
                detail: "connection refused".into(),
            }),
        };
        assert_eq!(gave_up.kind(), ErrorKind::Unavailable);
        assert_eq!(gave_up.exit(), Exit::Failure);
        assert!(gave_up.to_string().ends_with("(gave up after 3 attempts)"));
        let cancelled = Error::Cancelled {
            sql: "COPY INTO t".into(),
            query_id: Some("01ab".into()),
        };
        assert_eq!(cancelled.exit(), Exit::Interrupted);
        assert_eq!(
            cancelled.to_string(),
            "cancelled (query 01ab); aborted the statement\n  in: COPY INTO t"
        );
    }

    #[test]
    fn sql_errors_show_code_state_message_and_query() {
        let err = Error::Context {
            what: "database",
            name: "RAW".into(),
            source: Box::new(Error::Sql {
                error: Box::new(SqlError {
                    code: "002043".into(),
                    sql_state: Some("02000".into()),
                    message: "Object does not exist, or operation cannot be performed.".into(),
                    query_id: Some("01b0-q".into()),
                }),
                sql: "USE DATABASE RAW".into(),
            }),
        };
        assert_eq!(err.kind(), ErrorKind::Config);
        assert_eq!(err.sql_error().map(|e| e.code.as_str()), Some("002043"));
        assert_eq!(err.query_id(), Some("01b0-q"));
        assert_eq!(
            err.to_string(),
            "cannot use database RAW: Snowflake error 002043 (02000): Object does not exist, or \
             operation cannot be performed. [query 01b0-q]\n  in: USE DATABASE RAW"
        );
    }
}
