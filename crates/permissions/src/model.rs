//! The account's current state as this job sees it: objects, grants, future grants, role and
//! user memberships. One model serves both sources, a live read of the account and a snapshot
//! file, so that `plan --state FILE` plans exactly as it would online.
//!
//! The state also says what was read (its coverage): an online plan reads only what the spec
//! needs, a snapshot reads everything, and planning refuses to guess about a role, user or
//! database whose details were not read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ident::Name;

/// Tells a snapshot file from any other JSON.
pub const SNAPSHOT_FORMAT: &str = "data-jobs/permissions-state";
pub const SNAPSHOT_VERSION: u32 = 1;

/// An object a privilege is granted on, as `SHOW GRANTS` names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "on", rename_all = "snake_case")]
pub enum Object {
    Account,
    Database {
        database: Name,
    },
    Schema {
        database: Name,
        schema: Name,
    },
    Table {
        database: Name,
        schema: Name,
        table: Name,
    },
    View {
        database: Name,
        schema: Name,
        view: Name,
    },
    Warehouse {
        warehouse: Name,
    },
    Integration {
        integration: Name,
    },
    Role {
        role: Name,
    },
}

impl Object {
    /// The keyword SQL uses for the object's kind (`GRANT ... ON <kind> <name>`).
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Account => "ACCOUNT",
            Object::Database { .. } => "DATABASE",
            Object::Schema { .. } => "SCHEMA",
            Object::Table { .. } => "TABLE",
            Object::View { .. } => "VIEW",
            Object::Warehouse { .. } => "WAREHOUSE",
            Object::Integration { .. } => "INTEGRATION",
            Object::Role { .. } => "ROLE",
        }
    }

    /// The object's name as SQL writes it (each part quoted as needed).
    pub fn sql_name(&self) -> String {
        match self {
            Object::Account => String::new(),
            Object::Database { database } => database.sql(),
            Object::Schema { database, schema } => format!("{}.{}", database.sql(), schema.sql()),
            Object::Table {
                database,
                schema,
                table: name,
            }
            | Object::View {
                database,
                schema,
                view: name,
            } => format!("{}.{}.{}", database.sql(), schema.sql(), name.sql()),
            Object::Warehouse { warehouse } => warehouse.sql(),
            Object::Integration { integration } => integration.sql(),
            Object::Role { role } => role.sql(),
        }
    }

    /// The database the object lives in, if any.
    pub fn database(&self) -> Option<&Name> {
        match self {
            Object::Database { database }
            | Object::Schema { database, .. }
            | Object::Table { database, .. }
            | Object::View { database, .. } => Some(database),
            _ => None,
        }
    }
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::Account => f.write_str("account"),
            other => write!(
                f,
                "{} {}",
                other.kind().to_ascii_lowercase(),
                other.sql_name()
            ),
        }
    }
}

/// One privilege held by a role on one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Grant {
    /// Upper case, as `SHOW GRANTS` prints it: `USAGE`, `CREATE SCHEMA`, `SELECT`.
    pub privilege: String,
    #[serde(flatten)]
    pub object: Object,
}

/// The kinds of object a future grant can cover that this job manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FutureKind {
    Schema,
    Table,
    View,
}

impl FutureKind {
    pub fn plural_sql(self) -> &'static str {
        match self {
            FutureKind::Schema => "SCHEMAS",
            FutureKind::Table => "TABLES",
            FutureKind::View => "VIEWS",
        }
    }

    pub fn from_sql(kind: &str) -> Option<FutureKind> {
        match kind.to_ascii_uppercase().as_str() {
            "SCHEMA" => Some(FutureKind::Schema),
            "TABLE" => Some(FutureKind::Table),
            "VIEW" => Some(FutureKind::View),
            _ => None,
        }
    }
}

/// Where a future grant applies: every new object of its kind in a database or in a schema.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Container {
    pub database: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Name>,
}

