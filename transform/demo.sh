#!/usr/bin/env bash
# pg-job on a throwaway local PostgreSQL: loads the Salesforce-like seed data, runs the hourly
# chain (account-arr >> opportunity-snapshot >> opportunitylineitem-snapshot) and the
# no-transaction maintenance script, prints what they built, then shows a failing script
# rolled back.
#
#   transform/demo.sh              # uses $CARGO_TARGET_DIR/debug/pg-job (cargo build -p pg-job)
#   PG_JOB=path/to/pg-job transform/demo.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pg_job=${PG_JOB:-${CARGO_TARGET_DIR:-$root/target}/debug/pg-job}
[ -x "$pg_job" ] || { echo "demo: $pg_job is missing: cargo build -p pg-job" >&2; exit 2; }

# shellcheck source=local-postgres.sh
. "$root/transform/local-postgres.sh"
start_local_postgres
trap stop_local_postgres EXIT
psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$PG_URL" "$@"; }

psql -1 -f "$root/transform/fixtures/salesforce_schema.sql"
psql -1 -f "$root/transform/fixtures/salesforce_seed.sql"

export HEROKU_POSTGRESQL_URL=$PG_URL PG_JOB_SCRIPTS_DIR=$root/transform/sql
echo "== pg-job --dry-run account-arr"
"$pg_job" --dry-run account-arr | head -12
for script in account-arr opportunity-snapshot opportunitylineitem-snapshot reporting-maintenance; do
  echo
  echo "== pg-job $script"
  "$pg_job" "$script"
done

echo
echo "== reporting.account_arr (today)"
psql -c "SELECT account_name, arr, active_lines FROM reporting.account_arr
         WHERE snapshot_date = current_date ORDER BY arr DESC"

echo "== a script that fails halfway is rolled back whole"
failing=$(mktemp -d)
cat > "$failing/bad_rollup.sql" <<'SQL'
CREATE TABLE reporting.half_done (n int);
INSERT INTO reporting.half_done VALUES (1);
INSERT INTO reporting.half_done VALUES ('one');
SQL
status=0
PG_JOB_SCRIPTS_DIR=$failing "$pg_job" bad-rollup || status=$?
rm -rf "$failing"
echo "exit code $status; reporting.half_done exists: $(psql -At -c "SELECT to_regclass('reporting.half_done') IS NOT NULL")"
