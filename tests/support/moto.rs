//! A local S3 server (moto, from the project venv) for the tests: one per test binary, a bucket
//! per test. Objects are put with boto3 from the same venv, as a real client would.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use super::{free_port, missing, spawn_server, venv_tool, wait_for_port};

pub struct Moto {
    pub endpoint: String,
}

/// The shared server, or `None` when moto is missing outside CI.
pub fn moto() -> Option<&'static Moto> {
    static MOTO: OnceLock<Option<Moto>> = OnceLock::new();
    MOTO.get_or_init(|| {
        let Some(server) = venv_tool("moto_server") else {
            missing("moto_server (run `make venv`)");
            return None;
        };
        let port = free_port();
        // The watchdog shell lives as long as this process; reaping it is the OS's job.
        // Path-style only: containers reach the server by a name of their own
        // (`objects.test`), which moto would otherwise read as a virtual-hosted bucket.
        let server = server.display().to_string();
        let watchdog = spawn_server(
            Path::new("env"),
            &[
                "S3_IGNORE_SUBDOMAIN_BUCKETNAME=true",
                &server,
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ],
        );
        std::mem::forget(watchdog);
        wait_for_port(port, "moto_server");
        Some(Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
        })
    })
    .as_ref()
}

impl Moto {
    /// Creates `bucket` and uploads every file below `dir` under `prefix`.
    pub fn upload_dir(&self, bucket: &str, prefix: &str, dir: &Path) {
        let python = venv_tool("python").expect("venv python");
        let script = r#"
import os, sys, boto3
endpoint, bucket, prefix, root = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="test-key", aws_secret_access_key="test-secret")
s3.create_bucket(Bucket=bucket)
for base, _, files in os.walk(root):
    for name in files:
        path = os.path.join(base, name)
        key = prefix + os.path.relpath(path, root).replace(os.sep, "/")
        s3.upload_file(path, bucket, key)
"#;
        let status = Command::new(python)
            .args(["-c", script, &self.endpoint, bucket, prefix])
            .arg(dir)
            .status()
            .expect("run boto3 upload");
        assert!(
            status.success(),
            "uploading {} to s3://{bucket}/{prefix} failed",
            dir.display()
        );
    }

    /// Puts one object under `key` exactly as given: keys no file system could hold included.
    pub fn put_object(&self, bucket: &str, key: &str, body: &[u8]) {
        let python = venv_tool("python").expect("venv python");
        let script = r#"
import sys, boto3
endpoint, bucket, key = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="test-key", aws_secret_access_key="test-secret")
s3.put_object(Bucket=bucket, Key=key, Body=sys.stdin.buffer.read())
listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]]
assert key in listed, f"the server stored {listed}, not {key!r}"
"#;
        let mut child = Command::new(python)
            .args(["-c", script, &self.endpoint, bucket, key])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("run boto3 put_object");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), body).unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "putting s3://{bucket}/{key} failed");
    }

    /// The keys of `bucket` below `prefix`, as the server lists them.
    #[allow(dead_code)] // not every test binary lists
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let python = venv_tool("python").expect("venv python");
        let script = r#"
import sys, boto3
endpoint, bucket, prefix = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="test-key", aws_secret_access_key="test-secret")
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for o in page.get("Contents", []):
        print(o["Key"])
"#;
        let out = Command::new(python)
            .args(["-c", script, &self.endpoint, bucket, prefix])
            .output()
            .expect("run boto3 list");
        assert!(
            out.status.success(),
            "listing s3://{bucket}/{prefix} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}
