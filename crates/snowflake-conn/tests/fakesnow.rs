//! The connection layer against a real Snowflake emulator: fakesnow behind its compatibility
//! proxy (`test_servers::fakesnow`), which also plays Snowflake's and the network's bad days on
//! demand (still-running replies, hangs, HTTP failures, expired sessions, refused logins).
//! Every test works in its own database and logs in as its own user, so that the proxy's rules
//! and records of one test never touch another's.

#![allow(clippy::print_stderr)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use job_kit::retry::Policy;
use job_kit::{Exit, JobError, Secret};
use serde_json::Value;
use snowflake_conn::{
    ConnectOptions, Connection, Credential, Error, ErrorKind, KeyPair, Statement,
    quote_ident_exact, quote_literal,
};
use test_servers::fakesnow::{self, FakeSnow, Rule};
use tokio_util::sync::CancellationToken;
use url::Url;

fn quick_retries() -> Policy {
    Policy {
        max_attempts: 3,
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        max_elapsed: Duration::from_secs(20),
    }
}

fn password(user: &str) -> String {
    format!("Pw-{user}-{}-s3cr3t", std::process::id())
}

fn options(server: &FakeSnow, database: &str, user: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(
        "testacct",
        user,
        Credential::Password(Secret::new(password(user))),
    );
    options.base_url = Some(Url::parse(server.base_url()).unwrap());
    options.database = Some(database.to_owned());
    options.schema = Some("PUBLIC".to_owned());
    options.retry = quick_retries();
    options
}

/// A connection to a fresh database, as `user`.
async fn connect(server: &FakeSnow, label: &str) -> (Connection, String) {
    let database = server.database(label);
    let connection =
        Connection::connect(options(server, &database, label), CancellationToken::new())
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
    (connection, database)
}

/// The session still has the database it logged in with (after a renewal or a new login).
async fn assert_current_database_starts_with(conn: &Connection, prefix: &str) {
    let db = conn
        .query_idempotent("SELECT CURRENT_DATABASE() AS db")
        .await
        .unwrap();
    let name = db.rows().next().unwrap().text("DB").unwrap().to_owned();
    assert!(name.starts_with(prefix), "{name}");
}

fn count(result: &snowflake_conn::QueryResult) -> u64 {
    result.rows().next().unwrap().u64("N").unwrap()
}

#[tokio::test]
async fn logs_in_and_uses_the_context_it_was_given() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let database = server.database("context");
    let mut options = options(server, &database, "context_user");
    options.role = Some("loader".into());
    options.warehouse = Some("load_wh".into());
    let connection = Connection::connect(options, CancellationToken::new())
        .await
        .unwrap();

    let result = connection
        .query_idempotent("SELECT CURRENT_DATABASE() AS db, CURRENT_SCHEMA() AS sch")
        .await
        .unwrap();
    let row = result.rows().next().unwrap();
    assert_eq!(row.text("DB").unwrap(), database);
    assert_eq!(row.text("SCH").unwrap(), "PUBLIC");

    let used: Vec<String> = server
        .events_of("statement", "USE ")
        .into_iter()
        .map(|e| e["text"].as_str().unwrap().to_owned())
        .filter(|sql| sql.contains("loader") || sql.contains("load_wh") || sql.contains(&database))
        .collect();
    assert_eq!(
        used,
        [
            "USE ROLE loader".to_owned(),
            "USE WAREHOUSE load_wh".to_owned(),
            format!("USE DATABASE {database}"),
        ]
    );
    connection.close().await.unwrap();
    let err = connection.query("SELECT 1").await.unwrap_err();
    assert!(matches!(err, Error::Closed), "{err}");
}

#[tokio::test]
async fn a_missing_database_is_a_configuration_error_naming_it() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let options = options(server, "NO_SUCH_DB_ANYWHERE", "missing_db_user");
    let err = Connection::connect(options, CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert_eq!(err.exit(), Exit::Usage);
    let message = err.to_string();
    assert!(
        message.starts_with("cannot use database NO_SUCH_DB_ANYWHERE: Snowflake error 002003"),
        "{message}"
    );
    assert!(
        message.contains("in: USE DATABASE NO_SUCH_DB_ANYWHERE"),
        "{message}"
    );
}

