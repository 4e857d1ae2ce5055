//! OpenLineage run events: when `OPENLINEAGE_URL` is set (the OpenLineage client's own
//! variables), the kit sends START before the job runs and COMPLETE, FAIL or ABORT (SIGTERM)
//! when it ends, with the datasets the job recorded here as its inputs and outputs.
//!
//! Datasets are named as OpenLineage's naming spec names them (`Dataset::snowflake`,
//! `postgres`, `s3`, `local_file`), the embedded warehouse as `duckdb://<file>` with
//! `schema.table`. The run is linked to the Airflow task that started it by the parent run
//! facet, from `OPENLINEAGE_PARENT_ID` (the Airflow OpenLineage provider's `lineage_parent_id`
//! macro, as dbt-ol reads it too). Facets: the job's type, the datasets' schema, the outputs'
//! statistics, and the error message of a failed run (redacted like every error).
//!
//! A receiver that is down or slow costs at most `OPENLINEAGE_TIMEOUT_SECS` and a warning: lineage
//! never fails a job.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use crate::env::{EnvVar, Kind, Sources};
use crate::exit::Exit;
use crate::metrics::Counts;
use crate::run::RunContext;
use crate::secret;

pub const VARS: &[EnvVar] = &[
    EnvVar::new(
        "OPENLINEAGE_URL",
        Kind::HttpUrl,
        "Lineage: send OpenLineage run events to this server (e.g. http://marquez:5000; off \
         when unset)",
    ),
    EnvVar::new(
        "OPENLINEAGE_ENDPOINT",
        Kind::Text,
        "Lineage: the path of the server's lineage API",
    )
    .default("api/v1/lineage"),
    EnvVar::new(
        "OPENLINEAGE_API_KEY",
        Kind::Text,
        "Lineage: the server's API key, sent as a Bearer token",
    )
    .secret(),
    EnvVar::new(
        "OPENLINEAGE_NAMESPACE",
        Kind::Text,
        "Lineage: the namespace of this job's runs",
    )
    .default("default"),
    EnvVar::new(
        "OPENLINEAGE_PARENT_ID",
        Kind::Text,
        "Lineage: the run that started this one, <namespace>/<job name>/<run id> (the Airflow \
         OpenLineage provider's lineage_parent_id macro)",
    ),
    EnvVar::new(
        "OPENLINEAGE_ROOT_PARENT_ID",
        Kind::Text,
        "Lineage: the root of the parent's run hierarchy, <namespace>/<job name>/<run id> (the \
         provider's lineage_root_parent_id macro)",
    ),
    EnvVar::new(
        "OPENLINEAGE_DISABLED",
        Kind::Bool,
        "Lineage: send no events even with OPENLINEAGE_URL set",
    )
    .default("false"),
    EnvVar::new(
        "OPENLINEAGE_TIMEOUT_SECS",
        Kind::Seconds,
        "Lineage: the longest sending one event may take; past it the job goes on with a warning",
    )
    .default("5"),
];

const SPEC: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json";
const PRODUCER: &str = concat!(
    "https://github.com/data-jobs/data-jobs/tree/",
    env!("CARGO_PKG_VERSION"),
    "/crates/job-kit"
);
const PARENT_FACET: &str =
    "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet";
const ERROR_FACET: &str = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";
const JOB_TYPE_FACET: &str =
    "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet";
const SQL_FACET: &str =
    "https://openlineage.io/spec/facets/1-1-0/SQLJobFacet.json#/$defs/SQLJobFacet";
const SCHEMA_FACET: &str =
    "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet";
const OUTPUT_STATISTICS_FACET: &str = "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet";

/// A dataset a run read or wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pub namespace: String,
    pub name: String,
    /// Its columns (name, type) when the job knows them: the schema facet.
    pub columns: Vec<(String, String)>,
}

impl Dataset {
    fn new(namespace: String, name: String) -> Dataset {
        Dataset {
            namespace,
            name,
            columns: Vec::new(),
        }
    }

    /// A Snowflake table: `snowflake://<account>` (the account identifier as configured,
    /// lower case) and `DATABASE.SCHEMA.TABLE` as Snowflake stores unquoted names.
    pub fn snowflake(account: &str, database: &str, schema: &str, table: &str) -> Dataset {
        let upper = |name: &str| name.to_uppercase();
        Dataset::new(
            format!("snowflake://{}", account.to_lowercase()),
            format!("{}.{}.{}", upper(database), upper(schema), upper(table)),
        )
    }

