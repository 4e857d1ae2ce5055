"""Checks the Airflow DAGs and the Kubernetes manifests under k8s/ against the jobs' real
environment contracts (their `--env-schema` JSON). Run by tests/deployment.rs with the deploy
venv (tests/deploy/requirements.txt):

    check_dags.py --k8s k8s --schema webhook-alert.json --schema pg-job.json ... \
        --stage-import-sources sources.txt --pg-job-scripts transform/sql --roles examples/roles.yml \
        --dbt-profiles transform/dbt/profiles.yml

Every problem is printed as `error: <where>: <what>`, all of them, then a summary line; exit 1
if there was any, 0 if none, 2 for bad usage.

The DAGs are run with Airflow's own runtime (airflow_runtime.py: `dag.test()` at each DAG's
first scheduled time, the Kubernetes API faked at the kubernetes client, the last job task's
pod exiting 1), so the pods checked are the ones the provider really builds and submits, with
their templates rendered. What it checks, per pod a DAG run submitted (the failure alert's
included) and per CronJob container:

- every DAG file imports without error and defines at least one DAG (Airflow's safe mode
  skips files silently, so a file that defines nothing is an error here);
- every task runs a KubernetesPodOperator whose image is one we build, at the version the
  binaries report (dbt's too: docker/dbt); an image without a registry is never pulled (pull
  policy Never);
- every variable the job requires is supplied, by a Secret or a literal: the schema's
  required ones, the ones production needs (NEEDS below), the ones a stage-import source's
  templates name (from `stage-import sources`), and for dbt the ones its profile's prod target
  reads without a default (and dbt runs that target);
- every supplied variable is one the job reads (a misspelt name is a missing variable);
- every Secret key referenced exists in the Secret manifests under k8s/;
- no secret value is written down: secret variables never come as literals, the Secret
  templates hold only <placeholders>, and no DAG file holds credential-looking text;
- the Pod Security "restricted" profile for every pod, dbt's included; resources; the
  images' non-root user and read-only root filesystem for our jobs;
- timeouts: each DAG's dagrun_timeout, each task's execution_timeout, each pod's and
  CronJob's activeDeadlineSeconds, pg-job's and pg-replicate's statement timeouts;
  pg-replicate's spool cap within its work volume; timeouts that nest: the
  longest chain of job tasks, every attempt and retry delay counted, then the alert, fits in
  the run's dagrun_timeout (when a run times out, the scheduler skips what has not finished,
  the alert included); CronJobs fail at once on exit
  code 2 (podFailurePolicy) instead of retrying a configuration error;
- the date each run loads: stage-import loads the day that ended before the run started,
  with a lookback;
- the failure alert: an all_done task downstream of every job task, and the DAG's
  on_failure_callback alert_timed_out_run for a run that times out (scheduler_run.py runs both
  under the real scheduler); in the run with two
  failed tasks (the last one and, where a task runs beside it, another) it posts once, with
  each failed task's id, recorded error and log link, the DAG run still ends failed, and
  the failed pods' events were read;
- in_cluster and a namespace on every task; pg-job scripts that exist, path variables that
  point into a mounted volume, and the roles ConfigMap equal to examples/roles.yml.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import airflow_runtime  # noqa: E402

# The DAG folder is the repository's: importing its files must leave no __pycache__ behind.
sys.dont_write_bytecode = True

# The schemas mark as required only what a job needs in every mode; these are what the
# deployed runs need besides. stage-import and pg-replicate: release images have no embedded warehouse, so
# Snowflake must be configured, and the stages are on S3 (keys, as the original job had).
# pg-job: every task runs a script, which connects. permissions: plan and apply log in.
# The label Kubernetes puts on a Job's pods naming the Job (1.27 and later).
JOB_NAME_FIELD = "metadata.labels['batch.kubernetes.io/job-name']"

NEEDS: dict[str, list[str]] = {
    "stage-import": [
        "SNOWFLAKE_ACCOUNT",
        "SNOWFLAKE_LOAD_USER",
        "SNOWFLAKE_LOAD_PRIVATE_KEY",
        "SNOWFLAKE_LOAD_WAREHOUSE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ],
    "pg-job": ["HEROKU_POSTGRESQL_URL"],
    # pg-replicate: its image, too, has no embedded warehouse; the extracts go through S3.
    "pg-replicate": [
        "HEROKU_POSTGRESQL_URL",
        "SNOWFLAKE_ACCOUNT",
        "SNOWFLAKE_LOAD_USER",
        "SNOWFLAKE_LOAD_PRIVATE_KEY",
        "SNOWFLAKE_LOAD_WAREHOUSE",
        "PG_REPLICATE_STAGE_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ],
    "permissions": ["PERMISSION_BOT_ACCOUNT", "PERMISSION_BOT_USER", "PERMISSION_BOT_PRIVATE_KEY"],
    "webhook-alert": [],
}


@dataclass
class DbtContract:
    """What transform/dbt's prod target reads: env_var('X') without a default is required."""

    required: set[str]
    optional: set[str]


def load_dbt_profiles(path: Path, target: str = "prod") -> DbtContract:
    profiles = yaml.safe_load(path.read_text())
    (profile,) = profiles.values()
    output = profile["outputs"][target]
    required: set[str] = set()
    optional: set[str] = set()
    for value in output.values():
        for m in ENV_VAR_CALL.finditer(str(value)):
            (optional if m.group(2) else required).add(m.group(1))
    return DbtContract(required=required, optional=optional - required)

