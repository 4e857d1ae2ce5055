"""S3 listing benchmark: many files per day, a 30-day backfill.

One source (diagnostics, CloudFront logs: every day's files side by side under one prefix, as
CloudFront writes them) holds OBJECTS gzipped files spread over DAYS days in a local S3 server
(moto), behind a proxy that adds a fixed latency to every request (an S3 round trip from a pod
is tens of milliseconds) and counts them. Measured in one run:

- stage-import's preflight for the whole backfill (`--from D1 --to D30`): every day's
  `list_prefix` listed concurrently, paginated, before any load; then the whole backfill into the
  embedded warehouse (the downloads go through the same proxy);
- the original job's way: COPY ... PATTERN with a path that holds no date makes the warehouse
  list the whole location once per day, 30 times;
- a straightforward rewrite: one day-prefix listing per day, one after the other (boto3).

Every method must find the same files; requests are counted at the proxy.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Latency, free_port, wait_for  # noqa: E402

LOCATION = "E1DIAGNOSTICS"
BUCKET = "listing-bench"
# The diagnostics source reads two locations; the second is empty here but is listed all the same.
EMPTY_LOCATION = "E2DIAGNOSTICS"
# Where the built-in diagnostics stage keeps a location's files below STAGE_ROOT.
PREFIX = f"raw/diagnostics/{LOCATION}"
EMPTY_PREFIX = f"raw/diagnostics/{EMPTY_LOCATION}"


def s3_client(port: int):
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id="bench-key", aws_secret_access_key="bench-secret")


def list_keys(client, prefix: str) -> list[str]:
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage-import", required=True)
    parser.add_argument("--sample-data", required=True)
    parser.add_argument("--moto-server", required=True)
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--latency-ms", type=float, default=30)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-listing-"))
    moto_port = free_port()
    moto = subprocess.Popen([args.moto_server, "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(moto_port, 60, "moto_server")
        first = datetime.date(2026, 10, 1)
        days = [first + datetime.timedelta(days=i) for i in range(args.days)]
        stage = work / "stage"
        for i, day in enumerate(days):
            files = args.objects // args.days + (1 if i < args.objects % args.days else 0)
            subprocess.run([args.sample_data, "cloudfront", "--out", str(stage), "--date", day.isoformat(),
                            "--location", LOCATION, "--files", str(files), "--rows-per-file", "20"],
                           check=True, stdout=subprocess.DEVNULL)
        paths = sorted(p for p in stage.rglob("*") if p.is_file())
        direct = s3_client(moto_port)
        direct.create_bucket(Bucket=BUCKET)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda p: direct.upload_file(str(p), BUCKET, "raw/" + p.relative_to(stage).as_posix()), paths))
        print(f"data: {len(paths)} objects over {args.days} days under s3://{BUCKET}/{PREFIX}/,"
              f" {args.latency_ms:.0f} ms added per request")

        proxy = Latency(moto_port, args.latency_ms / 1000)
        client = s3_client(proxy.port)

        # The original's way: the whole location, once per day, filtered by the day's pattern.
        proxy.take()
        started = time.perf_counter()
        found_whole = 0
        for day in days:
            pattern = re.compile(f".*{re.escape(LOCATION)}\\.{re.escape(day.isoformat())}.*")
            found_whole += sum(1 for k in list_keys(client, PREFIX) if pattern.fullmatch(k))
            list_keys(client, EMPTY_PREFIX)
        whole_s = time.perf_counter() - started
        whole_requests = sum(proxy.take().values())

        # A straightforward rewrite: each day's prefix, one day after the other.
        started = time.perf_counter()
        found_daily = 0
        for day in days:
            found_daily += len(list_keys(client, f"{PREFIX}/{LOCATION}.{day.isoformat()}"))
            list_keys(client, f"{EMPTY_PREFIX}/{EMPTY_LOCATION}.{day.isoformat()}")
        daily_s = time.perf_counter() - started
        daily_requests = sum(proxy.take().values())

        # stage-import: the preflight, then the backfill (into the embedded warehouse).
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOG_FORMAT": "json", "LOG_LEVEL": "info",
               "STAGE_ROOT": f"s3://{BUCKET}/raw", "S3_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}",
               "AWS_ACCESS_KEY_ID": "bench-key", "AWS_SECRET_ACCESS_KEY": "bench-secret",
               "DIAGNOSTIC_LOCATION_ONE": LOCATION, "DIAGNOSTIC_LOCATION_TWO": EMPTY_LOCATION,
               "WAREHOUSE_PATH": str(work / "bench.duckdb"), "DUCKDB_THREADS": "2"}
        subprocess.run([args.stage_import, "bootstrap", "diagnostics"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proxy.take()
        started = time.perf_counter()
        done = subprocess.run([args.stage_import, "diagnostics", "--from", days[0].isoformat(),
                               "--to", days[-1].isoformat(), "--allow-empty"], env=env, capture_output=True, text=True)
        backfill_s = time.perf_counter() - started
        counts = proxy.take()
        if done.returncode != 0:
            sys.exit(f"stage-import failed ({done.returncode}):\n{done.stderr[-3000:]}")
        logs = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
        preflight = next(line for line in logs if line.get("message") == "preflight listed the stages")
        report = json.loads(done.stdout)
        found_ours = sum(load["files_found"] for load in report["loads"])
        backfill_requests = sum(counts.values())
    finally:
        moto.terminate()
        moto.wait()
        subprocess.run(["rm", "-rf", str(work)])

    if not (found_whole == found_daily == found_ours == len(paths)):
        sys.exit(f"the methods disagree: whole-prefix {found_whole}, per-day {found_daily}, stage-import"
                 f" {found_ours}, uploaded {len(paths)}")
    ours_s = float(preflight["seconds"])
    ours_requests = int(preflight["s3_requests"])
    print(f"\n{'listing ' + str(args.days) + ' days':<44} {'wall s':>8} {'requests':>9} {'ours / it':>10}")
    print(f"{'stage-import preflight (concurrent, per day)':<44} {ours_s:>8.2f} {ours_requests:>9} {'':>10}")
    print(f"{'original: whole location once per day':<44} {whole_s:>8.2f} {whole_requests:>9} {ours_s / whole_s:>9.3f}x")
    print(f"{'rewrite: day prefix, one day after another':<44} {daily_s:>8.2f} {daily_requests:>9} {ours_s / daily_s:>9.3f}x")
    print(f"\nstage-import 30-day backfill into the embedded warehouse: {backfill_s:.2f} s, {backfill_requests}"
          f" requests ({ours_requests} listings, {backfill_requests - ours_requests} downloads), {report['rows_loaded']}"
          f" rows from {found_ours} files")


if __name__ == "__main__":
    main()