impl Container {
    pub fn database(database: Name) -> Container {
        Container {
            database,
            schema: None,
        }
    }

    pub fn schema(database: Name, schema: Name) -> Container {
        Container {
            database,
            schema: Some(schema),
        }
    }

    /// `DATABASE RAW` or `SCHEMA RAW.PUBLIC`, as `... IN <container>` writes it.
    pub fn sql(&self) -> String {
        match &self.schema {
            None => format!("DATABASE {}", self.database.sql()),
            Some(schema) => format!("SCHEMA {}.{}", self.database.sql(), schema.sql()),
        }
    }
}

impl fmt::Display for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            None => write!(f, "database {}", self.database.sql()),
            Some(schema) => write!(f, "schema {}.{}", self.database.sql(), schema.sql()),
        }
    }
}

/// A privilege granted on every future object of a kind in a container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FutureGrant {
    pub privilege: String,
    pub kind: FutureKind,
    #[serde(rename = "in")]
    pub container: Container,
}

/// What was read about one role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleGrants {
    /// Privileges on objects (role memberships are in `member_of`, not here).
    pub privileges: BTreeSet<Grant>,
    pub future: BTreeSet<FutureGrant>,
    /// Roles granted to this role (it inherits their privileges).
    pub member_of: BTreeSet<Name>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleInfo {
    pub owner: Option<Name>,
}

/// A user's properties, as `SHOW USERS` prints them (empty values as `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub disabled: bool,
    pub has_password: bool,
    pub default_role: Option<String>,
    pub default_warehouse: Option<String>,
    pub default_namespace: Option<String>,
    pub email: Option<String>,
    pub comment: Option<String>,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[serde(rename = "type")]
    pub user_type: Option<String>,
    pub owner: Option<Name>,
    /// From SHOW USERS; the fingerprints come from DESC USER, read only for users that have a
    /// key and whose spec names one (`None`: not read, or no such key).
    #[serde(default)]
    pub has_rsa_public_key: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rsa_public_key_fp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rsa_public_key_2_fp: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseInfo {
    pub owner: Option<Name>,
    /// Created from a share: only `IMPORTED PRIVILEGES` can be granted on it.
    #[serde(default)]
    pub imported: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaObjects {
    pub owner: Option<Name>,
    pub tables: BTreeMap<Name, Option<Name>>,
    pub views: BTreeMap<Name, Option<Name>>,
}

/// The schemas, tables and views of one database, each with its owner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseObjects {
    pub schemas: BTreeMap<Name, SchemaObjects>,
}

/// Everything planning needs to know about the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub format: String,
    pub version: u32,
    /// When it was read (RFC 3339), for people reading a snapshot.
    #[serde(default)]
    pub read_at: Option<String>,
    #[serde(default)]
    pub current_user: Option<Name>,
    #[serde(default)]
    pub current_role: Option<Name>,
    pub roles: BTreeMap<Name, RoleInfo>,
    pub users: BTreeMap<Name, UserInfo>,
    pub warehouses: BTreeSet<Name>,
    #[serde(default)]
    pub integrations: Option<BTreeSet<Name>>,
    pub databases: BTreeMap<Name, DatabaseInfo>,
    /// Objects inside the databases that were read (coverage: its keys).
    pub objects: BTreeMap<Name, DatabaseObjects>,
    /// Grants of the roles that were read (coverage: its keys).
    pub role_grants: BTreeMap<Name, RoleGrants>,
    /// Roles granted to the users that were read (coverage: its keys).
    pub user_roles: BTreeMap<Name, BTreeSet<Name>>,
}

