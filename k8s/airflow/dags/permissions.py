"""permissions: make Snowflake's roles, users and grants match roles.yml, daily.

plan puts the changes in the task log first; apply plans again and makes them (refusing a plan
that revokes more than PERMISSIONS_MAX_REVOKES grants). The spec is the data-jobs-roles
ConfigMap (k8s/roles-configmap.yaml), mounted into the pod.
"""

import sys
from datetime import timedelta
from pathlib import Path

import pendulum

from airflow.sdk import DAG

# git-sync puts this directory below the DAG folder, which is what Airflow puts on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_jobs_pod import DEFAULT_ARGS, SPEC_DIR, alert_timed_out_run, failure_alert, job_pod  # noqa: E402

SPEC = {"PERMISSIONS_SPEC": f"{SPEC_DIR}/roles.yml"}

with DAG(
    dag_id="permissions",
    description="Snowflake roles, users and grants as roles.yml says",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    # Applying today's spec once brings the account up to date; old runs add nothing.
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=1),
    default_args={**DEFAULT_ARGS, "retries": 0},
    # A run that times out skips its failure-alert task: this callback alerts instead.
    on_failure_callback=alert_timed_out_run,
    tags=["data-jobs", "permissions"],
):
    plan = job_pod("permissions", task_id="plan", arguments=["plan"], env=SPEC)
    apply = job_pod("permissions", task_id="apply", arguments=["apply"], env=SPEC)
    plan >> apply
    failure_alert([plan, apply])
