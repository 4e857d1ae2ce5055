#!/usr/bin/env bash
# The permissions benchmark: a full plan of a converged 500-role account at 50 ms per request,
# against Permifrost 0.15.5 on the same spec and account. See README.md beside this file.
#
#   bench/permissions/run.sh                 # the issue's sizes (a few minutes, Permifrost most)
#   bench/permissions/run.sh --roles 50 --users 30 --databases 5   # a quick look
#   PERMIFROST=0 bench/permissions/run.sh    # ours only
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${DATA_JOBS_VENV:-$root/.venv}"
target="${CARGO_TARGET_DIR:-$root/target}"
# Permifrost needs SQLAlchemy 1.x: a venv of its own, so that it cannot disturb the project's.
pf_venv="${PERMIFROST_VENV:-$HOME/.cache/data-jobs/permifrost-venv}"

if [[ ! -x "$venv/bin/fakesnow" ]]; then
    echo "the project venv ($venv) lacks fakesnow: run 'make venv' or set DATA_JOBS_VENV" >&2
    exit 2
fi

binary="${PERMISSIONS_BIN:-}"
if [[ -z "$binary" ]]; then
    cargo build --quiet -p permissions --manifest-path "$root/Cargo.toml"
    binary="$target/debug/permissions"
fi

args=(--binary "$binary" --python "$venv/bin/python")
if [[ "${PERMIFROST:-1}" != 0 ]]; then
    if [[ ! -x "$pf_venv/bin/permifrost" ]]; then
        python3 -m venv "$pf_venv"
        "$pf_venv/bin/pip" install --quiet 'permifrost==0.15.5' 'sqlalchemy<2' 'snowflake-sqlalchemy<1.6'
    fi
    args+=(--permifrost-python "$pf_venv/bin/python")
fi

exec "$venv/bin/python" "$root/bench/permissions/bench.py" "${args[@]}" "$@"
