"""The failure alerts under Airflow's real scheduler, where `dag.test()` cannot show them: tasks
run in parallel, and a run that hits its dagrun_timeout has every unfinished task skipped, the
failure-alert task too. Run by tests/deployment.rs with the deploy venv:

    scheduler_run.py --dags k8s/airflow/dags

It starts `airflow standalone` (scheduler, DAG processor, triggerer and API server, the
LocalExecutor on a throwaway SQLite database) on two DAGs built with data_jobs_pod's own
helpers, the way the real DAGs are (job_pod, failure_alert, alert_timed_out_run):

- timed_out_run: one job task whose pod runs on past the run's 30 s dagrun_timeout;
- two_failures: three loads side by side, two of whose pods exit 1.

The Kubernetes API is airflow_runtime's fake (fake_cluster/sitecustomize.py puts it in every
Airflow process): pods "run" as told, and every pod body sent is kept. Then it checks that the
timed-out run's callback started the webhook-alert pod, that the failure-alert pod of the other
run names both failed loads, each with its log link, and that no run was alerted twice.

Every problem is printed as `error: <what>`, then `checked 2 runs: N problems`; exit 1 if there
was any, 0 if none.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BASE_URL = "https://airflow.example.com"
FAILING = ["diagnostics", "licenses"]
HUNG = "hung-script"
DEADLINE_SECONDS = 240

TEST_DAGS = '''
"""Two DAGs built with data_jobs_pod's helpers, as the real DAGs are, for scheduler_run.py."""
import sys
from datetime import timedelta
from pathlib import Path

import pendulum

from airflow.sdk import DAG

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_jobs_pod import DEFAULT_ARGS, alert_timed_out_run, failure_alert, job_pod  # noqa: E402

START = pendulum.datetime(2026, 1, 1, tz="UTC")
ARGS = {**DEFAULT_ARGS, "retries": 0}

with DAG(
    dag_id="timed_out_run",
    schedule=None,
    start_date=START,
    dagrun_timeout=timedelta(seconds=30),
    default_args=ARGS,
    on_failure_callback=alert_timed_out_run,
):
    failure_alert([job_pod("pg-job", task_id="hung-script", arguments=["opportunity-snapshot"])])

