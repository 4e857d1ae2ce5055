//! Reading the account's current state: one `SHOW` per object (per role, per user, per
//! database), never one per grant, run concurrently up to a bound. Snowflake answers each round
//! trip in ~100 ms, so reading 500 roles one after another would take a minute; with 32 in
//! flight it takes a few seconds.
//!
//! Only what the spec needs is read for a plan (its roles, users and the databases its
//! wildcards expand in); a snapshot reads everything, so that a later spec can be planned
//! offline against it.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use snowflake_conn::{Connection, QueryResult, Row, ValueError};

use crate::ident::{Name, split_qualified};
use crate::model::{
    Container, DatabaseInfo, FutureGrant, FutureKind, Grant, Object, RoleInfo, SchemaObjects,
    State, UserInfo,
};
use crate::spec::Spec;

/// Snowflake's SHOW commands return at most this many rows: a full page may have lost some.
const SHOW_ROW_LIMIT: usize = 10_000;

/// Which roles, users or databases to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Only(BTreeSet<Name>),
}

impl Scope {
    fn wants(&self, name: &Name) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(names) => names.contains(name),
        }
    }
}

/// What to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    pub roles: Scope,
    pub users: Scope,
    /// Databases whose schemas, tables and views are read.
    pub databases: Scope,
    pub integrations: bool,
}

impl Needs {
    /// Everything: what a snapshot reads.
    pub fn everything() -> Needs {
        Needs {
            roles: Scope::All,
            users: Scope::All,
            databases: Scope::All,
            integrations: true,
        }
    }

