//! The deployment under `k8s/`, checked offline: the Airflow DAGs and the CronJobs against the
//! jobs' real environment contracts (the built binaries' `--env-schema`) by
//! `tests/deploy/check_dags.py`, the manifests and the pods the provider builds in those runs
//! against Kubernetes' own schemas by kubernetes-validate, and every YAML file by yamllint. The tools live in the deploy venv
//! (`make venv`, `DATA_JOBS_DEPLOY_VENV`); without it the tests skip, and fail under CI=true.
//!
//! Every rule also runs once against a deliberately broken copy of `k8s/`, so that a check
//! that cannot fail would show.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Run, env_schema, job, missing, run};

/// The jobs that ship as images, each with its `--env-schema`.
const JOBS: &[&str] = &[
    "webhook-alert",
    "pg-job",
    "stage-import",
    "permissions",
    "pg-replicate",
];
/// The Kubernetes version the manifests are validated against (EKS supports it).
const KUBERNETES_VERSION: &str = "1.33.0";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// A program of the deploy venv; `None` (after `missing`) when it is not there.
fn deploy_tool(name: &str) -> Option<PathBuf> {
    #[allow(clippy::disallowed_methods)] // the venv's place is the test's own setting
    let venv = std::env::var_os("DATA_JOBS_DEPLOY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv-deploy"));
    let path = venv.join("bin").join(name);
    if path.exists() {
        Some(path)
    } else {
        missing(&format!(
            "{} (the deploy venv: make venv DEPLOY_VENV={})",
            path.display(),
            venv.display()
        ));
        None
    }
}

/// What the checker reads from the real binaries: each job's `--env-schema`, and
/// stage-import's catalog (`stage-import sources`, which names each source's variables).
struct Contracts {
    dir: tempfile::TempDir,
}

impl Contracts {
    fn from_binaries() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for name in JOBS {
            let schema = env_schema(name);
            assert!(
                schema["variables"]
                    .as_array()
                    .is_some_and(|v| !v.is_empty()),
                "{name}'s schema lists no variables"
            );
            std::fs::write(dir.path().join(format!("{name}.json")), schema.to_string())
                .expect("write schema");
        }
        let mut command = job("stage-import");
        command.arg("sources");
        let out = run(command);
        assert_eq!(out.code, Some(0), "stage-import sources: {out:?}");
        assert!(
            out.stdout.contains(", env "),
            "stage-import sources no longer says which variables each source needs: {}",
            out.stdout
        );
        std::fs::write(dir.path().join("sources.txt"), &out.stdout).expect("write sources");
        Contracts { dir }
    }

    /// Runs the checker on a `k8s/` directory (the real one or a broken copy), every DAG run
    /// with Airflow's runtime.
    fn check(&self, python: &Path, k8s: &Path) -> Run {
        self.check_running(python, k8s, None, None)
    }

    /// The same, running only the DAGs named (a run takes seconds per task); the others get
    /// the static checks.
    /// `write_pods`: a directory that receives every pod the runs submitted, one JSON file each.
    fn check_running(
        &self,
        python: &Path,
        k8s: &Path,
        run_dags: Option<&[&str]>,
        write_pods: Option<&Path>,
    ) -> Run {
        let mut command = Command::new(python);
        command
            .arg(repo().join("tests/deploy/check_dags.py"))
            .arg("--k8s")
            .arg(k8s)
            .arg("--stage-import-sources")
            .arg(self.dir.path().join("sources.txt"))
            .arg("--pg-job-scripts")
            .arg(repo().join("transform/sql"))
            .arg("--roles")
            .arg(repo().join("examples/roles.yml"))
            .arg("--dbt-profiles")
            .arg(repo().join("transform/dbt/profiles.yml"));
        for name in JOBS {
            command
                .arg("--schema")
                .arg(self.dir.path().join(format!("{name}.json")));
        }
        if let Some(dags) = run_dags {
            command.arg("--run-dags").arg(dags.join(","));
        }
        if let Some(dir) = write_pods {
            command.arg("--write-pods").arg(dir);
        }
        run(command)
    }
}

/// The checker's `error:` lines.
fn errors(out: &Run) -> Vec<&str> {
    out.stdout
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect()
}

/// A copy of `k8s/` to break.
fn k8s_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&repo().join("k8s"), &dir.path().join("k8s"));
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let path = entry.path();
        if entry.file_name() == "__pycache__" {
            continue;
        }
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).expect("copy");
        }
    }
}

/// Replaces `from` with `to` in a file of the copy; the text must be there, so that a renamed
/// line cannot turn a negative test into one that breaks nothing.
fn edit(root: &Path, file: &str, from: &str, to: &str) {
    let path = root.join("k8s").join(file);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(
        text.contains(from),
        "{file} no longer contains {from:?}: update this test"
    );
    std::fs::write(&path, text.replace(from, to)).expect("write");
}

