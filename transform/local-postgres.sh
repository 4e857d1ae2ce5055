# A throwaway PostgreSQL server for the demo and the benchmark (sourced, not run):
#
#   . transform/local-postgres.sh
#   start_local_postgres            # sets PG_URL (database sales, trust auth, 127.0.0.1, a free
#                                   # port) and PG_BIN
#   trap stop_local_postgres EXIT
#
# Uses Debian's postgresql package. initdb refuses to run as root: as root, the server runs as
# the postgres (or nobody) user. Durability is off: the data is thrown away.

start_local_postgres() {
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ ! -x "$PG_BIN/initdb" ]; then
    echo "PostgreSQL is missing: apt-get install postgresql" >&2
    return 2
  fi
  PG_WORK=$(mktemp -d /tmp/pg-job-local-XXXXXX)
  PG_RUN_AS=()
  if [ "$(id -u)" = 0 ]; then
    local user=postgres
    id -u "$user" >/dev/null 2>&1 || user=nobody
    chown "$user" "$PG_WORK"
    PG_RUN_AS=(setpriv --reuid="$(id -u "$user")" --regid="$(id -g "$user")" --clear-groups --)
  fi
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  (cd "$PG_WORK" && "${PG_RUN_AS[@]}" "$PG_BIN/initdb" -D "$PG_WORK/data" -U postgres -A trust \
    -E UTF8 --locale=C --no-sync >/dev/null)
  (cd "$PG_WORK" && "${PG_RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_WORK/data" -l "$PG_WORK/server.log" -w -o \
    "-c listen_addresses=127.0.0.1 -p $port -k $PG_WORK -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=128MB -c max_wal_size=2GB" \
    start >/dev/null)
  # A database of its own (and a short name: the job's log masks URL path segments of 8 or more
  # characters as if they were keys).
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "postgres://postgres@127.0.0.1:$port/postgres" -c "CREATE DATABASE sales"
  PG_URL="postgres://postgres@127.0.0.1:$port/sales?sslmode=disable"
}

stop_local_postgres() {
  if [ -n "${PG_WORK:-}" ]; then
    "${PG_RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_WORK/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_WORK"
    PG_WORK=
  fi
}
