//! webhook-alert against a local receiver: the exact JSON that arrives, and every way a post
//! can go wrong; watch mode (the CronJobs' sidecar) and the kit's status file it reads.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::receiver::{Receiver, Reply};
use crate::support::{Run, env_schema, job, run, variable_names};

const HOOK_PATH: &str = "/hooks/k3y5ecr3tw3bh00k";

fn alert(receiver: &Receiver) -> Command {
    let mut command = job("webhook-alert");
    command
        .env("MATTERMOST_WEBHOOK_URL", receiver.url(HOOK_PATH))
        .env("ALERT_TIMEOUT_SECS", "2");
    command
}

fn airflow_failure(command: &mut Command) {
    command
        .env("ALERT_DAG_ID", "stage_import")
        .env("ALERT_TASK_ID", "licenses")
        .env("ALERT_RUN_ID", "scheduled__2026-11-26T00:00:00+00:00")
        .env("ALERT_TRY_NUMBER", "2")
        .env("ALERT_EXECUTION_DATE", "2026-11-26T00:00:00+00:00")
        .env("ALERT_FAILED_AT", "2026-11-27T03:12:09Z")
        .env("AIRFLOW_BASE_URL", "https://airflow.example.com")
        .env(
            "ALERT_ERROR",
            "COPY INTO failed: 2 of 9 files\nsee the report",
        );
}

#[test]
fn posts_the_exact_payload() {
    let receiver = Receiver::start(vec![Reply::ok()]);
    let mut command = alert(&receiver);
    airflow_failure(&mut command);
    command
        .env("MATTERMOST_CHANNEL", "bizops-ops")
        .env("MATTERMOST_ICON_EMOJI", ":airflow:");
    let out = run(command);
    assert_eq!(out.code, Some(0), "{out:?}");

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "POST");
    assert_eq!(received[0].path, HOOK_PATH);
    assert_eq!(
        received[0].content_type.as_deref(),
        Some("application/json")
    );
    let task = "https://airflow.example.com/dags/stage_import/runs/scheduled__2026-11-26T00:00:00+00:00/tasks/licenses";
    assert_eq!(
        received[0].json(),
        json!({
            "text": format!(
                ":red_circle: **Task `licenses` in DAG `stage_import` failed:** COPY INTO failed: 2 of 9 files\n\
                 \n\
                 **DAG:** [stage\\_import](https://airflow.example.com/dags/stage_import)\n\
                 **Task:** [licenses]({task}) (try 2)\n\
                 **Run:** `scheduled__2026-11-26T00:00:00+00:00`\n\
                 **Execution date:** `2026-11-26T00:00:00+00:00`\n\
                 **Failed at:** 2026-11-27 03:12:09 UTC\n\
                 **Log:** [View the task log]({task}?try_number=2)\n\
                 \n\
                 ```\n\
                 COPY INTO failed: 2 of 9 files\n\
                 see the report\n\
                 ```"
            ),
            "username": "Airflow",
            "channel": "bizops-ops",
            "icon_emoji": ":airflow:",
        })
    );
    assert!(out.stderr.contains("alert posted"), "{}", out.stderr);
    assert!(!out.stderr.contains("k3y5ecr3tw3bh00k"), "{}", out.stderr);
}

#[test]
fn missing_url_is_a_config_error() {
    let out = run(job("webhook-alert"));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("MATTERMOST_WEBHOOK_URL: is required but not set"),
        "{}",
        out.stderr
    );
}

#[test]
fn invalid_values_are_all_reported_without_echoing_the_secret() {
    let mut command = job("webhook-alert");
    command
        .env("MATTERMOST_WEBHOOK_URL", "not a url but a s3cr3t-value")
        .env("ALERT_TRY_NUMBER", "second")
        .env("ALERT_TIMEOUT_SECS", "1e300");
    let out = run(command);
    assert_eq!(out.code, Some(2), "{out:?}");
    for needle in [
        "invalid configuration (3 problems)",
        "MATTERMOST_WEBHOOK_URL: expected an https URL; http:// only for a host on this machine, as it sends credentials in clear text; the value (a secret, not shown)",
        "ALERT_TRY_NUMBER: expected a whole number from 0 to 10000, got \"second\"",
        "ALERT_TIMEOUT_SECS: expected a number of seconds from 0.001 to 604800 (7 days), got \"1e300\"",
    ] {
        assert!(
            out.stderr.contains(needle),
            "{needle:?} not in {}",
            out.stderr
        );
    }
    assert!(!out.stderr.contains("s3cr3t-value"), "{}", out.stderr);
}

