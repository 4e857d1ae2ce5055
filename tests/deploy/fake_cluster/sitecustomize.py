"""Puts airflow_runtime's fake Kubernetes API in every Python process of a test's Airflow (the
scheduler's task runners, the DAG processor), when DATA_JOBS_FAKE_CLUSTER holds its settings
as JSON: {"record_dir": ..., "failing": [task ids], "sleeping": {task id: seconds}}. On this
directory's path only in scheduler_run.py's Airflow; any other process is left alone.
"""

import json
import os
import sys

_SETTINGS = os.environ.get("DATA_JOBS_FAKE_CLUSTER")
if _SETTINGS:
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import airflow_runtime
    import kubernetes.client
    import kubernetes.config

    _settings = json.loads(_SETTINGS)
    _cluster = airflow_runtime.FakeCluster(
        _settings.get("failing", []),
        sleeping=_settings.get("sleeping", {}),
        record_dir=Path(_settings["record_dir"]),
    )
    kubernetes.client.CoreV1Api = _cluster.core_v1()
    # In-cluster credentials are the pod's token; there is no cluster here to read them from.
    kubernetes.config.load_incluster_config = lambda *args, **kwargs: None
