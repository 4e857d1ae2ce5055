//! Prometheus metrics, the batch-job way: a run is over before any scrape would find it, so when
//! it ends the kit pushes what it did to a Pushgateway (`PROMETHEUS_PUSHGATEWAY_URL`), which
//! Prometheus scrapes.
//!
//! Jobs record what they loaded in the run's [`tally`]: the run's own grouping (a source, a
//! script) and, for a job that works through several items in one run (pg-replicate's tables),
//! each item. Each group is one Pushgateway group (`job` plus the item's label), pushed with
//! POST, which replaces only the metrics it sends: a failed run updates its exit code and
//! counts and leaves the last success's timestamp where it was, which is what an alert on
//! "no success for 26 h" reads. Retries are counted by the kit's retry loop.
//!
//! Pushing is off when the variable is unset, bounded by its timeout, and a failure to push is
//! a warning: metrics never fail a job.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use crate::env::{EnvVar, Kind, Sources};
use crate::exit::Exit;
use crate::run::RunContext;
use crate::secret;

pub const VARS: &[EnvVar] = &[
    EnvVar::new(
        "PROMETHEUS_PUSHGATEWAY_URL",
        Kind::HttpUrl,
        "Metrics: push this run's metrics to this Prometheus Pushgateway when the job ends \
         (e.g. http://pushgateway:9091; off when unset)",
    ),
    EnvVar::new(
        "PROMETHEUS_PUSHGATEWAY_TIMEOUT_SECS",
        Kind::Seconds,
        "Metrics: the longest the push may take; past it the job ends with a warning",
    )
    .default("5"),
];

/// What a run or one of its items did. Counts add up when the same item is recorded twice.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub rows: u64,
    pub files: u64,
    pub bytes: u64,
    /// Items that failed within this one: files of a load, statements of a script.
    pub failed_items: u64,
}

impl Counts {
    pub(crate) fn add(&mut self, other: Counts) {
        self.rows += other.rows;
        self.files += other.files;
        self.bytes += other.bytes;
        self.failed_items += other.failed_items;
    }
}

/// A Pushgateway grouping label and its value: `("table", "salesforce.account")`.
pub type Group = (&'static str, String);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    group: Group,
    counts: Counts,
    succeeded: bool,
}

/// What the run did, as the jobs record it.
#[derive(Debug)]
pub struct Tally {
    scope: Mutex<Option<Group>>,
    items: Mutex<Vec<Item>>,
    retries: AtomicU64,
}

static TALLY: Tally = Tally {
    scope: Mutex::new(None),
    items: Mutex::new(Vec::new()),
    retries: AtomicU64::new(0),
};

/// This process's tally.
pub fn tally() -> &'static Tally {
    &TALLY
}

impl Tally {
    /// The run's own grouping: what it is a run of (`("source", "licenses")`). Without one the
    /// run is grouped by job alone.
    pub fn scope(&self, label: &'static str, value: &str) {
        debug_assert!(is_label_name(label), "{label}");
        *lock(&self.scope) = Some((label, value.to_owned()));
    }

    /// Records an item's outcome. The run's scope as an item adds to the run's own counts.
    pub fn record(&self, label: &'static str, value: &str, counts: Counts, succeeded: bool) {
        debug_assert!(is_label_name(label), "{label}");
        let mut items = lock(&self.items);
        match items
            .iter_mut()
            .find(|item| item.group.0 == label && item.group.1 == value)
        {
            Some(item) => {
                item.counts.add(counts);
                item.succeeded &= succeeded;
            }
            None => items.push(Item {
                group: (label, value.to_owned()),
                counts,
                succeeded,
            }),
        }
    }

