"""Benchmark: a full `permissions plan` of a converged account against Permifrost 0.15.5.

The account (in the grant-aware emulator, tests/grant_emulator) has N roles, D databases of S
schemas of T tables each, and U users; a spec in Permifrost's format describes it. Both tools
read the same account through a proxy that adds a fixed latency to every HTTP request (a
Snowflake round trip from a pod is ~50-100 ms) and counts them. Reported: wall time and round
trips of each, and their ratio.

Both tools talk to the emulator directly, without the compatibility proxy the tests use: that
proxy runs one statement per session at a time (fakesnow needs it), which would hide exactly the
concurrency measured here. The emulator answers the statements both tools send itself.

Permifrost has no host or port setting; it builds its SQLAlchemy URL from PERMISSION_BOT_ACCOUNT
unescaped, so an account value `127.0.0.1:PORT/DB?account=bench&protocol=http&role=R&ignored=`
points its connector here with Permifrost's code untouched (its own `/DB?role=...` suffix lands
in a parameter the connector ignores with a warning).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from benchlib import Latency, free_port, wait_for  # noqa: E402
EMULATOR = ROOT / "tests/grant_emulator/grant_emulator.py"
ADMIN_PASSWORD = "Bench-Admin-Pw-1"


def control(port: int, sql: list[str]) -> list[dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/__grants/sql", json.dumps({"sql": sql, "role": "ACCOUNTADMIN"}), {"Content-Type": "application/json"})
    results = json.loads(conn.getresponse().read())["results"]
    conn.close()
    failed = [(s, r) for s, r in zip(sql, results) if not r["ok"]]
    if failed:
        sys.exit(f"setup failed: {failed[:3]}")
    return results


def make_account(roles: int, databases: int, schemas: int, tables: int, users: int) -> tuple[list[str], str]:
    """The setup statements and the spec (Permifrost format)."""
    setup = [f"CREATE WAREHOUSE WH_{w}" for w in range(10)]
    for d in range(databases):
        setup.append(f"CREATE DATABASE DB_{d:02d}")
        for s in range(schemas):
            setup.append(f"CREATE SCHEMA DB_{d:02d}.S_{s}")
            for t in range(tables):
                setup.append(f"CREATE TABLE DB_{d:02d}.S_{s}.T_{t} (ID INT)")
    spec = ['version: "1.0"', "", "databases:"]
    spec += [f"  - db_{d:02d}:\n      shared: no" for d in range(databases)]
    spec += ["", "warehouses:"] + [f"  - wh_{w}:\n      size: x-small" for w in range(10)]
    spec += ["", "roles:"]
    for r in range(roles):
        read_db = f"db_{r % databases:02d}"
        write_db = f"db_{(r + 1) % databases:02d}"
        lines = [f"  - role_{r:03d}:", f"      warehouses:\n        - wh_{r % 10}"]
        if r % 10:
            lines.append(f"      member_of:\n        - role_{r - r % 10:03d}")
        lines.append("      privileges:")
        lines.append(f"        databases:\n          read:\n            - {read_db}")
        if r % 4 == 0:
            lines.append(f"          write:\n            - {write_db}")
        lines.append(f"        schemas:\n          read:\n            - {read_db}.*")
        if r % 4 == 0:
            lines.append(f"          write:\n            - {write_db}.s_{r % schemas}")
        if r % 5 == 0:
            lines.append(f"        tables:\n          read:\n            - {read_db}.*.*")
        else:
            lines.append(f"        tables:\n          read:\n            - {read_db}.s_{r % schemas}.*")
        spec += lines
    spec += ["", "users:"]
    for u in range(users):
        first, second = u % roles, (u * 7 + 3) % roles
        spec.append(
            f"  - user_{u:03d}:\n      can_login: yes\n      email: user_{u:03d}@example.com\n"
            f"      default_role: role_{first:03d}\n      default_warehouse: wh_{first % 10}\n"
            f"      member_of:\n        - role_{first:03d}\n        - role_{second:03d}"
        )
    return setup, "\n".join(spec) + "\n"


def ours(binary: str, spec: str, port: int, command: str, extra_env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PERMISSION_BOT_ACCOUNT": "bench",
        "PERMISSION_BOT_USER": "ADMIN",
        "PERMISSION_BOT_PASSWORD": ADMIN_PASSWORD,
        "PERMISSION_BOT_ROLE": "SECURITYADMIN",
        "PERMISSION_BOT_URL": f"http://127.0.0.1:{port}",
        "PERMISSIONS_MAX_REVOKES": "0",
        "LOG_FORMAT": "text",
    }
    env.update(extra_env or {})
    started = time.monotonic()
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([binary, command, spec], env=env, capture_output=True, text=True, timeout=1800)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    done.cpu_seconds = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    return time.monotonic() - started, done


def permifrost(python: str, spec: str, port: int, timeout: float) -> tuple[float | None, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PERMISSION_BOT_USER": "ADMIN",
        "PERMISSION_BOT_PASSWORD": ADMIN_PASSWORD,
        "PERMISSION_BOT_ACCOUNT": f"127.0.0.1:{port}/DB_00?account=bench&protocol=http&role=SECURITYADMIN&ignored=",
        "PERMISSION_BOT_DATABASE": "DB_00",
        "PERMISSION_BOT_ROLE": "SECURITYADMIN",
        "PERMISSION_BOT_WAREHOUSE": "WH_0",
    }
    started = time.monotonic()
    try:
        done = subprocess.run(
            [python, "-m", "permifrost.cli", "run", spec, "--dry"],
            env=env, capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return None, out[-2000:]
    elapsed = time.monotonic() - started
    if done.returncode != 0 or "Error" in done.stderr[-500:]:
        return None, (done.stdout[-1500:] + "\n" + done.stderr[-2500:])
    return elapsed, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True, help="the permissions binary")
    parser.add_argument("--python", required=True, help="python of the project venv (fakesnow)")
    parser.add_argument("--permifrost-python", help="python of a venv with permifrost==0.15.5")
    parser.add_argument("--roles", type=int, default=500)
    parser.add_argument("--databases", type=int, default=50)
    parser.add_argument("--schemas", type=int, default=10)
    parser.add_argument("--tables", type=int, default=2)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--permifrost-timeout", type=float, default=900, help="seconds before Permifrost's run is abandoned")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="permissions-bench-"))
    port = free_port()
    log = open(work / "emulator.log", "wb")
    emulator = subprocess.Popen(
        [args.python, str(EMULATOR), "-p", str(port), "--admin-password", ADMIN_PASSWORD],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    try:
        wait_for(port, 120, "the emulator")
        setup, spec_text = make_account(args.roles, args.databases, args.schemas, args.tables, args.users)
        spec = work / "roles.yml"
        spec.write_text(spec_text)
        t = time.monotonic()
        for start in range(0, len(setup), 200):
            control(port, setup[start:start + 200])
        print(f"setup: {len(setup)} objects in {time.monotonic() - t:.1f} s", flush=True)

        # Converge once (no added latency): the account the plans read.
        elapsed, done = ours(args.binary, str(spec), port, "apply", {"PERMISSIONS_PASSWORD_FILE": str(work / "passwords.tsv")})
        if done.returncode != 0:
            sys.exit(f"apply failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        print(f"first apply: {done.stdout.splitlines()[0] if done.stdout else ''} "
              f"({elapsed:.1f} s, no added latency)", flush=True)

        results = {"account": {"roles": args.roles, "databases": args.databases, "schemas": args.databases * args.schemas,
                               "tables": args.databases * args.schemas * args.tables, "users": args.users},
                   "latency_ms": args.latency_ms}
        latency = Latency(port, args.latency_ms / 1000)
        zero = Latency(port, 0)

        for name, proxy in (("ours_no_latency", zero), ("ours", latency)):
            proxy.take()
            elapsed, done = ours(args.binary, str(spec), proxy.port, "plan", {"PERMISSIONS_CONCURRENCY": str(args.concurrency)})
            counts = proxy.take()
            if done.returncode != 0 or not done.stdout.startswith("No changes"):
                sys.exit(f"plan of the converged account failed or was not empty:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
            results[name] = {"seconds": round(elapsed, 2), "cpu_seconds": round(done.cpu_seconds, 2),
                             "statements": counts.get("/queries/v1/query-request", 0),
                             "logins": counts.get("/session/v1/login-request", 0), "requests": sum(counts.values())}
            print(f"{name}: {results[name]}", flush=True)

        if args.permifrost_python:
            latency.take()
            elapsed, output = permifrost(args.permifrost_python, str(spec), latency.port, args.permifrost_timeout)
            counts = latency.take()
            entry = {"statements": counts.get("/queries/v1/query-request", 0),
                     "logins": counts.get("/session/v1/login-request", 0), "requests": sum(counts.values())}
            if elapsed is None:
                entry["seconds"] = None
                entry["error"] = output
                print(f"permifrost did not finish: {entry}", flush=True)
            else:
                entry["seconds"] = round(elapsed, 2)
                entry["pending_statements"] = sum(1 for line in output.splitlines() if "[PENDING]" in line)
                print(f"permifrost: {entry}", flush=True)
                results["speedup"] = round(elapsed / results["ours"]["seconds"], 1)
                results["round_trip_ratio"] = round(entry["requests"] / max(1, results["ours"]["requests"]), 1)
            results["permifrost"] = entry
        print(json.dumps(results, indent=2))
    finally:
        emulator.terminate()
        try:
            emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.kill()


if __name__ == "__main__":
    main()
