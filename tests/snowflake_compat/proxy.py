"""A Snowflake compatibility proxy in front of fakesnow, for the tests.

fakesnow (PyPI) speaks Snowflake's REST protocol on top of DuckDB, but its replies lack what real
Snowflake sends and clients rely on. This proxy sits in front of it and fills those gaps, so that
the product under test talks to it exactly as it talks to Snowflake (the product itself carries
no fakesnow workaround):

- login replies get sessionId, masterToken, validityInSeconds, masterValidityInSeconds and
  sessionInfo.roleName / warehouseName; a login's databaseName / schemaName set the session's
  context only if they exist, as in Snowflake (fakesnow would create them);
- statement replies get returned, version and finalRoleName; error replies get age,
  internalError and queryId; a statement that asks for JSON results (its GO_QUERY_RESULT_FORMAT,
  PYTHON_CONNECTOR_QUERY_RESULT_FORMAT or QUERY_RESULT_FORMAT parameter) gets them in
  Snowflake's JSON encodings (fakesnow always answers a query in Arrow);
- the statements of one session reach fakesnow one at a time (fakesnow runs a session on one
  DuckDB cursor, which threads must not share; Snowflake runs them concurrently);
- COPY INTO <table>, which fakesnow cannot run as clients send it (a transforming
  `FROM (SELECT $1, ..., METADATA$FILENAME ...)`, ON_ERROR = 'CONTINUE'), is answered by the
  proxy itself (copy_into.py, whose doc says what it does and does not emulate): it reads the
  `file://` stage that a CREATE STAGE passing through here named, parses it with the CREATE
  FILE FORMAT's options, inserts the good rows into fakesnow on the caller's session (inside its
  transaction, if one is open), keeps per-table load metadata (committed with the transaction)
  and answers with Snowflake's documented per-file result. METADATA$FILENAME and the result's
  `file`: Snowflake's docs say "Includes the full path to the data file" (older wording: "the
  path to the data file in the stage"), which is ambiguous for an external stage; the emulator
  takes the first reading (the object's key, e.g. `prefix/path` for `s3://bucket/prefix/path`)
  and names a file in the result by its full URL (`s3://bucket/prefix/path`, here
  `file:///dir/path`), as Snowflake's examples show.
- `CREATE TEMPORARY TABLE db.schema.t`, which fakesnow hands to DuckDB (whose temporary tables
  cannot be named with a database), creates an ordinary table dropped when the session ends
  (temporary.py, whose doc says what differs: other sessions can see it);
- key-pair and programmatic-access-token logins are checked as Snowflake checks them
  (user_auth.py, whose doc says how far): `ALTER USER … SET RSA_PUBLIC_KEY` and `… ADD
  PROGRAMMATIC ACCESS TOKEN` passing through here register what a later login must present;
  a JWT with a wrong key, claim, signature or lifetime is refused with 390144.

It can also misbehave on demand, the way Snowflake and the network sometimes do, so that the
client's handling of each case runs for real: answer "still running" (333334) with a result URL to
poll, hold a statement until it is aborted, fail with an HTTP status before or after running the
statement, expire the session (its token answers 390112 until the client renews it with the master
token at /session/token-request, which keeps the session and its transaction), reject a login or
a renewal, or split a result into chunks to download.

Started by crates/test-servers once per test binary: it starts fakesnow itself, prints
"READY <proxy port> <fakesnow port>" on stdout, and exits (stopping fakesnow) when its parent
process is gone.

Test control, JSON over HTTP:
  POST /__compat/rules      {"on": "statement" | "login", "match": "<substring>", "times": n,
                             "action": "<name>", ...}  see Rule in crates/test-servers
  POST /__compat/databases  {"name": "<name>"}  creates a database with a PUBLIC schema
  POST /__compat/s3         {"endpoint": "<url>"}  the S3-compatible server s3:// stages are read
                            from (COPY INTO)
  POST /__compat/age_loads  {"database": "<name>", "days": n}  that database's loads as if made
                            n days earlier (COPY_HISTORY keeps 14 days, load metadata 64)
  GET  /__compat/events?match=<substring>  what the proxy saw (statements, polls, aborts, logins)
"""