#[tokio::test]
async fn ddl_dml_and_select_with_nulls() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let (conn, _) = connect(server, "dml").await;
    conn.query(
        "CREATE TABLE loads (id INT, file TEXT, loaded_at TIMESTAMP_NTZ, day DATE, ok BOOLEAN, \
         amount NUMBER(10,2), at_tz TIMESTAMP_TZ)",
    )
    .await
    .unwrap();

    let inserted = conn
        .query(
            "INSERT INTO loads VALUES \
             (1, 'a.csv', '2024-01-02 03:04:05.123', '2024-01-02', TRUE, 12.5, '2024-01-02 03:04:05+00:00'), \
             (2, NULL, NULL, NULL, NULL, NULL, NULL)",
        )
        .await
        .unwrap();
    assert_eq!(inserted.rows_affected(), Some(2));
    let updated = conn
        .query("UPDATE loads SET file = 'b.csv' WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), Some(1));

    let result = conn
        .query_idempotent("SELECT * FROM loads ORDER BY id")
        .await
        .unwrap();
    let names: Vec<_> = result.columns().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["ID", "FILE", "LOADED_AT", "DAY", "OK", "AMOUNT", "AT_TZ"]
    );
    assert_eq!(result.rows_affected(), None);
    assert!(!result.query_id().is_empty());
    assert_eq!(
        result.raw_rows(),
        [
            vec![
                Some("1".to_owned()),
                Some("b.csv".to_owned()),
                Some("2024-01-02T03:04:05.123".to_owned()),
                Some("2024-01-02".to_owned()),
                Some("true".to_owned()),
                Some("12.50".to_owned()),
                Some("2024-01-02T03:04:05+00:00".to_owned()),
            ],
            vec![Some("2".to_owned()), None, None, None, None, None, None],
        ]
    );
    let second = result.rows().nth(1).unwrap();
    assert_eq!(second.get("loaded_at").unwrap(), None);
    assert!(
        second
            .text("file")
            .unwrap_err()
            .to_string()
            .contains("is NULL")
    );

    let deleted = conn
        .query("DELETE FROM loads WHERE file IS NULL")
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), Some(1));
    let empty = conn
        .query_idempotent("SELECT id FROM loads WHERE id > 100")
        .await
        .unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.columns()[0].name, "ID");
}

#[tokio::test]
async fn a_failed_statement_reports_snowflakes_code_and_message_once() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let (conn, _) = connect(server, "sqlerr").await;
    conn.query("CREATE TABLE t_sqlerr (a INT)").await.unwrap();
    let err = conn
        .query_idempotent("SELECT no_such_column FROM t_sqlerr")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Sql, "{err}");
    let sql = err.sql_error().expect("a SQL error");
    assert_eq!(sql.code, "002043");
    assert_eq!(sql.sql_state.as_deref(), Some("02000"));
    assert!(sql.message.contains("NO_SUCH_COLUMN"), "{}", sql.message);
    assert!(err.query_id().is_some());
    assert!(
        err.to_string()
            .ends_with("\n  in: SELECT no_such_column FROM t_sqlerr"),
        "{err}"
    );
    // A SQL error is permanent: sent once, even for an idempotent statement.
    assert_eq!(
        server
            .events_of("statement", "no_such_column FROM t_sqlerr")
            .len(),
        1
    );
}

#[tokio::test]
async fn a_refused_login_is_a_configuration_error_and_not_retried() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    server.script(
        Rule::login("REFUSED_USER")
            .login_error("390100", "Incorrect username or password was specified."),
    );
    let database = server.database("refused");
    let err = Connection::connect(
        options(server, &database, "refused_user"),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::LoginRejected { .. }), "{err}");
    assert_eq!(err.exit(), Exit::Usage);
    assert_eq!(
        err.to_string(),
        "Snowflake refused the login of user refused_user: Incorrect username or password was \
         specified. (code 390100)"
    );
    assert_eq!(server.events_of("login", "REFUSED_USER").len(), 1);
}

/// `options` for `user`, logging in with `credential`.
fn options_with(
    server: &FakeSnow,
    database: &str,
    user: &str,
    credential: Credential,
) -> ConnectOptions {
    let mut options = options(server, database, user);
    options.credential = credential;
    options
}

