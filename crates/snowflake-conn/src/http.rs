//! The HTTP client handed to the `snowflake-api` crate (`SnowflakeApiBuilder::with_client`), and
//! the middleware through which this layer extends the crate without forking it. The crate logs
//! in, keeps and renews the session tokens and sends each statement; on the way, the middleware
//!
//! - sends the crate's requests, which always name `https://<account>.snowflakecomputing.com`,
//!   to the configured base URL (PrivateLink, tests);
//! - adds per-statement parameters to each statement request: JSON results (the crate cannot
//!   decode Arrow NULL timestamps) and a server-side timeout (a backstop when this process is
//!   killed before it can abort the statement);
//! - follows a reply that says "still running" (codes 333333/333334) to its result URL until
//!   the statement is done, and downloads the chunks of a large result, so that the crate sees
//!   one complete reply;
//! - turns HTTP failures into typed errors, registers the session tokens it sees as secrets
//!   (the crate logs its login replies at debug level), and records what happened to each
//!   request in the [`Probe`] of the statement being run: its request id and token (to abort
//!   it), its query id, whether it was sent at all, and the reply as read (Snowflake's error code
//!   survives even when a reply lacks a field the crate insists on).

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::{StreamExt, TryStreamExt, stream};
use http::{Extensions, HeaderValue};
use job_kit::retry::{self, Attempt, Policy};
use reqwest_012 as reqwest;
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::credential::Credential;
use crate::error::Error;
use crate::protocol::{self, Reply, StatementParameters};

/// Long enough for Snowflake to hold a statement request the ~45 s it waits before answering
/// "still running"; the statement's own timeout is the real limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How much of a failed reply's body is kept for the error message.
const DETAIL_CHARS: usize = 300;
/// Snowflake holds a result request until the statement ends or ~45 s pass; the pause between
/// requests only matters for a server that answers at once.
const FIRST_POLL_PAUSE: Duration = Duration::from_millis(50);
const MAX_POLL_PAUSE: Duration = Duration::from_secs(1);
const CHUNK_DOWNLOADS: usize = 4;
/// Fetching a result or a chunk is a read: retried without a second thought.
const READ_RETRY: Policy = Policy {
    max_attempts: 5,
    initial_delay: Duration::from_millis(200),
    max_delay: Duration::from_secs(5),
    max_elapsed: Duration::from_secs(60),
};

tokio::task_local! {
    /// The probe of the statement the current task is running through the crate.
    pub(crate) static PROBE: Arc<Probe>;
}

/// What the connection and the middleware share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Successful logins so far: a statement inside a transaction must run in the session that
    /// began it, i.e. with no login in between.
    pub logins: AtomicU64,
    tokens: Mutex<Tokens>,
    /// One renewal at a time: statements that meet the expiry together renew once.
    renewal: tokio::sync::Mutex<()>,
}

/// The session's tokens as this layer knows them. A renewal (`/session/token-request`) gives
/// the same session new tokens; the crate keeps sending the ones it has, so requests carrying
/// a replaced token get the current one.
#[derive(Debug, Default)]
struct Tokens {
    session: Option<String>,
    master: Option<String>,
    replaced_sessions: Vec<String>,
    replaced_masters: Vec<String>,
}

/// Snowflake's "session expired" (not "gone"): renewed with the master token, as its
/// connectors do.
const SESSION_EXPIRED: &str = "390112";
/// Renewals one statement may need while it runs (each token lives an hour).
const MAX_RENEWALS_PER_STATEMENT: u32 = 3;

fn token_in(header: &HeaderValue) -> Option<&str> {
    header
        .to_str()
        .ok()?
        .strip_prefix("Snowflake Token=\"")?
        .strip_suffix('"')
}

fn authorization_for(token: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("Snowflake Token=\"{token}\"")).ok()
}

/// What one statement attempt did on the wire, filled in by the middleware.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    pub statement_timeout_seconds: u64,
    /// Inside a transaction: the login count of its session.
    pub required_logins: Option<u64>,
    /// One per statement, kept by its retries (with `retryCount`), as Snowflake's connectors
    /// do, so that Snowflake can tell a resent statement from a new one.
    pub request_id: String,
    /// 0 for the first attempt.
    pub retry: u32,
    state: Mutex<ProbeState>,
}

