//! fakesnow, the Snowflake emulator (PyPI), behind the compatibility proxy that gives its
//! replies what real Snowflake sends (`tests/snowflake_compat/proxy.py`). One server per test
//! binary, started on first use; each test works in a database of its own
//! ([`FakeSnow::database`]), since all sessions share fakesnow's one in-memory DuckDB.
//!
//! The proxy also misbehaves on demand ([`Rule`]): a statement answered "still running", held
//! until aborted, failed with an HTTP status, a session expired, a login refused, a result split
//! into chunks. A rule applies to statements whose SQL (or logins whose user name) contains a
//! given text, so tests running in parallel each script only their own statements.
//!
//! ```ignore
//! let Some(server) = test_servers::fakesnow::server() else { return };
//! let db = server.database("copy_report");
//! // SNOWFLAKE_URL=server.base_url(), SNOWFLAKE_ACCOUNT=any, any user and password
//! server.script(Rule::statement("COPY INTO").http_status(503).times(1));
//! assert_eq!(server.events("COPY INTO").len(), 2);
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};

/// The running server (proxy in front of fakesnow).
#[derive(Debug)]
pub struct FakeSnow {
    base_url: String,
    fakesnow_url: String,
    proxy_port: u16,
    log: PathBuf,
    /// Held, never waited for: the proxy (and fakesnow with it) exits when this process does.
    _proxy: Mutex<Child>,
}

static SERVER: OnceLock<Option<FakeSnow>> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// The server of this test binary, started on first call. `None` (after a `SKIPPED` line) when
/// fakesnow is not installed and not in CI; under `CI=true` that is a test failure.
pub fn server() -> Option<&'static FakeSnow> {
    let server = SERVER.get_or_init(|| {
        let (Some(fakesnow), Some(python)) =
            (crate::venv_tool("fakesnow"), crate::venv_tool("python"))
        else {
            return None;
        };
        Some(FakeSnow::start(&fakesnow, &python))
    });
    if server.is_none() {
        crate::missing("fakesnow (make venv)");
    }
    server.as_ref()
}

/// Starts the compatibility proxy (`tests/snowflake_compat/proxy.py`) in front of `backend`, a
/// program started as fakesnow is (`-s --host H -p P`): fakesnow itself, or the grant emulator.
/// Returns the proxy and its port and the backend's, once the proxy has said READY; panics with
/// the backend's log (`what` names it) when it does not.
pub fn start_proxy(
    python: &std::path::Path,
    backend: &std::path::Path,
    log: &std::path::Path,
    what: &str,
) -> (Child, u16, u16) {
    let proxy = crate::workspace_root().join("tests/snowflake_compat/proxy.py");
    let mut child = Command::new(python)
        .arg(&proxy)
        .arg("--fakesnow")
        .arg(backend)
        .arg("--log")
        .arg(log)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", proxy.display()));
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped stdout");
    let _ = BufReader::new(stdout).read_line(&mut line);
    let ports: Vec<u16> = line
        .strip_prefix("READY ")
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let [proxy_port, backend_port] = ports[..] else {
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        let tail: String = tail.lines().rev().take(30).collect::<Vec<_>>().join("\n");
        panic!(
            "{what} behind the proxy did not start (said {line:?}); its log, newest first:\n{tail}"
        );
    };
    (child, proxy_port, backend_port)
}

impl FakeSnow {
    fn start(fakesnow: &std::path::Path, python: &std::path::Path) -> FakeSnow {
        let log = log_path();
        let (child, proxy_port, fakesnow_port) = start_proxy(python, fakesnow, &log, "fakesnow");
        FakeSnow {
            base_url: format!("http://127.0.0.1:{proxy_port}"),
            fakesnow_url: format!("http://127.0.0.1:{fakesnow_port}"),
            proxy_port,
            log,
            _proxy: Mutex::new(child),
        }
    }

    /// Where clients connect (`SNOWFLAKE_URL`): the proxy. Any account, user and password log in.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// fakesnow itself, without the proxy: replies a Snowflake client cannot read.
    pub fn fakesnow_url(&self) -> &str {
        &self.fakesnow_url
    }

    /// fakesnow's own output, for a failing test to show.
    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    /// Creates a database no other test uses, with a PUBLIC schema, and returns its name
    /// (`T_<LABEL>_<pid>_<n>`, upper case, so it needs no quoting).
    pub fn database(&self, label: &str) -> String {
        let label: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        let name = format!(
            "T_{label}_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::SeqCst)
        );
        let reply = self.control("POST", "/__compat/databases", Some(json!({ "name": name })));
        assert_eq!(reply["ok"], true, "cannot create database {name}: {reply}");
        name
    }