#[tokio::test]
async fn a_key_pair_login_is_checked_against_the_users_registered_keys() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let (admin, database) = connect(server, "key_admin").await;
    let first = KeyPair::parse(&test_servers::keys::rsa_private_key(2048), None).unwrap();
    let second = KeyPair::parse(&test_servers::keys::rsa_private_key(2048), None).unwrap();
    let login = |key: &KeyPair| {
        Connection::connect(
            options_with(
                server,
                &database,
                "key_user",
                Credential::KeyPair(key.clone()),
            ),
            CancellationToken::new(),
        )
    };

    // No key registered yet: refused as Snowflake refuses it.
    let err = login(&first).await.unwrap_err();
    assert!(matches!(err, Error::LoginRejected { .. }), "{err}");
    assert_eq!(err.exit(), Exit::Usage);
    assert!(err.to_string().contains("JWT token is invalid"), "{err}");

    admin
        .query(&format!(
            "ALTER USER key_user SET RSA_PUBLIC_KEY = '{}'",
            first.public_key()
        ))
        .await
        .unwrap();
    let connection = login(&first).await.unwrap();
    let result = connection.query_idempotent("SELECT 1 AS n").await.unwrap();
    assert_eq!(count(&result), 1);
    let logins = server.events_of("login", "KEY_USER");
    assert_eq!(
        logins.last().unwrap()["authenticator"],
        "SNOWFLAKE_JWT",
        "{logins:?}"
    );
    connection.close().await.unwrap();

    // Another key is refused; rotation (RSA_PUBLIC_KEY_2, then UNSET the first) lets it in.
    let err = login(&second).await.unwrap_err();
    assert!(err.to_string().contains("JWT token is invalid"), "{err}");
    let reasons = server.events_of("login_refused", "KEY_USER");
    assert!(
        reasons.last().unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains(second.fingerprint()),
        "{reasons:?}"
    );
    admin
        .query(&format!(
            "ALTER USER key_user SET RSA_PUBLIC_KEY_2 = '{}'",
            second.public_key()
        ))
        .await
        .unwrap();
    admin
        .query("ALTER USER key_user UNSET RSA_PUBLIC_KEY")
        .await
        .unwrap();
    login(&second).await.unwrap().close().await.unwrap();
    let err = login(&first).await.unwrap_err();
    assert!(err.to_string().contains("JWT token is invalid"), "{err}");
    admin.close().await.unwrap();
}

#[tokio::test]
async fn a_programmatic_access_token_logs_in_until_it_is_removed() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let (admin, database) = connect(server, "pat_admin").await;
    let added = admin
        .query("ALTER USER pat_user ADD PROGRAMMATIC ACCESS TOKEN nightly DAYS_TO_EXPIRY = 1")
        .await
        .unwrap();
    let secret = added
        .rows()
        .next()
        .unwrap()
        .text("token_secret")
        .unwrap()
        .to_owned();
    let login = |token: &str| {
        Connection::connect(
            options_with(
                server,
                &database,
                "pat_user",
                Credential::AccessToken(Secret::new(token.to_owned())),
            ),
            CancellationToken::new(),
        )
    };
    // "For human users [...] you can generate a token even if the user is not subject to a
    // network policy, but the user must be subject to a network policy in order to
    // authenticate with this token." (Using programmatic access tokens, Prerequisites)
    let err = login(&secret).await.unwrap_err();
    assert!(matches!(err, Error::LoginRejected { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("Network policy is required.")
            && text.contains("ALTER USER <user> SET NETWORK_POLICY"),
        "{text}"
    );
    assert!(!text.contains(&secret), "{text}");
    admin
        .query("CREATE NETWORK POLICY jobs_only ALLOWED_NETWORK_RULE_LIST = ('jobs_egress')")
        .await
        .unwrap();
    admin
        .query("ALTER USER pat_user SET NETWORK_POLICY = jobs_only")
        .await
        .unwrap();
    let connection = login(&secret).await.unwrap();
    assert_eq!(
        count(&connection.query_idempotent("SELECT 1 AS n").await.unwrap()),
        1
    );
    connection.close().await.unwrap();
    assert_eq!(
        server.events_of("login", "PAT_USER").last().unwrap()["authenticator"],
        "PROGRAMMATIC_ACCESS_TOKEN"
    );
    let err = login("not-the-token-at-all").await.unwrap_err();
    assert!(matches!(err, Error::LoginRejected { .. }), "{err}");
    admin
        .query("ALTER USER pat_user REMOVE PROGRAMMATIC ACCESS TOKEN nightly")
        .await
        .unwrap();
    let err = login(&secret).await.unwrap_err();
    assert!(matches!(err, Error::LoginRejected { .. }), "{err}");
    assert!(!err.to_string().contains(&secret), "{err}");

    // "For service users [...] you can only generate or use a token if the user is subject to
    // a network policy", and its token needs a ROLE_RESTRICTION.
    admin
        .query("ALTER USER pat_service SET TYPE = SERVICE")
        .await
        .unwrap();
    let refused = admin
        .query("ALTER USER pat_service ADD PAT loading ROLE_RESTRICTION = 'LOADER'")
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("Network policy is required"),
        "{refused}"
    );
    admin
        .query("ALTER USER pat_service SET NETWORK_POLICY = jobs_only")
        .await
        .unwrap();
    let refused = admin
        .query("ALTER USER pat_service ADD PAT loading")
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("ROLE_RESTRICTION"),
        "{refused}"
    );
    admin
        .query("ALTER USER pat_service ADD PAT loading ROLE_RESTRICTION = 'LOADER'")
        .await
        .unwrap();
    admin.close().await.unwrap();
}

