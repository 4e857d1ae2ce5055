//! Spec reading and validation: the sample spec, every rule, and that all problems come in one
//! report with line and column.

use super::*;

const HEADER: &str = "version: \"1.0\"\n";

fn problems(yaml: &str) -> Vec<String> {
    match parse(yaml) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .problems
            .iter()
            .map(|p| match p.at {
                Some(at) => format!("{at}: {}", p.message),
                None => p.message.clone(),
            })
            .collect(),
    }
}

fn n(s: &str) -> Name {
    Name::stored(s)
}

#[test]
fn the_sample_spec_is_valid() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/roles.yml"
    ))
    .expect("examples/roles.yml");
    let spec = parse(&text).unwrap_or_else(|e| panic!("{}", e.report("examples/roles.yml")));
    let roles: Vec<&str> = spec.roles.iter().map(|r| r.name.as_str()).collect();
    for role in [
        "ACCOUNTADMIN",
        "SECURITYADMIN",
        "SYSADMIN",
        "PERMISSION_BOT",
        "LOADER",
        "TRANSFORMER",
        "REPORTING",
        "REPORTING_ALL",
        "STITCH",
    ] {
        assert!(roles.contains(&role), "{role} missing from {roles:?}");
    }
    assert_eq!(spec.databases.iter().filter(|d| d.spec.shared).count(), 1);
    let jane = spec
        .users
        .iter()
        .find(|u| u.name.as_str() == "JANE_DOE")
        .unwrap();
    assert_eq!(jane.spec.email.as_deref(), Some("jane.doe@example.com"));
    assert_eq!(
        jane.spec.default_role.as_ref().unwrap().value,
        n("REPORTING")
    );
    let former = spec
        .users
        .iter()
        .find(|u| u.name.as_str() == "FORMER_ANALYST")
        .unwrap();
    assert!(!former.spec.can_login);
}

