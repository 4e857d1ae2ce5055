//! The job images, built FROM scratch by `docker/build-image.sh` and run for real with
//! `docker run`. They need the static binaries of the image-test profile (`make test` builds them
//! first; IMAGE_PROFILE names the profile, release by default) and a
//! Docker engine (required under CI=true).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use std::os::unix::fs::PermissionsExt;

use crate::support::grant_emulator::GrantEmulator;
use crate::support::receiver::{Receiver, Reply};
use crate::support::{fakesnow, missing, moto, postgres, run};

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

/// What every image must be: under its size limit, run as the numeric non-root user, and holding
/// the binary, the CA bundle and the name-resolution files (and `extra`).
fn assert_image_basics(job: &str, image: &str, max_bytes: u64, extra: &[&str]) {
    let size = image_size(image);
    assert!(
        size <= max_bytes,
        "{job} image is {size} bytes; the target is <= {max_bytes}"
    );
    let user = docker(&["image", "inspect", "-f", "{{.Config.User}}", image]);
    assert_eq!(user.stdout.trim(), "65532:65532");

    let container = docker(&["create", image]);
    assert_eq!(container.code, Some(0), "{container:?}");
    let id = container.stdout.trim();
    let listing = Command::new("sh")
        .arg("-c")
        .arg(format!("docker export {id} | tar -t"))
        .output()
        .unwrap();
    docker(&["rm", id]);
    let files = String::from_utf8_lossy(&listing.stdout);
    let binary = format!("usr/local/bin/{job}");
    let expected = [
        binary.as_str(),
        "etc/ssl/certs/ca-certificates.crt",
        "etc/passwd",
        "etc/nsswitch.conf",
    ];
    for file in expected.iter().chain(extra) {
        assert!(
            files.lines().any(|l| l == *file),
            "{file} not in the {job} image:\n{files}"
        );
    }
}

/// `--help` names `variable`, `--env-schema` is the job's JSON contract, and a run with only
/// the docker `options` given (`-e`, `-v`) exits with the config code and a JSON log line
/// naming `variable`.
fn assert_contract(job: &str, image: &str, variable: &str, options: &[&str], args: &[&str]) {
    let help = docker(&["run", "--rm", image, "--help"]);
    assert_eq!(help.code, Some(0), "{help:?}");
    assert!(help.stdout.contains(variable), "{}", help.stdout);

    let schema = docker(&["run", "--rm", image, "--env-schema"]);
    assert_eq!(schema.code, Some(0), "{schema:?}");
    let schema: serde_json::Value = serde_json::from_str(&schema.stdout).unwrap();
    assert_eq!(schema["job"], job);
    assert!(
        schema["variables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == variable),
        "{schema}"
    );

    let mut bad = vec!["run", "--rm"];
    bad.extend(options);
    bad.push(image);
    bad.extend(args);
    let bad = docker(&bad);
    assert_eq!(bad.code, Some(2), "{bad:?}");
    let line: serde_json::Value = serde_json::from_str(bad.stderr.trim().lines().last().unwrap())
        .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {}", bad.stderr));
    assert_eq!(line["level"], "ERROR");
    assert!(
        line["message"].as_str().unwrap().contains(variable),
        "{line}"
    );
}

/// The sample Permifrost spec, as an absolute path docker can mount.
fn sample_spec() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/roles.yml")
        .canonicalize()
        .unwrap()
}

/// The port of a `http://host:port` URL.
fn port_of(url: &str) -> &str {
    url.rsplit(':').next().unwrap().trim_end_matches('/')
}

#[test]
fn webhook_alert_image_is_small_non_root_and_complete() {
    let Some(image) = image("webhook-alert") else {
        return;
    };
    assert_image_basics("webhook-alert", &image, 8_000_000, &[]);
}

#[test]
fn webhook_alert_image_answers_help_schema_and_config_errors() {
    let Some(image) = image("webhook-alert") else {
        return;
    };
    assert_contract("webhook-alert", &image, "MATTERMOST_WEBHOOK_URL", &[], &[]);
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
    assert_image_basics(
        "pg-job",
        &image,
        10_000_000,
        &["transform/sql/account_arr.sql"],
    );

    // --dry-run lists the statements without connecting: the scripts are in the image.
    let dry = docker(&["run", "--rm", &image, "--dry-run", "account-arr"]);
    assert_eq!(dry.code, Some(0), "{dry:?}");
    assert!(dry.stdout.contains("account_arr.sql"), "{}", dry.stdout);

    assert_contract(
        "pg-job",
        &image,
        "HEROKU_POSTGRESQL_URL",
        &[],
        &["account-arr"],
    );
}

