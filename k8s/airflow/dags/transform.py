"""transform: dbt over the raw tables, daily after the loads.

A cron schedule, not the loads' Assets: an Asset schedule is an AND, so one failed push-proxy
load would hold back every model for the day. The models of the sources that loaded are
built; `dbt source freshness` runs beside the build (neither waits for the other) and fails
on, and so alerts about, the source that is stale. stage_import's runs start at 00:00 UTC; a
load takes at most 2.5 hours, and a retried one up to 5 hours. dbt runs in data-jobs/dbt
(docker/dbt: transform/dbt in the official dbt-snowflake image), on the project's prod target,
which reads the SNOWFLAKE_TRANSFORM_* variables from the Secrets.
"""

import sys
from datetime import timedelta
from pathlib import Path

import pendulum

from airflow.sdk import DAG

# git-sync puts this directory below the DAG folder, which is what Airflow puts on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_jobs_pod import DEFAULT_ARGS, alert_timed_out_run, failure_alert, job_pod  # noqa: E402

with DAG(
    dag_id="transform",
    description="dbt build and source freshness, daily after the loads",
    schedule="0 4 * * *",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    # The models are built from what is loaded now: a missed day is not worth replaying.
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=3),
    default_args=DEFAULT_ARGS,
    # A run that times out skips its failure-alert task: this callback alerts instead.
    on_failure_callback=alert_timed_out_run,
    tags=["data-jobs", "dbt"],
):
    # The prod target: Snowflake, with the SNOWFLAKE_TRANSFORM_* variables (transform/dbt/profiles.yml).
    freshness = job_pod(
        "dbt", task_id="dbt-source-freshness", arguments=["source", "freshness", "--target", "prod"]
    )
    build = job_pod("dbt", task_id="dbt-build", arguments=["build", "--target", "prod"])
    failure_alert([freshness, build])
