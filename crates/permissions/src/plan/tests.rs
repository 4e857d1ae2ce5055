//! Planning from tables of specs and states: the statements, their order, the guard rails,
//! and convergence (apply a plan to the state model, plan again: nothing left).

use super::*;
use crate::model::{DatabaseInfo, DatabaseObjects, RoleInfo, SchemaObjects};
use crate::spec;

fn n(s: &str) -> Name {
    Name::stored(s)
}

fn options() -> Options {
    Options {
        protected: [
            "ACCOUNTADMIN",
            "SECURITYADMIN",
            "SYSADMIN",
            "USERADMIN",
            "ORGADMIN",
            "PUBLIC",
            "PERMISSION_BOT",
        ]
        .into_iter()
        .map(n)
        .collect(),
        max_revokes: 20,
        force: false,
        bot_user: Some(n("PERMISSION_BOT")),
        bot_uses_password: true,
    }
}

/// An account as Snowflake creates it, plus databases RAW (schemas PUBLIC and STITCH, each
/// with two tables and a view), ANALYTICS (schema MART) and the shared SNOWFLAKE, and
/// warehouses LOADING and REPORTING. Every role's and user's grants were read.
fn account() -> State {
    let mut s = State {
        current_role: Some(n("PERMISSION_BOT")),
        current_user: Some(n("PERMISSION_BOT")),
        ..State::default()
    };
    for role in [
        "ACCOUNTADMIN",
        "SECURITYADMIN",
        "SYSADMIN",
        "USERADMIN",
        "PUBLIC",
        "PERMISSION_BOT",
    ] {
        s.roles.insert(n(role), RoleInfo { owner: None });
        s.role_grants.insert(n(role), RoleGrants::default());
    }
    for (child, parent) in [
        ("ACCOUNTADMIN", "SECURITYADMIN"),
        ("ACCOUNTADMIN", "SYSADMIN"),
        ("SECURITYADMIN", "USERADMIN"),
        ("PERMISSION_BOT", "SECURITYADMIN"),
    ] {
        s.role_grants
            .get_mut(&n(child))
            .unwrap()
            .member_of
            .insert(n(parent));
    }
    s.users.insert(
        n("PERMISSION_BOT"),
        UserInfo {
            has_password: true,
            ..UserInfo::default()
        },
    );
    s.user_roles
        .insert(n("PERMISSION_BOT"), [n("PERMISSION_BOT")].into());
    for wh in ["LOADING", "REPORTING"] {
        s.warehouses.insert(n(wh));
    }
    s.integrations = Some(BTreeSet::new());
    let schema = |tables: &[&str], views: &[&str]| SchemaObjects {
        owner: Some(n("SYSADMIN")),
        tables: tables.iter().map(|t| (n(t), Some(n("SYSADMIN")))).collect(),
        views: views.iter().map(|v| (n(v), Some(n("SYSADMIN")))).collect(),
    };
    s.databases.insert(
        n("RAW"),
        DatabaseInfo {
            owner: Some(n("SYSADMIN")),
            imported: false,
        },
    );
    s.objects.insert(
        n("RAW"),
        DatabaseObjects {
            schemas: [
                (n("INFORMATION_SCHEMA"), schema(&[], &["TABLES"])),
                (n("PUBLIC"), schema(&["ORDERS", "USERS"], &["ORDERS_V"])),
                (n("STITCH"), schema(&["EVENTS", "SESSIONS"], &["EVENTS_V"])),
            ]
            .into(),
        },
    );
    s.databases.insert(
        n("ANALYTICS"),
        DatabaseInfo {
            owner: Some(n("SYSADMIN")),
            imported: false,
        },
    );
    s.objects.insert(
        n("ANALYTICS"),
        DatabaseObjects {
            schemas: [(n("MART"), schema(&["SALES"], &[]))].into(),
        },
    );
    s.databases.insert(
        n("SNOWFLAKE"),
        DatabaseInfo {
            owner: None,
            imported: true,
        },
    );
    s
}

/// The plan's problems as `line:column: message`.
fn located_problems(plan: &Plan) -> Vec<String> {
    plan.problems
        .iter()
        .map(|p| format!("{}: {}", p.at.unwrap(), p.message))
        .collect()
}

const HEAD: &str = "version: \"1.0\"\n\
databases:\n  - raw: {shared: no}\n  - analytics: {shared: no}\n  - snowflake: {shared: yes}\n\
warehouses:\n  - loading: {size: x-small}\n  - reporting: {size: x-small}\n";

fn spec_of(body: &str) -> Spec {
    let text = format!("{HEAD}{body}");
    spec::parse(&text).unwrap_or_else(|e| panic!("{}\n{text}", e.report("spec")))
}

fn sql_of(plan: &Plan) -> Vec<String> {
    plan.changes.iter().map(Change::sql).collect()
}

