"""pg_job: the hourly snapshot chain on the operational Postgres database (Heroku Connect's
Salesforce tables): account-arr >> opportunity-snapshot >> opportunitylineitem-snapshot.

Each task runs one script of transform/sql (in the pg-job image) in one transaction; the task
id is the script name with hyphens, as the pod name needs.
"""

import sys
from pathlib import Path

import pendulum

from airflow.sdk import DAG, chain

# git-sync puts this directory below the DAG folder, which is what Airflow puts on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_jobs_pod import DEFAULT_ARGS, job_pod  # noqa: E402

SCRIPTS = ["account-arr", "opportunity-snapshot", "opportunitylineitem-snapshot"]

with DAG(
    dag_id="pg_job",
    description="Rebuild the Salesforce snapshot tables in Postgres, hourly",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    # A snapshot is of the tables as they are now: a missed hour is not worth replaying.
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["data-jobs", "pg-job"],
):
    chain(*(job_pod("pg-job", task_id=script, arguments=[script]) for script in SCRIPTS))
