//! From the database URL to a connected session: libpq's TLS parameters are taken out of the
//! URL (tokio-postgres knows only `disable`, `prefer` and `require`, and no `sslrootcert`),
//! the rest is tokio-postgres's own URL syntax. Connecting is retried while the failure is one
//! that waiting can fix (refused, reset, timed out, the server starting up or full); a wrong
//! password or database is not retried.

use std::time::Duration;

use futures_util::StreamExt;
use job_kit::retry::{self, Attempt, RetryError};
use job_kit::secret;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client};
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::CancellationToken;

use crate::tls::{self, RootCert, SslMode, Verification};

/// Where and how to connect.
pub struct Target {
    pub config: tokio_postgres::Config,
    pub ssl_mode: SslMode,
    pub verification: Verification,
    pub tls: MakeRustlsConnect,
    pub connect_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("sslmode={0:?} is not one of disable, allow, prefer, require, verify-ca, verify-full")]
    SslMode(String),
    #[error(
        "sslrootcert=system needs sslmode=verify-full (libpq refuses weaker modes with the system CAs), not {0}"
    )]
    WeakModeWithSystemRoots(&'static str),
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("not a connection URL tokio-postgres accepts: {0}")]
    Syntax(String),
}

impl Target {
    /// Reads `url` (a `postgres://` or `postgresql://` URL) with libpq's meaning of `sslmode`
    /// and `sslrootcert`. `application_name` applies unless the URL sets one.
    pub fn from_url(
        url: &url::Url,
        application_name: &str,
        connect_timeout: Duration,
    ) -> Result<Target, UrlError> {
        let mut ssl_mode = None;
        let mut root_cert = RootCert::Unset;
        let mut rest = Vec::new();
        for (key, value) in url.query_pairs() {
            match &*key {
                "sslmode" => {
                    ssl_mode = Some(
                        SslMode::parse(&value)
                            .ok_or_else(|| UrlError::SslMode(value.clone().into_owned()))?,
                    );
                }
                "sslrootcert" if value == "system" => root_cert = RootCert::System,
                "sslrootcert" => root_cert = RootCert::File(value.into_owned().into()),
                _ => rest.push((key.into_owned(), value.into_owned())),
            }
        }
        let ssl_mode = match (ssl_mode, &root_cert) {
            (None, RootCert::System) => SslMode::VerifyFull,
            // libpq would take `prefer`, and so connect in plain text to a server without TLS.
            (None, _) => SslMode::Require,
            (Some(mode), RootCert::System) if mode < SslMode::VerifyFull => {
                return Err(UrlError::WeakModeWithSystemRoots(mode.as_str()));
            }
            (Some(mode), _) => mode,
        };
        let mut plain = url.clone();
        plain.set_query(None);
        if !rest.is_empty() {
            plain.query_pairs_mut().extend_pairs(rest);
        }
        let mut config: tokio_postgres::Config =
            plain.as_str().parse().map_err(|e: tokio_postgres::Error| {
                UrlError::Syntax(secret::scrub(&job_kit::exit::chain(&e)))
            })?;
        if config.get_application_name().is_none() {
            config.application_name(application_name);
        }
        config.connect_timeout(connect_timeout);
        config.ssl_mode(match ssl_mode {
            SslMode::Disable | SslMode::Allow => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        let verification = Verification::for_mode(ssl_mode, &root_cert);
        let tls = MakeRustlsConnect::new(tls::client_config(verification, &root_cert)?);
        Ok(Target {
            config,
            ssl_mode,
            verification,
            tls,
            connect_timeout,
        })
    }
}

impl Target {
    /// TCP keepalives every `interval` (at least a second: TCP counts whole seconds), so that a
    /// dead peer (a node gone, a NAT that dropped the flow) is noticed, not waited on.
    pub fn keep_alive(&mut self, interval: Duration) {
        let interval = interval.max(Duration::from_secs(1));
        self.config
            .keepalives(true)
            .keepalives_idle(interval)
            .keepalives_interval(interval)
            .keepalives_retries(3);
    }

    /// Says so in the log when TLS is on but the server's identity is not checked.
    pub fn warn_if_unverified(&self) {
        if self.ssl_mode > SslMode::Disable && self.verification == Verification::None {
            tracing::warn!(
                sslmode = self.ssl_mode.as_str(),
                "the server's TLS certificate is not verified, so its identity is not checked: \
                 add sslmode=verify-full (and sslrootcert=<CA file> or sslrootcert=system)"
            );
        }
    }
}

/// How connecting is retried: `max_attempts` in all, within two minutes.
pub fn connect_policy(max_attempts: u32) -> retry::Policy {
    retry::Policy {
        max_attempts,
        initial_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(10),
        max_elapsed: Duration::from_secs(120),
    }
}

/// Why connecting failed, as shown to people (already scrubbed of credentials).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConnectFailure {
    pub message: String,
    /// The server refused who we are or where we asked to go: fix the URL or the account.
    pub refused_credentials: bool,
}

/// A connected session: the client, and the task that drives its connection and logs the
/// server's notices.
pub struct Session {
    pub client: Client,
    pub tls: MakeRustlsConnect,
    driver: tokio::task::JoinHandle<()>,
}

impl Session {
    /// Asks the server to cancel the statement running on this session (over a new connection,
    /// with the session's cancel key), so that it does not run on after the job is gone.
    pub async fn cancel_query(&self) {
        if let Err(err) = self
            .client
            .cancel_token()
            .cancel_query(self.tls.clone())
            .await
        {
            tracing::warn!(
                "the cancel request failed: {}",
                secret::scrub(&job_kit::exit::chain(&err))
            );
        }
    }