/// Applies a plan to the state model the way Snowflake would, for convergence checks.
fn apply(state: &mut State, plan: &Plan) {
    for change in &plan.changes {
        match change {
            Change::CreateRole { role } => {
                state.roles.insert(
                    role.clone(),
                    RoleInfo {
                        owner: state.current_role.clone(),
                    },
                );
                state
                    .role_grants
                    .insert(role.clone(), RoleGrants::default());
            }
            Change::CreateUser { user, settings } => {
                let mut info = UserInfo::default();
                set_user(&mut info, settings);
                info.has_password = settings.iter().any(|s| s.property == "PASSWORD");
                state.users.insert(user.clone(), info);
                state.user_roles.insert(user.clone(), BTreeSet::new());
            }
            Change::AlterUser { user, settings } => {
                set_user(state.users.get_mut(user).unwrap(), settings)
            }
            Change::UnsetPassword { user } => {
                state.users.get_mut(user).unwrap().has_password = false
            }
            Change::ConvertToService { user } => {
                state.users.get_mut(user).unwrap().user_type = Some("SERVICE".into())
            }
            Change::GrantRole {
                role,
                to: Grantee::Role(r),
            } => {
                state
                    .role_grants
                    .get_mut(r)
                    .unwrap()
                    .member_of
                    .insert(role.clone());
            }
            Change::GrantRole {
                role,
                to: Grantee::User(u),
            } => {
                state.user_roles.get_mut(u).unwrap().insert(role.clone());
            }
            Change::RevokeRole {
                role,
                from: Grantee::Role(r),
            } => {
                state.role_grants.get_mut(r).unwrap().member_of.remove(role);
            }
            Change::RevokeRole {
                role,
                from: Grantee::User(u),
            } => {
                state.user_roles.get_mut(u).unwrap().remove(role);
            }
            Change::Grant {
                role,
                privileges,
                target,
                ..
            }
            | Change::Revoke {
                role,
                privileges,
                target,
                ..
            } => {
                let grant = matches!(change, Change::Grant { .. });
                let privileges: Vec<String> = privileges
                    .iter()
                    .map(|p| {
                        if p == "IMPORTED PRIVILEGES" {
                            "USAGE".into()
                        } else {
                            p.clone()
                        }
                    })
                    .collect();
                let objects = target_objects(state, target);
                let grants = state.role_grants.get_mut(role).unwrap();
                for p in &privileges {
                    match target {
                        Target::Future { kind, container } => {
                            let g = FutureGrant {
                                privilege: p.clone(),
                                kind: *kind,
                                container: container.clone(),
                            };
                            if grant {
                                grants.future.insert(g);
                            } else {
                                grants.future.remove(&g);
                            }
                        }
                        _ => {
                            for object in &objects {
                                let g = Grant {
                                    privilege: p.clone(),
                                    object: object.clone(),
                                };
                                if grant {
                                    grants.privileges.insert(g);
                                } else {
                                    grants.privileges.remove(&g);
                                }
                            }
                        }
                    }
                }
            }
            Change::TransferOwnership { object, to, .. } => match object {
                Object::Database { database } => {
                    state.databases.get_mut(database).unwrap().owner = Some(to.clone())
                }
                Object::Schema { database, schema } => {
                    state
                        .objects
                        .get_mut(database)
                        .unwrap()
                        .schemas
                        .get_mut(schema)
                        .unwrap()
                        .owner = Some(to.clone())
                }
                Object::Table {
                    database,
                    schema,
                    table,
                } => {
                    *state
                        .objects
                        .get_mut(database)
                        .unwrap()
                        .schemas
                        .get_mut(schema)
                        .unwrap()
                        .tables
                        .get_mut(table)
                        .unwrap() = Some(to.clone())
                }
                Object::View {
                    database,
                    schema,
                    view,
                } => {
                    *state
                        .objects
                        .get_mut(database)
                        .unwrap()
                        .schemas
                        .get_mut(schema)
                        .unwrap()
                        .views
                        .get_mut(view)
                        .unwrap() = Some(to.clone())
                }
                other => panic!("no ownership of {other}"),
            },
        }
    }
}

fn target_objects(state: &State, target: &Target) -> Vec<Object> {
    match target {
        Target::Object { object } => vec![object.clone()],
        Target::Future { .. } => vec![],
        Target::All { kind, container } => {
            let schema = container.schema.clone().unwrap_or_else(|| Name::stored(""));
            let empty = SchemaObjects::default();
            let objects = state.objects[&container.database]
                .schemas
                .get(&schema)
                .unwrap_or(&empty);
            match kind {
                FutureKind::Table => objects
                    .tables
                    .keys()
                    .map(|t| Object::Table {
                        database: container.database.clone(),
                        schema: schema.clone(),
                        table: t.clone(),
                    })
                    .collect(),
                FutureKind::View => objects
                    .views
                    .keys()
                    .map(|v| Object::View {
                        database: container.database.clone(),
                        schema: schema.clone(),
                        view: v.clone(),
                    })
                    .collect(),
                FutureKind::Schema => state.objects[&container.database]
                    .schemas
                    .keys()
                    .filter(|s| s.as_str() != "INFORMATION_SCHEMA")
                    .map(|s| Object::Schema {
                        database: container.database.clone(),
                        schema: s.clone(),
                    })
                    .collect(),
            }
        }
    }
}

