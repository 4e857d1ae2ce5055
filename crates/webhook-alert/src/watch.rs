//! Watch mode: webhook-alert as a Kubernetes native sidecar (an init container with
//! `restartPolicy: Always`) beside a CronJob's jobs, alerting without the Kubernetes API. It
//! waits, idle, for the SIGTERM the kubelet sends sidecars once the pod's jobs have exited, then
//! reads the status files the jobs wrote (`JOB_STATUS_FILE`, see `job_kit::status`) and posts
//! the first failure: a non-zero exit code with its error line, or a file that was never written
//! (the job was killed, e.g. OOMKilled, or never started). Nothing is posted when every file says
//! 0.
//!
//! The post must be done before the kit stops waiting for a job after SIGTERM (20 s) and within
//! what is left of the pod's `terminationGracePeriodSeconds` (45 s in `k8s/cronjobs`: a deleted
//! pod's jobs may take 20 s to stop before the sidecar is signalled), so it is capped at
//! [`POST_WITHIN`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use job_kit::{Context, Exit, secret, status};
use tokio_util::sync::CancellationToken;

use crate::message::Failure;
use crate::{AlertError, Config};

/// The whole post, every retry included, ends within this after SIGTERM.
pub const POST_WITHIN: Duration = Duration::from_secs(15);

/// The error text when a job left no status file.
pub const NO_STATUS: &str =
    "the job ended without writing its status (killed, e.g. OOMKilled, or never started)";

/// The files of `ALERT_WATCH_STATUS_FILES`, in order.
pub fn files(list: &str) -> Result<Vec<PathBuf>, AlertError> {
    let files: Vec<PathBuf> = list
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(PathBuf::from)
        .collect();
    if files.is_empty() {
        Err(AlertError::NoStatusFiles)
    } else {
        Ok(files)
    }
}

/// What went wrong, read from the status files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// The failed step (its file's name without extension) when several files are watched.
    pub step: Option<String>,
    pub exit_code: Option<u8>,
    pub error: Option<String>,
}

/// The first of `files`, in order, that is missing, unreadable or not 0; `None` when all say 0.
pub fn first_failure(files: &[PathBuf]) -> Option<Failed> {
    for path in files {
        let step = (files.len() > 1).then(|| step_name(path));
        let (exit_code, error) = match status::read(path) {
            Ok(Some(status)) if status.code == 0 => continue,
            Ok(Some(status)) => (Some(status.code), status.error),
            Ok(None) => (None, Some(NO_STATUS.to_owned())),
            Err(err) => (
                None,
                Some(format!(
                    "cannot read the status file {}: {err}",
                    path.display()
                )),
            ),
        };
        return Some(Failed {
            step,
            exit_code,
            error,
        });
    }
    None
}