#[tokio::test]
async fn nothing_listening_is_retried_then_reported_as_unreachable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut options = ConnectOptions::new(
        "testacct",
        "nobody",
        Credential::Password(Secret::new("pw-nobody-123".into())),
    );
    options.base_url = Some(Url::parse(&format!("http://127.0.0.1:{port}")).unwrap());
    options.retry = quick_retries();
    let err = Connection::connect(options, CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(err.exit(), Exit::Failure);
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "cannot reach Snowflake at http://127.0.0.1:{port}: "
        )),
        "{message}"
    );
    assert!(message.ends_with("(gave up after 3 attempts)"), "{message}");
}

#[tokio::test]
async fn a_server_that_is_not_snowflake_is_named_as_such() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    // fakesnow without the proxy: a login reply without the fields Snowflake sends.
    let mut raw = options(server, "ANY", "raw_user");
    raw.base_url = Some(Url::parse(server.fakesnow_url()).unwrap());
    let err = Connection::connect(raw, CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(
        err.to_string().contains(
            "does not answer like Snowflake (its login reply lacks masterToken, sessionId, \
             validityInSeconds, masterValidityInSeconds, sessionInfo.roleName that Snowflake sends)"
        ),
        "{err}"
    );

    // A web server answering 404.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten().take(5) {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot here\n",
            );
        }
    });
    let mut web = options(server, "ANY", "web_user");
    web.base_url = Some(Url::parse(&format!("http://127.0.0.1:{port}")).unwrap());
    let err = Connection::connect(web, CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(
        err.to_string().contains(
            "does not answer like Snowflake (it answered the login with HTTP 404: not here)"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_long_statement_is_followed_to_its_result() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let (conn, _) = connect(server, "async").await;
    server.script(Rule::statement("AS answer_async_poll").still_running(2));
    let result = conn.query("SELECT 42 AS answer_async_poll").await.unwrap();
    assert_eq!(
        result
            .rows()
            .next()
            .unwrap()
            .text("ANSWER_ASYNC_POLL")
            .unwrap(),
        "42"
    );
    // Two "still running" answers from the result URL, then the result.
    assert_eq!(server.events_of("poll", result.query_id()).len(), 3);
    assert_eq!(
        server.events_of("statement", "AS answer_async_poll").len(),
        1
    );
}

#[tokio::test]
async fn a_statement_past_its_timeout_is_aborted_on_the_server() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let (conn, _) = connect(server, "timeout").await;
    server.script(Rule::statement("AS held_for_timeout").hang(30));
    let started = Instant::now();
    let err = conn
        .run(Statement::new("SELECT 1 AS held_for_timeout").timeout(Duration::from_millis(700)))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        err.to_string()
            .starts_with("statement did not finish within 700ms"),
        "{err}"
    );
    let sent = server.events_of("statement", "AS held_for_timeout");
    let aborts = server.events_of("abort", "AS held_for_timeout");
    assert_eq!(sent.len(), 1);
    assert_eq!(aborts.len(), 1, "no abort-request reached the server");
    assert_eq!(aborts[0]["request_id"], sent[0]["request_id"]);
    // Snowflake itself stops it a minute after the caller would have.
    assert_eq!(sent[0]["parameters"]["STATEMENT_TIMEOUT_IN_SECONDS"], 60);
    assert_eq!(sent[0]["parameters"]["GO_QUERY_RESULT_FORMAT"], "JSON");
}