    /// The run's grouping, when the job gave one.
    pub fn scope_group(&self) -> Option<Group> {
        lock(&self.scope).clone()
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// The groups to push, the run's first, each with its exposition text.
    fn groups(
        &self,
        run: Option<&RunContext>,
        exit: Exit,
        started: SystemTime,
        ended: SystemTime,
    ) -> Vec<(Option<Group>, String)> {
        let scope = lock(&self.scope).clone();
        let items = lock(&self.items).clone();
        let ended_at = seconds_since_epoch(ended);
        let mut run_counts = Counts::default();
        let mut failed_items = 0;
        let mut groups = Vec::new();
        for item in &items {
            run_counts.add(item.counts);
            if Some(&item.group) == scope.as_ref() {
                continue;
            }
            failed_items += u64::from(!item.succeeded);
            let mut text = String::new();
            ended_gauges(&mut text, ended_at, item.succeeded);
            counts(
                &mut text,
                item.counts,
                u64::from(!item.succeeded) + item.counts.failed_items,
            );
            groups.push((Some(item.group.clone()), text));
        }
        let mut text = String::new();
        ended_gauges(&mut text, ended_at, exit == Exit::Success);
        let duration = ended
            .duration_since(started)
            .unwrap_or_default()
            .as_secs_f64();
        gauge(
            &mut text,
            "last_run_duration_seconds",
            "How long the job's last run took.",
            duration,
        );
        gauge(
            &mut text,
            "last_run_exit_code",
            "The job's last exit code (0 success, 1 failure, 2 configuration, 3 partial, 4 no input, 130 interrupted).",
            f64::from(exit.code()),
        );
        if let Some(run) = run {
            run_info(&mut text, run);
        }
        counts(
            &mut text,
            run_counts,
            failed_items + run_counts.failed_items,
        );
        gauge(
            &mut text,
            "last_run_retries",
            "Retried attempts (network, server) in the last run.",
            self.retries.load(Ordering::Relaxed) as f64,
        );
        groups.insert(0, (scope, text));
        groups
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

const PREFIX: &str = "data_job_";
// One help text per metric, whatever the group: the Pushgateway keeps a metric's help
// consistent across groups.
const LAST_RUN_HELP: &str = "When the last run (of the job, or that processed the item) ended.";
const LAST_SUCCESS_HELP: &str =
    "When the last successful run (of the job, or that processed the item) ended.";

/// When the run ended, and when it last succeeded if it did (a failed run leaves that one as
/// the Pushgateway holds it).
fn ended_gauges(text: &mut String, ended_at: f64, succeeded: bool) {
    gauge(text, "last_run_timestamp_seconds", LAST_RUN_HELP, ended_at);
    if succeeded {
        gauge(
            text,
            "last_success_timestamp_seconds",
            LAST_SUCCESS_HELP,
            ended_at,
        );
    }
}

fn gauge(text: &mut String, name: &str, help: &str, value: f64) {
    let _ = writeln!(text, "# HELP {PREFIX}{name} {help}");
    let _ = writeln!(text, "# TYPE {PREFIX}{name} gauge");
    let _ = writeln!(text, "{PREFIX}{name} {value}");
}

/// Which run the group's values are from, as labels of a constant 1: its version and id, and
/// the DAG, task, DAG run and try (or the CronJob and its Job) that started it, so that an
/// alert leads to the run's log and lineage. One series per group: each push replaces it.
fn run_info(text: &mut String, run: &RunContext) {
    let name = "last_run_info";
    let mut labels = format!("version=\"{}\"", label_value(run.version));
    for (key, value) in run.log_fields() {
        let value = match value {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        };
        let _ = write!(labels, ",{key}=\"{}\"", label_value(&value));
    }
    let _ = writeln!(
        text,
        "# HELP {PREFIX}{name} The last run: its version, id and who started it, as labels."
    );
    let _ = writeln!(text, "# TYPE {PREFIX}{name} gauge");
    let _ = writeln!(text, "{PREFIX}{name}{{{labels}}} 1");
}

/// A label value as the text exposition format writes it.
fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn counts(text: &mut String, counts: Counts, failed_items: u64) {
    gauge(
        text,
        "last_run_rows",
        "Rows loaded by the last run.",
        counts.rows as f64,
    );
    gauge(
        text,
        "last_run_files",
        "Files loaded by the last run.",
        counts.files as f64,
    );
    gauge(
        text,
        "last_run_bytes",
        "Bytes loaded by the last run.",
        counts.bytes as f64,
    );
    gauge(
        text,
        "last_run_failed_items",
        "Items (tables, files, statements) that failed in the last run.",
        failed_items as f64,
    );
}

fn seconds_since_epoch(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// The group's path under the Pushgateway's URL. Values are base64 (URL-safe), the form the
/// Pushgateway documents for values that may hold a slash.
fn group_path(job: &str, group: Option<&Group>) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut path = format!("metrics/job@base64/{}", engine.encode(job));
    if let Some((label, value)) = group {
        // An empty value is written `=` in base64 form (the Pushgateway's own rule).
        let value = if value.is_empty() {
            "=".to_owned()
        } else {
            engine.encode(value)
        };
        path.push_str(&format!("/{label}@base64/{value}"));
    }
    path
}

/// Whether a Pushgateway is configured at all.
pub(crate) fn configured(sources: &Sources) -> bool {
    sources.value(&VARS[0]).is_some()
}

/// Pushes the run's metrics if a Pushgateway is configured. Never fails the run: every problem
/// is a warning.
pub(crate) async fn push(
    sources: &Sources,
    run: &RunContext,
    exit: Exit,
    started: SystemTime,
    ended: SystemTime,
) {
    let [url_var, timeout_var] = VARS else {
        unreachable!("VARS holds the URL and the timeout")
    };
    let Some(raw) = sources.value(url_var) else {
        return;
    };
    let base = match url::Url::parse(raw) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url,
        _ => {
            tracing::warn!(
                "PROMETHEUS_PUSHGATEWAY_URL is not an http(s) URL: this run's metrics are not pushed"
            );
            return;
        }
    };
    let timeout = crate::env::seconds(sources.value(timeout_var).unwrap_or("5"))
        .unwrap_or(Duration::from_secs(5));
    let shown = secret::redacted_url(&base);
    let base = crate::http::with_slash(base);
    let client = match crate::http::client() {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!("cannot push metrics: {e}");
            return;
        }
    };
    let groups = tally().groups(Some(run), exit, started, ended);
    let pushes = async {
        for (group, text) in &groups {
            let path = group_path(run.job, group.as_ref());
            let url = base.join(&path).map_err(|e| format!("{path}: {e}"))?;
            let request = client
                .post(url)
                .header("Content-Type", "text/plain; version=0.0.4")
                .body(text.clone());
            crate::http::send(request)
                .await
                .map_err(|e| format!("{path}: {e}"))?;
        }
        Ok::<(), String>(())
    };
    match tokio::time::timeout(timeout, pushes).await {
        Ok(Ok(())) => tracing::info!(
            pushgateway = %shown,
            groups = groups.len(),
            "metrics pushed"
        ),
        Ok(Err(e)) => tracing::warn!(
            pushgateway = %shown,
            "metrics not pushed: {}",
            secret::scrub(&e)
        ),
        Err(_) => tracing::warn!(
            pushgateway = %shown,
            "metrics not pushed: no answer within {timeout:?}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Tally {
        Tally {
            scope: Mutex::new(None),
            items: Mutex::new(Vec::new()),
            retries: AtomicU64::new(0),
        }
    }

    #[test]
    fn a_run_of_several_tables_pushes_the_run_and_each_table() {
        let tally = fresh();
        let counts = |rows, bytes| Counts {
            rows,
            bytes,
            ..Counts::default()
        };
        tally.record("table", "salesforce.account", counts(10, 100), true);
        tally.record("table", "salesforce.contact", counts(5, 50), false);
        tally.record("table", "salesforce.account", counts(1, 1), true);
        tally.retried();
        let started = UNIX_EPOCH + Duration::from_secs(1_000);
        let ended = UNIX_EPOCH + Duration::from_secs(1_030);
        let groups = tally.groups(None, Exit::Partial, started, ended);
        assert_eq!(groups.len(), 3);
        let (run, text) = &groups[0];
        assert_eq!(run, &None);
        assert!(text.contains("data_job_last_run_exit_code 3\n"), "{text}");
        assert!(
            text.contains("data_job_last_run_duration_seconds 30\n"),
            "{text}"
        );
        assert!(text.contains("data_job_last_run_rows 16\n"), "{text}");
        assert!(
            text.contains("data_job_last_run_failed_items 1\n"),
            "{text}"
        );
        assert!(text.contains("data_job_last_run_retries 1\n"), "{text}");
        assert!(
            !text.contains("last_success"),
            "a partial run is no success: {text}"
        );
        let (account, text) = &groups[1];
        assert_eq!(account, &Some(("table", "salesforce.account".to_owned())));
        assert!(text.contains("data_job_last_run_rows 11\n"), "{text}");
        assert!(text.contains("data_job_last_run_bytes 101\n"), "{text}");
        assert!(
            text.contains("data_job_last_success_timestamp_seconds 1030\n"),
            "{text}"
        );
        let (_, text) = &groups[2];
        assert!(!text.contains("last_success"), "{text}");
        assert!(
            text.contains("data_job_last_run_failed_items 1\n"),
            "{text}"
        );
    }

    #[test]
    fn a_scoped_run_is_one_group_with_its_counts() {
        let tally = fresh();
        tally.scope("source", "licenses");
        tally.record(
            "source",
            "licenses",
            Counts {
                rows: 7,
                files: 2,
                bytes: 0,
                failed_items: 0,
            },
            true,
        );
        let at = UNIX_EPOCH + Duration::from_secs(5);
        let groups = tally.groups(None, Exit::Success, at, at);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].0, Some(("source", "licenses".to_owned())));
        assert!(groups[0].1.contains("data_job_last_run_files 2\n"));
        assert!(
            groups[0]
                .1
                .contains("data_job_last_success_timestamp_seconds 5\n")
        );
    }

