#!/usr/bin/env python3
"""A stand-in Mattermost incoming webhook for the demo: prints each post it receives.

Usage: webhook-receiver.py PORT_FILE   (binds a free loopback port and writes it to PORT_FILE)
"""
import http.server
import json
import sys


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        post = json.loads(body)
        print(f"--- Mattermost received a post as {post.get('username')!r}:", flush=True)
        print(post["text"], flush=True)
        print("---", flush=True)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
with open(sys.argv[1], "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
