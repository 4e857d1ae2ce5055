#!/usr/bin/env bash
# `make demo`: the main job on the embedded default, with nothing else installed. Generates a
# week of sample files in the real sources' layouts, creates the tables, loads every source
# and day into a local DuckDB file, loads again to show nothing loads twice, and prints what
# was loaded.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/debug"
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

step "6. Daily active servers and users, from the telemetry in the diagnostics pings"
"$bin/stage-import" query "
  WITH pings AS (
    SELECT log_date,
           regexp_extract(uri_query, 'id=([^&]+)', 1) AS server,
           max(TRY_CAST(regexp_extract(uri_query, 'auc=([0-9]+)', 1) AS BIGINT)) AS active_users
    FROM diagnostics.log_entries WHERE uri_stem = '/security' GROUP BY ALL)
  SELECT log_date AS day, count(*) AS active_servers, sum(active_users) AS active_users
  FROM pings GROUP BY ALL ORDER BY day"

echo
echo "Try: $bin/stage-import --help, $bin/stage-import sources, or a query of your own:"
echo "  WAREHOUSE_PATH=$WAREHOUSE_PATH $bin/stage-import query 'SELECT * FROM licenses.licenses LIMIT 5'"