/// Asserts the checker failed and reported every `expected` text (each on some error line).
fn assert_reported(out: &Run, expected: &[&str]) {
    assert_eq!(out.code, Some(1), "the checker should fail: {out:?}");
    let errors = errors(out);
    for text in expected {
        assert!(
            errors.iter().any(|e| e.contains(text)),
            "no error mentions {text:?}; errors:\n{}",
            errors.join("\n")
        );
    }
}

#[test]
fn dags_and_cronjobs_meet_every_jobs_contract() {
    let Some(python) = deploy_tool("python") else {
        return;
    };
    let Some(validator) = deploy_tool("kubernetes-validate") else {
        return;
    };
    let contracts = Contracts::from_binaries();
    let pods = tempfile::tempdir().expect("temp dir");
    let out = contracts.check_running(&python, &repo().join("k8s"), None, Some(pods.path()));
    assert_eq!(
        out.code,
        Some(0),
        "deployment check failed:\n{}\n{}",
        errors(&out).join("\n"),
        out.stderr
    );
    let summary = out
        .stdout
        .lines()
        .find(|l| l.starts_with("checked "))
        .unwrap_or_else(|| panic!("no summary line: {out:?}"));
    let number = |after: &str| -> usize {
        summary
            .split(after)
            .next()
            .and_then(|s| s.split_whitespace().last())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count before {after:?} in {summary:?}"))
    };
    // stage_import's six loads, pg_job's chain of three, permissions' plan and apply, dbt's
    // freshness and build, pg_replicate's one task, and each DAG's alert.
    assert!(number(" DAG tasks") >= 19, "{summary}");
    assert!(number(" pods their runs built") >= 19, "{summary}");
    // Six stage-import sources, three pg-job scripts, plan and apply, pg-replicate.
    assert!(number(" CronJob containers") >= 12, "{summary}");
    assert!(summary.ends_with(": 0 problems"), "{summary}");
    // The pods as the provider built and submitted them (build_pod_request_obj, templates
    // rendered), not only the manifest files: each passes Kubernetes' schema strictly.
    let mut submitted: Vec<PathBuf> = std::fs::read_dir(pods.path())
        .expect("pods written")
        .map(|e| e.expect("entry").path())
        .collect();
    submitted.sort();
    assert!(submitted.len() >= 19, "{submitted:?}");
    let passed = validate(&validator, &submitted).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(passed, submitted.len(), "every submitted pod should pass");
}

#[test]
fn a_variable_a_job_requires_missing_from_a_dag_or_cronjob_is_reported() {
    let Some(python) = deploy_tool("python") else {
        return;
    };
    let contracts = Contracts::from_binaries();
    let copy = k8s_copy();
    edit(
        copy.path(),
        "airflow/dags/data_jobs_pod.py",
        r#""pg-job": [("HEROKU_POSTGRESQL_URL", SHARED_SECRET, "HEROKU_POSTGRESQL_URL")],"#,
        r#""pg-job": [],"#,
    );
    // Required by the schema itself (webhook-alert's URL), not only by the deployment.
    edit(
        copy.path(),
        "airflow/dags/data_jobs_pod.py",
        r#""webhook-alert": [("MATTERMOST_WEBHOOK_URL", SHARED_SECRET, "MATTERMOST_WEBHOOK_URL")],"#,
        r#""webhook-alert": [],"#,
    );
    // A source's own variable, known only from stage-import's catalog.
    edit(
        copy.path(),
        "cronjobs/stage-import.yaml",
        "                - {name: RELEASE_LOCATION, valueFrom: {secretKeyRef: {name: airflow, key: RELEASE_LOCATION}}}\n",
        "",
    );
    let out = contracts.check_running(&python, &copy.path().join("k8s"), Some(&["pg_job"]), None);
    assert_reported(
        &out,
        &[
            "DAG pg_job task account-arr: does not supply HEROKU_POSTGRESQL_URL, which pg-job requires",
            "DAG pg_job task failure-alert: does not supply MATTERMOST_WEBHOOK_URL, which webhook-alert requires",
            "CronJob/stage-import-releases container stage-import: does not supply RELEASE_LOCATION, which stage-import requires",
        ],
    );
    // Only the releases source names RELEASE_LOCATION.
    assert!(
        !errors(&out)
            .iter()
            .any(|e| e.contains("stage-import-licenses") && e.contains("RELEASE_LOCATION")),
        "{out:?}"
    );
}