    #[test]
    fn the_run_group_says_which_run_its_values_are_from() {
        let run = RunContext {
            job: "pg-job",
            version: "0.1.0",
            run_id: "01932f2a-6b7c-7d8e-9f00-112233445566".into(),
            scheduler: Some(crate::run::Scheduler::Airflow {
                dag_id: "pg_job".into(),
                task_id: "account-arr".into(),
                dag_run_id: Some("manual__\"quoted\"".into()),
                try_number: Some(2),
            }),
            log_url: None,
        };
        let at = UNIX_EPOCH;
        let groups = fresh().groups(Some(&run), Exit::Success, at, at);
        let line = groups[0]
            .1
            .lines()
            .find(|l| l.starts_with("data_job_last_run_info{"))
            .unwrap()
            .to_owned();
        assert_eq!(
            line,
            "data_job_last_run_info{version=\"0.1.0\",dag_id=\"pg_job\",\
             dag_run_id=\"manual__\\\"quoted\\\"\",\
             job_run_id=\"01932f2a-6b7c-7d8e-9f00-112233445566\",task_id=\"account-arr\",\
             try_number=\"2\"} 1"
        );
    }

    #[test]
    fn group_values_are_base64_so_a_slash_cannot_change_the_path() {
        assert_eq!(
            group_path("pg-job", Some(&("script", "a/b".to_owned()))),
            "metrics/job@base64/cGctam9i/script@base64/YS9i"
        );
        assert_eq!(
            group_path("permissions", Some(&("source", String::new()))),
            "metrics/job@base64/cGVybWlzc2lvbnM/source@base64/="
        );
        assert!(is_label_name("table") && !is_label_name("__name") && !is_label_name("a-b"));
    }
}
