//! A real Prometheus Pushgateway (Debian's `prometheus-pushgateway`), one per test so that the
//! groups one test's jobs push are its own, and what it exposes on `/metrics`, parsed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{free_port, missing, wait_for_port};

pub struct Pushgateway {
    pub url: String,
    child: Child,
}

/// One sample of the exposition: a metric's name, its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

const BINARY: &str = "/usr/bin/prometheus-pushgateway";

impl Pushgateway {
    /// A new Pushgateway, or `None` when it is not installed outside CI.
    pub fn start() -> Option<Pushgateway> {
        if !Path::new(BINARY).exists() {
            missing("prometheus-pushgateway (apt-get install prometheus-pushgateway)");
            return None;
        }
        let port = free_port();
        let child = Command::new(BINARY)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-pushgateway");
        wait_for_port(port, "prometheus-pushgateway");
        Some(Pushgateway {
            url: format!("http://127.0.0.1:{port}"),
            child,
        })
    }

    /// Every sample the Pushgateway exposes whose name starts with `prefix`.
    pub fn samples(&self, prefix: &str) -> Vec<Sample> {
        let address = self.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).expect("connect to the Pushgateway");
        write!(stream, "GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).expect("read /metrics");
        let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{head}"
        );
        parse(body)
            .into_iter()
            .filter(|s| s.name.starts_with(prefix))
            .collect()
    }

    /// The value of `name` in the group with exactly these grouping labels (besides the
    /// Pushgateway's own `instance=""`).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .chain([("instance".to_owned(), String::new())])
            .collect();
        self.samples(name)
            .into_iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text exposition format's samples (comments skipped; label values unescaped).
pub fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        let mut parsed = BTreeMap::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (key, after) = rest.split_once("=\"").expect("label=\"value\"");
            let mut value = String::new();
            let mut chars = after.char_indices();
            let mut end = after.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, other)) => value.push(other),
                        None => {}
                    },
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    other => value.push(other),
                }
            }
            parsed.insert(key.trim_start_matches(',').to_owned(), value);
            rest = &after[end..];
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels: parsed,
            value: value.parse().expect("a number"),
        });
    }
    samples
}
