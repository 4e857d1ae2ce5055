#!/usr/bin/env bash
# pg-replicate on a throwaway local PostgreSQL shaped like Heroku Connect's (schema salesforce:
# account, opportunity, opportunitylineitem, product2 with sfid, systemmodstamp, isdeleted,
# _hc_lastop): a first run copies every table, then rows are updated and inserted (among them
# rows tied on the bookmark's exact key and a row whose key is older than the bookmark, as a
# transaction that commits late writes it), a second run merges them, and a third finds nothing
# to do. Then Salesforce gains a field (filled in for every account, no SystemModstamp moves)
# and two opportunity lines are deleted: the fourth run adds the column and backfills it, and
# its reconciliation finds the deletions. Stitch sees neither. Each run's report is summed up
# per table.
#
#   transform/demo-replicate.sh    # uses $CARGO_TARGET_DIR/debug/pg-replicate (make build)
#   PG_REPLICATE=path/to/pg-replicate transform/demo-replicate.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pg_replicate=${PG_REPLICATE:-${CARGO_TARGET_DIR:-$root/target}/debug/pg-replicate}
[ -x "$pg_replicate" ] || { echo "demo: $pg_replicate is missing: make build" >&2; exit 2; }
# The warehouse is read back with stage-import's query command, which opens the same DuckDB file.
stage_import=$(dirname "$pg_replicate")/stage-import
[ -x "$stage_import" ] || { echo "demo: $stage_import is missing: make build" >&2; exit 2; }

# shellcheck source=local-postgres.sh
. "$root/transform/local-postgres.sh"
start_local_postgres
work=$(mktemp -d /tmp/pg-replicate-demo-XXXXXX)
trap 'stop_local_postgres; rm -rf "$work"' EXIT
psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$PG_URL" "$@"; }

psql -1 -f "$root/transform/fixtures/salesforce_schema.sql"
psql -1 -f "$root/transform/fixtures/salesforce_seed.sql"

# Warnings only: the per-table summary below says what each run did.
export HEROKU_POSTGRESQL_URL=$PG_URL WAREHOUSE_PATH=$work/warehouse.duckdb PG_REPLICATE_WORK_DIR=$work LOG_LEVEL=warn
cat > "$work/summary.py" <<'PY'
import json, sys
report = json.load(sys.stdin)
print(f"{'table':32} {'mode':12} {'read':>5} {'ins':>4} {'upd':>4} {'null key':>8}  bookmark")
for t in report["tables"]:
    mode = t["mode"] or t["status"]
    before, after = t["bookmark_before"] or "-", t["bookmark_after"] or "-"
    print(f"{t['table']:32} {mode:12} {t['rows_read']:5} {t['inserted']:4} {t['updated']:4} "
          f"{t['null_key_rows']:8}  {before} -> {after}")
    if t["columns_added"]:
        print(f"{'':32} added {', '.join(t['columns_added'])}, backfilled {t['rows_backfilled']} rows")
    found = t["reconciliation"]
    if found:
        print(f"{'':32} reconciled: {found['buckets_differing']} of {found['buckets']} buckets differed, "
              f"{found['keys_read']} keys read ({found['bytes_read']} bytes), "
              f"{found['rows_deleted_at_source']} rows deleted at the source ({found['hard_deletes']})")
    if t["error"]:
        print(f"{'':32} {t['error']}")
print(f"{report['tables_failed']} tables failed, {report['seconds']} s")
PY
summary() { python3 "$work/summary.py"; }

echo "== pg-replicate: the first run copies every table in full"
"$pg_replicate" | summary

echo
echo "== at the source: two accounts and an opportunity change, three opportunity lines"
echo "   tie on the bookmark's exact systemmodstamp, and one arrives late (an older key)"
psql <<'SQL'
UPDATE salesforce.account SET industry = 'Aerospace', systemmodstamp = now() + interval '1 second'
 WHERE sfid IN ('0011000000AcmeAAA', '0011000000InitchA');
UPDATE salesforce.opportunity SET stagename = 'Closed Won', isclosed = true, iswon = true,
       systemmodstamp = now() + interval '1 second'
 WHERE sfid = '0061000000IniOpen';
INSERT INTO salesforce.opportunitylineitem (sfid, opportunityid, product2id, name, quantity, unitprice,
       totalprice, isdeleted, systemmodstamp, _hc_lastop)
SELECT '00k10000Tie' || g || 'AAAA', '0061000000IniOpen', '01t1000000EntrpAA', 'Initech seat ' || g, 1,
       120, 120, false, (SELECT max(systemmodstamp) FROM salesforce.opportunitylineitem), 'SYNCED'
  FROM generate_series(1, 3) g;
INSERT INTO salesforce.opportunitylineitem (sfid, opportunityid, product2id, name, quantity, unitprice,
       totalprice, isdeleted, systemmodstamp, _hc_lastop)
VALUES ('00k1000000LateAAA', '0061000000IniOpen', '01t1000000ProfAAA', 'Initech late line', 10, 100,
        1000, false, (SELECT max(systemmodstamp) FROM salesforce.opportunitylineitem) - interval '5 minutes',
        'SYNCED');
SQL

echo
echo "== pg-replicate: the second run merges what changed (the lookback re-reads and finds the late row)"
"$pg_replicate" | summary

echo
echo "== pg-replicate: a third run finds nothing new"
"$pg_replicate" | summary

echo
echo "== at the source: Salesforce gains a field, account.rating, filled in for every account"
echo "   without moving any SystemModstamp; two opportunity lines are deleted"
psql <<'SQL'
ALTER TABLE salesforce.account ADD COLUMN rating varchar(40);
UPDATE salesforce.account SET rating = CASE WHEN industry = 'Aerospace' THEN 'Hot' ELSE 'Warm' END;
DELETE FROM salesforce.opportunitylineitem WHERE sfid IN ('00k1000000GlxOldA', '00k1000000IniLstA');
SQL

echo
echo "== pg-replicate --reconcile opportunitylineitem: the column is added and backfilled, and the"
echo "   keys reconciled (the catalog reconciles daily; the flag asks for it now)"
"$pg_replicate" --reconcile opportunitylineitem | summary

echo
echo "== in the warehouse: the backfilled column, and the lines found deleted"
"$stage_import" query "SELECT name, industry, rating FROM orgm.account ORDER BY name"
"$stage_import" query "SELECT sfid, name, _deleted_at FROM orgm.opportunitylineitem
  WHERE _deleted_at IS NOT NULL ORDER BY sfid"

echo
echo "== dbt: the Salesforce models of transform/dbt on this warehouse, then today's ARR per account"
dbt="${DBT_VENV:-$(pwd)/.venv-dbt}/bin/dbt"
(
  cd transform/dbt
  DBT_PROFILES_DIR=. DBT_TARGET_PATH="$(dirname "$WAREHOUSE_PATH")/dbt-target" \
    DBT_LOG_PATH="$(dirname "$WAREHOUSE_PATH")/dbt-logs" \
    "$dbt" build --quiet --select source:orgm+ source:pg_replicate+
)
"$stage_import" query "SELECT account_name, arr, active_lines FROM marts.account_daily_arr
  WHERE day = (SELECT max(day) FROM marts.account_daily_arr) ORDER BY account_name"

echo
echo "The warehouse is $WAREHOUSE_PATH (removed on exit). Try: $pg_replicate --help"
