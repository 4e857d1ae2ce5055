//! The grant-aware Snowflake emulator (`tests/grant_emulator/grant_emulator.py`: fakesnow plus an
//! account model of roles, users, warehouses and grants) behind the same compatibility proxy the
//! other Snowflake tests use (`tests/snowflake_compat/proxy.py`, started with the emulator in
//! fakesnow's place). One per test: roles and users are account-wide, so tests that change them
//! cannot share an account.
//!
//! Besides the Snowflake protocol (for the job under test), tests get the emulator's control
//! endpoints (setup SQL as any role, the model, the statement log) and a bare protocol client
//! ([`GrantEmulator::query_as`]) that shows replies exactly as a Snowflake client receives them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::{Value, json};

use super::{missing, venv_tool};

/// Password of the seeded ADMIN user (it holds ACCOUNTADMIN).
pub const ADMIN_PASSWORD: &str = "admin-Password-1";

pub struct GrantEmulator {
    proxy: Child,
    proxy_port: u16,
    backend_port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl GrantEmulator {
    /// Starts a fresh account. `None` (after a SKIPPED line) when the venv is missing outside CI.
    pub fn start() -> Option<GrantEmulator> {
        let Some(python) = venv_tool("python").filter(|_| venv_tool("fakesnow").is_some()) else {
            missing("fakesnow and python in the project venv (make venv)");
            return None;
        };
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let emulator = root.join("grant_emulator/grant_emulator.py");
        let dir = tempfile::tempdir().expect("temp dir");
        // The proxy starts "fakesnow" as `<program> -s --host H -p P`: a wrapper gives it ours.
        let wrapper = dir.path().join("grant-emulator");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {} {} --admin-password {} \"$@\"\n",
                shell_quote(&python.display().to_string()),
                shell_quote(&emulator.display().to_string()),
                shell_quote(ADMIN_PASSWORD)
            ),
        )
        .expect("write wrapper");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
                .expect("chmod wrapper");
        }
        let log = dir.path().join("emulator.log");
        let (child, proxy_port, backend_port) =
            test_servers::fakesnow::start_proxy(&python, &wrapper, &log, "the grant emulator");
        Some(GrantEmulator {
            proxy: child,
            proxy_port,
            backend_port,
            log,
            _dir: dir,
        })
    }

    /// Where the job connects (`PERMISSION_BOT_URL`): the compatibility proxy.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.proxy_port)
    }

    /// The emulator's own output (uvicorn, tracebacks), for failing tests.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs statements as `role` through the control endpoint; one result per statement:
    /// `{"ok": true, "columns", "rows"}` or `{"ok": false, "code", "message"}`.
    pub fn sql(&self, role: &str, statements: &[&str]) -> Vec<Value> {
        let reply = self.control(
            "POST",
            "/__grants/sql",
            Some(json!({ "role": role, "sql": statements })),
        );
        reply["results"].as_array().cloned().unwrap_or_default()
    }

    /// Like [`GrantEmulator::sql`], as ACCOUNTADMIN, failing the test on any error.
    pub fn setup(&self, statements: &[&str]) {
        for (sql, result) in statements.iter().zip(self.sql("ACCOUNTADMIN", statements)) {
            assert_eq!(
                result["ok"], true,
                "setup statement {sql:?} failed: {result}"
            );
        }
    }

    /// The account model: roles, role_parents ([granted, grantee]), user_roles ([role, user]),
    /// users (with password_sha256), warehouses, grants ([privilege, kind, [parts], role]),
    /// future ([privilege, kind, [container], role]), owners.
    pub fn state(&self) -> Value {
        self.control("GET", "/__grants/state", None)
    }

    /// Every statement received over the protocol, oldest first: `{"sql", "user"}`.
    pub fn statements(&self) -> Vec<String> {
        match self.control("GET", "/__grants/log", None) {
            Value::Array(entries) => entries
                .iter()
                .filter_map(|e| e["sql"].as_str().map(str::to_owned))
                .collect(),
            other => panic!("unexpected log reply: {other}"),
        }
    }

    /// Logs in over the Snowflake protocol (through the proxy, as a client would) and runs one
    /// statement; returns the statement's reply as sent, or the login's reply if it failed.
    pub fn query_as(&self, user: &str, password: &str, role: Option<&str>, sql: &str) -> Value {
        let mut path = "/session/v1/login-request?requestId=1".to_owned();
        if let Some(role) = role {
            path.push_str(&format!("&roleName={role}"));
        }
        let login = http(
            self.proxy_port,
            "POST",
            &path,
            Some(
                &json!({"data": {"LOGIN_NAME": user, "PASSWORD": password, "SESSION_PARAMETERS": {}}}),
            ),
            None,
        );
        if login["success"] != true {
            return login;
        }
        let token = login["data"]["token"].as_str().expect("token").to_owned();
        http(
            self.proxy_port,
            "POST",
            "/queries/v1/query-request?requestId=2",
            Some(&json!({"sqlText": sql, "parameters": {"GO_QUERY_RESULT_FORMAT": "JSON"}})),
            Some(&token),
        )
    }

    fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        http(self.backend_port, method, path, body.as_ref(), None)
    }
}

impl Drop for GrantEmulator {
    fn drop(&mut self) {
        // SIGTERM lets the proxy stop the emulator it started (it also stops by itself when
        // this test process ends).
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.proxy.id().to_string())
            .status();
        let _ = self.proxy.wait();
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// One HTTP/1.1 request with a JSON body to 127.0.0.1:`port` (std only), the JSON reply.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>, token: Option<&str>) -> Value {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the emulator");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Snowflake Token=\"{t}\"\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read reply");
    let text = String::from_utf8_lossy(&raw);
    let (head, payload) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let payload = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(payload)
    } else {
        payload.to_owned()
    };
    serde_json::from_str(&payload).unwrap_or_else(|e| panic!("not JSON ({e}): {head}\n{payload}"))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