#[tokio::test]
async fn cancellation_aborts_the_running_statement() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let database = server.database("cancel");
    let cancel = CancellationToken::new();
    let conn = Connection::connect(options(server, &database, "cancel_user"), cancel.clone())
        .await
        .unwrap();

    // Cancelled while Snowflake holds the request.
    server.script(Rule::statement("AS held_for_cancel").hang(30));
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        trigger.cancel();
    });
    let err = conn.query("SELECT 1 AS held_for_cancel").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    assert_eq!(err.exit(), Exit::Interrupted);
    let sent = server.events_of("statement", "AS held_for_cancel");
    let aborts = server.events_of("abort", "AS held_for_cancel");
    assert_eq!(aborts.len(), 1, "no abort-request reached the server");
    assert_eq!(aborts[0]["request_id"], sent[0]["request_id"]);

    // Once cancelled, nothing more is sent.
    let err = conn.query("SELECT 2 AS after_cancel").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert!(server.events_of("statement", "AS after_cancel").is_empty());
}

#[tokio::test]
async fn cancellation_while_waiting_for_a_result_aborts_it_too() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let database = server.database("cancel_poll");
    let cancel = CancellationToken::new();
    let conn = Connection::connect(
        options(server, &database, "cancel_poll_user"),
        cancel.clone(),
    )
    .await
    .unwrap();
    server.script(Rule::statement("AS running_until_cancelled").still_running(-1));
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        trigger.cancel();
    });
    let err = conn
        .query("SELECT 1 AS running_until_cancelled")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    let query_id = err
        .query_id()
        .expect("the query id is known once Snowflake said it runs");
    assert!(!server.events_of("poll", query_id).is_empty());
    let sent = server.events_of("statement", "AS running_until_cancelled");
    let aborts = server.events_of("abort", "AS running_until_cancelled");
    assert_eq!(aborts.len(), 1);
    assert_eq!(aborts[0]["request_id"], sent[0]["request_id"]);
}

#[tokio::test]
async fn a_request_turned_away_is_retried_even_for_an_insert() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let (conn, _) = connect(server, "busy").await;
    conn.query("CREATE TABLE t_busy (a INT)").await.unwrap();
    server.script(
        Rule::statement("INSERT INTO t_busy")
            .http_status(503)
            .retry_after(0),
    );
    let inserted = conn.query("INSERT INTO t_busy VALUES (1)").await.unwrap();
    assert_eq!(inserted.rows_affected(), Some(1));
    let sent = server.events_of("statement", "INSERT INTO t_busy");
    assert_eq!(sent.len(), 2);
    // The retry is the same statement to Snowflake: its request id, and a retry count.
    assert_eq!(sent[0]["request_id"], sent[1]["request_id"], "{sent:?}");
    assert_eq!(sent[0]["retry_count"], Value::Null);
    assert_eq!(sent[1]["retry_count"], "1");
    // Another statement is another request.
    conn.query("INSERT INTO t_busy VALUES (2)").await.unwrap();
    let next = server.events_of("statement", "INSERT INTO t_busy VALUES (2)");
    assert_ne!(next[0]["request_id"], sent[0]["request_id"]);
    let rows = conn
        .query_idempotent("SELECT COUNT(*) AS n FROM t_busy")
        .await
        .unwrap();
    assert_eq!(count(&rows), 2);
}

