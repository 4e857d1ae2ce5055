//! A connection: one Snowflake session, shared by every clone and usable by many statements at
//! once. Each statement runs through the `snowflake-api` crate under a probe the HTTP
//! middleware fills in; this module decides from it what happened and what to do next:
//!
//! - retry (through `job_kit::retry`) what cannot have run: a connection never made, a request
//!   turned away (429, 503), an expired session (after logging in again);
//! - retry what may have run only when the caller said the statement is idempotent;
//! - on the job's cancellation or the statement's timeout, stop waiting and abort the statement
//!   on the server (REST abort-request, by the statement's request id), so that a stopped pod
//!   leaves no COPY running behind it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use job_kit::retry::{self, Attempt, GaveUp, RetryError};
use reqwest_012 as reqwest;
use reqwest_middleware::ClientWithMiddleware;
use snowflake_api::{
    AuthArgs, AuthType, PasswordArgs, RawQueryResult, SnowflakeApi, SnowflakeApiBuilder,
    SnowflakeApiError,
};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::credential::Credential;
use crate::error::{Error, SqlError};
use crate::http::{
    self, Failure, HttpStatus, LoginOutcome, PROBE, Probe, ProbeState, Shared, Stage,
};
use crate::options::{self, ConnectOptions};
use crate::protocol::{self, AbortRequest, Reply};
use crate::quote::quote_ident;
use crate::result::{Column, QueryResult};
use crate::values;

/// Statements slower than this are reported at info level with their query id.
const LONG_STATEMENT: Duration = Duration::from_secs(10);
/// Snowflake's own timeout for a statement is the caller's plus this, so that normally the
/// caller's fires first and aborts it.
const SERVER_TIMEOUT_SLACK: Duration = Duration::from_secs(60);
/// Snowflake's limit for STATEMENT_TIMEOUT_IN_SECONDS (7 days).
const MAX_SERVER_TIMEOUT_SECONDS: u64 = 604_800;
/// How long an abort may take before the job stops waiting for it.
const ABORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a statement error messages and logs show.
const SQL_SHOWN_CHARS: usize = 120;

/// A statement and how to run it.
#[derive(Debug, Clone, Copy)]
pub struct Statement<'a> {
    sql: &'a str,
    idempotent: bool,
    timeout: Option<Duration>,
}

impl<'a> Statement<'a> {
    pub fn new(sql: &'a str) -> Self {
        Statement {
            sql,
            idempotent: false,
            timeout: None,
        }
    }

    /// Running it twice does no harm (SELECT, SHOW, DESCRIBE, CREATE ... IF NOT EXISTS, USE):
    /// it may be retried even when an attempt may have reached the server.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Overrides [`ConnectOptions::query_timeout`] for this statement.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// A Snowflake session. Cheap to clone; all clones share the session.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("base_url", &self.inner.base.as_str())
            .field("user", &self.inner.options.user)
            .finish_non_exhaustive()
    }
}

struct Inner {
    options: ConnectOptions,
    base: Url,
    client: ClientWithMiddleware,
    session: Mutex<SessionSlot>,
    cancel: CancellationToken,
    closed: AtomicBool,
}

/// The crate's session object, replaced when Snowflake says the session is gone.
struct SessionSlot {
    api: Arc<SnowflakeApi>,
    /// Counts replacements, so that statements failing together log in again only once.
    version: u64,
}

/// How a statement's wait ended.
enum Stop<T> {
    Done(T),
    Cancelled,
    TimedOut,
}