#[derive(Debug, Default)]
pub(crate) struct ProbeState {
    /// The statement request's `requestId`: abort-request names the statement by it.
    pub request_id: Option<String>,
    /// The session token the statement was sent with (a secret; `HeaderValue` is marked
    /// sensitive and never printed).
    pub authorization: Option<HeaderValue>,
    pub query_id: Option<String>,
    /// Snowflake answered "still running": the statement has certainly started.
    pub went_async: bool,
    /// The login count when the statement was sent.
    pub logins: u64,
    /// Not sent: the session changed inside a transaction.
    pub refused: bool,
    pub login: Option<LoginOutcome>,
    pub failure: Option<(Stage, Failure)>,
    /// The final reply to the statement, chunks included.
    pub reply: Option<Reply>,
}

/// Where a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Login,
    Statement,
    /// Waiting for the result of a statement that started.
    Result,
    Chunk,
}

#[derive(Debug, Clone)]
pub(crate) enum LoginOutcome {
    Accepted,
    Rejected {
        code: String,
        message: String,
    },
    /// A reply that is not what Snowflake sends: `detail` says how.
    Foreign {
        detail: String,
    },
}

impl Probe {
    pub(crate) fn new(
        statement_timeout_seconds: u64,
        required_logins: Option<u64>,
        request_id: String,
        retry: u32,
    ) -> Self {
        Probe {
            statement_timeout_seconds,
            required_logins,
            request_id,
            retry,
            state: Mutex::default(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut ProbeState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn take(&self) -> ProbeState {
        self.with(std::mem::take)
    }

    /// What abort-request needs, if the statement was sent and may still be running: not when
    /// it was never sent, finished, or was answered with an error status.
    pub(crate) fn running(&self) -> Option<(String, HeaderValue, Option<String>)> {
        self.with(|s| {
            let answered = matches!(
                s.failure,
                Some(
                    (Stage::Login, _)
                        | (Stage::Statement, Failure::NotSent(_) | Failure::Status(_))
                )
            );
            match (&s.request_id, &s.authorization, &s.reply) {
                (Some(id), Some(auth), None) if !answered => {
                    Some((id.clone(), auth.clone(), s.query_id.clone()))
                }
                _ => None,
            }
        })
    }

    pub(crate) fn query_id(&self) -> Option<String> {
        self.with(|s| s.query_id.clone())
    }

    fn fail(&self, stage: Stage, failure: Failure) {
        self.with(|s| s.failure = Some((stage, failure)));
    }
}

/// Who logs in, with what: written into each login request the crate sends.
pub(crate) struct Login {
    pub credential: Credential,
    /// The login's ACCOUNT_NAME, as in [`crate::ConnectOptions::account_name`].
    pub account: String,
    pub user: String,
    /// Session parameters set by the login itself, as Snowflake's connectors send them
    /// (`SESSION_PARAMETERS`): no statement of the session runs without them.
    pub query_tag: Option<String>,
}

pub(crate) fn client(
    crate_host: String,
    base: Url,
    shared: Arc<Shared>,
    login: Login,
) -> Result<ClientWithMiddleware, Error> {
    let plain = reqwest::Client::builder()
        .user_agent(concat!(
            "data-jobs-snowflake-conn/",
            env!("CARGO_PKG_VERSION")
        ))
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .gzip(true)
        .build()
        .map_err(|e| Error::InvalidOptions(format!("cannot build the HTTP client: {e}")))?;
    Ok(reqwest_middleware::ClientBuilder::new(plain.clone())
        .with(SnowflakeHttp {
            crate_host,
            base,
            plain,
            shared,
            login,
        })
        .build())
}

struct SnowflakeHttp {
    /// The host the crate puts in its URLs, all of which mean the base URL.
    crate_host: String,
    base: Url,
    /// The same client without this middleware, for the requests it makes itself.
    plain: reqwest::Client,
    shared: Arc<Shared>,
    login: Login,
}

#[async_trait::async_trait]
impl Middleware for SnowflakeHttp {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        if req.url().host_str() == Some(self.crate_host.as_str()) {
            redirect(req.url_mut(), &self.base);
        }
        let probe = PROBE.try_with(Arc::clone).ok();
        let path = req.url().path().to_owned();
        if path.ends_with("/login-request") {
            self.write_credential(&mut req)?;
        } else {
            self.current_tokens(&mut req);
        }
        match probe {
            Some(probe) if path.ends_with("/login-request") => {
                self.login(req, extensions, next, &probe).await
            }
            Some(probe) if path.ends_with("/query-request") => {
                self.statement(req, extensions, next, &probe).await
            }
            Some(probe) => {
                // Renewing the session token, on the way to sending a statement: a failure here
                // is a failure to authenticate, and the statement was not sent.
                let response = self
                    .send(next.run(req, extensions).await, &probe, Stage::Login)
                    .await?;
                if path.ends_with("/token-request") {
                    let (head, body) = read(response).await?;
                    register_tokens(&body);
                    self.note_renewal(&body);
                    return Ok(rebuild(head, body));
                }
                Ok(response)
            }
            None => {
                let response = checked(next.run(req, extensions).await?).await?;
                if path.ends_with("/login-request") || path.ends_with("/token-request") {
                    let (head, body) = read(response).await?;
                    register_tokens(&body);
                    if path.ends_with("/login-request") {
                        self.note_login(&body);
                    } else {
                        self.note_renewal(&body);
                    }
                    return Ok(rebuild(head, body));
                }
                Ok(response)
            }
        }
    }
}

impl SnowflakeHttp {
    fn tokens(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.shared.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session: its tokens, and none replaced yet.
    fn note_login(&self, body: &[u8]) {
        let Ok(reply) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        *self.tokens() = Tokens {
            session: reply["data"]["token"].as_str().map(str::to_owned),
            master: reply["data"]["masterToken"].as_str().map(str::to_owned),
            ..Tokens::default()
        };
    }

    /// The same session with new tokens (a renewal's reply).
    fn note_renewal(&self, body: &[u8]) {
        let Ok(reply) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        let Some(session) = reply["data"]["sessionToken"].as_str() else {
            return;
        };
        let mut tokens = self.tokens();
        if let Some(old) = tokens.session.replace(session.to_owned()) {
            tokens.replaced_sessions.push(old);
        }
        if let Some(master) = reply["data"]["masterToken"].as_str()
            && tokens.master.as_deref() != Some(master)
            && let Some(old) = tokens.master.replace(master.to_owned())
        {
            tokens.replaced_masters.push(old);
        }
    }

    /// Gives a request that carries a replaced token the current one (the crate's own
    /// renewal request included, whose body names the session token too).
    fn current_tokens(&self, req: &mut reqwest::Request) {
        let Some(presented) = req
            .headers()
            .get(reqwest::header::AUTHORIZATION)
            .and_then(token_in)
            .map(str::to_owned)
        else {
            return;
        };
        let tokens = self.tokens();
        let current = if tokens.replaced_sessions.contains(&presented) {
            tokens.session.clone()
        } else if tokens.replaced_masters.contains(&presented) {
            tokens.master.clone()
        } else {
            None
        };
        if let Some(header) = current.as_deref().and_then(authorization_for) {
            req.headers_mut()
                .insert(reqwest::header::AUTHORIZATION, header);
        }
        if req.url().path().ends_with("/token-request")
            && let Some(session) = tokens.session.clone()
            && let Some(mut body) = json_body(req)
            && body["oldSessionToken"].as_str() != Some(session.as_str())
        {
            body["oldSessionToken"] = Value::String(session);
            set_json_body(req, &body);
        }
    }

    /// The authorization header of the session as it is now.
    fn current_authorization(&self) -> Option<HeaderValue> {
        self.tokens().session.as_deref().and_then(authorization_for)
    }

    /// Renews the session with its master token after `presented` met "session expired", as
    /// Snowflake's connectors do: same session, so an open transaction goes on. Does nothing
    /// when another statement renewed it meanwhile.
    async fn renew_session(&self, presented: Option<&str>) -> Result<(), Failure> {
        let _one_at_a_time = self.shared.renewal.lock().await;
        let (session, master) = {
            let tokens = self.tokens();
            (tokens.session.clone(), tokens.master.clone())
        };
        let (Some(session), Some(master)) = (session, master) else {
            return Err(Failure::Broken("no session to renew".into()));
        };
        if presented.is_some_and(|p| p != session) {
            return Ok(());
        }
        let url = url_for(
            &self.base,
            "session/token-request",
            &uuid::Uuid::new_v4().to_string(),
        );
        let mut request = self
            .plain
            .post(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&serde_json::json!({"oldSessionToken": session, "requestType": "RENEW"}));
        if let Some(header) = authorization_for(&master) {
            request = request.header(reqwest::header::AUTHORIZATION, header);
        }
        let response = request.send().await.map_err(|e| Failure::of_reqwest(&e))?;
        let body = checked_plain(response)
            .await?
            .bytes()
            .await
            .map_err(|e| Failure::of_reqwest(&e))?;
        register_tokens(&body);
        let reply: Value = serde_json::from_slice(&body)
            .map_err(|_| Failure::Broken("the renewal reply is not JSON".into()))?;
        if reply["success"] != Value::Bool(true) || reply["data"]["sessionToken"].is_null() {
            return Err(Failure::Broken(format!(
                "Snowflake refused to renew the session: {} (code {})",
                job_kit::secret::scrub(reply["message"].as_str().unwrap_or("no message")),
                reply["code"].as_str().unwrap_or("none")
            )));
        }
        self.note_renewal(&body);
        tracing::info!("the Snowflake session token expired; renewed it with the master token");
        Ok(())
    }

    /// Replaces the crate's placeholder password in a login request's body with the credential.
    fn write_credential(&self, req: &mut reqwest::Request) -> reqwest_middleware::Result<()> {
        let broken = |detail: &str| {
            reqwest_middleware::Error::middleware(Failure::Broken(format!(
                "cannot write the credential into the login request: {detail}"
            )))
        };
        let mut login = json_body(req).ok_or_else(|| broken("its body is not JSON"))?;
        let data = login
            .get_mut("data")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| broken("its body has no data object"))?;
        let now = jiff::Timestamp::now().as_second();
        self.login
            .credential
            .apply(data, &self.login.account, &self.login.user, now)
            .map_err(|e| broken(&e))?;
        if let Some(tag) = &self.login.query_tag {
            let parameters = data
                .entry("SESSION_PARAMETERS")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(parameters) = parameters.as_object_mut() {
                parameters.insert("QUERY_TAG".into(), Value::String(tag.clone()));
            }
        }
        set_json_body(req, &login);
        Ok(())
    }

    async fn login(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
        probe: &Probe,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let response = self
            .send(next.run(req, extensions).await, probe, Stage::Login)
            .await?;
        let (head, body) = read(response).await.inspect_err(|e| {
            probe.fail(Stage::Login, Failure::of(e));
        })?;
        let outcome = match serde_json::from_slice::<Value>(&body) {
            Err(_) => LoginOutcome::Foreign {
                detail: "its login reply is not JSON".into(),
            },
            Ok(reply) if reply["success"] == Value::Bool(true) => {
                register_tokens(&body);
                self.note_login(&body);
                let missing = missing_login_fields(&reply);
                if missing.is_empty() {
                    self.shared.logins.fetch_add(1, Ordering::SeqCst);
                    LoginOutcome::Accepted
                } else {
                    LoginOutcome::Foreign {
                        detail: format!(
                            "its login reply lacks {} that Snowflake sends",
                            missing.join(", ")
                        ),
                    }
                }
            }
            Ok(reply) => {
                let reply: Reply = serde_json::from_value(reply).unwrap_or_default();
                LoginOutcome::Rejected {
                    code: reply.error_code().unwrap_or("none").to_owned(),
                    message: job_kit::secret::scrub(reply.message.as_deref().unwrap_or("")),
                }
            }
        };
        probe.with(|s| s.login = Some(outcome));
        Ok(rebuild(head, body))
    }

    async fn statement(
        &self,
        mut req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
        probe: &Probe,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let logins = self.shared.logins.load(Ordering::SeqCst);
        if probe
            .required_logins
            .is_some_and(|required| required != logins)
        {
            probe.with(|s| s.refused = true);
            return Err(reqwest_middleware::Error::middleware(SessionChanged));
        }
        add_parameters(&mut req, probe.statement_timeout_seconds);
        keep_request_id(req.url_mut(), &probe.request_id, probe.retry);
        let request_id = req
            .url()
            .query_pairs()
            .find(|(k, _)| k == "requestId")
            .map(|(_, v)| v.into_owned());
        let authorization = req.headers().get(reqwest::header::AUTHORIZATION).cloned();
        probe.with(|s| {
            s.request_id = request_id;
            s.authorization = authorization.clone();
            s.logins = logins;
        });

        let mut resend = req.try_clone();
        let mut response = self
            .send(
                next.clone().run(req, extensions).await,
                probe,
                Stage::Statement,
            )
            .await?;
        let (head, body, parsed) = loop {
            let (head, body) = read(response).await.inspect_err(|e| {
                probe.fail(Stage::Statement, Failure::of(e));
            })?;
            let parsed = serde_json::from_slice::<Value>(&body).ok();
            // Expired before it ran: renew the session and send the statement again, once.
            let expired = parsed
                .as_ref()
                .is_some_and(|reply| reply["code"].as_str() == Some(SESSION_EXPIRED));
            let Some(mut again) = resend.take().filter(|_| expired) else {
                break (head, body, parsed);
            };
            let presented = authorization.as_ref().and_then(token_in);
            if let Err(failure) = self.renew_session(presented).await {
                tracing::warn!("cannot renew the expired Snowflake session: {failure}");
                break (head, body, parsed);
            }
            if let Some(current) = self.current_authorization() {
                again
                    .headers_mut()
                    .insert(reqwest::header::AUTHORIZATION, current.clone());
                probe.with(|s| s.authorization = Some(current));
            }
            response = self
                .send(
                    next.clone().run(again, extensions).await,
                    probe,
                    Stage::Statement,
                )
                .await?;
        };
        let Some(mut reply) = parsed else {
            probe.fail(
                Stage::Statement,
                Failure::Broken(format!(
                    "the reply is not JSON: {}",
                    shorten(&String::from_utf8_lossy(&body), 80)
                )),
            );
            return Ok(rebuild(head, body));
        };
        if let Some(id) = reply["data"]["queryId"].as_str() {
            probe.with(|s| s.query_id = Some(id.to_owned()));
        }
        if in_progress(&reply) {
            let authorization = probe.with(|s| s.authorization.clone());
            reply = self
                .follow(reply, authorization, probe)
                .await
                .map_err(reqwest_middleware::Error::middleware)?;
        }
        if reply["success"] == Value::Bool(true) && has_chunks(&reply) {
            self.add_chunks(&mut reply)
                .await
                .inspect_err(|failure| probe.fail(Stage::Chunk, failure.clone()))
                .map_err(reqwest_middleware::Error::middleware)?;
        }
        let parsed: Reply = serde_json::from_value(reply.clone()).unwrap_or_default();
        probe.with(|s| s.reply = Some(parsed));
        let body = serde_json::to_vec(&reply).unwrap_or_default();
        Ok(rebuild(head, body.into()))
    }

    /// Records a failed send or an error status in the probe.
    async fn send(
        &self,
        sent: reqwest_middleware::Result<reqwest::Response>,
        probe: &Probe,
        stage: Stage,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let response = sent.inspect_err(|e| probe.fail(stage, Failure::of(e)))?;
        checked(response).await.inspect_err(|e| {
            probe.fail(stage, Failure::of(e));
        })
    }

    /// Polls the result URL of a statement that is still running until it is done.
    async fn follow(
        &self,
        mut reply: Value,
        mut authorization: Option<HeaderValue>,
        probe: &Probe,
    ) -> Result<Value, Failure> {
        let mut renewals = 0;
        let started = Instant::now();
        let query_id = reply["data"]["queryId"].as_str().unwrap_or("?").to_owned();
        probe.with(|s| s.went_async = true);
        tracing::info!(
            query_id,
            "Snowflake is still running the statement; waiting for its result"
        );
        let mut pause = FIRST_POLL_PAUSE;
        let never = CancellationToken::new();
        while in_progress(&reply) {
            let url = reply["data"]["getResultUrl"]
                .as_str()
                .ok_or_else(|| {
                    Failure::Broken("a 'still running' reply without a result URL".into())
                })
                .and_then(|u| self.result_url(u))
                .inspect_err(|f| probe.fail(Stage::Result, f.clone()))?;
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL_PAUSE);
            let polled = retry::retry(&READ_RETRY, &never, "fetching a statement's result", |_| {
                self.get(&url, authorization.as_ref(), &[])
            })
            .await
            .map_err(|e| e.error.unwrap_or(Failure::Lost("interrupted".into())))
            .and_then(|body| {
                serde_json::from_slice::<Value>(&body)
                    .map_err(|_| Failure::Broken("the result reply is not JSON".into()))
            })
            .inspect_err(|f| probe.fail(Stage::Result, f.clone()))?;
            // The session token expired while the statement ran (it runs on): renew it and
            // go on polling, as Snowflake's connectors do.
            if polled["code"].as_str() == Some(SESSION_EXPIRED)
                && renewals < MAX_RENEWALS_PER_STATEMENT
            {
                renewals += 1;
                let presented = authorization.as_ref().and_then(token_in).map(str::to_owned);
                match self.renew_session(presented.as_deref()).await {
                    Ok(()) => {
                        authorization = self.current_authorization();
                        probe.with(|s| s.authorization = authorization.clone());
                        continue;
                    }
                    Err(failure) => {
                        tracing::warn!("cannot renew the expired Snowflake session: {failure}");
                    }
                }
            }
            reply = polled;
            tracing::debug!(query_id, code = ?reply["code"], "result poll");
        }
        tracing::info!(
            query_id,
            elapsed_s = started.elapsed().as_secs(),
            "the long-running statement finished"
        );
        Ok(reply)
    }

    /// A result URL is relative to the base URL; an absolute one must point there too (it is
    /// sent the session token).
    fn result_url(&self, url: &str) -> Result<Url, Failure> {
        let url = self
            .base
            .join(url)
            .map_err(|_| Failure::Broken(format!("bad result URL {url:?}")))?;
        if url.origin() == self.base.origin() {
            Ok(url)
        } else {
            Err(Failure::Broken(format!(
                "the result URL points elsewhere ({})",
                url.origin().ascii_serialization()
            )))
        }
    }

    /// Downloads the chunks of a large result and appends their rows to the inline ones.
    async fn add_chunks(&self, reply: &mut Value) -> Result<(), Failure> {
        let data = &reply["data"];
        let urls: Vec<String> = data["chunks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["url"].as_str().map(str::to_owned))
            .collect();
        let mut headers: Vec<(String, String)> = Vec::new();
        if let Some(map) = data["chunkHeaders"].as_object() {
            for (k, v) in map {
                headers.push((k.clone(), v.as_str().unwrap_or_default().to_owned()));
            }
        } else if let Some(key) = data["qrmk"].as_str() {
            headers.push((
                "x-amz-server-side-encryption-customer-algorithm".into(),
                "AES256".into(),
            ));
            headers.push((
                "x-amz-server-side-encryption-customer-key".into(),
                key.to_owned(),
            ));
        }
        let never = CancellationToken::new();
        let downloads = urls
            .into_iter()
            .enumerate()
            .map(|(i, url)| self.chunk(i, url, &headers, &never));
        let parts: Vec<Vec<Value>> = stream::iter(downloads)
            .buffered(CHUNK_DOWNLOADS)
            .try_collect()
            .await?;
        let data = &mut reply["data"];
        if !data["rowset"].is_array() {
            data["rowset"] = Value::Array(Vec::new());
        }
        if let Some(rows) = data["rowset"].as_array_mut() {
            rows.extend(parts.into_iter().flatten());
        }
        data["chunks"] = Value::Array(Vec::new());
        Ok(())
    }

    async fn chunk(
        &self,
        index: usize,
        url: String,
        headers: &[(String, String)],
        never: &CancellationToken,
    ) -> Result<Vec<Value>, Failure> {
        let url = Url::parse(&url)
            .map_err(|_| Failure::Broken(format!("result chunk {index} has a bad URL")))?;
        let body = retry::retry(&READ_RETRY, never, "downloading a result chunk", |_| {
            self.get(&url, None, headers)
        })
        .await
        .map_err(|e| e.error.unwrap_or(Failure::Lost("interrupted".into())))?;
        chunk_rows(&body).map_err(|why| Failure::Broken(format!("result chunk {index}: {why}")))
    }

    /// One GET, classified for the retry loop.
    async fn get(
        &self,
        url: &Url,
        authorization: Option<&HeaderValue>,
        headers: &[(String, String)],
    ) -> Result<bytes::Bytes, Attempt<Failure>> {
        let mut request = self
            .plain
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/snowflake");
        if let Some(auth) = authorization {
            request = request.header(reqwest::header::AUTHORIZATION, auth.clone());
        }
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request
            .send()
            .await
            .map_err(|e| Failure::of_reqwest(&e).attempt())?;
        let response = checked_plain(response).await.map_err(Failure::attempt)?;
        response
            .bytes()
            .await
            .map_err(|e| Failure::of_reqwest(&e).attempt())
    }
}

/// The statement's own request id in place of the crate's fresh one; `retryCount` on a retry.
fn keep_request_id(url: &mut Url, request_id: &str, retry: u32) {
    let others: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "requestId" && k != "retryCount")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut query = url.query_pairs_mut();
    query.clear();
    query.append_pair("requestId", request_id);
    for (k, v) in &others {
        query.append_pair(k, v);
    }
    if retry > 0 {
        query.append_pair("retryCount", &retry.to_string());
    }
}

/// A statement request's body with this layer's parameters added.
fn add_parameters(req: &mut reqwest::Request, statement_timeout_seconds: u64) {
    let Some(mut body) = json_body(req) else {
        return;
    };
    let parameters = StatementParameters {
        result_format: "JSON",
        statement_timeout_seconds,
    };
    body["parameters"] = serde_json::to_value(parameters).unwrap_or_default();
    set_json_body(req, &body);
}

/// The JSON body the crate built for a request (it sends every body as JSON bytes).
fn json_body(req: &reqwest::Request) -> Option<Value> {
    let bytes = req.body()?.as_bytes()?;
    serde_json::from_slice(bytes).ok()
}

/// Replaces a request's body, this layer's edits in.
fn set_json_body(req: &mut reqwest::Request, body: &Value) {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    req.headers_mut().insert(
        reqwest::header::CONTENT_LENGTH,
        HeaderValue::from(bytes.len()),
    );
    *req.body_mut() = Some(bytes.into());
}

fn in_progress(reply: &Value) -> bool {
    protocol::is_in_progress(reply["code"].as_str())
}

fn has_chunks(reply: &Value) -> bool {
    reply["data"]["chunks"]
        .as_array()
        .is_some_and(|c| !c.is_empty())
}

/// A JSON result chunk: rows separated by commas, without the enclosing brackets, gzipped
/// whether or not the storage says so.
fn chunk_rows(body: &[u8]) -> Result<Vec<Value>, String> {
    let mut text = Vec::new();
    if body.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut text)
            .map_err(|e| format!("cannot gunzip it: {e}"))?;
    } else {
        text.extend_from_slice(body);
    }
    let mut wrapped = Vec::with_capacity(text.len() + 2);
    wrapped.push(b'[');
    wrapped.extend_from_slice(&text);
    wrapped.push(b']');
    serde_json::from_slice(&wrapped).map_err(|e| format!("not JSON rows: {e}"))
}