from __future__ import annotations

import argparse
import base64
import datetime
import gzip
import http.client
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

import pyarrow as pa

import copy_into
import functions
import temporary
import user_auth

IN_PROGRESS_ASYNC = "333334"
IN_PROGRESS = "333333"
PLAIN_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
EPOCH_DAY = datetime.date(1970, 1, 1)


class State:
    """Everything the handler threads share, under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.rules: list[dict] = []
        self.events: list[dict] = []
        # query id -> {"reply", "polls", "request_id", "aborted"}
        self.pending: dict[str, dict] = {}
        self.aborted: set[str] = set()
        # chunk id -> (key, gzipped bytes)
        self.chunks: dict[str, tuple[str, bytes]] = {}
        # session token -> {"role", "warehouse", "lock"}
        self.sessions: dict[str, dict] = {}
        # Session renewal: master token -> the session's token at the backend; a token handed
        # out by a renewal -> the backend's; tokens past their validity (390112 until renewed).
        self.masters: dict[str, str] = {}
        self.aliases: dict[str, str] = {}
        self.expired: set[str] = set()

    def backend_token(self, token: str) -> str:
        with self.lock:
            return self.aliases.get(token, token)

    def take_rule(self, on: str, text: str, user: str | None = None) -> dict | None:
        """The first live rule for `text`; one with a "user" applies to that user's sessions only."""
        with self.lock:
            for rule in self.rules:
                if rule.get("user") not in (None, user):
                    continue
                if rule.get("on") == on and rule.get("match", "") in text and rule.get("times", 1) != 0:
                    if rule.get("times", 1) > 0:
                        rule["times"] = rule.get("times", 1) - 1
                    return dict(rule)
        return None

    def record(self, event: dict) -> None:
        event["at"] = time.time()
        with self.lock:
            self.events.append(event)

    def session(self, token: str) -> dict:
        with self.lock:
            return self.sessions.setdefault(
                token, {"role": "PUBLIC", "warehouse": None, "lock": threading.Lock()}
            )


STATE = State()
USERS = user_auth.Users()
FAKESNOW = ("127.0.0.1", 0)
PROXY_PORT = 0
# The grant emulator models users (their keys included); fakesnow does not, so for it the
# proxy keeps the keys itself (user_auth.py).
BACKEND_MODELS_USERS = False


def backend_user(user: str) -> dict:
    """The user's record in the grant emulator's model (empty when it has none)."""
    status, raw = forward("GET", "/__grants/state", None, {})
    users = (json.loads(raw).get("users") or {}) if status == 200 else {}
    return users.get(user) or users.get(user.upper()) or {}


def backend_user_keys(user: str) -> list[str]:
    """The user's public keys (base64 DER) as the grant emulator's model holds them."""
    record = backend_user(user)
    return [k for k in (record.get("rsa_public_key"), record.get("rsa_public_key_2")) if k]


def backend_user_type(user: str) -> str | None:
    """The user's TYPE as the grant emulator's model holds it (None: unset, a PERSON)."""
    return backend_user(user).get("type")


def ident(name: str) -> str:
    return name if PLAIN_IDENT.match(name) else '"' + name.replace('"', '""') + '"'


def forward(method: str, target: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*FAKESNOW, timeout=600)
    try:
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def run_sql(token: str, sql: str) -> dict:
    """A statement on a session, sent to fakesnow directly."""
    status, body = forward(
        "POST",
        "/queries/v1/query-request?requestId=" + str(uuid.uuid4()),
        json.dumps({"sqlText": sql}).encode(),
        {"Content-Type": "application/json", "Authorization": f'Snowflake Token="{token}"'},
    )
    return json.loads(body)