fn set_user(info: &mut UserInfo, settings: &[Setting]) {
    for s in settings {
        let text = match &s.value {
            Value::Identifier(n) => n.as_str().to_owned(),
            Value::Text(t) | Value::Keyword(t) => t.clone(),
            Value::Bool(b) => b.to_string(),
            Value::GeneratedPassword => continue,
        };
        match s.property {
            "DISABLED" => info.disabled = text == "true",
            "EMAIL" => info.email = Some(text),
            "COMMENT" => info.comment = Some(text),
            "DISPLAY_NAME" => info.display_name = Some(text),
            "FIRST_NAME" => info.first_name = Some(text),
            "LAST_NAME" => info.last_name = Some(text),
            "DEFAULT_ROLE" => info.default_role = Some(text),
            "DEFAULT_WAREHOUSE" => info.default_warehouse = Some(text),
            "DEFAULT_NAMESPACE" => info.default_namespace = Some(text),
            "TYPE" => info.user_type = Some(text),
            _ => {}
        }
    }
}

/// Plans, checks the plan applies cleanly, applies it to the model, and checks that a second
/// plan is empty. Returns the first plan's statements.
fn converge(spec: &Spec, state: &mut State) -> Vec<String> {
    let first = plan_spec(spec, state, &options());
    assert!(first.is_applicable(), "{first:#?}");
    apply(state, &first);
    let second = plan_spec(spec, state, &options());
    assert!(
        second.changes.is_empty(),
        "second plan not empty: {:#?}",
        sql_of(&second)
    );
    sql_of(&first)
}

#[test]
fn a_fresh_account_converges_in_one_plan() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/roles.yml"
    ))
    .unwrap();
    let spec = spec::parse(&text).unwrap();
    let mut state = account();
    state.warehouses.insert(n("TRANSFORMING"));
    let sql = converge(&spec, &mut state);
    let phases: Vec<u8> = plan_spec(&spec, &account_with_transforming(), &options())
        .changes
        .iter()
        .map(Change::phase)
        .collect();
    assert!(
        phases.windows(2).all(|w| w[0] <= w[1]),
        "not in safe order: {phases:?}"
    );
    for expected in [
        "CREATE ROLE LOADER",
        "CREATE ROLE REPORTING_ALL",
        "CREATE USER JANE_DOE PASSWORD = '<generated when applied>' MUST_CHANGE_PASSWORD = TRUE EMAIL = 'jane.doe@example.com' COMMENT = 'jane.doe@example.com' DEFAULT_ROLE = REPORTING DEFAULT_WAREHOUSE = REPORTING",
        "CREATE USER FORMER_ANALYST DISABLED = TRUE",
        "GRANT ROLE LOADER TO ROLE REPORTING_ALL",
        "GRANT USAGE, OPERATE, MONITOR ON WAREHOUSE LOADING TO ROLE LOADER",
        "GRANT USAGE, MONITOR, CREATE SCHEMA ON DATABASE RAW TO ROLE LOADER",
        "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON ALL TABLES IN SCHEMA RAW.PUBLIC TO ROLE LOADER",
        "GRANT SELECT ON ALL VIEWS IN SCHEMA RAW.STITCH TO ROLE LOADER",
        "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON FUTURE TABLES IN DATABASE RAW TO ROLE LOADER",
        "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON FUTURE TABLES IN SCHEMA RAW.STITCH TO ROLE LOADER",
        "GRANT USAGE, MONITOR, CREATE TABLE, CREATE VIEW, CREATE STAGE, CREATE FILE FORMAT, CREATE SEQUENCE, CREATE FUNCTION, CREATE PIPE ON FUTURE SCHEMAS IN DATABASE RAW TO ROLE LOADER",
        "GRANT IMPORTED PRIVILEGES ON DATABASE SNOWFLAKE TO ROLE TRANSFORMER",
        "GRANT ROLE REPORTING TO USER JANE_DOE",
    ] {
        assert!(
            sql.contains(&expected.to_owned()),
            "{expected:?} not in:\n{}",
            sql.join("\n")
        );
    }
    // Snowflake's own hierarchy and the bot's setup are already right: nothing touches them.
    assert!(
        !sql.iter()
            .any(|s| s.contains("ACCOUNTADMIN") || s.contains("SECURITYADMIN")),
        "{sql:#?}"
    );
    // INFORMATION_SCHEMA is never granted on.
    assert!(
        !sql.iter().any(|s| s.contains("INFORMATION_SCHEMA")),
        "{sql:#?}"
    );
}

fn account_with_transforming() -> State {
    let mut s = account();
    s.warehouses.insert(n("TRANSFORMING"));
    s
}

