//! permissions against the grant-aware emulator (fakesnow plus roles, users, warehouses and
//! grants; `tests/grant_emulator`), through the same compatibility proxy as every Snowflake test:
//! the emulator's documented SHOW formats, a fresh account converging in one apply, each
//! wildcard form, a membership removed, the guard rails, new users' passwords, hostile names,
//! invalid specs, a failure mid-apply, snapshots, and the PERMISSION_BOT_* variables.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::grant_emulator::{ADMIN_PASSWORD, GrantEmulator};
use crate::support::{Run, env_schema, job, run, variable_names};

const BOT_PASSWORD: &str = "Bot-Secret-Pw-7731";

fn sample_spec() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/roles.yml")
}

/// An account as the data team has it before the first run: the bot set up by hand (role
/// PERMISSION_BOT, granted SECURITYADMIN), the warehouses and databases the sample spec names,
/// with schemas, tables and views, and the shared SNOWFLAKE database.
fn account() -> Option<GrantEmulator> {
    let emu = GrantEmulator::start()?;
    emu.setup(&[
        "CREATE ROLE PERMISSION_BOT",
        "GRANT ROLE SECURITYADMIN TO ROLE PERMISSION_BOT",
        &format!(
            "CREATE USER PERMISSION_BOT PASSWORD = '{BOT_PASSWORD}' DEFAULT_ROLE = PERMISSION_BOT"
        ),
        "GRANT ROLE PERMISSION_BOT TO USER PERMISSION_BOT",
        "CREATE WAREHOUSE LOADING",
        "CREATE WAREHOUSE TRANSFORMING",
        "CREATE WAREHOUSE REPORTING",
        "CREATE DATABASE RAW",
        "CREATE SCHEMA RAW.PUBLIC",
        "CREATE SCHEMA RAW.STITCH",
        "CREATE TABLE RAW.STITCH.ORDERS (ID INT)",
        "CREATE TABLE RAW.STITCH.CUSTOMERS (ID INT)",
        "CREATE VIEW RAW.STITCH.ORDERS_V AS SELECT * FROM RAW.STITCH.ORDERS",
        "CREATE TABLE RAW.PUBLIC.LICENSES (ID INT)",
        "CREATE DATABASE ANALYTICS",
        "CREATE SCHEMA ANALYTICS.MART",
        "CREATE SCHEMA ANALYTICS.STAGING",
        "CREATE TABLE ANALYTICS.MART.SALES (ID INT)",
        "CREATE VIEW ANALYTICS.MART.SALES_V AS SELECT * FROM ANALYTICS.MART.SALES",
        "CREATE TABLE ANALYTICS.STAGING.STG_ORDERS (ID INT)",
        "CREATE DATABASE SNOWFLAKE FROM SHARE SNOWFLAKE.ACCOUNT_USAGE",
    ]);
    Some(emu)
}

fn permissions(emu: &GrantEmulator, args: &[&str]) -> Command {
    let mut command = job("permissions");
    command
        .args(args)
        .env("PERMISSION_BOT_ACCOUNT", "testaccount")
        .env("PERMISSION_BOT_USER", "permission_bot")
        .env("PERMISSION_BOT_PASSWORD", BOT_PASSWORD)
        .env("PERMISSION_BOT_ROLE", "permission_bot")
        .env("PERMISSION_BOT_URL", emu.base_url())
        .env("LOG_FORMAT", "text");
    command
}

fn check(out: &Run, code: i32, emu: &GrantEmulator) {
    assert_eq!(
        out.code,
        Some(code),
        "exit code\n--- stdout\n{}\n--- stderr\n{}\n--- emulator\n{}",
        out.stdout,
        out.stderr,
        emu.output()
    );
}

fn write_spec(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write spec");
    path
}

fn has_grant(state: &Value, privilege: &str, kind: &str, parts: &[&str], role: &str) -> bool {
    state["grants"].as_array().unwrap().iter().any(|g| {
        g[0] == privilege
            && g[1] == kind
            && g[3] == role
            && g[2]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap())
                .eq(parts.iter().copied())
    })
}

#[test]
fn a_fresh_account_converges_in_one_apply() {
    let Some(emu) = account() else { return };
    let spec = sample_spec();
    let spec = spec.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let passwords = dir.path().join("passwords.tsv");

    let plan = run(permissions(&emu, &["plan", spec]));
    check(&plan, 0, &emu);
    assert!(
        plan.stdout.contains("role LOADER\n  + create the role"),
        "{}",
        plan.stdout
    );

    let mut apply = permissions(&emu, &["apply", spec]);
    apply.env("PERMISSIONS_PASSWORD_FILE", &passwords);
    let applied = run(apply);
    check(&applied, 0, &emu);
    assert!(
        applied.stdout.starts_with("Applied all "),
        "{}",
        applied.stdout
    );

    let again = run(permissions(&emu, &["plan", spec, "--format", "sql"]));
    check(&again, 0, &emu);
    assert_eq!(
        again.stdout,
        "-- No changes: the account matches the spec.\n"
    );

    let state = emu.state();
    assert!(has_grant(
        &state,
        "SELECT",
        "TABLE",
        &["RAW", "STITCH", "ORDERS"],
        "STITCH"
    ));
    assert!(has_grant(
        &state,
        "USAGE",
        "DATABASE",
        &["SNOWFLAKE"],
        "TRANSFORMER"
    ));
}

/// The account after the first apply of the sample spec, and the statements it took to read it.
fn converged() -> Option<(GrantEmulator, String)> {
    let emu = account()?;
    let spec = sample_spec().to_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let mut apply = permissions(&emu, &["apply", &spec]);
    apply.env(
        "PERMISSIONS_PASSWORD_FILE",
        dir.path().join("passwords.tsv"),
    );
    check(&run(apply), 0, &emu);
    Some((emu, spec))
}