    /// Ends the open transaction after a failure. Dropping the connection would roll back too;
    /// an explicit ROLLBACK makes it happen now, before the job reports.
    pub async fn rollback(&self) {
        match tokio::time::timeout(
            Duration::from_secs(5),
            self.client.batch_execute("ROLLBACK"),
        )
        .await
        {
            Ok(Ok(())) => tracing::debug!("rolled back"),
            Ok(Err(err)) => tracing::warn!(
                "ROLLBACK failed ({}); the server rolls back when the connection closes",
                secret::scrub(&job_kit::exit::chain(&err))
            ),
            Err(_) => tracing::warn!(
                "ROLLBACK did not answer in 5 s; the server rolls back when the connection closes"
            ),
        }
    }

    /// Closes the connection and waits (briefly) for its task to end.
    pub async fn close(self) {
        drop(self.client);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.driver).await;
    }
}

/// Connects, retrying transient failures per `policy`; cancellation stops the retries.
pub async fn connect(
    target: &Target,
    policy: &retry::Policy,
    cancel: &CancellationToken,
) -> Result<Session, RetryError<ConnectFailure>> {
    retry::retry(policy, cancel, "connecting to Postgres", |_| async {
        match tokio::time::timeout(target.connect_timeout, connect_once(target)).await {
            Ok(result) => result.map_err(classify),
            Err(_) => Err(Attempt::transient(ConnectFailure {
                message: format!(
                    "no answer within {:?} (connect, TLS and login)",
                    target.connect_timeout
                ),
                refused_credentials: false,
            })),
        }
    })
    .await
}

async fn connect_once(target: &Target) -> Result<Session, tokio_postgres::Error> {
    let first = target.config.connect(target.tls.clone()).await;
    let (client, connection) = match first {
        // libpq's `allow`: plain first; TLS only if the server turns plain away.
        Err(err) if target.ssl_mode == SslMode::Allow && err.as_db_error().is_some() => {
            tracing::debug!("the server refused a plain connection; trying TLS (sslmode=allow)");
            let mut config = target.config.clone();
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            config.connect(target.tls.clone()).await?
        }
        other => other?,
    };
    let driver = tokio::spawn(async move {
        let mut connection = connection;
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notice(notice)) => log_notice(&notice),
                Ok(_) => {}
                Err(err) => {
                    tracing::debug!("connection ended: {}", secret::scrub(&err.to_string()));
                    break;
                }
            }
        }
    });
    Ok(Session {
        client,
        tls: target.tls.clone(),
        driver,
    })
}