/// Each wildcard form and what it expands to, in a role that has nothing yet.
#[test]
fn each_wildcard_form_expands_as_permifrost_does() {
    let cases: &[(&str, &[&str])] = &[
        (
            "schemas: {read: [raw.*]}",
            &[
                "GRANT USAGE ON ALL SCHEMAS IN DATABASE RAW TO ROLE R",
                "GRANT USAGE ON FUTURE SCHEMAS IN DATABASE RAW TO ROLE R",
            ],
        ),
        (
            "schemas: {read: ['raw.stit*']}",
            &["GRANT USAGE ON SCHEMA RAW.STITCH TO ROLE R"],
        ),
        (
            "tables: {read: [raw.public.*]}",
            &[
                "GRANT SELECT ON ALL TABLES IN SCHEMA RAW.PUBLIC TO ROLE R",
                "GRANT SELECT ON ALL VIEWS IN SCHEMA RAW.PUBLIC TO ROLE R",
                "GRANT SELECT ON FUTURE TABLES IN SCHEMA RAW.PUBLIC TO ROLE R",
                "GRANT SELECT ON FUTURE VIEWS IN SCHEMA RAW.PUBLIC TO ROLE R",
            ],
        ),
        (
            "tables: {read: [raw.*.*]}",
            &[
                "GRANT SELECT ON ALL TABLES IN SCHEMA RAW.PUBLIC TO ROLE R",
                "GRANT SELECT ON ALL VIEWS IN SCHEMA RAW.PUBLIC TO ROLE R",
                "GRANT SELECT ON ALL TABLES IN SCHEMA RAW.STITCH TO ROLE R",
                "GRANT SELECT ON ALL VIEWS IN SCHEMA RAW.STITCH TO ROLE R",
                "GRANT SELECT ON FUTURE TABLES IN DATABASE RAW TO ROLE R",
                "GRANT SELECT ON FUTURE VIEWS IN DATABASE RAW TO ROLE R",
                "GRANT SELECT ON FUTURE TABLES IN SCHEMA RAW.PUBLIC TO ROLE R",
                "GRANT SELECT ON FUTURE VIEWS IN SCHEMA RAW.PUBLIC TO ROLE R",
                "GRANT SELECT ON FUTURE TABLES IN SCHEMA RAW.STITCH TO ROLE R",
                "GRANT SELECT ON FUTURE VIEWS IN SCHEMA RAW.STITCH TO ROLE R",
            ],
        ),
        (
            "tables: {read: [raw.public.orders, raw.public.orders_v], write: [raw.public.users, raw.public.orders_v]}",
            &[
                "GRANT SELECT ON TABLE RAW.PUBLIC.ORDERS TO ROLE R",
                "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON TABLE RAW.PUBLIC.USERS TO ROLE R",
                "GRANT SELECT ON VIEW RAW.PUBLIC.ORDERS_V TO ROLE R",
            ],
        ),
    ];
    for (privileges, expected) in cases {
        let spec = spec_of(&format!(
            "roles:\n  - r:\n      privileges:\n        databases: {{read: [raw]}}\n        {privileges}\n"
        ));
        let mut state = account();
        let mut sql = converge(&spec, &mut state);
        sql.retain(|s| s != "CREATE ROLE R" && s != "GRANT USAGE ON DATABASE RAW TO ROLE R");
        let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        sql.sort();
        want.sort();
        assert_eq!(sql, want, "for {privileges}");
    }
}

#[test]
fn dropping_a_role_from_member_of_is_one_revoke() {
    let before = spec_of("roles:\n  - a: {}\n  - b: {}\n  - c:\n      member_of: [a, b]\n");
    let after = spec_of("roles:\n  - a: {}\n  - b: {}\n  - c:\n      member_of: [a]\n");
    let mut state = account();
    converge(&before, &mut state);
    let plan = plan_spec(&after, &state, &options());
    assert_eq!(sql_of(&plan), vec!["REVOKE ROLE B FROM ROLE C"]);
    assert!(plan.is_applicable());
}

#[test]
fn protected_roles_are_never_touched() {
    let cases: &[(&str, &str)] = &[
        (
            "roles:\n  - sysadmin:\n      warehouses: [loading]\n",
            "GRANT USAGE, OPERATE, MONITOR ON WAREHOUSE LOADING TO ROLE SYSADMIN",
        ),
        (
            "roles:\n  - r:\n      member_of: [accountadmin]\n",
            "GRANT ROLE ACCOUNTADMIN TO ROLE R",
        ),
        (
            "roles:\n  - permission_bot: {}\n",
            "REVOKE ROLE SECURITYADMIN FROM ROLE PERMISSION_BOT",
        ),
        (
            "users:\n  - permission_bot:\n      can_login: yes\n      member_of: []\n",
            "REVOKE ROLE PERMISSION_BOT FROM USER PERMISSION_BOT",
        ),
        (
            "roles:\n  - r:\n      owns:\n        databases: [raw]\n",
            "GRANT OWNERSHIP ON DATABASE RAW TO ROLE R COPY CURRENT GRANTS",
        ),
    ];
    for (body, statement) in cases {
        let plan = plan_spec(&spec_of(body), &account(), &options());
        assert!(!plan.is_applicable(), "{body}");
        assert!(
            plan.refusals
                .iter()
                .any(|r| r.contains(statement) && r.contains("protected role")),
            "{body}: {:#?}",
            plan.refusals
        );
        // Forcing lifts the revoke threshold, never the protection.
        let forced = plan_spec(
            &spec_of(body),
            &account(),
            &Options {
                force: true,
                ..options()
            },
        );
        assert!(!forced.refusals.is_empty());
    }
}

