# The front door for people and CI. `make demo` and `make test` set up what they need.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# One target directory for every build; CI points it outside the clone so it survives runs.
CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR

# The jobs that ship as images (every crate but the shared kit).
JOBS := webhook-alert pg-job
# Images hold static binaries: glibc linked in, so FROM scratch needs nothing else. The
# explicit --target keeps the flag off build scripts and proc-macros.
IMAGE_TARGET := x86_64-unknown-linux-gnu
STATIC_RUSTFLAGS := -C target-feature=+crt-static

# Python tools the tests run as local servers (fakesnow, moto), in a project venv.
VENV ?= $(CURDIR)/.venv
export DATA_JOBS_VENV := $(VENV)

.PHONY: help build release images test demo fmt lint clean venv bench-pg-job bench-stage-import bench-permissions demo-pg-job

help:
	@echo "make demo    run the main job on the embedded default (nothing else needed)"
	@echo "make test    build everything and run every test (sets up what it needs)"
	@echo "make build   debug build of every job"
	@echo "make images  release binaries and a FROM-scratch image per job"
	@echo "make fmt     format the code;  make lint  fmt --check and clippy -D warnings"

build:
	cargo build --workspace --bins

release:
	RUSTFLAGS="$(STATIC_RUSTFLAGS)" cargo build --release --target $(IMAGE_TARGET) $(addprefix -p ,$(JOBS))

images: release
	@for job in $(JOBS); do docker/build-image.sh $$job; done

venv: $(VENV)/.installed
$(VENV)/.installed: tests/requirements.txt
	python3 -m venv "$(VENV)"
	"$(VENV)/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch "$@"

# cargo prints one "test result" line per test binary; the last line here sums them up.
test: build release venv
	@status=0; cargo test --workspace --lib --tests 2>&1 | tee "$(CARGO_TARGET_DIR)/test.log" || status=$$?; \
	awk '/^test result:/ { p += $$4; f += $$6 } END { printf "\nsummary: %d passed, %d failed\n", p, f }' \
	  "$(CARGO_TARGET_DIR)/test.log"; \
	exit $$status

demo:
	@echo "The first build compiles DuckDB's C++ (the embedded warehouse): about 30 minutes on 2 cores,"
	@echo "once; cargo shows its progress. Later builds take seconds."
	cargo build -p stage-import -p sample-data
	@scripts/demo.sh

# pg-job on seed data in a throwaway local PostgreSQL (needs PostgreSQL's server binaries).
demo-pg-job: build
	transform/demo.sh

bench-pg-job:
	bench/pg-job/run.sh

bench-stage-import:
	bench/stage-import-load.sh

bench-permissions:
	bench/permissions/run.sh

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

clean:
	cargo clean
