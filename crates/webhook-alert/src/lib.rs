//! webhook-alert: posts a failed task (or any job failure) to a Mattermost incoming webhook, so
//! that the team can triage from the channel. Airflow's failure callback runs it with the
//! failed task's details in the environment; beside a CronJob's jobs it runs as a native
//! sidecar that reads their status files when the pod ends and posts a failure ([`watch`]).

pub mod config;
pub mod message;
pub mod post;
pub mod watch;

use std::time::Duration;

use job_kit::retry::{self, RetryError};
use job_kit::run::{RunContext, Scheduler};
use job_kit::{Context, EnvVar, Exit, Job, JobError, NoArgs, secret};
use tokio_util::sync::CancellationToken;

pub use config::Config;
use message::{Failure, Payload};

pub struct WebhookAlert;

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("cannot post the alert to {url}: {source}")]
    Post {
        url: String,
        source: RetryError<post::AttemptError>,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    #[error("ALERT_WATCH_STATUS_FILES names no file")]
    NoStatusFiles,
}

impl JobError for AlertError {
    fn exit(&self) -> Exit {
        match self {
            AlertError::NoStatusFiles => Exit::Usage,
            _ => Exit::Failure,
        }
    }
}

impl Job for WebhookAlert {
    const NAME: &'static str = "webhook-alert";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const ABOUT: &'static str = "Posts a failed Airflow task or job to a Mattermost incoming webhook \
         (or, with ALERT_WATCH_STATUS_FILES, watches a pod's jobs as a sidecar).";
    const VARS: &'static [EnvVar] = config::VARS;
    type Config = Config;
    type Args = NoArgs;
    type Error = AlertError;

    async fn run(config: Config, _: NoArgs, context: Context) -> Result<Exit, AlertError> {
        for name in config.alert_redact_vars.iter().flat_map(|v| v.split(',')) {
            if let Some(value) = context.env.raw(name.trim()) {
                secret::register(value);
            }
        }
        if let Some(files) = &config.alert_watch_status_files {
            return watch::run(&config, &watch::files(files)?, &context).await;
        }
        let mut failure = failure(&config, jiff::Timestamp::now());
        add_run_context(&mut failure, context.run);
        let payload = payload_of(&config, &failure);
        post(&config, &payload, &context.cancel, Duration::from_secs(120)).await?;
        Ok(Exit::Success)
    }
}

/// Posts `payload` with the configured timeout and attempts, no new attempt after
/// `max_elapsed`.
pub async fn post(
    config: &Config,
    payload: &Payload,
    cancel: &CancellationToken,
    max_elapsed: Duration,
) -> Result<(), AlertError> {
    let timeout = Duration::from_secs_f64(config.alert_timeout_secs);
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("webhook-alert/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| AlertError::Client(job_kit::exit::chain(&e.without_url())))?;
    let policy = retry::Policy {
        max_attempts: config.alert_max_attempts,
        initial_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(10),
        max_elapsed,
    };
    let url = config.mattermost_webhook_url.expose();
    let where_to = config.mattermost_webhook_url.redacted();
    retry::retry(&policy, cancel, "posting the alert", |_| {
        post::attempt(&client, url, payload, timeout)
    })
    .await
    .map_err(|source| AlertError::Post {
        url: where_to.clone(),
        source,
    })?;
    tracing::info!(
        webhook = %where_to,
        chars = payload.text.chars().count(),
        "alert posted"
    );
    Ok(())
}

/// What `config` says about the failure, at time `now` unless the config says when it failed.
pub fn failure(config: &Config, now: jiff::Timestamp) -> Failure {
    let failed_at = config
        .alert_failed_at
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .unwrap_or(now);
    Failure {
        dag_id: config.alert_dag_id.clone(),
        task_id: config.alert_task_id.clone(),
        run_id: config.alert_run_id.clone(),
        try_number: config.alert_try_number,
        execution_date: config.alert_execution_date.clone(),
        failed_at: failed_at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        log_url: config.alert_log_url.clone(),
        airflow_base_url: config.airflow_base_url.clone(),
        error: config.alert_error.as_deref().map(secret::scrub),
        exit_code: None,
        cronjob: None,
        k8s_job: None,
    }
}

/// What the alert's own run context adds: the CronJob and its Job when a CronJob's sidecar
/// posts, or the DAG and its run when the variables that name them are not set (the alert task
/// runs in the same DAG run as the tasks it reports).
pub fn add_run_context(failure: &mut Failure, run: &RunContext) {
    match &run.scheduler {
        Some(Scheduler::Airflow {
            dag_id, dag_run_id, ..
        }) => {
            failure.dag_id.get_or_insert_with(|| dag_id.clone());
            if failure.run_id.is_none() {
                failure.run_id = dag_run_id.clone();
            }
        }
        Some(Scheduler::CronJob { cronjob, k8s_job }) => {
            failure.cronjob = Some(cronjob.clone());
            failure.k8s_job = k8s_job.clone();
        }
        None => {}
    }
}

/// The post for `config`, at time `now` unless the config says when the task failed.
pub fn payload(config: &Config, now: jiff::Timestamp) -> Payload {
    payload_of(config, &failure(config, now))
}

/// The post of `failure`, as `config` says it should appear.
pub fn payload_of(config: &Config, failure: &Failure) -> Payload {
    Payload {
        text: message::text(failure, config.mattermost_max_post_chars),
        username: config.mattermost_username.clone(),
        channel: config.mattermost_channel.clone(),
        icon_url: config.mattermost_icon_url.as_ref().map(|u| u.to_string()),
        icon_emoji: config.mattermost_icon_emoji.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(scheduler: Option<Scheduler>) -> RunContext {
        RunContext {
            job: "webhook-alert",
            version: "0.1.0",
            run_id: "01932f2a-6b7c-7d8e-9f00-112233445566".into(),
            scheduler,
            log_url: None,
        }
    }

    #[test]
    fn the_alerts_own_airflow_context_fills_in_the_dag_and_run_it_was_not_given() {
        let airflow = Some(Scheduler::Airflow {
            dag_id: "stage_import".into(),
            task_id: "failure-alert".into(),
            dag_run_id: Some("scheduled__2026-12-05T00:00:00+00:00".into()),
            try_number: Some(1),
        });
        let mut bare = Failure::default();
        add_run_context(&mut bare, &run(airflow.clone()));
        assert_eq!(bare.dag_id.as_deref(), Some("stage_import"));
        assert_eq!(
            bare.run_id.as_deref(),
            Some("scheduled__2026-12-05T00:00:00+00:00")
        );
        // The alert task is not the task that failed, and what the variables say wins.
        assert_eq!(bare.task_id, None);
        let mut given = Failure {
            dag_id: Some("pg_job".into()),
            run_id: Some("manual__x".into()),
            ..Failure::default()
        };
        add_run_context(&mut given, &run(airflow));
        assert_eq!(given.dag_id.as_deref(), Some("pg_job"));
        assert_eq!(given.run_id.as_deref(), Some("manual__x"));
        assert_eq!(given.cronjob, None);

        let mut by_hand = Failure::default();
        add_run_context(&mut by_hand, &run(None));
        assert_eq!(by_hand.dag_id, None);
    }
}
