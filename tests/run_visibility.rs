//! Run visibility (the kit's `run`, `metrics` and `lineage`): each job's run pushed to a real
//! Prometheus Pushgateway and read back from its `/metrics`, grouped by job and source, script
//! or table, a failed run keeping the last success's timestamp; OpenLineage events (START, then
//! COMPLETE, FAIL or ABORT) with their datasets, each checked by the spec's own classes
//! (`tests/lineage/receiver.py`); and a Pushgateway or lineage server that is down, slow or
//! given credentials costing a warning, never the job or the secret.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::lineage;
use crate::support::postgres::{self, assert_no_password};
use crate::support::pushgateway::Pushgateway;
use crate::support::receiver::{Receiver, Reply};
use crate::support::{bin, job, run, sigterm};

const DAY: &str = "2026-11-26";

fn stage_import(stage: &Path, warehouse: &Path, gateway: &str) -> Command {
    let mut command = job("stage-import");
    command
        .env("STAGE_ROOT", stage)
        .env("RELEASE_LOCATION", "E1RELEASES")
        .env("DIAGNOSTIC_LOCATION_ONE", "E1DIAGNOSTICS")
        .env("DIAGNOSTIC_LOCATION_TWO", "E2DIAGNOSTICS")
        .env("AWS_ACCOUNT_ID", "123456789012")
        .env("WAREHOUSE_PATH", warehouse)
        .env("DUCKDB_THREADS", "2")
        .env("PROMETHEUS_PUSHGATEWAY_URL", gateway);
    command
}

#[test]
fn a_stage_import_run_is_pushed_per_source_and_a_failed_run_keeps_the_last_success() {
    let Some(gateway) = Pushgateway::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (stage, warehouse) = one_day_of_every_source(dir.path());
    let out = run({
        let mut c = stage_import(&stage, &warehouse, &gateway.url);
        c.arg("bootstrap");
        c
    });
    assert_eq!(out.code, Some(0), "{out:?}");

    let mut load = stage_import(&stage, &warehouse, &gateway.url);
    load.args(["licenses", "--date", DAY, "--lookback-days", "0"])
        .env("AIRFLOW_CTX_DAG_ID", "stage_import")
        .env("AIRFLOW_CTX_TASK_ID", "licenses")
        .env("AIRFLOW_CTX_DAG_RUN_ID", "manual__metrics")
        .env("AIRFLOW_CTX_TRY_NUMBER", "1");
    let out = run(load);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("metrics pushed"), "{}", out.stderr);
    let group = [("job", "stage-import"), ("source", "licenses")];
    let metric = |name: &str| {
        gateway
            .value(name, &group)
            .unwrap_or_else(|| panic!("{name} not pushed: {:#?}", gateway.samples("data_job_")))
    };
    assert_eq!(metric("data_job_last_run_exit_code"), 0.0);
    // The licenses export is one file a day.
    assert_eq!(metric("data_job_last_run_files"), 1.0);
    assert_eq!(metric("data_job_last_run_failed_items"), 0.0);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = report["rows_loaded"].as_f64().unwrap();
    assert!(rows > 0.0, "{report}");
    assert_eq!(metric("data_job_last_run_rows"), rows);
    let bytes: u64 = walk(&stage.join("licenses"));
    assert_eq!(metric("data_job_last_run_bytes"), bytes as f64);
    let succeeded = metric("data_job_last_success_timestamp_seconds");
    assert_eq!(succeeded, metric("data_job_last_run_timestamp_seconds"));
    assert!(metric("data_job_last_run_duration_seconds") > 0.0);
    // Which run that was: the task run's labels on a constant 1, replaced by each push.
    let info: Vec<_> = gateway
        .samples("data_job_last_run_info")
        .into_iter()
        .filter(|s| s.labels.get("source").map(String::as_str) == Some("licenses"))
        .collect();
    assert_eq!(info.len(), 1, "{info:#?}");
    assert_eq!(info[0].value, 1.0);
    for (label, value) in [
        ("dag_id", "stage_import"),
        ("task_id", "licenses"),
        ("dag_run_id", "manual__metrics"),
        ("try_number", "1"),
        ("version", env!("CARGO_PKG_VERSION")),
    ] {
        assert_eq!(
            info[0].labels.get(label).map(String::as_str),
            Some(value),
            "{info:#?}"
        );
    }
    // bootstrap is a run of all sources: its own group, job alone.
    assert_eq!(
        gateway.value("data_job_last_run_exit_code", &[("job", "stage-import")]),
        Some(0.0)
    );

    // A day without files: exit 4, and the last success stays the first run's.
    let mut missing = stage_import(&stage, &warehouse, &gateway.url);
    missing.args(["licenses", "--date", "2026-10-01", "--lookback-days", "0"]);
    let out = run(missing);
    assert_eq!(out.code, Some(4), "{out:?}");
    assert_eq!(metric("data_job_last_run_exit_code"), 4.0);
    assert_eq!(metric("data_job_last_run_files"), 0.0);
    assert_eq!(metric("data_job_last_success_timestamp_seconds"), succeeded);
    assert!(metric("data_job_last_run_timestamp_seconds") > succeeded);
}

