#!/usr/bin/env bash
# S3 listing benchmark: 2,000 objects over 30 days under one prefix, behind a latency-adding
# proxy; stage-import's preflight and 30-day backfill against the original's and a naive
# rewrite's listings, in one run. See bench/stage-import-listing.py.
#
#   bench/stage-import-listing.sh                          # 2,000 objects, 30 days, 30 ms
#   bench/stage-import-listing.sh --objects 5000 --latency-ms 80
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
venv=${DATA_JOBS_VENV:-${VENV:-.venv}}
[ -x "$venv/bin/moto_server" ] || { echo "the project venv ($venv) lacks moto: run 'make venv'" >&2; exit 2; }
cargo build -q --workspace --bins --tests  # make build's selection: no second compile
exec "$venv/bin/python" bench/stage-import-listing.py --stage-import "$target/debug/stage-import" \
  --sample-data "$target/debug/sample-data" --moto-server "$venv/bin/moto_server" "$@"
