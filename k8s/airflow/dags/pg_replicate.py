"""pg_replicate: the Heroku Connect Postgres (Salesforce data) into Snowflake's RAW.ORGM, hourly,
as Stitch ran it.

One task replicates every table of the catalog, one after the other: each table commits with
its bookmark, so a run that fails or times out keeps the tables it finished, and the next hour's
run goes on from their bookmarks. That run is the retry. Hard deletes are looked for daily (the
built-in catalog's `reconcile: 24h`), by whichever hourly run is due.

A table's first copy, or a `--reload`, reads the whole table: for a table too big to copy
within the task's timeout, trigger this DAG by hand with a longer one, or run the CronJob's
Job by hand (k8s/cronjobs/pg-replicate.yaml) with a longer activeDeadlineSeconds.
"""

import sys
from datetime import timedelta
from pathlib import Path

import pendulum

from airflow.sdk import DAG

# git-sync puts this directory below the DAG folder, which is what Airflow puts on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_jobs_pod import (  # noqa: E402
    DEFAULT_ARGS,
    REPLICATE_ENV,
    alert_timed_out_run,
    failure_alert,
    job_pod,
)

with DAG(
    dag_id="pg_replicate",
    description="Replicate the Salesforce tables of the Heroku Connect Postgres into Snowflake, hourly",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    # Each run reads what changed since the bookmarks: a missed hour is caught up by the next.
    catchup=False,
    max_active_runs=1,
    # The next hour's run waits for this one: a hung run must end, and alert, within the hour.
    dagrun_timeout=timedelta(minutes=55),
    # No retry: the next hour's run is the retry, and it resumes from the bookmarks.
    default_args={**DEFAULT_ARGS, "retries": 0},
    # A run that times out skips its failure-alert task: this callback alerts instead.
    on_failure_callback=alert_timed_out_run,
    tags=["data-jobs", "pg-replicate"],
):
    replicate = job_pod("pg-replicate", task_id="pg-replicate", env=REPLICATE_ENV)
    failure_alert([replicate])
