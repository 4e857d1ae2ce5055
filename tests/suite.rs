//! End-to-end tests: each runs a real job binary (or image) against real local servers. They
//! need the binaries built first (`make test` does it: `cargo build --workspace`).

mod dbt;
mod deployment;
mod images;
mod permissions;
mod pg_job;
mod pg_replicate;
mod pg_replicate_snowflake;
mod run_visibility;
mod stage_import;
mod stage_import_snowflake;
mod support;
mod webhook_alert;