/// `RAISE NOTICE` and friends: psql prints them, so the log shows them.
fn log_notice(notice: &tokio_postgres::error::DbError) {
    let text = secret::scrub(notice.message());
    match notice.severity() {
        "WARNING" => tracing::warn!(severity = notice.severity(), "server: {text}"),
        severity => tracing::info!(severity, "server: {text}"),
    }
}

fn classify(err: tokio_postgres::Error) -> Attempt<ConnectFailure> {
    let message = secret::scrub(&job_kit::exit::chain(&err));
    if let Some(db) = err.as_db_error() {
        let code = db.code();
        let class = &code.code()[..2];
        let refused_credentials = class == "28" || *code == SqlState::INVALID_CATALOG_NAME;
        let failure = ConnectFailure {
            message,
            refused_credentials,
        };
        // 08: connection trouble; 53: out of connections or memory; 57P03: starting up.
        return if class == "08" || class == "53" || *code == SqlState::CANNOT_CONNECT_NOW {
            Attempt::transient(failure)
        } else {
            Attempt::Permanent(failure)
        };
    }
    let failure = ConnectFailure {
        message,
        refused_credentials: false,
    };
    if is_transient_io(&err) {
        Attempt::transient(failure)
    } else {
        Attempt::Permanent(failure)
    }
}

/// A network failure (refused, reset, unreachable, name lookup) is worth another try; a TLS
/// verification failure or a malformed answer is not.
fn is_transient_io(err: &tokio_postgres::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(inner) = source {
        if inner.downcast_ref::<rustls::Error>().is_some() {
            return false;
        }
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|e| e.downcast_ref::<rustls::Error>().is_some())
            {
                return false;
            }
            return !matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::InvalidInput
                    | std::io::ErrorKind::PermissionDenied
            );
        }
        source = inner.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Result<Target, UrlError> {
        Target::from_url(
            &url::Url::parse(url).unwrap(),
            "pg-conn:test",
            Duration::from_secs(3),
        )
    }

    #[test]
    fn libpq_tls_parameters_are_taken_out_of_the_url() {
        let t = target(
            "postgres://etl:pw@db.example.com:6543/sales?sslmode=verify-ca&sslrootcert=system&application_name=mine",
        );
        assert!(
            matches!(t, Err(UrlError::WeakModeWithSystemRoots("verify-ca"))),
            "{:?}",
            t.err()
        );
        let t = target("postgres://etl:pw@db.example.com:6543/sales?application_name=mine&sslmode=require&connect_timeout=7").unwrap();
        assert_eq!(t.ssl_mode, SslMode::Require);
        assert_eq!(t.config.get_application_name(), Some("mine"));
        assert_eq!(t.config.get_dbname(), Some("sales"));
        assert_eq!(t.config.get_user(), Some("etl"));
        assert_eq!(t.config.get_ports(), [6543]);
        assert_eq!(
            t.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        let t = target("postgresql://etl@localhost/sales").unwrap();
        assert_eq!(t.ssl_mode, SslMode::Require);
        assert_eq!(t.verification, Verification::None);
        assert_eq!(
            t.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert_eq!(t.config.get_application_name(), Some("pg-conn:test"));
        let t = target("postgres://etl@h/db?sslmode=allow").unwrap();
        assert_eq!(
            t.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
    }

    #[test]
    fn bad_parameters_are_named_without_the_password() {
        let err = target("postgres://etl:hunter22@h/db?sslmode=verify_full")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("sslmode=\"verify_full\" is not one of"),
            "{err}"
        );
        let err = target("postgres://etl:hunter22@h/db?sslcert=client.pem")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown option `sslcert`"), "{err}");
        assert!(!err.contains("hunter22"), "{err}");
    }
}