impl Default for State {
    fn default() -> Self {
        State {
            format: SNAPSHOT_FORMAT.to_owned(),
            version: SNAPSHOT_VERSION,
            read_at: None,
            current_user: None,
            current_role: None,
            roles: BTreeMap::new(),
            users: BTreeMap::new(),
            warehouses: BTreeSet::new(),
            integrations: None,
            databases: BTreeMap::new(),
            objects: BTreeMap::new(),
            role_grants: BTreeMap::new(),
            user_roles: BTreeMap::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not valid snapshot JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not a permissions snapshot (format is {found:?}, expected {SNAPSHOT_FORMAT:?})")]
    Format { found: String },
    #[error(
        "snapshot version {found} is not supported (this build reads version {SNAPSHOT_VERSION})"
    )]
    Version { found: u32 },
}

impl State {
    pub fn from_json(text: &str) -> Result<State, SnapshotError> {
        let state: State = serde_json::from_str(text)?;
        if state.format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::Format {
                found: state.format,
            });
        }
        if state.version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version {
                found: state.version,
            });
        }
        Ok(state)
    }

    pub fn to_json(&self) -> String {
        // A State holds only strings, maps and sets: serialising it cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The schemas, tables and views of `database`, if they were read.
    pub fn database_objects(&self, database: &Name) -> Option<&DatabaseObjects> {
        self.objects.get(database)
    }

    /// The current owner of an object, when known.
    pub fn owner_of(&self, object: &Object) -> Option<&Name> {
        match object {
            Object::Database { database } => self.databases.get(database)?.owner.as_ref(),
            Object::Schema { database, schema } => self
                .objects
                .get(database)?
                .schemas
                .get(schema)?
                .owner
                .as_ref(),
            Object::Table {
                database,
                schema,
                table,
            } => self
                .objects
                .get(database)?
                .schemas
                .get(schema)?
                .tables
                .get(table)?
                .as_ref(),
            Object::View {
                database,
                schema,
                view,
            } => self
                .objects
                .get(database)?
                .schemas
                .get(schema)?
                .views
                .get(view)?
                .as_ref(),
            Object::Role { role } => self.roles.get(role)?.owner.as_ref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::stored(s)
    }

    #[test]
    fn snapshot_round_trips_through_json() {
        let mut state = State::default();
        state.roles.insert(
            n("LOADER"),
            RoleInfo {
                owner: Some(n("SECURITYADMIN")),
            },
        );
        state.databases.insert(n("RAW"), DatabaseInfo::default());
        let mut grants = RoleGrants::default();
        grants.privileges.insert(Grant {
            privilege: "SELECT".into(),
            object: Object::Table {
                database: n("RAW"),
                schema: n("my schema"),
                table: n("T"),
            },
        });
        grants.future.insert(FutureGrant {
            privilege: "SELECT".into(),
            kind: FutureKind::Table,
            container: Container::schema(n("RAW"), n("PUBLIC")),
        });
        grants.member_of.insert(n("REPORTING"));
        state.role_grants.insert(n("LOADER"), grants);
        let json = state.to_json();
        assert!(json.contains("\"on\": \"table\""), "{json}");
        assert_eq!(State::from_json(&json).unwrap(), state);
    }

    #[test]
    fn foreign_json_is_refused() {
        let err = State::from_json(r#"{"format":"x","version":1,"roles":{},"users":{},"warehouses":[],"databases":{},"objects":{},"role_grants":{},"user_roles":{}}"#).unwrap_err();
        assert!(
            err.to_string().contains("not a permissions snapshot"),
            "{err}"
        );
        let err = State::from_json("[1]").unwrap_err();
        assert!(err.to_string().contains("not valid snapshot JSON"), "{err}");
    }

    #[test]
    fn objects_render_as_sql() {
        let table = Object::Table {
            database: n("RAW"),
            schema: n("my-schema"),
            table: n("T"),
        };
        assert_eq!(table.sql_name(), "RAW.\"my-schema\".T");
        assert_eq!(table.to_string(), "table RAW.\"my-schema\".T");
        assert_eq!(
            Container::schema(n("RAW"), n("PUBLIC")).to_string(),
            "schema RAW.PUBLIC"
        );
    }
}