    /// A Postgres table: `postgres://host:port` and `database.schema.table`.
    pub fn postgres(host: &str, port: u16, database: &str, schema: &str, table: &str) -> Dataset {
        Dataset::new(
            format!("postgres://{host}:{port}"),
            format!("{database}.{schema}.{table}"),
        )
    }

    /// Objects under an S3 prefix: `s3://bucket` and the key prefix.
    pub fn s3(bucket: &str, key: &str) -> Dataset {
        Dataset::new(
            format!("s3://{bucket}"),
            key.trim_start_matches('/').to_owned(),
        )
    }

    /// A local file or directory: `file` and its path.
    pub fn local_file(path: &str) -> Dataset {
        Dataset::new("file".to_owned(), path.to_owned())
    }

    /// A table in an embedded DuckDB file: `duckdb://<absolute path>` and `schema.table`.
    pub fn duckdb(path: &std::path::Path, schema: &str, table: &str) -> Dataset {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        Dataset::new(
            format!("duckdb://{}", absolute.display()),
            format!("{schema}.{table}"),
        )
    }

    pub fn with_columns(mut self, columns: Vec<(String, String)>) -> Dataset {
        self.columns = columns;
        self
    }

    fn same(&self, other: &Dataset) -> bool {
        self.namespace == other.namespace && self.name == other.name
    }
}

#[derive(Debug, Default)]
struct Recorded {
    inputs: Vec<Dataset>,
    outputs: Vec<(Dataset, Option<Counts>)>,
    /// The SQL the job runs, and its dialect: the SQL job facet.
    sql: Option<(String, String)>,
}

static RECORDED: Mutex<Recorded> = Mutex::new(Recorded {
    inputs: Vec::new(),
    outputs: Vec::new(),
    sql: None,
});

/// Records the SQL the run executes (a script), in its dialect (`postgres`).
pub fn sql(query: &str, dialect: &str) {
    recorded().sql = Some((query.to_owned(), dialect.to_owned()));
}

fn recorded() -> std::sync::MutexGuard<'static, Recorded> {
    RECORDED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Records a dataset the run read (once per dataset; columns known later fill in).
pub fn input(dataset: Dataset) {
    let mut recorded = recorded();
    match recorded.inputs.iter_mut().find(|d| d.same(&dataset)) {
        Some(known) if known.columns.is_empty() => known.columns = dataset.columns,
        Some(_) => {}
        None => recorded.inputs.push(dataset),
    }
}

/// Records a dataset the run wrote, and what it wrote to it (added up over calls).
pub fn output(dataset: Dataset, written: Option<Counts>) {
    let mut recorded = recorded();
    match recorded.outputs.iter_mut().find(|(d, _)| d.same(&dataset)) {
        Some((known, counts)) => {
            if known.columns.is_empty() {
                known.columns = dataset.columns;
            }
            if let Some(written) = written {
                counts.get_or_insert_with(Counts::default).add(written);
            }
        }
        None => recorded.outputs.push((dataset, written)),
    }
}

/// Where events go, read from the OpenLineage client's variables; `None` when off.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    url: url::Url,
    api_key: Option<String>,
    namespace: String,
    parent: Option<RunRef>,
    root: Option<RunRef>,
    timeout: Duration,
}

/// `<namespace>/<job name>/<run id>`: a run of another job.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RunRef {
    namespace: String,
    name: String,
    run_id: String,
}

impl RunRef {
    /// The namespace is up to the first `/`, the run id after the last: job names may hold
    /// slashes, as the provider's format allows.
    fn parse(text: &str) -> Option<RunRef> {
        let (namespace, rest) = text.split_once('/')?;
        let (name, run_id) = rest.rsplit_once('/')?;
        let run_id = uuid::Uuid::parse_str(run_id).ok()?.to_string();
        (!namespace.is_empty() && !name.is_empty()).then(|| RunRef {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            run_id,
        })
    }

    fn facet(&self) -> Value {
        json!({"run": {"runId": self.run_id}, "job": {"namespace": self.namespace, "name": self.name}})
    }
}