impl Connection {
    /// Logs in (retrying transient failures) and sets the session context the options name,
    /// role first. `cancel` is the job's token: when it fires, the statement running is aborted
    /// on the server and its call returns [`Error::Cancelled`].
    pub async fn connect(
        options: ConnectOptions,
        cancel: CancellationToken,
    ) -> Result<Connection, Error> {
        let base = options.validate()?;
        options.credential.register_secrets();
        let shared = Arc::new(Shared::default());
        let client = http::client(
            options::crate_host(options.account_name()),
            base.clone(),
            shared,
            http::Login {
                credential: options.credential.clone(),
                account: options.account_name().to_owned(),
                user: options.user.clone(),
                query_tag: options.query_tag.clone(),
            },
        )?;
        let api = new_api(&options, &client)?;
        tracing::info!(
            url = %job_kit::secret::redacted_url(&base),
            user = %options.user,
            credential = options.credential.describe(),
            key_fingerprint = match &options.credential {
                Credential::KeyPair(key) => key.fingerprint(),
                _ => "",
            },
            "connecting to Snowflake"
        );
        let connection = Connection {
            inner: Arc::new(Inner {
                options,
                base,
                client,
                session: Mutex::new(SessionSlot {
                    api: Arc::new(api),
                    version: 0,
                }),
                cancel,
                closed: AtomicBool::new(false),
            }),
        };
        connection.use_context().await?;
        Ok(connection)
    }

    /// Where requests go (the account's URL, or the override).
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// Runs a statement. A failure before it can have reached Snowflake is retried; once it
    /// may have run, it is not (use [`Connection::query_idempotent`] for statements that may).
    pub async fn query(&self, sql: &str) -> Result<QueryResult, Error> {
        self.run(Statement::new(sql)).await
    }

    /// Runs a statement that may safely run twice (SELECT, SHOW, ...), retrying transient
    /// failures even when an attempt may have reached the server.
    pub async fn query_idempotent(&self, sql: &str) -> Result<QueryResult, Error> {
        self.run(Statement::new(sql).idempotent()).await
    }

    pub async fn run(&self, statement: Statement<'_>) -> Result<QueryResult, Error> {
        self.execute(statement, None)
            .await
            .map(|(result, _)| result)
    }

    /// Begins a transaction on this session. Its statements run in this session or not at all:
    /// if the session ends (expiry, a new login), they fail with [`Error::SessionLost`] instead
    /// of running outside the transaction. While it is open, run nothing else on this
    /// connection or its clones: Snowflake would run it inside the transaction.
    pub async fn begin(&self) -> Result<Transaction, Error> {
        let (_, logins) = self.execute(Statement::new("BEGIN"), None).await?;
        Ok(Transaction {
            connection: self.clone(),
            logins,
            finished: false,
        })
    }

