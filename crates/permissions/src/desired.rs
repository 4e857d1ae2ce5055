//! The desired state: what the spec means in this account. Wildcards (`db.*`, `db.s.*`,
//! `db.*.*`) are expanded against the objects that exist, and each `read` or `write` becomes
//! the privileges Permifrost gives it, so that planning is a plain set difference.
//!
//! Pure: it reads the spec and the current state, and does no I/O.

use std::collections::{BTreeMap, BTreeSet};

use crate::ident::Name;
use crate::model::{Container, FutureGrant, FutureKind, Grant, Object, State};
use crate::spec::{self, Loc, Part, Problem, Spec, TablePath};

/// Permifrost's meaning of `read` and `write`, per kind of object.
pub const DATABASE_READ: &[&str] = &["USAGE"];
pub const DATABASE_WRITE: &[&str] = &["USAGE", "MONITOR", "CREATE SCHEMA"];
pub const SCHEMA_READ: &[&str] = &["USAGE"];
pub const SCHEMA_WRITE: &[&str] = &[
    "USAGE",
    "MONITOR",
    "CREATE TABLE",
    "CREATE VIEW",
    "CREATE STAGE",
    "CREATE FILE FORMAT",
    "CREATE SEQUENCE",
    "CREATE FUNCTION",
    "CREATE PIPE",
];
pub const TABLE_READ: &[&str] = &["SELECT"];
pub const TABLE_WRITE: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "TRUNCATE",
    "REFERENCES",
];
/// Views only have `SELECT`, for read and write alike.
pub const VIEW_PRIVILEGES: &[&str] = &["SELECT"];
pub const WAREHOUSE_PRIVILEGES: &[&str] = &["USAGE", "OPERATE", "MONITOR"];
pub const INTEGRATION_PRIVILEGES: &[&str] = &["USAGE"];

/// Every schema has one; it is never granted on.
pub const INFORMATION_SCHEMA: &str = "INFORMATION_SCHEMA";

/// Snowflake's system roles: memberships between two of them are Snowflake's own hierarchy,
/// which neither Permifrost nor this job touches.
pub const SYSTEM_ROLES: &[&str] = &[
    "ACCOUNTADMIN",
    "SECURITYADMIN",
    "SYSADMIN",
    "USERADMIN",
    "PUBLIC",
];

/// The privileges this job manages (grants and, when the spec no longer asks for them,
/// revokes) on an object of this kind. Anything else a role holds is left alone.
pub fn managed_privileges(object: &Object) -> &'static [&'static str] {
    match object {
        Object::Database { .. } => DATABASE_WRITE,
        Object::Schema { .. } => SCHEMA_WRITE,
        Object::Table { .. } => TABLE_WRITE,
        Object::View { .. } => VIEW_PRIVILEGES,
        Object::Warehouse { .. } => WAREHOUSE_PRIVILEGES,
        Object::Integration { .. } => INTEGRATION_PRIVILEGES,
        Object::Account | Object::Role { .. } => &[],
    }
}

pub fn managed_future_privileges(kind: FutureKind) -> &'static [&'static str] {
    match kind {
        FutureKind::Schema => SCHEMA_WRITE,
        FutureKind::Table => TABLE_WRITE,
        FutureKind::View => VIEW_PRIVILEGES,
    }
}

/// What one spec role should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredRole {
    pub at: Option<Loc>,
    pub grants: BTreeSet<Grant>,
    pub future: BTreeSet<FutureGrant>,
    /// Every schema of a database (`db.*`), or every table or view of a schema (`db.s.*`):
    /// granted with one `ON ALL` statement rather than one per object.
    pub bulk: BTreeMap<(Container, FutureKind), BTreeSet<String>>,
    pub member_of: BTreeSet<Name>,
    pub owns: BTreeSet<Object>,
    pub owner: Option<Name>,
}

/// What one spec user should be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredUser {
    pub at: Option<Loc>,
    pub can_login: bool,
    pub member_of: BTreeSet<Name>,
    pub has_password: Option<bool>,
    pub email: Option<String>,
    pub comment: Option<String>,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub middle_name: Option<String>,
    pub last_name: Option<String>,
    pub default_warehouse: Option<Name>,
    pub default_namespace: Option<String>,
    pub default_role: Option<Name>,
    pub user_type: Option<String>,
    pub rsa_public_key: Option<snowflake_conn::PublicKey>,
    pub rsa_public_key_2: Option<snowflake_conn::PublicKey>,
}