fn step_name(path: &Path) -> String {
    path.file_stem()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// The post's content for `failed`: the config's ids and settings, the status file's error.
pub fn failure(config: &Config, failed: &Failed, now: jiff::Timestamp) -> Failure {
    let mut failure = crate::failure(config, now);
    if let Some(step) = &failed.step {
        failure.task_id = Some(step.clone());
    }
    if let Some(error) = &failed.error {
        failure.error = Some(secret::scrub(error));
    }
    failure.exit_code = failed.exit_code;
    failure
}

/// Waits for SIGTERM (the kit's cancellation), then alerts if a job failed.
pub async fn run(
    config: &Config,
    files: &[PathBuf],
    context: &Context,
) -> Result<Exit, AlertError> {
    let cancel = &context.cancel;
    let shown: Vec<_> = files.iter().map(|f| f.display().to_string()).collect();
    tracing::info!(
        files = %shown.join(", "),
        "watching: the status files are read when SIGTERM arrives"
    );
    cancel.cancelled().await;
    let Some(failed) = first_failure(files) else {
        tracing::info!("every job succeeded: nothing to post");
        return Ok(Exit::Success);
    };
    tracing::info!(
        step = failed.step.as_deref().unwrap_or(""),
        exit_code = failed.exit_code.map(i32::from).unwrap_or(-1),
        "a job failed: posting the alert"
    );
    let mut failure = failure(config, &failed, jiff::Timestamp::now());
    crate::add_run_context(&mut failure, context.run);
    let payload = crate::payload_of(config, &failure);
    // The kit's token is cancelled already (that is how we got here): post with our own.
    let posting = CancellationToken::new();
    let result = tokio::time::timeout(
        POST_WITHIN,
        crate::post(config, &payload, &posting, POST_WITHIN),
    )
    .await;
    match result {
        Ok(Ok(())) => Ok(Exit::Success),
        // Returned as an exit, not an error: the kit would call an error after SIGTERM an
        // interruption, and this is a failure to post.
        Ok(Err(err)) => {
            tracing::error!("webhook-alert: {}", job_kit::exit::chain(&err));
            Ok(Exit::Failure)
        }
        Err(_) => {
            tracing::error!("webhook-alert: the alert was not posted within {POST_WITHIN:?}");
            Ok(Exit::Failure)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let sources = job_kit::env::Sources {
            flags: Default::default(),
            env: [
                ("MATTERMOST_WEBHOOK_URL", "https://chat.example.com/hooks/x"),
                ("ALERT_DAG_ID", "pg-job-snapshots"),
                ("ALERT_TASK_ID", "the-container"),
                ("ALERT_RUN_ID", "pg-job-snapshots-29012345-abcde"),
                ("ALERT_FAILED_AT", "2026-11-27T03:12:09Z"),
                ("ALERT_WATCH_STATUS_FILES", "/status/a.status"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        };
        job_kit::env::load(crate::config::VARS, &sources).unwrap()
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn files_are_listed_in_order_and_an_empty_list_is_refused() {
        assert_eq!(
            files(" /s/a.status, /s/b.status ,").unwrap(),
            [PathBuf::from("/s/a.status"), PathBuf::from("/s/b.status")]
        );
        assert!(matches!(files(" , "), Err(AlertError::NoStatusFiles)));
    }

    #[test]
    fn success_posts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.status", "0\n");
        let b = write(dir.path(), "b.status", "0\n");
        assert_eq!(first_failure(&[a, b]), None);
    }

    #[test]
    fn a_failed_status_becomes_the_post_with_its_error_and_code() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a.status",
            "3\nstage-import: 2 of 9 files failed; see postgres://u:pw1234567@db/x\n",
        );
        let failed = first_failure(&[a]).unwrap();
        assert_eq!(
            failed,
            Failed {
                step: None,
                exit_code: Some(3),
                error: Some(
                    "stage-import: 2 of 9 files failed; see postgres://u:pw1234567@db/x".into()
                ),
            }
        );
        let config = config();
        let payload =
            crate::payload_of(&config, &failure(&config, &failed, jiff::Timestamp::now()));
        let text = payload.text;
        assert!(
            text.starts_with(
                ":red_circle: **Task `the-container` in DAG `pg-job-snapshots` failed:** \
                 stage-import: 2 of 9 files failed"
            ),
            "{text}"
        );
        assert!(
            text.contains("**Run:** `pg-job-snapshots-29012345-abcde`"),
            "{text}"
        );
        assert!(
            text.contains("**Exit code:** 3 (partial success: finished, but some items failed)"),
            "{text}"
        );
        assert!(
            text.contains("**Failed at:** 2026-11-27 03:12:09 UTC"),
            "{text}"
        );
        assert!(!text.contains("pw1234567"), "the error is scrubbed: {text}");
    }

    #[test]
    fn a_missing_file_says_the_job_never_wrote_its_status() {
        let dir = tempfile::tempdir().unwrap();
        let failed = first_failure(&[dir.path().join("a.status")]).unwrap();
        assert_eq!(failed.exit_code, None);
        assert_eq!(failed.error.as_deref(), Some(NO_STATUS));
        let config = config();
        let text =
            crate::payload_of(&config, &failure(&config, &failed, jiff::Timestamp::now())).text;
        assert!(
            text.contains("failed:** the job ended without writing its status"),
            "{text}"
        );
        assert!(!text.contains("**Exit code:**"), "{text}");
    }

    #[test]
    fn in_a_chain_the_first_step_not_at_0_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let first = write(dir.path(), "account-arr.status", "0\n");
        let second = write(
            dir.path(),
            "opportunity-snapshot.status",
            "1\npg-job: statement 3 failed\n",
        );
        let third = dir.path().join("opportunitylineitem-snapshot.status");
        let failed = first_failure(&[first.clone(), second, third.clone()]).unwrap();
        assert_eq!(failed.step.as_deref(), Some("opportunity-snapshot"));
        assert_eq!(failed.exit_code, Some(1));
        let config = config();
        let text =
            crate::payload_of(&config, &failure(&config, &failed, jiff::Timestamp::now())).text;
        assert!(
            text.starts_with(
                ":red_circle: **Task `opportunity-snapshot` in DAG `pg-job-snapshots` failed:** \
                 pg-job: statement 3 failed"
            ),
            "{text}"
        );
        // A step killed before it wrote its status (e.g. OOMKilled) is named too.
        let failed = first_failure(&[first, third]).unwrap();
        assert_eq!(failed.step.as_deref(), Some("opportunitylineitem-snapshot"));
        assert_eq!(failed.error.as_deref(), Some(NO_STATUS));
    }

    #[test]
    fn an_unreadable_status_is_a_failure_too() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.status", "garbage\n");
        let failed = first_failure(&[a]).unwrap();
        assert!(
            failed
                .error
                .as_deref()
                .unwrap()
                .contains("cannot read the status file"),
            "{failed:?}"
        );
    }
}