/// What the crate needs in a login reply and Snowflake always sends.
fn missing_login_fields(reply: &Value) -> Vec<&'static str> {
    let data = &reply["data"];
    let mut missing = Vec::new();
    for field in [
        "token",
        "masterToken",
        "sessionId",
        "validityInSeconds",
        "masterValidityInSeconds",
        "serverVersion",
    ] {
        if data[field].is_null() {
            missing.push(field);
        }
    }
    if data["sessionInfo"]["roleName"].is_null() {
        missing.push("sessionInfo.roleName");
    }
    missing
}

fn register_tokens(body: &[u8]) {
    if let Ok(reply) = serde_json::from_slice::<Value>(body) {
        for key in ["token", "masterToken", "sessionToken"] {
            if let Some(token) = reply["data"][key].as_str() {
                job_kit::secret::register(token);
            }
        }
    }
}

/// Scheme, host and port from `base`; the path and query stay.
fn redirect(url: &mut Url, base: &Url) {
    // Both are http(s) URLs with a host (checked in options), so none of these can fail.
    let _ = url.set_scheme(base.scheme());
    let _ = url.set_host(base.host_str());
    let _ = url.set_port(base.port());
}

type Head = (http::StatusCode, http::Version, http::HeaderMap);

async fn read(response: reqwest::Response) -> reqwest_middleware::Result<(Head, bytes::Bytes)> {
    let head = (
        response.status(),
        response.version(),
        response.headers().clone(),
    );
    let body = response.bytes().await?;
    Ok((head, body))
}