/// pg-replicate's image has no embedded warehouse, spools a table at a time in its work volume,
/// and reads under a server-side timeout: each of those broken once.
#[test]
fn pg_replicate_without_its_stage_or_with_a_spool_larger_than_its_volume_is_reported() {
    let Some(python) = deploy_tool("python") else {
        return;
    };
    let contracts = Contracts::from_binaries();
    let copy = k8s_copy();
    edit(
        copy.path(),
        "airflow/dags/data_jobs_pod.py",
        r#""pg-replicate": "20Gi""#,
        r#""pg-replicate": "8Gi""#,
    );
    edit(
        copy.path(),
        "cronjobs/pg-replicate.yaml",
        "                - {name: PG_REPLICATE_STAGE_URL, valueFrom: {secretKeyRef: {name: data-jobs, key: PG_REPLICATE_STAGE_URL}}}\n",
        "",
    );
    edit(
        copy.path(),
        "cronjobs/pg-replicate.yaml",
        "                - {name: PG_REPLICATE_STATEMENT_TIMEOUT_SECS, value: \"1800\"}\n",
        "",
    );
    let out = contracts.check_running(
        &python,
        &copy.path().join("k8s"),
        Some(&["pg_replicate"]),
        None,
    );
    assert_reported(
        &out,
        &[
            "DAG pg_replicate task pg-replicate: PG_REPLICATE_MAX_TABLE_BYTES=10737418240: a table's spool and its parts can take twice that, more than the 8Gi volume of /tmp",
            "CronJob/pg-replicate container pg-replicate: does not supply PG_REPLICATE_STAGE_URL, which pg-replicate requires",
            "CronJob/pg-replicate container pg-replicate: sets no PG_REPLICATE_STATEMENT_TIMEOUT_SECS",
        ],
    );
    assert_eq!(errors(&out).len(), 3, "{out:?}");
}

#[test]
fn a_secret_key_no_manifest_defines_or_a_misspelt_variable_is_reported() {
    let Some(python) = deploy_tool("python") else {
        return;
    };
    let contracts = Contracts::from_binaries();
    let copy = k8s_copy();
    edit(
        copy.path(),
        "secrets.yaml",
        "  STAGE_ROOT:",
        "  STAGE_ROOTS:",
    );
    edit(
        copy.path(),
        "cronjobs/pg-job.yaml",
        "{name: airflow, key: HEROKU_POSTGRESQL_URL}",
        "{name: heroku, key: HEROKU_POSTGRESQL_URL}",
    );
    edit(
        copy.path(),
        "airflow/dags/data_jobs_pod.py",
        r#""PERMISSION_BOT_WAREHOUSE","#,
        r#""PERMISSION_BOT_WAREHOSUE","#,
    );
    let out = contracts.check_running(
        &python,
        &copy.path().join("k8s"),
        Some(&["stage_import", "permissions"]),
        None,
    );
    assert_reported(
        &out,
        &[
            "DAG stage_import task licenses: STAGE_ROOT comes from Secret data-jobs key STAGE_ROOT, which that Secret's manifest does not have",
            "container account-arr: HEROKU_POSTGRESQL_URL comes from Secret heroku, which no manifest under k8s/ defines",
            "DAG permissions task plan: sets PERMISSION_BOT_WAREHOSUE, which permissions does not read",
        ],
    );
}

#[test]
fn an_image_we_do_not_build_or_of_another_version_is_reported() {
    let Some(python) = deploy_tool("python") else {
        return;
    };
    let contracts = Contracts::from_binaries();
    let copy = k8s_copy();
    edit(
        copy.path(),
        "airflow/dags/data_jobs_pod.py",
        r#"    return f"{REGISTRY}data-jobs/{job}:{VERSION}""#,
        r#"    return "python:3.7" if job == "dbt" else f"{REGISTRY}data-jobs/{job}:{VERSION}""#,
    );
    edit(
        copy.path(),
        "cronjobs/permissions.yaml",
        "image: data-jobs/permissions:0.1.0",
        "image: data-jobs/permissions:0.0.9",
    );
    edit(
        copy.path(),
        "cronjobs/pg-job.yaml",
        "image: data-jobs/pg-job:0.1.0",
        "image: data-jobs/psql-job:0.1.0",
    );
    let out = contracts.check_running(
        &python,
        &copy.path().join("k8s"),
        Some(&["transform"]),
        None,
    );
    assert_reported(
        &out,
        &[
            "DAG transform task dbt-build: image python:3.7 is not one we build",
            "container plan: image data-jobs/permissions:0.0.9: tag 0.0.9 is not the binaries' version",
            "image data-jobs/psql-job:0.1.0: psql-job is not a job we build",
        ],
    );
}

