//! Who started this run, and this run's own id: read once by the kit, then on every log line, in
//! the Snowflake query tag, in lineage events and in pushed metrics.
//!
//! An Airflow task passes the names Airflow itself gives its task context (`AIRFLOW_CTX_*`, as
//! BashOperator exports them; the DAG helper `job_pod` sets them in each pod); a Kubernetes
//! CronJob passes its own name and the Job it created for this run. Every value is optional, and
//! a bad one is a warning, never a reason for the job to fail: run context describes a run, it
//! does not configure it.

use std::sync::OnceLock;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::env::{EnvVar, Kind, Sources};

pub const VARS: &[EnvVar] = &[
    EnvVar::new(
        "AIRFLOW_CTX_DAG_ID",
        Kind::Text,
        "Run context: the Airflow DAG whose task started this run (set by the DAG helper)",
    ),
    EnvVar::new(
        "AIRFLOW_CTX_TASK_ID",
        Kind::Text,
        "Run context: the Airflow task that started this run",
    ),
    EnvVar::new(
        "AIRFLOW_CTX_DAG_RUN_ID",
        Kind::Text,
        "Run context: the Airflow DAG run",
    ),
    EnvVar::new(
        "AIRFLOW_CTX_TRY_NUMBER",
        Kind::Text,
        "Run context: the task instance's try number (1 for the first attempt)",
    ),
    EnvVar::new(
        "JOB_LOG_URL",
        Kind::Text,
        "Run context: where this run's log can be read (Airflow's task log page)",
    ),
    EnvVar::new(
        "K8S_CRONJOB_NAME",
        Kind::Text,
        "Run context: the Kubernetes CronJob that started this run",
    ),
    EnvVar::new(
        "K8S_JOB_NAME",
        Kind::Text,
        "Run context: the Kubernetes Job the CronJob created for this run",
    ),
];

/// Airflow limits a DAG or task id to 250 characters; anything longer is not from a scheduler.
const MAX_VALUE_CHARS: usize = 250;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunContext {
    pub job: &'static str,
    pub version: &'static str,
    /// This run's own id, a UUIDv7 (time-ordered, as OpenLineage recommends for run ids).
    pub run_id: String,
    pub scheduler: Option<Scheduler>,
    pub log_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "scheduler", rename_all = "snake_case")]
pub enum Scheduler {
    Airflow {
        dag_id: String,
        task_id: String,
        dag_run_id: Option<String>,
        try_number: Option<u32>,
    },
    #[serde(rename = "cronjob")]
    CronJob {
        cronjob: String,
        k8s_job: Option<String>,
    },
}

static CURRENT: OnceLock<RunContext> = OnceLock::new();

/// The run context of this process, once the kit has read it (`None` in unit tests and before
/// the job starts).
pub fn current() -> Option<&'static RunContext> {
    CURRENT.get()
}

/// Makes `context` this process's run context; the first one set stays (a test process that
/// runs two jobs keeps the first).
pub(crate) fn set_current(context: RunContext) -> &'static RunContext {
    CURRENT.get_or_init(|| context)
}

