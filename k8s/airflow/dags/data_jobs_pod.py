"""The one way the DAGs here run a data-jobs image: `job_pod` builds a KubernetesPodOperator with
the job's image, its variables from Kubernetes Secrets, default resources, timeouts, the
restricted Pod Security settings, and a record of its failure; `failure_alert` adds the task
that posts a DAG run's failures to Mattermost by running the webhook-alert image.

Not a DAG file (listed in .airflowignore); the DAG files import it. tests/deploy/check_dags.py
runs every DAG with Airflow's own runtime (`dag.test()`, the Kubernetes API faked at the
client) and checks the pods the provider builds against each job's `--env-schema`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from kubernetes.client import models as k8s

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from airflow.sdk import Asset

# The workspace version (Cargo.toml). The deployment check compares it with the version the
# binaries report, so a release that forgets to bump it here fails CI.
VERSION = "0.1.0"
# Where the images live, with a trailing slash ("123456789012.dkr.ecr.us-east-1.amazonaws.com/");
# empty: images loaded on the nodes as `make images` builds them. Then the pods never pull:
# `data-jobs/<job>` alone would resolve to Docker Hub, whose namespace is not ours.
REGISTRY = os.environ.get("DATA_JOBS_REGISTRY", "")
PULL_POLICY = "IfNotPresent" if REGISTRY else "Never"
# The namespace the job pods run in: the one the Secrets and the ServiceAccount are in.
NAMESPACE = os.environ.get("DATA_JOBS_NAMESPACE", "airflow")

# dbt runs in data-jobs/dbt: the official dbt-snowflake image with transform/dbt in its working
# directory (docker/dbt, `make image-dbt`), tagged with the workspace version as ours are.

# The Secret existing deployments have (the Python jobs' variable names), and the one holding
# what the new jobs need besides (k8s/secrets.yaml).
SHARED_SECRET = "airflow"
JOBS_SECRET = "data-jobs"

SERVICE_ACCOUNT = "data-jobs"
# Where the permissions spec ConfigMap (k8s/roles-configmap.yaml) is mounted.
SPEC_DIR = "/etc/data-jobs"
SPEC_CONFIGMAP = "data-jobs-roles"

# The seed's per-pod defaults; a task may pass its own.
DEFAULT_RESOURCES = k8s.V1ResourceRequirements(
    requests={"cpu": "50m", "memory": "100Mi"},
    limits={"cpu": "500m", "memory": "500Mi"},
)

# What each job reads from the Secrets, as (variable, Secret, key).
SNOWFLAKE_LOAD = [
    (name, SHARED_SECRET, name)
    for name in (
        "SNOWFLAKE_ACCOUNT",
        "SNOWFLAKE_LOAD_USER",
        "SNOWFLAKE_LOAD_PRIVATE_KEY",
        "SNOWFLAKE_LOAD_ROLE",
        "SNOWFLAKE_LOAD_DATABASE",
        "SNOWFLAKE_LOAD_WAREHOUSE",
    )
]
STAGES = [
    (name, SHARED_SECRET, name)
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCOUNT_ID",
        "RELEASE_LOCATION",
        "DIAGNOSTIC_LOCATION_ONE",
        "DIAGNOSTIC_LOCATION_TWO",
    )
] + [("STAGE_ROOT", JOBS_SECRET, "STAGE_ROOT")]
JOB_SECRETS: dict[str, list[tuple[str, str, str]]] = {
    "stage-import": SNOWFLAKE_LOAD + STAGES,
    "pg-job": [("HEROKU_POSTGRESQL_URL", SHARED_SECRET, "HEROKU_POSTGRESQL_URL")],
    # The extracts go through S3 (the keys need write access to PG_REPLICATE_STAGE_URL).
    "pg-replicate": [("HEROKU_POSTGRESQL_URL", SHARED_SECRET, "HEROKU_POSTGRESQL_URL")]
    + SNOWFLAKE_LOAD
    + [
        (name, SHARED_SECRET, name)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    ]
    + [("PG_REPLICATE_STAGE_URL", JOBS_SECRET, "PG_REPLICATE_STAGE_URL")],
    "permissions": [
        (name, SHARED_SECRET, name)
        for name in (
            "PERMISSION_BOT_ACCOUNT",
            "PERMISSION_BOT_USER",
            "PERMISSION_BOT_PRIVATE_KEY",
            "PERMISSION_BOT_ROLE",
            "PERMISSION_BOT_WAREHOUSE",
            "PERMISSION_BOT_DATABASE",
        )
    ]
    # apply's new users' passwords are encrypted to the admin's age key (never in clear text
    # in the task log).
    + [("PERMISSIONS_PASSWORD_RECIPIENT", JOBS_SECRET, "PERMISSIONS_PASSWORD_RECIPIENT")],
    "webhook-alert": [("MATTERMOST_WEBHOOK_URL", SHARED_SECRET, "MATTERMOST_WEBHOOK_URL")],
    "dbt": [("SNOWFLAKE_ACCOUNT", SHARED_SECRET, "SNOWFLAKE_ACCOUNT")]
    + [
        (name, SHARED_SECRET, name)
        for name in (
            "SNOWFLAKE_TRANSFORM_USER",
            "SNOWFLAKE_TRANSFORM_ROLE",
            "SNOWFLAKE_TRANSFORM_SCHEMA",
            "SNOWFLAKE_TRANSFORM_WAREHOUSE",
        )
    ]
    + [("SNOWFLAKE_TRANSFORM_PASSWORD", JOBS_SECRET, "SNOWFLAKE_TRANSFORM_PASSWORD")],
}
# stage-import's sources (the catalog's names) -> the table each loads. The tables are Assets:
# stage_import's tasks update them, the transform DAG runs when all have been.
LOADS = {
    "licenses": "raw.licenses.licenses",
    "releases": "raw.releases.log_entries",
    "diagnostics": "raw.diagnostics.log_entries",
    "push_proxy": "raw.push_proxy.logs",
    "push_proxy_test": "raw.push_proxy.test_logs",
    "push_proxy_de": "raw.push_proxy.de_logs",
}

# Jobs that write temporary files: the root filesystem is read-only, /tmp is an emptyDir of
# this size.
TMP_SIZES = {"stage-import": "1Gi", "pg-job": "1Gi", "dbt": "1Gi", "pg-replicate": "20Gi"}

# pg-replicate spools one table at a time in /tmp: the read (at most PG_REPLICATE_MAX_TABLE_BYTES
# of CSV) and, for Snowflake, its gzipped parts beside it, so the cap is half the volume. A read
# stuck on the server is cancelled by it well inside the task's timeout.
REPLICATE_ENV = {
    "PG_REPLICATE_MAX_TABLE_BYTES": str(10 * 1024**3),
    "PG_REPLICATE_STATEMENT_TIMEOUT_SECS": "1800",
}

# How long a task may run before Airflow fails it (and the pod's own deadline, in case the
# worker is gone). A daily load of every file of a day, with its lookback, fits in the first.
# They nest (tests/deploy/check_dags.py checks it): a DAG's longest chain of tasks, with every
# attempt and retry delay, then the alert, fits in its dagrun_timeout, so that a run that
# hangs still alerts before the scheduler times it out and skips the alert:
#   stage_import  2 x 2.5 h + 5 min retry delay, then 5 min alert   <= 6 h
#   transform     2 x 80 min + 5 min, then 5 min                    <= 3 h
#   pg_job        3 scripts x 15 min (no retries: the next hour is), then 5 min  <= 55 min
#   pg_replicate  45 min (no retries: the next hour is), then 5 min  <= 55 min
#   permissions   plan 25 min, apply 25 min, then 5 min             <= 1 h
TIMEOUTS = {
    "stage-import": timedelta(hours=2, minutes=30),
    "pg-job": timedelta(minutes=15),
    "pg-replicate": timedelta(minutes=45),
    "permissions": timedelta(minutes=25),
    "webhook-alert": timedelta(minutes=5),
    "dbt": timedelta(minutes=80),
}
# A cold pull of the dbt image (~1 GB, Python and dbt) takes minutes; the jobs' are a few MB.
STARTUP_TIMEOUTS = {"dbt": 900}
STARTUP_TIMEOUT = 300
# The dbt image runs as root unless told: any non-root user can read its Python.
DBT_UID = 10001
# dbt writes its artefacts and logs beside the project, which is read-only here. Its Snowflake
# sessions carry the task run in QUERY_TAG (profiles.yml), as our jobs' do (README "Watching
# the jobs"); tojson quotes each value as JSON.
DBT_ENV = {
    "DBT_TARGET_PATH": "/tmp/dbt-target",
    "DBT_LOG_PATH": "/tmp/dbt-logs",
    "HOME": "/tmp",
    "DBT_QUERY_TAG": (
        '{"job": "dbt", "version": "' + VERSION + '", "dag_id": {{ ti.dag_id | tojson }}, '
        '"task_id": {{ ti.task_id | tojson }}, "dag_run_id": {{ run_id | tojson }}, '
        '"try_number": {{ ti.try_number }}}'
    ),
}

# Who runs a pod, for our jobs' kit (job_kit::run): the names Airflow gives its task context
# when it exports it (AIRFLOW_CTX_*, as BashOperator does), and the task's log page. The jobs
# put them on every log line, in Snowflake's QUERY_TAG, and in their lineage events and metrics.
RUN_CONTEXT = {
    "AIRFLOW_CTX_DAG_ID": "{{ ti.dag_id }}",
    "AIRFLOW_CTX_TASK_ID": "{{ ti.task_id }}",
    "AIRFLOW_CTX_DAG_RUN_ID": "{{ run_id }}",
    "AIRFLOW_CTX_TRY_NUMBER": "{{ ti.try_number }}",
    "JOB_LOG_URL": "{{ ti.log_url }}",
}

# Lineage (README "Watching the jobs"): where our jobs send OpenLineage events, from the
# workers' environment like DATA_JOBS_REGISTRY; unset, they send none. Where the Airflow
# OpenLineage provider is installed, each pod's run is a child of its task's run, in the task's
# namespace: the provider's own macros give the parent and root runs (as dbt-ol reads them).
LINEAGE_URL = os.environ.get("DATA_JOBS_OPENLINEAGE_URL", "")
LINEAGE_FROM_PROVIDER = {
    "OPENLINEAGE_NAMESPACE": "{{ macros.OpenLineageProviderPlugin.lineage_job_namespace() }}",
    "OPENLINEAGE_PARENT_ID": "{{ macros.OpenLineageProviderPlugin.lineage_parent_id(task_instance) }}",
    "OPENLINEAGE_ROOT_PARENT_ID": (
        "{{ macros.OpenLineageProviderPlugin.lineage_root_parent_id(task_instance) }}"
    ),
}


def lineage_env(run_context: Mapping[str, str]) -> dict[str, str]:
    """The lineage variables of a job pod: none unless DATA_JOBS_OPENLINEAGE_URL is set. A
    pod built outside a task (its own `run_context`) has no task run to be the child of."""
    if not LINEAGE_URL:
        return {}
    if run_context is not RUN_CONTEXT:
        return {"OPENLINEAGE_URL": LINEAGE_URL}
    try:
        from airflow.providers.openlineage.plugins.macros import lineage_parent_id  # noqa: F401
        from airflow.providers.openlineage.conf import is_disabled
    except ImportError:
        return {"OPENLINEAGE_URL": LINEAGE_URL}
    if is_disabled():
        # The provider loads no plugin then, so its macros would not render.
        return {"OPENLINEAGE_URL": LINEAGE_URL}
    return {"OPENLINEAGE_URL": LINEAGE_URL, **LINEAGE_FROM_PROVIDER}


DEFAULT_ARGS: dict[str, Any] = {
    "owner": "data-engineering",
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
}
# The XCom key under which a failed task leaves its error for the alert task.
FAILURE_KEY = "data_jobs_failure"
# What the alert says of a failed task that left no error: its process never called back.
DIED = "failed without calling back (the task process died: heartbeat timeout, OOM kill)"


def image(job: str) -> str:
    """The image of one of our jobs, as docker/build-image.sh names it."""
    return f"{REGISTRY}data-jobs/{job}:{VERSION}"


def table_asset(table: str) -> Asset:
    return Asset(name=table, uri=f"snowflake://{table.replace('.', '/')}")


def secrets(job: str) -> list[Secret]:
    return [Secret("env", var, secret, key) for var, secret, key in JOB_SECRETS[job]]


def job_pod(
    job: str,
    task_id: str,
    arguments: Iterable[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    resources: k8s.V1ResourceRequirements | None = None,
    operator: type[KubernetesPodOperator] = KubernetesPodOperator,
    run_context: Mapping[str, str] = RUN_CONTEXT,
    **kwargs: Any,
) -> KubernetesPodOperator:
    """A task running `job` (one of ours, dbt's included) with `arguments`.

    `task_id` doubles as the pod's name, so it uses hyphens (a pod name may not contain
    underscores). `env` holds the non-secret settings; secrets come only from JOB_SECRETS.
    `run_context` tells the job who runs it; a pod built outside a task (the timeout alert)
    passes its own, as nothing renders the templates there.
    """
    volumes: list[k8s.V1Volume] = []
    mounts: list[k8s.V1VolumeMount] = []
    if job in TMP_SIZES:
        volumes.append(
            k8s.V1Volume(
                name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=TMP_SIZES[job])
            )
        )
        mounts.append(k8s.V1VolumeMount(name="tmp", mount_path="/tmp"))
    if job == "permissions":
        volumes.append(
            k8s.V1Volume(name="spec", config_map=k8s.V1ConfigMapVolumeSource(name=SPEC_CONFIGMAP))
        )
        mounts.append(k8s.V1VolumeMount(name="spec", mount_path=SPEC_DIR, read_only=True))
    timeout = TIMEOUTS[job]
    kwargs.setdefault("on_failure_callback", record_failure)
    uid = DBT_UID if job == "dbt" else 65532
    return operator(
        task_id=task_id,
        name=task_id,
        # Explicit: the workers' own namespace and ServiceAccount token (chart values) are
        # the credentials; a kubeconfig connection is not used.
        in_cluster=True,
        namespace=NAMESPACE,
        image=image(job),
        # Versioned tags never change, so a node's copy is the right one.
        image_pull_policy=PULL_POLICY,
        arguments=list(arguments),
        env_vars={
            **(DBT_ENV if job == "dbt" else {**run_context, **lineage_env(run_context)}),
            **dict(env or {}),
        },
        secrets=secrets(job),
        container_resources=resources or DEFAULT_RESOURCES,
        service_account_name=SERVICE_ACCOUNT,
        automount_service_account_token=False,
        labels={"app.kubernetes.io/name": job, "app.kubernetes.io/part-of": "data-jobs"},
        # The Pod Security "restricted" profile, for every pod.
        security_context=k8s.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=uid,
            run_as_group=uid,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        container_security_context=k8s.V1SecurityContext(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
        volumes=volumes,
        volume_mounts=mounts,
        execution_timeout=timeout,
        active_deadline_seconds=int(timeout.total_seconds()) + 300,
        startup_timeout_seconds=STARTUP_TIMEOUTS.get(job, STARTUP_TIMEOUT),
        # The kit stops a job within 20 s of SIGTERM.
        termination_grace_period=30,
        get_logs=True,
        # CreateContainerConfigError (a missing Secret key), ImagePullBackOff and OOMKilled
        # show only in the pod's events, which are gone once the pod is deleted.
        log_events_on_failure=True,
        # The pod spec in the exception would end up in the alert; the log link is enough.
        log_pod_spec_on_failure=False,
        on_finish_action="delete_pod",
        **kwargs,
    )


def record_failure(context: Mapping[str, Any]) -> None:
    """on_failure_callback of every job task: leaves the error for the DAG's alert task.

    Runs no operator and starts no pod: the alert task does that, also for a task whose
    process died without calling back (heartbeat timeout, OOM-killed worker).
    """
    error = str(context.get("exception") or "")[:2000] or "failed (see the task log)"
    context["ti"].xcom_push(key=FAILURE_KEY, value=error)


def failure_alert(tasks: Sequence[KubernetesPodOperator]) -> KubernetesPodOperator:
    """The DAG's alert: once all of `tasks` are done, runs webhook-alert if any failed, with
    every failed task's id, error and log link in one post. `all_done`, not `one_failed`:
    one_failed fires at the first failure and never reports a second, parallel one. An
    ordinary task on a worker, so it also alerts about a task whose process died without
    calling back.
    """
    alert = job_pod(
        "webhook-alert",
        task_id="failure-alert",
        env={
            "ALERT_DAG_ID": "{{ dag.dag_id }}",
            "ALERT_RUN_ID": "{{ run_id }}",
            # A manual run (Airflow 3) has no logical date, and no `ts`: its time is when it was
            # asked to run.
            "ALERT_EXECUTION_DATE": "{{ dag_run.logical_date or dag_run.run_after }}",
        },
        operator=FailureAlertOperator,
        trigger_rule="all_done",
        retries=0,
        on_failure_callback=None,
    )
    for task in tasks:
        task >> alert
    return alert


def alert_timed_out_run(context: Mapping[str, Any]) -> None:
    """Every DAG's on_failure_callback: alerts a run that hit its dagrun_timeout.

    When a run times out, Airflow's scheduler marks every unfinished task SKIPPED, the
    failure-alert task among them, and asks the DAG processor to run this callback (reason
    "timed_out"). It starts the webhook-alert pod itself, without waiting for it: the DAG
    processor has no task of its own to run it in. Any other failed run (reason
    "task_failure") was alerted by its failure-alert task. The DAG processor needs the
    ServiceAccount token and the pod-launching Role the workers have (k8s/README.md).
    """
    if context.get("reason") != "timed_out":
        return
    dag = context["dag"]
    run_id = str(context["run_id"])
    base_url = _airflow_base_url().rstrip("/")
    link = f"{base_url}/dags/{dag.dag_id}/runs/{run_id}"
    env = {
        "ALERT_DAG_ID": dag.dag_id,
        "ALERT_RUN_ID": run_id,
        "ALERT_TASK_ID": "(the whole run)",
        "ALERT_ERROR": (
            f"the run did not finish within its dagrun_timeout ({dag.dagrun_timeout}): Airflow "
            "skipped every task that had not finished, the failure alert among them"
        ),
        "ALERT_LOG_URL": link,
    }
    if base_url:
        env["AIRFLOW_BASE_URL"] = base_url
    alert = job_pod(
        "webhook-alert",
        task_id="timeout-alert",
        env=env,
        run_context={
            "AIRFLOW_CTX_DAG_ID": dag.dag_id,
            "AIRFLOW_CTX_TASK_ID": "timeout-alert",
            "AIRFLOW_CTX_DAG_RUN_ID": run_id,
        },
        on_failure_callback=None,
    )
    pod = alert.build_pod_request_obj(None)
    pod.metadata.labels = {
        **(pod.metadata.labels or {}),
        "dag_id": _label(dag.dag_id),
        "run_id": _label(run_id),
        "task_id": "timeout-alert",
    }
    alert.hook.core_v1_client.create_namespaced_pod(alert.namespace, pod)


def _label(value: str) -> str:
    """`value` as a Kubernetes label value: at most 63 of [A-Za-z0-9_.-], alphanumeric at both
    ends."""
    cleaned = "".join(c if c.isalnum() or c in "_.-" else "_" for c in value)[:63]
    return cleaned.strip("_.-") or "none"


class FailureAlertOperator(KubernetesPodOperator):
    """The webhook-alert pod, with the variables of what failed upstream filled in when it
    runs. Skipped when nothing failed; it fails after posting: it is the run's one leaf, and a
    leaf's success would mark the DAG run a success.
    """

    def execute(self, context: Any) -> Any:
        ti = context["ti"]
        upstream = sorted(self.upstream_task_ids)
        states = _task_states(ti, upstream)
        # One task at a time: a list of task ids returns only the values found, unlabelled.
        recorded = {t: ti.xcom_pull(task_ids=t, key=FAILURE_KEY) for t in upstream}
        errors = {t: str(e) for t, e in recorded.items() if e}
        failed = [t for t in upstream if states.get(t) == "failed" or t in errors]
        if not failed:
            from airflow.exceptions import AirflowSkipException

            raise AirflowSkipException("no task of this run failed: nothing to alert")
        base_url = _airflow_base_url().rstrip("/")
        run_id = context["run_id"]
        links = [f"{base_url}/dags/{ti.dag_id}/runs/{run_id}/tasks/{t}" for t in failed]
        # Each failure with its own log link; the first one's is also ALERT_LOG_URL.
        lines = [
            f"{t}: {errors.get(t) or DIED}\n  log: {link}"
            for t, link in zip(failed, links)
        ]
        env = _env_dict(self.env_vars)
        env.update(
            {
                "ALERT_TASK_ID": ", ".join(failed) or "(unknown)",
                "ALERT_ERROR": "\n".join(lines)[:4000],
                "ALERT_LOG_URL": links[0] if links else "",
            }
        )
        if base_url:
            env["AIRFLOW_BASE_URL"] = base_url
        self.env_vars = env
        super().execute(context)
        from airflow.exceptions import AirflowFailException

        raise AirflowFailException(
            f"posted the failure of {env['ALERT_TASK_ID']} to Mattermost; this task fails "
            "so that the DAG run shows as failed"
        )


def _env_dict(env_vars: Any) -> dict[str, str]:
    """A task's env_vars as a dict: the operator holds a dict or, once it built a pod, a list
    of V1EnvVar."""
    if isinstance(env_vars, dict):
        return dict(env_vars)
    return {e.name: e.value for e in env_vars or []}


def _task_states(ti: Any, task_ids: list[str]) -> dict[str, str]:
    """The states of this run's `task_ids`, from the API server (Airflow 3 workers have no
    database)."""
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=task_ids, run_ids=[ti.run_id])
    return {t: str(s) for t, s in (states.get(ti.run_id) or {}).items()}


def _airflow_base_url() -> str:
    try:
        from airflow.configuration import conf

        return conf.get("api", "base_url", fallback="") or ""
    except Exception:  # an alert without links beats no alert
        return ""
