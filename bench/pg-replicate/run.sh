#!/usr/bin/env bash
# pg-replicate against Sling, dlt and the physical floor, in one run (bench.py says what is
# measured). `make bench-pg-replicate`; ROWS and RSS_ROWS set the table sizes.
#
# Needs Debian's postgresql package and GNU time (/usr/bin/time), and PyPI once for the peers'
# venv (REPLICATE_PEERS_VENV). Builds pg-replicate in the speed profile (DuckDB at -O3).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/bench/pg-replicate"
target=${CARGO_TARGET_DIR:-$root/target}
peers=${REPLICATE_PEERS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/data-jobs/replicate-peers-venv}
work=${BENCH_WORK:-$(mktemp -d /tmp/bench-pg-replicate-XXXXXX)}

[ -x /usr/bin/time ] || { echo "GNU time (/usr/bin/time, Debian package time) measures peak memory: install it" >&2; exit 2; }

if [ ! -f "$peers/.installed" ] || [ "$here/requirements.txt" -nt "$peers/.installed" ]; then
  echo "installing the peers (Sling, dlt, DuckDB's CLI) into $peers ..." >&2
  python3 -m venv --clear "$peers"
  "$peers/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  # The CLI's extensions, without the python duckdb they depend on (the venv keeps the
  # crate's DuckDB): Sling's DuckDB target runs INSTALL json and reads its stream over HTTP.
  wheels=$(mktemp -d)
  "$peers/bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$wheels" \
    duckdb-extension-json==1.5.5 duckdb-extension-httpfs==1.5.5
  mkdir -p "$peers/duckdb-extensions/v1.5.5/linux_amd64"
  for wheel in "$wheels"/*.whl; do
    "$peers/bin/python" - "$wheel" "$peers/duckdb-extensions/v1.5.5/linux_amd64" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in z.namelist():
        if name.endswith(".duckdb_extension"):
            with open(f"{sys.argv[2]}/{name.rsplit('/', 1)[1]}", "wb") as out:
                out.write(z.read(name))
PY
  done
  rm -rf "$wheels"
  touch "$peers/.installed"
fi
# Sling runs the CLI with HOME=$work/sling-home: its extensions go there.
mkdir -p "$work/sling-home/.duckdb/extensions"
cp -r "$peers/duckdb-extensions/v1.5.5" "$work/sling-home/.duckdb/extensions/"

(cd "$root" && cargo build -q --profile speed -p pg-replicate --bins)

# shellcheck source=../../transform/local-postgres.sh
. "$root/transform/local-postgres.sh"
start_local_postgres
trap 'stop_local_postgres; rm -rf "$work"' EXIT

"$peers/bin/python" "$here/bench.py" --pg-url "$PG_URL" --psql "$PG_BIN/psql" \
  --job "$target/speed/pg-replicate" --peers-venv "$peers" --work "$work/run" --sling-home "$work/sling-home" \
  --rows "${ROWS:-1000000}" --rss-rows "${RSS_ROWS:-4000000}"