#[test]
fn a_secret_value_written_into_a_dag_or_a_template_is_reported() {
    let Some(python) = deploy_tool("python") else {
        return;
    };
    let contracts = Contracts::from_binaries();
    let copy = k8s_copy();
    edit(
        copy.path(),
        "airflow/dags/permissions.py",
        r#"SPEC = {"PERMISSIONS_SPEC": f"{SPEC_DIR}/roles.yml"}"#,
        r#"SPEC = {"PERMISSIONS_SPEC": f"{SPEC_DIR}/roles.yml", "PERMISSION_BOT_PASSWORD": "hunter2"}"#,
    );
    edit(
        copy.path(),
        "airflow/dags/pg_job.py",
        "SCRIPTS = [",
        "DSN = 'postgres://app:s3cret@db.example.com/app'\nSCRIPTS = [",
    );
    edit(
        copy.path(),
        "secrets.yaml",
        r#"SNOWFLAKE_LOAD_PRIVATE_KEY: "<PEM private key of that user: -----BEGIN PRIVATE KEY----- ...>""#,
        r#"SNOWFLAKE_LOAD_PRIVATE_KEY: "Tr0ub4dor&3""#,
    );
    let out = contracts.check_running(
        &python,
        &copy.path().join("k8s"),
        Some(&["permissions"]),
        None,
    );
    assert_reported(
        &out,
        &[
            "DAG permissions task plan: PERMISSION_BOT_PASSWORD is written in as a literal",
            "pg_job.py:",
            "holds a URL with a password",
            "Secret/airflow: key SNOWFLAKE_LOAD_PRIVATE_KEY holds a value, not a <placeholder>",
        ],
    );
    // The secret itself is never repeated in the report.
    assert!(!out.stdout.contains("Tr0ub4dor") && !out.stdout.contains("hunter2"));
}

#[test]
fn a_dag_file_that_fails_or_defines_nothing_is_reported() {
    let Some(python) = deploy_tool("python") else {
        return;
    };
    let contracts = Contracts::from_binaries();
    let copy = k8s_copy();
    let dags = copy.path().join("k8s/airflow/dags");
    std::fs::write(
        dags.join("broken.py"),
        "from airflow.sdk import DAG\nimport no_such_module\n",
    )
    .unwrap();
    // Defines nothing: Airflow would list no error and no DAG.
    std::fs::write(dags.join("forgotten.py"), "SCHEDULE = '@daily'\n").unwrap();
    // Defines a DAG, but without the words "airflow" and "dag" Airflow's safe mode skips it.
    std::fs::write(
        dags.join("sneaky.py"),
        "import importlib\nsdk = importlib.import_module('air' + 'flow.sdk')\n\
         with getattr(sdk, 'D' + 'AG')('sneaky', schedule=None):\n    pass\n",
    )
    .unwrap();
    let out = contracts.check_running(&python, &copy.path().join("k8s"), Some(&[]), None);
    assert_reported(
        &out,
        &[
            "broken.py: does not import: ModuleNotFoundError: No module named 'no_such_module'",
            "forgotten.py: defines no DAG",
            "sneaky.py: lacks the words airflow and dag",
        ],
    );
}

#[test]
fn a_wrong_date_a_missing_alert_an_unmounted_spec_or_script_is_reported() {
    let Some(python) = deploy_tool("python") else {
        return;
    };
    let contracts = Contracts::from_binaries();
    let copy = k8s_copy();
    // Airflow 3's @daily: the run at 11-01 00:00 has ds = 11-01, the day that just began.
    edit(
        copy.path(),
        "airflow/dags/stage_import.py",
        r#"DAY = "{{ macros.ds_add(ds, -1) }}""#,
        r#"DAY = "{{ ds }}""#,
    );
    edit(
        copy.path(),
        "airflow/dags/stage_import.py",
        r#"arguments=[source, "--date", DAY, "--lookback-days", str(LOOKBACK_DAYS)],"#,
        r#"arguments=[source, "--date", DAY],"#,
    );
    edit(
        copy.path(),
        "airflow/dags/transform.py",
        "    failure_alert([freshness, build])\n",
        "",
    );
    // An alert that fires at the first failure never reports a second, parallel one.
    edit(
        copy.path(),
        "airflow/dags/data_jobs_pod.py",
        r#"trigger_rule="all_done","#,
        r#"trigger_rule="one_failed","#,
    );
    // A run that times out skips the failure-alert task: only the DAG's callback can alert.
    edit(
        copy.path(),
        "airflow/dags/pg_job.py",
        "    on_failure_callback=alert_timed_out_run,\n",
        "",
    );
    edit(
        copy.path(),
        "cronjobs/permissions.yaml",
        "value: /etc/data-jobs/roles.yml",
        "value: /etc/roles.yml",
    );
    edit(
        copy.path(),
        "cronjobs/permissions.yaml",
        "image: data-jobs/webhook-alert:0.1.0",
        "image: data-jobs/permissions:0.1.0",
    );
    edit(
        copy.path(),
        "cronjobs/pg-job.yaml",
        "      activeDeadlineSeconds: 3000\n",
        "",
    );
    edit(
        copy.path(),
        "cronjobs/pg-job.yaml",
        "              containerName: opportunity-snapshot\n              operator: In\n              values: [2]",
        "              containerName: opportunity-snapshot\n              operator: In\n              values: [3]",
    );
    edit(
        copy.path(),
        "airflow/dags/pg_job.py",
        r#""opportunity-snapshot","#,
        r#""opportunity-snapshots","#,
    );
    let out = contracts.check_running(
        &python,
        &copy.path().join("k8s"),
        Some(&["stage_import", "pg_job"]),
        None,
    );
    assert_reported(
        &out,
        &[
            "DAG stage_import task licenses: the run that starts at 2026-11-01T00:00:00+00:00 loads 2026-11-01, not 2026-10-31, the day that ended",
            "DAG stage_import task releases: no lookback",
            "DAG transform: has no failure alert",
            "DAG stage_import task failure-alert: trigger_rule is one_failed, not all_done",
            "DAG pg_job: has no on_failure_callback alert_timed_out_run",
            "container apply: PERMISSIONS_SPEC=/etc/roles.yml is not inside any mounted volume",
            "pg-job script opportunity-snapshots has no",
            "CronJob/permissions: has no failure alert",
            "CronJob/pg-job-snapshots: has no activeDeadlineSeconds",
            "CronJob/pg-job-snapshots container opportunity-snapshot: backoffLimit retries its exit code 2",
        ],
    );
}