with DAG(
    dag_id="two_failures",
    schedule=None,
    start_date=START,
    dagrun_timeout=timedelta(minutes=10),
    default_args=ARGS,
    on_failure_callback=alert_timed_out_run,
):
    failure_alert(
        [
            job_pod("stage-import", task_id=source, arguments=[source])
            for source in ("licenses", "releases", "diagnostics")
        ]
    )
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def airflow_env(home: Path, record: Path) -> dict[str, str]:
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": BASE_URL,
            # One API server process: with the default four, uvicorn's supervisor kills a worker
            # that answers its ping late, which on a loaded 2-core machine (the whole suite at
            # once) fails the tasks' execution API calls and kills the hung task early.
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "PYTHONPATH": os.pathsep.join([str(HERE / "fake_cluster"), env.get("PYTHONPATH", "")]),
            "DATA_JOBS_FAKE_CLUSTER": json.dumps(
                {"record_dir": str(record), "failing": FAILING, "sleeping": {HUNG: 3600}}
            ),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        }
    )
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def stored_dags(database: Path) -> set[str]:
    """The DAGs the DAG processor has written to the metadata database."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
            return {row[0] for row in db.execute("SELECT dag_id FROM dag")}
    except sqlite3.Error:
        return set()


def pods(record: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(record.glob("*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except ValueError:  # being written
            continue
    return found


def labelled(bodies: list[dict[str, Any]], dag_id: str, task_id: str) -> list[dict[str, Any]]:
    return [
        b
        for b in bodies
        if (b["metadata"].get("labels") or {}).get("dag_id") == dag_id
        and (b["metadata"].get("labels") or {}).get("task_id") == task_id
    ]


def env_of(body: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in body["spec"]["containers"][0].get("env") or []}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dags", type=Path, required=True, help="k8s/airflow/dags")
    args = parser.parse_args()

    errors: list[str] = []
    home = Path(tempfile.mkdtemp(prefix="airflow-scheduler-run-"))
    record = home / "pods"
    record.mkdir()
    (home / "dags").mkdir()
    shutil.copy(args.dags / "data_jobs_pod.py", home / "dags" / "data_jobs_pod.py")
    (home / "dags" / "alert_paths.py").write_text(TEST_DAGS)
    env = airflow_env(home, record)
    log = open(home / "standalone.log", "w")
    airflow = subprocess.Popen(
        [str(Path(sys.executable).parent / "airflow"), "standalone"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started = time.time()
    try:
        wanted = ["timed_out_run", "two_failures"]
        loaded: set[str] = set()
        while time.time() - started < DEADLINE_SECONDS:
            loaded = stored_dags(home / "airflow.db")
            if set(wanted) <= loaded:
                break
            time.sleep(2)
        if not set(wanted) <= loaded:
            problems = cli(env, "dags", "list-import-errors").stdout.strip()[-1500:]
            errors.append(f"the DAG processor never loaded {set(wanted) - loaded}: {problems}")
        for dag_id in wanted if not errors else []:
            for command in (("dags", "unpause", dag_id), ("dags", "trigger", dag_id)):
                done = cli(env, *command)
                if done.returncode != 0:
                    errors.append(f"airflow {' '.join(command)}: {done.stderr.strip()[-500:]}")
        timed_out: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        while not errors and time.time() - started < DEADLINE_SECONDS:
            bodies = pods(record)
            timed_out = labelled(bodies, "timed_out_run", "timeout-alert")
            failed = labelled(bodies, "two_failures", "failure-alert")
            if timed_out and failed:
                break
            if airflow.poll() is not None:
                errors.append(f"airflow standalone ended with {airflow.returncode}")
                break
            time.sleep(2)
        # A failed run's callback (reason task_failure) runs after its alert: it must not
        # alert a second time.
        time.sleep(10)
        bodies = pods(record)
        if not errors:
            check_timed_out(labelled(bodies, "timed_out_run", "timeout-alert"), errors)
            check_two_failures(labelled(bodies, "two_failures", "failure-alert"), errors)
            if labelled(bodies, "two_failures", "timeout-alert"):
                errors.append("two_failures: the timeout callback alerted a run that did not time out")
            if labelled(bodies, "timed_out_run", "failure-alert"):
                errors.append("timed_out_run: its failure-alert task ran after the timeout")
    finally:
        os.killpg(airflow.pid, signal.SIGTERM)
        try:
            airflow.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(airflow.pid, signal.SIGKILL)
        log.close()
    for e in errors:
        print(f"error: {e}")
    if errors:
        print(f"(Airflow's log: {home / 'standalone.log'})")
    else:
        shutil.rmtree(home, ignore_errors=True)
    print(f"checked 2 runs in {time.time() - started:.0f} s: {len(errors)} problems")
    return 1 if errors else 0


def check_timed_out(bodies: list[dict[str, Any]], errors: list[str]) -> None:
    if len(bodies) != 1:
        errors.append(
            f"timed_out_run: {len(bodies)} alert pods after the run timed out, not 1 (the scheduler "
            "skips the failure-alert task; the DAG's on_failure_callback must alert)"
        )
        return
    body = bodies[0]
    env = env_of(body)
    image = body["spec"]["containers"][0]["image"]
    if "webhook-alert" not in image:
        errors.append(f"timed_out_run: the alert pod runs {image}, not webhook-alert")
    if env.get("ALERT_DAG_ID") != "timed_out_run" or "dagrun_timeout" not in (env.get("ALERT_ERROR") or ""):
        errors.append(f"timed_out_run: the alert does not say the run timed out: {env}")
    if not (env.get("ALERT_LOG_URL") or "").startswith(f"{BASE_URL}/dags/timed_out_run/runs/"):
        errors.append(f"timed_out_run: the alert links {env.get('ALERT_LOG_URL')!r}, not the run")


def check_two_failures(bodies: list[dict[str, Any]], errors: list[str]) -> None:
    if len(bodies) != 1:
        errors.append(f"two_failures: {len(bodies)} failure-alert pods, not 1")
        return
    env = env_of(bodies[0])
    if env.get("ALERT_TASK_ID") != ", ".join(FAILING):
        errors.append(
            f"two_failures: the alert names {env.get('ALERT_TASK_ID')!r}, not both failed loads "
            f"({', '.join(FAILING)})"
        )
    error = env.get("ALERT_ERROR") or ""
    for task_id in FAILING:
        if f"{task_id}: " not in error or f"/tasks/{task_id}" not in error:
            errors.append(f"two_failures: the alert carries no error and log link of {task_id}: {error!r}")


if __name__ == "__main__":
    sys.exit(main())