# dbt's image (docker/dbt: the official dbt-snowflake image with transform/dbt in it) has no
# --env-schema: its contract is what the project's profiles.yml reads in the prod target
# (--dbt-profiles), and these, which dbt itself reads.
DBT_OWN_VARIABLES = {"DBT_TARGET_PATH", "DBT_LOG_PATH", "DBT_PROFILES_DIR", "DBT_TARGET", "HOME"}
ENV_VAR_CALL = re.compile(r"env_var\(\s*'([A-Za-z_][A-Za-z0-9_]*)'\s*(,)?")

# Names that hold secrets where no schema says so (dbt's variables).
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|WEBHOOK|PRIVATE_KEY")
# Text that looks like a credential wherever it appears in a DAG file.
CREDENTIAL_TEXT = [
    (re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:[^@\s/'\"]+@"), "a URL with a password"),
    (re.compile(r"/hooks/[A-Za-z0-9]{12,}"), "a webhook URL"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"(?i)password['\"]?\s*[=:]\s*['\"][^'\"{}<>]+['\"]"), "a password literal"),
]
PLACEHOLDER = re.compile(r"^<[^<>]+>$")
# The task each DAG ends in, that posts the run's failures.
ALERT_TASK = "failure-alert"
# Every DAG's on_failure_callback: the alert of a run that timed out (data_jobs_pod.py).
TIMEOUT_CALLBACK = "alert_timed_out_run"
IMAGE = re.compile(r"^(?:(?P<registry>.+)/)?data-jobs/(?P<job>[a-z0-9-]+):(?P<tag>[^:@/]+)$")
UID = 65532


@dataclass
class Schema:
    job: str
    version: str
    names: set[str]
    required: set[str]
    secret: set[str]
    kinds: dict[str, str]
    choices: dict[str, list[str]]
    aliases: dict[str, list[str]]


@dataclass
class Pod:
    """One container to check, whether from a DAG task or a manifest, in one shape."""

    where: str
    image: str
    args: list[str]
    literals: dict[str, str] = field(default_factory=dict)
    # variable -> (Secret name, key); a key of None: the whole Secret (envFrom).
    from_secrets: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    env_from_secrets: list[str] = field(default_factory=list)
    other_sources: set[str] = field(default_factory=set)
    resources: dict[str, dict[str, str]] | None = None
    run_as_non_root: bool = False
    run_as_user: int | None = None
    read_only_root: bool = False
    mounts: dict[str, str] = field(default_factory=dict)  # mount path -> volume name
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> source
    service_account: str | None = None
    pull_policy: str | None = None


class Checker:
    def __init__(
        self,
        k8s_dir: Path,
        schemas: dict[str, Schema],
        sources: dict[str, list[str]],
        scripts: Path | None,
        roles: Path | None,
        run_dags: set[str] | None = None,
        write_pods: Path | None = None,
        dbt: DbtContract | None = None,
    ):
        self.k8s = k8s_dir
        self.dbt = dbt
        self.run_dags = run_dags
        self.write_pods = write_pods
        self.schemas = schemas
        self.sources = sources
        self.scripts = scripts
        self.roles = roles
        self.errors: list[str] = []
        self.checked: list[str] = []
        self.secrets: dict[str, dict[str, str]] = {}
        self.configmaps: dict[str, dict[str, str]] = {}
        self.service_accounts: set[str] = set()
        self.cronjobs: list[tuple[str, dict[str, Any]]] = []
        version = {s.version for s in schemas.values()}
        if len(version) != 1:
            self.error("schemas", f"the binaries report different versions: {sorted(version)}")
        self.version = version.pop() if version else "?"
        for job, names in NEEDS.items():
            schema = schemas.get(job)
            for name in names:
                if schema and name not in schema.names:
                    self.error(
                        "check_dags.py",
                        f"NEEDS lists {name} for {job}, which its schema does not have",
                    )

    def error(self, where: str, what: str) -> None:
        self.errors.append(f"{where}: {what}")

    # ---- manifests -------------------------------------------------------------------------

    def load_manifests(self) -> None:
        for path in sorted(self.k8s.rglob("*.yaml")):
            rel = path.relative_to(self.k8s.parent)
            if "airflow" in path.relative_to(self.k8s).parts:
                continue  # chart values, not manifests
            try:
                docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
            except yaml.YAMLError as e:
                self.error(str(rel), f"not YAML: {e}")
                continue
            for doc in docs:
                kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
                where = f"{rel} {kind}/{name}"
                if kind == "Secret":
                    values = {**(doc.get("stringData") or {}), **(doc.get("data") or {})}
                    self.secrets[name] = {k: str(v) for k, v in values.items()}
                    for key, value in values.items():
                        if not PLACEHOLDER.match(str(value)):
                            self.error(
                                where,
                                f"key {key} holds a value, not a <placeholder>: templates never carry real values",
                            )
                elif kind == "ConfigMap":
                    self.configmaps[name] = {k: str(v) for k, v in (doc.get("data") or {}).items()}
                elif kind == "ServiceAccount":
                    self.service_accounts.add(name)
                elif kind == "CronJob":
                    self.cronjobs.append((where, doc))
        if self.roles is not None:
            spec = self.configmaps.get("data-jobs-roles", {}).get("roles.yml")
            if spec is None:
                self.error(
                    "k8s", "no ConfigMap data-jobs-roles with key roles.yml (the permissions spec)"
                )
            elif spec != self.roles.read_text():
                self.error("k8s ConfigMap/data-jobs-roles", f"roles.yml differs from {self.roles}")

    def cronjob_pods(self) -> list[Pod]:
        pods = []
        for where, doc in self.cronjobs:
            job = doc["spec"]["jobTemplate"]["spec"]
            self.check_cronjob(where, doc, job)
            for pod in self.spec_pods(where, job["template"]["spec"]):
                # No date given: the job's default, yesterday in UTC, is the day that ended.
                self.check_dated(pod.where, pod, None)
                pods.append(pod)
        return pods

    def check_cronjob(self, where: str, doc: dict[str, Any], job: dict[str, Any]) -> None:
        spec = job["template"]["spec"]
        images = [
            IMAGE.match(c.get("image", ""))
            for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
        ]
        if not any(m and m["job"] == "webhook-alert" for m in images):
            self.error(where, "has no failure alert (a webhook-alert sidecar watching the jobs' status)")
        # Every container says which run it is (the kit's run context): the CronJob, and the Job
        # it created for this run (a label Kubernetes sets on the Job's pods).
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            env = {e["name"]: e for e in c.get("env") or []}
            if (env.get("K8S_CRONJOB_NAME") or {}).get("value") != doc["metadata"]["name"]:
                self.error(f"{where} container {c['name']}", f"K8S_CRONJOB_NAME is not {doc['metadata']['name']}")
            field_path = (((env.get("K8S_JOB_NAME") or {}).get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            if field_path != JOB_NAME_FIELD:
                self.error(f"{where} container {c['name']}", f"K8S_JOB_NAME does not come from {JOB_NAME_FIELD}")
        if not job.get("activeDeadlineSeconds"):
            self.error(where, "has no activeDeadlineSeconds: a hung run would never end")
        if (job.get("backoffLimit") or 0) > 0:
            rules = (job.get("podFailurePolicy") or {}).get("rules") or []
            for m, c in zip(images, (spec.get("initContainers") or []) + (spec.get("containers") or [])):
                if m is None or m["job"] == "webhook-alert":
                    continue
                codes = {
                    code
                    for r in rules
                    if r.get("action") == "FailJob"
                    and (r.get("onExitCodes") or {}).get("operator") == "In"
                    and (r.get("onExitCodes") or {}).get("containerName") in (None, c["name"])
                    for code in (r.get("onExitCodes") or {}).get("values") or []
                }
                if 2 not in codes:
                    self.error(
                        f"{where} container {c['name']}",
                        "backoffLimit retries its exit code 2 (a configuration error): add a podFailurePolicy FailJob rule",
                    )

    def spec_pods(self, where: str, spec: dict[str, Any]) -> list[Pod]:
        """The containers of a pod spec (a manifest's or one the provider built), each a Pod."""
        pods = []
        self.check_restricted(where, spec)
        pod_sc = spec.get("securityContext") or {}
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
        for c in containers:
            sc = c.get("securityContext") or {}
            pod = Pod(
                where=f"{where} container {c['name']}" if len(containers) > 1 or where.startswith("k8s") else where,
                image=c.get("image", ""),
                args=[str(a) for a in (c.get("command") or []) + (c.get("args") or [])],
                resources=c.get("resources"),
                run_as_non_root=bool(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))),
                run_as_user=sc.get("runAsUser", pod_sc.get("runAsUser")),
                read_only_root=bool(sc.get("readOnlyRootFilesystem")),
                mounts={m["mountPath"]: m["name"] for m in c.get("volumeMounts") or []},
                volumes=volumes,
                service_account=spec.get("serviceAccountName"),
                pull_policy=c.get("imagePullPolicy"),
            )
            for e in c.get("env") or []:
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    pod.from_secrets[e["name"]] = (ref.get("name"), ref.get("key"))
                elif e.get("valueFrom"):
                    pod.other_sources.add(e["name"])
                else:
                    pod.literals[e["name"]] = str(e.get("value") or "")
            for e in c.get("envFrom") or []:
                if e.get("secretRef"):
                    pod.env_from_secrets.append(e["secretRef"]["name"])
            pods.append(pod)
        return pods

    def check_restricted(self, where: str, spec: dict[str, Any]) -> None:
        """Pod Security Standards, profile "restricted" (kubernetes.io/docs/concepts/security/
        pod-security-standards): what a namespace labelled enforce=restricted admits."""
        pod_sc = spec.get("securityContext") or {}
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(key):
                self.error(where, f"sets {key}, which the restricted profile forbids")
        allowed = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                   "persistentVolumeClaim", "projected", "secret"}
        for v in spec.get("volumes") or []:
            kinds = set(v) - {"name"}
            if not kinds <= allowed:
                self.error(where, f"volume {v['name']} is {sorted(kinds - allowed)}, which the restricted profile forbids")
        pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            sc = c.get("securityContext") or {}
            name = f"{where} container {c['name']}"
            if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
                self.error(name, "restricted profile: runAsNonRoot is not true")
            if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
                self.error(name, "restricted profile: runs as user 0")
            if sc.get("allowPrivilegeEscalation") is not False:
                self.error(name, "restricted profile: allowPrivilegeEscalation is not false")
            if sc.get("privileged"):
                self.error(name, "restricted profile: privileged")
            caps = sc.get("capabilities") or {}
            if "ALL" not in (caps.get("drop") or []):
                self.error(name, "restricted profile: capabilities do not drop ALL")
            if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
                self.error(name, f"restricted profile: adds capabilities {caps['add']}")
            seccomp = (sc.get("seccompProfile") or {}).get("type") or pod_seccomp
            if seccomp not in ("RuntimeDefault", "Localhost"):
                self.error(name, "restricted profile: no seccompProfile RuntimeDefault")

    # ---- DAGs ------------------------------------------------------------------------------

    def dag_pods(self) -> list[Pod]:
        dags_dir = self.k8s / "airflow" / "dags"
        airflow_runtime.prepare(dags_dir)
        bag = airflow_runtime.load(dags_dir)
        for file, err in bag.import_errors.items():
            self.error(
                str(file),
                f"does not import: {err.strip().splitlines()[-1] if err.strip() else err}",
            )
        ignored = []
        ignore_file = dags_dir / ".airflowignore"
        if ignore_file.exists():
            ignored = [
                l.strip()
                for l in ignore_file.read_text().splitlines()
                if l.strip() and not l.startswith("#")
            ]
        loaded = {Path(d.fileloc).resolve() for d in bag.dags.values()}
        for file in sorted(dags_dir.glob("*.py")):
            if any(fnmatch.fnmatch(file.name, p) for p in ignored):
                continue
            if file.resolve() not in loaded and not any(
                str(file).endswith(str(k)) for k in bag.import_errors
            ):
                self.error(str(file), "defines no DAG (Airflow would skip it without a word)")
            elif not all(w in file.read_text().lower() for w in ("airflow", "dag")):
                # Parsed here with safe mode off; Airflow's default safe mode skips such files.
                self.error(str(file), "lacks the words airflow and dag: Airflow would skip it")
        for file in sorted(dags_dir.glob("*.py")):
            text = file.read_text()
            for pattern, what in CREDENTIAL_TEXT:
                for m in pattern.finditer(text):
                    line = text.count("\n", 0, m.start()) + 1
                    self.error(
                        f"{file}:{line}", f"holds {what}: secrets come from Kubernetes Secrets only"
                    )
        if not bag.dags:
            self.error(str(dags_dir), "no DAG loaded")
            return []

        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

        pods = []
        airflow_runtime.sync(bag)
        for dag in sorted(bag.dags.values(), key=lambda d: d.dag_id):
            where_dag = f"DAG {dag.dag_id}"
            if not dag.dagrun_timeout:
                self.error(where_dag, "has no dagrun_timeout: a hung run would block the next ones")
            alerts = [t for t in dag.tasks if t.task_id == ALERT_TASK]
            jobs = [t for t in dag.tasks if t not in alerts]
            if not alerts:
                self.error(
                    where_dag,
                    f"has no failure alert (a task {ALERT_TASK} running webhook-alert, trigger_rule all_done)",
                )
            callbacks = dag.on_failure_callback or []
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            if not any(getattr(c, "__name__", "") == TIMEOUT_CALLBACK for c in callbacks):
                self.error(
                    where_dag,
                    f"has no on_failure_callback {TIMEOUT_CALLBACK}: a run that hits its "
                    "dagrun_timeout skips the failure-alert task and would end without an alert",
                )
            for alert in alerts:
                if str(alert.trigger_rule) != "all_done":
                    self.error(
                        f"{where_dag} task {alert.task_id}",
                        f"trigger_rule is {alert.trigger_rule}, not all_done: the alert must wait "
                        "for every task, or a second failure is never reported",
                    )
            for alert in alerts:
                missing_upstream = sorted({t.task_id for t in jobs} - set(alert.upstream_task_ids))
                if missing_upstream:
                    self.error(
                        f"{where_dag} task {alert.task_id}",
                        f"the alert is not downstream of {', '.join(missing_upstream)}: their failures would not alert",
                    )
            self.check_nesting(where_dag, dag, jobs, alerts)
            for task in dag.tasks:
                where = f"{where_dag} task {task.task_id}"
                self.checked.append(where)
                if not isinstance(task, KubernetesPodOperator):
                    self.error(
                        where,
                        f"is a {type(task).__name__}: every task runs a job image (KubernetesPodOperator)",
                    )
                    continue
                if "_" in task.task_id:
                    self.error(where, "task id has an underscore: it names the pod, which may not")
                if task.in_cluster is not True:
                    self.error(where, "in_cluster is not set: the hook would look for a kubeconfig")
                if not task.namespace:
                    self.error(where, "no namespace: the pod would start where the Secrets are not")
                if not task.execution_timeout:
                    self.error(where, "has no execution_timeout: a hung pod would hold the run")
                if not task.log_events_on_failure:
                    self.error(
                        where,
                        "log_events_on_failure is off: a missing Secret key or a failed pull leaves no trace once the pod is deleted",
                    )

            if self.run_dags is not None and dag.dag_id not in self.run_dags:
                continue
            # The run: Airflow's own runtime, the last job task failing so that every pod is
            # built and the alert runs, and a second one where a task runs beside it (not
            # upstream of it): the alert must name both.
            order = [t for t in dag.topological_sort() if t in jobs]
            failing = [order[-1].task_id] if order else []
            if order:
                beside = [
                    t for t in order[:-1] if t.task_id not in order[-1].get_flat_relative_ids(upstream=True)
                ]
                failing = sorted(failing + [t.task_id for t in beside[:1]])
            try:
                run = airflow_runtime.test_run(dag, failing)
            except Exception as e:  # reported, as Airflow would have failed the run
                self.error(where_dag, f"dag.test() failed: {e!r}")
                continue
            for task in dag.tasks:
                where = f"{where_dag} task {task.task_id}"
                bodies = run.pods.get(task.task_id, [])
                if not bodies:
                    if task in jobs:
                        self.error(where, "the run built no pod for this task")
                    continue
                body = bodies[-1]
                if self.write_pods is not None:
                    # As the provider sent it to the API server, for kubernetes-validate.
                    out = self.write_pods / f"{dag.dag_id}.{task.task_id}.json"
                    out.write_text(json.dumps(body, indent=1, sort_keys=True))
                spec = body["spec"]
                if not spec.get("activeDeadlineSeconds"):
                    self.error(where, "the pod has no activeDeadlineSeconds")
                if spec.get("automountServiceAccountToken") is not False:
                    self.error(where, "the job pod mounts a ServiceAccount token it does not need")
                for pod in self.spec_pods(where, spec):
                    pods.append(pod)
                    self.check_dated(where, pod, run.run_after)
                    self.check_run_context(where, dag, task, pod, run)
                    if task in alerts:
                        self.check_alert(where, dag, pod, run, failing)
            if failing:
                if run.state != "failed":
                    self.error(
                        where_dag,
                        f"with {', '.join(failing)} failed the DAG run ended {run.state}, not failed",
                    )
                for task_id in failing:
                    if task_id not in run.events_listed:
                        self.error(
                            f"{where_dag} task {task_id}",
                            "the failed pod's events were not read (log_events_on_failure)",
                        )
        return pods

    def check_nesting(self, where: str, dag: Any, jobs: list, alerts: list) -> None:
        """The run's timeout holds every attempt of its longest chain of job tasks, and the
        alert after them: Airflow's scheduler marks what is unfinished when a run times out
        SKIPPED, an alert not yet run included, so a run that can outlast its timeout can
        end without an alert."""
        if not dag.dagrun_timeout:
            return
        worst: dict[str, timedelta] = {}
        for task in dag.topological_sort():
            if task not in jobs:
                continue
            before = [worst[u] for u in task.upstream_task_ids if u in worst]
            worst[task.task_id] = max(before, default=timedelta(0)) + all_attempts(task)
        longest = max(worst.values(), default=timedelta(0))
        alert = max((all_attempts(a) for a in alerts), default=timedelta(0))
        if longest + alert > dag.dagrun_timeout:
            chain = max(worst, key=worst.get) if worst else "-"
            self.error(
                where,
                f"a run can outlast its dagrun_timeout {dag.dagrun_timeout}: its tasks up to "
                f"{chain}, every attempt and retry delay counted, take {longest}, and the alert "
                f"{alert} after them; the scheduler would skip the alert",
            )

    def check_alert(self, where: str, dag: Any, pod: Pod, run: Any, failing: list[str]) -> None:
        if IMAGE.match(pod.image) is None or IMAGE.match(pod.image)["job"] != "webhook-alert":
            self.error(where, f"runs {pod.image}, not the webhook-alert image")
        if not failing:
            return
        links = {
            t: f"{airflow_runtime.BASE_URL}/dags/{dag.dag_id}/runs/{run.run_id}/tasks/{t}"
            for t in failing
        }
        expected = {
            "ALERT_DAG_ID": dag.dag_id,
            "ALERT_TASK_ID": ", ".join(failing),
            "ALERT_RUN_ID": run.run_id,
            "ALERT_LOG_URL": links[failing[0]],
        }
        for name, value in expected.items():
            if pod.literals.get(name) != value:
                self.error(
                    where,
                    f"{name} is {pod.literals.get(name)!r}, not the failed tasks' {value!r}",
                )
        error = pod.literals.get("ALERT_ERROR", "")
        for task_id, link in links.items():
            if f"{task_id}: failed" not in error or link not in error:
                self.error(
                    where,
                    f"ALERT_ERROR does not carry what {task_id} recorded and its log link",
                )

    def check_run_context(self, where: str, dag: Any, task: Any, pod: Pod, run: Any) -> None:
        """Each job pod says which task instance it runs (the kit's run context), under the
        names Airflow's own runtime exports its task context with (context_to_airflow_vars)."""
        m = IMAGE.match(pod.image)
        if not m:
            return
        if m["job"] == "dbt":
            # dbt's sessions are tagged with the task run, as the jobs' are.
            try:
                tag = json.loads(pod.literals.get("DBT_QUERY_TAG", ""))
            except ValueError:
                tag = None
            expected = {"dag_id": dag.dag_id, "task_id": task.task_id, "dag_run_id": run.run_id}
            if not isinstance(tag, dict) or any(tag.get(k) != v for k, v in expected.items()):
                self.error(where, f"DBT_QUERY_TAG is {pod.literals.get('DBT_QUERY_TAG')!r}, not JSON naming {expected}")
            return
        from airflow.sdk.execution_time.context import AIRFLOW_VAR_NAME_FORMAT_MAPPING

        def name(key: str) -> str:
            return AIRFLOW_VAR_NAME_FORMAT_MAPPING[f"AIRFLOW_CONTEXT_{key}"]["env_var_format"]

        expected = {
            name("DAG_ID"): dag.dag_id,
            name("TASK_ID"): task.task_id,
            name("DAG_RUN_ID"): run.run_id,
        }
        for var, value in expected.items():
            if pod.literals.get(var) != value:
                self.error(where, f"{var} is {pod.literals.get(var)!r}, not {value!r}")
        try_number = pod.literals.get(name("TRY_NUMBER"), "")
        if not try_number.isdigit() or int(try_number) < 1:
            self.error(where, f"{name('TRY_NUMBER')} is {try_number!r}, not the try (1 or more)")
        log_url = pod.literals.get("JOB_LOG_URL", "")
        if not log_url.startswith(("http://", "https://")) or f"/tasks/{task.task_id}" not in log_url:
            self.error(where, f"JOB_LOG_URL is {log_url!r}, not the task's log page")
        # Lineage: the pod's run is a child of the task's run, as the OpenLineage provider
        # names it (its macros rendered by Airflow), under the provider's namespace.
        if pod.literals.get("OPENLINEAGE_URL") != airflow_runtime.LINEAGE_URL:
            self.error(where, f"OPENLINEAGE_URL is {pod.literals.get('OPENLINEAGE_URL')!r}, not DATA_JOBS_OPENLINEAGE_URL")
        if pod.literals.get("OPENLINEAGE_NAMESPACE") != airflow_runtime.LINEAGE_NAMESPACE:
            self.error(where, f"OPENLINEAGE_NAMESPACE is {pod.literals.get('OPENLINEAGE_NAMESPACE')!r}, not the provider's namespace")
        for var, job_name in (
            ("OPENLINEAGE_PARENT_ID", f"{dag.dag_id}.{task.task_id}"),
            ("OPENLINEAGE_ROOT_PARENT_ID", dag.dag_id),
        ):
            value = pod.literals.get(var, "")
            namespace, _, rest = value.partition("/")
            name, _, run_id = rest.rpartition("/")
            try:
                uuid.UUID(run_id)
            except ValueError:
                run_id = ""
            if (namespace, name) != (airflow_runtime.LINEAGE_NAMESPACE, job_name) or not run_id:
                self.error(where, f"{var} is {value!r}, not <namespace>/{job_name}/<run id> from the provider")

    def check_dated(self, where: str, pod: Pod, run_after: Any | None) -> None:
        """stage-import loads the day that ended before the run started, and looks back. A
        CronJob (no `run_after`) gives no date: one written in would load the same day daily."""
        m = IMAGE.match(pod.image)
        if not m or m["job"] != "stage-import":
            return
        args = pod.args

        def value(flag: str, var: str) -> str | None:
            if flag in args and args.index(flag) + 1 < len(args):
                return args[args.index(flag) + 1]
            return pod.literals.get(var)

        day = value("--date", "STAGE_IMPORT_DATE")
        if run_after is None:
            if day is not None:
                self.error(where, f"loads {day} on every run: leave the date to the job (yesterday)")
        elif day != (ended := (run_after - timedelta(days=1)).date().isoformat()):
            self.error(
                where,
                f"the run that starts at {run_after.isoformat()} loads {day or 'no given day'}, not {ended}, the day that ended",
            )
        lookback = value("--lookback-days", "STAGE_IMPORT_LOOKBACK_DAYS")
        if not (lookback or "").isdigit() or int(lookback) < 1:
            self.error(where, "no lookback: files that arrive after their day's run are never loaded")

    # ---- the rules shared by DAG tasks and CronJob containers ---------------------------------

    def check_pod(self, pod: Pod) -> None:
        where = pod.where
        m = IMAGE.match(pod.image)
        schema = None
        if m and m["job"] == "dbt":
            if m["tag"] != self.version:
                self.error(
                    where,
                    f"image {pod.image}: tag {m['tag']} is not the binaries' version {self.version} (make image-dbt)",
                )
        elif m:
            schema = self.schemas.get(m["job"])
            if schema is None:
                self.error(
                    where,
                    f"image {pod.image}: {m['job']} is not a job we build ({', '.join(sorted(self.schemas))})",
                )
            elif m["tag"] != schema.version:
                self.error(
                    where,
                    f"image {pod.image}: tag {m['tag']} is not the binaries' version {schema.version}",
                )
            needs = set(schema.required) | set(NEEDS.get(m["job"], [])) if schema else set()
        else:
            self.error(
                where,
                f"image {pod.image or '(none)'} is not one we build (data-jobs/<job>:<version>)",
            )
            return

        job = m["job"]
        if job == "dbt":
            needs = set(self.dbt.required) if self.dbt else set()
            if "--target" not in pod.args or pod.args[pod.args.index("--target") + 1 :][:1] != ["prod"]:
                self.error(
                    where,
                    f"dbt {' '.join(pod.args)} without --target prod: the profile's default is dev, the embedded DuckDB file",
                )
        if m and not m["registry"] and pod.pull_policy != "Never":
            self.error(
                where,
                f"image {pod.image} has no registry and pull policy {pod.pull_policy or 'default'}: "
                "a node without it would pull docker.io/data-jobs/..., a namespace that is not ours (use Never)",
            )
        if job == "pg-job" and "PG_JOB_STATEMENT_TIMEOUT_SECS" not in pod.literals:
            self.error(where, "sets no PG_JOB_STATEMENT_TIMEOUT_SECS: a stuck statement runs until the deadline kills the pod")
        if job == "pg-replicate":
            if "PG_REPLICATE_STATEMENT_TIMEOUT_SECS" not in pod.literals:
                self.error(where, "sets no PG_REPLICATE_STATEMENT_TIMEOUT_SECS: a stuck read runs until the deadline kills the pod")
            self.check_spool_fits(where, pod)
        if job == "stage-import" and pod.args:
            source = pod.args[0]
            if source not in self.sources:
                self.error(
                    where,
                    f"stage-import source {source!r} is not in the catalog ({', '.join(sorted(self.sources))})",
                )
            else:
                needs |= set(self.sources[source])
        if job == "pg-job" and self.scripts is not None:
            script = next((a for a in pod.args if not a.startswith("-")), None)
            if script is None:
                self.error(where, "pg-job without a script argument")
            elif not (self.scripts / f"{script.replace('-', '_')}.sql").exists():
                self.error(
                    where,
                    f"pg-job script {script} has no {self.scripts}/{script.replace('-', '_')}.sql",
                )

        supplied = set(pod.literals) | set(pod.from_secrets) | pod.other_sources
        for secret in pod.env_from_secrets:
            if secret not in self.secrets:
                self.error(
                    where, f"envFrom Secret {secret} is not among the Secret manifests under k8s/"
                )
            supplied |= set(self.secrets.get(secret, {}))
        names = schema.names if schema else None
        if job == "dbt" and self.dbt:
            names = self.dbt.required | self.dbt.optional | DBT_OWN_VARIABLES
        for name in sorted(needs):
            aliases_supplied = schema is not None and any(
                a in supplied for a in schema.aliases.get(name, [])
            )
            if name not in supplied and not aliases_supplied:
                self.error(where, f"does not supply {name}, which {job} requires")
        if names is not None:
            for name in sorted(set(pod.literals) | set(pod.from_secrets)):
                if name not in names:
                    self.error(
                        where,
                        f"sets {name}, which {job} does not read (see "
                        + ("transform/dbt/profiles.yml" if job == "dbt" else "its --env-schema")
                        + ")",
                    )
        for name, (secret, key) in sorted(pod.from_secrets.items()):
            if secret not in self.secrets:
                self.error(
                    where,
                    f"{name} comes from Secret {secret}, which no manifest under k8s/ defines",
                )
            elif key not in self.secrets[secret]:
                self.error(
                    where,
                    f"{name} comes from Secret {secret} key {key}, which that Secret's manifest does not have",
                )
        secret_names = (
            set().union(*(s.keys() for s in self.secrets.values())) if self.secrets else set()
        )
        for name, value in sorted(pod.literals.items()):
            secret = name in schema.secret if schema else bool(SECRET_NAME.search(name))
            if value and (secret or name in secret_names):
                self.error(
                    where,
                    f"{name} is written in as a literal: secrets and Secret keys come from a Secret, never from the DAG or manifest",
                )
            if schema and "{{" not in value and value:
                choices = schema.choices.get(name)
                if choices and value not in choices:
                    self.error(where, f"{name}={value!r} is not one of {choices}")
                if schema.kinds.get(name) == "path" and value.startswith("/"):
                    self.check_path(where, name, value, pod)

        if not pod.resources or not all(
            (pod.resources.get(k) or {}).get(r)
            for k in ("requests", "limits")
            for r in ("cpu", "memory")
        ):
            self.error(where, "has no cpu and memory requests and limits")
        if job != "dbt":
            if not pod.run_as_non_root or pod.run_as_user != UID:
                self.error(where, f"does not run as non-root user {UID}, as the images do")
            if not pod.read_only_root:
                self.error(
                    where,
                    "has a writable root filesystem (the jobs need none; /tmp is an emptyDir)",
                )
            if pod.service_account is not None and pod.service_account not in self.service_accounts:
                self.error(
                    where,
                    f"ServiceAccount {pod.service_account} is not among the manifests under k8s/",
                )

    def check_spool_fits(self, where: str, pod: Pod) -> None:
        """pg-replicate spools a table's read in its work directory, and for Snowflake its
        gzipped parts beside it: the volume holds twice PG_REPLICATE_MAX_TABLE_BYTES, so that a
        big table fails by name instead of the kubelet evicting the pod."""
        work_dir = pod.literals.get("PG_REPLICATE_WORK_DIR") or "/tmp"
        mount = max(
            (m for m in pod.mounts if (work_dir.rstrip("/") + "/").startswith(m.rstrip("/") + "/")),
            key=len,
            default=None,
        )
        source = pod.volumes.get(pod.mounts[mount], {}) if mount else {}
        limit = (source.get("emptyDir") or {}).get("sizeLimit")
        if limit is None:
            self.error(
                where,
                f"the work directory {work_dir} is not an emptyDir with a sizeLimit (the root filesystem is read-only)",
            )
            return
        cap = pod.literals.get("PG_REPLICATE_MAX_TABLE_BYTES", "")
        if not cap.isdigit():
            self.error(where, f"sets no PG_REPLICATE_MAX_TABLE_BYTES to fit the {limit} volume of {work_dir}")
        elif 2 * int(cap) > quantity(str(limit)):
            self.error(
                where,
                f"PG_REPLICATE_MAX_TABLE_BYTES={cap}: a table's spool and its parts can take twice that, more than the {limit} volume of {work_dir}",
            )

    def check_path(self, where: str, name: str, value: str, pod: Pod) -> None:
        mount = max(
            (m for m in pod.mounts if value.startswith(m.rstrip("/") + "/")), key=len, default=None
        )
        if mount is None:
            self.error(
                where,
                f"{name}={value} is not inside any mounted volume (the image has no such file)",
            )
            return
        source = pod.volumes.get(pod.mounts[mount], {})
        cm = (source.get("configMap") or {}).get("name")
        if cm is not None:
            key = value[len(mount.rstrip("/")) + 1 :]
            if cm not in self.configmaps:
                self.error(where, f"{name}: ConfigMap {cm} is not among the manifests under k8s/")
            elif key not in self.configmaps[cm]:
                self.error(where, f"{name}={value}: ConfigMap {cm} has no key {key}")


