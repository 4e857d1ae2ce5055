"""stage_import: each source's files of a day into Snowflake's RAW database, one task per source.

Airflow 3 runs `@daily` on a CronTriggerTimetable: the run of 2026-11-02 00:00 has
`ds = 2026-11-02`, the day that just began. Each run loads the day before its `ds`, the day
that just ended, and the LOOKBACK_DAYS before that again, because CloudFront and ELB logs
arrive hours late; files loaded before are skipped, so the lookback costs a listing and loads
only the late files. Catch-up and backfills load each missed day. Exit code 4 (no files for
the day) fails the task: missing upstream data is worth an alert.
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
    LOADS,
    alert_timed_out_run,
    failure_alert,
    job_pod,
    table_asset,
)

# The day a run loads, and how many days before it are listed again for late files.
DAY = "{{ macros.ds_add(ds, -1) }}"
LOOKBACK_DAYS = 2

with DAG(
    dag_id="stage_import",
    description="Load each source's files of the day from S3 into Snowflake",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=True,
    # Days load in order, one at a time: a backfill never runs two days' COPYs at once.
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),
    default_args=DEFAULT_ARGS,
    # A run that times out skips its failure-alert task: this callback alerts instead.
    on_failure_callback=alert_timed_out_run,
    tags=["data-jobs", "stage-import"],
):
    loads = [
        job_pod(
            "stage-import",
            task_id=source.replace("_", "-"),
            arguments=[source, "--date", DAY, "--lookback-days", str(LOOKBACK_DAYS)],
            outlets=[table_asset(table)],
        )
        for source, table in LOADS.items()
    ]
    failure_alert(loads)