/// The whole desired state and the scope it manages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub roles: BTreeMap<Name, DesiredRole>,
    pub users: BTreeMap<Name, DesiredUser>,
    /// Databases the spec defines, with their `shared` flag: grants inside other databases
    /// are never revoked.
    pub databases: BTreeMap<Name, bool>,
    pub warehouses: BTreeSet<Name>,
    pub integrations: BTreeSet<Name>,
}

impl Desired {
    pub fn is_shared(&self, database: &Name) -> bool {
        self.databases.get(database).copied().unwrap_or(false)
    }
}

/// Expands `spec` against `state`. Problems are references to objects the account does not
/// have, and objects whose details `state` does not hold.
pub fn desired(spec: &Spec, state: &State) -> (Desired, Vec<Problem>) {
    let mut out = Desired {
        databases: spec
            .databases
            .iter()
            .map(|d| (d.name.clone(), d.spec.shared))
            .collect(),
        warehouses: spec.warehouses.iter().map(|w| w.name.clone()).collect(),
        integrations: spec.integrations.iter().map(|i| i.name.clone()).collect(),
        ..Desired::default()
    };
    let mut x = Expander {
        state,
        shared: &out.databases,
        problems: Vec::new(),
        reported: BTreeSet::new(),
    };
    for database in &spec.databases {
        let imported = state
            .databases
            .get(&database.name)
            .is_some_and(|d| d.imported);
        if imported && !database.spec.shared {
            // Only IMPORTED PRIVILEGES can be granted on it: any other grant fails mid-apply.
            x.problem(
                database.at,
                format!(
                    "database {} is shared with this account (created from a share), but the \
                     spec says `shared: no`: make it `shared: yes`",
                    database.name
                ),
            );
        }
    }
    let mut roles = BTreeMap::new();
    for role in &spec.roles {
        roles.insert(role.name.clone(), x.role(spec, role));
    }
    let mut users = BTreeMap::new();
    for user in &spec.users {
        users.insert(user.name.clone(), x.user(user));
    }
    let problems = x.problems;
    out.roles = roles;
    out.users = users;
    (out, problems)
}

struct Expander<'a> {
    state: &'a State,
    shared: &'a BTreeMap<Name, bool>,
    problems: Vec<Problem>,
    /// One message per missing object, however many roles refer to it.
    reported: BTreeSet<String>,
}