    /// The committed loads into `database` as if made `days` earlier: COPY_HISTORY (14 days)
    /// forgets them before COPY's load metadata (64 days) does. Returns how many were aged.
    pub fn age_loads(&self, database: &str, days: u32) -> u64 {
        let reply = self.control(
            "POST",
            "/__compat/age_loads",
            Some(serde_json::json!({ "database": database, "days": days })),
        );
        reply["aged"].as_u64().unwrap_or(0)
    }

    /// Reads `s3://` stages from this S3-compatible server (the tests' moto), as Snowflake reads
    /// a bucket: COPY INTO lists and fetches the stage's objects there.
    pub fn use_s3(&self, endpoint: &str) {
        let reply = self.control(
            "POST",
            "/__compat/s3",
            Some(serde_json::json!({ "endpoint": endpoint })),
        );
        assert_eq!(reply["ok"], true, "cannot set the S3 endpoint: {reply}");
    }

    /// Makes the proxy misbehave as the rule says.
    pub fn script(&self, rule: Rule) {
        self.control("POST", "/__compat/rules", Some(rule.0));
    }

    /// What the proxy saw whose text (SQL, user name, query id) contains `matching`, oldest
    /// first: `{"kind": "statement" | "poll" | "abort" | "login" | "chunk" | "close", "text",
    /// "request_id", "parameters"}`.
    pub fn events(&self, matching: &str) -> Vec<Value> {
        let path = format!("/__compat/events?match={}", percent_encode(matching));
        match self.control("GET", &path, None) {
            Value::Array(events) => events,
            other => panic!("unexpected events reply: {other}"),
        }
    }

    /// The events of one kind (see [`FakeSnow::events`]).
    pub fn events_of(&self, kind: &str, matching: &str) -> Vec<Value> {
        self.events(matching)
            .into_iter()
            .filter(|e| e["kind"] == kind)
            .collect()
    }

    /// Runs one statement over the Snowflake protocol, as an administrator would (logged in
    /// through the proxy, so that it sees the statement: `ALTER USER … SET RSA_PUBLIC_KEY`);
    /// panics unless it succeeds. Returns the statement's reply.
    pub fn run_sql(&self, sql: &str) -> Value {
        let login = self.request(
            "POST",
            "/session/v1/login-request?requestId=1",
            Some(serde_json::json!({"data": {"LOGIN_NAME": "TEST_ADMIN", "PASSWORD": "any", "SESSION_PARAMETERS": {}}})),
            None,
        );
        let token = login["data"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("test login refused: {login}"))
            .to_owned();
        let reply = self.request(
            "POST",
            "/queries/v1/query-request?requestId=2",
            Some(serde_json::json!({"sqlText": sql, "parameters": {"GO_QUERY_RESULT_FORMAT": "JSON"}})),
            Some(&token),
        );
        assert_eq!(reply["success"], true, "{sql}: {reply}");
        reply
    }

    /// The rows of a query run as [`FakeSnow::run_sql`] runs it, each as its values' text
    /// joined by `|` (NULL as empty).
    pub fn rows(&self, sql: &str) -> Vec<String> {
        let reply = self.run_sql(sql);
        reply["data"]["rowset"]
            .as_array()
            .unwrap_or_else(|| panic!("{sql}: {reply}"))
            .iter()
            .map(|row| {
                row.as_array()
                    .unwrap_or_else(|| panic!("{sql}: a row is not an array: {reply}"))
                    .iter()
                    .map(|v| v.as_str().unwrap_or_default().to_owned())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }

    fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.request(method, path, body, None)
    }

    /// One HTTP/1.1 request to the proxy (std only: this crate must stay quick to build).
    fn request(&self, method: &str, path: &str, body: Option<Value>, token: Option<&str>) -> Value {
        let auth = token
            .map(|t| format!("Authorization: Snowflake Token=\"{t}\"\r\n"))
            .unwrap_or_default();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(("127.0.0.1", self.proxy_port)).expect("proxy is up");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("socket timeout");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             {auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send to proxy");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).expect("read from proxy");
        let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
        assert!(head.starts_with("HTTP/1.1 200"), "proxy answered {head}");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("proxy reply {body:?}: {e}"))
    }
}

/// A scripted misbehaviour of the proxy. Start with [`Rule::statement`] or [`Rule::login`],
/// then say what happens; by default it happens once.
#[derive(Debug, Clone)]
pub struct Rule(Value);

impl Rule {
    /// For statements whose SQL contains `matching`.
    pub fn statement(matching: &str) -> Rule {
        Rule(json!({"on": "statement", "match": matching, "times": 1}))
    }

