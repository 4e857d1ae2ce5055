# The front door for people and CI. `make demo` and `make test` set up what they need.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# One target directory for every build; CI points it outside the clone so it survives runs.
CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR

# The workspace version: every image's tag.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
# The jobs that ship as images (every binary crate but the sample-data tool).
JOBS := webhook-alert pg-job stage-import permissions pg-replicate
# Images hold static binaries: glibc linked in, so FROM scratch needs nothing else. The
# explicit --target keeps the flag off build scripts and proc-macros.
IMAGE_TARGET := x86_64-unknown-linux-gnu
STATIC_RUSTFLAGS := -C target-feature=+crt-static
# The jobs' static binaries for images; `release` and `image-test-binaries` add the profile.
STATIC_BUILD = RUSTFLAGS="$(STATIC_RUSTFLAGS)" cargo build --no-default-features --target $(IMAGE_TARGET) $(addprefix -p ,$(JOBS))

# Python tools the tests run as local servers (fakesnow, moto), in a project venv.
VENV ?= $(CURDIR)/.venv
export DATA_JOBS_VENV := $(VENV)
# Airflow, the Kubernetes schemas and yamllint for the deployment checks, apart from the above.
DEPLOY_VENV ?= $(CURDIR)/.venv-deploy
export DATA_JOBS_DEPLOY_VENV := $(DEPLOY_VENV)
# dbt, its adapters and the DuckDB the jobs are built with, for transform/dbt (tests/dbt.rs, the
# demo), apart from the above: dbt pins its own dependencies.
DBT_VENV ?= $(CURDIR)/.venv-dbt
export DATA_JOBS_DBT_VENV := $(DBT_VENV)
export DBT_VENV
# make dbt-build / dbt-docs: dbt on this warehouse file (the demo's by default).
WAREHOUSE_PATH ?= $(CURDIR)/.demo/warehouse.duckdb
# make run-<job>: the debug binary with the variables of ENV_FILE and the arguments in ARGS.
ENV_FILE ?= .env
ARGS ?=

.PHONY: dbt-build dbt-docs image-dbt bench-pg-replicate
.PHONY: help build release image-test-binaries images test bench-build demo fmt lint clean venv bench-pg-job bench-stage-import bench-stage-import-listing bench-permissions bench-images demo-pg-job demo-replicate

help:
	@echo "make demo    run the main job on the embedded default (nothing else needed)"
	@echo "make test    build everything and run every test (sets up what it needs)"
	@echo "make build   debug build of every job"
	@echo "make images  release binaries and a FROM-scratch image per job"
	@echo "make dbt-build / dbt-docs   the dbt models (transform/dbt) on WAREHOUSE_PATH, and their docs"
	@echo "make fmt     format the code;  make lint  fmt --check and clippy -D warnings"

# --tests: the same selection as clippy --all-targets and cargo test, so that every command resolves
# the same features (the tests' dev-dependencies turn on tokio's test-util) and shares one compile of
# each dependency. TIMINGS=--timings writes cargo's report (scripts/build-times.sh).
build:
	cargo build --workspace --bins --tests $(TIMINGS)

# --no-default-features leaves stage-import's embedded DuckDB out: production loads into
# Snowflake, and DuckDB would add ~50 MB and a half-hour C++ build at -O3.
release:
	$(STATIC_BUILD) --release

# The image tests' binaries: the same static build in the image-test profile (no fat LTO), which
# compiles in a fraction of release's time. The tests find them through IMAGE_PROFILE.
image-test-binaries:
	$(STATIC_BUILD) --profile image-test

images: release
	@for job in $(JOBS); do docker/build-image.sh $$job; done

# dbt's image: transform/dbt in the official dbt-snowflake image (pulls the base image).
image-dbt:
	docker build -f docker/dbt/Dockerfile --build-arg VERSION=$(VERSION) -t data-jobs/dbt:$(VERSION) transform/dbt

venv: $(VENV)/.installed $(DEPLOY_VENV)/.installed $(DBT_VENV)/.installed
$(VENV)/.installed: tests/requirements.txt
	python3 -m venv "$(VENV)"
	"$(VENV)/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch "$@"
