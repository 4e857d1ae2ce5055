"""Checks the proxy's COPY INTO emulation (copy_into.py) against Snowflake's documented behaviour,
with Snowflake's own Python connector, so that what stage-import is tested against is Snowflake's
COPY and not a dialect of the emulator's. Run by tests/stage_import_snowflake.rs:

    python check_copy.py <proxy base URL> <database> <scratch directory> [<S3 endpoint> <bucket>]

With an S3 server (the one the proxy was pointed at) and a bucket name, the bucket is made and
filled with boto3 and a COPY from an external stage on S3 is checked too. The hexadecimal TO_NUMBER the
proxy rewrites (functions.py), which pg-replicate's reconciliation sums keys with, is checked
against Python's own hex reading of MD5.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import os
import sys
from urllib.parse import urlsplit

import snowflake.connector
from snowflake.connector.errors import ProgrammingError

RESULT = [
    "file", "status", "rows_parsed", "rows_loaded", "error_limit", "errors_seen", "first_error",
    "first_error_line", "first_error_character", "first_error_column_name",
]


def connect(base_url: str, database: str, user: str):
    url = urlsplit(base_url)
    return snowflake.connector.connect(
        account="testacct", user=user, password="any-password", host=url.hostname, port=url.port,
        protocol=url.scheme, database=database, schema="PUBLIC",
    )


def copy(cur, sql: str) -> list[dict]:
    cur.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def expect_error(cur, sql: str, code: int, sql_state: str, text: str) -> None:
    try:
        cur.execute(sql)
    except ProgrammingError as e:
        assert e.errno == code, (e.errno, e.msg)
        assert e.sqlstate == sql_state, (e.sqlstate, e.msg)
        assert text in e.msg, e.msg
        return
    raise AssertionError(f"no error from {sql}")


def main() -> None:
    base_url, database, scratch = sys.argv[1], sys.argv[2], sys.argv[3]
    stage_dir = os.path.join(scratch, "stage")
    os.makedirs(os.path.join(stage_dir, "day"), exist_ok=True)
    with open(os.path.join(stage_dir, "day", "good.csv"), "w") as f:
        f.write('id,name,amount,day,at,ok\n1,"Acme, Inc.",10.5,2026-11-26,2026-11-26T01:02:03Z,true\n'
                '2,"say ""hi""\nthere",-,2026-11-27,2026-11-27 04:05:06.5,no\n')
    with open(os.path.join(stage_dir, "day", "partly.csv"), "w") as f:
        f.write("id,name,amount,day,at,ok\n1,a,1,2026-11-26,2026-11-26T00:00:00,true\n"
                "2,b,many,2026-11-26,2026-11-26T00:00:00,true\n3,c,3,2026-13-01,2026-11-26T00:00:00,true\n"
                '4,"d"x,4,2026-11-26,2026-11-26T00:00:00,true\n')
    with open(os.path.join(stage_dir, "day", "bad.csv"), "w") as f:
        f.write("id,name,amount,day,at,ok\nx,a,1,2026-11-26,2026-11-26T00:00:00,true\n")
    with gzip.open(os.path.join(stage_dir, "day", "zipped.csv.gz"), "wt") as f:
        f.write("id,name,amount,day,at,ok\n7,z,7,2026-11-26,2026-11-26T00:00:00,false\n8,short\n")
    with open(os.path.join(stage_dir, "day", "broken.csv.gz"), "wb") as f:
        f.write(b"this is not gzip")

    conn = connect(base_url, database, "copy_checker")
    cur = conn.cursor()
    cur.execute("CREATE SCHEMA IF NOT EXISTS raw")
    cur.execute("CREATE FILE FORMAT IF NOT EXISTS raw.csv_format TYPE = CSV FIELD_DELIMITER = ',' SKIP_HEADER = 1 "
                "FIELD_OPTIONALLY_ENCLOSED_BY = '\"' NULL_IF = ('-') COMPRESSION = AUTO")
    cur.execute(f"CREATE STAGE IF NOT EXISTS raw.files URL = 'file://{stage_dir}/' FILE_FORMAT = raw.csv_format")
    cur.execute("CREATE TABLE raw.t (id NUMBER(38,0), name VARCHAR, amount FLOAT, day DATE, stamp TIMESTAMP_NTZ, "
                "ok BOOLEAN, source VARCHAR, loaded TIMESTAMP_LTZ)")
    transforming = (
        "COPY INTO raw.t (id, name, amount, day, stamp, ok, source, loaded) FROM (SELECT $1, $2, $3, $4, $5, $6, "
        "METADATA$FILENAME, METADATA$START_SCAN_TIME FROM @raw.files) FILES = ({files}) "
        "FILE_FORMAT = (FORMAT_NAME = 'raw.csv_format') ON_ERROR = 'CONTINUE'"
    )

    # Documented columns, one row per file, the file named by its full URL.
    rows = copy(cur, transforming.format(files="'day/good.csv', 'day/partly.csv', 'day/bad.csv', 'day/zipped.csv.gz', 'day/broken.csv.gz'"))
    assert [list(r) for r in [rows[0].keys()]] == [RESULT], rows[0].keys()
    by_file = {r["file"]: r for r in rows}
    url = f"file://{stage_dir}/day/"
    assert sorted(by_file) == sorted(url + n for n in ["good.csv", "partly.csv", "bad.csv", "zipped.csv.gz", "broken.csv.gz"]), by_file
    good = by_file[url + "good.csv"]
    assert (good["status"], good["rows_parsed"], good["rows_loaded"], good["errors_seen"], good["first_error"]) == ("LOADED", 2, 2, 0, None), good
    partly = by_file[url + "partly.csv"]
    assert (partly["status"], partly["rows_parsed"], partly["rows_loaded"], partly["errors_seen"]) == ("PARTIALLY_LOADED", 4, 1, 3), partly
    assert partly["error_limit"] == 4, partly
    assert partly["first_error"] == "Numeric value 'many' is not recognized", partly
    assert (partly["first_error_line"], partly["first_error_character"]) == (3, 5), partly
    assert partly["first_error_column_name"] == '"T"["AMOUNT":3]', partly
    bad = by_file[url + "bad.csv"]
    assert (bad["status"], bad["rows_parsed"], bad["rows_loaded"], bad["errors_seen"]) == ("LOAD_FAILED", 1, 0, 1), bad
    # A transforming COPY ignores the column count: the short line loads with NULLs.
    zipped = by_file[url + "zipped.csv.gz"]
    assert (zipped["status"], zipped["rows_loaded"]) == ("LOADED", 2), zipped
    broken = by_file[url + "broken.csv.gz"]
    assert broken["status"] == "LOAD_FAILED" and "decompression" in broken["first_error"], broken

    cur.execute("SELECT id, name, amount, day, stamp, ok, source FROM raw.t WHERE source LIKE '%good.csv' ORDER BY id")
    assert cur.fetchall() == [
        (1, "Acme, Inc.", 10.5, datetime.date(2026, 11, 26), datetime.datetime(2026, 11, 26, 1, 2, 3), True, f"{stage_dir.lstrip('/')}/day/good.csv"),
        (2, 'say "hi"\nthere', None, datetime.date(2026, 11, 27), datetime.datetime(2026, 11, 27, 4, 5, 6, 500000), False, f"{stage_dir.lstrip('/')}/day/good.csv"),
    ]
    cur.execute("SELECT COUNT(*) FROM raw.t WHERE loaded IS NULL")
    assert cur.fetchone() == (0,)
    # METADATA$START_SCAN_TIME: the COPY's start, a TIMESTAMP_LTZ, read as an aware datetime.
    cur.execute("SELECT COUNT(DISTINCT loaded), MIN(loaded) FROM raw.t")
    distinct, loaded = cur.fetchone()
    assert distinct == 1 and loaded.tzinfo is not None, (distinct, loaded)
    age = datetime.datetime.now(datetime.timezone.utc) - loaded
    assert datetime.timedelta(0) <= age < datetime.timedelta(minutes=5), loaded
    # A time function evaluated at run time is not among those a COPY transformation takes.
    expect_error(cur, transforming.replace("METADATA$START_SCAN_TIME", "CURRENT_TIMESTAMP()").format(files="'day/good.csv'"), 2016, "22000", "CURRENT_TIMESTAMP")

    # Load metadata: a second COPY skips what was loaded (and says nothing of it); FORCE loads again.
    again = copy(cur, transforming.format(files="'day/good.csv'"))
    assert again == [{"status": "Copy executed with 0 files processed."}], again
    forced = copy(cur, transforming.format(files="'day/good.csv'") + " FORCE = TRUE")
    assert [(r["status"], r["rows_loaded"]) for r in forced] == [("LOADED", 2)], forced
    # A file that failed whole was not recorded as loaded: it is tried again.
    retried = copy(cur, transforming.format(files="'day/bad.csv'"))
    assert [r["status"] for r in retried] == ["LOAD_FAILED"], retried

    # COPY_HISTORY: the table's committed loads, failed ones too, by the path below the stage.
    cur.execute(
        "SELECT FILE_NAME, STATUS, ROW_COUNT FROM TABLE(INFORMATION_SCHEMA.COPY_HISTORY(TABLE_NAME => 'raw.t', "
        "START_TIME => DATEADD(DAY, -14, CURRENT_TIMESTAMP()))) WHERE FILE_NAME = 'day/good.csv' ORDER BY ROW_COUNT"
    )
    history = cur.fetchall()
    assert [c[0] for c in cur.description] == ["FILE_NAME", "STATUS", "ROW_COUNT"], cur.description
    assert ("day/good.csv", "Loaded", 2) in history, history
    cur.execute("SELECT STATUS FROM TABLE(INFORMATION_SCHEMA.COPY_HISTORY(TABLE_NAME => 'raw.t')) WHERE FILE_NAME = 'day/bad.csv'")
    assert ("Load failed",) in cur.fetchall()

    # ALTER STAGE … SET CREDENTIALS on a stage that exists; a missing one fails as in Snowflake.
    cur.execute("ALTER STAGE raw.files SET CREDENTIALS = (AWS_KEY_ID = 'k' AWS_SECRET_KEY = 's')")
    assert cur.fetchone() == ("Statement executed successfully.",)
    expect_error(cur, "ALTER STAGE raw.nowhere SET CREDENTIALS = (AWS_KEY_ID = 'k' AWS_SECRET_KEY = 's')", 2003, "02000", "Stage")

    # Inside a transaction: rolled back, the rows and the load metadata go together.
    cur.execute("CREATE TABLE raw.u (id NUMBER(38,0), name VARCHAR, amount FLOAT, day DATE, stamp TIMESTAMP_NTZ, ok BOOLEAN, source VARCHAR, loaded TIMESTAMP_LTZ)")
    into_u = transforming.replace("raw.t", "raw.u")
    cur.execute("BEGIN")
    assert [r["rows_loaded"] for r in copy(cur, into_u.format(files="'day/good.csv'"))] == [2]
    cur.execute("ROLLBACK")
    cur.execute("SELECT COUNT(*) FROM raw.u")
    assert cur.fetchone() == (0,)
    cur.execute("BEGIN")
    assert [r["rows_loaded"] for r in copy(cur, into_u.format(files="'day/good.csv'"))] == [2]
    cur.execute("COMMIT")
    assert copy(cur, into_u.format(files="'day/good.csv'")) == [{"status": "Copy executed with 0 files processed."}]

    # The plain form: columns by position, PATTERN, the column count checked.
    cur.execute("CREATE TABLE raw.plain (id NUMBER(38,0), name VARCHAR, amount FLOAT, day DATE, stamp TIMESTAMP_NTZ, ok BOOLEAN)")
    plain = copy(cur, "COPY INTO raw.plain FROM @raw.files/day PATTERN = '.*zipped[.]csv[.]gz' ON_ERROR = CONTINUE")
    assert [(r["status"], r["rows_loaded"], r["errors_seen"]) for r in plain] == [("PARTIALLY_LOADED", 1, 1)], plain
    assert plain[0]["first_error"].startswith("Number of columns in file (2) does not match"), plain

    # ON_ERROR's default aborts the statement at the first error; nothing is loaded.
    expect_error(cur, "COPY INTO raw.plain FROM @raw.files FILES = ('day/partly.csv')", 100038, "22018", "Numeric value 'many' is not recognized")
    cur.execute("SELECT COUNT(*) FROM raw.plain WHERE name = 'a'")
    assert cur.fetchone() == (0,)

    check_hex_numbers(cur)
    if len(sys.argv) > 5:
        check_s3_stage(cur, sys.argv[4], sys.argv[5], os.path.join(stage_dir, "day", "good.csv"))

    # What does not exist fails as in Snowflake.
    expect_error(cur, transforming.replace("raw.t", "raw.missing").format(files="'day/good.csv'"), 2003, "42S02", "does not exist or not authorized")
    expect_error(cur, transforming.replace("@raw.files", "@raw.nowhere").format(files="'day/good.csv'"), 2003, "02000", "Stage")
    expect_error(cur, transforming.format(files="'day/absent.csv'"), 91016, "22000", "absent.csv")
    print("ok")


def check_hex_numbers(cur) -> None:
    """TO_NUMBER with a format of X's reads hexadecimal digits, either case (Snowflake's SQL
    format models: "X: hexadecimal digit"), as a NUMBER; MD5 gives lowercase hex."""
    key = "0011000000AcmeAAA\x1f42"
    digest = hashlib.md5(key.encode()).hexdigest()
    cur.execute(
        "SELECT TO_NUMBER('ff', 'XX'), TO_NUMBER('FFFFFFFF', 'XXXXXXXX'), "
        "TO_NUMBER(SUBSTR(MD5(%s), 9, 8), 'XXXXXXXX'), "
        "TO_NUMBER(SUBSTR(MD5(%s), 1, 8), 'XXXXXXXX') %% 7",
        (key, key),
    )
    assert cur.fetchone() == (255, 0xFFFFFFFF, int(digest[8:16], 16), int(digest[0:8], 16) % 7)
    # Summed over rows, as the reconciliation sums a bucket's hashes.
    cur.execute(
        "SELECT SUM(TO_NUMBER(SUBSTR(MD5(v), 1, 8), 'XXXXXXXX')) % 4294967296 "
        "FROM (SELECT 'a' AS v UNION ALL SELECT 'b')"
    )
    expected = sum(int(hashlib.md5(v.encode()).hexdigest()[:8], 16) for v in "ab") % 2**32
    assert cur.fetchone() == (expected,)


def check_s3_stage(cur, endpoint: str, bucket: str, good_csv: str) -> None:
    """An external stage on S3: the COPY reads the bucket and names each file by its URL."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="test-key", aws_secret_access_key="test-secret")
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(good_csv, bucket, "day/good.csv")
    url = f"s3://{bucket}/day/"
    cur.execute(
        f"CREATE STAGE raw.bucket URL = '{url}' FILE_FORMAT = raw.csv_format "
        "CREDENTIALS = (AWS_KEY_ID = 'test-key' AWS_SECRET_KEY = 'test-secret')"
    )
    cur.execute("CREATE TABLE raw.from_s3 (id NUMBER(38,0), name VARCHAR)")
    rows = copy(
        cur,
        "COPY INTO raw.from_s3 (id, name) FROM (SELECT $1, $2 FROM @raw.bucket) "
        "FILES = ('good.csv') FILE_FORMAT = (FORMAT_NAME = 'raw.csv_format')",
    )
    assert [(r["file"], r["status"], r["rows_loaded"]) for r in rows] == [
        (url.rstrip("/") + "/good.csv", "LOADED", 2)
    ], rows
    cur.execute("SELECT id, name FROM raw.from_s3 ORDER BY id")
    assert cur.fetchall() == [(1, "Acme, Inc."), (2, 'say "hi"\nthere')]
    expect_error(
        cur,
        "COPY INTO raw.from_s3 (id, name) FROM (SELECT $1, $2 FROM @raw.bucket) FILES = ('absent.csv')",
        91016,
        "22000",
        "absent.csv",
    )


if __name__ == "__main__":
    main()
