#!/usr/bin/env bash
# Times the build and test cycle stage by stage and prints a table (make bench-build).
#
#   scripts/build-times.sh [--cold] [--warm]      (both when neither is given)
#
# --cold starts from an empty CARGO_TARGET_DIR and empty venvs (the cargo registry may stay warm)
# and runs the stages CI runs, in CI's order. --warm touches one file in crates/job-kit and one in
# crates/stage-import and times `make test`. CARGO_TARGET_DIR, VENV and DEPLOY_VENV default to
# scratch directories under $TMPDIR, so a cold run never empties the build that CI and `make`
# reuse; point them at that build to make the measured build the one you keep.
#
# The split of the clippy and debug build steps (DuckDB's C++, other dependencies, workspace
# crates) comes from cargo's --timings report. They overlap on 2 cores: DuckDB's C++ compiles
# beside the other dependencies, so the three add up to more than the step's wall time.
set -euo pipefail
cd "$(dirname "$0")/.."

cold=false warm=false
for arg in "$@"; do
  case $arg in
    --cold) cold=true ;;
    --warm) warm=true ;;
    *) echo "build-times: unknown argument $arg (use --cold, --warm)" >&2; exit 2 ;;
  esac
done
$cold || $warm || { cold=true; warm=true; }

scratch=${TMPDIR:-/tmp}/data-jobs-build-times
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$scratch/target}
export VENV=${VENV:-$scratch/venv} DEPLOY_VENV=${DEPLOY_VENV:-$scratch/deploy-venv}
export CARGO_TERM_COLOR=never
log=$CARGO_TARGET_DIR/build-times.log
rows=()

timed() { # label, command...: runs it, its output to the log, and records its wall time
  local label=$1 t0=$SECONDS; shift
  echo "--- $label: $*" >> "$log"
  if ! "$@" >> "$log" 2>&1; then
    echo "build-times: '$label' failed; see $log" >&2
    tail -30 "$log" >&2
    exit 1
  fi
  rows+=("$label|$((SECONDS - t0))")
  printf '%-44s %6d s\n' "$label" "$((SECONDS - t0))"
}

# Splits the newest cargo-timing.html: DuckDB's C++ (its build script's run), the other
# dependencies (wall time until the last of them ended) and the workspace's own crates (the sum of
# their units). Units that were fresh do not appear.
split_timings() {
  python3 - "$CARGO_TARGET_DIR/cargo-timings/cargo-timing.html" <<'PY'
import glob, json, re, sys, tomllib
html = open(sys.argv[1]).read()
units = json.loads(re.search(r"const UNIT_DATA = (\[.*?\]);\n", html, re.S).group(1))
members = {tomllib.load(open(p, "rb"))["package"]["name"] for p in glob.glob("crates/*/Cargo.toml")}
members.add("suite-tests")
duckdb = {"libduckdb-sys", "duckdb"}
cxx = sum(u["duration"] for u in units if u["name"] == "libduckdb-sys" and "custom-build" in u["mode"])
deps_end = max([u["start"] + u["duration"] for u in units if u["name"] not in members | duckdb] or [0])
own = sum(u["duration"] for u in units if u["name"] in members)
print(f"  DuckDB's C++ (libduckdb-sys build script)|{cxx:.0f}")
print(f"  other dependencies (until the last one ends)|{deps_end:.0f}")
print(f"  workspace crates (sum of their units)|{own:.0f}")
PY
}

add_split() { # the last --timings report's split, as rows of the table
  local label seconds
  while IFS='|' read -r label seconds; do
    rows+=("$label|$seconds"); printf '%-44s %6d s\n' "$label" "$seconds"
  done < <(split_timings)
}

if $cold; then
  rm -rf "$CARGO_TARGET_DIR" "$VENV" "$DEPLOY_VENV"
  mkdir -p "$CARGO_TARGET_DIR"
  : > "$log"
  echo "cold: CARGO_TARGET_DIR=$CARGO_TARGET_DIR ($(nproc) cores)"
  # CI's order: clippy first (it compiles DuckDB's C++), then make test's steps one at a time.
  timed "cargo clippy (checks; DuckDB's C++)" \
    cargo clippy --workspace --all-targets --timings -- -D warnings
  add_split
  timed "make build (debug jobs and tests)" make build TIMINGS=--timings
  add_split
  timed "make image-test-binaries" make image-test-binaries
  timed "python venvs (CI: beside the build)" make venv
  timed "make test (all built: the run)" make test
  grep -E '^summary:' "$log" | tail -1
fi

if $warm; then
  [ -x "$CARGO_TARGET_DIR/debug/stage-import" ] || { echo "build-times: --warm needs a build in $CARGO_TARGET_DIR" >&2; exit 2; }
  touch crates/job-kit/src/lib.rs crates/stage-import/src/lib.rs
  timed "warm: job-kit + stage-import touched, make test" make test
fi

echo
echo "| stage | seconds |"
echo "| --- | ---: |"
for row in "${rows[@]}"; do echo "| ${row%%|*} | ${row##*|} |"; done