#[test]
fn a_pod_outside_the_restricted_profile_without_timeouts_or_a_failing_alert_is_reported() {
    let Some(python) = deploy_tool("python") else {
        return;
    };
    let contracts = Contracts::from_binaries();
    let copy = k8s_copy();
    let pod_helper = "airflow/dags/data_jobs_pod.py";
    edit(
        copy.path(),
        pod_helper,
        "allow_privilege_escalation=False,",
        "allow_privilege_escalation=True,",
    );
    edit(
        copy.path(),
        pod_helper,
        "        execution_timeout=timeout,\n",
        "",
    );
    edit(
        copy.path(),
        pod_helper,
        "active_deadline_seconds=int(timeout.total_seconds()) + 300,",
        "active_deadline_seconds=None,",
    );
    edit(
        copy.path(),
        pod_helper,
        "log_events_on_failure=True,",
        "log_events_on_failure=False,",
    );
    edit(copy.path(), pod_helper, "        in_cluster=True,\n", "");
    edit(
        copy.path(),
        pod_helper,
        r#"PULL_POLICY = "IfNotPresent" if REGISTRY else "Never""#,
        r#"PULL_POLICY = "IfNotPresent""#,
    );
    // The alert posts but succeeds: the DAG run would show green.
    edit(
        copy.path(),
        pod_helper,
        "        raise AirflowFailException(",
        "        return None\n        raise AirflowFailException(",
    );
    edit(
        copy.path(),
        "airflow/dags/pg_job.py",
        r#"STATEMENT_TIMEOUT = {"PG_JOB_STATEMENT_TIMEOUT_SECS": "600"}"#,
        "STATEMENT_TIMEOUT = {}",
    );
    edit(
        copy.path(),
        "airflow/dags/permissions.py",
        "    dagrun_timeout=timedelta(hours=1),\n",
        "",
    );

    let out = contracts.check_running(
        &python,
        &copy.path().join("k8s"),
        Some(&["permissions", "pg_job"]),
        None,
    );
    assert_reported(
        &out,
        &[
            "DAG permissions task plan container base: restricted profile: allowPrivilegeEscalation is not false",
            "DAG permissions task failure-alert container base: restricted profile: allowPrivilegeEscalation is not false",
            "DAG permissions task plan: has no execution_timeout",
            "DAG permissions task plan: the pod has no activeDeadlineSeconds",
            "DAG permissions task apply: log_events_on_failure is off",
            "DAG permissions task apply: the failed pod's events were not read",
            "DAG permissions task plan: in_cluster is not set",
            "DAG permissions task plan: image data-jobs/permissions:0.1.0 has no registry and pull policy IfNotPresent",
            "DAG permissions: with apply failed the DAG run ended success, not failed",
            "DAG pg_job task account-arr: sets no PG_JOB_STATEMENT_TIMEOUT_SECS",
            "DAG permissions: has no dagrun_timeout",
        ],
    );
}

/// Timeouts that nest, computed from the loaded DAGs: a retry back in pg_job (three scripts
/// with a retry each outlast the hourly run's 55 minutes) and a longer dbt timeout (two
/// attempts outlast transform's 3 hours) are reported, since the scheduler would skip the
/// alert of a run it times out.
#[test]
fn timeouts_that_do_not_nest_in_the_runs_timeout_are_reported() {
    let Some(python) = deploy_tool("python") else {
        return;
    };
    let contracts = Contracts::from_binaries();
    let copy = k8s_copy();
    edit(
        copy.path(),
        "airflow/dags/pg_job.py",
        r#"default_args={**DEFAULT_ARGS, "retries": 0},"#,
        "default_args=DEFAULT_ARGS,",
    );
    edit(
        copy.path(),
        "airflow/dags/data_jobs_pod.py",
        r#""dbt": timedelta(minutes=80),"#,
        r#""dbt": timedelta(hours=2),"#,
    );
    let out = contracts.check(&python, &copy.path().join("k8s"));
    assert_reported(
        &out,
        &[
            "DAG pg_job: a run can outlast its dagrun_timeout 0:55:00: its tasks up to opportunitylineitem-snapshot, every attempt and retry delay counted, take 1:45:00, and the alert 0:05:00 after them",
            "DAG transform: a run can outlast its dagrun_timeout 3:00:00",
        ],
    );
}

