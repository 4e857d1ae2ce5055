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
    let body = match tokio::time::timeout(timeout, response.text()).await {
        Ok(Ok(body)) => body,
        _ => String::new(),
    };
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
}