impl RunContext {
    /// Reads the run context; every value that cannot be used is returned as a warning.
    pub fn read(
        job: &'static str,
        version: &'static str,
        sources: &Sources,
    ) -> (RunContext, Vec<String>) {
        let mut warnings = Vec::new();
        let mut value = |name: &str| -> Option<String> {
            let var = VARS.iter().find(|v| v.name == name)?;
            let raw = sources.value(var)?.trim();
            if raw.is_empty() {
                return None;
            }
            if raw.chars().count() > MAX_VALUE_CHARS || raw.chars().any(char::is_control) {
                warnings.push(format!(
                    "{name} is ignored: run context is at most {MAX_VALUE_CHARS} characters \
                     on one line"
                ));
                return None;
            }
            Some(raw.to_owned())
        };
        let dag_id = value("AIRFLOW_CTX_DAG_ID");
        let task_id = value("AIRFLOW_CTX_TASK_ID");
        let dag_run_id = value("AIRFLOW_CTX_DAG_RUN_ID");
        let try_text = value("AIRFLOW_CTX_TRY_NUMBER");
        let log_url = value("JOB_LOG_URL");
        let cronjob = value("K8S_CRONJOB_NAME");
        let k8s_job = value("K8S_JOB_NAME");
        let try_number = try_text.and_then(|text| match text.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                warnings.push(format!(
                    "AIRFLOW_CTX_TRY_NUMBER is ignored: expected a whole number, got {text:?}"
                ));
                None
            }
        });
        let scheduler = match (dag_id, task_id, cronjob) {
            (Some(dag_id), Some(task_id), _) => Some(Scheduler::Airflow {
                dag_id,
                task_id,
                dag_run_id,
                try_number,
            }),
            (Some(_), None, _) | (None, Some(_), _) => {
                warnings.push(
                    "AIRFLOW_CTX_DAG_ID and AIRFLOW_CTX_TASK_ID name a task together; with one \
                     of them alone the Airflow context is ignored"
                        .to_owned(),
                );
                None
            }
            (None, None, Some(cronjob)) => Some(Scheduler::CronJob { cronjob, k8s_job }),
            (None, None, None) => None,
        };
        let context = RunContext {
            job,
            version,
            run_id: uuid::Uuid::now_v7().to_string(),
            scheduler,
            log_url,
        };
        (context, warnings)
    }

    /// The fields every log line carries: this run's id and, when scheduled, who started it.
    pub fn log_fields(&self) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert("job_run_id".into(), self.run_id.clone().into());
        self.scheduler_fields(&mut fields);
        fields
    }

    fn scheduler_fields(&self, fields: &mut Map<String, Value>) {
        match &self.scheduler {
            Some(Scheduler::Airflow {
                dag_id,
                task_id,
                dag_run_id,
                try_number,
            }) => {
                fields.insert("dag_id".into(), dag_id.clone().into());
                fields.insert("task_id".into(), task_id.clone().into());
                if let Some(run) = dag_run_id {
                    fields.insert("dag_run_id".into(), run.clone().into());
                }
                if let Some(n) = try_number {
                    fields.insert("try_number".into(), (*n).into());
                }
            }
            Some(Scheduler::CronJob { cronjob, k8s_job }) => {
                fields.insert("cronjob".into(), cronjob.clone().into());
                if let Some(k8s_job) = k8s_job {
                    fields.insert("k8s_job".into(), k8s_job.clone().into());
                }
            }
            None => {}
        }
    }

    /// Snowflake's `QUERY_TAG` for every session of this run: a small JSON object (job, version,
    /// this run, and the DAG, task, DAG run and try, or the CronJob), so that the query history
    /// attributes each statement, and its credits, to one run. With every value at its bound
    /// it stays inside Snowflake's 2,000 characters.
    pub fn query_tag(&self) -> String {
        let mut tag = Map::new();
        tag.insert("job".into(), self.job.into());
        tag.insert("version".into(), self.version.into());
        tag.insert("job_run_id".into(), self.run_id.clone().into());
        self.scheduler_fields(&mut tag);
        Value::Object(tag).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(pairs: &[(&str, &str)]) -> Sources {
        Sources {
            flags: Default::default(),
            env: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn an_airflow_task_is_read_from_airflows_own_names() {
        let (context, warnings) = RunContext::read(
            "stage-import",
            "0.1.0",
            &sources(&[
                ("AIRFLOW_CTX_DAG_ID", "stage_import"),
                ("AIRFLOW_CTX_TASK_ID", "licenses"),
                (
                    "AIRFLOW_CTX_DAG_RUN_ID",
                    "scheduled__2026-12-05T00:00:00+00:00",
                ),
                ("AIRFLOW_CTX_TRY_NUMBER", "2"),
                (
                    "JOB_LOG_URL",
                    "https://airflow.example/dags/stage_import/runs/x",
                ),
            ]),
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            context.scheduler,
            Some(Scheduler::Airflow {
                dag_id: "stage_import".into(),
                task_id: "licenses".into(),
                dag_run_id: Some("scheduled__2026-12-05T00:00:00+00:00".into()),
                try_number: Some(2),
            })
        );
        let tag: Value = serde_json::from_str(&context.query_tag()).unwrap();
        assert_eq!(tag["job"], "stage-import");
        assert_eq!(tag["version"], "0.1.0");
        assert_eq!(tag["dag_id"], "stage_import");
        assert_eq!(tag["task_id"], "licenses");
        assert_eq!(tag["try_number"], 2);
        assert_eq!(tag["job_run_id"], context.run_id.as_str());
        assert_eq!(
            uuid::Uuid::parse_str(&context.run_id)
                .unwrap()
                .get_version_num(),
            7
        );
    }

    #[test]
    fn a_cronjob_names_itself_and_its_job() {
        let (context, warnings) = RunContext::read(
            "pg-replicate",
            "0.1.0",
            &sources(&[
                ("K8S_CRONJOB_NAME", "pg-replicate"),
                ("K8S_JOB_NAME", "pg-replicate-29410380"),
            ]),
        );
        assert!(warnings.is_empty());
        assert_eq!(
            context.log_fields().get("k8s_job"),
            Some(&Value::from("pg-replicate-29410380"))
        );
        assert_eq!(
            context.log_fields().get("cronjob"),
            Some(&Value::from("pg-replicate"))
        );
    }

    #[test]
    fn bad_values_are_warnings_and_leave_the_rest() {
        let long = "x".repeat(MAX_VALUE_CHARS + 1);
        let (context, warnings) = RunContext::read(
            "pg-job",
            "0.1.0",
            &sources(&[
                ("AIRFLOW_CTX_DAG_ID", "pg_job"),
                ("AIRFLOW_CTX_TASK_ID", "licenses"),
                ("AIRFLOW_CTX_TRY_NUMBER", "first"),
                ("AIRFLOW_CTX_DAG_RUN_ID", &long),
                ("JOB_LOG_URL", "https://a\nb"),
            ]),
        );
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("AIRFLOW_CTX_TRY_NUMBER"))
        );
        assert_eq!(
            context.scheduler,
            Some(Scheduler::Airflow {
                dag_id: "pg_job".into(),
                task_id: "licenses".into(),
                dag_run_id: None,
                try_number: None,
            })
        );
        assert_eq!(context.log_url, None);

        let (context, warnings) = RunContext::read(
            "pg-job",
            "0.1.0",
            &sources(&[("AIRFLOW_CTX_DAG_ID", "pg_job")]),
        );
        assert_eq!(context.scheduler, None);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn a_run_by_hand_has_only_its_own_id() {
        let (context, warnings) = RunContext::read("permissions", "0.1.0", &sources(&[]));
        assert!(warnings.is_empty());
        assert_eq!(context.scheduler, None);
        assert_eq!(
            context.log_fields().keys().collect::<Vec<_>>(),
            ["job_run_id"]
        );
        // The longest tag, every character escaped in JSON, still fits Snowflake's 2,000.
        let long = "\"".repeat(MAX_VALUE_CHARS);
        let (context, _) = RunContext::read(
            "permissions",
            "0.1.0",
            &sources(&[
                ("AIRFLOW_CTX_DAG_ID", &long),
                ("AIRFLOW_CTX_TASK_ID", &long),
                ("AIRFLOW_CTX_DAG_RUN_ID", &long),
                ("AIRFLOW_CTX_TRY_NUMBER", "4294967295"),
            ]),
        );
        assert!(context.scheduler.is_some());
        assert!(
            context.query_tag().len() <= 2_000,
            "{}",
            context.query_tag().len()
        );
    }
}