def token_of(headers) -> str:
    """The session token a request presents, as the client sent it."""
    auth = headers.get("Authorization") or ""
    match = re.match(r'^Snowflake Token="(.*)"$', auth)
    return match.group(1) if match else ""


def backend_token_of(headers) -> str:
    """The session token at the backend that the presented one stands for (after renewals)."""
    return STATE.backend_token(token_of(headers))


SESSION_EXPIRED = {"data": None, "code": "390112", "message": "Your session has expired. Please login again.", "success": False, "headers": None}


# --- Snowflake's JSON result encodings ----------------------------------------------------------


def seconds_text(nanos: int) -> str:
    sign = "-" if nanos < 0 else ""
    whole, fraction = divmod(abs(nanos), 1_000_000_000)
    return f"{sign}{whole}.{fraction:09d}"


def json_value(sf_type: str, value):
    """One Arrow value as Snowflake's JSON result format writes it: text, or None for NULL."""
    if value is None:
        return None
    if sf_type.startswith("timestamp"):
        if value.get("epoch") is None:
            # fakesnow encodes a NULL timestamp as a struct of NULLs
            return None
        text = seconds_text(value["epoch"] * 1_000_000_000 + (value.get("fraction") or 0))
        if sf_type == "timestamp_tz":
            text += f" {value.get('timezone', 1440)}"
        return text
    if sf_type == "date":
        return str((value - EPOCH_DAY).days)
    if sf_type == "time":
        return seconds_text(int(value))
    if sf_type == "boolean":
        return "1" if value else "0"
    if sf_type == "binary":
        return bytes(value).hex().upper()
    if sf_type == "real":
        return repr(float(value))
    return str(value)


def arrow_to_rowset(rowset_base64: str, rowtype: list[dict]) -> list[list]:
    if not rowset_base64:
        return []
    table = pa.ipc.open_stream(base64.b64decode(rowset_base64)).read_all()
    columns = [
        [json_value(rowtype[i]["type"], v) for v in column.to_pylist()]
        for i, column in enumerate(table.columns)
    ]
    return [list(row) for row in zip(*columns)] if columns else []


def fill_gaps(reply: dict, session: dict, wants_json: bool) -> dict:
    """What Snowflake sends and fakesnow leaves out."""
    data = reply.get("data")
    if reply.get("success") and isinstance(data, dict):
        if wants_json and "rowsetBase64" in data:
            data["rowset"] = arrow_to_rowset(data.pop("rowsetBase64"), data.get("rowtype", []))
            data["queryResultFormat"] = "json"
        rowset = data.get("rowset")
        data.setdefault("returned", len(rowset) if rowset is not None else data.get("total", 0))
        data.setdefault("version", 1)
        data.setdefault("finalRoleName", session["role"])
        data.setdefault("finalWarehouseName", session["warehouse"])
    elif not reply.get("success"):
        data = data if isinstance(data, dict) else {}
        data.setdefault("errorCode", reply.get("code"))
        data.setdefault("sqlState", "")
        data.setdefault("age", 0)
        data.setdefault("internalError", False)
        data.setdefault("queryId", str(uuid.uuid4()))
        reply["data"] = data
    return reply


def error_reply(code: str, sql_state: str, message: str) -> dict:
    return {
        "data": {"errorCode": code, "sqlState": sql_state, "age": 0, "internalError": False, "queryId": str(uuid.uuid4())},
        "code": code,
        "message": message,
        "success": False,
        "headers": None,
    }


def cancelled_reply(query_id: str) -> dict:
    return {
        "data": {
            "errorCode": "000604",
            "sqlState": "57014",
            "age": 0,
            "internalError": False,
            "queryId": query_id,
        },
        "code": "000604",
        "message": "SQL execution canceled",
        "success": False,
    }