    /// What planning `spec` needs: its roles and users, and the databases in which its
    /// schema and table paths (or `owns`) must be expanded or checked.
    pub fn for_spec(spec: &Spec) -> Needs {
        let shared: BTreeSet<&Name> = spec
            .databases
            .iter()
            .filter(|d| d.spec.shared)
            .map(|d| &d.name)
            .collect();
        let mut databases = BTreeSet::new();
        for role in &spec.roles {
            let p = &role.spec.privileges;
            let o = &role.spec.owns;
            let schema_dbs = p
                .schemas
                .read
                .iter()
                .chain(&p.schemas.write)
                .chain(&o.schemas);
            databases.extend(schema_dbs.map(|s| s.value.database.clone()));
            let table_dbs = p.tables.read.iter().chain(&p.tables.write).chain(&o.tables);
            databases.extend(table_dbs.map(|t| t.value.database.clone()));
        }
        // Owned shared databases would still need reading; granted ones never do.
        let owned: BTreeSet<Name> = spec
            .roles
            .iter()
            .flat_map(|r| {
                r.spec
                    .owns
                    .schemas
                    .iter()
                    .map(|s| s.value.database.clone())
                    .chain(r.spec.owns.tables.iter().map(|t| t.value.database.clone()))
            })
            .collect();
        databases.retain(|d| !shared.contains(d) || owned.contains(d));
        Needs {
            roles: Scope::Only(spec.roles.iter().map(|r| r.name.clone()).collect()),
            users: Scope::Only(spec.users.iter().map(|u| u.name.clone()).collect()),
            databases: Scope::Only(databases),
            integrations: !spec.integrations.is_empty(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("reading the account failed: {0}")]
    Query(#[from] snowflake_conn::Error),
    #[error("unexpected output of `{sql}`: {source}")]
    Value {
        sql: String,
        #[source]
        source: ValueError,
    },
    #[error(
        "`{sql}` returned {SHOW_ROW_LIMIT} rows, Snowflake's limit for SHOW: the list may be \
         incomplete, and a plan from it could revoke or miss grants"
    )]
    Truncated { sql: String },
}

impl InspectError {
    pub fn snowflake(&self) -> Option<&snowflake_conn::Error> {
        match self {
            InspectError::Query(e) => Some(e),
            _ => None,
        }
    }
}

/// One statement to run and what its rows become.
#[derive(Debug, Clone)]
enum Show {
    Roles,
    Users,
    Warehouses,
    Integrations,
    Databases,
    Context,
    Schemas(Name),
    Tables(Name),
    Views(Name),
    RoleGrants(Name),
    FutureGrants(Name),
    UserGrants(Name),
    /// DESC USER: its keys' fingerprints.
    UserKeys(Name),
}

impl Show {
    fn sql(&self) -> String {
        match self {
            Show::Roles => "SHOW ROLES".into(),
            Show::Users => "SHOW USERS".into(),
            Show::Warehouses => "SHOW WAREHOUSES".into(),
            Show::Integrations => "SHOW INTEGRATIONS".into(),
            Show::Databases => "SHOW DATABASES".into(),
            Show::Context => {
                "SELECT CURRENT_USER() AS USER_NAME, CURRENT_ROLE() AS ROLE_NAME".into()
            }
            Show::Schemas(db) => format!("SHOW SCHEMAS IN DATABASE {}", db.sql()),
            Show::Tables(db) => format!("SHOW TABLES IN DATABASE {}", db.sql()),
            Show::Views(db) => format!("SHOW VIEWS IN DATABASE {}", db.sql()),
            Show::RoleGrants(role) => format!("SHOW GRANTS TO ROLE {}", role.sql()),
            Show::FutureGrants(role) => format!("SHOW FUTURE GRANTS TO ROLE {}", role.sql()),
            Show::UserGrants(user) => format!("SHOW GRANTS TO USER {}", user.sql()),
            Show::UserKeys(user) => format!("DESC USER {}", user.sql()),
        }
    }
}

/// Reads the state `needs` asks for. Returns it and the number of statements it took.
pub async fn read_state(
    connection: &Connection,
    needs: &Needs,
    concurrency: usize,
) -> Result<(State, usize), InspectError> {
    let started = Instant::now();
    let statements = AtomicUsize::new(0);
    let mut state = State {
        read_at: Some(jiff::Timestamp::now().to_string()),
        ..State::default()
    };
    let mut first = vec![
        Show::Context,
        Show::Roles,
        Show::Users,
        Show::Warehouses,
        Show::Databases,
    ];
    if needs.integrations {
        first.push(Show::Integrations);
    } else {
        // Not read: a plan that needs them says so instead of assuming there are none.
        state.integrations = None;
    }
    for (show, result) in run_all(connection, first, concurrency, &statements).await? {
        absorb(&mut state, &show, &result)?;
    }

    let mut second = Vec::new();
    for database in state.databases.keys() {
        if needs.databases.wants(database) {
            second.push(Show::Schemas(database.clone()));
            second.push(Show::Tables(database.clone()));
            second.push(Show::Views(database.clone()));
        }
    }
    for role in state.roles.keys() {
        if needs.roles.wants(role) {
            second.push(Show::RoleGrants(role.clone()));
            second.push(Show::FutureGrants(role.clone()));
        }
    }
    for (user, info) in &state.users {
        if needs.users.wants(user) {
            second.push(Show::UserGrants(user.clone()));
            if info.has_rsa_public_key {
                second.push(Show::UserKeys(user.clone()));
            }
        }
    }
    for (show, result) in run_all(connection, second, concurrency, &statements).await? {
        absorb(&mut state, &show, &result)?;
    }
    let count = statements.load(Ordering::SeqCst);
    tracing::info!(
        statements = count,
        roles = state.role_grants.len(),
        users = state.user_roles.len(),
        databases = state.objects.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "read the account's state"
    );
    Ok((state, count))
}

async fn run_all(
    connection: &Connection,
    shows: Vec<Show>,
    concurrency: usize,
    statements: &AtomicUsize,
) -> Result<Vec<(Show, QueryResult)>, InspectError> {
    stream::iter(shows)
        .map(|show| async move {
            let sql = show.sql();
            statements.fetch_add(1, Ordering::SeqCst);
            let result = connection.query_idempotent(&sql).await?;
            if result.len() >= SHOW_ROW_LIMIT && sql.starts_with("SHOW") {
                return Err(InspectError::Truncated { sql });
            }
            Ok((show, result))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await
}

/// A text column, empty as `None`.
fn opt(row: &Row, column: &str) -> Result<Option<String>, ValueError> {
    Ok(row
        .get(column)?
        .filter(|v| !v.is_empty())
        .map(str::to_owned))
}

fn flag(row: &Row, column: &str) -> Result<bool, ValueError> {
    Ok(matches!(
        row.get(column)?.map(str::to_ascii_lowercase).as_deref(),
        Some("true" | "y" | "yes" | "1")
    ))
}

/// A one-part name as SHOW GRANTS prints it: as stored, or double-quoted.
fn single_name(text: &str) -> Name {
    if text.starts_with('"')
        && let Some(parts) = split_qualified(text)
        && parts.len() == 1
    {
        return Name::stored(parts.into_iter().next().unwrap_or_default());
    }
    Name::stored(text)
}

fn absorb(state: &mut State, show: &Show, result: &QueryResult) -> Result<(), InspectError> {
    let sql = show.sql();
    let value = |source| InspectError::Value {
        sql: sql.clone(),
        source,
    };
    for row in result.rows() {
        absorb_row(state, show, &row).map_err(value)?;
    }
    // A database, role or user that was read has an entry even when it holds nothing.
    match show {
        Show::Schemas(db) | Show::Tables(db) | Show::Views(db) => {
            state.objects.entry(db.clone()).or_default();
        }
        Show::RoleGrants(role) | Show::FutureGrants(role) => {
            state.role_grants.entry(role.clone()).or_default();
        }
        Show::UserGrants(user) => {
            state.user_roles.entry(user.clone()).or_default();
        }
        Show::Integrations => {
            state.integrations.get_or_insert_with(BTreeSet::new);
        }
        _ => {}
    }
    Ok(())
}

fn absorb_row(state: &mut State, show: &Show, row: &Row) -> Result<(), ValueError> {
    match show {
        Show::Context => {
            state.current_user = opt(row, "USER_NAME")?.map(Name::stored);
            state.current_role = opt(row, "ROLE_NAME")?.map(Name::stored);
        }
        Show::Roles => {
            state.roles.insert(
                Name::stored(row.text("name")?),
                RoleInfo {
                    owner: opt(row, "owner")?.map(Name::stored),
                },
            );
        }
        Show::Users => {
            state.users.insert(
                Name::stored(row.text("name")?),
                UserInfo {
                    disabled: flag(row, "disabled")?,
                    has_password: flag(row, "has_password")?,
                    default_role: opt(row, "default_role")?,
                    default_warehouse: opt(row, "default_warehouse")?,
                    default_namespace: opt(row, "default_namespace")?,
                    email: opt(row, "email")?,
                    comment: opt(row, "comment")?,
                    display_name: opt(row, "display_name")?,
                    first_name: opt(row, "first_name")?,
                    last_name: opt(row, "last_name")?,
                    user_type: opt(row, "type")?,
                    owner: opt(row, "owner")?.map(Name::stored),
                    has_rsa_public_key: flag(row, "has_rsa_public_key")?,
                    rsa_public_key_fp: None,
                    rsa_public_key_2_fp: None,
                },
            );
        }
        Show::Warehouses => {
            state.warehouses.insert(Name::stored(row.text("name")?));
        }
        Show::Integrations => {
            state
                .integrations
                .get_or_insert_with(BTreeSet::new)
                .insert(Name::stored(row.text("name")?));
        }
        Show::Databases => {
            let kind = opt(row, "kind")?.unwrap_or_default();
            let origin = opt(row, "origin")?;
            state.databases.insert(
                Name::stored(row.text("name")?),
                DatabaseInfo {
                    owner: opt(row, "owner")?.map(Name::stored),
                    imported: kind.eq_ignore_ascii_case("IMPORTED DATABASE") || origin.is_some(),
                },
            );
        }
        Show::Schemas(db) => {
            let schema = Name::stored(row.text("name")?);
            let owner = opt(row, "owner")?.map(Name::stored);
            let objects = state.objects.entry(db.clone()).or_default();
            objects.schemas.entry(schema).or_default().owner = owner;
        }
        Show::Tables(db) | Show::Views(db) => {
            let schema = Name::stored(row.text("schema_name")?);
            let name = Name::stored(row.text("name")?);
            let owner = opt(row, "owner")?.map(Name::stored);
            let objects: &mut SchemaObjects = state
                .objects
                .entry(db.clone())
                .or_default()
                .schemas
                .entry(schema)
                .or_default();
            if matches!(show, Show::Tables(_)) {
                objects.tables.insert(name, owner);
            } else {
                objects.views.insert(name, owner);
            }
        }
        Show::RoleGrants(role) => {
            let privilege = row.text("privilege")?.to_ascii_uppercase();
            let granted_on = row.text("granted_on")?.to_ascii_uppercase();
            let name = row.text("name")?;
            let grants = state.role_grants.entry(role.clone()).or_default();
            if granted_on == "ROLE" {
                if privilege == "USAGE" {
                    grants.member_of.insert(single_name(name));
                }
                return Ok(());
            }
            if let Some(object) = object_of(&granted_on, name) {
                grants.privileges.insert(Grant { privilege, object });
            }
        }
        Show::FutureGrants(role) => {
            let privilege = row.text("privilege")?.to_ascii_uppercase();
            let Some(kind) = FutureKind::from_sql(row.text("grant_on")?) else {
                return Ok(());
            };
            let Some(parts) = split_qualified(row.text("name")?) else {
                return Ok(());
            };
            // `RAW.<SCHEMA>`, `RAW.PUBLIC.<TABLE>`: the container, then the placeholder.
            let container = match parts.as_slice() {
                [db, _] => Container::database(Name::stored(db.as_str())),
                [db, schema, _] => {
                    Container::schema(Name::stored(db.as_str()), Name::stored(schema.as_str()))
                }
                _ => return Ok(()),
            };
            state
                .role_grants
                .entry(role.clone())
                .or_default()
                .future
                .insert(FutureGrant {
                    privilege,
                    kind,
                    container,
                });
        }
        Show::UserKeys(user) => {
            let fingerprint = match row.text("property")? {
                "RSA_PUBLIC_KEY_FP" => Some(false),
                "RSA_PUBLIC_KEY_2_FP" => Some(true),
                _ => None,
            };
            if let (Some(second), Some(info)) = (fingerprint, state.users.get_mut(user)) {
                let value = opt(row, "value")?.filter(|v| v != "null" && !v.is_empty());
                if second {
                    info.rsa_public_key_2_fp = value;
                } else {
                    info.rsa_public_key_fp = value;
                }
            }
        }
        Show::UserGrants(user) => {
            // Since behaviour change 2025_01 the rows are grants: a role is USAGE on ROLE
            // <name>, and privileges granted to the user directly are rows too. roles.yml
            // manages roles only: those are left as they are, and said so. Accounts without
            // the change answer with a `role` column alone.
            let role = match row.get("granted_on") {
                Ok(Some("ROLE")) => row.text("name")?,
                Ok(Some(kind)) => {
                    tracing::warn!(
                        user = %user,
                        privilege = row.get("privilege").ok().flatten().unwrap_or("?"),
                        on = kind,
                        object = row.get("name").ok().flatten().unwrap_or("?"),
                        "a privilege is granted to the user directly; roles.yml manages roles, \
                         so it is left as it is"
                    );
                    return Ok(());
                }
                Ok(None) | Err(_) => row.text("role")?,
            };
            state
                .user_roles
                .entry(user.clone())
                .or_default()
                .insert(single_name(role));
        }
    }
    Ok(())
}

/// The object a `SHOW GRANTS` row names; `None` for kinds this job does not manage.
fn object_of(granted_on: &str, name: &str) -> Option<Object> {
    let parts =
        || split_qualified(name).map(|p| p.into_iter().map(Name::stored).collect::<Vec<_>>());
    Some(match granted_on {
        "ACCOUNT" => Object::Account,
        "DATABASE" => Object::Database {
            database: single_name(name),
        },
        "WAREHOUSE" => Object::Warehouse {
            warehouse: single_name(name),
        },
        "INTEGRATION" => Object::Integration {
            integration: single_name(name),
        },
        "SCHEMA" => match parts()?.as_slice() {
            [database, schema] => Object::Schema {
                database: database.clone(),
                schema: schema.clone(),
            },
            _ => return None,
        },
        "TABLE" | "VIEW" => match parts()?.as_slice() {
            [database, schema, object] if granted_on == "TABLE" => Object::Table {
                database: database.clone(),
                schema: schema.clone(),
                table: object.clone(),
            },
            [database, schema, object] => Object::View {
                database: database.clone(),
                schema: schema.clone(),
                view: object.clone(),
            },
            _ => return None,
        },
        _ => return None,
    })
}

/// Keeps only the parts of a full state that `needs` covers (used to check that an online
/// plan and a plan from a snapshot agree).
pub fn restrict(state: &State, needs: &Needs) -> State {
    let mut out = state.clone();
    out.role_grants.retain(|r, _| needs.roles.wants(r));
    out.user_roles.retain(|u, _| needs.users.wants(u));
    out.objects.retain(|d, _| needs.databases.wants(d));
    if !needs.integrations {
        out.integrations = None;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_names_parse_as_snowflake_prints_them() {
        assert_eq!(
            object_of("TABLE", "RAW.\"my schema\".T"),
            Some(Object::Table {
                database: Name::stored("RAW"),
                schema: Name::stored("my schema"),
                table: Name::stored("T"),
            })
        );
        assert_eq!(
            object_of("DATABASE", "\"my-db\""),
            Some(Object::Database {
                database: Name::stored("my-db")
            })
        );
        assert_eq!(
            object_of("WAREHOUSE", "my-wh"),
            Some(Object::Warehouse {
                warehouse: Name::stored("my-wh")
            })
        );
        assert_eq!(object_of("STAGE", "RAW.PUBLIC.S"), None);
        assert_eq!(object_of("SCHEMA", "RAW"), None);
    }

    #[test]
    fn a_spec_needs_its_roles_users_and_expanded_databases() {
        let spec = crate::spec::parse(
            "version: \"1.0\"\ndatabases:\n  - raw: {shared: no}\n  - an: {shared: no}\n  - share: {shared: yes}\n\
             roles:\n  - r:\n      privileges:\n        databases: {read: [raw, an, share]}\n        schemas: {read: [raw.*, share.*]}\n\
             users:\n  - u: {can_login: yes}\n",
        )
        .unwrap();
        let needs = Needs::for_spec(&spec);
        assert_eq!(needs.roles, Scope::Only([Name::stored("R")].into()));
        assert_eq!(needs.users, Scope::Only([Name::stored("U")].into()));
        assert_eq!(needs.databases, Scope::Only([Name::stored("RAW")].into()));
        assert!(!needs.integrations);
    }
}