#[test]
fn the_bot_user_is_never_locked_out() {
    let spec = spec_of(
        "roles:\n  - permission_bot:\n      member_of: [securityadmin]\nusers:\n  - permission_bot:\n      can_login: no\n      has_password: no\n      member_of: [permission_bot]\n",
    );
    let plan = plan_spec(&spec, &account(), &options());
    assert_eq!(plan.refusals.len(), 2, "{:#?}", plan.refusals);
    assert!(
        plan.refusals
            .iter()
            .all(|r| r.contains("would lock out PERMISSION_BOT"))
    );
    // A bot that logs in with a key keeps working without a password; disabling still locks
    // it out.
    let with_key = Options {
        bot_uses_password: false,
        ..options()
    };
    let plan = plan_spec(&spec, &account(), &with_key);
    assert_eq!(plan.refusals.len(), 1, "{:#?}", plan.refusals);
    assert!(
        plan.refusals[0].contains("DISABLED = TRUE"),
        "{:#?}",
        plan.refusals
    );
}

#[test]
fn the_revoke_threshold_refuses_unless_forced() {
    let wide = spec_of(
        "roles:\n  - r:\n      privileges:\n        databases: {write: [raw]}\n        schemas: {write: [raw.*]}\n        tables: {write: [raw.*.*]}\n",
    );
    let narrow = spec_of("roles:\n  - r:\n      privileges:\n        databases: {read: [raw]}\n");
    let mut state = account();
    converge(&wide, &mut state);
    let plan = plan_spec(&narrow, &state, &options());
    assert!(plan.revoked_grants() > 20, "{}", plan.revoked_grants());
    assert_eq!(plan.refusals.len(), 1);
    assert!(
        plan.refusals[0].contains(&format!(
            "revokes {} grants, more than the limit of 20",
            plan.revoked_grants()
        )),
        "{}",
        plan.refusals[0]
    );
    let forced = plan_spec(
        &narrow,
        &state,
        &Options {
            force: true,
            ..options()
        },
    );
    assert!(forced.is_applicable());
    apply(&mut state, &forced);
    assert!(plan_spec(&narrow, &state, &options()).changes.is_empty());
    // Revokes come after every grant, and whole schemas are revoked in one statement.
    assert!(sql_of(&forced).contains(&"REVOKE SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON ALL TABLES IN SCHEMA RAW.PUBLIC FROM ROLE R".to_owned()), "{:#?}", sql_of(&forced));
}

#[test]
fn revokes_stay_within_what_the_spec_manages() {
    let spec = spec_of("roles:\n  - r:\n      privileges:\n        databases: {read: [raw]}\n");
    let mut state = account();
    converge(&spec, &mut state);
    let grants = state.role_grants.get_mut(&n("R")).unwrap();
    let extra = |privilege: &str, object: Object| Grant {
        privilege: privilege.into(),
        object,
    };
    // Outside the spec's databases, or privileges it does not manage: left alone.
    state
        .databases
        .insert(n("SCRATCH"), DatabaseInfo::default());
    grants.privileges.insert(extra(
        "USAGE",
        Object::Database {
            database: n("SCRATCH"),
        },
    ));
    grants.privileges.insert(extra(
        "CREATE TASK",
        Object::Schema {
            database: n("RAW"),
            schema: n("PUBLIC"),
        },
    ));
    grants.privileges.insert(extra(
        "USAGE",
        Object::Warehouse {
            warehouse: n("ELSEWHERE"),
        },
    ));
    // Inside: revoked.
    grants
        .privileges
        .insert(extra("MONITOR", Object::Database { database: n("RAW") }));
    grants.privileges.insert(extra(
        "SELECT",
        Object::Table {
            database: n("RAW"),
            schema: n("PUBLIC"),
            table: n("ORDERS"),
        },
    ));
    grants.privileges.insert(extra(
        "USAGE",
        Object::Warehouse {
            warehouse: n("REPORTING"),
        },
    ));
    grants.future.insert(FutureGrant {
        privilege: "SELECT".into(),
        kind: FutureKind::View,
        container: Container::database(n("ANALYTICS")),
    });
    let plan = plan_spec(&spec, &state, &options());
    assert_eq!(
        sql_of(&plan),
        // Narrowest first.
        vec![
            "REVOKE SELECT ON FUTURE VIEWS IN DATABASE ANALYTICS FROM ROLE R",
            "REVOKE SELECT ON TABLE RAW.PUBLIC.ORDERS FROM ROLE R",
            "REVOKE MONITOR ON DATABASE RAW FROM ROLE R",
            "REVOKE USAGE ON WAREHOUSE REPORTING FROM ROLE R",
        ]
    );
}

