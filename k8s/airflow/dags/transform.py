"""transform: dbt run over the raw tables, once every load of stage_import has landed.

Scheduled on the loads' Assets, so it runs after the day's six loads (a backfill's many days
coalesce into fewer dbt runs). dbt's image is the one image here we do not build
(data_jobs_pod.DBT_IMAGE); it reads the SNOWFLAKE_TRANSFORM_* variables from the Secrets.
"""

import sys
from pathlib import Path

import pendulum

from airflow.sdk import DAG

# git-sync puts this directory below the DAG folder, which is what Airflow puts on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_jobs_pod import DEFAULT_ARGS, LOADS, job_pod, table_asset  # noqa: E402

with DAG(
    dag_id="transform",
    description="dbt run after the day's loads",
    schedule=[table_asset(table) for table in LOADS.values()],
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["data-jobs", "dbt"],
):
    job_pod("dbt", task_id="dbt-run", arguments=["run"])