#[test]
fn the_emulator_answers_in_snowflakes_documented_formats() {
    let Some(emu) = account() else { return };
    emu.setup(&[
        "CREATE ROLE ANALYST",
        "CREATE ROLE \"lower case\"",
        "CREATE SCHEMA RAW.\"my schema\"",
        "CREATE TABLE RAW.\"my schema\".\"Mixed-Table\" (ID INT)",
        "GRANT SELECT ON TABLE RAW.STITCH.ORDERS TO ROLE ANALYST",
        "GRANT SELECT ON ALL TABLES IN SCHEMA RAW.\"my schema\" TO ROLE \"lower case\"",
        "GRANT USAGE ON DATABASE RAW TO ROLE ANALYST WITH GRANT OPTION",
        "GRANT SELECT ON FUTURE TABLES IN SCHEMA RAW.STITCH TO ROLE ANALYST",
        "GRANT ROLE ANALYST TO ROLE \"lower case\"",
        "CREATE USER JANE PASSWORD = 'Jane-Pw-1234' DEFAULT_ROLE = ANALYST EMAIL = 'jane@example.com'",
        "GRANT ROLE ANALYST TO USER JANE",
    ]);
    let names = |reply: &Value| -> Vec<String> {
        assert_eq!(reply["success"], true, "{reply}");
        reply["data"]["rowtype"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let rows = |reply: &Value| -> Vec<Vec<Value>> {
        reply["data"]["rowset"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().clone())
            .collect()
    };
    let admin = |sql: &str| emu.query_as("ADMIN", ADMIN_PASSWORD, Some("ACCOUNTADMIN"), sql);

    let grants = admin("SHOW GRANTS TO ROLE analyst");
    assert_eq!(
        names(&grants),
        [
            "created_on",
            "privilege",
            "granted_on",
            "name",
            "granted_to",
            "grantee_name",
            "grant_option",
            "granted_by"
        ]
    );
    assert_eq!(grants["data"]["rowtype"][0]["type"], "timestamp_ltz");
    assert_eq!(grants["data"]["queryResultFormat"], "json");
    let rows_of = rows(&grants);
    let row = |privilege: &str, on: &str| {
        rows_of
            .iter()
            .find(|r| r[1] == privilege && r[2] == on)
            .cloned()
            .unwrap_or_else(|| panic!("no {privilege} on {on}: {rows_of:?}"))
    };
    let select = row("SELECT", "TABLE");
    assert_eq!(select[3], "RAW.STITCH.ORDERS");
    assert_eq!(
        (&select[4], &select[5], &select[6]),
        (
            &Value::from("ROLE"),
            &Value::from("ANALYST"),
            &Value::from("false")
        )
    );
    assert_eq!(select[7], "ACCOUNTADMIN");
    assert!(
        select[0]
            .as_str()
            .unwrap()
            .split_once('.')
            .is_some_and(|(s, f)| s.parse::<u64>().is_ok() && f.len() == 9),
        "{select:?}"
    );
    assert_eq!(row("USAGE", "DATABASE")[6], "true");

    // Names as stored: unquoted ones upper-cased, quoted ones kept, parts quoted when needed.
    let lower = rows(&admin("SHOW GRANTS TO ROLE \"lower case\""));
    assert!(
        lower.iter().any(|r| r[1] == "SELECT"
            && r[3] == "RAW.\"my schema\".\"Mixed-Table\""
            && r[5] == "lower case"),
        "{lower:?}"
    );
    assert!(
        lower
            .iter()
            .any(|r| r[1] == "USAGE" && r[2] == "ROLE" && r[3] == "ANALYST"),
        "{lower:?}"
    );

    let future = admin("SHOW FUTURE GRANTS IN SCHEMA raw.stitch");
    assert_eq!(
        names(&future),
        [
            "created_on",
            "privilege",
            "grant_on",
            "name",
            "grant_to",
            "grantee_name",
            "grant_option"
        ]
    );
    assert_eq!(
        rows(&future)[0][1..],
        [
            Value::from("SELECT"),
            "TABLE".into(),
            "RAW.STITCH.<TABLE>".into(),
            "ROLE".into(),
            "ANALYST".into(),
            "false".into()
        ]
    );
    assert_eq!(rows(&admin("SHOW FUTURE GRANTS TO ROLE ANALYST")).len(), 1);

    // SHOW GRANTS TO USER as since behaviour change 2025_01: grants, a role as USAGE on ROLE.
    let direct = admin("GRANT SELECT ON TABLE RAW.STITCH.ORDERS TO USER jane");
    assert_eq!(direct["success"], true, "{direct}");
    let user = admin("SHOW GRANTS TO USER jane");
    assert_eq!(
        names(&user),
        [
            "created_on",
            "privilege",
            "granted_on",
            "name",
            "role",
            "granted_to",
            "grantee_name",
            "grant_option",
            "granted_by"
        ]
    );
    assert_eq!(
        rows(&user)[0][1..7],
        [
            Value::from("USAGE"),
            "ROLE".into(),
            "ANALYST".into(),
            "ANALYST".into(),
            "USER".into(),
            "JANE".into()
        ]
    );
    assert_eq!(
        rows(&user)[1][1..7],
        [
            Value::from("SELECT"),
            "TABLE".into(),
            "RAW.STITCH.ORDERS".into(),
            Value::Null,
            "USER".into(),
            "JANE".into()
        ]
    );

    let users = admin("SHOW USERS");
    for column in [
        "name",
        "login_name",
        "email",
        "comment",
        "disabled",
        "must_change_password",
        "default_warehouse",
        "default_namespace",
        "default_role",
        "owner",
        "has_password",
        "type",
    ] {
        assert!(
            names(&users).contains(&column.to_owned()),
            "SHOW USERS lacks {column}"
        );
    }
    let roles = admin("SHOW ROLES");
    assert_eq!(
        names(&roles),
        [
            "created_on",
            "name",
            "is_default",
            "is_current",
            "is_inherited",
            "assigned_to_users",
            "granted_to_roles",
            "granted_roles",
            "owner",
            "comment"
        ]
    );
    let databases = admin("SHOW DATABASES");
    let snowflake = rows(&databases)
        .into_iter()
        .find(|r| r[1] == "SNOWFLAKE")
        .unwrap();
    assert_eq!(
        (&snowflake[4], &snowflake[9]),
        (
            &Value::from("SNOWFLAKE.ACCOUNT_USAGE"),
            &Value::from("IMPORTED DATABASE")
        )
    );
    let schemas = admin("SHOW SCHEMAS IN DATABASE raw");
    assert_eq!(
        names(&schemas)[..6],
        [
            "created_on",
            "name",
            "is_default",
            "is_current",
            "database_name",
            "owner"
        ]
    );
    assert!(rows(&schemas).iter().any(|r| r[1] == "INFORMATION_SCHEMA"));
    let tables = admin("SHOW TABLES IN DATABASE raw");
    assert_eq!(
        names(&tables)[..5],
        ["created_on", "name", "database_name", "schema_name", "kind"]
    );
    let views = admin("SHOW VIEWS IN DATABASE raw");
    assert!(
        rows(&views)
            .iter()
            .any(|r| r[1] == "ORDERS_V" && r[4] == "STITCH"),
        "{views}"
    );

    // Logins are checked like Snowflake's, and so is who may grant.
    assert_eq!(
        emu.query_as("JANE", "wrong", None, "SELECT 1")["code"],
        "390100"
    );
    assert_eq!(
        emu.query_as("JANE", "Jane-Pw-1234", Some("SYSADMIN"), "SELECT 1")["code"],
        "390189"
    );
    let me = emu.query_as(
        "JANE",
        "Jane-Pw-1234",
        None,
        "SELECT CURRENT_USER(), CURRENT_ROLE()",
    );
    assert_eq!(rows(&me)[0], [Value::from("JANE"), "ANALYST".into()]);
    let denied = emu.query_as(
        "JANE",
        "Jane-Pw-1234",
        None,
        "GRANT ROLE ANALYST TO ROLE SYSADMIN",
    );
    assert_eq!(denied["code"], "003001", "{denied}");
    // Everything else is fakesnow's.
    assert_eq!(rows(&admin("SELECT 40 + 2 AS ANSWER"))[0][0], "42");
}

/// The grant emulator as Snowflake's own Python connector reads it (check_grants.py).
#[test]
fn snowflakes_python_connector_reads_the_grant_emulator_as_snowflake() {
    let Some(emu) = account() else { return };
    let python = crate::support::venv_tool("python").expect("the venv that runs the emulator");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("grant_emulator/check_grants.py");
    let out = run({
        let mut c = Command::new(python);
        c.arg(&script).arg(emu.base_url()).arg(ADMIN_PASSWORD);
        c
    });
    assert_eq!(
        out.code,
        Some(0),
        "check_grants.py failed:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout
            .contains("the official connector agrees with the grant emulator")
    );
}

#[test]
fn reading_the_account_takes_one_show_per_role_and_user() {
    let Some((emu, spec)) = converged() else {
        return;
    };
    let before = emu.statements().len();
    check(&run(permissions(&emu, &["plan", &spec])), 0, &emu);
    let plan: Vec<String> = emu.statements()[before..].to_vec();
    let count = |prefix: &str| plan.iter().filter(|s| s.starts_with(prefix)).count();
    // 9 spec roles (all exist now) and 6 spec users; 2 databases hold the wildcards' objects.
    assert_eq!(count("SHOW GRANTS TO ROLE"), 9, "{plan:#?}");
    assert_eq!(count("SHOW FUTURE GRANTS TO ROLE"), 9);
    assert_eq!(count("SHOW GRANTS TO USER"), 6);
    assert_eq!(count("SHOW SCHEMAS IN DATABASE"), 2);
    assert_eq!(count("SHOW GRANTS ON"), 0, "never one SHOW per grant");
    assert!(
        plan.len() <= 9 * 2 + 6 + 2 * 3 + 6,
        "{} statements: {plan:#?}",
        plan.len()
    );
}

/// Since behaviour change 2025_01, SHOW GRANTS TO USER also lists privileges granted to the
/// user directly. roles.yml manages roles: the plan reads the roles from the ROLE rows, leaves
/// the direct grant alone and says so.
#[test]
fn a_privilege_granted_to_a_user_directly_is_left_alone_and_said_so() {
    let Some((emu, spec)) = converged() else {
        return;
    };
    emu.setup(&["GRANT SELECT ON TABLE RAW.STITCH.ORDERS TO USER STITCH"]);
    let out = run(permissions(&emu, &["plan", &spec]));
    check(&out, 0, &emu);
    assert!(
        out.stderr
            .contains("a privilege is granted to the user directly"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("STITCH"), "{}", out.stderr);
    assert!(!out.stdout.contains("REVOKE"), "{}", out.stdout);
}

#[test]
fn future_grants_cover_tables_created_later() {
    let Some((emu, spec)) = converged() else {
        return;
    };
    // A new table in a schema the spec covers: its grants come from the future grants.
    emu.setup(&["CREATE TABLE RAW.STITCH.REFUNDS (ID INT)"]);
    let plan = run(permissions(&emu, &["plan", &spec]));
    check(&plan, 0, &emu);
    assert!(plan.stdout.starts_with("No changes"), "{}", plan.stdout);
    let state = emu.state();
    assert!(has_grant(
        &state,
        "INSERT",
        "TABLE",
        &["RAW", "STITCH", "REFUNDS"],
        "STITCH"
    ));
    assert!(has_grant(
        &state,
        "SELECT",
        "TABLE",
        &["RAW", "STITCH", "REFUNDS"],
        "TRANSFORMER"
    ));
    // A new schema under `analytics.*`: covered by the database's future grants at once; the
    // next run adds the schema-level future grants Permifrost keeps per schema (in Snowflake,
    // any schema-level future grant there would otherwise hide the database-level ones).
    emu.setup(&[
        "CREATE SCHEMA ANALYTICS.FINANCE",
        "CREATE TABLE ANALYTICS.FINANCE.ARR (ID INT)",
    ]);
    let state = emu.state();
    assert!(has_grant(
        &state,
        "CREATE TABLE",
        "SCHEMA",
        &["ANALYTICS", "FINANCE"],
        "TRANSFORMER"
    ));
    assert!(has_grant(
        &state,
        "INSERT",
        "TABLE",
        &["ANALYTICS", "FINANCE", "ARR"],
        "TRANSFORMER"
    ));
    let plan = run(permissions(&emu, &["plan", &spec, "--format", "sql"]));
    check(&plan, 0, &emu);
    assert_eq!(
        plan.stdout.lines().skip(1).collect::<Vec<_>>(),
        [
            "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON FUTURE TABLES IN SCHEMA ANALYTICS.FINANCE TO ROLE TRANSFORMER;",
            "GRANT SELECT ON FUTURE VIEWS IN SCHEMA ANALYTICS.FINANCE TO ROLE TRANSFORMER;",
        ]
    );
}

#[test]
fn each_wildcard_form_grants_what_permifrost_does() {
    let Some(emu) = account() else { return };
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        "roles.yml",
        "version: \"1.0\"\n\
        databases:\n  - raw: {shared: no}\n\
        roles:\n\
        \x20 - all_schemas:\n      privileges:\n        databases: {read: [raw]}\n        schemas: {read: [raw.*]}\n\
        \x20 - one_schema_tables:\n      privileges:\n        databases: {read: [raw]}\n        tables: {read: [raw.stitch.*]}\n\
        \x20 - all_tables:\n      privileges:\n        databases: {read: [raw]}\n        tables: {read: [raw.*.*]}\n\
        \x20 - one_table:\n      privileges:\n        databases: {write: [raw]}\n        schemas: {write: [raw.stitch]}\n        tables: {write: [raw.stitch.orders, raw.stitch.orders_v]}\n",
    );
    let spec = spec.to_str().unwrap();
    check(&run(permissions(&emu, &["apply", spec])), 0, &emu);
    let state = emu.state();
    let future = |privilege: &str, kind: &str, container: &[&str], role: &str| {
        state["future"].as_array().unwrap().iter().any(|f| {
            f[0] == privilege
                && f[1] == kind
                && f[3] == role
                && f[2]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap())
                    .eq(container.iter().copied())
        })
    };
    // db.*: every schema but INFORMATION_SCHEMA, and future schemas.
    assert!(has_grant(
        &state,
        "USAGE",
        "SCHEMA",
        &["RAW", "PUBLIC"],
        "ALL_SCHEMAS"
    ));
    assert!(has_grant(
        &state,
        "USAGE",
        "SCHEMA",
        &["RAW", "STITCH"],
        "ALL_SCHEMAS"
    ));
    assert!(!has_grant(
        &state,
        "USAGE",
        "SCHEMA",
        &["RAW", "INFORMATION_SCHEMA"],
        "ALL_SCHEMAS"
    ));
    assert!(future("USAGE", "SCHEMA", &["RAW"], "ALL_SCHEMAS"));
    // db.schema.*: its tables and views, and future ones in the schema.
    assert!(has_grant(
        &state,
        "SELECT",
        "TABLE",
        &["RAW", "STITCH", "ORDERS"],
        "ONE_SCHEMA_TABLES"
    ));
    assert!(has_grant(
        &state,
        "SELECT",
        "VIEW",
        &["RAW", "STITCH", "ORDERS_V"],
        "ONE_SCHEMA_TABLES"
    ));
    assert!(!has_grant(
        &state,
        "SELECT",
        "TABLE",
        &["RAW", "PUBLIC", "LICENSES"],
        "ONE_SCHEMA_TABLES"
    ));
    assert!(future(
        "SELECT",
        "TABLE",
        &["RAW", "STITCH"],
        "ONE_SCHEMA_TABLES"
    ));
    assert!(future(
        "SELECT",
        "VIEW",
        &["RAW", "STITCH"],
        "ONE_SCHEMA_TABLES"
    ));
    // db.*.*: every schema's tables and views, future ones per schema and in the database.
    assert!(has_grant(
        &state,
        "SELECT",
        "TABLE",
        &["RAW", "PUBLIC", "LICENSES"],
        "ALL_TABLES"
    ));
    assert!(has_grant(
        &state,
        "SELECT",
        "TABLE",
        &["RAW", "STITCH", "CUSTOMERS"],
        "ALL_TABLES"
    ));
    assert!(future("SELECT", "TABLE", &["RAW"], "ALL_TABLES"));
    assert!(future("SELECT", "TABLE", &["RAW", "PUBLIC"], "ALL_TABLES"));
    // Named objects: write on a table is six privileges, on a view only SELECT.
    for privilege in [
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "TRUNCATE",
        "REFERENCES",
    ] {
        assert!(
            has_grant(
                &state,
                privilege,
                "TABLE",
                &["RAW", "STITCH", "ORDERS"],
                "ONE_TABLE"
            ),
            "{privilege}"
        );
    }
    assert!(has_grant(
        &state,
        "SELECT",
        "VIEW",
        &["RAW", "STITCH", "ORDERS_V"],
        "ONE_TABLE"
    ));
    assert!(!has_grant(
        &state,
        "INSERT",
        "VIEW",
        &["RAW", "STITCH", "ORDERS_V"],
        "ONE_TABLE"
    ));
    assert!(has_grant(
        &state,
        "CREATE TABLE",
        "SCHEMA",
        &["RAW", "STITCH"],
        "ONE_TABLE"
    ));
    assert!(has_grant(
        &state,
        "CREATE SCHEMA",
        "DATABASE",
        &["RAW"],
        "ONE_TABLE"
    ));
    let again = run(permissions(&emu, &["plan", spec]));
    check(&again, 0, &emu);
    assert!(again.stdout.starts_with("No changes"), "{}", again.stdout);
}

#[test]
fn removing_a_role_from_member_of_is_one_revoke() {
    let Some(emu) = account() else { return };
    let dir = tempfile::tempdir().unwrap();
    let body = |parents: &str| {
        format!(
            "version: \"1.0\"\nroles:\n  - a: {{}}\n  - b: {{}}\n  - c:\n      member_of: [{parents}]\n"
        )
    };
    let before = write_spec(dir.path(), "before.yml", &body("a, b"));
    let after = write_spec(dir.path(), "after.yml", &body("a"));
    check(
        &run(permissions(&emu, &["apply", before.to_str().unwrap()])),
        0,
        &emu,
    );
    let plan = run(permissions(
        &emu,
        &["plan", after.to_str().unwrap(), "--format", "sql"],
    ));
    check(&plan, 0, &emu);
    assert_eq!(
        plan.stdout,
        "-- Plan: 1 statements: 1 revoke statement (1 grant).\nREVOKE ROLE B FROM ROLE C;\n"
    );
    check(
        &run(permissions(&emu, &["apply", after.to_str().unwrap()])),
        0,
        &emu,
    );
    let parents = emu.state()["role_parents"].clone();
    assert!(
        parents
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["A", "C"]))
    );
    assert!(
        !parents
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["B", "C"]))
    );
    let again = run(permissions(&emu, &["plan", after.to_str().unwrap()]));
    assert!(again.stdout.starts_with("No changes"), "{}", again.stdout);
}

