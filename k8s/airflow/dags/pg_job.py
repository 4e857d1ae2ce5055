"""pg_job: the hourly snapshot chain on the operational Postgres database (Heroku Connect's
Salesforce tables): account-arr >> opportunity-snapshot >> opportunitylineitem-snapshot.

Each task runs one script of transform/sql (in the pg-job image) in one transaction; the task
id is the script name with hyphens, as the pod name needs.
"""

import sys
from datetime import timedelta
from pathlib import Path

import pendulum

from airflow.sdk import DAG, chain

# git-sync puts this directory below the DAG folder, which is what Airflow puts on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_jobs_pod import DEFAULT_ARGS, alert_timed_out_run, failure_alert, job_pod  # noqa: E402

SCRIPTS = ["account-arr", "opportunity-snapshot", "opportunitylineitem-snapshot"]
# A statement that runs longer is cancelled by the server, well inside the task's timeout.
STATEMENT_TIMEOUT = {"PG_JOB_STATEMENT_TIMEOUT_SECS": "600"}

with DAG(
    dag_id="pg_job",
    description="Rebuild the Salesforce snapshot tables in Postgres, hourly",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    # A snapshot is of the tables as they are now: a missed hour is not worth replaying.
    catchup=False,
    max_active_runs=1,
    # The next hour's run waits for this one: a hung chain must end, and alert, within the hour.
    dagrun_timeout=timedelta(minutes=55),
    # No retry: three scripts with a retry each would outlast the hour; the next hour's run is
    # the retry.
    default_args={**DEFAULT_ARGS, "retries": 0},
    # A run that times out skips its failure-alert task: this callback alerts instead.
    on_failure_callback=alert_timed_out_run,
    tags=["data-jobs", "pg-job"],
):
    steps = [
        job_pod("pg-job", task_id=script, arguments=[script], env=STATEMENT_TIMEOUT)
        for script in SCRIPTS
    ]
    chain(*steps)
    failure_alert(steps)
