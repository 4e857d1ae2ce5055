"""Runs the DAGs with Airflow's own runtime, offline: `dag.test()` on a throwaway SQLite
metadata database, with the Kubernetes API faked at the kubernetes client (CoreV1Api), so
that every KubernetesPodOperator builds, renders and submits its real pod exactly as on a
cluster, and the pods "run" with the exit code the test chooses.

Nothing of the DAGs or of the provider is replaced: the fake answers the API calls the
provider makes (create, read, list and delete pods, read logs and events) and records the pod
bodies it was sent.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# The base URL the alert links are checked against ([api] base_url).
BASE_URL = "https://airflow.example.com"
# Where the jobs send lineage (the DAG helper's DATA_JOBS_OPENLINEAGE_URL), and the namespace
# the OpenLineage provider names the tasks' runs in; its own events go to the console (the log).
LINEAGE_URL = "http://marquez.example.com:5000"
LINEAGE_NAMESPACE = "airflow-check"
# Airflow's log of the runs, kept out of the checker's output.
LOG = Path(tempfile.mkdtemp(prefix="airflow-log-")) / "airflow.log"


def prepare(dags_dir: Path) -> None:
    """Airflow reads its settings at import: a throwaway home and database, no examples."""
    home = tempfile.mkdtemp(prefix="airflow-home-")
    os.environ["AIRFLOW_HOME"] = home
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_dir)
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home}/airflow.db"
    os.environ["AIRFLOW__API__BASE_URL"] = BASE_URL
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    os.environ["DATA_JOBS_OPENLINEAGE_URL"] = LINEAGE_URL
    os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"] = '{"type": "console"}'
    os.environ["AIRFLOW__OPENLINEAGE__NAMESPACE"] = LINEAGE_NAMESPACE


@contextlib.contextmanager
def quiet():
    """Airflow's and the runs' output go to LOG: the checker's stdout is its report."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(LOG, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def load(dags_dir: Path) -> Any:
    with quiet():
        try:  # Airflow 3.0 and 3.1
            from airflow.models.dagbag import DagBag
        except ImportError:  # pragma: no cover - later Airflow
            from airflow.dag_processing.dagbag import DagBag
        return DagBag(dag_folder=str(dags_dir), safe_mode=False)


def sync(bag: Any) -> None:
    """The metadata database, and the DAGs in it as the DAG processor writes them (Assets
    are active only once a DAG that names them is stored)."""
    with quiet():
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.utils import db

        db.initdb()
        DagBundlesManager().sync_bundles_to_db()
        bag.sync_to_db("dags-folder", None)


@dataclass
class Run:
    run_id: str
    state: str
    run_after: datetime
    # task id -> the pod bodies submitted for it, as sent to the API server.
    pods: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # task ids whose pod's events the provider read.
    events_listed: set[str] = field(default_factory=set)


