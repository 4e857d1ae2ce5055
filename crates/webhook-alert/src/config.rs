//! The environment contract of webhook-alert. Only the webhook URL is required: an alert that
//! knows little still beats no alert.

use job_kit::{EnvVar, Kind, Secret};
use serde::Deserialize;

pub const VARS: &[EnvVar] = &[
    EnvVar::new(
        "MATTERMOST_WEBHOOK_URL",
        Kind::CredentialUrl,
        "Mattermost incoming webhook URL to post to",
    )
    .required()
    .secret(),
    EnvVar::new(
        "ALERT_DAG_ID",
        Kind::Text,
        "Airflow DAG id of the failed task",
    ),
    EnvVar::new(
        "ALERT_TASK_ID",
        Kind::Text,
        "Airflow task id of the failed task",
    ),
    EnvVar::new("ALERT_RUN_ID", Kind::Text, "Airflow DAG run id"),
    EnvVar::new(
        "ALERT_TRY_NUMBER",
        Kind::Integer {
            min: 0,
            max: 10_000,
        },
        "Which try of the task failed",
    ),
    EnvVar::new(
        "ALERT_EXECUTION_DATE",
        Kind::Text,
        "The run's execution (logical) date, shown as given (Airflow's {{ ts }})",
    ),
    EnvVar::new(
        "ALERT_FAILED_AT",
        Kind::Timestamp,
        "When the task failed, RFC 3339 (Airflow's {{ ti.end_date }}); default: now",
    ),
    EnvVar::new(
        "ALERT_LOG_URL",
        Kind::HttpUrl,
        "Link to the task's log; default: built from AIRFLOW_BASE_URL and the ids",
    ),
    EnvVar::new(
        "AIRFLOW_BASE_URL",
        Kind::HttpUrl,
        "Airflow web UI base URL, for links to the DAG, task and log",
    ),
    EnvVar::new("ALERT_ERROR", Kind::Text, "The error text of the failure"),
    EnvVar::new(
        "ALERT_REDACT_VARS",
        Kind::List,
        "Names of other variables whose values must be masked if they appear in the error text",
    ),
    EnvVar::new(
        "ALERT_WATCH_STATUS_FILES",
        Kind::List,
        "Watch mode (a Kubernetes sidecar): wait for SIGTERM, then read these status files \
         (the jobs' JOB_STATUS_FILE, comma-separated, in the order the steps run) and post the \
         first that is missing or not 0; with several, its name without extension is the task",
    ),
    EnvVar::new(
        "MATTERMOST_CHANNEL",
        Kind::Text,
        "Channel to post in instead of the webhook's own",
    ),
    EnvVar::new(
        "MATTERMOST_USERNAME",
        Kind::Text,
        "Name the post appears under",
    )
    .default("Airflow"),
    EnvVar::new(
        "MATTERMOST_ICON_URL",
        Kind::HttpUrl,
        "Avatar image URL of the post",
    ),
    EnvVar::new(
        "MATTERMOST_ICON_EMOJI",
        Kind::Text,
        "Avatar emoji of the post (e.g. :warning:)",
    ),
    EnvVar::new(
        "MATTERMOST_MAX_POST_CHARS",
        Kind::Integer {
            min: 500,
            max: 1_000_000,
        },
        "Longest post the server takes (MaxPostSize); longer error text is cut to fit",
    )
    .default("16383"),
    EnvVar::new(
        "ALERT_TIMEOUT_SECS",
        Kind::Seconds,
        "Timeout of one HTTP attempt, in seconds",
    )
    .default("10"),
    EnvVar::new(
        "ALERT_MAX_ATTEMPTS",
        Kind::Integer { min: 1, max: 20 },
        "Attempts in all before giving up (connect errors, timeouts, 5xx and 429 are retried)",
    )
    .default("4"),
];

#[derive(Debug, Deserialize)]
pub struct Config {
    pub mattermost_webhook_url: Secret<url::Url>,
    pub alert_dag_id: Option<String>,
    pub alert_task_id: Option<String>,
    pub alert_run_id: Option<String>,
    pub alert_try_number: Option<u32>,
    pub alert_execution_date: Option<String>,
    pub alert_failed_at: Option<String>,
    pub alert_log_url: Option<url::Url>,
    pub airflow_base_url: Option<url::Url>,
    pub alert_error: Option<String>,
    pub alert_redact_vars: Option<String>,
    pub alert_watch_status_files: Option<String>,
    pub mattermost_channel: Option<String>,
    pub mattermost_username: String,
    pub mattermost_icon_url: Option<url::Url>,
    pub mattermost_icon_emoji: Option<String>,
    pub mattermost_max_post_chars: usize,
    pub alert_timeout_secs: f64,
    pub alert_max_attempts: u32,
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_struct_matches_the_variable_table() {
        job_kit::env::check_contract::<super::Config>(super::VARS).unwrap();
    }
}
