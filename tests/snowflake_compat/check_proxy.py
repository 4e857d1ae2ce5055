"""Checks the compatibility proxy with Snowflake's own Python connector.

The Rust client is tested against the proxy; this makes sure the proxy speaks Snowflake and not
a dialect of its own: the official connector must read its JSON results with its own converters,
follow its "still running" replies, download its result chunks, and see Snowflake's error codes.
Run by crates/test-servers/tests/official_client.rs:

    python check_proxy.py <proxy base URL> <database>
"""

from __future__ import annotations

import datetime
import decimal
import json
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

    # Snowflake's error code and SQL state.
    try:
        cur.execute("SELECT no_such_column FROM many")
    except snowflake.connector.errors.ProgrammingError as error:
        assert error.errno == 2043 and error.sqlstate == "02000", (error.errno, error.sqlstate)
    else:
        raise AssertionError("a bad column must fail")

    conn.close()
    print("the official connector agrees with the proxy")


if __name__ == "__main__":
    main()