impl Transport {
    /// The transport, or `None` when lineage is off; every unusable value is a warning.
    pub(crate) fn read(sources: &Sources) -> Option<Transport> {
        let var = |name: &str| {
            VARS.iter()
                .find(|v| v.name == name)
                .expect("a lineage variable")
        };
        let value = |name: &str| sources.value(var(name));
        let raw = value("OPENLINEAGE_URL")?;
        if value("OPENLINEAGE_DISABLED") == Some("true") {
            return None;
        }
        let Ok(base) = url::Url::parse(raw).map_err(|_| ()).and_then(|u| {
            if matches!(u.scheme(), "http" | "https") {
                Ok(u)
            } else {
                Err(())
            }
        }) else {
            tracing::warn!("OPENLINEAGE_URL is not an http(s) URL: no lineage events are sent");
            return None;
        };
        let endpoint = value("OPENLINEAGE_ENDPOINT").unwrap_or("api/v1/lineage");
        let url = crate::http::with_slash(base).join(endpoint.trim_start_matches('/'));
        let Ok(url) = url else {
            tracing::warn!(
                "OPENLINEAGE_ENDPOINT {endpoint:?} is not a path: no lineage events are sent"
            );
            return None;
        };
        // Registered as a secret with the kit's other variables (lib.rs).
        let api_key = value("OPENLINEAGE_API_KEY").map(str::to_owned);
        let parent_of = |name: &str| {
            let text = value(name)?;
            let parsed = RunRef::parse(text);
            if parsed.is_none() {
                tracing::warn!(
                    "{name} is ignored: expected <namespace>/<job name>/<run id (a UUID)>, got {text:?}"
                );
            }
            parsed
        };
        Some(Transport {
            url,
            api_key,
            namespace: value("OPENLINEAGE_NAMESPACE")
                .unwrap_or("default")
                .to_owned(),
            parent: parent_of("OPENLINEAGE_PARENT_ID"),
            root: parent_of("OPENLINEAGE_ROOT_PARENT_ID"),
            timeout: crate::env::seconds(value("OPENLINEAGE_TIMEOUT_SECS").unwrap_or("5"))
                .unwrap_or(Duration::from_secs(5)),
        })
    }

    /// Sends one event; a failure is a warning.
    pub(crate) async fn send(&self, event: &Value) {
        let kind = event["eventType"].as_str().unwrap_or("event");
        let shown = secret::redacted_url(&self.url);
        let client = match crate::http::client() {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!("lineage {kind} not sent: {e}");
                return;
            }
        };
        let mut request = client.post(self.url.clone()).json(event);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let sent = crate::http::send(request);
        match tokio::time::timeout(self.timeout, sent).await {
            Ok(Ok(())) => tracing::debug!(server = %shown, "lineage {kind} sent"),
            Ok(Err(e)) => {
                tracing::warn!(server = %shown, "lineage {kind} not sent: {}", secret::scrub(&e))
            }
            Err(_) => tracing::warn!(
                server = %shown,
                "lineage {kind} not sent: no answer within {:?}",
                self.timeout
            ),
        }
    }

    /// The job's name in lineage: the job, then what the run is of (`stage-import.licenses`).
    fn job_name(run: &RunContext, scope: Option<&crate::metrics::Group>) -> String {
        match scope {
            Some((_, value)) => format!("{}.{value}", run.job),
            None => run.job.to_owned(),
        }
    }

    /// The START event: nothing read or written yet.
    pub(crate) fn start(&self, run: &RunContext, scope: Option<&crate::metrics::Group>) -> Value {
        self.event("START", run, scope, None, &Recorded::default())
    }

    /// The terminal event: COMPLETE, ABORT (interrupted) or FAIL, with what the run recorded.
    pub(crate) fn end(
        &self,
        run: &RunContext,
        scope: Option<&crate::metrics::Group>,
        exit: Exit,
        error: Option<&str>,
    ) -> Value {
        let kind = match exit {
            Exit::Success => "COMPLETE",
            Exit::Interrupted => "ABORT",
            _ => "FAIL",
        };
        let recorded = recorded();
        self.event(
            kind,
            run,
            scope,
            error.filter(|_| exit != Exit::Success),
            &recorded,
        )
    }

    fn event(
        &self,
        kind: &str,
        run: &RunContext,
        scope: Option<&crate::metrics::Group>,
        error: Option<&str>,
        recorded: &Recorded,
    ) -> Value {
        let mut run_facets = serde_json::Map::new();
        if let Some(parent) = &self.parent {
            let mut facet = parent.facet();
            if let Some(root) = self.root.as_ref().or(Some(parent)) {
                facet["root"] = root.facet();
            }
            run_facets.insert("parent".into(), with_facet_fields(facet, PARENT_FACET));
        }
        if let Some(error) = error {
            let message = secret::scrub(error);
            run_facets.insert(
                "errorMessage".into(),
                with_facet_fields(
                    json!({"message": message, "programmingLanguage": "Rust"}),
                    ERROR_FACET,
                ),
            );
        }
        let mut job_facets = serde_json::Map::new();
        job_facets.insert(
            "jobType".into(),
            with_facet_fields(
                json!({"processingType": "BATCH", "integration": "DATA-JOBS", "jobType": "JOB"}),
                JOB_TYPE_FACET,
            ),
        );
        if let Some((query, dialect)) = &recorded.sql {
            job_facets.insert(
                "sql".into(),
                with_facet_fields(
                    json!({"query": secret::redact(query), "dialect": dialect}),
                    SQL_FACET,
                ),
            );
        }
        let inputs: Vec<Value> = recorded
            .inputs
            .iter()
            .map(|d| dataset_json(d, None))
            .collect();
        let outputs: Vec<Value> = recorded
            .outputs
            .iter()
            .map(|(d, counts)| dataset_json(d, counts.as_ref()))
            .collect();
        json!({
            "eventType": kind,
            "eventTime": jiff::Timestamp::now().to_string(),
            "run": {"runId": run.run_id, "facets": run_facets},
            "job": {"namespace": self.namespace, "name": Self::job_name(run, scope), "facets": job_facets},
            "inputs": inputs,
            "outputs": outputs,
            "producer": PRODUCER,
            "schemaURL": format!("{SPEC}#/$defs/RunEvent"),
        })
    }
}

