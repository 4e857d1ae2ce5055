#!/usr/bin/env bash
# Load benchmark: the same CloudFront files (>= 1 GB uncompressed) loaded by stage-import's
# embedded (DuckDB) backend and by DuckDB's read_csv alone (Python's duckdb: the same engine,
# no job around it), in one run. Prints rows/s, the ratio and peak RSS of each.
#
#   bench/stage-import-load.sh [FILES] [ROWS_PER_FILE]     (default 16 x 200000 rows, ~1.2 GB)
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-16}
rows=${2:-200000}
target=${CARGO_TARGET_DIR:-target}
venv=${DATA_JOBS_VENV:-${VENV:-.venv}}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The speed profile: the dev build with DuckDB's C++ at -O3 (the tests' dev build has it at -O1).
# Its first build compiles DuckDB once more, in $target/speed.
cargo build -q --profile speed --workspace --bins --tests
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import duckdb" 2>/dev/null || "$venv/bin/pip" install -q duckdb

day=2026-01-15
"$target/speed/sample-data" cloudfront --out "$work/stage" --date "$day" --files "$files" --rows-per-file "$rows"
bytes=$(find "$work/stage" -name '*.gz' -exec zcat {} + | wc -c)
echo "data: $(find "$work/stage" -name '*.gz' | wc -l) gzipped files, $((bytes / 1000000)) MB uncompressed"

export STAGE_ROOT="$work/stage" WAREHOUSE_PATH="$work/job.duckdb" DIAGNOSTIC_LOCATION_ONE=E1DIAGNOSTICS \
  DIAGNOSTIC_LOCATION_TWO=E2DIAGNOSTICS DUCKDB_MEMORY_LIMIT=${DUCKDB_MEMORY_LIMIT:-1GB} LOG_LEVEL=warn
"$target/speed/stage-import" bootstrap diagnostics

measure() { # label, command... -> prints "seconds peak_kb"
  local out=$work/time.$1; shift
  /usr/bin/time -f '%e %M' -o "$out" "$@" > "$work/stdout" 2> "$work/stderr" || { cat "$work/stderr" >&2; return 1; }
  cat "$out"
}

read -r job_s job_kb < <(measure job "$target/speed/stage-import" diagnostics --date "$day" --allow-empty)
job_rows=$(python3 -c "import json; print(json.load(open('$work/stdout'))['rows_loaded'])")

columns=$("$target/speed/stage-import" bootstrap --print diagnostics | python3 -c "
import re, sys
sql = sys.stdin.read()
cols = re.findall(r'\"(\w+)\" (\w+)', sql)
print(', '.join(f\"'{n}': '{t}'\" for n, t in cols))")
read -r alone_s alone_kb < <(measure alone "$venv/bin/python" -c "
import duckdb, glob, sys
con = duckdb.connect('$work/alone.duckdb', config={'memory_limit': '${DUCKDB_MEMORY_LIMIT:-1GB}'})
con.execute('SET preserve_insertion_order = false')
con.execute('SET enable_progress_bar = false')
files = sorted(glob.glob('$work/stage/diagnostics/**/*.gz', recursive=True))
con.execute('''CREATE TABLE t AS SELECT * FROM read_csv(\$files, columns = {$columns}, auto_detect = false,
  header = false, skip = 2, delim = '\t', quote = '', escape = '', nullstr = '-', null_padding = true,
  ignore_errors = true, compression = 'gzip', filename = true)''', {'files': files})
print(con.execute('SELECT count(*) FROM t').fetchone()[0])
")
alone_rows=$(cat "$work/stdout")

python3 - "$job_rows" "$job_s" "$job_kb" "$alone_rows" "$alone_s" "$alone_kb" "$bytes" <<'PY'
import sys
job_rows, job_s, job_kb, alone_rows, alone_s, alone_kb, size = sys.argv[1:]
job_rows, alone_rows, size = int(job_rows), int(alone_rows), int(size)
job_s, alone_s = float(job_s), float(alone_s)
assert job_rows == alone_rows, f"row counts differ: job {job_rows}, duckdb alone {alone_rows}"
print(f"stage-import (DuckDB backend): {job_rows} rows in {job_s:.2f} s = {job_rows/job_s:,.0f} rows/s, {size/job_s/1e6:.0f} MB/s, peak RSS {int(job_kb)/1024:.0f} MB")
print(f"DuckDB read_csv alone:         {alone_rows} rows in {alone_s:.2f} s = {alone_rows/alone_s:,.0f} rows/s, {size/alone_s/1e6:.0f} MB/s, peak RSS {int(alone_kb)/1024:.0f} MB")
print(f"ratio (job / DuckDB alone, throughput): {alone_s/job_s:.2f}x   (goal >= 0.8x)")
PY