/// A test database served by a TLS-only PostgreSQL, reached from the container as `localhost`
/// with the test CA mounted: verify-full proves name resolution, the CA bundle path and TLS.
#[test]
fn pg_job_container_runs_a_script_over_verified_tls() {
    let Some(image) = image("pg-job") else { return };
    let Some(server) = postgres::tls() else {
        return;
    };
    let files = server.tls.as_ref().unwrap();
    let db = server.database("container");
    let dir = tempfile::tempdir().unwrap();
    let scripts = dir.path().join("sql");
    std::fs::create_dir(&scripts).unwrap();
    std::fs::write(
        scripts.join("container_snapshot.sql"),
        "CREATE TABLE snapshot AS SELECT g AS id FROM generate_series(1, 42) AS g;\n\
         INSERT INTO snapshot VALUES (43);\n",
    )
    .unwrap();
    // The container runs as 65532: it must be able to read what is mounted.
    for path in [dir.path(), scripts.as_path()] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let url = server.url_for(
        "localhost",
        postgres::PASSWORD_IN_URL,
        &db,
        "sslmode=verify-full&sslrootcert=/certs/ca.pem",
    );
    let out = docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-v",
        &format!("{}:/certs/ca.pem:ro", files.ca.display()),
        "-v",
        &format!("{}:/scripts:ro", scripts.display()),
        "-e",
        "PG_JOB_SCRIPTS_DIR=/scripts",
        "-e",
        &format!("HEROKU_POSTGRESQL_URL={url}"),
        &image,
        "container-snapshot",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(server.psql(&db, "SELECT count(*) FROM snapshot"), "43");
    assert!(!out.stderr.contains("s3cret"), "{}", out.stderr);
}