/// An identical response from a body already read (the crate reads it once more).
fn rebuild((status, version, mut headers): Head, body: bytes::Bytes) -> reqwest::Response {
    // The body may have been rewritten (and was decompressed on the way in).
    headers.remove(http::header::CONTENT_LENGTH);
    headers.remove(http::header::CONTENT_ENCODING);
    let mut rebuilt = http::Response::new(body);
    *rebuilt.status_mut() = status;
    *rebuilt.version_mut() = version;
    *rebuilt.headers_mut() = headers;
    reqwest::Response::from(rebuilt)
}

async fn checked(response: reqwest::Response) -> reqwest_middleware::Result<reqwest::Response> {
    checked_plain(response)
        .await
        .map_err(|failure| match failure {
            Failure::Status(status) => reqwest_middleware::Error::middleware(status),
            other => reqwest_middleware::Error::middleware(other),
        })
}

async fn checked_plain(response: reqwest::Response) -> Result<reqwest::Response, Failure> {
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(Failure::Status(HttpStatus::read(response).await))
    }
}

/// A statement of a transaction was not sent: its session is gone.
#[derive(Debug, thiserror::Error)]
#[error("the session changed during a transaction")]
struct SessionChanged;

/// A reply with a non-2xx status.
#[derive(Debug, Clone, thiserror::Error)]
#[error("HTTP {status}{detail}")]
pub(crate) struct HttpStatus {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// Snowflake's error code, when the body is one of its JSON replies.
    pub code: Option<String>,
    /// `: message` (Snowflake's, or the start of the body), scrubbed; empty if there is none.
    pub detail: String,
}

