//! The Snowflake connection layer the jobs share (stage-import, permissions): one place for
//! login, session context, statements whose results arrive later, retries, timeouts,
//! cancellation and quoting, so that each job only says what SQL to run.
//!
//! # API summary
//!
//! ```text
//! ConnectOptions::new(account, user, Credential)           pub fields: role, warehouse, database,
//!     schema (Option<String>), base_url (Option<Url>: scheme://host[:port] instead of
//!     https://<account>.snowflakecomputing.com, for PrivateLink and tests), query_timeout
//!     (Duration, default 1 h), retry (job_kit::retry::Policy)
//! Credential::{KeyPair(KeyPair), AccessToken(Secret), Password(Secret)}; KeyPair::parse(pem,
//!     passphrase) / ::read(path, passphrase) check the key (RSA, 2048-4096 bits) and give its
//!     .fingerprint() (SHA256:…) and .public_key() (for ALTER USER … SET RSA_PUBLIC_KEY);
//!     credential::resolve(&CredentialVars {names}, CredentialValues {values}) picks the one a
//!     job's variables set, or names the variable to fix or drop
//! Connection::connect(options, cancel: CancellationToken) -> Result<Connection, Error>
//!     logs in (transient failures retried), then USE ROLE / WAREHOUSE / DATABASE / SCHEMA for
//!     what the options name; `cancel` is the job's `Context.cancel`.
//! Connection: Clone + Send + Sync; every method takes &self, so many statements can be in
//!     flight at once on one session (e.g. `futures_util::stream::iter(..).buffer_unordered(8)`).
//!   .query(sql) -> Result<QueryResult, Error>            not retried once it may have run
//!   .query_idempotent(sql) -> Result<QueryResult, Error> retried even then (SELECT, SHOW, ...)
//!   .run(Statement::new(sql).idempotent().timeout(d)) -> Result<QueryResult, Error>
//!   .begin() -> Result<Transaction, Error>; Transaction::{query, commit, rollback}
//!   .close() -> Result<(), Error>                         ends the server session
//!   .base_url() -> &Url
//! QueryResult: .columns() -> &[Column] (name, type_name, nullable, scale), .len(), .is_empty(),
//!     .rows() -> iterator of Row, .raw_rows() -> &[Vec<Option<String>>], .rows_affected() ->
//!     Option<u64> (DML), .query_id() -> &str, .column_index(name) -> Result<usize, ValueError>
//! Row: .get(col) -> Result<Option<&str>, ValueError> (NULL is None), .text(col) -> &str
//!     (NULL is an error), .i64(col), .u64(col), .opt_u64(col), .bool(col), .values()
//!     Column names match exactly, else case-insensitively (`ROWS_LOADED` finds `rows_loaded`).
//! Values are text as Snowflake's JSON results give them, except: booleans `true`/`false`,
//!     DATE `2024-01-02`, TIME `03:04:05.123`, TIMESTAMP_NTZ `2024-01-02T03:04:05.123`,
//!     TIMESTAMP_LTZ `2024-01-02T03:04:05.123Z`, TIMESTAMP_TZ `2024-01-02T03:04:05.123+01:00`.
//! Error: .kind() -> ErrorKind {Config, Unavailable, Sql, Timeout, Cancelled, Indeterminate,
//!     Protocol}, .sql_error() -> Option<&SqlError {code, sql_state, message, query_id}>,
//!     impl job_kit::JobError (Config → exit 2, Cancelled → 130, others → 1).
//!     Messages never hold the credential or session tokens.
//! quote_ident(name)        a name as a person writes it: `loader` → loader (Snowflake folds it
//!                          to LOADER); anything else → "double-quoted" with "" doubled;
//!                          an already double-quoted name is kept as written
//! quote_ident_exact(name)  a name as Snowflake stores and SHOW reports it: `LOADER` → LOADER,
//!                          `loader` or `My Role` → "loader", "My Role"
//! quote_literal(value)     'single-quoted' with ' doubled and \ escaped
//! stored_name(name)        the name Snowflake stores for a name quote_ident reads: `loader` →
//!                          LOADER, `"Mixed Case"` → Mixed Case (for information_schema values)
//! ```
//!
//! # How it is built
//!
//! Everything goes through the `snowflake-api` crate's `SnowflakeApi`: it logs in, keeps and
//! renews the session tokens, numbers and sends the statements. (Its `Session` is private, so
//! there is no other way to the session.) What it lacks is added through the hook it offers,
//! the HTTP client given to `SnowflakeApiBuilder::with_client`, whose middleware (`http.rs`)
//! sends its requests to the configured base URL, asks for JSON results and a server-side
//! timeout, follows "still running" replies (333334) to the result, downloads result chunks,
//! types HTTP failures and masks session tokens; and by [`connection`], which runs each
//! statement under a probe the middleware fills in (request id, token, query id, what failed
//! where, the reply as read), and from it retries through `job_kit::retry`, aborts on
//! cancellation or timeout (REST abort-request), and builds the result. The crate's own
//! reading of a reply is not relied on: it drops the error code of replies that lack a field it
//! expects, and rejects column types it does not list.

pub mod connection;
pub mod credential;
pub mod error;
mod http;
pub mod options;
mod protocol;
pub mod quote;
pub mod result;
mod values;

pub use connection::{Connection, Statement, Transaction};
pub use credential::{Credential, CredentialVars, KeyPair, PublicKey};
pub use error::{Error, ErrorKind, SqlError};
pub use options::{ConnectOptions, login_account_name};
pub use quote::{quote_ident, quote_ident_exact, quote_literal, stored_name};
pub use result::{Column, QueryResult, Row, ValueError};