#[test]
fn a_webhook_over_plain_http_to_another_host_is_refused() {
    let mut command = job("webhook-alert");
    command
        .env(
            "MATTERMOST_WEBHOOK_URL",
            "http://chat.example.com/hooks/pl41nt3xtkey",
        )
        .env("ALERT_DAG_ID", "pg_job");
    let out = run(command);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains(
            "MATTERMOST_WEBHOOK_URL: expected an https URL; http:// only for a host on this machine"
        ),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("pl41nt3xtkey"), "{}", out.stderr);
}

#[test]
fn rejected_post_reports_mattermosts_error_and_is_not_retried() {
    let body = r#"{"id":"web.incoming_webhook.invalid.app_error","message":"Invalid webhook.","detailed_error":"","request_id":"r1","status_code":400}"#;
    let receiver = Receiver::start(vec![Reply::status(400, body)]);
    let out = run(alert(&receiver));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(receiver.received().len(), 1);
    assert!(
        out.stderr.contains(
            "Mattermost rejected the post with HTTP 400 Bad Request: Invalid webhook. \
             (web.incoming_webhook.invalid.app_error) (not retried: permanent)"
        ),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("k3y5ecr3tw3bh00k"), "{}", out.stderr);
}

#[test]
fn too_many_requests_waits_as_asked_then_succeeds() {
    let receiver = Receiver::start(vec![
        Reply::status(429, "slow down").with_header("Retry-After", "1"),
        Reply::ok(),
    ]);
    let out = run(alert(&receiver));
    assert_eq!(out.code, Some(0), "{out:?}");
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].body, received[1].body,
        "the retry posts the same message"
    );
    assert!(out.elapsed >= Duration::from_secs(1), "{:?}", out.elapsed);
    assert!(
        out.stderr.contains("HTTP 429 Too Many Requests"),
        "{}",
        out.stderr
    );
}