#[test]
fn hostile_names_cannot_inject_sql() {
    let spec = spec_of(
        "roles:\n  - 'x\"; DROP ROLE ACCOUNTADMIN; --':\n      warehouses: [loading]\n\
         users:\n  - 'eve@example.com'' OR 1=1':\n      can_login: yes\n      email: \"e'; DROP USER X; --\\\\\"\n      comment: 'back\\slash'' quote'\n      member_of: ['x\"; DROP ROLE ACCOUNTADMIN; --']\n",
    );
    let mut state = account();
    let sql = converge(&spec, &mut state);
    assert_eq!(
        sql,
        vec![
            "CREATE ROLE \"x\"\"; DROP ROLE ACCOUNTADMIN; --\"",
            "CREATE USER \"eve@example.com' OR 1=1\" PASSWORD = '<generated when applied>' MUST_CHANGE_PASSWORD = TRUE EMAIL = 'e''; DROP USER X; --\\\\' COMMENT = 'back\\\\slash'' quote'",
            "GRANT USAGE, OPERATE, MONITOR ON WAREHOUSE LOADING TO ROLE \"x\"\"; DROP ROLE ACCOUNTADMIN; --\"",
            "GRANT ROLE \"x\"\"; DROP ROLE ACCOUNTADMIN; --\" TO USER \"eve@example.com' OR 1=1\"",
        ]
    );
}

#[test]
fn an_email_sets_only_the_email_of_a_user_that_exists() {
    let spec = spec_of(
        "users:\n  - erin: {can_login: yes, member_of: [], email: erin@example.com}\n\
         \x20 - finn: {can_login: yes, member_of: [], email: finn@example.com, comment: on call}\n",
    );
    let mut state = account();
    for (user, comment) in [("ERIN", "contractor, ends 2025-06"), ("FINN", "old")] {
        state.users.insert(
            n(user),
            UserInfo {
                has_password: true,
                email: Some(format!("{}@old.example.com", user.to_lowercase())),
                comment: Some(comment.into()),
                ..UserInfo::default()
            },
        );
    }
    let sql = sql_of(&plan_spec(&spec, &state, &options()));
    assert_eq!(
        sql,
        vec![
            "ALTER USER ERIN SET EMAIL = 'erin@example.com'",
            "ALTER USER FINN SET EMAIL = 'finn@example.com' COMMENT = 'on call'",
        ]
    );
}

#[test]
fn users_are_created_altered_and_disabled() {
    let spec = spec_of(
        "roles:\n  - analyst: {}\n\
         users:\n  - jane:\n      can_login: yes\n      email: jane@example.com\n      default_role: analyst\n      default_warehouse: reporting\n      member_of: [analyst]\n\
         \x20 - svc:\n      can_login: yes\n      has_password: no\n      type: service\n\
         \x20 - gone:\n      can_login: no\n",
    );
    let mut state = account();
    state.users.insert(
        n("JANE"),
        UserInfo {
            has_password: true,
            default_role: Some("PUBLIC".into()),
            comment: Some("old".into()),
            ..UserInfo::default()
        },
    );
    state.user_roles.insert(n("JANE"), [n("SYSADMIN")].into());
    state.users.insert(
        n("GONE"),
        UserInfo {
            has_password: true,
            ..UserInfo::default()
        },
    );
    state
        .user_roles
        .insert(n("GONE"), [n("ANALYTICS_READER")].into());
    let plan = plan_spec(&spec, &state, &options());
    let sql = sql_of(&plan);
    assert_eq!(
        sql,
        vec![
            "CREATE ROLE ANALYST",
            "CREATE USER SVC TYPE = SERVICE",
            "GRANT ROLE ANALYST TO USER JANE",
            "ALTER USER GONE SET DISABLED = TRUE",
            "ALTER USER JANE SET EMAIL = 'jane@example.com' DEFAULT_ROLE = ANALYST DEFAULT_WAREHOUSE = REPORTING",
            "REVOKE ROLE ANALYTICS_READER FROM USER GONE",
            "REVOKE ROLE SYSADMIN FROM USER JANE",
        ]
    );
    // Revoking SYSADMIN touches a protected role: refused.
    assert_eq!(plan.refusals.len(), 1, "{:#?}", plan.refusals);
    assert!(plan.refusals[0].contains("REVOKE ROLE SYSADMIN FROM USER JANE"));
}

#[test]
fn ownership_moves_to_the_owning_role() {
    let spec = spec_of(
        "roles:\n  - loader:\n      owns:\n        schemas: [raw.stitch]\n        tables: [raw.stitch.*]\n",
    );
    let mut state = account();
    for (_, table) in state
        .objects
        .get_mut(&n("RAW"))
        .unwrap()
        .schemas
        .get_mut(&n("STITCH"))
        .unwrap()
        .tables
        .iter_mut()
    {
        *table = Some(n("STITCH_LOADER"));
    }
    let mut unprotected = options();
    unprotected.protected.remove(&n("SYSADMIN"));
    let plan = plan_spec(&spec, &state, &unprotected);
    assert_eq!(
        sql_of(&plan),
        vec![
            "CREATE ROLE LOADER",
            "GRANT OWNERSHIP ON SCHEMA RAW.STITCH TO ROLE LOADER COPY CURRENT GRANTS",
            "GRANT OWNERSHIP ON TABLE RAW.STITCH.EVENTS TO ROLE LOADER COPY CURRENT GRANTS",
            "GRANT OWNERSHIP ON TABLE RAW.STITCH.SESSIONS TO ROLE LOADER COPY CURRENT GRANTS",
            "GRANT OWNERSHIP ON VIEW RAW.STITCH.EVENTS_V TO ROLE LOADER COPY CURRENT GRANTS",
        ]
    );
    assert!(plan.is_applicable(), "{:#?}", plan.refusals);
}

