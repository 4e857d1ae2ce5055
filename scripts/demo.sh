#!/usr/bin/env bash
# `make demo`: runs a job on this machine with nothing else installed. For now: webhook-alert
# posting a failed task to a local stand-in for Mattermost.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/debug"

work=$(mktemp -d)
trap 'kill "$receiver" 2>/dev/null || true; rm -rf "$work"' EXIT
python3 scripts/webhook-receiver.py "$work/port" &
receiver=$!
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")

echo "== webhook-alert: a failed Airflow task, posted to a local webhook on port $port"
MATTERMOST_WEBHOOK_URL="http://127.0.0.1:$port/hooks/demo-hook-key" \
ALERT_DAG_ID=stage_import ALERT_TASK_ID=licenses ALERT_TRY_NUMBER=1 \
ALERT_RUN_ID="scheduled__$(date -u -d yesterday +%F)T00:00:00+00:00" \
ALERT_EXECUTION_DATE="$(date -u -d yesterday +%F)T00:00:00+00:00" \
AIRFLOW_BASE_URL=http://localhost:8080 \
ALERT_ERROR=$'COPY INTO raw.licenses.licenses failed for 1 of 3 files\nlicenses-2026.csv: line 12: unterminated quoted field' \
  "$bin/webhook-alert"
echo "== exit code $? (0 = posted). Try: $bin/webhook-alert --help"