#[test]
fn protected_roles_are_never_touched() {
    let Some(emu) = account() else { return };
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        "roles.yml",
        "version: \"1.0\"\n\
        warehouses:\n  - loading: {size: x-small}\n\
        roles:\n  - sysadmin:\n      warehouses: [loading]\n  - permission_bot: {}\n  - analyst:\n      member_of: [accountadmin]\n",
    );
    let spec = spec.to_str().unwrap();
    let before = emu.state();
    let plan = run(permissions(&emu, &["plan", spec]));
    check(&plan, 2, &emu);
    for refused in [
        "`GRANT USAGE, OPERATE, MONITOR ON WAREHOUSE LOADING TO ROLE SYSADMIN` would touch protected role SYSADMIN",
        "`REVOKE ROLE SECURITYADMIN FROM ROLE PERMISSION_BOT` would touch protected roles SECURITYADMIN, PERMISSION_BOT",
        "`GRANT ROLE ACCOUNTADMIN TO ROLE ANALYST` would touch protected role ACCOUNTADMIN",
    ] {
        assert!(
            plan.stdout.contains(refused),
            "{refused:?} not in:\n{}",
            plan.stdout
        );
    }
    assert!(
        plan.stderr
            .contains("the plan cannot be applied: 0 problem(s), 3 change(s) refused"),
        "{}",
        plan.stderr
    );
    let statements_before = emu.statements().len();
    let apply = run(permissions(&emu, &["apply", spec]));
    check(&apply, 2, &emu);
    let sent = emu.statements()[statements_before..].to_vec();
    assert!(
        sent.iter()
            .all(|s| s.starts_with("SHOW") || s.starts_with("SELECT") || s.starts_with("USE")),
        "apply sent {sent:#?}"
    );
    assert_eq!(emu.state(), before, "nothing changed");
}