    /// Ends the server session (its temporary objects go with it). Statements after this fail
    /// with [`Error::Closed`].
    pub async fn close(&self) -> Result<(), Error> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let api = {
            let mut slot = self.inner.session.lock().unwrap_or_else(|e| e.into_inner());
            // A placeholder that never logs in takes the closed session's place.
            std::mem::replace(
                &mut slot.api,
                Arc::new(new_api(&self.inner.options, &self.inner.client)?),
            )
        };
        match Arc::try_unwrap(api) {
            Ok(mut api) => api.close_session().await.map_err(|e| Error::Protocol {
                sql: "(closing the session)".into(),
                detail: job_kit::secret::scrub(&e.to_string()),
            }),
            Err(_) => {
                tracing::warn!("statements still hold the Snowflake session; leaving it to expire");
                Ok(())
            }
        }
    }

    async fn use_context(&self) -> Result<(), Error> {
        let options = &self.inner.options;
        let context = [
            ("role", "ROLE", &options.role),
            ("warehouse", "WAREHOUSE", &options.warehouse),
            ("database", "DATABASE", &options.database),
            ("schema", "SCHEMA", &options.schema),
        ];
        let mut used = false;
        for (what, keyword, name) in context {
            let Some(name) = name.as_deref().filter(|n| !n.trim().is_empty()) else {
                continue;
            };
            used = true;
            let sql = format!("USE {keyword} {}", quote_ident(name.trim()));
            self.query_idempotent(&sql)
                .await
                .map_err(|e| match e.sql_error() {
                    Some(_) => Error::Context {
                        what,
                        name: name.to_owned(),
                        source: Box::new(e),
                    },
                    None => e,
                })?;
        }
        if !used {
            // Nothing to use: still log in now, so that a bad password fails here.
            self.query_idempotent("SELECT 1").await?;
        }
        Ok(())
    }

    /// Runs a statement; also returns the login count of the session it ran in.
    async fn execute(
        &self,
        statement: Statement<'_>,
        required_logins: Option<u64>,
    ) -> Result<(QueryResult, u64), Error> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        let shown = shown_sql(statement.sql);
        let timeout = statement
            .timeout
            .unwrap_or(self.inner.options.query_timeout);
        let server_timeout = (timeout + SERVER_TIMEOUT_SLACK)
            .as_secs()
            .min(MAX_SERVER_TIMEOUT_SECONDS);
        let started = Instant::now();
        let current: Mutex<Option<Arc<Probe>>> = Mutex::new(None);
        // The retry loop gets a token that never fires: a cancellation must not just drop the
        // attempt, it must abort the statement on the server first (below).
        let never = CancellationToken::new();
        let what = format!("`{shown}`");
        let request_id = uuid::Uuid::new_v4().to_string();
        let retries = std::sync::atomic::AtomicU32::new(0);
        let attempts = retry::retry(&self.inner.options.retry, &never, &what, |_| {
            let retry = retries.fetch_add(1, Ordering::SeqCst);
            let probe = Arc::new(Probe::new(
                server_timeout,
                required_logins,
                request_id.clone(),
                retry,
            ));
            *current.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&probe));
            self.attempt(statement, required_logins.is_some(), probe, &shown)
        });
        let stop = tokio::select! {
            biased;
            () = self.inner.cancel.cancelled() => Stop::Cancelled,
            () = tokio::time::sleep(timeout) => Stop::TimedOut,
            outcome = attempts => Stop::Done(outcome),
        };
        let probe = current.lock().unwrap_or_else(|e| e.into_inner()).take();
        let outcome = match stop {
            Stop::Done(outcome) => outcome.map_err(gave_up),
            Stop::Cancelled => Err(Error::Cancelled {
                query_id: self.abort(probe.as_deref(), statement.sql).await,
                sql: shown.clone(),
            }),
            Stop::TimedOut => Err(Error::Timeout {
                after: timeout,
                query_id: self.abort(probe.as_deref(), statement.sql).await,
                sql: shown.clone(),
            }),
        };
        let elapsed = started.elapsed();
        match &outcome {
            Ok((result, _)) => {
                tracing::debug!(
                    sql = %shown,
                    elapsed_ms = elapsed.as_millis() as u64,
                    rows = result.len(),
                    query_id = result.query_id(),
                    "statement done"
                );
                if elapsed >= LONG_STATEMENT {
                    tracing::info!(
                        query_id = result.query_id(),
                        elapsed_s = elapsed.as_secs(),
                        sql = %shown,
                        "long statement done"
                    );
                }
            }
            Err(err) => tracing::debug!(
                sql = %shown,
                elapsed_ms = elapsed.as_millis() as u64,
                query_id = err.query_id(),
                "statement failed"
            ),
        }
        outcome
    }

    /// One attempt, classified for the retry loop.
    async fn attempt(
        &self,
        statement: Statement<'_>,
        in_transaction: bool,
        probe: Arc<Probe>,
        shown: &str,
    ) -> Result<(QueryResult, u64), Attempt<Error>> {
        let (api, version) = {
            let slot = self.inner.session.lock().unwrap_or_else(|e| e.into_inner());
            (Arc::clone(&slot.api), slot.version)
        };
        let outcome = PROBE
            .scope(Arc::clone(&probe), api.exec_raw(statement.sql))
            .await;
        let state = probe.take();
        self.judge(
            outcome,
            state,
            statement.idempotent,
            in_transaction,
            shown,
            version,
        )
    }

    /// What an attempt's outcome means for the retry loop; `version` is the session it used.
    fn judge(
        &self,
        outcome: Result<RawQueryResult, SnowflakeApiError>,
        state: ProbeState,
        idempotent: bool,
        in_transaction: bool,
        shown: &str,
        version: u64,
    ) -> Result<(QueryResult, u64), Attempt<Error>> {
        let sql = || shown.to_owned();
        let url = || job_kit::secret::redacted_url(&self.inner.base);
        if state.refused {
            return Err(Attempt::Permanent(Error::SessionLost { sql: sql() }));
        }
        match &state.login {
            Some(LoginOutcome::Rejected { code, message }) => {
                return Err(Attempt::Permanent(Error::LoginRejected {
                    user: self.inner.options.user.clone(),
                    code: code.clone(),
                    message: message.clone(),
                }));
            }
            Some(LoginOutcome::Foreign { detail }) => {
                return Err(Attempt::Permanent(Error::NotSnowflake {
                    url: url(),
                    detail: detail.clone(),
                }));
            }
            Some(LoginOutcome::Accepted) | None => {}
        }
        // Whether the statement may have started: after that, only idempotent ones are retried.
        let started = |detail: String, query_id: Option<&str>| {
            let detail = match query_id {
                Some(id) => format!("{detail}; query {id}"),
                None => detail,
            };
            let error = Error::Indeterminate { sql: sql(), detail };
            if idempotent && !in_transaction {
                Attempt::transient(error)
            } else {
                Attempt::Permanent(error)
            }
        };
        // The session is gone and the statement did not run: in a transaction that is the end
        // of it, otherwise log in again and retry.
        let session_gone = || {
            if in_transaction {
                Attempt::Permanent(Error::SessionLost { sql: sql() })
            } else {
                self.renew(version);
                Attempt::transient(Error::Unavailable {
                    url: url(),
                    status: 401,
                    detail: ": the session expired".into(),
                })
            }
        };
        if let Some((stage, failure)) = state.failure {
            let query_id = state.query_id.as_deref();
            return Err(match (stage, failure) {
                (Stage::Login | Stage::Statement, Failure::NotSent(detail)) => {
                    Attempt::transient(Error::Unreachable { url: url(), detail })
                }
                (Stage::Login, Failure::Lost(detail)) => {
                    Attempt::transient(Error::Unreachable { url: url(), detail })
                }
                (Stage::Login, Failure::Status(status))
                    if status.status == 429 || status.status >= 500 =>
                {
                    unavailable(url(), status)
                }
                (Stage::Login, Failure::Status(status)) => {
                    Attempt::Permanent(Error::NotSnowflake {
                        url: url(),
                        detail: format!("it answered the login with {status}"),
                    })
                }
                // Inside a transaction, a statement turned away is not known not to have run
                // there (a proxy may answer 503 after Snowflake took it): the caller rolls back
                // and reports it rather than run it twice in the same transaction.
                (Stage::Statement, Failure::Status(status))
                    if status.turned_away() && in_transaction =>
                {
                    Attempt::Permanent(Error::Indeterminate {
                        sql: sql(),
                        detail: format!(
                            "Snowflake answered {status} inside a transaction, which is then \
                             not retried"
                        ),
                    })
                }
                (Stage::Statement, Failure::Status(status)) if status.turned_away() => {
                    unavailable(url(), status)
                }
                (Stage::Statement, Failure::Status(status))
                    if status
                        .code
                        .as_deref()
                        .is_some_and(protocol::is_session_gone) =>
                {
                    session_gone()
                }
                (Stage::Statement, Failure::Status(status)) if status.status >= 500 => {
                    started(format!("Snowflake answered {status}"), query_id)
                }
                (Stage::Statement | Stage::Result | Stage::Chunk, Failure::Lost(detail)) => {
                    started(format!("the connection broke: {detail}"), query_id)
                }
                (Stage::Result, failure) => started(
                    format!("lost track of the running statement: {failure}"),
                    query_id,
                ),
                (Stage::Chunk, failure) => started(
                    format!("its result could not be downloaded: {failure}"),
                    query_id,
                ),
                (_, failure) => Attempt::Permanent(Error::Protocol {
                    sql: sql(),
                    detail: failure.to_string(),
                }),
            });
        }
        let Some(reply) = state.reply else {
            // The crate failed without a statement reply: nothing was sent that we saw.
            let detail = outcome
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "no reply".into());
            return Err(Attempt::Permanent(Error::Protocol {
                sql: sql(),
                detail: job_kit::secret::scrub(&detail),
            }));
        };
        if !reply.success {
            let code = reply.error_code().unwrap_or("none").to_owned();
            if protocol::is_session_gone(&code) {
                return Err(if state.went_async {
                    started(
                        "the session expired while the statement ran".into(),
                        state.query_id.as_deref(),
                    )
                } else {
                    session_gone()
                });
            }
            return Err(Attempt::Permanent(Error::Sql {
                error: Box::new(SqlError {
                    code,
                    sql_state: reply.data().and_then(|d| d.sql_state.clone()),
                    message: job_kit::secret::scrub(
                        reply.message.as_deref().unwrap_or("(no message)"),
                    ),
                    query_id: reply.query_id().map(str::to_owned).or(state.query_id),
                }),
                sql: sql(),
            }));
        }
        if reply.in_progress() {
            // Never a result: the rows of a statement still running are not known yet.
            return Err(Attempt::Permanent(Error::Protocol {
                sql: sql(),
                detail: "a 'still running' reply was left unanswered".into(),
            }));
        }
        if let Err(err) = &outcome {
            // The reply is Snowflake's and complete; the crate's stricter reading of it is not
            // needed for a JSON result.
            tracing::debug!("snowflake-api could not read a reply this layer can: {err}");
        }
        match to_result(reply) {
            Ok(result) => Ok((result, state.logins)),
            Err(detail) => Err(Attempt::Permanent(Error::Protocol { sql: sql(), detail })),
        }
    }

    /// Replaces the session (a fresh login happens on the next statement), once per expiry.
    fn renew(&self, seen_version: u64) {
        let mut slot = self.inner.session.lock().unwrap_or_else(|e| e.into_inner());
        if slot.version != seen_version {
            return;
        }
        match new_api(&self.inner.options, &self.inner.client) {
            Ok(api) => {
                tracing::warn!("the Snowflake session expired; logging in again");
                slot.api = Arc::new(api);
                slot.version += 1;
            }
            Err(err) => tracing::warn!("cannot start a new Snowflake session: {err}"),
        }
    }

    /// Asks Snowflake to stop the statement `probe` watched, if it is running. Returns its
    /// query id when known.
    async fn abort(&self, probe: Option<&Probe>, sql: &str) -> Option<String> {
        let probe = probe?;
        let Some((request_id, authorization, query_id)) = probe.running() else {
            return probe.query_id();
        };
        let shown_id = query_id.as_deref().unwrap_or("(id not known yet)");
        let url = http::url_for(
            &self.inner.base,
            protocol::ABORT_REQUEST_PATH,
            &uuid::Uuid::new_v4().to_string(),
        );
        let request = self
            .inner
            .client
            .post(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::AUTHORIZATION, authorization)
            .json(&AbortRequest {
                sql_text: sql,
                request_id: &request_id,
            })
            .send();
        match tokio::time::timeout(ABORT_TIMEOUT, request).await {
            Ok(Ok(response)) => match response.json::<Reply>().await {
                Ok(reply) if reply.success => {
                    tracing::info!(query_id = shown_id, "aborted the statement on the server");
                }
                Ok(reply) => tracing::warn!(
                    query_id = shown_id,
                    code = reply.error_code(),
                    "Snowflake did not abort the statement: {}",
                    job_kit::secret::scrub(reply.message.as_deref().unwrap_or("(no message)"))
                ),
                Err(err) => {
                    tracing::warn!(query_id = shown_id, "abort-request reply unreadable: {err}")
                }
            },
            Ok(Err(err)) => tracing::warn!(
                query_id = shown_id,
                "could not abort the statement: {}; Snowflake stops it at its statement timeout",
                Failure::of(&err)
            ),
            Err(_) => tracing::warn!(
                query_id = shown_id,
                "no answer to abort-request within {ABORT_TIMEOUT:?}; Snowflake stops the \
                 statement at its statement timeout"
            ),
        }
        query_id
    }
}