def quantity(text: str) -> int:
    """A Kubernetes quantity of bytes ("20Gi", "500M", "1024") as a number."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(float(text))


def all_attempts(task: Any) -> timedelta:
    """The longest a task can take: every attempt to its execution_timeout, and the delays
    between them (exponential backoff to its cap, where it is on)."""
    retries = int(task.retries or 0)
    timeout = task.execution_timeout or timedelta(0)
    delay = task.retry_delay or timedelta(0)
    if getattr(task, "retry_exponential_backoff", False):
        delay = task.max_retry_delay or timedelta(days=1)
    return (retries + 1) * timeout + retries * delay


def load_schema(path: Path) -> Schema:
    data = json.loads(path.read_text())
    variables = data["variables"]
    return Schema(
        job=data["job"],
        version=data["version"],
        names={v["name"] for v in variables} | {a for v in variables for a in v.get("aliases", [])},
        required={v["name"] for v in variables if v["required"]},
        secret={v["name"] for v in variables if v["secret"]},
        kinds={v["name"]: v["kind"] for v in variables},
        choices={v["name"]: v["choices"] for v in variables if v.get("choices")},
        aliases={v["name"]: list(v["aliases"]) for v in variables if v.get("aliases")},
    )


def load_sources(path: Path) -> dict[str, list[str]]:
    """`stage-import sources` output: a name line, then indented lines, one with `env A, B`."""
    sources: dict[str, list[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        if line and not line[0].isspace():
            current = line.strip()
            sources[current] = []
        elif current and ", env " in line:
            env = line.rsplit(", env ", 1)[1].strip()
            sources[current] = [n.strip() for n in env.split(",") if n.strip()]
    return sources


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k8s", type=Path, required=True, help="the k8s/ directory")
    parser.add_argument(
        "--schema", type=Path, action="append", required=True, help="a job's --env-schema JSON"
    )
    parser.add_argument(
        "--stage-import-sources", type=Path, required=True, help="`stage-import sources` output"
    )
    parser.add_argument(
        "--pg-job-scripts", type=Path, help="pg-job's scripts directory (transform/sql)"
    )
    parser.add_argument("--roles", type=Path, help="the roles.yml the ConfigMap must hold")
    parser.add_argument(
        "--dbt-profiles",
        type=Path,
        required=True,
        help="transform/dbt/profiles.yml: its prod target's env_var() calls are the dbt image's variables",
    )
    parser.add_argument(
        "--run-dags",
        help="comma-separated DAG ids to run with dag.test() (default: all; a DAG not run "
        "gets the static checks only)",
    )
    parser.add_argument(
        "--write-pods",
        type=Path,
        help="a directory to write every pod the DAG runs submitted into, one JSON file each",
    )
    args = parser.parse_args()

    schemas = {}
    for path in args.schema:
        schema = load_schema(path)
        schemas[schema.job] = schema
    sources = load_sources(args.stage_import_sources)
    if not sources:
        print(f"error: {args.stage_import_sources}: no sources listed", file=sys.stderr)
        return 2
    run_dags = None if args.run_dags is None else {d for d in args.run_dags.split(",") if d}
    checker = Checker(
        args.k8s,
        schemas,
        sources,
        args.pg_job_scripts,
        args.roles,
        run_dags,
        args.write_pods,
        load_dbt_profiles(args.dbt_profiles),
    )
    checker.load_manifests()
    pods = checker.dag_pods()
    cron_pods = checker.cronjob_pods()
    for pod in pods + cron_pods:
        checker.check_pod(pod)
    for e in checker.errors:
        print(f"error: {e}")
    print(
        f"checked {len(checker.checked)} DAG tasks, {len(pods)} pods their runs built, {len(cron_pods)} CronJob containers, "
        f"{len(checker.secrets)} Secrets against {len(schemas)} job schemas (version {checker.version}): "
        f"{len(checker.errors)} problems"
    )
    return 1 if checker.errors else 0


if __name__ == "__main__":
    sys.exit(main())