/// A day of every source's files (the generator's) and where the embedded warehouse goes.
fn one_day_of_every_source(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let stage = dir.join("stage");
    let mut generate = Command::new(bin("sample-data"));
    generate
        .args(["stage", "--out"])
        .arg(&stage)
        .args(["--days", "1", "--end", DAY, "--servers", "10"])
        .args(["--files-per-day", "2", "--rows-per-file", "30"]);
    assert_eq!(run(generate).code, Some(0));
    (stage, dir.join("warehouse.duckdb"))
}

fn walk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path())
            } else {
                entry.metadata().unwrap().len()
            }
        })
        .sum()
}

#[test]
fn pg_replicate_pushes_the_run_and_each_table_and_pg_job_its_script() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let Some(gateway) = Pushgateway::start() else {
        return;
    };
    let db = server.database("visible_replication");
    server.psql(
        &db,
        "CREATE SCHEMA salesforce; \
         CREATE TABLE salesforce.account (id int PRIMARY KEY, name text, \
           systemmodstamp timestamp NOT NULL DEFAULT now()); \
         INSERT INTO salesforce.account (id, name) SELECT n, 'a' || n FROM generate_series(1, 25) n; \
         CREATE TABLE salesforce.contact (id int PRIMARY KEY, email text, \
           systemmodstamp timestamp NOT NULL DEFAULT now()); \
         INSERT INTO salesforce.contact (id, email) SELECT n, n || '@x' FROM generate_series(1, 7) n;",
    );
    let Some(receiver) = lineage::Receiver::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut replicate = job("pg-replicate");
    replicate
        .env("HEROKU_POSTGRESQL_URL", server.url(&db, ""))
        .env("WAREHOUSE_PATH", dir.path().join("w.duckdb"))
        .env("DUCKDB_THREADS", "2")
        .env("PROMETHEUS_PUSHGATEWAY_URL", &gateway.url)
        .env("OPENLINEAGE_URL", &receiver.url);
    let out = run(replicate);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_no_password(&out);

    // Lineage: each source table, named as the naming spec names Postgres tables, into the
    // embedded file's table of the same name, with their columns and what was written.
    let events = receiver.valid_events();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["START", "COMPLETE"]);
    let complete = &events[1];
    assert_eq!(complete["job"]["name"], "pg-replicate");
    assert_eq!(complete["job"]["namespace"], "default");
    let url = server.url(&db, "");
    let authority = url.split('@').nth(1).unwrap().split('/').next().unwrap();
    let input = dataset(&complete["inputs"], &format!("{db}.salesforce.account"));
    assert_eq!(input["namespace"], format!("postgres://{authority}"));
    assert_eq!(
        field_names(&input["facets"]["schema"]),
        ["id", "name", "systemmodstamp"]
    );
    // The default target schema, orgm.
    let output = dataset(&complete["outputs"], "orgm.contact");
    let file = std::path::absolute(dir.path().join("w.duckdb")).unwrap();
    assert_eq!(output["namespace"], format!("duckdb://{}", file.display()));
    let statistics = &output["outputFacets"]["outputStatistics"];
    assert_eq!(statistics["rowCount"], 7, "{output:#}");
    assert!(statistics["size"].as_u64().unwrap() > 0, "{output:#}");
    let run_group = [("job", "pg-replicate")];
    assert_eq!(
        gateway.value("data_job_last_run_exit_code", &run_group),
        Some(0.0)
    );
    assert_eq!(
        gateway.value("data_job_last_run_rows", &run_group),
        Some(32.0)
    );
    for (table, rows) in [("salesforce.account", 25.0), ("salesforce.contact", 7.0)] {
        let group = [("job", "pg-replicate"), ("table", table)];
        assert_eq!(gateway.value("data_job_last_run_rows", &group), Some(rows));
        assert!(gateway.value("data_job_last_run_bytes", &group).unwrap() > 0.0);
        assert!(
            gateway
                .value("data_job_last_success_timestamp_seconds", &group)
                .is_some()
        );
    }

    let mut script = job("pg-job");
    script
        .env("HEROKU_POSTGRESQL_URL", server.url(&db, ""))
        .env("PG_JOB_SCRIPTS_DIR", dir.path())
        .env("PROMETHEUS_PUSHGATEWAY_URL", &gateway.url)
        .arg("touch-accounts");
    std::fs::write(
        dir.path().join("touch_accounts.sql"),
        "UPDATE salesforce.account SET name = upper(name) WHERE id <= 4;",
    )
    .unwrap();
    let out = run(script);
    assert_eq!(out.code, Some(0), "{out:?}");
    let group = [("job", "pg-job"), ("script", "touch_accounts")];
    assert_eq!(gateway.value("data_job_last_run_rows", &group), Some(4.0));
    assert_eq!(
        gateway.value("data_job_last_run_exit_code", &group),
        Some(0.0)
    );
}

