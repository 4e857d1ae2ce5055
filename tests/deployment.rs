//! The deployment under `k8s/`, checked offline: the Airflow DAGs and the CronJobs against the
//! jobs' real environment contracts (the built binaries' `--env-schema`) by
//! `tests/deploy/check_dags.py`, the manifests against Kubernetes' own schemas by
//! kubernetes-validate, and every YAML file by yamllint. The tools live in the deploy venv
//! (`make venv`, `DATA_JOBS_DEPLOY_VENV`); without it the tests skip, and fail under CI=true.
//!
//! Every rule also runs once against a deliberately broken copy of `k8s/`, so that a check
//! that cannot fail would show.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Run, env_schema, job, missing, run};

/// The jobs that ship as images, each with its `--env-schema`.
const JOBS: &[&str] = &["webhook-alert", "pg-job", "stage-import", "permissions"];
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

    /// Runs the checker on a `k8s/` directory (the real one or a broken copy).
    fn check(&self, python: &Path, k8s: &Path) -> Run {
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
            .arg(repo().join("examples/roles.yml"));
        for name in JOBS {
            command
                .arg("--schema")
                .arg(self.dir.path().join(format!("{name}.json")));
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
    let contracts = Contracts::from_binaries();
    let out = contracts.check(&python, &repo().join("k8s"));
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
    // stage_import's six loads, pg_job's chain of three, permissions' plan and apply, dbt.
    assert!(number(" DAG tasks") >= 12, "{summary}");
    // Six stage-import sources, three pg-job scripts, plan and apply.
    assert!(number(" CronJob containers") >= 11, "{summary}");
    assert!(summary.ends_with(": 0 problems"), "{summary}");
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
    let out = contracts.check(&python, &copy.path().join("k8s"));
    assert_reported(
        &out,
        &[
            "DAG pg_job task account-arr: does not supply HEROKU_POSTGRESQL_URL, which pg-job requires",
            "DAG pg_job task account-arr failure alert: does not supply MATTERMOST_WEBHOOK_URL, which webhook-alert requires",
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
    let out = contracts.check(&python, &copy.path().join("k8s"));
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
        r#"DBT_IMAGE = "ghcr.io/dbt-labs/dbt-snowflake:1.9.0""#,
        r#"DBT_IMAGE = "python:3.7""#,
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
    let out = contracts.check(&python, &copy.path().join("k8s"));
    assert_reported(
        &out,
        &[
            "DAG transform task dbt-run: image python:3.7 is not one we build",
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
        r#"SNOWFLAKE_LOAD_PASSWORD: "<its password>""#,
        r#"SNOWFLAKE_LOAD_PASSWORD: "Tr0ub4dor&3""#,
    );
    let out = contracts.check(&python, &copy.path().join("k8s"));
    assert_reported(
        &out,
        &[
            "DAG permissions task plan: PERMISSION_BOT_PASSWORD is written in as a literal",
            "pg_job.py:",
            "holds a URL with a password",
            "Secret/airflow: key SNOWFLAKE_LOAD_PASSWORD holds a value, not a <placeholder>",
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
    let out = contracts.check(&python, &copy.path().join("k8s"));
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
    edit(
        copy.path(),
        "airflow/dags/stage_import.py",
        r#"arguments=[source, "--date", "{{ ds }}"],"#,
        "arguments=[source],",
    );
    edit(
        copy.path(),
        "airflow/dags/transform.py",
        r#"job_pod("dbt", task_id="dbt-run", arguments=["run"])"#,
        r#"job_pod("dbt", task_id="dbt-run", arguments=["run"], alert=False)"#,
    );
    edit(
        copy.path(),
        "cronjobs/permissions.yaml",
        "value: /etc/data-jobs/roles.yml",
        "value: /etc/roles.yml",
    );
    edit(
        copy.path(),
        "airflow/dags/pg_job.py",
        r#""opportunity-snapshot","#,
        r#""opportunity-snapshots","#,
    );
    let out = contracts.check(&python, &copy.path().join("k8s"));
    assert_reported(
        &out,
        &[
            "DAG stage_import task licenses: stage-import's date is not {{ ds }}",
            "DAG transform task dbt-run: has no failure alert",
            "container apply: PERMISSIONS_SPEC=/etc/roles.yml is not inside any mounted volume",
            "pg-job script opportunity-snapshots has no",
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
        "imagePullPolicy: IfNotPresent",
        "imagePullPolicey: IfNotPresent",
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
