"""stage_import: each source's files of a day into Snowflake's RAW database, one task per source.

The run's date is Airflow's `{{ ds }}` (a daily run loads the day that just ended), so
catch-up and backfills load each missed day; loading a day twice loads nothing twice (files
loaded before are skipped). Exit code 4 (no files for the day) fails the task: missing
upstream data is worth an alert.
"""

import sys
from pathlib import Path

import pendulum

from airflow.sdk import DAG

# git-sync puts this directory below the DAG folder, which is what Airflow puts on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_jobs_pod import DEFAULT_ARGS, LOADS, job_pod, table_asset  # noqa: E402

with DAG(
    dag_id="stage_import",
    description="Load each source's files of the day from S3 into Snowflake",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=True,
    # Days load in order, one at a time: a backfill never runs two days' COPYs at once.
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["data-jobs", "stage-import"],
):
    for source, table in LOADS.items():
        job_pod(
            "stage-import",
            task_id=source.replace("_", "-"),
            arguments=[source, "--date", "{{ ds }}"],
            outlets=[table_asset(table)],
        )