#[test]
fn the_revoke_threshold_refuses_large_revokes_unless_forced() {
    let Some(emu) = account() else { return };
    let dir = tempfile::tempdir().unwrap();
    let wide = write_spec(
        dir.path(),
        "wide.yml",
        "version: \"1.0\"\ndatabases:\n  - raw: {shared: no}\nroles:\n  - r:\n      privileges:\n        databases: {write: [raw]}\n        schemas: {write: [raw.*]}\n        tables: {write: [raw.*.*]}\n",
    );
    let narrow = write_spec(
        dir.path(),
        "narrow.yml",
        "version: \"1.0\"\ndatabases:\n  - raw: {shared: no}\nroles:\n  - r:\n      privileges:\n        databases: {read: [raw]}\n",
    );
    check(
        &run(permissions(&emu, &["apply", wide.to_str().unwrap()])),
        0,
        &emu,
    );
    let before = emu.state();
    let refused = run(permissions(&emu, &["apply", narrow.to_str().unwrap()]));
    check(&refused, 2, &emu);
    assert!(
        refused
            .stdout
            .contains("more than the limit of 20 (PERMISSIONS_MAX_REVOKES)"),
        "{}",
        refused.stdout
    );
    assert_eq!(emu.state(), before);
    let mut higher = permissions(&emu, &["plan", narrow.to_str().unwrap()]);
    higher.env("PERMISSIONS_MAX_REVOKES", "1000");
    check(&run(higher), 0, &emu);
    let forced = run(permissions(
        &emu,
        &["apply", narrow.to_str().unwrap(), "--force"],
    ));
    check(&forced, 0, &emu);
    let state = emu.state();
    assert!(has_grant(&state, "USAGE", "DATABASE", &["RAW"], "R"));
    assert!(!has_grant(
        &state,
        "SELECT",
        "TABLE",
        &["RAW", "STITCH", "ORDERS"],
        "R"
    ));
    assert!(
        state["future"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f[3] != "R")
    );
    let again = run(permissions(&emu, &["plan", narrow.to_str().unwrap()]));
    assert!(again.stdout.starts_with("No changes"), "{}", again.stdout);
}

