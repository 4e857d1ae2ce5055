"""Checks the compatibility proxy with Snowflake's own Python connector.

The Rust client is tested against the proxy; this makes sure the proxy speaks Snowflake and not
a dialect of its own: the official connector must read its JSON results with its own converters,
follow its "still running" replies, download its result chunks, and see Snowflake's error codes.
Run by crates/test-servers/tests/official_client.rs:

    python check_proxy.py <proxy base URL> <database>
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import os
import sys
import urllib.request
from urllib.parse import urlsplit

import snowflake.connector

JSON_RESULTS = {"PYTHON_CONNECTOR_QUERY_RESULT_FORMAT": "JSON"}


def script(base_url: str, rule: dict) -> None:
    request = urllib.request.Request(
        base_url + "/__compat/rules", data=json.dumps(rule).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request).read()


def events(base_url: str, kind: str, match: str) -> list[dict]:
    with urllib.request.urlopen(base_url + "/__compat/events?match=" + urllib.parse.quote(match)) as reply:
        return [e for e in json.load(reply) if e["kind"] == kind]


def main() -> None:
    base_url, database = sys.argv[1], sys.argv[2]
    url = urlsplit(base_url)
    conn = snowflake.connector.connect(
        account="testacct", user="official_client", password="any-password",
        host=url.hostname, port=url.port, protocol=url.scheme, database=database, schema="PUBLIC",
    )
    cur = conn.cursor()

    # The context a login asks for, set as Snowflake sets it.
    cur.execute("SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()")
    assert cur.fetchone() == (database, "PUBLIC"), "login context"

    # JSON results in Snowflake's encodings, read by the connector's own converters.
    cur.execute(
        "CREATE TABLE typed (i INT, t TEXT, ts TIMESTAMP_NTZ, d DATE, b BOOLEAN, n NUMBER(10,2), "
        "tm TIME, tz TIMESTAMP_TZ)"
    )
    cur.execute(
        "INSERT INTO typed VALUES (1, 'x', '2024-01-02 03:04:05.123', '2024-01-02', TRUE, 12.5, "
        "'03:04:05', '2024-01-02 03:04:05+00:00'), (2, NULL, NULL, NULL, FALSE, NULL, NULL, NULL)"
    )
    assert cur.rowcount == 2, f"insert count {cur.rowcount}"
    cur.execute("SELECT * FROM typed ORDER BY i", _statement_params=dict(JSON_RESULTS))
    # JSON, not Arrow: the connector's JSON converters did the reading.
    assert cur._query_result_format == "json", cur._query_result_format
    rows = cur.fetchall()
    want = [
        (
            1, "x", datetime.datetime(2024, 1, 2, 3, 4, 5, 123000), datetime.date(2024, 1, 2), True,
            decimal.Decimal("12.50"), datetime.time(3, 4, 5),
            datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        ),
        (2, None, None, None, False, None, None, None),
    ]
    assert rows == want, f"typed rows {rows!r}"
    statement = events(base_url, "statement", "SELECT * FROM typed ORDER BY i")[-1]
    assert statement["parameters"] == JSON_RESULTS, statement

    # "Still running": the connector follows the result URL until the result.
    script(base_url, {"on": "statement", "match": "AS official_async", "action": "still_running", "polls": 2, "times": 1})
    cur.execute("SELECT 42 AS official_async", _statement_params=dict(JSON_RESULTS))
    assert cur.fetchall() == [(42,)], "async result"
    assert len(events(base_url, "poll", cur.sfqid)) == 3, "polled the result URL"

    # A result in chunks, downloaded with the chunk headers.
    cur.execute("CREATE TABLE many (n INT)")
    cur.execute("INSERT INTO many VALUES " + ", ".join(f"({n})" for n in range(10)))
    script(base_url, {"on": "statement", "match": "FROM many ORDER BY n", "action": "chunked", "rows_per_chunk": 4, "times": 1})
    cur.execute("SELECT n FROM many ORDER BY n", _statement_params=dict(JSON_RESULTS))
    assert [r[0] for r in cur.fetchall()] == list(range(10)), "chunked rows"
    assert len(events(base_url, "chunk", "")) >= 2, "the rows came in chunks"

    # An expired session token: the connector renews it with the master token (same session)
    # and sends the statement again; the old token is dead afterwards.
    script(base_url, {"on": "statement", "match": "AS official_expiry", "action": "session_expired", "times": 1})
    cur.execute("SELECT 5 AS official_expiry")
    assert cur.fetchall() == [(5,)], "after renewal"
    assert len(events(base_url, "renew", "official_client")) == 1, "renewed once"
    assert len(events(base_url, "login", "official_client")) == 1, "no second login"
    cur.execute("SELECT 6")
    assert cur.fetchall() == [(6,)], "the renewed token works on"

    # Snowflake's error code and SQL state.
    try:
        cur.execute("SELECT no_such_column FROM many")
    except snowflake.connector.errors.ProgrammingError as error:
        assert error.errno == 2043 and error.sqlstate == "02000", (error.errno, error.sqlstate)
    else:
        raise AssertionError("a bad column must fail")

    # A session parameter set at login goes with every statement of that session, as Snowflake's
    # query history shows it.
    tag = json.dumps({"job": "official_client", "dag_id": "d", "task_id": "t"})
    tagged = snowflake.connector.connect(
        account="testacct", user="official_tagged", password="any-password", host=url.hostname,
        port=url.port, protocol=url.scheme, database=database, schema="PUBLIC",
        session_parameters={"QUERY_TAG": tag},
    )
    tagged.cursor().execute("SELECT 7 AS official_tagged")
    tagged.close()
    assert [e["query_tag"] for e in events(base_url, "statement", "AS official_tagged")] == [tag], "query tag"
    assert all(e["query_tag"] == "" for e in events(base_url, "statement", "SELECT 6")), "untagged session"

    check_logins(cur, dict(account="testacct", host=url.hostname, port=url.port, protocol=url.scheme, database=database, schema="PUBLIC"))

    conn.close()
    print("the official connector agrees with the proxy")


def check_logins(admin, where: dict) -> None:
    """Key-pair and token logins as the connector makes them, checked as Snowflake checks them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    def der(key) -> bytes:
        return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    def public_b64(key) -> str:
        body = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(body).decode()

    def refused(errno: int, **kwargs) -> None:
        try:
            snowflake.connector.connect(**where, **kwargs).close()
        except snowflake.connector.errors.DatabaseError as error:
            assert error.errno == errno, (error.errno, error.msg)
        else:
            raise AssertionError(f"the login {sorted(kwargs)} must be refused")

    key, other = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    refused(390144, user="official_key", private_key=der(key))  # no key registered yet
    admin.execute(f"ALTER USER official_key SET RSA_PUBLIC_KEY='{public_b64(key)}'")
    snowflake.connector.connect(**where, user="official_key", private_key=der(key)).close()
    refused(390144, user="official_key", private_key=der(other))
    refused(390144, user="someone_else", private_key=der(key))
    # The connector reads the JWT's lifetime from JWT_LIFETIME_IN_SECONDS: expired, and too long.
    for lifetime in ("-30", "7200"):
        os.environ["JWT_LIFETIME_IN_SECONDS"] = lifetime
        try:
            refused(390144, user="official_key", private_key=der(key))
        finally:
            del os.environ["JWT_LIFETIME_IN_SECONDS"]
    # Rotation: the second key works once set.
    admin.execute(f"ALTER USER official_key SET RSA_PUBLIC_KEY_2='{public_b64(other)}'")
    snowflake.connector.connect(**where, user="official_key", private_key=der(other)).close()

    admin.execute("ALTER USER official_pat ADD PROGRAMMATIC ACCESS TOKEN ci_token DAYS_TO_EXPIRY = 1")
    name, secret = admin.fetchone()
    assert name == "CI_TOKEN", name
    # A person's token is generated without a network policy, but logs in only under one.
    refused(390432, user="official_pat", authenticator="PROGRAMMATIC_ACCESS_TOKEN", token=secret)
    admin.execute("CREATE NETWORK POLICY official_jobs ALLOWED_NETWORK_RULE_LIST = ('jobs_egress')")
    admin.execute("ALTER USER official_pat SET NETWORK_POLICY = official_jobs")
    snowflake.connector.connect(**where, user="official_pat", authenticator="PROGRAMMATIC_ACCESS_TOKEN", token=secret).close()
    refused(390100, user="official_pat", authenticator="PROGRAMMATIC_ACCESS_TOKEN", token="wrong-token")

    # A service user's token needs the policy to be generated at all, and a role restriction.
    admin.execute("ALTER USER official_service SET TYPE = SERVICE")
    for add, errno in (
        ("ALTER USER official_service ADD PAT loader ROLE_RESTRICTION = 'LOADER'", 390432),
        ("ALTER USER official_service ADD PAT loader", 1003),
    ):
        try:
            admin.execute(add)
        except snowflake.connector.errors.ProgrammingError as error:
            assert error.errno == errno, (add, error.errno, error.msg)
        else:
            raise AssertionError(f"{add} must be refused")
        admin.execute("ALTER USER official_service SET NETWORK_POLICY = official_jobs")
    admin.execute("ALTER USER official_service ADD PAT loader ROLE_RESTRICTION = 'LOADER'")
    _, service_secret = admin.fetchone()
    snowflake.connector.connect(
        **where, user="official_service", authenticator="PROGRAMMATIC_ACCESS_TOKEN", token=service_secret
    ).close()


if __name__ == "__main__":
    main()