impl HttpStatus {
    async fn read(response: reqwest::Response) -> HttpStatus {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
        let body = response.text().await.unwrap_or_default();
        let reply = serde_json::from_str::<Reply>(&body).unwrap_or_default();
        let text = reply
            .message
            .clone()
            .unwrap_or_else(|| body.trim().to_owned());
        let detail = if text.is_empty() {
            String::new()
        } else {
            format!(
                ": {}",
                shorten(&job_kit::secret::scrub(&text), DETAIL_CHARS)
            )
        };
        HttpStatus {
            status,
            retry_after,
            code: reply.error_code().map(str::to_owned),
            detail,
        }
    }

    /// Snowflake (or the load balancer in front of it) turned the request away before doing
    /// anything: try again later.
    pub(crate) fn turned_away(&self) -> bool {
        matches!(self.status, 429 | 503)
    }
}

/// A failed request, sorted by what it says about the statement it carried.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum Failure {
    /// No connection was made: the request did not reach Snowflake.
    #[error("{0}")]
    NotSent(String),
    /// Snowflake (or something in front of it) answered with an error status.
    #[error("{0}")]
    Status(HttpStatus),
    /// The request went out, but no complete answer came back.
    #[error("{0}")]
    Lost(String),
    /// The request could not be built, or the answer makes no sense.
    #[error("{0}")]
    Broken(String),
}

