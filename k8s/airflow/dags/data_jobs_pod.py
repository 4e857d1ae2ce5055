"""The one way the DAGs here run a data-jobs image: `job_pod` builds a KubernetesPodOperator with
the job's image, its variables from Kubernetes Secrets, default resources, the images' non-root
security settings, and a failure alert that runs the webhook-alert image.

Not a DAG file (listed in .airflowignore); the DAG files import it. tests/deploy/check_dags.py
checks what these functions build against each job's `--env-schema`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
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
# empty: images loaded on the nodes as `make images` builds them.
REGISTRY = os.environ.get("DATA_JOBS_REGISTRY", "")

# dbt is the one image we do not build. The transform task expects the dbt project in the
# image's working directory (an image built FROM this one with the project copied in).
DBT_IMAGE = "ghcr.io/dbt-labs/dbt-snowflake:1.9.0"

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
        "SNOWFLAKE_LOAD_PASSWORD",
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
    "permissions": [
        (name, SHARED_SECRET, name)
        for name in (
            "PERMISSION_BOT_ACCOUNT",
            "PERMISSION_BOT_USER",
            "PERMISSION_BOT_PASSWORD",
            "PERMISSION_BOT_ROLE",
            "PERMISSION_BOT_WAREHOUSE",
            "PERMISSION_BOT_DATABASE",
        )
    ],
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

# Jobs that write temporary files: the root filesystem is read-only, /tmp is an emptyDir.
NEEDS_TMP = {"stage-import", "pg-job"}

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "data-engineering",
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
}


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
    alert: bool = True,
    **kwargs: Any,
) -> KubernetesPodOperator:
    """A task running `job` (one of ours, or "dbt") with `arguments`.

    `task_id` doubles as the pod's name, so it uses hyphens (a pod name may not contain
    underscores). `env` holds the non-secret settings; secrets come only from JOB_SECRETS.
    """
    volumes: list[k8s.V1Volume] = []
    mounts: list[k8s.V1VolumeMount] = []
    if job in NEEDS_TMP:
        volumes.append(
            k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit="1Gi"))
        )
        mounts.append(k8s.V1VolumeMount(name="tmp", mount_path="/tmp"))
    if job == "permissions":
        volumes.append(
            k8s.V1Volume(name="spec", config_map=k8s.V1ConfigMapVolumeSource(name=SPEC_CONFIGMAP))
        )
        mounts.append(k8s.V1VolumeMount(name="spec", mount_path=SPEC_DIR, read_only=True))
    if alert:
        kwargs.setdefault("on_failure_callback", FailureAlert())
    return KubernetesPodOperator(
        task_id=task_id,
        name=task_id,
        image=DBT_IMAGE if job == "dbt" else image(job),
        # Versioned tags never change, so a node's copy is the right one.
        image_pull_policy="IfNotPresent",
        arguments=list(arguments),
        env_vars=dict(env or {}),
        secrets=secrets(job),
        container_resources=resources or DEFAULT_RESOURCES,
        service_account_name=SERVICE_ACCOUNT,
        automount_service_account_token=False,
        labels={"app.kubernetes.io/name": job, "app.kubernetes.io/part-of": "data-jobs"},
        security_context=(
            k8s.V1PodSecurityContext(
                run_as_non_root=True,
                run_as_user=65532,
                run_as_group=65532,
                seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
            )
            if job != "dbt"
            else None
        ),
        container_security_context=k8s.V1SecurityContext(
            allow_privilege_escalation=False,
            read_only_root_filesystem=job != "dbt",
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
        volumes=volumes,
        volume_mounts=mounts,
        # The kit stops a job within 20 s of SIGTERM.
        termination_grace_period=30,
        get_logs=True,
        # The pod spec in the exception would end up in the alert; the log link is enough.
        log_pod_spec_on_failure=False,
        on_finish_action="delete_pod",
        **kwargs,
    )


class FailureAlert:
    """on_failure_callback: posts the failed task to Mattermost by running the webhook-alert
    image with the failure's details (DAG, task, run, try, log link, error).

    A class rather than a function so that the deployment check can build the alert's pod
    (`pod(context)`) and check it like any task.
    """

    def pod(self, context: Mapping[str, Any]) -> KubernetesPodOperator:
        ti = context["ti"]
        env = {
            "ALERT_DAG_ID": ti.dag_id,
            "ALERT_TASK_ID": ti.task_id,
            "ALERT_RUN_ID": ti.run_id,
            "ALERT_TRY_NUMBER": str(ti.try_number or ""),
            "ALERT_EXECUTION_DATE": str(context.get("ts") or ""),
            "ALERT_LOG_URL": getattr(ti, "log_url", "") or "",
            "ALERT_ERROR": str(context.get("exception") or ""),
        }
        end_date = getattr(ti, "end_date", None)
        if end_date is not None:
            env["ALERT_FAILED_AT"] = end_date.isoformat()
        base_url = _airflow_base_url()
        if base_url:
            env["AIRFLOW_BASE_URL"] = base_url
        return job_pod(
            "webhook-alert",
            # A pod name: at most 63 characters, no underscores.
            task_id=f"alert-{ti.task_id}".replace("_", "-")[:50],
            env=env,
            alert=False,
            # The alert runs inside the failed task's context: never adopt that task's pod.
            reattach_on_restart=False,
            retries=0,
        )

    def __call__(self, context: Mapping[str, Any]) -> None:
        self.pod(context).execute(context=context)


def _airflow_base_url() -> str:
    try:
        from airflow.configuration import conf

        return conf.get("api", "base_url", fallback="") or ""
    except Exception:  # an alert without links beats no alert
        return ""