# --clear: a changed pin (another Airflow) must not leave the old one's packages behind.
$(DEPLOY_VENV)/.installed: tests/deploy/requirements.txt
	python3 -m venv --clear "$(DEPLOY_VENV)"
	"$(DEPLOY_VENV)/bin/pip" install --quiet --disable-pip-version-check -r tests/deploy/requirements.txt
	touch "$@"
$(DBT_VENV)/.installed: transform/dbt/requirements.txt
	python3 -m venv --clear "$(DBT_VENV)"
	"$(DBT_VENV)/bin/pip" install --quiet --disable-pip-version-check -r transform/dbt/requirements.txt
	touch "$@"

# dbt in transform/dbt on WAREHOUSE_PATH: the project's profiles.yml, artefacts under .cache/dbt.
DBT = cd transform/dbt && DBT_PROFILES_DIR=. DBT_TARGET_PATH="$(CURDIR)/.cache/dbt/target" \
	DBT_LOG_PATH="$(CURDIR)/.cache/dbt/logs" WAREHOUSE_PATH="$(WAREHOUSE_PATH)" "$(DBT_VENV)/bin/dbt"
dbt-build: $(DBT_VENV)/.installed
	$(DBT) build
dbt-docs: $(DBT_VENV)/.installed
	$(DBT) docs generate
	$(DBT) docs serve --port 8080

# e.g. make run-pg-job ARGS=account-arr ENV_FILE=prod.env. The file holds NAME=value lines (as
# `docker run --env-file` reads them: no quotes, no expansion); its variables win over the shell's.
run-%: build
	@[ -f "$(ENV_FILE)" ] || { echo "run-$*: no env file $(ENV_FILE) (set ENV_FILE=...)" >&2; exit 2; }
	@[ -x "$(CARGO_TARGET_DIR)/debug/$*" ] || { echo "run-$*: no job named $*" >&2; exit 2; }
	@while IFS= read -r line || [ -n "$$line" ]; do \
	  case "$$line" in ''|'#'*) continue ;; esac; export "$$line"; \
	done < "$(ENV_FILE)"; exec "$(CARGO_TARGET_DIR)/debug/$*" $(ARGS)

# cargo prints one "test result" line per test binary; the last line here sums them up.
test: build image-test-binaries venv
	@status=0; IMAGE_PROFILE=image-test cargo test --workspace --lib --tests 2>&1 | tee "$(CARGO_TARGET_DIR)/test.log" || status=$$?; \
	awk '/^test result:/ { p += $$4; f += $$6 } END { printf "\nsummary: %d passed, %d failed\n", p, f }' \
	  "$(CARGO_TARGET_DIR)/test.log"; \
	exit $$status

# The same cargo invocation as `make build` and `make test`: DuckDB's build script is keyed on the
# invocation's features, so one selection everywhere means its C++ compiles once per machine.
demo:
	@echo "The first build compiles DuckDB's C++ (the embedded warehouse): about 13 minutes on 2 cores,"
	@echo "once; cargo shows its progress. Later builds take seconds."
	$(MAKE) --no-print-directory build $(DBT_VENV)/.installed
	@scripts/demo.sh

# pg-job on seed data in a throwaway local PostgreSQL (needs PostgreSQL's server binaries).
demo-pg-job: build
	transform/demo.sh

# pg-replicate from a throwaway local PostgreSQL shaped like Heroku Connect's into a DuckDB file.
demo-replicate: build $(DBT_VENV)/.installed
	transform/demo-replicate.sh

# Stage times of a cold build and of a warm one-file change: scripts/build-times.sh.
bench-build:
	scripts/build-times.sh

bench-pg-job:
	bench/pg-job/run.sh

bench-stage-import:
	bench/stage-import-load.sh

bench-stage-import-listing: venv
	bench/stage-import-listing.sh

bench-permissions:
	bench/permissions/run.sh

bench-images: venv
	bench/images/run.sh

# pg-replicate against Sling, dlt and psql | DuckDB on a 1M-row table (ROWS, RSS_ROWS to change).
bench-pg-replicate:
	bench/pg-replicate/run.sh

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

clean:
	cargo clean