impl Failure {
    pub(crate) fn of(err: &reqwest_middleware::Error) -> Failure {
        match err {
            reqwest_middleware::Error::Middleware(err) => {
                if let Some(status) = err.downcast_ref::<HttpStatus>() {
                    Failure::Status(status.clone())
                } else if let Some(failure) = err.downcast_ref::<Failure>() {
                    failure.clone()
                } else {
                    Failure::Broken(err.to_string())
                }
            }
            reqwest_middleware::Error::Reqwest(err) => Failure::of_reqwest(err),
        }
    }

    pub(crate) fn of_reqwest(err: &reqwest::Error) -> Failure {
        let text = describe(err);
        if err.is_connect() {
            Failure::NotSent(text)
        } else if err.is_builder() {
            Failure::Broken(text)
        } else {
            Failure::Lost(text)
        }
    }

    /// For a read (result, chunk): what is worth another try.
    fn attempt(self) -> Attempt<Failure> {
        let retry_after = match &self {
            Failure::Status(status) => status.retry_after,
            _ => None,
        };
        match &self {
            Failure::NotSent(_) | Failure::Lost(_) => Attempt::transient(self),
            Failure::Status(status) if status.status == 429 || status.status >= 500 => {
                Attempt::Transient {
                    error: self,
                    retry_after,
                }
            }
            _ => Attempt::Permanent(self),
        }
    }
}