#[test]
fn webhook_alert_and_permissions_push_their_runs() {
    let Some(gateway) = Pushgateway::start() else {
        return;
    };
    let Some(lineage) = lineage::Receiver::start() else {
        return;
    };
    let receiver = Receiver::start(vec![Reply::ok()]);
    let mut alert = job("webhook-alert");
    alert
        .env("MATTERMOST_WEBHOOK_URL", receiver.url("/hooks/x"))
        .env("ALERT_DAG_ID", "stage_import")
        .env("PROMETHEUS_PUSHGATEWAY_URL", &gateway.url)
        .env("OPENLINEAGE_URL", &lineage.url);
    let out = run(alert);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        gateway.value("data_job_last_run_exit_code", &[("job", "webhook-alert")]),
        Some(0.0)
    );

    // A spec that does not parse: a configuration error, exit 2, pushed as such.
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("roles.yml");
    std::fs::write(&spec, "roles: [").unwrap();
    let mut plan = job("permissions");
    plan.arg("plan")
        .env("PERMISSIONS_SPEC", &spec)
        .env("PROMETHEUS_PUSHGATEWAY_URL", &gateway.url)
        .env("OPENLINEAGE_URL", &lineage.url);
    let out = run(plan);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(
        gateway.value(
            "data_job_last_run_exit_code",
            &[("job", "permissions"), ("command", "plan")]
        ),
        Some(2.0)
    );
    assert_eq!(
        gateway.value(
            "data_job_last_success_timestamp_seconds",
            &[("job", "permissions"), ("command", "plan")]
        ),
        None
    );

    // Both runs in lineage too: the alert's COMPLETE, the plan's FAIL naming the spec's error.
    let events = lineage.valid_events();
    let summary: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["job"]["name"].as_str().unwrap(),
                e["eventType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("webhook-alert", "START"),
            ("webhook-alert", "COMPLETE"),
            ("permissions.plan", "START"),
            ("permissions.plan", "FAIL"),
        ]
    );
    let message = events[3]["run"]["facets"]["errorMessage"]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("roles.yml"), "{message}");
}

