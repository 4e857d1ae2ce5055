//! The job images, built FROM scratch by `docker/build-image.sh` and run for real with
//! `docker run`. They need the static release binaries (`make test` builds them first) and a
//! Docker engine (required under CI=true).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use crate::support::receiver::{Receiver, Reply};
use crate::support::{missing, run};

/// Builds the image of `job` once per test run; `None` when docker is missing outside CI.
fn image(job: &'static str) -> Option<String> {
    static DOCKER: OnceLock<bool> = OnceLock::new();
    let docker = *DOCKER.get_or_init(|| {
        Command::new("docker")
            .arg("info")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !docker && missing("a running Docker engine") {
        return None;
    }
    static BUILT: OnceLock<std::sync::Mutex<Vec<&'static str>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap();
    if !built.contains(&job) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/build-image.sh");
        let mut command = Command::new("bash");
        command.arg(script).arg(job);
        let out = run(command);
        assert_eq!(
            out.code,
            Some(0),
            "building the {job} image failed: {out:?}"
        );
        // Straight to stderr: the harness captures eprintln!, and the sizes belong in CI's log.
        let _ = writeln!(std::io::stderr(), "image {}", out.stdout.trim());
        built.push(job);
    }
    Some(format!("data-jobs/{job}:latest"))
}

fn docker(args: &[&str]) -> crate::support::Run {
    let mut command = Command::new("docker");
    command.args(args);
    run(command)
}

fn image_size(image: &str) -> u64 {
    let out = docker(&["image", "inspect", "-f", "{{.Size}}", image]);
    out.stdout.trim().parse().expect("image size")
}

#[test]
fn webhook_alert_image_is_small_non_root_and_complete() {
    let Some(image) = image("webhook-alert") else {
        return;
    };
    let size = image_size(&image);
    assert!(
        size < 8_000_000,
        "webhook-alert image is {size} bytes; the target is < 8 MB"
    );

    let user = docker(&["image", "inspect", "-f", "{{.Config.User}}", &image]);
    assert_eq!(user.stdout.trim(), "65532:65532");

    let container = docker(&["create", &image]);
    assert_eq!(container.code, Some(0), "{container:?}");
    let id = container.stdout.trim();
    let listing = Command::new("sh")
        .arg("-c")
        .arg(format!("docker export {id} | tar -t"))
        .output()
        .unwrap();
    docker(&["rm", id]);
    let files = String::from_utf8_lossy(&listing.stdout);
    for file in [
        "usr/local/bin/webhook-alert",
        "etc/ssl/certs/ca-certificates.crt",
        "etc/passwd",
        "etc/nsswitch.conf",
    ] {
        assert!(
            files.lines().any(|l| l == file),
            "{file} not in the image:\n{files}"
        );
    }
}

#[test]
fn webhook_alert_image_answers_help_schema_and_config_errors() {
    let Some(image) = image("webhook-alert") else {
        return;
    };
    let help = docker(&["run", "--rm", &image, "--help"]);
    assert_eq!(help.code, Some(0), "{help:?}");
    assert!(help.stdout.contains("MATTERMOST_WEBHOOK_URL"));

    let schema = docker(&["run", "--rm", &image, "--env-schema"]);
    assert_eq!(schema.code, Some(0), "{schema:?}");
    let schema: serde_json::Value = serde_json::from_str(&schema.stdout).unwrap();
    assert_eq!(schema["job"], "webhook-alert");

    let bad = docker(&["run", "--rm", &image]);
    assert_eq!(bad.code, Some(2), "{bad:?}");
    let line: serde_json::Value = serde_json::from_str(bad.stderr.trim()).unwrap();
    assert_eq!(line["level"], "ERROR");
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .contains("MATTERMOST_WEBHOOK_URL: is required but not set")
    );
}

#[test]
fn webhook_alert_container_posts_to_a_receiver_found_by_name() {
    let Some(image) = image("webhook-alert") else {
        return;
    };
    let receiver = Receiver::start(vec![Reply::ok()]);
    // The host's network, so that the receiver on loopback is reachable; the name exists only
    // through --add-host, which proves name resolution works inside the scratch image.
    let url = format!(
        "http://alerts.receiver.test:{}/hooks/c0ntainerhook",
        receiver.port
    );
    let out = docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--add-host",
        "alerts.receiver.test:127.0.0.1",
        "-e",
        &format!("MATTERMOST_WEBHOOK_URL={url}"),
        "-e",
        "ALERT_DAG_ID=pg_job",
        "-e",
        "ALERT_TASK_ID=account-arr",
        "-e",
        "ALERT_ERROR=relation \"account\" does not exist",
        &image,
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/hooks/c0ntainerhook");
    let body = received[0].json();
    assert_eq!(body["username"], "Airflow");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with(":red_circle: **Task `account-arr` in DAG `pg_job` failed:** relation \"account\" does not exist")
    );
    assert!(!out.stderr.contains("c0ntainerhook"), "{}", out.stderr);
}

#[test]
fn pg_job_image_is_small_and_carries_its_scripts() {
    let Some(image) = image("pg-job") else { return };
    let size = image_size(&image);
    assert!(
        size <= 10_000_000,
        "pg-job image is {size} bytes; the target is <= 10 MB"
    );
    let user = docker(&["image", "inspect", "-f", "{{.Config.User}}", &image]);
    assert_eq!(user.stdout.trim(), "65532:65532");

    // --dry-run lists the statements without connecting: the scripts are in the image.
    let dry = docker(&["run", "--rm", &image, "--dry-run", "account-arr"]);
    assert_eq!(dry.code, Some(0), "{dry:?}");
    assert!(dry.stdout.contains("account_arr.sql"), "{}", dry.stdout);

    let schema = docker(&["run", "--rm", &image, "--env-schema"]);
    let schema: serde_json::Value = serde_json::from_str(&schema.stdout).unwrap();
    let names: Vec<_> = schema["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        names.contains(&"HEROKU_POSTGRESQL_URL".to_owned()),
        "{names:?}"
    );

    let missing = docker(&["run", "--rm", &image, "account-arr"]);
    assert_eq!(missing.code, Some(2), "{missing:?}");
    assert!(
        missing.stderr.contains("HEROKU_POSTGRESQL_URL"),
        "{}",
        missing.stderr
    );
}
