"""What the benchmarks share: free ports, waiting for a server, and a latency-adding HTTP proxy
that stands in for the network between a pod and a cloud service."""

from __future__ import annotations

import http.client
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{what} did not listen on port {port} within {seconds} s")



class Latency:
    """An HTTP proxy that waits `seconds` before forwarding each request, and counts them."""

    def __init__(self, upstream: int, seconds: float):
        self.upstream = upstream
        self.seconds = seconds
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path = self.path.split("?")[0]
                with outer.lock:
                    outer.counts[path] = outer.counts.get(path, 0) + 1
                time.sleep(outer.seconds)
                upstream = getattr(self, "upstream_conn", None) or http.client.HTTPConnection("127.0.0.1", outer.upstream, timeout=600)
                self.upstream_conn = upstream
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
                try:
                    upstream.request(method, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                except (http.client.HTTPException, OSError):
                    self.upstream_conn = None
                    upstream.close()
                    raise
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self):  # noqa: N802
                self.handle_one("POST")

            def do_GET(self):  # noqa: N802
                self.handle_one("GET")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A client closing its connection mid-reply (a heartbeat, a session's end) is not news.
        self.server.handle_error = lambda request, address: None
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self) -> dict[str, int]:
        with self.lock:
            counts, self.counts = self.counts, {}
        return counts