impl Expander<'_> {
    fn problem(&mut self, at: Loc, message: String) {
        if self.reported.insert(message.clone()) {
            self.problems.push(Problem {
                at: Some(at),
                message,
            });
        }
    }

    fn is_shared(&self, database: &Name) -> bool {
        self.shared.get(database).copied().unwrap_or(false)
    }

    fn database_exists(&mut self, database: &Name, at: Loc) -> bool {
        if self.state.databases.contains_key(database) {
            true
        } else {
            self.problem(
                at,
                format!(
                    "database {database} does not exist in the account: create it first \
                     (this job never creates databases or warehouses)"
                ),
            );
            false
        }
    }

    /// The schemas of `database` matching `part`, INFORMATION_SCHEMA left out.
    fn schemas(&mut self, database: &Name, part: &Part, at: Loc) -> Vec<Name> {
        if !self.database_exists(database, at) {
            return Vec::new();
        }
        let Some(objects) = self.state.database_objects(database) else {
            self.problem(
                at,
                format!(
                    "the schemas of database {database} were not read (the state file was \
                     taken without them: take a new snapshot)"
                ),
            );
            return Vec::new();
        };
        if let Part::Named(schema) = part {
            if !objects.schemas.contains_key(schema) {
                self.problem(
                    at,
                    format!(
                        "schema {database}.{schema} does not exist in the account: create it first"
                    ),
                );
                return Vec::new();
            }
            return vec![schema.clone()];
        }
        objects
            .schemas
            .keys()
            .filter(|s| s.as_str() != INFORMATION_SCHEMA && part.matches(s))
            .cloned()
            .collect()
    }

    fn role(&mut self, spec: &Spec, role: &spec::Entity<spec::RoleSpec>) -> DesiredRole {
        let r = &role.spec;
        let mut d = DesiredRole {
            at: Some(role.at),
            owner: r.owner.as_ref().map(|o| o.value.clone()),
            member_of: spec::parents(spec, role)
                .into_iter()
                .map(|p| p.value)
                .collect(),
            ..DesiredRole::default()
        };
        let grant = |d: &mut DesiredRole, privileges: &[&str], object: &Object| {
            for p in privileges {
                d.grants.insert(Grant {
                    privilege: (*p).to_owned(),
                    object: object.clone(),
                });
            }
        };
        let future =
            |d: &mut DesiredRole, privileges: &[&str], kind: FutureKind, container: &Container| {
                for p in privileges {
                    d.future.insert(FutureGrant {
                        privilege: (*p).to_owned(),
                        kind,
                        container: container.clone(),
                    });
                }
            };

        for w in &r.warehouses {
            if self.state.warehouses.contains(&w.value) {
                grant(
                    &mut d,
                    WAREHOUSE_PRIVILEGES,
                    &Object::Warehouse {
                        warehouse: w.value.clone(),
                    },
                );
            } else {
                self.problem(
                    w.at,
                    format!(
                        "warehouse {} does not exist in the account: create it first (this job \
                         never creates databases or warehouses)",
                        w.value
                    ),
                );
            }
        }
        for i in &r.integrations {
            let exists = self
                .state
                .integrations
                .as_ref()
                .is_some_and(|all| all.contains(&i.value));
            if exists {
                grant(
                    &mut d,
                    INTEGRATION_PRIVILEGES,
                    &Object::Integration {
                        integration: i.value.clone(),
                    },
                );
            } else if self.state.integrations.is_none() {
                self.problem(
                    i.at,
                    "the account's integrations were not read: take a new snapshot".into(),
                );
            } else {
                self.problem(
                    i.at,
                    format!(
                        "integration {} does not exist in the account: create it first",
                        i.value
                    ),
                );
            }
        }

        let p = &r.privileges;
        for (paths, privileges) in [
            (&p.databases.read, DATABASE_READ),
            (&p.databases.write, DATABASE_WRITE),
        ] {
            for db in paths {
                if self.database_exists(&db.value, db.at) {
                    // A shared database only takes IMPORTED PRIVILEGES, which SHOW GRANTS lists
                    // as USAGE: read and write both mean that.
                    let privileges = if self.is_shared(&db.value) {
                        DATABASE_READ
                    } else {
                        privileges
                    };
                    grant(
                        &mut d,
                        privileges,
                        &Object::Database {
                            database: db.value.clone(),
                        },
                    );
                }
            }
        }
        for (paths, privileges) in [
            (&p.schemas.read, SCHEMA_READ),
            (&p.schemas.write, SCHEMA_WRITE),
        ] {
            for path in paths {
                let s = &path.value;
                if self.is_shared(&s.database) {
                    continue;
                }
                for schema in self.schemas(&s.database, &s.schema, path.at) {
                    grant(
                        &mut d,
                        privileges,
                        &Object::Schema {
                            database: s.database.clone(),
                            schema,
                        },
                    );
                }
                if s.schema == Part::All && self.state.databases.contains_key(&s.database) {
                    let container = Container::database(s.database.clone());
                    d.bulk
                        .entry((container.clone(), FutureKind::Schema))
                        .or_default()
                        .extend(privileges.iter().map(|p| (*p).to_owned()));
                    future(&mut d, privileges, FutureKind::Schema, &container);
                }
            }
        }
        for (paths, table_privileges) in
            [(&p.tables.read, TABLE_READ), (&p.tables.write, TABLE_WRITE)]
        {
            for path in paths {
                if !self.is_shared(&path.value.database) {
                    self.tables(&mut d, &path.value, path.at, table_privileges);
                }
            }
        }

        let o = &r.owns;
        for db in &o.databases {
            if self.database_exists(&db.value, db.at) {
                d.owns.insert(Object::Database {
                    database: db.value.clone(),
                });
            }
        }
        for path in &o.schemas {
            for schema in self.schemas(&path.value.database, &path.value.schema, path.at) {
                d.owns.insert(Object::Schema {
                    database: path.value.database.clone(),
                    schema,
                });
            }
        }
        for path in &o.tables {
            let t = &path.value;
            for schema in self.schemas(&t.database, &t.schema, path.at) {
                let (tables, views) = self.objects_in(&t.database, &schema, &t.table, path.at);
                for table in tables {
                    d.owns.insert(Object::Table {
                        database: t.database.clone(),
                        schema: schema.clone(),
                        table,
                    });
                }
                for view in views {
                    d.owns.insert(Object::View {
                        database: t.database.clone(),
                        schema: schema.clone(),
                        view,
                    });
                }
            }
        }
        d
    }

    /// The tables and views of a schema that `part` names; a named one must exist.
    fn objects_in(
        &mut self,
        database: &Name,
        schema: &Name,
        part: &Part,
        at: Loc,
    ) -> (Vec<Name>, Vec<Name>) {
        let Some(objects) = self
            .state
            .database_objects(database)
            .and_then(|o| o.schemas.get(schema))
        else {
            return (Vec::new(), Vec::new());
        };
        match part {
            Part::Named(name) => {
                if objects.tables.contains_key(name) {
                    (vec![name.clone()], Vec::new())
                } else if objects.views.contains_key(name) {
                    (Vec::new(), vec![name.clone()])
                } else {
                    self.problem(
                        at,
                        format!(
                            "table or view {database}.{schema}.{name} does not exist in the account: create it first"
                        ),
                    );
                    (Vec::new(), Vec::new())
                }
            }
            _ => (
                objects
                    .tables
                    .keys()
                    .filter(|t| part.matches(t))
                    .cloned()
                    .collect(),
                objects
                    .views
                    .keys()
                    .filter(|v| part.matches(v))
                    .cloned()
                    .collect(),
            ),
        }
    }

    fn tables(
        &mut self,
        d: &mut DesiredRole,
        path: &TablePath,
        at: Loc,
        table_privileges: &[&str],
    ) {
        let database = &path.database;
        for schema in self.schemas(database, &path.schema, at) {
            let (tables, views) = self.objects_in(database, &schema, &path.table, at);
            for table in tables {
                for p in table_privileges {
                    d.grants.insert(Grant {
                        privilege: (*p).to_owned(),
                        object: Object::Table {
                            database: database.clone(),
                            schema: schema.clone(),
                            table: table.clone(),
                        },
                    });
                }
            }
            for view in views {
                for p in VIEW_PRIVILEGES {
                    d.grants.insert(Grant {
                        privilege: (*p).to_owned(),
                        object: Object::View {
                            database: database.clone(),
                            schema: schema.clone(),
                            view: view.clone(),
                        },
                    });
                }
            }
            if path.table == Part::All {
                let container = Container::schema(database.clone(), schema.clone());
                for (kind, privileges) in [
                    (FutureKind::Table, table_privileges),
                    (FutureKind::View, VIEW_PRIVILEGES),
                ] {
                    d.bulk
                        .entry((container.clone(), kind))
                        .or_default()
                        .extend(privileges.iter().map(|p| (*p).to_owned()));
                    for p in privileges {
                        d.future.insert(FutureGrant {
                            privilege: (*p).to_owned(),
                            kind,
                            container: container.clone(),
                        });
                    }
                }
            }
        }
        if path.schema == Part::All
            && path.table == Part::All
            && self.state.databases.contains_key(database)
        {
            let container = Container::database(database.clone());
            for (kind, privileges) in [
                (FutureKind::Table, table_privileges),
                (FutureKind::View, VIEW_PRIVILEGES),
            ] {
                for p in privileges {
                    d.future.insert(FutureGrant {
                        privilege: (*p).to_owned(),
                        kind,
                        container: container.clone(),
                    });
                }
            }
        }
    }

    fn user(&mut self, user: &spec::Entity<spec::UserSpec>) -> DesiredUser {
        let u = &user.spec;
        if let Some(w) = &u.default_warehouse
            && !self.state.warehouses.contains(&w.value)
        {
            self.problem(
                w.at,
                format!(
                    "warehouse {} does not exist in the account: create it first (this job never \
                     creates databases or warehouses)",
                    w.value
                ),
            );
        }
        DesiredUser {
            at: Some(user.at),
            can_login: u.can_login,
            member_of: u.member_of.iter().map(|r| r.value.clone()).collect(),
            has_password: u.has_password,
            email: u.email.clone(),
            comment: u.comment.clone(),
            display_name: u.display_name.clone(),
            first_name: u.first_name.clone(),
            middle_name: u.middle_name.clone(),
            last_name: u.last_name.clone(),
            default_warehouse: u.default_warehouse.as_ref().map(|w| w.value.clone()),
            default_namespace: u.default_namespace.clone(),
            default_role: u.default_role.as_ref().map(|r| r.value.clone()),
            user_type: u.user_type.clone(),
            rsa_public_key: u.rsa_public_key.clone(),
            rsa_public_key_2: u.rsa_public_key_2.clone(),
        }
    }
}