class FakeCluster:
    """The API server's side of the calls KubernetesPodOperator makes.

    The pods of the `failing` tasks exit 1, the others 0; those of the `sleeping` tasks run for
    that many seconds first. With `record_dir`, every pod body sent is also written there as a
    JSON file (for a run whose tasks are other processes: `fake_cluster/sitecustomize.py`).
    """

    def __init__(
        self,
        failing: list[str],
        sleeping: dict[str, float] | None = None,
        record_dir: Path | None = None,
    ):
        self.failing = failing
        self.sleeping = sleeping or {}
        self.record_dir = record_dir
        self.created: dict[str, float] = {}
        self.bodies: list[dict[str, Any]] = []
        self.events_listed: set[str] = set()

    def core_v1(self) -> type:
        cluster = self
        from kubernetes import client
        from kubernetes.client import models as k8s

        class Logs:
            def stream(self, *args: Any, **kwargs: Any):
                yield b"2026-11-02T00:00:01.000000000Z done\n"

            def __iter__(self):
                return self.stream()

            def close(self) -> None:
                pass

            def release_conn(self) -> None:
                pass

        class CoreV1Api:
            def __init__(self, api_client: Any = None, **kwargs: Any):
                self.api_client = api_client or client.ApiClient()

            def _body(self, name: str) -> dict[str, Any]:
                return next(b for b in reversed(cluster.bodies) if b["metadata"]["name"] == name)

            def _task(self, name: str) -> str:
                return (self._body(name)["metadata"].get("labels") or {}).get("task_id", "")

            def _pod(self, name: str, namespace: str) -> Any:
                body = self._body(name)
                task = self._task(name)
                code = 1 if task in cluster.failing else 0
                containers = body["spec"]["containers"]
                import time

                if time.time() < cluster.created.get(name, 0) + cluster.sleeping.get(task, 0):
                    return k8s.V1Pod(
                        metadata=k8s.V1ObjectMeta(
                            name=name, namespace=namespace, labels=body["metadata"].get("labels"),
                            resource_version="1",
                        ),
                        spec=k8s.V1PodSpec(containers=[k8s.V1Container(name=c["name"]) for c in containers]),
                        status=k8s.V1PodStatus(
                            phase="Running",
                            container_statuses=[
                                k8s.V1ContainerStatus(
                                    name=c["name"], image=c.get("image", ""), image_id="", ready=True,
                                    restart_count=0,
                                    state=k8s.V1ContainerState(running=k8s.V1ContainerStateRunning()),
                                )
                                for c in containers
                            ],
                        ),
                    )
                return k8s.V1Pod(
                    metadata=k8s.V1ObjectMeta(
                        name=name,
                        namespace=namespace,
                        labels=body["metadata"].get("labels"),
                        resource_version="1",
                    ),
                    spec=k8s.V1PodSpec(
                        containers=[k8s.V1Container(name=c["name"]) for c in containers]
                    ),
                    status=k8s.V1PodStatus(
                        phase="Failed" if code else "Succeeded",
                        container_statuses=[
                            k8s.V1ContainerStatus(
                                name=c["name"],
                                image=c.get("image", ""),
                                image_id="",
                                ready=False,
                                restart_count=0,
                                state=k8s.V1ContainerState(
                                    terminated=k8s.V1ContainerStateTerminated(
                                        exit_code=code, reason="Error" if code else "Completed"
                                    )
                                ),
                            )
                            for c in containers
                        ],
                    ),
                )

            def create_namespaced_pod(self, namespace: str, body: Any, **kwargs: Any) -> Any:
                if not isinstance(body, dict):
                    body = self.api_client.sanitize_for_serialization(body)
                body.setdefault("metadata", {})["namespace"] = namespace
                cluster.bodies.append(body)
                import json
                import time

                cluster.created[body["metadata"]["name"]] = time.time()
                if cluster.record_dir is not None:
                    out = cluster.record_dir / f"{body['metadata']['name']}.json"
                    out.write_text(json.dumps(body, sort_keys=True))
                return self._pod(body["metadata"]["name"], namespace)

            def read_namespaced_pod(self, name: str, namespace: str, **kwargs: Any) -> Any:
                return self._pod(name, namespace)

            def patch_namespaced_pod(self, name: str, namespace: str, body: Any, **kwargs: Any):
                return self._pod(name, namespace)

            def list_namespaced_pod(self, namespace: str, **kwargs: Any) -> Any:
                return k8s.V1PodList(items=[])

            def read_namespaced_pod_log(self, name: str, namespace: str, **kwargs: Any) -> Any:
                return Logs()

            def list_namespaced_event(self, namespace: str, **kwargs: Any) -> Any:
                selector = kwargs.get("field_selector") or ""
                name = selector.split("involvedObject.name=", 1)[-1].split(",", 1)[0]
                with contextlib.suppress(StopIteration):
                    cluster.events_listed.add(self._task(name))
                return k8s.CoreV1EventList(items=[])

            def delete_namespaced_pod(self, name: str, namespace: str, **kwargs: Any) -> None:
                return None

        return CoreV1Api


def test_run(dag: Any, failing: list[str]) -> Run:
    """One run of `dag` at its first scheduled time, every task once (no retries), the pods
    of the `failing` tasks exiting 1."""
    import kubernetes
    import airflow.providers.cncf.kubernetes.hooks.kubernetes as hook_module
    from airflow.timetables.base import TimeRestriction

    info = dag.timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=dag.start_date, latest=None, catchup=True),
    )
    cluster = FakeCluster(failing)
    fake = cluster.core_v1()
    saved = (kubernetes.client.CoreV1Api, hook_module.config.load_incluster_config)
    retries = {t.task_id: t.retries for t in dag.tasks}
    kubernetes.client.CoreV1Api = fake
    hook_module.client.CoreV1Api = fake
    # In-cluster credentials are the pod's token; there is no cluster here to read them from.
    hook_module.config.load_incluster_config = lambda *args, **kwargs: None
    for t in dag.tasks:
        t.retries = 0
    # dag.test() runs each task in process and skips the worker's startup(), which is where a
    # worker sets the task's log URL (`ti.log_url`, with Airflow's get_log_url_from_ti): set it
    # the same way before the task runs.
    import airflow.sdk.execution_time.task_runner as task_runner

    run_task = task_runner.run

    def run_as_a_worker(ti: Any, context: Any, log: Any) -> Any:
        ti.log_url = task_runner.get_log_url_from_ti(ti)
        return run_task(ti, context, log)

    task_runner.run = run_as_a_worker
    try:
        with quiet():
            dag_run = dag.test(logical_date=info.logical_date)
    finally:
        task_runner.run = run_task
        kubernetes.client.CoreV1Api = saved[0]
        hook_module.client.CoreV1Api = saved[0]
        hook_module.config.load_incluster_config = saved[1]
        for t in dag.tasks:
            t.retries = retries[t.task_id]
    run = Run(
        run_id=dag_run.run_id,
        state=str(getattr(dag_run.state, "value", dag_run.state)),
        run_after=info.run_after,
        events_listed=cluster.events_listed,
    )
    for body in cluster.bodies:
        task_id = (body["metadata"].get("labels") or {}).get("task_id", "")
        run.pods.setdefault(task_id, []).append(body)
    return run
