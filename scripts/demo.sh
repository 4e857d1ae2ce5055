#!/usr/bin/env bash
# `make demo`: the main job on the embedded default, with nothing else installed. Generates a
# week of sample files in the real sources' layouts, creates the tables, loads every source
# and day into a local DuckDB file, loads again to show nothing loads twice, builds the dbt
# models of transform/dbt on that file, and prints the models' numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/debug"
root=$PWD
dbt="${DBT_VENV:-$root/.venv-dbt}/bin/dbt"
demo=.demo
end=$(date -u -d yesterday +%F)
start=$(date -u -d "$end - 6 days" +%F)

rm -rf "$demo" && mkdir -p "$demo"
export STAGE_ROOT="$demo/stage" WAREHOUSE_PATH="$demo/warehouse.duckdb"
export RELEASE_LOCATION=E1RELEASES DIAGNOSTIC_LOCATION_ONE=E1DIAGNOSTICS DIAGNOSTIC_LOCATION_TWO=E2DIAGNOSTICS
export AWS_ACCOUNT_ID=123456789012

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Sample files for $start .. $end (CloudFront, ELB and license CSV layouts, a few bad lines)"
"$bin/sample-data" stage --out "$STAGE_ROOT" --days 7 --end "$end"

step "2. stage-import bootstrap: schemas and tables in $WAREHOUSE_PATH"
"$bin/stage-import" bootstrap

step "3. stage-import all --from $start --to $end (per-file outcome in the log, JSON report on stdout)"
set +e
"$bin/stage-import" all --from "$start" --to "$end" > "$demo/report-1.json"
first=$?
set -e
python3 - "$demo/report-1.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"report: {r['files_loaded']} files loaded, {r['files_failed']} with rejected rows, "
      f"{r['rows_loaded']} rows, exit code {r['exit_code']}")
for load in r["loads"]:
    for f in load["files"]:
        if f["status"] != "LOADED":
            print(f"  {f['status']:<17} {load['table']:<24} {f['file']}: line {f['first_error_line']}: {f['first_error']}")
PY
echo "(exit code $first: 3 = partial success, some rows were rejected; see README)"

step "4. The same command again: every file was loaded before, nothing loads twice"
set +e
"$bin/stage-import" all --from "$start" --to "$end" --log-level warn > "$demo/report-2.json"
second=$?
set -e
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"report: {r['files_skipped']} files skipped (loaded before), {r['rows_loaded']} rows loaded, exit code {r['exit_code']}\")" "$demo/report-2.json"

step "5. What is in the warehouse"
"$bin/stage-import" query "
  SELECT schema_name || '.' || table_name AS table_name, estimated_size AS rows
  FROM duckdb_tables() WHERE schema_name <> '_stage_import' ORDER BY 1"

step "6. dbt build: the models of transform/dbt on the same file (staging views, marts tables, their tests)"
# Salesforce's models need pg-replicate's tables (make demo-replicate): left out when absent.
exclude=()
if ! "$bin/stage-import" query "SELECT 1 FROM orgm.account LIMIT 1" > /dev/null 2>&1; then
  exclude=(--exclude source:orgm+ source:pg_replicate+)
  echo "(no orgm.account here, from pg-replicate: the Salesforce models are left out)"
fi
dbt_started=$SECONDS
(
  cd transform/dbt
  DBT_PROFILES_DIR=. DBT_TARGET_PATH="$root/$demo/dbt-target" DBT_LOG_PATH="$root/$demo/dbt-logs" \
    WAREHOUSE_PATH="$root/$WAREHOUSE_PATH" "$dbt" build --quiet "${exclude[@]}"
)
echo "dbt build: every model built and every test passed, in $((SECONDS - dbt_started)) s"

step "7. Daily active servers and users (marts.daily_active_usage)"
"$bin/stage-import" query "SELECT day, active_servers, active_users FROM marts.daily_active_usage ORDER BY day"

step "8. The versions the servers ran yesterday, most servers first (marts.server_daily_details)"
"$bin/stage-import" query "
  SELECT server_version, count(*) AS servers, sum(active_users) AS active_users
  FROM marts.server_daily_details WHERE day = (SELECT max(day) FROM marts.server_daily_details)
  GROUP BY ALL ORDER BY servers DESC, server_version LIMIT 5"

echo
echo "Try: $bin/stage-import --help, $bin/stage-import sources, or a query of your own:"
echo "  WAREHOUSE_PATH=$WAREHOUSE_PATH $bin/stage-import query 'SELECT * FROM marts.current_licenses LIMIT 5'"
echo "The models' docs: make dbt-docs (then open http://localhost:8080)"