#[test]
fn a_server_that_is_down_or_silent_costs_a_warning_and_never_shows_its_secrets() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    // Port 1 (tcpmux) listens nowhere here, and no other test can take it from under this
    // one: they take their ports from the ephemeral range.
    let closed_port = 1;
    for (url, says) in [
        (
            format!("http://pusher:hunter2secret@127.0.0.1:{silent_port}/"),
            "no answer within 1s",
        ),
        (
            format!("http://pusher:hunter2secret@127.0.0.1:{closed_port}"),
            "metrics not pushed",
        ),
    ] {
        let mut sources = job("stage-import");
        sources
            .arg("sources")
            .env("PROMETHEUS_PUSHGATEWAY_URL", &url)
            .env("PROMETHEUS_PUSHGATEWAY_TIMEOUT_SECS", "1")
            .env("OPENLINEAGE_URL", &url)
            .env("OPENLINEAGE_API_KEY", "ol-api-key-never-shown")
            .env("OPENLINEAGE_TIMEOUT_SECS", "1");
        let out = run(sources);
        assert_eq!(out.code, Some(0), "{out:?}");
        assert!(out.stdout.contains("licenses"), "{}", out.stdout);
        assert!(out.stderr.contains(says), "{says:?} not in {}", out.stderr);
        for event in ["START", "COMPLETE"] {
            assert!(
                out.stderr.contains(&format!("lineage {event} not sent")),
                "{}",
                out.stderr
            );
        }
        for secret in ["hunter2secret", "ol-api-key-never-shown"] {
            assert!(!out.stderr.contains(secret), "{}", out.stderr);
            assert!(!out.stdout.contains(secret));
        }
    }
    drop(silent);
}

/// The dataset named `name` among `list`.
#[track_caller]
fn dataset<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no dataset {name} in {list:#}"))
}

fn field_names(schema: &Value) -> Vec<&str> {
    schema["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no schema facet: {schema}"))
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect()
}

#[test]
fn a_stage_import_run_sends_start_then_complete_or_fail_linked_to_its_airflow_task() {
    let Some(receiver) = lineage::Receiver::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (stage, warehouse) = one_day_of_every_source(dir.path());
    let mut bootstrap = stage_import(&stage, &warehouse, "");
    bootstrap.arg("bootstrap");
    assert_eq!(run(bootstrap).code, Some(0));

    let parent_run = "01932f2a-6b7c-7d8e-9f00-112233445566";
    let lineage_env = |command: &mut Command| {
        command
            .env("OPENLINEAGE_URL", &receiver.url)
            .env("OPENLINEAGE_NAMESPACE", "data-jobs-test")
            .env("OPENLINEAGE_API_KEY", "ol-key-k3y-secret")
            .env(
                "OPENLINEAGE_PARENT_ID",
                format!("airflow-test/stage_import.licenses/{parent_run}"),
            )
            .env("LOG_FORMAT", "json")
            .env("AIRFLOW_CTX_DAG_ID", "stage_import")
            .env("AIRFLOW_CTX_TASK_ID", "licenses")
            .env("AIRFLOW_CTX_DAG_RUN_ID", "manual__lineage")
            .env("AIRFLOW_CTX_TRY_NUMBER", "1");
    };
    let mut load = stage_import(&stage, &warehouse, "");
    load.args(["licenses", "--date", DAY, "--lookback-days", "0"]);
    lineage_env(&mut load);
    let out = run(load);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(!out.stderr.contains("ol-key-k3y-secret") && !out.stdout.contains("ol-key-k3y-secret"));
    let first_line: Value = serde_json::from_str(out.stderr.lines().next().unwrap()).unwrap();
    let run_id = first_line["job_run_id"].as_str().unwrap().to_owned();
    let report: Value = serde_json::from_str(&out.stdout).unwrap();

    let received = receiver.events();
    assert_eq!(received.len(), 2, "{received:#?}");
    for each in &received {
        assert!(
            each.problems.is_empty(),
            "{:?}\n{:#}",
            each.problems,
            each.event
        );
        assert_eq!(each.path, "/api/v1/lineage");
        assert_eq!(
            each.authorization.as_deref(),
            Some("Bearer ol-key-k3y-secret")
        );
        let event = &each.event;
        assert_eq!(event["run"]["runId"], run_id.as_str());
        assert_eq!(event["job"]["namespace"], "data-jobs-test");
        assert_eq!(event["job"]["name"], "stage-import.licenses");
        let parent = &event["run"]["facets"]["parent"];
        assert_eq!(parent["run"]["runId"], parent_run);
        assert_eq!(parent["job"]["namespace"], "airflow-test");
        assert_eq!(parent["job"]["name"], "stage_import.licenses");
    }
    let (start, complete) = (&received[0].event, &received[1].event);
    assert_eq!(start["eventType"], "START");
    assert_eq!(complete["eventType"], "COMPLETE");
    assert!(complete["run"]["facets"].get("errorMessage").is_none());
    let input = &complete["inputs"][0];
    assert_eq!(input["namespace"], "file");
    let stage_dir = std::path::absolute(&stage).unwrap();
    assert!(
        input["name"]
            .as_str()
            .unwrap()
            .starts_with(&stage_dir.join("licenses").display().to_string()),
        "{input}"
    );
    let output = dataset(&complete["outputs"], "licenses.licenses");
    let file = std::path::absolute(&warehouse).unwrap();
    assert_eq!(output["namespace"], format!("duckdb://{}", file.display()));
    let columns = field_names(&output["facets"]["schema"]);
    assert!(
        columns.ends_with(&["_source_file", "_loaded_at"]),
        "{columns:?}"
    );
    let statistics = &output["outputFacets"]["outputStatistics"];
    assert_eq!(statistics["rowCount"], report["rows_loaded"]);
    assert_eq!(statistics["fileCount"], 1);
    assert_eq!(statistics["size"], walk(&stage.join("licenses")));

    // A day without files: FAIL, with the run's error (exit 4) as its message.
    let mut missing = stage_import(&stage, &warehouse, "");
    missing.args(["licenses", "--date", "2026-10-01", "--lookback-days", "0"]);
    lineage_env(&mut missing);
    let out = run(missing);
    assert_eq!(out.code, Some(4), "{out:?}");
    let events = receiver.valid_events();
    assert_eq!(events.len(), 4);
    assert_eq!(events[2]["eventType"], "START");
    let failed = &events[3];
    assert_eq!(failed["eventType"], "FAIL");
    assert_eq!(failed["run"]["runId"], events[2]["run"]["runId"]);
    assert_ne!(failed["run"]["runId"], run_id.as_str());
    let message = failed["run"]["facets"]["errorMessage"]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("no input"), "{message}");
}

