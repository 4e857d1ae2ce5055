//! The OpenLineage receiver (`tests/lineage/receiver.py`), one per test: it checks each event
//! with the spec's own classes (openlineage-python, from the project venv) and keeps it, with
//! what is wrong with it, for the test to read.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{missing, repo, venv_tool};

pub struct Receiver {
    pub url: String,
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

/// One event as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub authorization: Option<String>,
    pub event: Value,
    pub problems: Vec<String>,
}

impl Receiver {
    /// A new receiver, or `None` when the venv's Python is missing outside CI.
    pub fn start() -> Option<Receiver> {
        let Some(python) = venv_tool("python") else {
            missing("the project venv's python with openlineage-python (run `make venv`)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let child = Command::new(python)
            .arg(repo().join("tests/lineage/receiver.py"))
            .arg(&port_file)
            .stdin(Stdio::null())
            .spawn()
            .expect("start the lineage receiver");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|text| text.trim().parse::<u16>().ok())
            {
                break port;
            }
            assert!(
                Instant::now() < deadline,
                "the lineage receiver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        Some(Receiver {
            url: format!("http://127.0.0.1:{port}"),
            port,
            child,
            _dir: dir,
        })
    }

    /// Every event received so far, in order.
    pub fn events(&self) -> Vec<Received> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        write!(stream, "GET /__events HTTP/1.0\r\nHost: receiver\r\n\r\n").unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).expect("read the events");
        let (_, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
        let list: Vec<Value> = serde_json::from_str(body).expect("JSON events");
        list.into_iter()
            .map(|e| Received {
                path: e["path"].as_str().unwrap_or_default().to_owned(),
                authorization: e["authorization"].as_str().map(str::to_owned),
                problems: e["problems"]
                    .as_array()
                    .map(|p| {
                        p.iter()
                            .map(|s| s.as_str().unwrap_or("").to_owned())
                            .collect()
                    })
                    .unwrap_or_default(),
                event: e["event"].clone(),
            })
            .collect()
    }

    /// The events received, each checked valid by the spec's classes.
    #[track_caller]
    pub fn valid_events(&self) -> Vec<Value> {
        self.events()
            .into_iter()
            .map(|received| {
                assert!(
                    received.problems.is_empty(),
                    "an event the spec refuses: {:?}\n{:#}",
                    received.problems,
                    received.event
                );
                received.event
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