/// The manifest files under `k8s/` (the chart values under `k8s/airflow` are not manifests).
fn manifests(k8s: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![k8s.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "airflow") {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// kubernetes-validate, strict (unknown fields fail), with its warnings (unknown kinds,
/// removed APIs, which it lets pass) counted as failures.
fn validate(tool: &Path, files: &[PathBuf]) -> Result<usize, String> {
    let mut command = Command::new(tool);
    command
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .args(files);
    let out = run(command);
    let text = format!("{}{}", out.stdout, out.stderr);
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("INFO "))
        .collect();
    if out.code != Some(0) || !bad.is_empty() {
        return Err(format!("exit {:?}:\n{}", out.code, bad.join("\n")));
    }
    Ok(text.lines().filter(|l| l.contains(" passed for ")).count())
}

#[test]
fn manifests_match_the_kubernetes_schemas_strictly() {
    let Some(tool) = deploy_tool("kubernetes-validate") else {
        return;
    };
    let files = manifests(&repo().join("k8s"));
    let resources: usize = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.lines().filter(|l| l.starts_with("kind: ")).count()
        })
        .sum();
    assert!(resources >= 11, "{files:?}");
    let passed = validate(&tool, &files).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(passed, resources, "every resource should pass");
}

#[test]
fn kubernetes_validate_rejects_unknown_fields_and_unknown_kinds() {
    let Some(tool) = deploy_tool("kubernetes-validate") else {
        return;
    };
    let copy = k8s_copy();
    edit(
        copy.path(),
        "cronjobs/pg-job.yaml",
        "imagePullPolicy: Never",
        "imagePullPolicey: Never",
    );
    let err = validate(&tool, &[copy.path().join("k8s/cronjobs/pg-job.yaml")])
        .expect_err("a misspelt field must fail");
    assert!(err.contains("imagePullPolicey"), "{err}");

    // An API that no longer exists only warns in kubernetes-validate; here it fails.
    let removed = copy.path().join("removed.yaml");
    let text = std::fs::read_to_string(repo().join("k8s/cronjobs/permissions.yaml")).unwrap();
    std::fs::write(&removed, text.replace("batch/v1", "batch/v1beta1")).unwrap();
    let err = validate(&tool, &[removed]).expect_err("a removed API must fail");
    assert!(err.contains("WARN"), "{err}");
}

fn yamllint(tool: &Path, dir: &Path) -> Run {
    let mut command = Command::new(tool);
    command
        .args(["-s", "-f", "parsable", "-c"])
        .arg(repo().join("k8s/.yamllint"))
        .arg(dir);
    run(command)
}

#[test]
fn yaml_files_pass_yamllint() {
    let Some(tool) = deploy_tool("yamllint") else {
        return;
    };
    let out = yamllint(&tool, &repo().join("k8s"));
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);

    let copy = k8s_copy();
    edit(
        copy.path(),
        "serviceaccount.yaml",
        "automountServiceAccountToken: false",
        "automountServiceAccountToken: false   \nautomountServiceAccountToken: true",
    );
    let out = yamllint(&tool, &copy.path().join("k8s"));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stdout.contains("[error] trailing spaces"), "{out:?}");
    assert!(out.stdout.contains("duplication of key"), "{out:?}");
}

/// Runs `tests/deploy/check_values.py` on a `k8s/` directory.
/// The failure alerts under Airflow's real scheduler (`airflow standalone`: LocalExecutor,
/// SQLite), the pods faked at the Kubernetes API: a run that hits its dagrun_timeout alerts
/// through the DAG's callback, and two loads failing side by side are named in one alert.
/// `dag.test()` shows neither: it runs tasks one at a time and never times a run out.
#[test]
fn a_timed_out_run_and_two_parallel_failures_alert_under_the_real_scheduler() {
    let Some(python) = deploy_tool("python") else {
        return;
    };
    let mut command = Command::new(python);
    command
        .arg(repo().join("tests/deploy/scheduler_run.py"))
        .arg("--dags")
        .arg(repo().join("k8s/airflow/dags"));
    let out = run(command);
    assert_eq!(
        out.code,
        Some(0),
        "{}\n{}",
        out.stdout,
        out.stderr
            .chars()
            .rev()
            .take(3000)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
    );
    assert!(out.stdout.contains("checked 2 runs"), "{}", out.stdout);
}

fn check_values(python: &Path, k8s: &Path) -> Run {
    let mut command = Command::new(python);
    command
        .arg(repo().join("tests/deploy/check_values.py"))
        .arg("--k8s")
        .arg(k8s);
    run(command)
}