#[test]
fn sigterm_ends_a_run_with_abort_and_a_bad_variable_with_fail() {
    let Some(server) = postgres::plain() else {
        return;
    };
    let Some(receiver) = lineage::Receiver::start() else {
        return;
    };
    let db = server.database("lineage_abort");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wait.sql"), "SELECT pg_sleep(60);").unwrap();
    let mut script = job("pg-job");
    script
        .env("HEROKU_POSTGRESQL_URL", server.url(&db, ""))
        .env("PG_JOB_SCRIPTS_DIR", dir.path())
        .env("OPENLINEAGE_URL", &receiver.url)
        .arg("wait")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = script.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while receiver.events().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no START");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The statement is running once START has gone: stop it as Kubernetes would.
    std::thread::sleep(std::time::Duration::from_millis(500));
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let events = receiver.valid_events();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["START", "ABORT"]);
    assert_eq!(events[1]["job"]["name"], "pg-job.wait");
    assert_eq!(
        events[1]["job"]["facets"]["sql"]["query"],
        "SELECT pg_sleep(60);"
    );

    // A configuration error: the job never ran, and says so all the same.
    let mut bad = job("pg-job");
    bad.env("HEROKU_POSTGRESQL_URL", "not a url")
        .env("PG_JOB_SCRIPTS_DIR", dir.path())
        .env("OPENLINEAGE_URL", &receiver.url)
        .arg("wait");
    let out = run(bad);
    assert_eq!(out.code, Some(2), "{out:?}");
    let events = receiver.valid_events();
    let kinds: Vec<&str> = events[2..]
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["START", "FAIL"]);
    let message = events[3]["run"]["facets"]["errorMessage"]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("HEROKU_POSTGRESQL_URL"), "{message}");
}