#[test]
fn reads_every_part_of_a_role() {
    let spec = parse(&format!(
        "{HEADER}databases:\n  - raw: {{shared: false}}\n  - share: {{shared: yes}}\n\
         warehouses:\n  - loading: {{size: x-small}}\n\
         roles:\n\
         \x20 - loader:\n\
         \x20     warehouses: [loading]\n\
         \x20     member_of: [sysadmin]\n\
         \x20     owns:\n\
         \x20       databases: [raw]\n\
         \x20       schemas: [raw.*]\n\
         \x20       tables: [raw.*.*]\n\
         \x20     privileges:\n\
         \x20       databases: {{read: [raw, share], write: [raw]}}\n\
         \x20       schemas: {{read: [raw.*, 'raw.stitch_*'], write: [raw.public]}}\n\
         \x20       tables: {{read: [raw.*.*, raw.public.*, 'raw.\"My Schema\".t'], write: [raw.public.orders]}}\n\
         \x20 - all:\n\
         \x20     member_of: {{include: ['*'], exclude: [loader]}}\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let loader = &spec.roles[0].spec;
    assert_eq!(loader.warehouses[0].value, n("LOADING"));
    assert_eq!(loader.member_of.include[0].value, n("SYSADMIN"));
    let p = &loader.privileges;
    assert_eq!(p.databases.read.len(), 2);
    assert_eq!(
        p.schemas.read[0].value,
        SchemaPath {
            database: n("RAW"),
            schema: Part::All
        }
    );
    assert_eq!(
        p.schemas.read[1].value.schema,
        Part::Glob {
            prefix: "STITCH_".into(),
            suffix: String::new()
        }
    );
    assert_eq!(
        p.tables.read[0].value,
        TablePath {
            database: n("RAW"),
            schema: Part::All,
            table: Part::All
        }
    );
    assert_eq!(
        p.tables.read[2].value,
        TablePath {
            database: n("RAW"),
            schema: Part::Named(n("My Schema")),
            table: Part::Named(n("T"))
        }
    );
    assert_eq!(
        p.tables.write[0].at,
        Loc {
            line: 18,
            column: 78
        }
    );
    assert_eq!(loader.owns.tables.len(), 1);
    let all = &spec.roles[1].spec.member_of;
    assert!(all.all);
    assert_eq!(all.exclude[0].value, n("LOADER"));
    assert_eq!(
        parents(&spec, &spec.roles[1])
            .iter()
            .map(|r| r.value.clone())
            .collect::<Vec<_>>(),
        Vec::<Name>::new(),
        "`*` means the other spec roles, minus exclude"
    );
}

#[test]
fn yaml_errors_have_line_and_column() {
    let found = problems("roles:\n  - loader:\n      warehouses: [loading\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("4:1: invalid YAML"), "{found:?}");
    let found = problems("roles:\n  - loader: {}\n  - loader: {}\nroles: []\n");
    assert!(
        found[0].contains("4:1: invalid YAML: duplicated key"),
        "{found:?}"
    );
}

/// Each rule: a spec fragment and the problem it must produce, with its position.
#[test]
fn every_validation_rule_reports_where() {
    let cases: &[(&str, &str)] = &[
        // Unknown keys, at every level.
        ("colour: blue\n", "2:1: the spec: unknown key `colour`"),
        (
            "roles:\n  - loader:\n      warehouse: [x]\n",
            "4:7: role loader: unknown key `warehouse` (expected one of: owner, warehouses",
        ),
        (
            "roles:\n  - loader:\n      privileges:\n        tables:\n          reed: []\n",
            "6:11: role loader: privileges.tables: unknown key `reed`",
        ),
        (
            "users:\n  - jane:\n      can_login: yes\n      emial: x\n",
            "5:7: user jane: unknown key `emial`",
        ),
        (
            "databases:\n  - raw:\n      shared: no\n      sharded: no\n",
            "5:7: database raw: unknown key `sharded`",
        ),
        // Types and required keys.
        (
            "databases:\n  - raw:\n      shared: maybe\n",
            "4:15: database raw: shared: expected true or false, found \"maybe\"",
        ),
        (
            "databases:\n  - raw: {}\n",
            "3:10: database raw: `shared: true` or `shared: false` is required",
        ),
        (
            "warehouses:\n  - loading: {}\n",
            "3:14: warehouse loading: `size` is required",
        ),
        (
            "users:\n  - jane: {}\n",
            "3:11: user jane: `can_login: true` or `can_login: false` is required",
        ),
        (
            "roles: loader\n",
            "2:8: roles: expected a list, found a string",
        ),
        (
            "roles:\n  - loader:\n      warehouses: loading\n",
            "4:19: role loader: warehouses: expected a list, found a string",
        ),
        (
            "roles:\n  - loader: {}\n    transformer: {}\n",
            "3:5: an entry of roles must be one `name:`",
        ),
        ("version: \"2.0\"\n", "2:10: version: only version \"1.0\""),
        (
            "users:\n  - jane:\n      can_login: yes\n      type: robot\n",
            "5:13: user jane: type: expected one of PERSON",
        ),
        (
            "roles:\n  - loader:\n      member_of:\n        exclude: [x]\n",
            "5:9: role loader: member_of: `include` is required",
        ),
        (
            "roles:\n  - !include other.yml\n",
            "3:5: an entry of roles: YAML tags such as !include are not supported",
        ),
        // Names.
        (
            "roles:\n  - '\"a\"b\"': {}\n",
            "3:5: role name: invalid name",
        ),
        (
            "roles:\n  - loader:\n      member_of: [\"a\\nb\"]\n",
            "4:19: role loader: member_of: invalid name",
        ),
        // Duplicates, compared as Snowflake stores names.
        (
            "roles:\n  - loader: {}\n  - LOADER: {}\n",
            "4:5: role LOADER is defined twice (first at line 3)",
        ),
        (
            "users:\n  - jane: {can_login: yes}\n  - Jane: {can_login: yes}\n",
            "4:5: user JANE is defined twice",
        ),
        // References.
        (
            "roles:\n  - loader:\n      member_of: [ghost]\n",
            "4:19: role LOADER: member_of: role GHOST is not defined in roles (nor a built-in role)",
        ),
        (
            "roles:\n  - loader:\n      warehouses: [ghost]\n",
            "4:20: role LOADER: warehouse GHOST is not defined in warehouses",
        ),
        (
            "roles:\n  - loader:\n      privileges:\n        databases:\n          read: [ghost]\n",
            "6:18: role LOADER: database GHOST is not defined in databases",
        ),
        (
            "roles:\n  - loader:\n      owns:\n        schemas: [ghost.s]\n",
            "5:19: role LOADER: owns: database GHOST is not defined",
        ),
        (
            "users:\n  - jane:\n      can_login: yes\n      member_of: [ghost]\n",
            "5:19: user JANE: member_of: role GHOST is not defined",
        ),
        (
            "users:\n  - jane:\n      can_login: yes\n      default_warehouse: ghost\n",
            "5:26: user JANE: default_warehouse GHOST is not defined",
        ),
        (
            "users:\n  - jane:\n      can_login: yes\n      default_role: sysadmin\n",
            "5:21: user JANE: default_role SYSADMIN is not among the user's member_of roles",
        ),
        // Paths.
        (
            "databases:\n  - raw: {shared: no}\nroles:\n  - r:\n      privileges:\n        databases: {read: [raw]}\n        schemas: {read: [raw]}\n",
            "8:26: role r: privileges.schemas.read: malformed path \"raw\": 1 part where 2 are needed (expected DB.SCHEMA or DB.*)",
        ),
        (
            "databases:\n  - raw: {shared: no}\nroles:\n  - r:\n      privileges:\n        databases: {read: [raw]}\n        tables: {read: [raw.*.orders]}\n",
            "8:25: role r: privileges.tables.read: malformed path \"raw.*.orders\": after a schema pattern the table must be *",
        ),
        (
            "roles:\n  - r:\n      privileges:\n        tables: {read: ['*.s.t']}\n",
            "5:25: role r: privileges.tables.read: malformed path \"*.s.t\": the database must be named",
        ),
        (
            "roles:\n  - r:\n      privileges:\n        schemas: {read: [raw..x]}\n",
            "5:26: role r: privileges.schemas.read: malformed path \"raw..x\": 3 parts where 2 are needed",
        ),
        (
            "roles:\n  - r:\n      privileges:\n        schemas: {read: ['raw.\"open']}\n",
            "unbalanced double quotes",
        ),
        (
            "roles:\n  - r:\n      privileges:\n        schemas: {read: ['raw.a*b']}\n",
            "pattern \"a*b\" may only have one * at its start or end",
        ),
        (
            "roles:\n  - r:\n      privileges:\n        databases: {read: ['*']}\n",
            "a database must be named, not a pattern",
        ),
        // Permifrost's rule: a schema or table needs its database in the role's database privileges.
        (
            "databases:\n  - raw: {shared: no}\nroles:\n  - r:\n      privileges:\n        schemas: {read: [raw.*]}\n",
            "7:26: role R: database RAW is used in schemas.read privileges but is not in the role's privileges.databases.read",
        ),
        (
            "databases:\n  - raw: {shared: no}\nroles:\n  - r:\n      privileges:\n        databases: {write: [raw]}\n        tables: {read: [raw.*.*]}\n",
            "8:25: role R: database RAW is used in tables.read privileges",
        ),
        // Cycles.
        (
            "roles:\n  - a: {member_of: [b]}\n  - b: {member_of: [c]}\n  - c: {member_of: [a]}\n",
            "member_of cycle: A → B → C → A",
        ),
        (
            "roles:\n  - a: {member_of: [a]}\n",
            "3:21: member_of cycle: A → A",
        ),
        (
            "roles:\n  - a: {member_of: {include: ['*']}}\n  - b: {member_of: [a]}\n",
            "member_of cycle: A → B → A",
        ),
        // require-owner.
        (
            "require-owner: true\nroles:\n  - a: {owner: securityadmin}\n  - b: {}\n",
            "5:5: role B: require-owner is set but no owner is given",
        ),
    ];
    let mut failures = Vec::new();
    for (fragment, expected) in cases {
        // A fragment that sets the version replaces the header's.
        let yaml = if fragment.starts_with("version") {
            format!("\n{fragment}")
        } else {
            format!("{HEADER}{fragment}")
        };
        let found = problems(&yaml);
        if !found.iter().any(|p| p.contains(expected)) {
            failures.push(format!(
                "spec:\n{yaml}expected a problem containing {expected:?}, found {found:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn all_problems_come_in_one_report() {
    let yaml = format!(
        "{HEADER}databases:\n  - raw: {{shared: perhaps}}\nroles:\n  - loader:\n      warehouses: [ghost]\n      colour: red\n  - loader: {{}}\nusers:\n  - jane: {{}}\n"
    );
    let err = parse(&yaml).unwrap_err();
    let report = err.report("roles.yml");
    for needle in [
        "roles.yml: 5 problems in the spec",
        "roles.yml:3:19: database raw: shared: expected true or false",
        "roles.yml:6:20: role LOADER: warehouse GHOST is not defined",
        "roles.yml:7:7: role loader: unknown key `colour`",
        "roles.yml:8:5: role LOADER is defined twice",
        "roles.yml:10:11: user jane: `can_login: true` or `can_login: false` is required",
    ] {
        assert!(report.contains(needle), "{needle:?} not in:\n{report}");
    }
}

#[test]
fn empty_and_odd_documents_are_refused() {
    assert_eq!(problems(""), vec!["the spec is empty"]);
    assert!(problems("- a\n- b\n")[0].contains("the spec: expected a mapping, found a list"));
    assert!(problems("a: 1\n---\nb: 2\n")[0].contains("one YAML document"));
}

#[test]
fn yaml_1_1_booleans_read_as_permifrost_reads_them() {
    for (word, value) in [
        ("yes", true),
        ("Yes", true),
        ("on", true),
        ("true", true),
        ("no", false),
        ("OFF", false),
        ("false", false),
    ] {
        let spec = parse(&format!(
            "{HEADER}databases:\n  - raw:\n      shared: {word}\n"
        ))
        .unwrap();
        assert_eq!(spec.databases[0].spec.shared, value, "{word}");
    }
}

#[test]
fn globs_match_folded_names() {
    let glob = Part::Glob {
        prefix: "STITCH_".into(),
        suffix: String::new(),
    };
    assert!(glob.matches(&n("STITCH_ORDERS")));
    assert!(!glob.matches(&n("stitch_orders")));
    assert!(!glob.matches(&n("RAW")));
    let suffix = Part::Glob {
        prefix: String::new(),
        suffix: "_DEV".into(),
    };
    assert!(suffix.matches(&n("SALES_DEV")));
    assert!(!suffix.matches(&n("_DEVX")));
}

#[test]
fn service_users_have_no_names_or_password_and_legacy_service_is_refused() {
    let yaml = format!(
        "{HEADER}users:\n  - loader:\n      can_login: yes\n      type: service\n      \
         first_name: Load\n      last_name: Bot\n      has_password: yes\n  \
         - old_bot:\n      can_login: yes\n      type: legacy_service\n  \
         - fine_bot:\n      can_login: yes\n      type: SERVICE\n      email: bot@example.com\n"
    );
    let found = problems(&yaml);
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(
        found[0].starts_with("6:19: user loader: first_name"),
        "{found:#?}"
    );
    assert!(found[0].contains("Snowflake refuses it for TYPE = SERVICE"));
    assert!(
        found[1].starts_with("7:18: user loader: last_name"),
        "{found:#?}"
    );
    assert!(found[2].contains("has_password") && found[2].contains("no password"));
    assert!(
        found[3].contains("LEGACY_SERVICE users can no longer be created"),
        "{found:#?}"
    );
}