#[tokio::test]
async fn a_statement_that_may_have_run_is_retried_only_if_idempotent() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let (conn, _) = connect(server, "maybe").await;
    conn.query("CREATE TABLE t_maybe (a INT)").await.unwrap();

    server.script(
        Rule::statement("INSERT INTO t_maybe")
            .http_status(502)
            .after_running(),
    );
    let err = conn
        .query("INSERT INTO t_maybe VALUES (1)")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Indeterminate, "{err}");
    assert!(err.to_string().contains("may or may not have run"), "{err}");
    assert_eq!(
        server.events_of("statement", "INSERT INTO t_maybe").len(),
        1
    );
    let rows = conn
        .query_idempotent("SELECT COUNT(*) AS n FROM t_maybe")
        .await
        .unwrap();
    assert_eq!(count(&rows), 1, "it did run, once");

    server.script(
        Rule::statement("AS n_maybe_again")
            .http_status(502)
            .after_running(),
    );
    let rows = conn
        .query_idempotent("SELECT COUNT(*) AS n_maybe_again FROM t_maybe")
        .await
        .unwrap();
    assert_eq!(rows.rows().next().unwrap().u64("N_MAYBE_AGAIN").unwrap(), 1);
    assert_eq!(server.events_of("statement", "AS n_maybe_again").len(), 2);
}

#[tokio::test]
async fn an_expired_session_is_renewed_and_the_statement_sent_again() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let (conn, _) = connect(server, "expiry_user").await;
    server.script(Rule::statement("AS after_expiry").session_expired());
    let result = conn.query("SELECT 7 AS after_expiry").await.unwrap();
    assert_eq!(
        result.rows().next().unwrap().text("AFTER_EXPIRY").unwrap(),
        "7"
    );
    // Renewed with the master token: the same session, no second login.
    assert_eq!(server.events_of("renew", "EXPIRY_USER").len(), 1);
    assert_eq!(server.events_of("login", "EXPIRY_USER").len(), 1);
    // The old token is dead at the server; later statements go with the new one.
    assert_current_database_starts_with(&conn, "T_EXPIRY_USER_").await;
}

#[tokio::test]
async fn a_session_whose_renewal_is_refused_logs_in_again_outside_a_transaction() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let (conn, _) = connect(server, "relogin_user").await;
    server.script(Rule::renewal_refused("RELOGIN_USER"));
    server.script(Rule::statement("AS after_relogin").session_expired());
    let result = conn.query("SELECT 8 AS after_relogin").await.unwrap();
    assert_eq!(
        result.rows().next().unwrap().text("AFTER_RELOGIN").unwrap(),
        "8"
    );
    assert_eq!(server.events_of("login", "RELOGIN_USER").len(), 2);
    // The new session has the same context (login parameters).
    assert_current_database_starts_with(&conn, "T_RELOGIN_USER_").await;
}

#[tokio::test]
async fn a_session_expiring_while_a_statement_runs_is_renewed_and_polling_goes_on() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let (conn, _) = connect(server, "poll_expiry").await;
    server.script(
        Rule::statement("AS long_through_expiry")
            .still_running(2)
            .expire_while_running(),
    );
    let result = conn.query("SELECT 9 AS long_through_expiry").await.unwrap();
    assert_eq!(
        result
            .rows()
            .next()
            .unwrap()
            .text("LONG_THROUGH_EXPIRY")
            .unwrap(),
        "9"
    );
    assert_eq!(
        server
            .events_of("statement", "AS long_through_expiry")
            .len(),
        1,
        "sent once"
    );
    assert_eq!(server.events_of("renew", "POLL_EXPIRY").len(), 1);
    assert_eq!(server.events_of("login", "POLL_EXPIRY").len(), 1);
}

#[tokio::test]
async fn a_statement_turned_away_inside_a_transaction_is_indeterminate_not_retried() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let (conn, _) = connect(server, "tx_busy").await;
    conn.query("CREATE TABLE t_tx_busy (a INT)").await.unwrap();
    let tx = conn.begin().await.unwrap();
    tx.query("INSERT INTO t_tx_busy VALUES (1)").await.unwrap();
    server.script(
        Rule::statement("DELETE FROM t_tx_busy")
            .http_status(503)
            .retry_after(0),
    );
    let err = tx.query("DELETE FROM t_tx_busy").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Indeterminate, "{err}");
    assert!(err.to_string().contains("inside a transaction"), "{err}");
    assert_eq!(
        server.events_of("statement", "DELETE FROM t_tx_busy").len(),
        1
    );
    tx.rollback().await.unwrap();
    let rows = conn
        .query_idempotent("SELECT COUNT(*) AS n FROM t_tx_busy")
        .await
        .unwrap();
    assert_eq!(count(&rows), 0);
}