/// reqwest's message and causes, with the URL's query cut off: a result chunk's URL is
/// presigned, i.e. a credential.
fn describe(err: &reqwest::Error) -> String {
    let mut text = job_kit::exit::chain(err);
    if let Some(url) = err.url() {
        let mut shown = url.clone();
        shown.set_query(None);
        text = text.replace(url.as_str(), shown.as_str());
    }
    job_kit::secret::scrub(&text)
}

pub(crate) fn shorten(text: &str, max_chars: usize) -> String {
    let mut out: String = text.chars().take(max_chars).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

pub(crate) fn url_for(base: &Url, path: &str, request_id: &str) -> Url {
    let mut url = base.join(path).unwrap_or_else(|_| base.clone());
    url.query_pairs_mut()
        .append_pair("requestId", request_id)
        .append_pair("request_guid", &uuid::Uuid::new_v4().to_string());
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_keeps_path_and_query() {
        let base = Url::parse("http://127.0.0.1:4566/").unwrap();
        let mut url = Url::parse(
            "https://xy12345.snowflakecomputing.com/session/v1/login-request?requestId=1",
        )
        .unwrap();
        redirect(&mut url, &base);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:4566/session/v1/login-request?requestId=1"
        );
        let base = Url::parse("https://xy12345.privatelink.snowflakecomputing.com/").unwrap();
        redirect(&mut url, &base);
        assert_eq!(
            url.as_str(),
            "https://xy12345.privatelink.snowflakecomputing.com/session/v1/login-request?requestId=1"
        );
    }

    #[test]
    fn chunks_are_rows_without_brackets_maybe_gzipped() {
        let plain = br#"["1","a"],["2",null]"#;
        assert_eq!(chunk_rows(plain).unwrap().len(), 2);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, plain).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(chunk_rows(&gz).unwrap()[1], serde_json::json!(["2", null]));
        assert!(chunk_rows(b"<html>").is_err());
    }

    #[test]
    fn login_replies_are_checked_for_what_snowflake_sends() {
        let fakesnow = serde_json::json!({"data": {"token": "t", "serverVersion": "10.0.0",
            "sessionInfo": {"databaseName": null}}, "success": true});
        assert_eq!(
            missing_login_fields(&fakesnow),
            [
                "masterToken",
                "sessionId",
                "validityInSeconds",
                "masterValidityInSeconds",
                "sessionInfo.roleName"
            ]
        );
    }

    #[test]
    fn shorten_marks_what_it_cut() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("abcdef", 3), "abc…");
    }
}
