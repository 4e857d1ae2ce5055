//! The compatibility proxy, checked with Snowflake's own Python connector
//! (`tests/snowflake_compat/check_proxy.py`): what the Rust client is tested against must be
//! what Snowflake's driver reads as Snowflake.

use std::process::Command;

#[test]
fn snowflakes_python_connector_reads_the_proxy_as_snowflake() {
    let Some(server) = test_servers::fakesnow::server() else {
        return;
    };
    let Some(python) = test_servers::venv_tool("python") else {
        test_servers::missing("python in the venv");
        return;
    };
    let database = server.database("official_client");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/snowflake_compat/check_proxy.py"
    );
    let run = Command::new(python)
        .arg(script)
        .arg(server.base_url())
        .arg(&database)
        .output()
        .expect("run check_proxy.py");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success() && stdout.contains("the official connector agrees with the proxy"),
        "check_proxy.py failed ({}):\n{stdout}\n{stderr}",
        run.status
    );
}