#[test]
fn new_users_get_a_password_that_is_never_logged() {
    let Some(emu) = account() else { return };
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        "roles.yml",
        "version: \"1.0\"\n\
        warehouses:\n  - reporting: {size: x-small}\n\
        roles:\n  - analyst: {}\n\
        users:\n  - jane:\n      can_login: yes\n      email: jane@example.com\n      default_role: analyst\n      default_warehouse: reporting\n      member_of: [analyst]\n\
        \x20 - gone:\n      can_login: no\n",
    );
    let passwords = dir.path().join("passwords.tsv");
    let mut apply = permissions(&emu, &["apply", spec.to_str().unwrap()]);
    apply
        .env("PERMISSIONS_PASSWORD_FILE", &passwords)
        .env("LOG_LEVEL", "trace");
    let out = run(apply);
    check(&out, 0, &emu);
    let written = std::fs::read_to_string(&passwords).unwrap();
    let (user, password) = written.trim_end().split_once('\t').unwrap();
    assert_eq!(user, "JANE");
    assert_eq!(password.len(), 24);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&passwords).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(
        !out.stderr.contains(password),
        "password in the log:\n{}",
        out.stderr
    );
    assert!(
        !out.stdout.contains(password),
        "password on stdout although a file was named"
    );
    assert!(out.stdout.contains("CREATE USER JANE PASSWORD = '<generated when applied>' MUST_CHANGE_PASSWORD = TRUE EMAIL = 'jane@example.com' COMMENT = 'jane@example.com' DEFAULT_ROLE = ANALYST DEFAULT_WAREHOUSE = REPORTING"), "{}", out.stdout);
    // The password is the one Snowflake got: it logs in, with the default role.
    let me = emu.query_as("JANE", password, None, "SELECT CURRENT_ROLE()");
    assert_eq!(me["data"]["rowset"][0][0], "ANALYST", "{me}");
    let jane = &emu.state()["users"]["JANE"];
    assert_eq!(
        (
            jane["must_change_password"].clone(),
            jane["email"].clone(),
            jane["default_warehouse"].clone()
        ),
        (
            Value::Bool(true),
            "jane@example.com".into(),
            "REPORTING".into()
        )
    );
    // can_login: no is a disabled user, who cannot log in.
    assert_eq!(emu.state()["users"]["GONE"]["disabled"], true);

    // With neither a file nor a recipient, a plan that generates a password is refused before
    // anything is applied.
    let spec2 = write_spec(
        dir.path(),
        "more.yml",
        &format!(
            "{}\x20 - bob:\n      can_login: yes\n",
            std::fs::read_to_string(&spec).unwrap()
        ),
    );
    let before = emu.statements().len();
    let refused = run(permissions(&emu, &["apply", spec2.to_str().unwrap()]));
    check(&refused, 2, &emu);
    assert!(
        refused.stderr.contains("PERMISSIONS_PASSWORD_RECIPIENT"),
        "{}",
        refused.stderr
    );
    assert!(
        !emu.statements()[before..]
            .iter()
            .any(|s| s.starts_with("CREATE USER")),
        "nothing applied"
    );
    assert!(emu.state()["users"]["BOB"].is_null());
    // An existing password file is refused too: it is created new, never appended to.
    let mut again = permissions(&emu, &["apply", spec2.to_str().unwrap()]);
    again.env("PERMISSIONS_PASSWORD_FILE", &passwords);
    check(&run(again), 2, &emu);

    // With the admin's age key (Debian's age-keygen), the password goes to stdout encrypted;
    // age -d with the identity gives it back, and it logs in.
    let identity = dir.path().join("admin.key");
    let keygen = std::process::Command::new("age-keygen")
        .arg("-o")
        .arg(&identity)
        .output()
        .expect("age-keygen is installed (.ci/run installs age)");
    assert!(keygen.status.success(), "{keygen:?}");
    let recipient = String::from_utf8_lossy(&keygen.stderr)
        .trim()
        .trim_start_matches("Public key: ")
        .to_owned();
    let mut apply = permissions(&emu, &["apply", spec2.to_str().unwrap()]);
    apply
        .env("PERMISSIONS_PASSWORD_RECIPIENT", &recipient)
        .env("LOG_LEVEL", "trace");
    let out = run(apply);
    check(&out, 0, &emu);
    let start = out
        .stdout
        .find("-----BEGIN AGE ENCRYPTED FILE-----")
        .expect("an armored ciphertext on stdout");
    let end = out.stdout.find("-----END AGE ENCRYPTED FILE-----").unwrap()
        + "-----END AGE ENCRYPTED FILE-----".len();
    let mut decrypt = std::process::Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&identity)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    decrypt
        .stdin
        .take()
        .unwrap()
        .write_all(&out.stdout.as_bytes()[start..end])
        .unwrap();
    let plain = decrypt.wait_with_output().unwrap();
    assert!(plain.status.success(), "{plain:?}");
    let plain = String::from_utf8(plain.stdout).unwrap();
    let (user, password) = plain.trim_end().split_once('\t').unwrap();
    assert_eq!(user, "BOB");
    assert!(!out.stdout.contains(password), "clear text on stdout");
    assert!(!out.stderr.contains(password), "clear text in the log");
    assert_eq!(
        emu.query_as("BOB", password, None, "SELECT 1")["success"],
        true
    );
}

#[test]
fn hostile_names_are_quoted_not_executed() {
    let Some(emu) = account() else { return };
    emu.setup(&[
        "CREATE SCHEMA RAW.\"my schema\"",
        "CREATE TABLE RAW.\"my schema\".\"Mixed-Table\" (ID INT)",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        "roles.yml",
        "version: \"1.0\"\n\
        databases:\n  - raw: {shared: no}\n\
        roles:\n  - 'x\"; DROP ROLE ACCOUNTADMIN; --':\n      privileges:\n        databases: {read: [raw]}\n        schemas: {read: ['raw.\"my schema\"']}\n        tables: {read: ['raw.\"my schema\".*']}\n\
        users:\n  - \"eve' OR '1'='1\":\n      can_login: yes\n      email: \"e'); DROP USER ADMIN; --\\\\\"\n      comment: \"back\\\\' slash\"\n      member_of: ['x\"; DROP ROLE ACCOUNTADMIN; --']\n",
    );
    let mut apply = permissions(&emu, &["apply", spec.to_str().unwrap()]);
    apply.env("PERMISSIONS_PASSWORD_FILE", dir.path().join("pw.tsv"));
    check(&run(apply), 0, &emu);
    let state = emu.state();
    let role = "x\"; DROP ROLE ACCOUNTADMIN; --";
    assert!(state["roles"].get(role).is_some(), "{}", state["roles"]);
    assert!(state["roles"].get("ACCOUNTADMIN").is_some());
    assert!(state["users"].get("ADMIN").is_some());
    let eve = &state["users"]["eve' OR '1'='1"];
    assert_eq!(eve["email"], "e'); DROP USER ADMIN; --\\");
    assert_eq!(eve["comment"], "back\\' slash");
    assert!(has_grant(
        &state,
        "SELECT",
        "TABLE",
        &["RAW", "my schema", "Mixed-Table"],
        role
    ));
    assert!(
        state["user_roles"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!([role, "eve' OR '1'='1"]))
    );
    let again = run(permissions(&emu, &["plan", spec.to_str().unwrap()]));
    check(&again, 0, &emu);
    assert!(again.stdout.starts_with("No changes"), "{}", again.stdout);
}

#[test]
fn invalid_specs_are_reported_in_full_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        "roles.yml",
        "version: \"1.0\"\n\
        databases:\n  - raw: {shared: perhaps}\n\
        roles:\n  - loader:\n      warehouses: [ghost]\n      colour: red\n      member_of: [transformer]\n  - transformer:\n      member_of: [loader]\n      privileges:\n        tables: {read: [raw.*.orders]}\n  - LOADER: {}\n\
        users:\n  - jane: {member_of: [nobody]}\n",
    );
    // No PERMISSION_BOT_* at all: a connection attempt would fail differently.
    let out = run({
        let mut c = job("permissions");
        c.args(["plan", spec.to_str().unwrap()]);
        c
    });
    assert_eq!(out.code, Some(2), "{out:?}");
    let file = spec.display().to_string();
    for problem in [
        format!("{file}: 8 problems in the spec"),
        format!("{file}:3:19: database raw: shared: expected true or false, found \"perhaps\""),
        format!("{file}:6:20: role LOADER: warehouse GHOST is not defined in warehouses"),
        format!("{file}:7:7: role loader: unknown key `colour`"),
        format!("{file}:8:19: member_of cycle: LOADER → TRANSFORMER → LOADER"),
        format!(
            "{file}:12:25: role transformer: privileges.tables.read: malformed path \"raw.*.orders\""
        ),
        format!("{file}:13:5: role LOADER is defined twice (first at line 5)"),
        format!("{file}:15:11: user jane: `can_login: true` or `can_login: false` is required"),
        format!("{file}:15:24: user JANE: member_of: role NOBODY is not defined in roles"),
    ] {
        assert!(
            out.stderr.contains(&problem),
            "{problem:?} not in:\n{}",
            out.stderr
        );
    }
    assert!(!out.stderr.contains("connecting"), "{}", out.stderr);

    let broken = write_spec(
        dir.path(),
        "broken.yml",
        "roles:\n  - loader:\n      warehouses: [loading\n",
    );
    let out = run({
        let mut c = job("permissions");
        c.args(["plan", broken.to_str().unwrap()]);
        c
    });
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr
            .contains(&format!("{}:4:1: invalid YAML", broken.display())),
        "{}",
        out.stderr
    );
}