/// A transaction; see [`Connection::begin`]. Commit or roll it back: dropped, it stays open
/// until the session ends, when Snowflake rolls it back.
#[derive(Debug)]
pub struct Transaction {
    connection: Connection,
    logins: u64,
    finished: bool,
}

impl Transaction {
    /// Runs a statement inside the transaction (never retried once it may have run).
    pub async fn query(&self, sql: &str) -> Result<QueryResult, Error> {
        self.run(Statement::new(sql)).await
    }

    pub async fn run(&self, statement: Statement<'_>) -> Result<QueryResult, Error> {
        self.connection
            .execute(statement, Some(self.logins))
            .await
            .map(|(result, _)| result)
    }

    pub async fn commit(mut self) -> Result<(), Error> {
        self.finished = true;
        self.query("COMMIT").await.map(drop)
    }

    pub async fn rollback(mut self) -> Result<(), Error> {
        self.finished = true;
        self.query("ROLLBACK").await.map(drop)
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.finished {
            tracing::warn!(
                "a transaction was dropped without COMMIT or ROLLBACK; Snowflake rolls it back \
                 when the session ends"
            );
        }
    }
}

fn new_api(options: &ConnectOptions, client: &ClientWithMiddleware) -> Result<SnowflakeApi, Error> {
    // Login parameters set the context of every session, the ones the crate opens by itself
    // after its master token expires included. It upper-cases them, which is right only for
    // plain names; other names are set by `USE` after the first login alone.
    let plain = |name: &Option<String>| {
        name.as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty() && quote_ident(n) == *n)
            .map(str::to_owned)
    };
    SnowflakeApiBuilder::new(AuthArgs {
        account_identifier: options.account_name().to_owned(),
        warehouse: plain(&options.warehouse),
        database: plain(&options.database),
        schema: plain(&options.schema),
        username: options.user.clone(),
        role: plain(&options.role),
        // The middleware writes the real credential into every login request (credential.rs).
        auth_type: AuthType::Password(PasswordArgs {
            password: "(written in by snowflake-conn)".to_owned(),
        }),
    })
    .with_client(client.clone())
    .build()
    .map_err(|e| Error::InvalidOptions(job_kit::secret::scrub(&e.to_string())))
}