#[test]
fn missing_objects_and_unread_details_are_problems() {
    let text = "version: \"1.0\"\ndatabases:\n  - raw: {shared: no}\n  - ghost_db: {shared: no}\nwarehouses:\n  - ghost_wh: {size: small}\n\
                roles:\n  - r:\n      warehouses: [ghost_wh]\n      privileges:\n        databases: {read: [raw, ghost_db]}\n        schemas: {read: [raw.nope]}\n        tables: {read: [raw.public.nope]}\n";
    let spec = spec::parse(text).unwrap();
    let plan = plan_spec(&spec, &account(), &options());
    assert_eq!(
        located_problems(&plan),
        vec![
            "9:20: warehouse GHOST_WH does not exist in the account: create it first (this job never creates databases or warehouses)",
            "11:33: database GHOST_DB does not exist in the account: create it first (this job never creates databases or warehouses)",
            "12:26: schema RAW.NOPE does not exist in the account: create it first",
            "13:25: table or view RAW.PUBLIC.NOPE does not exist in the account: create it first",
        ]
    );

    let mut unread = account();
    unread.objects.remove(&n("RAW"));
    unread.roles.insert(n("R"), RoleInfo::default());
    let spec = spec_of(
        "roles:\n  - r:\n      privileges:\n        databases: {read: [raw]}\n        schemas: {read: [raw.*]}\n",
    );
    let plan = plan_spec(&spec, &unread, &options());
    let messages: Vec<&str> = plan.problems.iter().map(|p| p.message.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("the schemas of database RAW were not read")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("the grants of role R were not read")),
        "{messages:?}"
    );
}

#[test]
fn role_owners_are_checked() {
    let spec = spec_of("roles:\n  - r:\n      owner: useradmin\n");
    let plan = plan_spec(&spec, &account(), &options());
    assert!(plan.problems[0].message.contains("role R would be owned by the role that creates it (PERMISSION_BOT), but the spec says owner USERADMIN"), "{:#?}", plan.problems);
    let mut state = account();
    state.roles.insert(
        n("R"),
        RoleInfo {
            owner: Some(n("SYSADMIN")),
        },
    );
    state.role_grants.insert(n("R"), RoleGrants::default());
    let plan = plan_spec(&spec, &state, &options());
    assert!(
        plan.problems[0].message.contains(
            "role R is owned by SYSADMIN in the account, but the spec says owner USERADMIN"
        )
    );
}

#[test]
fn an_imported_database_the_spec_calls_unshared_is_a_problem_before_any_change() {
    let text = HEAD.replace("snowflake: {shared: yes}", "snowflake: {shared: no}")
        + "roles:\n  - r:\n      privileges:\n        databases: {read: [snowflake]}\n";
    let spec = spec::parse(&text).unwrap();
    let plan = plan_spec(&spec, &account(), &options());
    assert_eq!(
        located_problems(&plan),
        vec![
            "5:5: database SNOWFLAKE is shared with this account (created from a share), but the spec says `shared: no`: make it `shared: yes`"
        ]
    );
    assert!(!plan.is_applicable());
}

#[test]
fn shared_databases_take_imported_privileges_only() {
    let spec = spec_of(
        "roles:\n  - r:\n      privileges:\n        databases: {read: [snowflake], write: [snowflake]}\n        schemas: {read: [snowflake.*]}\n        tables: {read: [snowflake.*.*]}\n",
    );
    let mut state = account();
    let sql = converge(&spec, &mut state);
    assert_eq!(
        sql,
        vec![
            "CREATE ROLE R",
            "GRANT IMPORTED PRIVILEGES ON DATABASE SNOWFLAKE TO ROLE R"
        ]
    );
    let none = spec_of("roles:\n  - r: {}\n");
    assert_eq!(
        sql_of(&plan_spec(&none, &state, &options())),
        vec!["REVOKE IMPORTED PRIVILEGES ON DATABASE SNOWFLAKE FROM ROLE R"]
    );
}

#[test]
fn service_users_get_no_password_and_a_converted_one_loses_its_password_first() {
    let spec = spec_of(
        "users:\n  - loader:\n      can_login: yes\n      type: service\n  \
         - etl:\n      can_login: yes\n      type: service\n",
    );
    let mut state = account();
    // What Snowflake converted from LEGACY_SERVICE keeps its password until it is unset.
    state.users.insert(
        n("ETL"),
        UserInfo {
            has_password: true,
            user_type: Some("LEGACY_SERVICE".into()),
            ..UserInfo::default()
        },
    );
    state.user_roles.insert(n("ETL"), BTreeSet::new());
    let sql = sql_of(&plan_spec(&spec, &state, &options()));
    assert_eq!(
        sql,
        vec![
            "CREATE USER LOADER TYPE = SERVICE",
            "ALTER USER ETL UNSET PASSWORD",
            "ALTER USER ETL SET TYPE = SERVICE",
        ]
    );
    // Once converged, nothing more: no ALTER on every run.
    state.users.insert(
        n("ETL"),
        UserInfo {
            has_password: false,
            user_type: Some("SERVICE".into()),
            ..UserInfo::default()
        },
    );
    let sql = sql_of(&plan_spec(&spec, &state, &options()));
    assert_eq!(sql, vec!["CREATE USER LOADER TYPE = SERVICE"]);
}

