//! fakesnow, the Snowflake emulator, behind its compatibility proxy
//! (`tests/snowflake_compat/proxy.py`): one server per test binary, a fresh database per test,
//! and scripted misbehaviour (still-running replies, hangs, HTTP failures, expired sessions,
//! refused logins, chunked results). The launcher lives in `crates/test-servers` so that
//! library tests (`crates/snowflake-conn/tests`) start the same server the same way; see its
//! docs for the whole API.
//!
//! A job under test gets the proxy's URL as its Snowflake base URL (e.g. `SNOWFLAKE_URL`) and
//! any account, user and password:
//!
//! ```ignore
//! let Some(snow) = support::fakesnow::server() else { return };
//! let db = snow.database("licenses");
//! let mut job = support::job("stage-import");
//! job.env("SNOWFLAKE_URL", snow.base_url()).env("SNOWFLAKE_LOAD_DATABASE", &db);
//! snow.script(Rule::statement("COPY INTO").hang(30));
//! assert_eq!(snow.events_of("abort", "COPY INTO").len(), 1);
//! ```

// Not every module of the suite uses all of these.
#[allow(unused_imports)]
pub use test_servers::fakesnow::{FakeSnow, Rule, server};