#[test]
fn stage_import_image_has_no_embedded_warehouse_and_answers_its_contract() {
    let Some(image) = image("stage-import") else {
        return;
    };
    assert_image_basics("stage-import", &image, 25_000_000, &[]);
    assert_contract(
        "stage-import",
        &image,
        "SNOWFLAKE_LOAD_PRIVATE_KEY",
        &["-e", "SNOWFLAKE_ACCOUNT=xy12345", "-e", "STAGE_ROOT=/tmp"],
        &["licenses", "--date", "2026-11-26"],
    );
    // Without Snowflake the production build has nowhere to load: it says so instead of
    // creating a DuckDB file in the container.
    let out = docker(&[
        "run",
        "--rm",
        "-e",
        "STAGE_ROOT=/tmp",
        &image,
        "licenses",
        "--date",
        "2026-11-26",
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("this build has no embedded warehouse"),
        "{}",
        out.stderr
    );
}

/// stage-import in its container against the emulated Snowflake and the S3 server, both
/// reached by name: bootstrap, then a day whose files are missing upstream (the preflight
/// lists the bucket and says so without touching a table).
#[test]
fn stage_import_container_bootstraps_and_preflights_against_servers_found_by_name() {
    let Some(image) = image("stage-import") else {
        return;
    };
    let (Some(snow), Some(s3)) = (fakesnow::server(), moto::moto()) else {
        return;
    };
    let database = snow.database("container");
    let stage = tempfile::tempdir().unwrap();
    std::fs::write(stage.path().join("licenses-2026-11-25.csv"), "id\n1\n").unwrap();
    let bucket = format!("container-{}", std::process::id());
    s3.upload_dir(&bucket, "raw/licenses/2026-11-25/", stage.path());
    let secret = "aws-Secret-in-a-container";
    // The loader is a service user: it logs in with its key, registered as Snowflake's is.
    let key = test_servers::keys::rsa_private_key(2048);
    snow.run_sql(&format!(
        "ALTER USER loader SET RSA_PUBLIC_KEY = '{}'",
        test_servers::keys::public_key_for_alter_user(&key)
    ));
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    let run = |args: &[&str]| {
        let mut command = vec![
            "run".to_owned(),
            "--rm".to_owned(),
            "--network".to_owned(),
            "host".to_owned(),
            "--add-host".to_owned(),
            "snowflake.test:127.0.0.1".to_owned(),
            "--add-host".to_owned(),
            "objects.test:127.0.0.1".to_owned(),
        ];
        for (key, value) in [
            ("SNOWFLAKE_ACCOUNT", "xy12345".to_owned()),
            ("SNOWFLAKE_LOAD_USER", "loader".to_owned()),
            ("SNOWFLAKE_LOAD_PRIVATE_KEY", key.clone()),
            ("SNOWFLAKE_LOAD_WAREHOUSE", "LOADING".to_owned()),
            ("SNOWFLAKE_LOAD_DATABASE", database.clone()),
            (
                "SNOWFLAKE_URL",
                format!("http://snowflake.test:{}", port_of(snow.base_url())),
            ),
            ("STAGE_ROOT", format!("s3://{bucket}/raw")),
            (
                "S3_ENDPOINT_URL",
                format!("http://objects.test:{}", port_of(&s3.endpoint)),
            ),
            ("AWS_ACCESS_KEY_ID", "test-key".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", secret.to_owned()),
            ("RELEASE_LOCATION", "E1RELEASES".to_owned()),
            ("DIAGNOSTIC_LOCATION_ONE", "E1DIAGNOSTICS".to_owned()),
            ("DIAGNOSTIC_LOCATION_TWO", "E2DIAGNOSTICS".to_owned()),
            ("AWS_ACCOUNT_ID", "123456789012".to_owned()),
        ] {
            command.push("-e".to_owned());
            command.push(format!("{key}={value}"));
        }
        command.push(image.clone());
        command.extend(args.iter().map(|a| (*a).to_owned()));
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        let out = docker(&args);
        for secret in [secret, &key_body[..40]] {
            assert!(!out.stderr.contains(secret), "{}", out.stderr);
            assert!(!out.stdout.contains(secret), "{}", out.stdout);
        }
        out
    };
    let bootstrap = run(&["bootstrap", "licenses"]);
    assert_eq!(bootstrap.code, Some(0), "{bootstrap:?}");
    assert_eq!(
        snow.events_of("login", "LOADER").last().unwrap()["authenticator"],
        "SNOWFLAKE_JWT"
    );
    assert!(
        !snow.events_of("statement", "CREATE STAGE").is_empty(),
        "bootstrap sent no CREATE STAGE"
    );

    let empty = run(&["licenses", "--date", "2026-11-26"]);
    assert_eq!(empty.code, Some(4), "{empty:?}");
    let report: serde_json::Value = serde_json::from_str(&empty.stdout).unwrap();
    assert_eq!(report["loads"][0]["outcome"], "no_files", "{report}");
}

#[test]
fn permissions_image_answers_its_contract() {
    let Some(image) = image("permissions") else {
        return;
    };
    assert_image_basics("permissions", &image, 25_000_000, &[]);
    // The spec is checked first (before any variable that connecting needs), so it is mounted.
    let spec = sample_spec();
    assert_contract(
        "permissions",
        &image,
        "PERMISSION_BOT_PRIVATE_KEY",
        &[
            "-v",
            &format!("{}:/etc/permissions/roles.yml:ro", spec.display()),
            "-e",
            "PERMISSIONS_SPEC=/etc/permissions/roles.yml",
            "-e",
            "PERMISSION_BOT_ACCOUNT=xy12345",
        ],
        &["plan"],
    );
}

/// A plan of the sample spec, read from the grant-aware emulator reached by name, with the
/// spec mounted as Kubernetes mounts its ConfigMap.
#[test]
fn permissions_container_plans_against_an_account_found_by_name() {
    let Some(image) = image("permissions") else {
        return;
    };
    let Some(emulator) = GrantEmulator::start() else {
        return;
    };
    emulator.setup(&[
        "CREATE ROLE PERMISSION_BOT",
        "GRANT ROLE SECURITYADMIN TO ROLE PERMISSION_BOT",
        "CREATE USER PERMISSION_BOT PASSWORD = 'Bot-Container-Pw-1' DEFAULT_ROLE = PERMISSION_BOT",
        "GRANT ROLE PERMISSION_BOT TO USER PERMISSION_BOT",
        "CREATE WAREHOUSE LOADING",
        "CREATE WAREHOUSE TRANSFORMING",
        "CREATE WAREHOUSE REPORTING",
        "CREATE DATABASE RAW",
        "CREATE SCHEMA RAW.STITCH",
        "CREATE DATABASE ANALYTICS",
        "CREATE SCHEMA ANALYTICS.MART",
        "CREATE SCHEMA ANALYTICS.STAGING",
        "CREATE DATABASE SNOWFLAKE FROM SHARE SNOWFLAKE.ACCOUNT_USAGE",
    ]);
    let spec = sample_spec();
    let before = emulator.statements().len();
    let out = docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--add-host",
        "snowflake.test:127.0.0.1",
        "-v",
        &format!("{}:/etc/permissions/roles.yml:ro", spec.display()),
        "-e",
        "PERMISSIONS_SPEC=/etc/permissions/roles.yml",
        "-e",
        "PERMISSION_BOT_ACCOUNT=testaccount",
        "-e",
        "PERMISSION_BOT_USER=permission_bot",
        "-e",
        "PERMISSION_BOT_PASSWORD=Bot-Container-Pw-1",
        "-e",
        "PERMISSION_BOT_ROLE=permission_bot",
        "-e",
        &format!(
            "PERMISSION_BOT_URL=http://snowflake.test:{}",
            port_of(&emulator.base_url())
        ),
        &image,
        "plan",
        "--format",
        "sql",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}\n{}", emulator.output());
    assert!(out.stdout.contains("CREATE ROLE"), "{}", out.stdout);
    assert!(out.stdout.contains("GRANT "), "{}", out.stdout);
    assert!(!out.stderr.contains("Bot-Container-Pw-1"), "{}", out.stderr);
    // The plan read the account and changed nothing.
    let sent = emulator.statements()[before..].to_vec();
    assert!(
        sent.iter().any(|s| s.starts_with("SHOW GRANTS TO ROLE")),
        "{sent:#?}"
    );
    assert!(
        !sent
            .iter()
            .any(|s| s.starts_with("CREATE ") || s.starts_with("GRANT ")),
        "the plan executed statements: {sent:#?}"
    );
}

#[test]
fn pg_replicate_image_has_no_embedded_warehouse_and_answers_its_contract() {
    let Some(image) = image("pg-replicate") else {
        return;
    };
    assert_image_basics("pg-replicate", &image, 25_000_000, &[]);
    let url = "HEROKU_POSTGRESQL_URL=postgres://reader@db.invalid/heroku";
    assert_contract(
        "pg-replicate",
        &image,
        "PG_REPLICATE_STAGE_URL",
        &[
            "-e",
            url,
            "-e",
            "SNOWFLAKE_ACCOUNT=xy12345",
            "-e",
            "SNOWFLAKE_LOAD_USER=loader",
            "-e",
            "SNOWFLAKE_LOAD_PASSWORD=not-used",
            "-e",
            "SNOWFLAKE_LOAD_WAREHOUSE=LOADING",
        ],
        &[],
    );
    // Without Snowflake the image has nowhere to write: it says so, before connecting, instead
    // of creating a DuckDB file in the container.
    let out = docker(&["run", "--rm", "-e", url, &image]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("this build has no embedded warehouse"),
        "{}",
        out.stderr
    );
    // The catalog is built in: printed without any server.
    let catalog = docker(&["run", "--rm", &image, "--print-catalog"]);
    assert_eq!(catalog.code, Some(0), "{catalog:?}");
    assert!(catalog.stdout.contains("salesforce"), "{}", catalog.stdout);
}

/// pg-replicate in its container as the CronJob runs it (read-only root, /tmp a scratch
/// volume): the TLS-only PostgreSQL verified by name with the CA mounted, Snowflake's emulator
/// and the S3 server reached by name, key-pair login. The first run copies every table through
/// the stage, the second merges a change.
#[test]
fn pg_replicate_container_replicates_over_tls_into_snowflake_through_s3() {
    let Some(image) = image("pg-replicate") else {
        return;
    };
    let Some(server) = postgres::tls() else {
        return;
    };
    let (Some(snow), Some(s3)) = (fakesnow::server(), moto::moto()) else {
        return;
    };
    snow.use_s3(&s3.endpoint);
    let files = server.tls.as_ref().unwrap();
    let db = server.seeded("container_replicate");
    let database = snow.database("container_replicate");
    let bucket = format!("container-replicate-{}", std::process::id());
    let empty = tempfile::tempdir().unwrap();
    s3.upload_dir(&bucket, "", empty.path());
    let secret = "aws-Secret-of-the-replicate-container";
    let key = test_servers::keys::rsa_private_key(2048);
    snow.run_sql(&format!(
        "ALTER USER replicator SET RSA_PUBLIC_KEY = '{}'",
        test_servers::keys::public_key_for_alter_user(&key)
    ));
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    let url = server.url_for(
        "localhost",
        postgres::PASSWORD_IN_URL,
        &db,
        "sslmode=verify-full&sslrootcert=/certs/ca.pem",
    );
    let replicate = || {
        let mut command = vec![
            "run".to_owned(),
            "--rm".to_owned(),
            "--network".to_owned(),
            "host".to_owned(),
            "--read-only".to_owned(),
            "--tmpfs".to_owned(),
            "/tmp".to_owned(),
            "--add-host".to_owned(),
            "snowflake.test:127.0.0.1".to_owned(),
            "--add-host".to_owned(),
            "objects.test:127.0.0.1".to_owned(),
            "-v".to_owned(),
            format!("{}:/certs/ca.pem:ro", files.ca.display()),
        ];
        for (name, value) in [
            ("HEROKU_POSTGRESQL_URL", url.clone()),
            ("SNOWFLAKE_ACCOUNT", "xy12345".to_owned()),
            ("SNOWFLAKE_LOAD_USER", "replicator".to_owned()),
            ("SNOWFLAKE_LOAD_PRIVATE_KEY", key.clone()),
            ("SNOWFLAKE_LOAD_WAREHOUSE", "LOADING".to_owned()),
            ("SNOWFLAKE_LOAD_DATABASE", database.clone()),
            (
                "SNOWFLAKE_URL",
                format!("http://snowflake.test:{}", port_of(snow.base_url())),
            ),
            ("PG_REPLICATE_STAGE_URL", format!("s3://{bucket}/extracts")),
            (
                "S3_ENDPOINT_URL",
                format!("http://objects.test:{}", port_of(&s3.endpoint)),
            ),
            ("AWS_ACCESS_KEY_ID", "test-key".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", secret.to_owned()),
        ] {
            command.push("-e".to_owned());
            command.push(format!("{name}={value}"));
        }
        command.push(image.clone());
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        let out = docker(&args);
        assert_eq!(out.code, Some(0), "{out:?}");
        for secret in [secret, &key_body[..40], "s3cret"] {
            assert!(!out.stderr.contains(secret), "{}", out.stderr);
            assert!(!out.stdout.contains(secret), "{}", out.stdout);
        }
        let report: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
        report
    };
    let account = |report: &serde_json::Value| {
        report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == "salesforce.account")
            .unwrap_or_else(|| panic!("no account in {report:#}"))
            .clone()
    };

    let first = replicate();
    assert_eq!(first["tables_failed"], 0, "{first:#}");
    assert_eq!(account(&first)["mode"], "full", "{first:#}");
    assert_eq!(account(&first)["inserted"], 5, "{first:#}");
    assert_eq!(
        snow.events_of("login", "REPLICATOR").last().unwrap()["authenticator"],
        "SNOWFLAKE_JWT"
    );
    assert!(
        s3.keys(&bucket, "extracts/salesforce.account/")
            .iter()
            .any(|k| k.ends_with(".csv.gz")),
        "no extract in the bucket"
    );

    server.psql(
        &db,
        "UPDATE salesforce.account SET name = 'Acme Containers', \
         systemmodstamp = now() + interval '1 second' WHERE sfid = '0011000000AcmeAAA'",
    );
    let second = replicate();
    assert_eq!(account(&second)["mode"], "incremental", "{second:#}");
    assert_eq!(account(&second)["updated"], 1, "{second:#}");
    let reply = snow.run_sql(&format!(
        "SELECT NAME FROM {database}.ORGM.ACCOUNT WHERE SFID = '0011000000AcmeAAA'"
    ));
    assert_eq!(reply["data"]["rowset"][0][0], "Acme Containers", "{reply}");
}