#[test]
fn the_chart_values_render_tokens_free_secret_names_and_a_public_base_url() {
    let Some(python) = deploy_tool("python") else {
        return;
    };
    let out = check_values(&python, &repo().join("k8s"));
    assert_eq!(
        out.code,
        Some(0),
        "chart values check failed:\n{}\n{}",
        errors(&out).join("\n"),
        out.stderr
    );
    assert!(
        out.stdout
            .contains("checked 2 chart values files: 0 problems"),
        "{}",
        out.stdout
    );
}

const BITNAMI: &str = "airflow/values.yaml";
const APACHE: &str = "airflow/values-apache.yaml";

#[test]
fn bitnami_values_without_tokens_with_a_clashing_name_a_port_or_old_images_are_reported() {
    let Some(python) = deploy_tool("python") else {
        return;
    };
    let copy = k8s_copy();
    let root = copy.path();
    for (from, to) in [
        (
            "fullnameOverride: airflow-platform",
            "fullnameOverride: airflow",
        ),
        (
            "service:\n  ports:\n    http: 80",
            "service:\n  ports:\n    http: 8080",
        ),
        (
            "worker:\n  automountServiceAccountToken: true",
            "worker:\n  automountServiceAccountToken: false",
        ),
        (
            "triggerer:\n  automountServiceAccountToken: true",
            "triggerer: {}",
        ),
        ("rbac:\n  create: true", "rbac:\n  create: false"),
        (
            "dagProcessor:\n  automountServiceAccountToken: true",
            "dagProcessor:\n  automountServiceAccountToken: false",
        ),
        (
            "repository: bitnamilegacy/airflow",
            "repository: bitnami/airflow",
        ),
        (
            "repository: bitnamilegacy/redis",
            "repository: bitnami/redis",
        ),
        ("tag: 3.0.5-debian-12-r0", "tag: 3.0.6-debian-12-r0"),
        (
            "https://github.com/YOUR-ORG/data-jobs.git",
            "https://github.com/<org>/data-jobs.git",
        ),
        ("path: k8s/airflow/dags", "path: dags"),
        ("interval: 60", "interval: 5"),
        (
            "- name: DATA_JOBS_REGISTRY",
            "- name: DATA_JOBS_REGISTRY_URL",
        ),
    ] {
        edit(root, BITNAMI, from, to);
    }
    let out = check_values(&python, &root.join("k8s"));
    assert_reported(
        &out,
        &[
            "airflow/values.yaml: the chart's own Secret (fernet, JWT, web secret keys, admin password) is named airflow",
            "clashes with our Secret airflow",
            "the chart renders base_url https://airflow.example.com:8080, which carries port 8080",
            "worker pods get no service-account token",
            "triggerer pods get no service-account token",
            "dagProcessor pods get no service-account token",
            "rbac.create is not true",
            "image.repository is bitnami/airflow",
            "redis.image.repository is bitnami/redis",
            "image.tag 3.0.6-debian-12-r0 is not Airflow 3.0.5, the Airflow chart 25.1.0 ships",
            "dags.repositories[0].repository https://github.com/<org>/data-jobs.git holds a <placeholder>",
            "no dags.repositories entry has path k8s/airflow/dags",
            "defaultSidecars.syncDAGsPlugins.interval is 5, not 60 s",
            "airflow/values.yaml: DATA_JOBS_REGISTRY is not in the workers' environment",
        ],
    );
    // The scheduler's token and the images left alone are not reported.
    assert!(
        !errors(&out).iter().any(|e| e.contains("scheduler pods")
            || e.contains("postgresql.image")
            || e.contains("values-apache.yaml")),
        "{}",
        errors(&out).join("\n")
    );
}

#[test]
fn official_chart_values_and_install_commands_that_do_not_match_are_reported() {
    let Some(python) = deploy_tool("python") else {
        return;
    };
    let copy = k8s_copy();
    let root = copy.path();
    for (from, to) in [
        ("period: 60s", "period: 5s"),
        (
            "base_url: https://airflow.example.com",
            "base_url: https://airflow.example.com:8080",
        ),
        (
            "defaultAirflowTag: \"3.0.6\"",
            "defaultAirflowTag: \"3.0.5\"",
        ),
        ("airflowVersion: \"3.0.6\"", "airflowVersion: \"3.0.2\""),
        (
            "workers:\n  serviceAccount:\n    automountServiceAccountToken: true",
            "workers:\n  serviceAccount:\n    automountServiceAccountToken: false",
        ),
        ("allowPodLaunching: true", "allowPodLaunching: false"),
        ("subPath: k8s/airflow/dags", "subPath: dags"),
        (
            "repository: bitnamilegacy/postgresql\n  global",
            "repository: bitnami/postgresql\n  global",
        ),
        ("- name: DATA_JOBS_REGISTRY", "- name: REGISTRY"),
    ] {
        edit(root, APACHE, from, to);
    }
    edit(root, "README.md", "--version 25.1.0", "--version 24.0.0");
    edit(
        root,
        "README.md",
        "helm install airflow-platform apache-airflow/airflow",
        "helm install apache-airflow/airflow",
    );
    let out = check_values(&python, &root.join("k8s"));
    assert_reported(
        &out,
        &[
            "airflow/values-apache.yaml: dags.gitSync.period is 5s, not 60s",
            "config.api.base_url https://airflow.example.com:8080 carries port 8080",
            "defaultAirflowTag 3.0.5 is not Airflow 3.0.6",
            "airflowVersion 3.0.2 is not Airflow 3.0.6",
            "workers pods get no service-account token",
            "allowPodLaunching is not true",
            "dags.gitSync.subPath is dags, not k8s/airflow/dags",
            "postgresql.image.repository is bitnami/postgresql",
            "airflow/values-apache.yaml: DATA_JOBS_REGISTRY is not in the workers' environment",
            "README.md: the install of the Bitnami chart pins --version 24.0.0, not 25.1.0",
            "README.md: the install of the official chart names no release",
        ],
    );
    assert!(
        !errors(&out)
            .iter()
            .any(|e| e.contains("airflow/values.yaml:")),
        "{}",
        errors(&out).join("\n")
    );
}

