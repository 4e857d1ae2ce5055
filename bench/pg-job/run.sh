#!/usr/bin/env bash
# pg-job against psql on the same throwaway local PostgreSQL server, in one run: the same scripts,
# run alternately by `psql -X -v ON_ERROR_STOP=1 -1 -f` and by pg-job's release binary; the
# median wall time of each and their ratio (pg-job / psql; below 1 means pg-job is faster).
#
#   bench/pg-job/run.sh            # builds the release binary first (cargo build --release)
#   RUNS_SMALL=40 bench/pg-job/run.sh
#
# Needs Debian's postgresql package (see transform/local-postgres.sh).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
runs_start=${RUNS_START:-50}
runs_trivial=${RUNS_TRIVIAL:-30}
runs_small=${RUNS_SMALL:-20}
runs_big=${RUNS_BIG:-5}

# shellcheck source=../../transform/local-postgres.sh
. "$root/transform/local-postgres.sh"
start_local_postgres
trap stop_local_postgres EXIT
pg_bin=$PG_BIN
psql=$pg_bin/psql
url=$PG_URL
work=$PG_WORK

echo "building pg-job (release)..." >&2
(cd "$root" && cargo build --quiet --release -p pg-job)
pg_job=$target_dir/release/pg-job

sql=$work/sql
mkdir -p "$sql"
echo "SELECT 1;" > "$sql/trivial.sql"
{
  echo "CREATE TABLE IF NOT EXISTS bench_small (id int PRIMARY KEY, label text, hits int NOT NULL DEFAULT 0);"
  echo "TRUNCATE bench_small;"
  for i in $(seq 1 249); do
    echo "INSERT INTO bench_small (id, label) VALUES ($i, 'account $i');"
    echo "UPDATE bench_small SET hits = hits + 1 WHERE id = $i;"
  done
} > "$sql/small_statements.sql"
cat > "$sql/insert_1m.sql" <<'SQL'
DROP TABLE IF EXISTS bench_big;
CREATE TABLE bench_big (id int, account text, amount numeric(14, 2));
INSERT INTO bench_big SELECT g, md5(g::text), (g % 1000) * 1.5 FROM generate_series(1, 1000000) AS g;
SQL

run_psql() { "$psql" -X -v ON_ERROR_STOP=1 -1 -f "$sql/$1.sql" "$url" >/dev/null 2>&1; }
run_pg_job() {
  env -i HEROKU_POSTGRESQL_URL="$url" PG_JOB_SCRIPTS_DIR="$sql" "$pg_job" "$1" >/dev/null 2>&1
}

# Median wall time in ms of each command over $1 alternating runs.
now_us() { local t=${EPOCHREALTIME/./}; echo "$t"; }
measure() {
  local runs=$1 name=$2; shift 2
  local a=() b=() t0 t1 i
  for ((i = 0; i < runs; i++)); do
    t0=$(now_us); eval "$1"; t1=$(now_us); a+=($((t1 - t0)))
    t0=$(now_us); eval "$2"; t1=$(now_us); b+=($((t1 - t0)))
  done
  local ma mb
  ma=$(printf '%s\n' "${a[@]}" | sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)/1000}')
  mb=$(printf '%s\n' "${b[@]}" | sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)/1000}')
  awk -v n="$name" -v r="$runs" -v a="$ma" -v b="$mb" \
    'BEGIN { printf "%-34s %5d %10.2f %10.2f %7.2f\n", n, r, a, b, b / a }'
}

# Warm up the server's caches and both binaries once.
run_psql small_statements; run_pg_job small_statements

echo
echo "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}'), $(nproc) cores; pg-job $(stat -c %s "$pg_job" | awk '{printf "%.1f MB", $1/1e6}') stripped"
printf '%-34s %5s %10s %10s %7s\n' "case" "runs" "psql ms" "pg-job ms" "ratio"
measure "$runs_start" "process start (--version / --help)" "\"$psql\" --version >/dev/null" "\"$pg_job\" --help >/dev/null"
measure "$runs_trivial" "connect + SELECT 1" "run_psql trivial" "run_pg_job trivial"
measure "$runs_small" "500 small statements, 1 transaction" "run_psql small_statements" "run_pg_job small_statements"
measure "$runs_big" "INSERT ... SELECT of 1M rows" "run_psql insert_1m" "run_pg_job insert_1m"