#[test]
fn a_failure_mid_apply_stops_and_says_what_was_and_was_not_applied() {
    let Some(emu) = account() else { return };
    // A bot that may create roles (USERADMIN) but not grant privileges (no MANAGE GRANTS).
    emu.setup(&[
        "CREATE ROLE LIMITED_BOT",
        "GRANT ROLE USERADMIN TO ROLE LIMITED_BOT",
        "CREATE USER LIMITED_BOT PASSWORD = 'Limited-Pw-99' DEFAULT_ROLE = LIMITED_BOT",
        "GRANT ROLE LIMITED_BOT TO USER LIMITED_BOT",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        "roles.yml",
        "version: \"1.0\"\n\
        warehouses:\n  - loading: {size: x-small}\n\
        roles:\n  - a: {}\n  - b:\n      warehouses: [loading]\n      member_of: [a]\n",
    );
    let limited = |args: &[&str]| {
        let mut c = permissions(&emu, args);
        c.env("PERMISSION_BOT_USER", "limited_bot")
            .env("PERMISSION_BOT_PASSWORD", "Limited-Pw-99")
            .env("PERMISSION_BOT_ROLE", "limited_bot");
        c
    };
    let out = run(limited(&["apply", spec.to_str().unwrap()]));
    check(&out, 1, &emu);
    assert_eq!(
        out.stdout.lines().take(6).collect::<Vec<_>>(),
        [
            "Stopped at a failure: 3 of 4 statements applied, 1 failed, 0 not applied.",
            "  applied      CREATE ROLE A;",
            "  applied      CREATE ROLE B;",
            "  applied      GRANT ROLE A TO ROLE B;",
            "  FAILED       GRANT USAGE, OPERATE, MONITOR ON WAREHOUSE LOADING TO ROLE B;",
            "               Snowflake error 003001 (42501): SQL access control error:",
        ]
    );
    assert!(
        out.stdout
            .contains("Insufficient privileges to operate on grants to role 'B'."),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains("apply stopped at a failure: 3 statement(s) applied, 0 not applied"),
        "{}",
        out.stderr
    );
    let state = emu.state();
    assert!(state["roles"].get("B").is_some());
    assert!(
        state["grants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g[3] != "B")
    );

    // Fixed (the bot gets MANAGE GRANTS): the next run applies the rest, and that is all.
    emu.setup(&["GRANT ROLE SECURITYADMIN TO ROLE LIMITED_BOT"]);
    let plan = run(limited(&[
        "plan",
        spec.to_str().unwrap(),
        "--format",
        "sql",
    ]));
    assert_eq!(
        plan.stdout,
        "-- Plan: 1 statements: 1 grant statement (3 grants).\nGRANT USAGE, OPERATE, MONITOR ON WAREHOUSE LOADING TO ROLE B;\n"
    );
    check(&run(limited(&["apply", spec.to_str().unwrap()])), 0, &emu);
}

#[test]
fn a_snapshot_plans_offline_exactly_as_online() {
    let Some((emu, _)) = converged() else { return };
    let dir = tempfile::tempdir().unwrap();
    // A change under review: a new role, a role losing a schema, a user leaving.
    let sample = std::fs::read_to_string(sample_spec()).unwrap();
    let changed = sample
        .replace("          read:\n            - analytics.mart.*\n", "          read:\n            - analytics.mart.*\n  - finance:\n      warehouses:\n        - reporting\n")
        .replace("        - reporting\n        - reporting_all\n", "        - reporting\n");
    assert_ne!(changed, sample);
    let spec = write_spec(dir.path(), "roles.yml", &changed);
    let snapshot = dir.path().join("state.json");
    let out = run(permissions(
        &emu,
        &["snapshot", "--output", snapshot.to_str().unwrap()],
    ));
    check(&out, 0, &emu);
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&snapshot).unwrap()).unwrap();
    assert_eq!(json["format"], "data-jobs/permissions-state");

    let online = run(permissions(
        &emu,
        &["plan", spec.to_str().unwrap(), "--format", "json"],
    ));
    check(&online, 0, &emu);
    // Offline: no credentials, no URL.
    let offline = run({
        let mut c = job("permissions");
        c.args([
            "plan",
            spec.to_str().unwrap(),
            "--format",
            "json",
            "--state",
            snapshot.to_str().unwrap(),
        ])
        .env("PERMISSION_BOT_ROLE", "permission_bot");
        c
    });
    assert_eq!(offline.code, Some(0), "{offline:?}");
    assert_eq!(offline.stdout, online.stdout);
    let plan: Value = serde_json::from_str(&online.stdout).unwrap();
    assert_eq!(plan["summary"]["roles_created"], 1);
    assert!(
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["sql"] == "REVOKE ROLE REPORTING_ALL FROM USER JANE_DOE"),
        "{plan}"
    );
    // apply works on the live account only.
    let mut apply = permissions(&emu, &["apply", spec.to_str().unwrap()]);
    apply.env("PERMISSIONS_STATE_FILE", &snapshot);
    assert_eq!(run(apply).code, Some(2));
}