#[tokio::test]
async fn a_transaction_never_continues_in_a_new_session() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let (conn, _) = connect(server, "tx").await;
    conn.query("CREATE TABLE t_tx (a INT)").await.unwrap();

    let tx = conn.begin().await.unwrap();
    tx.query("INSERT INTO t_tx VALUES (1)").await.unwrap();
    tx.rollback().await.unwrap();
    let tx = conn.begin().await.unwrap();
    tx.query("INSERT INTO t_tx VALUES (2)").await.unwrap();
    tx.commit().await.unwrap();
    let rows = conn
        .query_idempotent("SELECT COUNT(*) AS n FROM t_tx")
        .await
        .unwrap();
    assert_eq!(count(&rows), 1);

    // Expiry inside the transaction: the session is renewed (never a new login, which would
    // end the transaction), and the transaction goes on to its commit.
    let tx = conn.begin().await.unwrap();
    tx.query("INSERT INTO t_tx VALUES (3)").await.unwrap();
    server.script(Rule::statement("INSERT INTO t_tx VALUES (4)").session_expired());
    tx.query("INSERT INTO t_tx VALUES (4)").await.unwrap();
    tx.commit().await.unwrap();
    let rows = conn
        .query_idempotent("SELECT COUNT(*) AS n FROM t_tx")
        .await
        .unwrap();
    assert_eq!(count(&rows), 3);
    let logins_of_tx = server
        .events_of("login", "TX")
        .into_iter()
        .filter(|e| e["text"] == "TX")
        .count();
    assert_eq!(logins_of_tx, 1);

    // When the session cannot be renewed, the transaction ends there: never in a new session.
    let tx = conn.begin().await.unwrap();
    server.script(Rule::renewal_refused("TX"));
    server.script(Rule::statement("INSERT INTO t_tx VALUES (5)").session_expired());
    let err = tx.query("INSERT INTO t_tx VALUES (5)").await.unwrap_err();
    assert!(matches!(err, Error::SessionLost { .. }), "{err}");
    assert_eq!(
        server
            .events_of("statement", "INSERT INTO t_tx VALUES (5)")
            .len(),
        1
    );
    drop(tx);
}

#[tokio::test]
async fn a_large_result_is_downloaded_in_chunks() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let (conn, _) = connect(server, "chunks").await;
    conn.query("CREATE TABLE t_chunks (n INT, label TEXT)")
        .await
        .unwrap();
    let values: Vec<String> = (0..10)
        .map(|n| match n % 3 {
            0 => format!("({n}, NULL)"),
            _ => format!("({n}, 'row {n}')"),
        })
        .collect();
    conn.query(&format!(
        "INSERT INTO t_chunks VALUES {}",
        values.join(", ")
    ))
    .await
    .unwrap();
    server.script(Rule::statement("FROM t_chunks ORDER BY n").chunked(3));
    let result = conn
        .query_idempotent("SELECT n, label FROM t_chunks ORDER BY n")
        .await
        .unwrap();
    let numbers: Vec<u64> = result.rows().map(|r| r.u64("N").unwrap()).collect();
    assert_eq!(numbers, (0..10).collect::<Vec<_>>());
    assert_eq!(result.rows().nth(3).unwrap().get("LABEL").unwrap(), None);
    assert_eq!(
        result.rows().nth(4).unwrap().get("LABEL").unwrap(),
        Some("row 4")
    );
    assert_eq!(server.events_of("chunk", "").len(), 3);
    // In one go: not a retry that happened to get the rows inline.
    assert_eq!(
        server
            .events_of("statement", "FROM t_chunks ORDER BY n")
            .len(),
        1
    );
}

#[tokio::test]
async fn many_statements_in_flight_on_one_session() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let (conn, _) = connect(server, "concurrent").await;
    let started = Instant::now();
    let queries = (0..24).map(|i| {
        let conn = conn.clone();
        async move {
            let sql = format!("SELECT {i} AS concurrent_{i}");
            let result = conn.query_idempotent(&sql).await.unwrap();
            result
                .rows()
                .next()
                .unwrap()
                .u64(&format!("CONCURRENT_{i}"))
                .unwrap()
        }
    });
    let answers = futures_util::future::join_all(queries).await;
    assert_eq!(answers, (0..24).collect::<Vec<u64>>());
    eprintln!("24 concurrent statements in {:?}", started.elapsed());
}