# --- the server ----------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    # responses

    def send_bytes(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # the client gave up on the request (a timeout or a cancellation): nothing to tell it
            pass

    def send_json(self, obj, status: int = 200) -> None:
        self.send_bytes(status, json.dumps(obj).encode(), "application/json")

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        # Snowflake's drivers may gzip what they send; it is forwarded plain.
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        return body

    # routing

    def do_POST(self):  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        body = self.body()
        if url.path == "/session/v1/login-request":
            return self.login(url, body)
        if url.path == "/queries/v1/query-request":
            return self.statement(url, body)
        if url.path == "/queries/v1/abort-request":
            return self.abort(body)
        if url.path == "/session/token-request":
            return self.renew(body)
        if url.path == "/__compat/rules":
            with STATE.lock:
                STATE.rules.append(json.loads(body))
            return self.send_json({"ok": True})
        if url.path == "/__compat/databases":
            return self.create_database(json.loads(body)["name"])
        if url.path == "/__compat/s3":
            copy_into.configure_s3(json.loads(body)["endpoint"])
            return self.send_json({"ok": True})
        if url.path == "/__compat/age_loads":
            request = json.loads(body)
            aged = copy_into.age_loads(request["database"], int(request["days"]))
            return self.send_json({"ok": True, "aged": aged})
        if url.path == "/session":
            # the session's temporary tables end with it (temporary.py), before its token does
            token = backend_token_of(self.headers)
            with STATE.lock:
                names = sorted(STATE.session(token).pop("temporary", set()))
            for name in names:
                run_sql(token, f"DROP TABLE IF EXISTS {name}")
        status, reply = forward("POST", self.path, body, self.forwarded_headers())
        if url.path == "/session":
            STATE.record({"kind": "close", "text": ""})
            # a session that ends inside a transaction rolls it back, its COPYs' metadata too
            copy_into.after_transaction_statement(STATE.session(backend_token_of(self.headers)), "rollback")
        self.send_bytes(status, reply, "application/json")

    def do_GET(self):  # noqa: N802
        url = urlsplit(self.path)
        result = re.match(r"^/queries/([^/]+)/result$", url.path)
        if result:
            return self.result(result.group(1))
        chunk = re.match(r"^/__compat/chunks/([^/]+)$", url.path)
        if chunk:
            return self.chunk(chunk.group(1))
        if url.path == "/__compat/events":
            wanted = dict(parse_qsl(url.query)).get("match", "")
            with STATE.lock:
                events = [e for e in STATE.events if wanted in e.get("text", "")]
            return self.send_json(events)
        status, reply = forward("GET", self.path, None, self.forwarded_headers())
        self.send_bytes(status, reply, "application/json")

    def forwarded_headers(self) -> dict[str, str]:
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")}
        if self.headers.get("Authorization"):
            headers["Authorization"] = f'Snowflake Token="{backend_token_of(self.headers)}"'
        return headers

    def presents_expired_token(self) -> bool:
        with STATE.lock:
            return token_of(self.headers) in STATE.expired

    # Snowflake endpoints

    def login(self, url, body: bytes) -> None:
        data = json.loads(body).get("data", {})
        user = data.get("LOGIN_NAME", "")
        STATE.record({"kind": "login", "text": user, "authenticator": data.get("AUTHENTICATOR") or "PASSWORD"})
        try:
            USERS.check_login(data)
        except user_auth.AuthError as e:
            STATE.record({"kind": "login_refused", "text": user, "reason": e.reason})
            return self.send_json(
                {"data": {"nextAction": "RETRY_LOGIN", "errorCode": e.code, "sqlState": "08001"}, "code": e.code, "message": e.message, "success": False, "headers": None}
            )
        rule = STATE.take_rule("login", user)
        if rule and rule["action"] == "http_status":
            return self.send_bytes(rule["status"], b"<html>unavailable</html>", "text/html")
        if rule and rule["action"] == "login_error":
            return self.send_json(
                {
                    "data": {"nextAction": "RETRY_LOGIN", "authnMethod": "USERNAME_PASSWORD", "errorCode": rule["code"]},
                    "code": rule["code"],
                    "message": rule["message"],
                    "success": False,
                    "headers": None,
                }
            )
        params = dict(parse_qsl(url.query))
        context = {key: params.pop(key, None) for key in ("databaseName", "schemaName")}
        status, raw = forward(
            "POST", url.path + "?" + urlencode(params), body, {"Content-Type": "application/json"}
        )
        reply = json.loads(raw)
        if reply.get("success"):
            token = reply["data"]["token"]
            session = STATE.session(token)
            session["role"] = (params.get("roleName") or "PUBLIC").upper()
            session["user"] = user
            session["warehouse"] = params.get("warehouse")
            # Session parameters a connector sets at login (the Python connector's
            # session_parameters): the query tag goes with every statement of the session, as
            # QUERY_HISTORY's QUERY_TAG column shows it.
            session["query_tag"] = (data.get("SESSION_PARAMETERS") or {}).get("QUERY_TAG") or ""
            info = reply["data"].setdefault("sessionInfo", {})
            for keyword, key, info_key in (("DATABASE", "databaseName", "databaseName"), ("SCHEMA", "schemaName", "schemaName")):
                name = context[key]
                if name and run_sql(token, f"USE {keyword} {ident(name)}").get("success"):
                    info[info_key] = name.upper() if PLAIN_IDENT.match(name) else name
            info["roleName"] = session["role"]
            info["warehouseName"] = session["warehouse"]
            reply["data"].setdefault("sessionId", random.randint(1, 2**53))
            reply["data"].setdefault("masterToken", secrets.token_urlsafe(32))
            with STATE.lock:
                STATE.masters[reply["data"]["masterToken"]] = token
            reply["data"].setdefault("validityInSeconds", 3600)
            reply["data"].setdefault("masterValidityInSeconds", 14400)
        self.send_json(reply, status)

    def statement(self, url, body: bytes) -> None:
        request = json.loads(body)
        sql = request.get("sqlText", "")
        request_id = dict(parse_qsl(url.query)).get("requestId", "")
        parameters = request.get("parameters") or {}
        retry_count = dict(parse_qsl(url.query)).get("retryCount")
        token = backend_token_of(self.headers)
        session = STATE.session(token)
        STATE.record({"kind": "statement", "text": sql, "request_id": request_id, "retry_count": retry_count, "parameters": parameters, "query_tag": session.get("query_tag", "")})
        rule = STATE.take_rule("statement", sql, session.get("user")) or {}
        action = rule.get("action")

        if action == "http_status" and not rule.get("after_running"):
            return self.failure_status(rule)
        if action == "session_expired":
            with STATE.lock:
                STATE.expired.add(token_of(self.headers))
        if self.presents_expired_token():
            return self.send_json(SESSION_EXPIRED)
        if action == "hang":
            deadline = time.time() + rule.get("seconds", 60)
            with STATE.lock:
                while request_id not in STATE.aborted and time.time() < deadline:
                    STATE.lock.wait(timeout=max(0.0, deadline - time.time()))
                was_aborted = request_id in STATE.aborted
            if was_aborted:
                return self.send_json(cancelled_reply(str(uuid.uuid4())))

        try:
            answer = USERS.statement(sql, keys_in_backend=BACKEND_MODELS_USERS)
        except user_auth.AuthError as e:
            return self.send_json(error_reply(e.code, "22023", e.message))
        if answer is not None:
            body = json.dumps(dict(request, sqlText=answer)).encode()
        elif (emulated := functions.emulate(sql)) is not None:
            body = json.dumps(dict(request, sqlText=emulated)).encode()
        elif (created := temporary.emulate(sql)) is not None:
            text, name = created
            body = json.dumps(dict(request, sqlText=text)).encode()
            with STATE.lock:
                session.setdefault("temporary", set()).add(name)
        with session["lock"]:
            if copy_into.is_copy_into_table(sql) or copy_into.is_copy_history(sql) or copy_into.is_alter_stage(sql):
                status, raw = self.emulate_copy(token, session, request, sql, rule)
            else:
                status, raw = forward("POST", self.path, body, self.forwarded_headers())
                self.follow(token, session, sql, raw)
        try:
            reply = json.loads(raw)
        except ValueError:
            return self.send_bytes(status, raw, "text/plain")
        wants_json = any(
            str(parameters.get(name, "")).upper() == "JSON"
            for name in ("GO_QUERY_RESULT_FORMAT", "PYTHON_CONNECTOR_QUERY_RESULT_FORMAT", "QUERY_RESULT_FORMAT")
        )
        reply = fill_gaps(reply, session, wants_json)

        if action == "http_status":
            return self.failure_status(rule)
        if action == "still_running" and reply.get("success"):
            query_id = reply["data"].get("queryId") or str(uuid.uuid4())
            with STATE.lock:
                STATE.pending[query_id] = {"reply": reply, "polls": rule.get("polls", 1), "request_id": request_id, "aborted": False}
                if rule.get("expire_while_running"):
                    # the session's validity ends while the statement runs: polls get 390112
                    STATE.expired.add(token_of(self.headers))
            return self.send_json(
                {
                    "code": IN_PROGRESS_ASYNC,
                    "message": "Asynchronous execution in progress. Use provided query id to perform query monitoring and management.",
                    "success": True,
                    "data": {"queryId": query_id, "getResultUrl": f"/queries/{query_id}/result", "queryAbortsAfterSecs": 300, "progressDesc": None},
                }
            )
        if action == "chunked" and reply.get("success"):
            self.split_into_chunks(reply, rule.get("rows_per_chunk", 1))
        self.send_json(reply, status)

    def emulate_copy(self, token: str, session: dict, request: dict, sql: str, rule: dict) -> tuple[int, bytes]:
        """COPY INTO <table>, which fakesnow cannot run (copy_into.py); its result is a query
        sent to fakesnow in the original request's place, so it is encoded as Snowflake's are.
        Also INFORMATION_SCHEMA.COPY_HISTORY, from the same load records."""
        query = self.session_query(token)
        if copy_into.is_alter_stage(sql):
            try:
                text = copy_into.alter_stage(sql, copy_into.Session(query, session).context())
            except copy_into.SqlError as e:
                return 200, json.dumps(error_reply(e.code, e.sql_state, e.message)).encode()
            return forward("POST", self.path, json.dumps(dict(request, sqlText=text)).encode(), self.forwarded_headers())
        if copy_into.is_copy_history(sql):
            try:
                text = copy_into.copy_history_sql(sql, copy_into.Session(query, session).context())
            except copy_into.SqlError as e:
                return 200, json.dumps(error_reply(e.code, e.sql_state, e.message)).encode()
            return forward("POST", self.path, json.dumps(dict(request, sqlText=text)).encode(), self.forwarded_headers())
        # A listed file gone from the stage when the COPY runs: not loaded, and (ON_ERROR =
        # CONTINUE) left out of the result.
        vanished = rule.get("file") if rule.get("action") == "vanish" else None
        try:
            rows = copy_into.copy_into(copy_into.Session(query, session), sql, vanished)
        except copy_into.SqlError as e:
            return 200, json.dumps(error_reply(e.code, e.sql_state, e.message)).encode()
        except Exception as e:  # noqa: BLE001 - an emulator bug must reach the test, not hang it
            return 200, json.dumps(error_reply("000603", "XX000", f"COPY emulator failed: {type(e).__name__}: {e}")).encode()
        request = dict(request, sqlText=copy_into.result_sql(rows))
        return forward("POST", self.path, json.dumps(request).encode(), self.forwarded_headers())

    def session_query(self, token: str):
        def query(text: str) -> list[list]:
            reply = run_sql(token, text)
            if not reply.get("success"):
                data = reply.get("data") or {}
                raise copy_into.SqlError(str(reply.get("code")), data.get("sqlState", ""), reply.get("message", ""))
            data = reply.get("data") or {}
            if "rowsetBase64" in data:
                return arrow_to_rowset(data["rowsetBase64"], data.get("rowtype", []))
            return data.get("rowset") or []

        return query

    def follow(self, token: str, session: dict, sql: str, raw: bytes) -> None:
        """What the COPY emulation must know of the statements fakesnow ran: stages, file
        formats, and transactions (load metadata is kept only when its COPY commits)."""
        transaction = copy_into.transaction_statement(sql)
        if transaction is None and not copy_into.is_create(sql):
            return
        try:
            if not json.loads(raw).get("success"):
                return
        except ValueError:
            return
        if transaction is not None:
            copy_into.after_transaction_statement(session, transaction)
            return
        context = run_sql(token, "SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()").get("data") or {}
        row = arrow_to_rowset(context.get("rowsetBase64", ""), context.get("rowtype", []))[0]
        try:
            copy_into.remember_create(sql, (row[0] or "", row[1] or ""))
        except copy_into.SqlError:
            pass  # a form the emulator does not read: a COPY through it then says what is missing

    def failure_status(self, rule: dict) -> None:
        extra = {"Retry-After": str(rule["retry_after"])} if "retry_after" in rule else {}
        self.send_bytes(rule["status"], b"<html><body>upstream unavailable</body></html>", "text/html", extra)

    def split_into_chunks(self, reply: dict, per_chunk: int) -> None:
        data = reply["data"]
        rows = data.get("rowset") or []
        data["rowset"] = rows[:per_chunk]
        key = secrets.token_hex(8)
        chunks = []
        for start in range(per_chunk, len(rows), per_chunk):
            part = rows[start : start + per_chunk]
            text = ",".join(json.dumps(row) for row in part).encode()
            chunk_id = str(uuid.uuid4())
            packed = gzip.compress(text)
            with STATE.lock:
                STATE.chunks[chunk_id] = (key, packed)
            chunks.append(
                {
                    "url": f"http://127.0.0.1:{PROXY_PORT}/__compat/chunks/{chunk_id}?X-Amz-Signature=presigned-{secrets.token_hex(8)}",
                    "rowCount": len(part),
                    "uncompressedSize": len(text),
                    "compressedSize": len(packed),
                }
            )
        data["chunks"] = chunks
        data["chunkHeaders"] = {"x-compat-chunk-key": key}
        data["returned"] = len(data["rowset"])

    def chunk(self, chunk_id: str) -> None:
        with STATE.lock:
            key, packed = STATE.chunks.get(chunk_id, (None, b""))
        STATE.record({"kind": "chunk", "text": chunk_id})
        if key is None or self.headers.get("x-compat-chunk-key") != key:
            return self.send_bytes(403, b"<Error>AccessDenied</Error>", "application/xml")
        # served as stored objects are: gzip bytes without a Content-Encoding header
        self.send_bytes(200, packed, "application/octet-stream")

    def result(self, query_id: str) -> None:
        STATE.record({"kind": "poll", "text": query_id})
        if self.presents_expired_token():
            return self.send_json(SESSION_EXPIRED)
        with STATE.lock:
            pending = STATE.pending.get(query_id)
            if pending is None:
                reply = {"data": {"errorCode": "000709", "sqlState": "02000", "age": 0, "internalError": False, "queryId": query_id},
                         "code": "000709", "message": f"Statement {query_id} not found", "success": False}
            elif pending["aborted"] or pending["request_id"] in STATE.aborted:
                reply = cancelled_reply(query_id)
            elif pending["polls"] != 0:
                if pending["polls"] > 0:
                    pending["polls"] -= 1
                reply = {"code": IN_PROGRESS, "message": "Query is still running", "success": True,
                         "data": {"queryId": query_id, "getResultUrl": f"/queries/{query_id}/result"}}
            else:
                reply = pending["reply"]
        self.send_json(reply)

    def renew(self, body: bytes) -> None:
        """POST /session/token-request: a new session token for the same session, given the
        master token (as Snowflake's connectors renew on 390112). The old token stops working."""
        request = json.loads(body or b"{}")
        master = token_of(self.headers)
        with STATE.lock:
            backend = STATE.masters.get(master)
        user = STATE.session(backend).get("user", "") if backend else ""
        STATE.record({"kind": "renew", "text": user})
        rule = STATE.take_rule("renew", user)
        if backend is None or (rule and rule["action"] == "renew_error") or request.get("requestType") != "RENEW":
            return self.send_json(
                {"data": None, "code": "390114", "message": "Authentication token has expired.  The user must authenticate again.", "success": False, "headers": None}
            )
        fresh = secrets.token_urlsafe(32)
        with STATE.lock:
            STATE.aliases[fresh] = backend
            STATE.expired.add(request.get("oldSessionToken", ""))
        self.send_json(
            {
                "data": {"sessionToken": fresh, "validityInSecondsST": 3600, "masterToken": master, "validityInSecondsMT": 14400, "sessionId": random.randint(1, 2**53)},
                "code": None, "message": None, "success": True,
            }
        )

    def abort(self, body: bytes) -> None:
        request = json.loads(body or b"{}")
        request_id = request.get("requestId", "")
        STATE.record({"kind": "abort", "text": request.get("sqlText", ""), "request_id": request_id})
        with STATE.lock:
            STATE.aborted.add(request_id)
            for pending in STATE.pending.values():
                if pending["request_id"] == request_id:
                    pending["aborted"] = True
            STATE.lock.notify_all()
        self.send_json({"data": None, "code": None, "message": None, "success": True})

    def create_database(self, name: str) -> None:
        _, raw = forward(
            "POST", "/session/v1/login-request", json.dumps({"data": {"SESSION_PARAMETERS": {}}}).encode(),
            {"Content-Type": "application/json"},
        )
        token = json.loads(raw)["data"]["token"]
        created = run_sql(token, f"CREATE DATABASE IF NOT EXISTS {ident(name)}")
        if created.get("success"):
            created = run_sql(token, f"CREATE SCHEMA IF NOT EXISTS {ident(name)}.PUBLIC")
        forward("POST", "/session?delete=true", b"{}", {"Authorization": f'Snowflake Token="{token}"'})
        self.send_json({"ok": bool(created.get("success")), "reply": created})


# --- start and stop ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, child: subprocess.Popen, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if child.poll() is not None:
            sys.exit(f"fakesnow exited with {child.returncode} before it listened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"fakesnow did not listen on port {port} within {seconds} s")


def main() -> None:
    global FAKESNOW, PROXY_PORT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fakesnow", required=True, help="the fakesnow executable")
    parser.add_argument("--log", required=True, help="where fakesnow's output goes")
    args = parser.parse_args()

    parent = os.getppid()
    port = free_port()
    with open(args.log, "ab") as log:
        child = subprocess.Popen(
            [args.fakesnow, "-s", "--host", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )

    def stop(*_):
        child.terminate()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def watch_parent():
        while os.getppid() == parent:
            time.sleep(0.5)
        stop()

    threading.Thread(target=watch_parent, daemon=True).start()
    wait_for(port, child, 90)
    FAKESNOW = ("127.0.0.1", port)
    global BACKEND_MODELS_USERS
    BACKEND_MODELS_USERS = forward("GET", "/__grants/state", None, {})[0] == 200
    if BACKEND_MODELS_USERS:
        USERS.backend_keys = backend_user_keys
        USERS.backend_type = backend_user_type

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    PROXY_PORT = server.server_address[1]
    print(f"READY {PROXY_PORT} {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
