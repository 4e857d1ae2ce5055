//! Sending the post: one HTTP attempt, classified for the kit's retry loop. Connect errors,
//! timeouts, 5xx and 429 are transient; any other answer is final. The webhook URL is a secret
//! (its path is the key): no message here ever contains it.

use std::time::{Duration, SystemTime};

use job_kit::retry::{self, Attempt};
use reqwest::StatusCode;

use crate::message::Payload;

/// Mattermost answers a bad post with a JSON error; keep what helps a person fix it.
#[derive(Debug, serde::Deserialize)]
struct MattermostError {
    message: Option<String>,
    id: Option<String>,
    detailed_error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error("Mattermost rejected the post with HTTP {status}{detail}")]
    Rejected { status: StatusCode, detail: String },
    #[error("Mattermost answered HTTP {status}{detail}")]
    Unavailable { status: StatusCode, detail: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot reach the webhook host: {0}")]
    Transport(String),
}

/// One attempt at posting `payload`.
pub async fn attempt(
    client: &reqwest::Client,
    url: &url::Url,
    payload: &Payload,
    timeout: Duration,
) -> Result<(), Attempt<AttemptError>> {
    let response = match client.post(url.as_str()).json(payload).send().await {
        Ok(response) => response,
        Err(err) if err.is_timeout() => {
            return Err(Attempt::transient(AttemptError::Timeout(timeout)));
        }
        Err(err) if err.is_builder() => {
            return Err(Attempt::Permanent(AttemptError::Transport(describe(err))));
        }
        Err(err) => return Err(Attempt::transient(AttemptError::Transport(describe(err)))),
    };
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
    let body = tokio::time::timeout(timeout, body_start(response))
        .await
        .unwrap_or_default();
    let detail = detail(&body);
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Err(Attempt::Transient {
            error: AttemptError::Unavailable { status, detail },
            retry_after,
        })
    } else {
        Err(Attempt::Permanent(AttemptError::Rejected {
            status,
            detail,
        }))
    }
}

/// How much of an error body is read: enough for Mattermost's JSON error, and an answer of
/// any size costs no more memory than this.
const ERROR_BODY_LIMIT: usize = 8 * 1024;

/// The first `ERROR_BODY_LIMIT` bytes of the body (what arrived of them if it breaks off).
async fn body_start(mut response: reqwest::Response) -> String {
    let mut start = Vec::new();
    while start.len() < ERROR_BODY_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => start.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    start.truncate(ERROR_BODY_LIMIT);
    String::from_utf8_lossy(&start).into_owned()
}

/// `: message (id) detailed error` from a Mattermost error body, or the start of any other body.
fn detail(body: &str) -> String {
    if let Ok(err) = serde_json::from_str::<MattermostError>(body) {
        let mut parts = Vec::new();
        parts.extend(err.message.filter(|s| !s.is_empty()));
        parts.extend(err.id.filter(|s| !s.is_empty()).map(|id| format!("({id})")));
        parts.extend(err.detailed_error.filter(|s| !s.is_empty()));
        if !parts.is_empty() {
            return format!(": {}", parts.join(" "));
        }
    }
    let body = body.trim();
    if body.is_empty() {
        return String::new();
    }
    let shown: String = body.chars().take(300).collect();
    let more = if shown.len() < body.len() { "…" } else { "" };
    format!(": {shown}{more}")
}

/// reqwest's message, without the URL (it holds the webhook key) and with its causes.
fn describe(err: reqwest::Error) -> String {
    job_kit::exit::chain(&err.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_reads_mattermost_errors_and_plain_bodies() {
        let body = r#"{"id":"web.incoming_webhook.invalid.app_error","message":"Invalid webhook.","detailed_error":"","request_id":"x","status_code":400}"#;
        assert_eq!(
            detail(body),
            ": Invalid webhook. (web.incoming_webhook.invalid.app_error)"
        );
        assert_eq!(detail("  bad gateway \n"), ": bad gateway");
        assert_eq!(detail(""), "");
        assert!(detail(&"x".repeat(1000)).ends_with("x…"));
    }

    /// A server that answers 400 with a body it says is 1 GiB long, sends 64 KiB of it and then
    /// nothing more. Reading the whole body would wait for the timeout (or fill the memory).
    #[tokio::test]
    async fn only_the_start_of_an_endless_error_body_is_read() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url: url::Url = format!("http://{}/hooks/x", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let (done, wait_done) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\n\
                        content-length: 1073741824\r\n\r\n";
            stream.write_all(head.as_bytes()).unwrap();
            let _ = stream.write_all(&b"too big ".repeat(8 * 1024));
            let _ = wait_done.recv();
        });
        job_kit::install_crypto_provider();
        let timeout = Duration::from_secs(20);
        let client = reqwest::Client::builder().timeout(timeout).build().unwrap();
        let payload = Payload {
            text: "the job failed".to_owned(),
            username: "webhook-alert".to_owned(),
            channel: None,
            icon_url: None,
            icon_emoji: None,
        };
        let started = std::time::Instant::now();
        let result = attempt(&client, &url, &payload, timeout).await;
        let _ = done.send(());
        let Err(Attempt::Permanent(AttemptError::Rejected { status, detail })) = result else {
            panic!("{result:?}");
        };
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(detail.starts_with(": too big too big"), "{detail}");
        assert!(started.elapsed() < timeout / 2, "{:?}", started.elapsed());
    }
}
