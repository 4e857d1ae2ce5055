"""The job images against the Python stack they replace, measured in one run.

Per image: its size; the wall time of `docker run --rm IMAGE --help` (a container's whole life)
and of the binary's `--help` alone; the time from launch to the first byte reaching a local
server; and the peak memory (max RSS) of a real run of the image's binary (the same static file,
run on the host: a container's cgroup is gone by the time it exits).

The peer is what the jobs ran on: a Python interpreter with snowflake-connector-python, psycopg2
and requests in a venv. Its size on disk (interpreter, standard library, venv), the time of
`python -c "import snowflake.connector"`, and the same real runs written the way the Python
jobs did them (requests.post, psycopg2, the Snowflake connector), each beside ours as a ratio
(ours / Python: below 1 means smaller or faster).

The real runs talk to the local servers the tests use: a webhook receiver (here), PostgreSQL
(run.sh starts one), fakesnow behind the tests' compatibility proxy, and the grant emulator.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import free_port, wait_for  # noqa: E402

JOBS = ["webhook-alert", "pg-job", "stage-import", "permissions"]
TARGETS = {"size_mb": 25.0, "first_byte_ms": 20.0, "rss_mb": 30.0}
SMALL_IMAGES = {"webhook-alert": 10.0, "pg-job": 10.0}
PASSWORD = "Bench-Password-1"


def du(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            p = Path(dirpath, name)
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def timed(cmd: list[str], env: dict | None = None, check: bool = True) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if check and done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return elapsed


def median(cmd: list[str], runs: int, env: dict | None = None) -> float:
    timed(cmd, env)  # warm the page cache and docker's image store
    return statistics.median(timed(cmd, env) for _ in range(runs))


def peak_rss(cmd: list[str], env: dict, expect: int = 0, stdin: bytes | None = None) -> tuple[float, float]:
    """(max RSS in MB, seconds) of one run; exits if the run fails. Measured by GNU time, which
    forks a small process to exec the command: Python's own spawn (vfork) would make the
    kernel count this script's memory as the child's high-water mark."""
    with tempfile.NamedTemporaryFile("r") as report:
        started = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report.name, *cmd], env=env, input=stdin,
                              stdin=None if stdin is not None else subprocess.DEVNULL, capture_output=True)
        elapsed = time.perf_counter() - started
        if done.returncode != expect:
            sys.exit(f"{' '.join(cmd)} exited {done.returncode} (expected {expect}):\n"
                     f"{done.stdout.decode()[-1500:]}\n{done.stderr.decode()[-3000:]}")
        kilobytes = int(report.read().strip().splitlines()[-1])
    return kilobytes / 1024, elapsed


class FirstByte:
    """A local HTTP server that notes when the first byte of each request arrives and answers
    200 "ok" as a Mattermost incoming webhook does."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.first: float | None = None
        self.requests = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            with conn:
                data = conn.recv(65536)
                if self.first is None:
                    self.first = time.perf_counter()
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        break
                    data += more
                head, _, body = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    key, _, value = line.partition(b":")
                    if key.strip().lower() == b"content-length":
                        length = int(value.strip())
                while len(body) < length:
                    more = conn.recv(65536)
                    if not more:
                        break
                    body += more
                self.requests += 1
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    def measure(self, cmd: list[str], env: dict) -> float:
        """Seconds from launching `cmd` to the first byte here."""
        self.first = None
        before = self.requests
        started = time.perf_counter()
        done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if done.returncode != 0 or self.requests != before + 1 or self.first is None:
            sys.exit(f"{' '.join(cmd)}: exit {done.returncode}, {self.requests - before} requests: {done.stderr.decode()[-2000:]}")
        return self.first - started