#[tokio::test]
async fn hostile_names_and_values_round_trip() {
    let Some(server) = fakesnow::server() else {
        return;
    };
    let (conn, _) = connect(server, "hostile").await;
    // No `'` in the table name: fakesnow itself splices table names into SQL unquoted (its
    // bug, not ours; the quoting of `'` in names is covered by the unit tests).
    let table = quote_ident_exact("we\"ird tab;le --DROP TABLE x");
    let value = "O'Brien \\ '); DROP TABLE x; -- \"quoted\"";
    conn.query(&format!("CREATE TABLE {table} (v TEXT)"))
        .await
        .unwrap();
    conn.query(&format!(
        "INSERT INTO {table} VALUES ({})",
        quote_literal(value)
    ))
    .await
    .unwrap();
    let result = conn
        .query_idempotent(&format!("SELECT v FROM {table}"))
        .await
        .unwrap();
    assert_eq!(result.rows().next().unwrap().text("V").unwrap(), value);
}

/// Everything logged in this test binary, unredacted, as the kit's writer receives it.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || Capture(Arc::clone(&sink)))
            .try_init();
        logs
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_password_and_session_tokens_never_reach_a_log_line_or_an_error() {
    let logs = captured_logs();
    let Some(server) = fakesnow::server() else {
        return;
    };
    let user = "secretive_user";
    let database = server.database("secrets");
    let conn = Connection::connect(options(server, &database, user), CancellationToken::new())
        .await
        .unwrap();
    conn.query("SELECT 1 AS logged_statement").await.unwrap();
    let err = conn.query("SELECT broken syntax here (").await.unwrap_err();
    server.script(
        Rule::login("SECRETIVE_USER")
            .login_error("390100", "Incorrect username or password was specified."),
    );
    let refused = Connection::connect(options(server, &database, user), CancellationToken::new())
        .await
        .unwrap_err();

    let secret = password(user);
    for message in [err.to_string(), refused.to_string(), format!("{refused:?}")] {
        assert!(!message.contains(&secret), "{message}");
    }
    let raw = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(raw.contains("logged_statement"), "the capture works: {raw}");
    assert!(!raw.contains(&secret), "the password was logged");
    // The crate logs its login reply (session and master tokens) at debug level; the kit's
    // writer masks every registered secret, and this layer registered those tokens.
    let tokens: Vec<&str> = raw
        .match_indices("token: \"")
        .map(|(at, found)| {
            let rest = &raw[at + found.len()..];
            &rest[..rest.find('"').unwrap_or(0)]
        })
        .filter(|token| !token.is_empty())
        .collect();
    assert!(
        !tokens.is_empty(),
        "the crate's login reply is in the debug log"
    );
    let shown = job_kit::secret::redact(&raw);
    for token in tokens {
        assert!(!shown.contains(token), "a session token survived redaction");
    }
}

/// The account name of the login and of a key-pair JWT is the Python connector's: its own
/// `snowflake.connector.util_text.parse_account`, which it applies to an identifier with a `.`
/// (`connection.py`), run here on the same identifiers.
#[test]
fn account_names_follow_the_python_connectors_rule() {
    let Some(python) = test_servers::venv_tool("python") else {
        assert!(test_servers::missing(
            "python in the project venv (make venv)"
        ));
        return;
    };
    let identifiers = [
        "xy12345",
        "myorg-myaccount",
        "xy12345.us-east-1",
        "xy12345.us-east-2.aws",
        "xy12345-abc.global",
        "myorg-myaccount-ext.global",
        "xy12345.us-east-1.global",
        "abc.global",
    ];
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import sys\nfrom snowflake.connector.util_text import parse_account\n\
             for a in sys.argv[1:]:\n    print(parse_account(a) if '.' in a else a)",
        ])
        .args(identifiers)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let theirs: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let ours: Vec<&str> = identifiers
        .iter()
        .map(|a| snowflake_conn::login_account_name(a))
        .collect();
    assert_eq!(ours, theirs);
}