/// dbt's image (docker/dbt) and the venv the project is built and tested in (tests/dbt.rs) run
/// the same dbt-snowflake.
#[test]
fn the_dbt_image_is_based_on_the_dbt_snowflake_the_project_is_tested_with() {
    let dockerfile = std::fs::read_to_string(repo().join("docker/dbt/Dockerfile")).unwrap();
    let base = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ARG DBT_SNOWFLAKE_VERSION="))
        .expect("docker/dbt/Dockerfile names its dbt-snowflake version");
    let requirements =
        std::fs::read_to_string(repo().join("transform/dbt/requirements.txt")).unwrap();
    let pinned = requirements
        .lines()
        .find_map(|l| l.strip_prefix("dbt-snowflake=="))
        .expect("transform/dbt/requirements.txt pins dbt-snowflake");
    assert_eq!(base.trim(), pinned.trim());
    assert!(
        dockerfile.contains("FROM ghcr.io/dbt-labs/dbt-snowflake:${DBT_SNOWFLAKE_VERSION}"),
        "{dockerfile}"
    );
}

/// dbt's variables are what transform/dbt/profiles.yml reads in its prod target: one missing, one
/// misspelt, and a task left on the dev target (the embedded DuckDB file) are each reported.
#[test]
fn a_dbt_task_without_its_profiles_variables_or_the_prod_target_is_reported() {
    let Some(python) = deploy_tool("python") else {
        return;
    };
    let contracts = Contracts::from_binaries();
    let copy = k8s_copy();
    edit(
        copy.path(),
        "airflow/dags/data_jobs_pod.py",
        r#"    + [("SNOWFLAKE_TRANSFORM_PASSWORD", JOBS_SECRET, "SNOWFLAKE_TRANSFORM_PASSWORD")],"#,
        r#"    + [("SNOWFLAKE_TRANSFORM_PASWORD", JOBS_SECRET, "SNOWFLAKE_TRANSFORM_PASSWORD")],"#,
    );
    edit(
        copy.path(),
        "airflow/dags/transform.py",
        r#"arguments=["build", "--target", "prod"]"#,
        r#"arguments=["build"]"#,
    );
    let out = contracts.check_running(
        &python,
        &copy.path().join("k8s"),
        Some(&["transform"]),
        None,
    );
    assert_reported(
        &out,
        &[
            "DAG transform task dbt-build: does not supply SNOWFLAKE_TRANSFORM_PASSWORD, which dbt requires",
            "DAG transform task dbt-build: sets SNOWFLAKE_TRANSFORM_PASWORD, which dbt does not read",
            "DAG transform task dbt-build: dbt build without --target prod",
        ],
    );
    assert!(
        !errors(&out)
            .iter()
            .any(|e| e.contains("dbt-source-freshness") && e.contains("--target")),
        "{out:?}"
    );
}

/// The example alert rule (k8s/monitoring) is valid for Prometheus and fires when it should:
/// promtool's own checks and unit tests (tests/deploy/data-jobs.rules.test.yml), Debian's
/// `prometheus` package.
#[test]
fn the_alert_rule_fires_after_26_hours_without_a_licenses_load() {
    let promtool = Path::new("/usr/bin/promtool");
    if !promtool.exists() {
        missing("promtool (apt-get install prometheus)");
        return;
    }
    let rules = repo().join("k8s/monitoring/data-jobs.rules.yml");
    let mut check = Command::new(promtool);
    check.args(["check", "rules"]).arg(&rules);
    let out = run(check);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("SUCCESS: 2 rules found"), "{out:?}");
    let mut unit = Command::new(promtool);
    unit.args(["test", "rules"])
        .arg(repo().join("tests/deploy/data-jobs.rules.test.yml"));
    let out = run(unit);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("SUCCESS"), "{out:?}");
}