fn with_facet_fields(mut facet: Value, schema_url: &str) -> Value {
    facet["_producer"] = PRODUCER.into();
    facet["_schemaURL"] = schema_url.into();
    facet
}

fn dataset_json(dataset: &Dataset, written: Option<&Counts>) -> Value {
    let mut facets = serde_json::Map::new();
    if !dataset.columns.is_empty() {
        let fields: Vec<Value> = dataset
            .columns
            .iter()
            .map(|(name, kind)| json!({"name": name, "type": kind}))
            .collect();
        facets.insert(
            "schema".into(),
            with_facet_fields(json!({"fields": fields}), SCHEMA_FACET),
        );
    }
    let mut value = json!({"namespace": dataset.namespace, "name": dataset.name, "facets": facets});
    if let Some(written) = written {
        value["outputFacets"] = json!({
            "outputStatistics": with_facet_fields(
                json!({"rowCount": written.rows, "size": written.bytes, "fileCount": written.files}),
                OUTPUT_STATISTICS_FACET,
            )
        });
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parent_id_is_namespace_job_and_run_and_anything_else_is_refused() {
        let run = "01932f2a-6b7c-7d8e-9f00-112233445566";
        assert_eq!(
            RunRef::parse(&format!("airflow/stage_import.licenses/{run}")),
            Some(RunRef {
                namespace: "airflow".into(),
                name: "stage_import.licenses".into(),
                run_id: run.into(),
            })
        );
        assert_eq!(
            RunRef::parse(&format!("ns/a/b/{run}")).map(|r| r.name),
            Some("a/b".to_owned())
        );
        assert_eq!(
            RunRef::parse("airflow/stage_import.licenses/not-a-uuid"),
            None
        );
        assert_eq!(RunRef::parse(run), None);
        assert_eq!(RunRef::parse(&format!("/job/{run}")), None);
    }

    #[test]
    fn datasets_are_named_as_the_naming_spec_names_them() {
        let table = Dataset::snowflake("MyOrg-MyAccount", "raw", "licenses", "licenses");
        assert_eq!(table.namespace, "snowflake://myorg-myaccount");
        assert_eq!(table.name, "RAW.LICENSES.LICENSES");
        let pg = Dataset::postgres("db.example", 5432, "app", "salesforce", "account");
        assert_eq!(
            (pg.namespace.as_str(), pg.name.as_str()),
            ("postgres://db.example:5432", "app.salesforce.account")
        );
        let s3 = Dataset::s3("bucket", "/raw/licenses/2026-11-26");
        assert_eq!(
            (s3.namespace.as_str(), s3.name.as_str()),
            ("s3://bucket", "raw/licenses/2026-11-26")
        );
        let duck = Dataset::duckdb(
            std::path::Path::new("/data/w.duckdb"),
            "licenses",
            "licenses",
        );
        assert_eq!(duck.namespace, "duckdb:///data/w.duckdb");
        assert_eq!(duck.name, "licenses.licenses");
    }
}
