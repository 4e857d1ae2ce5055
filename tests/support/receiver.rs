//! A local HTTP server that plays a webhook endpoint: it answers each request with the next
//! scripted reply and records what arrived.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum Reply {
    Status {
        code: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// Holds the connection without answering.
    Hang(Duration),
}

impl Reply {
    pub fn ok() -> Self {
        Reply::status(200, "ok")
    }

    pub fn status(code: u16, body: &str) -> Self {
        Reply::Status {
            code,
            body: body.to_owned(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let Reply::Status { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }
}

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("request body is JSON")
    }
}

pub struct Receiver {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Serves `script` in order; once it runs out, every further request gets the last reply.
    pub fn start(script: Vec<Reply>) -> Receiver {
        Receiver::start_on("127.0.0.1:0", script)
    }

    pub fn start_on(addr: &str, script: Vec<Reply>) -> Receiver {
        let server = tiny_http::Server::http(addr).expect("bind receiver");
        let port = server.server_addr().to_ip().expect("ip listener").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        thread::spawn(move || {
            let mut replies = script.into_iter().peekable();
            let mut last = Reply::ok();
            for mut request in server.incoming_requests() {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                log.lock().unwrap().push(Received {
                    method: request.method().to_string(),
                    path: request.url().to_owned(),
                    content_type: request
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv("Content-Type"))
                        .map(|h| h.value.to_string()),
                    body,
                });
                if let Some(reply) = replies.next() {
                    last = reply;
                }
                match last.clone() {
                    Reply::Status {
                        code,
                        body,
                        headers,
                    } => {
                        let mut response =
                            tiny_http::Response::from_string(body).with_status_code(code);
                        for (name, value) in headers {
                            response.add_header(
                                tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
                                    .unwrap(),
                            );
                        }
                        let _ = request.respond(response);
                    }
                    Reply::Hang(how_long) => {
                        thread::spawn(move || {
                            thread::sleep(how_long);
                            drop(request);
                        });
                    }
                }
            }
        });
        Receiver { port, received }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}