#[test]
fn permission_bot_variables_are_the_contract() {
    let schema = env_schema("permissions");
    let names = variable_names(&schema);
    for name in [
        "PERMISSION_BOT_USER",
        "PERMISSION_BOT_PASSWORD",
        "PERMISSION_BOT_ACCOUNT",
        "PERMISSION_BOT_DATABASE",
        "PERMISSION_BOT_WAREHOUSE",
        "PERMISSION_BOT_ROLE",
    ] {
        assert!(names.contains(&name), "{name} not in {names:?}");
    }
    let password = schema["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "PERMISSION_BOT_PASSWORD")
        .unwrap();
    assert_eq!(password["secret"], true);

    let spec = sample_spec();
    let missing = run({
        let mut c = job("permissions");
        c.args(["plan", spec.to_str().unwrap()])
            .env("PERMISSION_BOT_ACCOUNT", "acct");
        c
    });
    assert_eq!(missing.code, Some(2));
    assert!(
        missing.stderr.contains(
            "PERMISSION_BOT_USER, one of PERMISSION_BOT_PRIVATE_KEY, \
                 PERMISSION_BOT_PRIVATE_KEY_PATH, PERMISSION_BOT_TOKEN or PERMISSION_BOT_PASSWORD \
                 must be set to connect"
        ),
        "{}",
        missing.stderr
    );

    let Some(emu) = account() else { return };
    let mut wrong = permissions(&emu, &["plan", spec.to_str().unwrap()]);
    wrong.env("PERMISSION_BOT_PASSWORD", "Wrong-Secret-123");
    let out = run(wrong);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("Incorrect username or password"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("Wrong-Secret-123") && !out.stdout.contains("Wrong-Secret-123"));
    // The role the job runs as is the one named, and it is protected.
    let mut role = permissions(&emu, &["plan", spec.to_str().unwrap()]);
    role.env("PERMISSION_BOT_ROLE", "sysadmin");
    let out = run(role);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("SYSADMIN"), "{}", out.stderr);
    // PERMISSION_BOT_WAREHOUSE and _DATABASE are taken for the session, as Permifrost did.
    let mut context = permissions(&emu, &["plan", spec.to_str().unwrap()]);
    context
        .env("PERMISSION_BOT_WAREHOUSE", "loading")
        .env("PERMISSION_BOT_DATABASE", "raw");
    check(&run(context), 0, &emu);
    assert!(
        emu.statements()
            .iter()
            .any(|s| s == "USE WAREHOUSE LOADING" || s == "USE WAREHOUSE loading"),
        "{:#?}",
        emu.statements()
    );
}