def python_stack_size(peer_venv: Path) -> int:
    """Interpreter, standard library (with its compiled modules) and the venv's packages: what a
    slim python:3.x image adds beyond its OS layer, and less than the full one (~1 GB)."""
    python = Path(os.path.realpath(peer_venv / "bin" / "python"))
    out = subprocess.run([str(peer_venv / "bin" / "python"), "-c",
                          "import sysconfig, sys; print(sysconfig.get_paths()['stdlib']); print(sysconfig.get_config_var('LIBDIR') or ''); print(sysconfig.get_config_var('LDLIBRARY') or '')"],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    stdlib, libdir, ldlibrary = Path(out[0]), out[1], out[2]
    size = python.stat().st_size + du(stdlib) + du(peer_venv)
    if libdir and ldlibrary and (Path(libdir) / ldlibrary).exists():
        size += (Path(libdir) / ldlibrary).stat().st_size
    # Debian splits compiled stdlib modules and the dist-packages out: count the dynload dir too.
    dynload = stdlib / "lib-dynload"
    if not dynload.exists():
        for candidate in Path("/usr/lib").glob(f"python3*/lib-dynload"):
            size += du(candidate)
    return size


class Servers:
    """fakesnow (behind the tests' compatibility proxy), and the grant emulator."""

    def __init__(self, venv: Path, root: Path, work: Path):
        python = str(venv / "bin" / "python")
        self.procs: list[subprocess.Popen] = []
        proxy = subprocess.Popen([python, str(root / "tests/snowflake_compat/proxy.py"),
                                  "--fakesnow", str(venv / "bin" / "fakesnow"), "--log", str(work / "fakesnow.log")],
                                 stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.procs.append(proxy)
        line = proxy.stdout.readline()
        if not line.startswith("READY "):
            sys.exit(f"the fakesnow proxy did not start ({line!r}); see {work / 'fakesnow.log'}")
        self.proxy_port, self.fakesnow_port = (int(p) for p in line.split()[1:3])
        self.grants_port = free_port()
        self.procs.append(subprocess.Popen([python, str(root / "tests/grant_emulator/grant_emulator.py"),
                                            "-p", str(self.grants_port), "--admin-password", PASSWORD],
                                           stdout=subprocess.DEVNULL, stderr=open(work / "grants.log", "w"),
                                           stdin=subprocess.DEVNULL))
        wait_for(self.grants_port, 60, "the grant emulator")

    def compat(self, path: str, body: dict) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy_port, timeout=60)
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        reply = conn.getresponse()
        reply.read()
        if reply.status >= 300:
            sys.exit(f"proxy control {path}: HTTP {reply.status}")

    def grants(self, sql: list[str]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.grants_port, timeout=120)
        conn.request("POST", "/__grants/sql", json.dumps({"sql": sql, "role": "ACCOUNTADMIN"}),
                     {"Content-Type": "application/json"})
        results = json.loads(conn.getresponse().read())["results"]
        failed = [(s, r) for s, r in zip(sql, results) if not r["ok"]]
        if failed:
            sys.exit(f"grant emulator setup failed: {failed[:3]}")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


PG_SCRIPT = """\
CREATE TABLE IF NOT EXISTS bench_snapshot (id int, account text, amount numeric(14, 2));
TRUNCATE bench_snapshot;
INSERT INTO bench_snapshot SELECT g, md5(g::text), (g % 1000) * 1.5 FROM generate_series(1, 100000) AS g;
CREATE INDEX IF NOT EXISTS bench_snapshot_account ON bench_snapshot (account);
ANALYZE bench_snapshot;
"""

PY_WEBHOOK = """\
import os, requests
requests.post(os.environ["MATTERMOST_WEBHOOK_URL"], json={"username": "Airflow",
    "text": ":red_circle: Task account-arr in DAG pg_job failed"}, timeout=10).raise_for_status()
"""

PY_PG = """\
import os, psycopg2
conn = psycopg2.connect(os.environ["HEROKU_POSTGRESQL_URL"])
with conn, conn.cursor() as cur:
    cur.execute(open(os.environ["SCRIPT"]).read())
conn.close()
"""

PY_SNOWFLAKE = """\
import os, sys, snowflake.connector
conn = snowflake.connector.connect(account="bench", user="loader", password=os.environ["PASSWORD"],
    host="127.0.0.1", port=int(os.environ["PORT"]), protocol="http", database=os.environ["DATABASE"],
    warehouse="LOADING")
cur = conn.cursor()
for statement in sys.stdin.read().split(";\\n\\n"):
    if statement.strip():
        cur.execute(statement)
conn.close()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--venv", type=Path, required=True)
    parser.add_argument("--peer-venv", type=Path, required=True)
    parser.add_argument("--pg-url", required=True)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    target = Path(os.environ.get("CARGO_TARGET_DIR", args.root / "target"))
    binaries = {job: target / "x86_64-unknown-linux-gnu/release" / job for job in JOBS}
    for job, path in binaries.items():
        if not path.exists():
            sys.exit(f"{path} is missing: run 'make images'")
    peer_python = str(args.peer_venv / "bin" / "python")
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOG_FORMAT": "json"}
    work = Path(tempfile.mkdtemp(prefix="bench-images-"))
    servers = Servers(args.venv, args.root, work)
    receiver = FirstByte()
    rows = []
    try:
        # Sizes.
        sizes = {}
        for job in JOBS:
            out = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", f"data-jobs/{job}:latest"],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"image data-jobs/{job}:latest is missing: run 'make images'")
            sizes[job] = int(out.stdout.strip()) / 1e6
        peer_size = python_stack_size(args.peer_venv) / 1e6

        # Start-up.
        docker_help = {job: median(["docker", "run", "--rm", f"data-jobs/{job}:latest", "--help"], args.runs)
                       for job in JOBS}
        binary_help = {job: median([str(binaries[job]), "--help"], args.runs * 3) for job in JOBS}
        peer_import = median([peer_python, "-c", "import snowflake.connector"], max(3, args.runs // 2))
        peer_version = median([peer_python, "-c", "pass"], args.runs)

        # First byte on the network: webhook-alert's post, as a binary, as a container, in Python.
        hook_url = f"http://127.0.0.1:{receiver.port}/hooks/bench"
        hook_env = {**base_env, "MATTERMOST_WEBHOOK_URL": hook_url, "ALERT_DAG_ID": "pg_job",
                    "ALERT_TASK_ID": "account-arr", "ALERT_ERROR": "relation does not exist"}
        first_binary = statistics.median(receiver.measure([str(binaries["webhook-alert"])], hook_env)
                                         for _ in range(args.runs * 3))
        docker_cmd = ["docker", "run", "--rm", "--network", "host"]
        for key in ("MATTERMOST_WEBHOOK_URL", "ALERT_DAG_ID", "ALERT_TASK_ID", "ALERT_ERROR"):
            docker_cmd += ["-e", f"{key}={hook_env[key]}"]
        first_docker = statistics.median(receiver.measure(docker_cmd + ["data-jobs/webhook-alert:latest"], base_env)
                                         for _ in range(args.runs))
        peer_hook = work / "webhook.py"
        peer_hook.write_text(PY_WEBHOOK)
        first_peer = statistics.median(receiver.measure([peer_python, str(peer_hook)], hook_env)
                                       for _ in range(args.runs))

        # Peak memory of real runs.
        rss = {}
        peer_rss = {}
        rss["webhook-alert"] = peak_rss([str(binaries["webhook-alert"])], hook_env)
        peer_rss["webhook-alert"] = peak_rss([peer_python, str(peer_hook)], hook_env)

        scripts = work / "sql"
        scripts.mkdir()
        (scripts / "bench_snapshot.sql").write_text(PG_SCRIPT)
        pg_env = {**base_env, "HEROKU_POSTGRESQL_URL": args.pg_url, "PG_JOB_SCRIPTS_DIR": str(scripts)}
        rss["pg-job"] = peak_rss([str(binaries["pg-job"]), "bench-snapshot"], pg_env)
        peer_pg = work / "pg.py"
        peer_pg.write_text(PY_PG)
        peer_rss["pg-job"] = peak_rss([peer_python, str(peer_pg)],
                                      {**pg_env, "SCRIPT": str(scripts / "bench_snapshot.sql")})

        servers.compat("/__compat/databases", {"name": "BENCH_RAW"})
        stage_env = {**base_env, "SNOWFLAKE_ACCOUNT": "bench", "SNOWFLAKE_LOAD_USER": "loader",
                     "SNOWFLAKE_LOAD_PASSWORD": PASSWORD, "SNOWFLAKE_LOAD_WAREHOUSE": "LOADING",
                     "SNOWFLAKE_LOAD_DATABASE": "BENCH_RAW",
                     "SNOWFLAKE_URL": f"http://127.0.0.1:{servers.proxy_port}",
                     "STAGE_ROOT": str(work / "stage"), "RELEASE_LOCATION": "E1RELEASES",
                     "DIAGNOSTIC_LOCATION_ONE": "E1DIAGNOSTICS", "DIAGNOSTIC_LOCATION_TWO": "E2DIAGNOSTICS",
                     "AWS_ACCOUNT_ID": "123456789012"}
        rss["stage-import"] = peak_rss([str(binaries["stage-import"]), "bootstrap"], stage_env)
        bootstrap_sql = subprocess.run([str(binaries["stage-import"]), "bootstrap", "--print"], env=stage_env,
                                       capture_output=True, check=True).stdout
        peer_sf = work / "bootstrap_peer.py"  # not snowflake.py: it would shadow the package
        peer_sf.write_text(PY_SNOWFLAKE)
        # The Python connector talks to fakesnow directly: fakesnow is written for it.
        peer_rss["stage-import"] = peak_rss(
            [peer_python, str(peer_sf)],
            {**base_env, "PASSWORD": PASSWORD, "PORT": str(servers.fakesnow_port), "DATABASE": "BENCH_PEER"},
            stdin=bootstrap_sql)

        servers.grants([
            "CREATE ROLE PERMISSION_BOT", "GRANT ROLE SECURITYADMIN TO ROLE PERMISSION_BOT",
            f"CREATE USER PERMISSION_BOT PASSWORD = '{PASSWORD}' DEFAULT_ROLE = PERMISSION_BOT",
            "GRANT ROLE PERMISSION_BOT TO USER PERMISSION_BOT",
            "CREATE WAREHOUSE LOADING", "CREATE WAREHOUSE TRANSFORMING", "CREATE WAREHOUSE REPORTING",
            "CREATE DATABASE RAW", "CREATE SCHEMA RAW.STITCH", "CREATE TABLE RAW.STITCH.ORDERS (ID INT)",
            "CREATE DATABASE ANALYTICS", "CREATE SCHEMA ANALYTICS.MART", "CREATE SCHEMA ANALYTICS.STAGING",
            "CREATE TABLE ANALYTICS.MART.SALES (ID INT)",
            "CREATE DATABASE SNOWFLAKE FROM SHARE SNOWFLAKE.ACCOUNT_USAGE",
        ])
        perm_env = {**base_env, "PERMISSION_BOT_ACCOUNT": "bench", "PERMISSION_BOT_USER": "permission_bot",
                    "PERMISSION_BOT_PASSWORD": PASSWORD, "PERMISSION_BOT_ROLE": "permission_bot",
                    "PERMISSION_BOT_URL": f"http://127.0.0.1:{servers.grants_port}",
                    "PERMISSIONS_SPEC": str(args.root / "examples/roles.yml")}
        rss["permissions"] = peak_rss([str(binaries["permissions"]), "plan"], perm_env)
    finally:
        servers.stop()
        shutil.rmtree(work, ignore_errors=True)

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.3f}x" if b else "-"

    peers = {"webhook-alert": "requests.post", "pg-job": "psycopg2 script",
             "stage-import": "connector bootstrap", "permissions": "(Permifrost: bench/permissions)"}
    print(f"\nPython peer: {peer_size:.1f} MB on disk (interpreter, stdlib, venv with snowflake-connector-python,"
          f" psycopg2, requests); `python -c pass` {peer_version * 1000:.0f} ms,"
          f" `import snowflake.connector` {peer_import * 1000:.0f} ms\n")
    header = (f"{'image':<14} {'size MB':>8} {'vs peer':>8} {'docker run --help':>18} {'binary --help':>14}"
              f" {'vs import':>10} {'peak RSS MB':>12} {'peer RSS MB':>12} {'vs peer':>8}  peer run")
    print(header)
    print("-" * len(header))
    problems = []
    for job in JOBS:
        mem, _ = rss[job]
        peer_mem = peer_rss.get(job, (0.0, 0.0))[0]
        print(f"{job:<14} {sizes[job]:>8.1f} {ratio(sizes[job], peer_size):>8} {docker_help[job] * 1000:>15.0f} ms"
              f" {binary_help[job] * 1000:>11.1f} ms {ratio(binary_help[job], peer_import):>10}"
              f" {mem:>12.1f} {peer_mem or float('nan'):>12.1f} {ratio(mem, peer_mem) if peer_mem else '-':>8}  {peers[job]}")
        limit = SMALL_IMAGES.get(job, TARGETS["size_mb"])
        if sizes[job] > limit:
            problems.append(f"{job}: image {sizes[job]:.1f} MB > {limit} MB")
        if mem > TARGETS["rss_mb"]:
            problems.append(f"{job}: peak RSS {mem:.1f} MB > {TARGETS['rss_mb']} MB")
    print(f"\nfirst byte on the network (webhook-alert's post, median of launches):")
    print(f"  binary {first_binary * 1000:.1f} ms, docker run {first_docker * 1000:.0f} ms,"
          f" Python requests {first_peer * 1000:.0f} ms; binary / Python = {ratio(first_binary, first_peer)},"
          f" container / Python = {ratio(first_docker, first_peer)}")
    if first_binary * 1000 > TARGETS["first_byte_ms"]:
        problems.append(f"first byte after {first_binary * 1000:.1f} ms > {TARGETS['first_byte_ms']} ms")
    if problems:
        print("\nmissed targets:\n  " + "\n  ".join(problems))
        sys.exit(1)
    print("\nall targets met: images <= 25 MB (webhook-alert, pg-job <= 10 MB), first byte <= 20 ms, peak RSS <= 30 MB")


if __name__ == "__main__":
    main()