#[test]
fn server_errors_are_retried_until_attempts_run_out() {
    // The server's error page quotes the URL it was asked for: it must not reach the log.
    let page = format!("upstream failed for {HOOK_PATH}");
    let receiver = Receiver::start(vec![Reply::status(502, &page)]);
    let mut command = alert(&receiver);
    command.env("ALERT_MAX_ATTEMPTS", "3");
    let out = run(command);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(receiver.received().len(), 3);
    assert!(
        out.stderr.contains("HTTP 502 Bad Gateway"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("(gave up after 3 attempts)"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("k3y5ecr3tw3bh00k"), "{}", out.stderr);
}

#[test]
fn a_server_that_never_answers_times_out() {
    let receiver = Receiver::start(vec![Reply::Hang(Duration::from_secs(30))]);
    let mut command = alert(&receiver);
    command
        .env("ALERT_TIMEOUT_SECS", "0.5")
        .env("ALERT_MAX_ATTEMPTS", "2");
    let out = run(command);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(receiver.received().len(), 2);
    assert!(
        out.stderr.contains("no answer within 500ms"),
        "{}",
        out.stderr
    );
    assert!(out.elapsed < Duration::from_secs(10), "{:?}", out.elapsed);
}

#[test]
fn an_unreachable_host_is_retried_then_reported() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut command = job("webhook-alert");
    command
        .env(
            "MATTERMOST_WEBHOOK_URL",
            format!("http://127.0.0.1:{port}{HOOK_PATH}"),
        )
        .env("ALERT_MAX_ATTEMPTS", "2");
    let out = run(command);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("cannot reach the webhook host"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("(gave up after 2 attempts)"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("k3y5ecr3tw3bh00k"), "{}", out.stderr);
}

#[test]
fn secrets_in_the_error_text_are_masked_in_post_and_logs() {
    let receiver = Receiver::start(vec![Reply::ok()]);
    let hook = receiver.url(HOOK_PATH);
    let mut command = alert(&receiver);
    command
        .env("LOG_LEVEL", "debug")
        .env("SNOWFLAKE_LOAD_PASSWORD", "Sn0wfl4ke-pw!")
        .env("ALERT_REDACT_VARS", "SNOWFLAKE_LOAD_PASSWORD, UNSET_VAR")
        .env(
            "ALERT_ERROR",
            format!(
                "psycopg2.OperationalError: could not connect to \
                 postgres://etl:Pg-pa55word@db.internal:5432/sales\n\
                 snowflake login with Sn0wfl4ke-pw! failed; token=abc123def\n\
                 retried {hook}"
            ),
        );
    let out = run(command);
    assert_eq!(out.code, Some(0), "{out:?}");
    let text = receiver.received()[0].json()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    for secret in [
        "Pg-pa55word",
        "Sn0wfl4ke-pw!",
        "abc123def",
        "k3y5ecr3tw3bh00k",
    ] {
        assert!(!text.contains(secret), "{secret} in the post:\n{text}");
        assert!(
            !out.stderr.contains(secret),
            "{secret} in the log:\n{}",
            out.stderr
        );
    }
    assert!(
        text.contains("postgres://etl:***@db.internal:5432/sales"),
        "{text}"
    );
    assert!(
        text.contains("snowflake login with *** failed; token=***"),
        "{text}"
    );
}

#[test]
fn a_100_kb_error_is_cut_to_fit_the_post() {
    let receiver = Receiver::start(vec![Reply::ok()]);
    let mut command = alert(&receiver);
    let error: String = "Traceback line with ünïcödé 🦀\n".repeat(3300);
    assert!(error.len() > 100_000);
    command.env("ALERT_ERROR", &error);
    let out = run(command);
    assert_eq!(out.code, Some(0), "{out:?}");
    let text = receiver.received()[0].json()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let chars = text.chars().count();
    assert!((16_000..=16_383).contains(&chars), "{chars} characters");
    let total = error.chars().count();
    assert!(
        text.contains(&format!(" of {total} characters shown; see the log.*")),
        "{}",
        &text[text.len() - 300..]
    );
}

#[test]
fn env_schema_is_the_contract_as_json() {
    let schema = env_schema("webhook-alert");
    let vars = schema["variables"].as_array().unwrap();
    let url = vars
        .iter()
        .find(|v| v["name"] == "MATTERMOST_WEBHOOK_URL")
        .unwrap();
    assert_eq!(
        (url["required"].clone(), url["secret"].clone()),
        (json!(true), json!(true))
    );
    let required: Vec<_> = vars.iter().filter(|v| v["required"] == true).collect();
    assert_eq!(required.len(), 1, "only the webhook URL is required");
    let names = variable_names(&schema);
    for name in [
        "ALERT_DAG_ID",
        "ALERT_ERROR",
        "MATTERMOST_USERNAME",
        "ALERT_WATCH_STATUS_FILES",
        "LOG_FORMAT",
        "LOG_LEVEL",
        "JOB_STATUS_FILE",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }

    let mut help = job("webhook-alert");
    help.arg("--help");
    let help = run(help);
    assert_eq!(help.code, Some(0));
    for name in names {
        assert!(help.stdout.contains(name), "--help does not list {name}");
    }
}

#[test]
fn flags_mirror_the_variables() {
    let receiver = Receiver::start(vec![Reply::ok()]);
    let mut command = job("webhook-alert");
    command
        .arg("--mattermost-webhook-url")
        .arg(receiver.url(HOOK_PATH))
        .args([
            "--alert-dag-id",
            "from_flag",
            "--mattermost-username",
            "Bot",
        ]);
    let out = run(command);
    assert_eq!(out.code, Some(0), "{out:?}");
    let body = receiver.received()[0].json();
    assert_eq!(body["username"], "Bot");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("DAG `from_flag` failed")
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let receiver = Receiver::start(vec![Reply::status(503, "busy"), Reply::ok()]);
    let mut command = alert(&receiver);
    command.env("LOG_FORMAT", "json");
    let out = run(command);
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{}", out.stderr);
    assert_eq!(lines[0]["level"], "WARN");
    assert_eq!(lines[0]["attempt"], 1);
    assert_eq!(lines[1]["message"], "alert posted");
}

#[test]
fn sigterm_interrupts_with_the_interrupted_code() {
    let receiver = Receiver::start(vec![Reply::Hang(Duration::from_secs(30))]);
    let mut command = alert(&receiver);
    command
        .env("ALERT_TIMEOUT_SECS", "20")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().unwrap();
    while receiver.received().is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("received SIGTERM: stopping"), "{stderr}");
}

// ---- watch mode: the sidecar beside a CronJob's jobs (k8s/cronjobs) ----------------------------

/// Runs `command` (webhook-alert in watch mode) until it says it is watching, then sends it
/// SIGTERM as the kubelet does once the pod's jobs have exited. Returns the run and how many
/// posts had arrived before the signal (the sidecar must wait for it).
fn sigterm_once_watching(mut command: Command, receiver: &Receiver) -> (Run, usize) {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start webhook-alert");
    let stderr = child.stderr.take().expect("stderr");
    let (watching, said_watching) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            // Said after the kit registered for SIGTERM: a signal any earlier would kill it.
            if line.contains("watching") {
                let _ = watching.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let ready = said_watching.recv_timeout(Duration::from_secs(10));
    // A moment idle, as in a pod: nothing may be posted before the signal.
    std::thread::sleep(Duration::from_millis(300));
    let before = receiver.received().len();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait for webhook-alert");
    let stderr = reader.join().expect("stderr reader");
    assert!(
        ready.is_ok(),
        "webhook-alert never said it was watching:\n{stderr}"
    );
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
        elapsed: started.elapsed(),
    };
    (run, before)
}

fn watching(receiver: &Receiver, status_file: &std::path::Path) -> Command {
    let mut command = alert(receiver);
    command
        .env("ALERT_WATCH_STATUS_FILES", status_file)
        // As the CronJob manifests set the kit's run context (k8s/cronjobs).
        .env("K8S_CRONJOB_NAME", "stage-import-licenses")
        .env("K8S_JOB_NAME", "stage-import-licenses-29410380");
    command
}

#[test]
fn watch_posts_the_failure_in_the_status_file_after_sigterm() {
    let receiver = Receiver::start(vec![Reply::ok()]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stage-import.status");
    std::fs::write(&file, "3\nstage-import: 2 of 9 files failed to load\n").unwrap();
    let (out, before) = sigterm_once_watching(watching(&receiver, &file), &receiver);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(before, 0, "posted before SIGTERM");
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{out:?}");
    let text = received[0].json()["text"].as_str().unwrap().to_owned();
    assert!(
        text.starts_with(
            ":red_circle: **CronJob `stage-import-licenses` failed:** \
             stage-import: 2 of 9 files failed to load\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "**CronJob:** `stage-import-licenses` (Job `stage-import-licenses-29410380`)"
        ),
        "{text}"
    );
    assert!(
        text.contains("**Exit code:** 3 (partial success: finished, but some items failed)"),
        "{text}"
    );
    assert!(out.stderr.contains("alert posted"), "{}", out.stderr);
}

#[test]
fn watch_posts_nothing_when_the_status_is_0() {
    let receiver = Receiver::start(vec![Reply::ok()]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stage-import.status");
    std::fs::write(&file, "0\n").unwrap();
    let (out, _) = sigterm_once_watching(watching(&receiver, &file), &receiver);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(receiver.received().len(), 0, "{out:?}");
    assert!(out.stderr.contains("nothing to post"), "{}", out.stderr);
}

#[test]
fn watch_posts_a_job_that_wrote_no_status() {
    let receiver = Receiver::start(vec![Reply::ok()]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stage-import.status");
    let (out, before) = sigterm_once_watching(watching(&receiver, &file), &receiver);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(before, 0, "posted before SIGTERM");
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{out:?}");
    let text = received[0].json()["text"].as_str().unwrap().to_owned();
    assert!(
        text.contains("CronJob `stage-import-licenses` failed"),
        "{text}"
    );
    assert!(
        text.contains(
            "the job ended without writing its status (killed, e.g. OOMKilled, or never started)"
        ),
        "{text}"
    );
}

#[test]
fn the_kit_writes_the_status_file_on_success_and_on_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("job.status");

    let receiver = Receiver::start(vec![Reply::ok()]);
    let mut command = alert(&receiver);
    command.env("JOB_STATUS_FILE", &file);
    let out = run(command);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "0\n");

    let mut command = job("webhook-alert");
    command.env("JOB_STATUS_FILE", &file);
    let out = run(command);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "2\nwebhook-alert: invalid configuration (1 problem); \
         - MATTERMOST_WEBHOOK_URL: is required but not set (an https URL; http:// only for a host on this machine, as it sends credentials in clear text)\n"
    );
}