    /// For logins whose user name contains `matching` (clients send it upper-cased).
    pub fn login(matching: &str) -> Rule {
        Rule(json!({"on": "login", "match": matching, "times": 1}))
    }

    /// How many matching requests it applies to; `-1` for all of them.
    pub fn times(mut self, times: i64) -> Rule {
        self.0["times"] = json!(times);
        self
    }

    /// Answer with this HTTP status (and an HTML body, as a load balancer would).
    pub fn http_status(mut self, status: u16) -> Rule {
        self.0["action"] = json!("http_status");
        self.0["status"] = json!(status);
        self
    }

    /// With [`Rule::http_status`]: run the statement first, then fail (it did run).
    pub fn after_running(mut self) -> Rule {
        self.0["after_running"] = json!(true);
        self
    }

    /// With [`Rule::http_status`]: send `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Rule {
        self.0["retry_after"] = json!(seconds);
        self
    }

    /// Run the statement, but answer "still running" (333334) with a result URL that answers
    /// "still running" `polls` more times before the result; `-1`: until aborted.
    pub fn still_running(mut self, polls: i64) -> Rule {
        self.0["action"] = json!("still_running");
        self.0["polls"] = json!(polls);
        self
    }

    /// Hold the statement up to `seconds` before running it; an abort-request for it ends the
    /// wait with Snowflake's "SQL execution canceled" error.
    pub fn hang(mut self, seconds: u64) -> Rule {
        self.0["action"] = json!("hang");
        self.0["seconds"] = json!(seconds);
        self
    }

    /// Expire the session's token and answer "session expired" (390112) without running the
    /// statement. The token keeps answering 390112 until the client renews the session with
    /// its master token (`/session/token-request`), which keeps the session.
    pub fn session_expired(mut self) -> Rule {
        self.0["action"] = json!("session_expired");
        self
    }

    /// Only for the sessions of `user` (its LOGIN_NAME), so that tests sharing the server and
    /// sending the same SQL do not take each other's rules.
    pub fn for_user(mut self, user: &str) -> Rule {
        self.0["user"] = json!(user);
        self
    }

    /// With a `COPY INTO <table>` statement: the listed file whose stage path contains `file`
    /// is gone when the COPY runs; it is not loaded and, as under `ON_ERROR = CONTINUE`, left
    /// out of COPY's result.
    pub fn vanish(mut self, file: &str) -> Rule {
        self.0["action"] = json!("vanish");
        self.0["file"] = json!(file);
        self
    }

    /// With [`Rule::still_running`]: the session's token expires while the statement runs, so
    /// its result polls answer 390112 until the session is renewed.
    pub fn expire_while_running(mut self) -> Rule {
        self.0["expire_while_running"] = json!(true);
        self
    }

    /// Refuse the next session renewal (`/session/token-request`) of a session of `user`
    /// (its LOGIN_NAME) with 390114, as Snowflake does once the master token has expired.
    pub fn renewal_refused(user: &str) -> Rule {
        Rule(json!({"on": "renew", "match": user, "times": 1, "action": "renew_error"}))
    }

    /// With [`Rule::login`]: refuse the login with Snowflake's code and message.
    pub fn login_error(mut self, code: &str, message: &str) -> Rule {
        self.0["action"] = json!("login_error");
        self.0["code"] = json!(code);
        self.0["message"] = json!(message);
        self
    }

    /// Send the first `rows_per_chunk` rows inline and the rest as gzipped chunks to download
    /// with the chunk headers given (as Snowflake does for large results).
    pub fn chunked(mut self, rows_per_chunk: usize) -> Rule {
        self.0["action"] = json!("chunked");
        self.0["rows_per_chunk"] = json!(rows_per_chunk);
        self
    }
}

/// fakesnow's log for this test binary, in a directory where the logs of runs older than a
/// day are removed (CI runs on the same machine again and again).
fn log_path() -> PathBuf {
    let dir = std::env::temp_dir().join("data-jobs-fakesnow");
    let _ = std::fs::create_dir_all(&dir);
    let day = Duration::from_secs(86_400);
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age > day));
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    dir.join(format!("{}.log", std::process::id()))
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