#[test]
fn a_service_users_key_is_set_at_creation_and_replaced_when_its_fingerprint_differs() {
    let key = test_servers::keys::rsa_private_key(2048);
    let public = test_servers::keys::public_key_for_alter_user(&key);
    let spec = spec_of(&format!(
        "users:\n  - loader:\n      can_login: yes\n      type: service\n      \
         rsa_public_key: {public}\n"
    ));
    let mut state = account();
    let sql = sql_of(&plan_spec(&spec, &state, &options()));
    assert_eq!(
        sql,
        vec![format!(
            "CREATE USER LOADER TYPE = SERVICE RSA_PUBLIC_KEY = '{public}'"
        )]
    );
    let fingerprint = snowflake_conn::PublicKey::parse(&public)
        .unwrap()
        .fingerprint;
    let mut info = UserInfo {
        user_type: Some("SERVICE".into()),
        has_rsa_public_key: true,
        rsa_public_key_fp: Some(fingerprint),
        ..UserInfo::default()
    };
    state.users.insert(n("LOADER"), info.clone());
    state.user_roles.insert(n("LOADER"), BTreeSet::new());
    assert!(sql_of(&plan_spec(&spec, &state, &options())).is_empty());
    info.rsa_public_key_fp = Some("SHA256:someotherkey".into());
    state.users.insert(n("LOADER"), info);
    assert_eq!(
        sql_of(&plan_spec(&spec, &state, &options())),
        vec![format!("ALTER USER LOADER SET RSA_PUBLIC_KEY = '{public}'")]
    );
}

/// Since bundle 2025_05 (BCR-2067, as issue 30 reports it; the bundle's page could not be read
/// here), a user whose TYPE is unset reads back as PERSON: `type: null` against it plans
/// nothing, and `type: person` against an unset one neither.
#[test]
fn a_null_type_and_person_are_one_type() {
    let mut state = account();
    for (spec_type, account_type) in [
        ("null", Some("PERSON")),
        ("null", None),
        ("person", None),
        ("person", Some("PERSON")),
    ] {
        let spec = spec_of(&format!(
            "users:\n  - jane:\n      can_login: yes\n      type: {spec_type}\n"
        ));
        state.users.insert(
            n("JANE"),
            UserInfo {
                has_password: true,
                user_type: account_type.map(str::to_owned),
                ..UserInfo::default()
            },
        );
        state.user_roles.insert(n("JANE"), BTreeSet::new());
        assert!(
            sql_of(&plan_spec(&spec, &state, &options())).is_empty(),
            "{spec_type} against {account_type:?}"
        );
    }
    let spec = spec_of("users:\n  - jane:\n      can_login: yes\n      type: service\n");
    assert!(
        sql_of(&plan_spec(&spec, &state, &options()))
            .contains(&"ALTER USER JANE SET TYPE = SERVICE".to_owned())
    );
}

/// A spec without `type` that names a user the account has as SERVICE or LEGACY_SERVICE (one
/// Snowflake converted, say) is a spec problem before any change: Snowflake refuses
/// FIRST_NAME/LAST_NAME for service users and DESCRIBE USER does not show them, so the ALTER
/// would fail on every run.
#[test]
fn names_for_a_user_the_account_has_as_service_are_a_spec_problem() {
    for account_type in ["SERVICE", "LEGACY_SERVICE"] {
        let mut state = account();
        state.users.insert(
            n("ETL"),
            UserInfo {
                user_type: Some(account_type.into()),
                ..UserInfo::default()
            },
        );
        state.user_roles.insert(n("ETL"), BTreeSet::new());
        let spec = spec_of(
            "users:\n  - etl:\n      can_login: yes\n      first_name: Extract\n      \
             last_name: Load\n",
        );
        let plan = plan_spec(&spec, &state, &options());
        assert_eq!(plan.problems.len(), 1, "{:?}", plan.problems);
        let message = &plan.problems[0].message;
        assert!(
            message.contains(&format!("user ETL is TYPE = {account_type}"))
                && message.contains("first_name, last_name")
                && message.contains("type: person"),
            "{message}"
        );
        assert!(plan.problems[0].at.is_some());
        // Without names, or with the type said, it plans as before.
        let plain = spec_of("users:\n  - etl:\n      can_login: yes\n");
        assert!(plan_spec(&plain, &state, &options()).problems.is_empty());
        let person = spec_of(
            "users:\n  - etl:\n      can_login: yes\n      type: person\n      \
             first_name: Extract\n",
        );
        assert!(plan_spec(&person, &state, &options()).problems.is_empty());
    }
}