/// The bot as a TYPE = SERVICE user has it: no password, a key pair (here from a mounted file),
/// registered with ALTER USER … SET RSA_PUBLIC_KEY and checked at login as Snowflake checks it.
#[test]
fn the_bot_logs_in_with_a_key_pair_and_a_secret_holding_two_credentials_is_refused() {
    let Some(emu) = account() else { return };
    let spec = sample_spec();
    emu.setup(&[
        "CREATE USER KEY_BOT DEFAULT_ROLE = PERMISSION_BOT",
        "GRANT ROLE PERMISSION_BOT TO USER KEY_BOT",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let key = test_servers::keys::rsa_private_key(2048);
    let key_file = dir.path().join("rsa_key.p8");
    std::fs::write(&key_file, &key).unwrap();
    let other_file = dir.path().join("other.p8");
    std::fs::write(&other_file, test_servers::keys::rsa_private_key(2048)).unwrap();
    let registered = emu.query_as(
        "ADMIN",
        ADMIN_PASSWORD,
        Some("ACCOUNTADMIN"),
        &format!(
            "ALTER USER KEY_BOT SET RSA_PUBLIC_KEY = '{}'",
            test_servers::keys::public_key_for_alter_user(&key)
        ),
    );
    assert_eq!(registered["success"], true, "{registered}");
    let bot = |key_file: &Path| {
        let mut c = permissions(&emu, &["plan", spec.to_str().unwrap()]);
        c.env("PERMISSION_BOT_USER", "key_bot")
            .env_remove("PERMISSION_BOT_PASSWORD")
            .env("PERMISSION_BOT_PRIVATE_KEY_PATH", key_file);
        c
    };
    check(&run(bot(&key_file)), 0, &emu);
    // Permifrost's name for the key file works too.
    let mut permifrost = permissions(&emu, &["plan", spec.to_str().unwrap()]);
    permifrost
        .env("PERMISSION_BOT_USER", "key_bot")
        .env_remove("PERMISSION_BOT_PASSWORD")
        .env("PERMISSION_BOT_KEY_PATH", &key_file);
    check(&run(permifrost), 0, &emu);

    let out = run(bot(&other_file));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("JWT token is invalid"),
        "{}",
        out.stderr
    );

    let mut both = bot(&key_file);
    both.env("PERMISSION_BOT_PASSWORD", BOT_PASSWORD);
    let out = run(both);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("drop PERMISSION_BOT_PASSWORD from the Secret"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(BOT_PASSWORD), "{}", out.stderr);
}

/// A service user from the spec: created with its key and no password, and it can then log in
/// with that key (the JWT checked as Snowflake checks it); a second plan reads the key's
/// fingerprint (DESC USER) and has nothing to do.
#[test]
fn a_service_user_is_created_with_its_key_and_logs_in_with_it() {
    let Some(emu) = account() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = test_servers::keys::rsa_private_key(2048);
    let spec = write_spec(
        dir.path(),
        "roles.yml",
        &format!(
            "roles:\n  - permission_bot:\n      member_of: [securityadmin]\n\
             users:\n  - permission_bot:\n      can_login: yes\n      member_of: [permission_bot]\n  \
             - etl_service:\n      can_login: yes\n      type: service\n      \
             rsa_public_key: {}\n",
            test_servers::keys::public_key_for_alter_user(&key)
        ),
    );
    let spec = spec.to_str().unwrap();
    let mut apply = permissions(&emu, &["apply", spec]);
    apply.env(
        "PERMISSIONS_PASSWORD_FILE",
        dir.path().join("passwords.tsv"),
    );
    let out = run(apply);
    check(&out, 0, &emu);
    let created = emu
        .statements()
        .into_iter()
        .find(|s| s.starts_with("CREATE USER ETL_SERVICE"))
        .expect("the user was created");
    assert!(created.contains("TYPE = SERVICE") && created.contains("RSA_PUBLIC_KEY = '"));
    assert!(!created.contains("PASSWORD"), "{created}");
    let state = emu.state();
    assert_eq!(
        state["users"]["ETL_SERVICE"]["password_sha256"],
        Value::Null
    );

    // It logs in with its key: stage-import's way, as the job that uses it would.
    let key_file = dir.path().join("etl.p8");
    std::fs::write(&key_file, &key).unwrap();
    let mut as_service = permissions(&emu, &["plan", spec]);
    as_service
        .env("PERMISSION_BOT_USER", "etl_service")
        .env_remove("PERMISSION_BOT_PASSWORD")
        .env_remove("PERMISSION_BOT_ROLE")
        .env("PERMISSION_BOT_PRIVATE_KEY_PATH", &key_file);
    let out = run(as_service);
    // Logged in (the plan itself then fails: a service user without grants may not read them).
    assert_ne!(out.code, Some(2), "{}", out.stderr);
    assert!(
        !out.stderr.contains("JWT token is invalid"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("refused the login"), "{}", out.stderr);

    let again = run(permissions(&emu, &["plan", spec]));
    check(&again, 0, &emu);
    assert!(!again.stdout.contains("ETL_SERVICE"), "{}", again.stdout);
    assert!(
        emu.statements()
            .iter()
            .any(|s| s == "DESC USER ETL_SERVICE"),
        "the key's fingerprint was read"
    );
}

#[test]
fn a_dry_run_prints_the_statements_and_runs_none() {
    let Some(emu) = account() else { return };
    let before = emu.state();
    let out = run(permissions(
        &emu,
        &["apply", sample_spec().to_str().unwrap(), "--dry-run"],
    ));
    check(&out, 0, &emu);
    assert!(out.stdout.starts_with("-- Plan: "), "{}", out.stdout);
    assert!(
        out.stdout
            .lines()
            .next()
            .unwrap()
            .contains(" statements: 5 roles to create, 5 users to create, "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("\nCREATE ROLE LOADER;\n"));
    assert!(
        out.stdout
            .contains("\nGRANT IMPORTED PRIVILEGES ON DATABASE SNOWFLAKE TO ROLE TRANSFORMER;\n")
    );
    assert!(
        emu.statements()
            .iter()
            .all(|s| !s.starts_with("CREATE") && !s.starts_with("GRANT"))
    );
    assert_eq!(emu.state(), before);
}

/// A spec of realistic size plans within the pod's 500 MiB: 2,000 roles and 1,000 users over
/// 20 databases of 5 schemas of 10 tables each (the benchmark's shape, four times its roles),
/// offline from a snapshot of that account, whose users exist and hold no role yet. Peak RSS
/// is the kernel's (`getrusage` of the plan's process, read by a Python parent that runs only
/// it).
#[test]
fn two_thousand_roles_plan_within_the_pods_memory() {
    const ROLES: usize = 2000;
    const USERS: usize = 1000;
    const DATABASES: usize = 20;
    const SCHEMAS: usize = 5;
    const TABLES: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = vec!["version: \"1.0\"".to_owned(), "databases:".to_owned()];
    spec.extend((0..DATABASES).map(|d| format!("  - db_{d:02}:\n      shared: no")));
    spec.push("warehouses:".to_owned());
    spec.extend((0..10).map(|w| format!("  - wh_{w}:\n      size: x-small")));
    spec.push("roles:".to_owned());
    for r in 0..ROLES {
        let (read, write) = (r % DATABASES, (r + 1) % DATABASES);
        let mut role = format!(
            "  - role_{r:04}:\n      warehouses:\n        - wh_{}\n",
            r % 10
        );
        if r % 10 != 0 {
            role += &format!("      member_of:\n        - role_{:04}\n", r - r % 10);
        }
        role += &format!(
            "      privileges:\n        databases:\n          read:\n            - db_{read:02}\n"
        );
        if r % 4 == 0 {
            role += &format!("          write:\n            - db_{write:02}\n");
        }
        role += &format!("        schemas:\n          read:\n            - db_{read:02}.*\n");
        if r % 4 == 0 {
            role += &format!(
                "          write:\n            - db_{write:02}.s_{}\n",
                r % SCHEMAS
            );
        }
        let tables = if r % 5 == 0 {
            format!("db_{read:02}.*.*")
        } else {
            format!("db_{read:02}.s_{}.*", r % SCHEMAS)
        };
        role += &format!("        tables:\n          read:\n            - {tables}");
        spec.push(role);
    }
    spec.push("users:".to_owned());
    for u in 0..USERS {
        let (first, second) = (u % ROLES, (u * 7 + 3) % ROLES);
        spec.push(format!(
            "  - user_{u:04}:\n      can_login: yes\n      member_of:\n        - role_{first:04}\n        - role_{second:04}"
        ));
    }
    let spec_path = write_spec(dir.path(), "roles.yml", &(spec.join("\n") + "\n"));

    let objects: serde_json::Map<String, Value> = (0..DATABASES)
        .map(|d| {
            let schemas: serde_json::Map<String, Value> = (0..SCHEMAS)
                .map(|s| {
                    let tables: serde_json::Map<String, Value> = (0..TABLES)
                        .map(|t| (format!("T_{t}"), Value::from("SYSADMIN")))
                        .collect();
                    (
                        format!("S_{s}"),
                        serde_json::json!({"owner": "SYSADMIN", "tables": tables, "views": {}}),
                    )
                })
                .collect();
            (
                format!("DB_{d:02}"),
                serde_json::json!({ "schemas": schemas }),
            )
        })
        .collect();
    let users: serde_json::Map<String, Value> = (0..USERS)
        .map(|u| {
            (
                format!("USER_{u:04}"),
                serde_json::json!({"disabled": false, "has_password": true, "default_role": null,
                    "default_warehouse": null, "default_namespace": null, "email": null,
                    "comment": null, "display_name": null, "first_name": null, "last_name": null,
                    "type": null, "owner": "USERADMIN"}),
            )
        })
        .collect();
    let user_roles: serde_json::Map<String, Value> = users
        .keys()
        .map(|u| (u.clone(), serde_json::json!([])))
        .collect();
    let state = serde_json::json!({
        "format": "data-jobs/permissions-state",
        "version": 1,
        "roles": {
            "ACCOUNTADMIN": {"owner": null}, "SECURITYADMIN": {"owner": null},
            "SYSADMIN": {"owner": null}, "USERADMIN": {"owner": null},
            "PUBLIC": {"owner": null}, "PERMISSION_BOT": {"owner": "SECURITYADMIN"}
        },
        "users": users,
        "warehouses": (0..10).map(|w| format!("WH_{w}")).collect::<Vec<_>>(),
        "databases": (0..DATABASES)
            .map(|d| (format!("DB_{d:02}"), serde_json::json!({"owner": "SYSADMIN", "imported": false})))
            .collect::<serde_json::Map<_, _>>(),
        "objects": objects,
        "role_grants": {},
        "user_roles": user_roles,
    });
    let state_path = dir.path().join("state.json");
    std::fs::write(&state_path, state.to_string()).unwrap();

    let plan_path = dir.path().join("plan.json");
    let measure = "import resource, subprocess, sys\n\
        with open(sys.argv[1], 'w') as out:\n\
        \x20   done = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.PIPE, text=True)\n\
        sys.stderr.write(done.stderr)\n\
        print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n";
    let mut command = Command::new("python3");
    command
        .args(["-c", measure])
        .arg(&plan_path)
        .arg(crate::support::bin("permissions"))
        .arg("plan")
        .arg(&spec_path)
        .args(["--format", "json", "--state"])
        .arg(&state_path)
        .env("PERMISSION_BOT_ROLE", "permission_bot");
    let out = run(command);
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut answer = out.stdout.split_whitespace();
    let code: i32 = answer.next().unwrap().parse().unwrap();
    let peak_kib: u64 = answer.next().unwrap().parse().unwrap();
    assert_eq!(code, 0, "{}", out.stderr);
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    assert_eq!(
        plan["summary"]["roles_created"], ROLES,
        "{}",
        plan["summary"]
    );
    let changes = plan["changes"].as_array().unwrap().len();
    assert!(changes > 10 * ROLES, "{changes} changes");
    assert!(
        peak_kib < 500 * 1024,
        "peak RSS {} MiB is over the pod's 500 MiB ({changes} changes)",
        peak_kib / 1024
    );
}

/// `type: null` converges on an account that reads an unset TYPE back as PERSON (bundle
/// 2025_05, BCR-2067, which the emulator follows): where every plan used to set it again, one
/// apply, then no change.
#[test]
fn a_null_type_converges_where_an_unset_type_reads_as_person() {
    let Some((emu, _)) = converged() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sample = std::fs::read_to_string(sample_spec()).unwrap();
    let changed = sample.replace(
        "  - jane_doe:\n      can_login: yes\n",
        "  - jane_doe:\n      can_login: yes\n      type: null\n",
    );
    assert_ne!(changed, sample);
    let spec = write_spec(dir.path(), "roles.yml", &changed);
    let spec = spec.to_str().unwrap();
    let applied = run(permissions(&emu, &["apply", spec]));
    check(&applied, 0, &emu);
    let again = run(permissions(&emu, &["plan", spec, "--format", "sql"]));
    check(&again, 0, &emu);
    assert_eq!(
        again.stdout,
        "-- No changes: the account matches the spec.\n"
    );
}
