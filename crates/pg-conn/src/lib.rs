//! Postgres connections the way the jobs need them: libpq's URL and TLS rules (`sslmode`,
//! `sslrootcert`), connection retries that wait out what waiting can fix and stop at a wrong
//! password, the session safety nets (statement, lock and idle timeouts, the server's check that
//! the client is still there, TCP keepalives), and a cancel request for the running statement
//! on SIGTERM. Every message that leaves this crate is scrubbed of credentials.

mod connect;
mod settings;
pub mod tls;

pub use connect::{ConnectFailure, Session, Target, UrlError, connect, connect_policy};
pub use settings::Settings;