fn unavailable(url: String, status: HttpStatus) -> Attempt<Error> {
    Attempt::Transient {
        retry_after: status.retry_after,
        error: Error::Unavailable {
            url,
            status: status.status,
            detail: status.detail,
        },
    }
}

fn gave_up(err: RetryError<Error>) -> Error {
    let Some(last) = err.error else {
        return Error::Protocol {
            sql: String::new(),
            detail: "interrupted before the first attempt ended".into(),
        };
    };
    match err.reason {
        GaveUp::Permanent => last,
        _ if err.attempts <= 1 => last,
        _ => Error::GaveUp {
            attempts: err.attempts,
            last: Box::new(last),
        },
    }
}

/// A statement's JSON reply as a [`QueryResult`]; `Err` says what is wrong with it.
fn to_result(reply: Reply) -> Result<QueryResult, String> {
    let data = reply.data.unwrap_or_default();
    let columns: Vec<Column> = data.rowtype.into_iter().map(Column::from).collect();
    let rows = match (data.rowset, data.rowset_base64) {
        (Some(rows), _) => rows,
        (None, Some(arrow)) if !arrow.is_empty() => {
            return Err("Snowflake sent an Arrow result although JSON was asked for".into());
        }
        _ => Vec::new(),
    };
    let dml = protocol::is_dml(data.statement_type_id);
    if let Some(total) = data.total.filter(|_| !dml)
        && usize::try_from(total).ok() != Some(rows.len())
    {
        return Err(format!(
            "the reply promised {total} rows but held {}",
            rows.len()
        ));
    }
    let mut values = Vec::with_capacity(rows.len());
    for (n, row) in rows.into_iter().enumerate() {
        if row.len() != columns.len() {
            return Err(format!(
                "row {n} has {} values for {} columns",
                row.len(),
                columns.len()
            ));
        }
        let row = row
            .into_iter()
            .zip(&columns)
            .map(|(value, column)| {
                let raw = match value {
                    serde_json::Value::Null => return Ok(None),
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                values::normalize(&column.type_name, raw)
                    .map(Some)
                    .map_err(|why| format!("column {:?} of row {n}: {why}", column.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        values.push(row);
    }
    let rows_affected = dml.then(|| {
        let first = values.first();
        columns
            .iter()
            .enumerate()
            .filter(|(_, c)| protocol::counts_changed_rows(&c.name))
            .filter_map(|(i, _)| first?.get(i)?.as_deref()?.parse::<u64>().ok())
            .sum()
    });
    Ok(QueryResult {
        query_id: data.query_id.unwrap_or_default(),
        columns,
        rows: values,
        rows_affected,
    })
}

/// The start of a statement, on one line, with credentials masked, for logs and errors.
fn shown_sql(sql: &str) -> String {
    let one_line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    http::shorten(&job_kit::secret::scrub(&one_line), SQL_SHOWN_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(json: serde_json::Value) -> Reply {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn json_results_become_rows_with_nulls() {
        let result = to_result(reply(serde_json::json!({
            "success": true,
            "data": {
                "queryId": "q-1", "total": 2, "statementTypeId": 4096,
                "rowtype": [{"name": "A", "type": "fixed", "nullable": true},
                            {"name": "C", "type": "timestamp_ntz", "nullable": true}],
                "rowset": [["1", "1704164645.123000000"], [null, null]]
            }
        })))
        .unwrap();
        assert_eq!(result.query_id(), "q-1");
        assert_eq!(
            result.raw_rows(),
            [
                vec![Some("1".into()), Some("2024-01-02T03:04:05.123".into())],
                vec![None, None]
            ]
        );
        assert_eq!(result.rows_affected(), None);
    }

    #[test]
    fn dml_results_count_changed_rows() {
        let result = to_result(reply(serde_json::json!({
            "success": true,
            "data": {"total": 3, "statementTypeId": 0x3200,
                "rowtype": [{"name": "number of rows updated", "type": "fixed"},
                            {"name": "number of multi-joined rows updated", "type": "fixed"}],
                "rowset": [["2", "1"]]}
        })))
        .unwrap();
        assert_eq!(result.rows_affected(), Some(3));
    }

    #[test]
    fn incomplete_or_arrow_results_are_refused() {
        let short = to_result(reply(serde_json::json!({"success": true, "data": {
            "total": 5, "statementTypeId": 4096, "rowtype": [{"name": "A", "type": "text"}],
            "rowset": [["x"]]}})));
        assert_eq!(short.unwrap_err(), "the reply promised 5 rows but held 1");
        let arrow = to_result(reply(serde_json::json!({"success": true, "data": {
            "rowtype": [{"name": "A", "type": "text"}], "rowsetBase64": "QUJD"}})));
        assert!(arrow.unwrap_err().contains("Arrow"));
        let ragged = to_result(reply(serde_json::json!({"success": true, "data": {
            "rowtype": [{"name": "A", "type": "text"}], "rowset": [["x", "y"]]}})));
        assert!(ragged.unwrap_err().contains("2 values for 1 columns"));
    }

    #[test]
    fn statements_are_shown_short_on_one_line_and_scrubbed() {
        job_kit::secret::register("AKIA-registered-secret-1");
        let sql = "CREATE STAGE s\n  URL='s3://b/p'\n  CREDENTIALS=(AWS_KEY_ID='AKIA-registered-secret-1' \
                   AWS_SECRET_KEY='abc/def+ghi')";
        let shown = shown_sql(sql);
        assert!(
            shown.starts_with("CREATE STAGE s URL='s3://b/p' CREDENTIALS="),
            "{shown}"
        );
        assert!(!shown.contains("AKIA-registered-secret-1"), "{shown}");
        assert!(!shown.contains("abc/def+ghi"), "{shown}");
        assert!(shown_sql(&"x".repeat(500)).ends_with('…'));
    }
}
