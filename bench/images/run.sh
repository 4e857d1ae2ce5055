#!/usr/bin/env bash
# The images against the Python stack they replace, side by side: size, start-up, time to the
# first byte on the network, and peak memory of a real run. See README.md beside this file.
#
#   bench/images/run.sh              # builds the images first (make images)
#   SKIP_BUILD=1 bench/images/run.sh # the images and release binaries as they are
#
# Needs Docker, Debian's postgresql package, the project venv (make venv: fakesnow, moto) and
# network access to PyPI once, for the Python peer's venv.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${DATA_JOBS_VENV:-$root/.venv}
# The peer: what the jobs ran on before, a venv with the job scripts' libraries.
peer_venv=${PYTHON_STACK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/data-jobs/python-stack-venv}

[ -x /usr/bin/time ] || { echo "GNU time (/usr/bin/time, Debian package time) measures peak memory: install it" >&2; exit 2; }
[ -x "$venv/bin/fakesnow" ] || { echo "the project venv ($venv) lacks fakesnow: run 'make venv'" >&2; exit 2; }
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  make -C "$root" --no-print-directory images
fi
if [ ! -x "$peer_venv/bin/python" ] || ! "$peer_venv/bin/python" -c 'import snowflake.connector, psycopg2, requests' 2>/dev/null; then
  echo "creating the Python peer's venv in $peer_venv (snowflake-connector-python, psycopg2, requests)..." >&2
  python3 -m venv "$peer_venv"
  "$peer_venv/bin/pip" install --quiet --disable-pip-version-check \
    'snowflake-connector-python<5' psycopg2-binary requests
fi

# shellcheck source=../../transform/local-postgres.sh
. "$root/transform/local-postgres.sh"
start_local_postgres
trap stop_local_postgres EXIT

"$venv/bin/python" "$root/bench/images/bench.py" \
  --root "$root" --venv "$venv" --peer-venv "$peer_venv" --pg-url "$PG_URL" "$@"
