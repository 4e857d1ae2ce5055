//! `plan(desired, current)`: the changes that make the account match the spec, as statements
//! in a safe order, checked against the guard rails. Pure: no I/O, so every rule here is tested
//! from tables of states.
//!
//! Safe order: create before grant, every grant before any revoke (a revoke can then never
//! take away access that a later statement of the same run needs), revokes of privileges before
//! revokes of memberships.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::desired::{self, Desired, DesiredRole, DesiredUser, SYSTEM_ROLES};
use crate::ident::{Name, quote_literal};
use crate::model::{
    Container, FutureGrant, FutureKind, Grant, Object, RoleGrants, State, UserInfo,
};
use crate::spec::{Problem, Spec, is_builtin_role};

/// The guard rails and what the plan may assume about who runs it.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Roles no change may touch: not granted to, not revoked from, not granted or revoked
    /// as a membership, no ownership moved to or from them.
    pub protected: BTreeSet<Name>,
    /// A plan revoking more grants than this is refused unless `force`.
    pub max_revokes: usize,
    pub force: bool,
    /// The user the job logs in as: never disabled, never stripped of its password while it
    /// logs in with one.
    pub bot_user: Option<Name>,
    /// The job logs in with a password (not a key or a token).
    pub bot_uses_password: bool,
}

/// Who receives a role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "type", content = "name", rename_all = "snake_case")]
pub enum Grantee {
    Role(Name),
    User(Name),
}

impl Grantee {
    fn sql(&self) -> String {
        match self {
            Grantee::Role(r) => format!("ROLE {}", r.sql()),
            Grantee::User(u) => format!("USER {}", u.sql()),
        }
    }
}

/// What a privilege statement is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "target", rename_all = "snake_case")]
pub enum Target {
    /// One object.
    Object { object: Object },
    /// Every existing table (or view) of a schema.
    All {
        kind: FutureKind,
        container: Container,
    },
    /// Every table, view or schema created later in a database or schema.
    Future {
        kind: FutureKind,
        container: Container,
    },
}

impl Target {
    fn sql(&self) -> String {
        match self {
            Target::Object { object } => format!("{} {}", object.kind(), object.sql_name()),
            Target::All { kind, container } => {
                format!("ALL {} IN {}", kind.plural_sql(), container.sql())
            }
            Target::Future { kind, container } => {
                format!("FUTURE {} IN {}", kind.plural_sql(), container.sql())
            }
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Object { object } => write!(f, "{object}"),
            Target::All { kind, container } => {
                write!(
                    f,
                    "all {} in {container}",
                    kind.plural_sql().to_ascii_lowercase()
                )
            }
            Target::Future { kind, container } => {
                write!(
                    f,
                    "future {} in {container}",
                    kind.plural_sql().to_ascii_lowercase()
                )
            }
        }
    }
}

/// A user property value, written as Snowflake's `ALTER USER ... SET` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Value {
    Identifier(Name),
    Text(String),
    Bool(bool),
    Keyword(String),
    /// A generated password, filled in only when the statement runs.
    GeneratedPassword,
}

/// Shown instead of a password in plans and dry runs.
pub const PASSWORD_PLACEHOLDER: &str = "<generated when applied>";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    pub property: &'static str,
    pub value: Value,
}

impl Setting {
    fn sql(&self, password: Option<&str>) -> String {
        let value = match &self.value {
            Value::Identifier(name) => name.sql(),
            Value::Text(text) => quote_literal(text),
            Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
            Value::Keyword(word) => word.clone(),
            Value::GeneratedPassword => quote_literal(password.unwrap_or(PASSWORD_PLACEHOLDER)),
        };
        format!("{} = {value}", self.property)
    }

    fn describe(&self) -> String {
        match &self.value {
            Value::GeneratedPassword => "a generated password".to_owned(),
            Value::Identifier(name) => format!("{} {name}", self.property.to_ascii_lowercase()),
            Value::Text(text) => format!("{} {text:?}", self.property.to_ascii_lowercase()),
            Value::Bool(b) => format!("{} {b}", self.property.to_ascii_lowercase()),
            Value::Keyword(w) => format!("{} {w}", self.property.to_ascii_lowercase()),
        }
    }
}

/// One statement of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Change {
    CreateRole {
        role: Name,
    },
    CreateUser {
        user: Name,
        settings: Vec<Setting>,
    },
    GrantRole {
        role: Name,
        to: Grantee,
    },
    Grant {
        role: Name,
        privileges: Vec<String>,
        #[serde(flatten)]
        target: Target,
        /// How many privilege-on-object grants this adds (an `ALL` statement may cover many).
        grants: usize,
    },
    TransferOwnership {
        object: Object,
        to: Name,
        from: Option<Name>,
    },
    AlterUser {
        user: Name,
        settings: Vec<Setting>,
    },
    UnsetPassword {
        user: Name,
    },
    /// `TYPE = SERVICE` for a user that had a password: after the password is unset.
    ConvertToService {
        user: Name,
    },
    Revoke {
        role: Name,
        privileges: Vec<String>,
        #[serde(flatten)]
        target: Target,
        /// How many privilege-on-object grants this removes.
        grants: usize,
    },
    RevokeRole {
        role: Name,
        from: Grantee,
    },
}

impl Change {
    /// The statement; `password` fills a generated password (the plan shows a placeholder).
    pub fn sql_with(&self, password: Option<&str>) -> String {
        match self {
            Change::CreateRole { role } => format!("CREATE ROLE {}", role.sql()),
            Change::CreateUser { user, settings } => {
                let mut sql = format!("CREATE USER {}", user.sql());
                for s in settings {
                    sql.push(' ');
                    sql.push_str(&s.sql(password));
                }
                sql
            }
            Change::GrantRole { role, to } => format!("GRANT ROLE {} TO {}", role.sql(), to.sql()),
            Change::Grant {
                role,
                privileges,
                target,
                ..
            } => format!(
                "GRANT {} ON {} TO ROLE {}",
                privileges.join(", "),
                target.sql(),
                role.sql()
            ),
            Change::TransferOwnership { object, to, .. } => format!(
                "GRANT OWNERSHIP ON {} {} TO ROLE {} COPY CURRENT GRANTS",
                object.kind(),
                object.sql_name(),
                to.sql()
            ),
            Change::AlterUser { user, settings } => {
                let set: Vec<String> = settings.iter().map(|s| s.sql(password)).collect();
                format!("ALTER USER {} SET {}", user.sql(), set.join(" "))
            }
            Change::UnsetPassword { user } => format!("ALTER USER {} UNSET PASSWORD", user.sql()),
            Change::ConvertToService { user } => {
                format!("ALTER USER {} SET TYPE = SERVICE", user.sql())
            }
            Change::Revoke {
                role,
                privileges,
                target,
                ..
            } => format!(
                "REVOKE {} ON {} FROM ROLE {}",
                privileges.join(", "),
                target.sql(),
                role.sql()
            ),
            Change::RevokeRole { role, from } => {
                format!("REVOKE ROLE {} FROM {}", role.sql(), from.sql())
            }
        }
    }

    /// The statement as a plan shows it (passwords as a placeholder).
    pub fn sql(&self) -> String {
        self.sql_with(None)
    }

    /// Execution order: lower first. See the module comment for why.
    pub fn phase(&self) -> u8 {
        match self {
            Change::CreateRole { .. } => 0,
            Change::CreateUser { .. } => 1,
            Change::GrantRole {
                to: Grantee::Role(_),
                ..
            } => 2,
            Change::Grant { .. } => 3,
            Change::TransferOwnership { .. } => 4,
            Change::GrantRole {
                to: Grantee::User(_),
                ..
            } => 5,
            Change::AlterUser { .. } => 6,
            Change::Revoke { .. } => 7,
            Change::UnsetPassword { .. } => 8,
            Change::ConvertToService { .. } => 9,
            Change::RevokeRole {
                from: Grantee::Role(_),
                ..
            } => 10,
            Change::RevokeRole {
                from: Grantee::User(_),
                ..
            } => 11,
        }
    }

    /// Grants this change takes away (what the revoke threshold counts).
    pub fn revoked_grants(&self) -> usize {
        match self {
            Change::Revoke { grants, .. } => *grants,
            Change::RevokeRole { .. } | Change::UnsetPassword { .. } => 1,
            _ => 0,
        }
    }

    pub fn is_revoke(&self) -> bool {
        self.revoked_grants() > 0
    }

    /// Who the change is about, for grouping a plan by role and user.
    pub fn subject(&self) -> Subject {
        match self {
            Change::CreateRole { role }
            | Change::Grant { role, .. }
            | Change::Revoke { role, .. }
            | Change::TransferOwnership { to: role, .. } => Subject::Role(role.clone()),
            Change::GrantRole { to, .. } => match to {
                Grantee::Role(r) => Subject::Role(r.clone()),
                Grantee::User(u) => Subject::User(u.clone()),
            },
            Change::RevokeRole { from, .. } => match from {
                Grantee::Role(r) => Subject::Role(r.clone()),
                Grantee::User(u) => Subject::User(u.clone()),
            },
            Change::CreateUser { user, .. }
            | Change::AlterUser { user, .. }
            | Change::UnsetPassword { user }
            | Change::ConvertToService { user } => Subject::User(user.clone()),
        }
    }

    /// One line for the human plan, under its subject.
    pub fn describe(&self) -> String {
        match self {
            Change::CreateRole { .. } => "+ create the role".to_owned(),
            Change::CreateUser { settings, .. } => {
                let parts: Vec<String> = settings.iter().map(Setting::describe).collect();
                format!("+ create the user with {}", parts.join(", "))
            }
            Change::GrantRole { role, .. } => format!("+ member of role {role}"),
            Change::RevokeRole { role, .. } => format!("- no longer member of role {role}"),
            Change::Grant {
                privileges,
                target,
                grants,
                ..
            } => {
                let mut line = format!("+ {} on {target}", privileges.join(", "));
                if matches!(target, Target::All { .. }) {
                    let s = if *grants == 1 { "" } else { "s" };
                    line.push_str(&format!(" ({grants} grant{s} missing)"));
                }
                line
            }
            Change::Revoke {
                privileges,
                target,
                grants,
                ..
            } => {
                let mut line = format!("- {} on {target}", privileges.join(", "));
                if matches!(target, Target::All { .. }) {
                    let s = if *grants == 1 { "" } else { "s" };
                    line.push_str(&format!(" ({grants} grant{s})"));
                }
                line
            }
            Change::TransferOwnership { object, from, .. } => match from {
                Some(from) => format!("~ takes ownership of {object} from {from}"),
                None => format!("~ takes ownership of {object}"),
            },
            Change::AlterUser { settings, .. } => {
                let parts: Vec<String> = settings.iter().map(Setting::describe).collect();
                format!("~ set {}", parts.join(", "))
            }
            Change::UnsetPassword { .. } => "- password removed".to_owned(),
            Change::ConvertToService { .. } => "~ set type SERVICE".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    Role(Name),
    User(Name),
}

/// The changes, the problems that prevent planning, and the guard rails' refusals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// The spec refers to what the account does not have, or the state lacks details.
    pub problems: Vec<Problem>,
    /// Changes the guard rails do not allow.
    pub refusals: Vec<String>,
}

impl Plan {
    pub fn revoked_grants(&self) -> usize {
        self.changes.iter().map(Change::revoked_grants).sum()
    }

    /// Whether apply may run it.
    pub fn is_applicable(&self) -> bool {
        self.problems.is_empty() && self.refusals.is_empty()
    }
}

/// Plans `spec` against `state`: expands the spec, diffs, orders, checks the guard rails.
pub fn plan_spec(spec: &Spec, state: &State, options: &Options) -> Plan {
    let (desired, problems) = desired::desired(spec, state);
    let mut plan = plan(&desired, state, options);
    let mut all = problems;
    all.append(&mut plan.problems);
    all.sort_by_key(|p| p.at);
    plan.problems = all;
    plan
}

/// The difference between `desired` and `current`, restricted to what the spec manages.
pub fn plan(desired: &Desired, current: &State, options: &Options) -> Plan {
    let mut p = Planner {
        desired,
        current,
        changes: Vec::new(),
        problems: Vec::new(),
    };
    for (name, role) in &desired.roles {
        p.role(name, role);
    }
    for (name, user) in &desired.users {
        p.user(name, user);
    }
    let mut changes = p.changes;
    // Stable: within a phase, the (deterministic) order of construction stays.
    changes.sort_by_key(Change::phase);
    let refusals = guard(&changes, options);
    Plan {
        changes,
        problems: p.problems,
        refusals,
    }
}

/// The guard rails: protected roles, the bot's own user, the revoke threshold.
pub fn guard(changes: &[Change], options: &Options) -> Vec<String> {
    let protected = |n: &Name| options.protected.contains(n);
    let mut refusals = Vec::new();
    for change in changes {
        let touched: Vec<&Name> = match change {
            Change::CreateRole { role } => vec![role],
            Change::Grant { role, .. } | Change::Revoke { role, .. } => vec![role],
            Change::GrantRole { role, to: grantee }
            | Change::RevokeRole {
                role,
                from: grantee,
            } => {
                let mut v = vec![role];
                if let Grantee::Role(r) = grantee {
                    v.push(r);
                }
                v
            }
            Change::TransferOwnership { to, from, .. } => {
                let mut v = vec![to];
                v.extend(from);
                v
            }
            Change::CreateUser { .. }
            | Change::AlterUser { .. }
            | Change::UnsetPassword { .. }
            | Change::ConvertToService { .. } => vec![],
        };
        let touched: Vec<String> = touched
            .into_iter()
            .filter(|n| protected(n))
            .map(|n| n.to_string())
            .collect();
        if !touched.is_empty() {
            refusals.push(format!(
                "`{}` would touch protected role{} {}: change protected roles by hand, or make \
                 the spec match them",
                change.sql(),
                if touched.len() == 1 { "" } else { "s" },
                touched.join(", ")
            ));
        }
        if let Some(bot) = &options.bot_user {
            let locks_out = match change {
                Change::AlterUser { user, settings } => {
                    user == bot
                        && settings
                            .iter()
                            .any(|s| s.property == "DISABLED" && s.value == Value::Bool(true))
                }
                Change::UnsetPassword { user } => user == bot && options.bot_uses_password,
                _ => false,
            };
            if locks_out {
                refusals.push(format!(
                    "`{}` would lock out {bot}, the user this job logs in as",
                    change.sql()
                ));
            }
        }
    }
    let revoked: usize = changes.iter().map(Change::revoked_grants).sum();
    if revoked > options.max_revokes && !options.force {
        refusals.push(format!(
            "the plan revokes {revoked} grants, more than the limit of {} \
             (PERMISSIONS_MAX_REVOKES): review the plan, then apply it with --force \
             (PERMISSIONS_FORCE=true) if it is right",
            options.max_revokes
        ));
    }
    refusals
}

/// Privileges in the order statements list them (the order of the read/write tables).
fn privilege_rank(privilege: &str) -> usize {
    const ORDER: &[&str] = &[
        "USAGE",
        "OPERATE",
        "MONITOR",
        "CREATE SCHEMA",
        "CREATE TABLE",
        "CREATE VIEW",
        "CREATE STAGE",
        "CREATE FILE FORMAT",
        "CREATE SEQUENCE",
        "CREATE FUNCTION",
        "CREATE PIPE",
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "TRUNCATE",
        "REFERENCES",
    ];
    ORDER
        .iter()
        .position(|p| *p == privilege)
        .unwrap_or(ORDER.len())
}

fn sorted_privileges<'a>(privileges: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut v: Vec<String> = privileges.into_iter().cloned().collect();
    v.sort_by(|a, b| privilege_rank(a).cmp(&privilege_rank(b)).then(a.cmp(b)));
    v.dedup();
    v
}

/// The container (`IN SCHEMA d.s`, `IN DATABASE d`) and kind of a table, view or schema, for
/// `ON ALL` statements.
fn bulk_key(object: &Object) -> Option<(Container, FutureKind)> {
    match object {
        Object::Schema { database, .. } => {
            Some((Container::database(database.clone()), FutureKind::Schema))
        }
        Object::Table {
            database, schema, ..
        } => Some((
            Container::schema(database.clone(), schema.clone()),
            FutureKind::Table,
        )),
        Object::View {
            database, schema, ..
        } => Some((
            Container::schema(database.clone(), schema.clone()),
            FutureKind::View,
        )),
        _ => None,
    }
}

struct Planner<'a> {
    desired: &'a Desired,
    current: &'a State,
    changes: Vec<Change>,
    problems: Vec<Problem>,
}

impl Planner<'_> {
    fn problem(&mut self, at: Option<crate::spec::Loc>, message: String) {
        self.problems.push(Problem { at, message });
    }

    /// Whether a role exists now or is created by this plan.
    fn role_available(&self, role: &Name) -> bool {
        self.current.roles.contains_key(role)
            || self.desired.roles.contains_key(role) && !is_builtin_role(role)
    }

    /// Whether a grant this role holds is within what the spec manages.
    fn manages(&self, grant: &Grant) -> bool {
        if !managed_privilege(&grant.object, &grant.privilege) {
            return false;
        }
        match &grant.object {
            Object::Database { database } => self.desired.databases.contains_key(database),
            Object::Schema { database, .. }
            | Object::Table { database, .. }
            | Object::View { database, .. } => {
                self.desired.databases.contains_key(database) && !self.desired.is_shared(database)
            }
            Object::Warehouse { warehouse } => self.desired.warehouses.contains(warehouse),
            Object::Integration { integration } => self.desired.integrations.contains(integration),
            Object::Account | Object::Role { .. } => false,
        }
    }

    fn manages_future(&self, grant: &FutureGrant) -> bool {
        let database = &grant.container.database;
        desired::managed_future_privileges(grant.kind).contains(&grant.privilege.as_str())
            && self.desired.databases.contains_key(database)
            && !self.desired.is_shared(database)
    }

    fn role(&mut self, name: &Name, d: &DesiredRole) {
        let empty = RoleGrants::default();
        let current: &RoleGrants = if self.current.roles.contains_key(name) {
            match self.current.role_grants.get(name) {
                Some(grants) => grants,
                None => {
                    self.problem(
                        d.at,
                        format!(
                            "the grants of role {name} were not read (the state file does not \
                             have them: take a new snapshot)"
                        ),
                    );
                    return;
                }
            }
        } else if is_builtin_role(name) {
            self.problem(
                d.at,
                format!("built-in role {name} does not exist in this account"),
            );
            return;
        } else {
            self.changes.push(Change::CreateRole { role: name.clone() });
            if let Some(owner) = &d.owner
                && self.current.current_role.as_ref() != Some(owner)
            {
                self.problem(
                    d.at,
                    format!(
                        "role {name} would be owned by the role that creates it ({}), but the \
                         spec says owner {owner}: create it by hand or change the owner",
                        self.current
                            .current_role
                            .as_ref()
                            .map(|r| r.to_string())
                            .unwrap_or_else(|| "the job's role".into())
                    ),
                );
            }
            &empty
        };
        if let (Some(owner), Some(info)) = (&d.owner, self.current.roles.get(name))
            && info.owner.as_ref() != Some(owner)
        {
            self.problem(
                d.at,
                format!(
                    "role {name} is owned by {} in the account, but the spec says owner {owner}",
                    info.owner
                        .as_ref()
                        .map(|o| o.to_string())
                        .unwrap_or_else(|| "nobody".into())
                ),
            );
        }

        let system = |r: &Name| SYSTEM_ROLES.contains(&r.as_str());
        for parent in d.member_of.difference(&current.member_of) {
            if system(name) && system(parent) {
                continue;
            }
            if !self.role_available(parent) {
                self.problem(
                    d.at,
                    format!(
                        "role {parent} (in member_of of {name}) does not exist in this account"
                    ),
                );
                continue;
            }
            self.changes.push(Change::GrantRole {
                role: parent.clone(),
                to: Grantee::Role(name.clone()),
            });
        }
        let mut revoke_memberships = Vec::new();
        for parent in current.member_of.difference(&d.member_of) {
            if system(name) && system(parent) {
                continue;
            }
            revoke_memberships.push(Change::RevokeRole {
                role: parent.clone(),
                from: Grantee::Role(name.clone()),
            });
        }

        // Privileges to grant: first what `ON ALL` statements cover, then per object.
        let first_grant = self.changes.len();
        let mut missing: BTreeSet<&Grant> = d.grants.difference(&current.privileges).collect();
        for ((container, kind), privileges) in &d.bulk {
            let covered: Vec<&Grant> = missing
                .iter()
                .copied()
                .filter(|g| {
                    bulk_key(&g.object).as_ref() == Some(&(container.clone(), *kind))
                        && privileges.contains(&g.privilege)
                })
                .collect();
            if covered.is_empty() {
                continue;
            }
            for g in &covered {
                missing.remove(*g);
            }
            self.changes.push(Change::Grant {
                role: name.clone(),
                privileges: sorted_privileges(privileges),
                target: Target::All {
                    kind: *kind,
                    container: container.clone(),
                },
                grants: covered.len(),
            });
        }
        for (object, privileges) in group_by_object(missing) {
            let grants = privileges.len();
            self.changes.push(Change::Grant {
                role: name.clone(),
                privileges: self.statement_privileges(&object, &privileges),
                target: Target::Object { object },
                grants,
            });
        }
        let missing_future: BTreeSet<&FutureGrant> = d.future.difference(&current.future).collect();
        for ((kind, container), privileges) in group_future(missing_future) {
            let grants = privileges.len();
            self.changes.push(Change::Grant {
                role: name.clone(),
                privileges: sorted_privileges(&privileges),
                target: Target::Future { kind, container },
                grants,
            });
        }

        // Readable order: warehouses, databases, schemas, tables, then future grants.
        self.changes[first_grant..].sort_by(|a, b| target_order(a).cmp(&target_order(b)));

        for object in &d.owns {
            let owner = self.current.owner_of(object);
            if owner != Some(name) {
                self.changes.push(Change::TransferOwnership {
                    object: object.clone(),
                    to: name.clone(),
                    from: owner.cloned(),
                });
            }
        }

        // Privileges to revoke: those the spec manages and no longer asks for.
        let first_revoke = self.changes.len();
        let extra: BTreeSet<&Grant> = current
            .privileges
            .iter()
            .filter(|g| self.manages(g) && !d.grants.contains(*g))
            .collect();
        self.revokes(name, d, extra);
        let extra_future: BTreeSet<&FutureGrant> = current
            .future
            .iter()
            .filter(|g| self.manages_future(g) && !d.future.contains(*g))
            .collect();
        for ((kind, container), privileges) in group_future(extra_future) {
            let grants = privileges.len();
            self.changes.push(Change::Revoke {
                role: name.clone(),
                privileges: sorted_privileges(&privileges),
                target: Target::Future { kind, container },
                grants,
            });
        }
        // Narrowest first: future grants, tables, schemas, databases, warehouses.
        self.changes[first_revoke..].sort_by(|a, b| target_order(b).cmp(&target_order(a)));
        self.changes.extend(revoke_memberships);
    }

    /// Revokes for `extra`, using one `ON ALL ... IN SCHEMA` statement where the role should
    /// keep a privilege on none of a schema's tables (or views) and holds it on several.
    fn revokes(&mut self, name: &Name, d: &DesiredRole, extra: BTreeSet<&Grant>) {
        let mut by_bulk: BTreeMap<(Container, FutureKind, String), Vec<&Grant>> = BTreeMap::new();
        let mut single = Vec::new();
        for g in extra {
            match bulk_key(&g.object) {
                Some((container, kind)) => by_bulk
                    .entry((container, kind, g.privilege.clone()))
                    .or_default()
                    .push(g),
                None => single.push(g),
            }
        }
        let mut all_revokes: BTreeMap<(Container, FutureKind), (BTreeSet<String>, usize)> =
            BTreeMap::new();
        for ((container, kind, privilege), grants) in by_bulk {
            let keeps_some = d.grants.iter().any(|g| {
                g.privilege == privilege && bulk_key(&g.object) == Some((container.clone(), kind))
            });
            if grants.len() >= 2 && !keeps_some {
                let entry = all_revokes.entry((container, kind)).or_default();
                entry.0.insert(privilege);
                entry.1 += grants.len();
            } else {
                single.extend(grants);
            }
        }
        for ((container, kind), (privileges, grants)) in all_revokes {
            self.changes.push(Change::Revoke {
                role: name.clone(),
                privileges: sorted_privileges(&privileges),
                target: Target::All { kind, container },
                grants,
            });
        }
        for (object, privileges) in group_by_object(single.into_iter().collect()) {
            let grants = privileges.len();
            self.changes.push(Change::Revoke {
                role: name.clone(),
                privileges: self.statement_privileges(&object, &privileges),
                target: Target::Object { object },
                grants,
            });
        }
    }

    /// The privileges a statement names: on a shared database, `IMPORTED PRIVILEGES` (what
    /// SHOW GRANTS then lists as USAGE).
    fn statement_privileges(&self, object: &Object, privileges: &BTreeSet<String>) -> Vec<String> {
        match object {
            Object::Database { database } if self.desired.is_shared(database) => {
                vec!["IMPORTED PRIVILEGES".to_owned()]
            }
            _ => sorted_privileges(privileges),
        }
    }

    fn user(&mut self, name: &Name, d: &DesiredUser) {
        let empty = BTreeSet::new();
        let current_roles: &BTreeSet<Name> = match self.current.users.get(name) {
            None => {
                self.changes.push(Change::CreateUser {
                    user: name.clone(),
                    settings: creation_settings(d),
                });
                &empty
            }
            Some(info) => {
                // Snowflake may have converted a user to SERVICE (or kept it LEGACY_SERVICE):
                // it refuses names for such a user, and DESCRIBE USER does not return the ones
                // it keeps, so a spec without `type` that names the user would plan an ALTER
                // that fails, on every run.
                let account_type = info.user_type.as_deref().unwrap_or("");
                let account_service = account_type.eq_ignore_ascii_case("SERVICE")
                    || account_type.eq_ignore_ascii_case("LEGACY_SERVICE");
                if d.user_type.is_none() && account_service {
                    let named: Vec<&str> = [
                        ("first_name", &d.first_name),
                        ("middle_name", &d.middle_name),
                        ("last_name", &d.last_name),
                    ]
                    .into_iter()
                    .filter(|(_, value)| value.is_some())
                    .map(|(key, _)| key)
                    .collect();
                    if !named.is_empty() {
                        self.problem(
                            d.at,
                            format!(
                                "user {name} is TYPE = {} in the account, and Snowflake refuses \
                                 {} for service users: remove {} from the spec, or set \
                                 `type: person` to convert the user",
                                account_type.to_ascii_uppercase(),
                                named.join(", "),
                                if named.len() == 1 { "it" } else { "them" }
                            ),
                        );
                        return;
                    }
                }
                let mut settings = alterations(d, info);
                // A user becoming TYPE = SERVICE (a LEGACY_SERVICE one, say) cannot keep its
                // password: it is unset first and the type set after, so that no ALTER fails
                // on every run.
                let to_service = is_service(d)
                    && info.has_password
                    && !info
                        .user_type
                        .as_deref()
                        .is_some_and(|t| t.eq_ignore_ascii_case("SERVICE"));
                if to_service {
                    settings.retain(|s| s.property != "TYPE");
                    self.changes
                        .push(Change::UnsetPassword { user: name.clone() });
                    self.changes
                        .push(Change::ConvertToService { user: name.clone() });
                }
                if !settings.is_empty() {
                    self.changes.push(Change::AlterUser {
                        user: name.clone(),
                        settings,
                    });
                }
                if d.has_password == Some(false) && info.has_password && !to_service {
                    self.changes
                        .push(Change::UnsetPassword { user: name.clone() });
                }
                match self.current.user_roles.get(name) {
                    Some(roles) => roles,
                    None => {
                        self.problem(
                            d.at,
                            format!(
                                "the roles of user {name} were not read (the state file does not \
                                 have them: take a new snapshot)"
                            ),
                        );
                        return;
                    }
                }
            }
        };
        for role in d.member_of.difference(current_roles) {
            if !self.role_available(role) {
                self.problem(
                    d.at,
                    format!(
                        "role {role} (in member_of of user {name}) does not exist in this account"
                    ),
                );
                continue;
            }
            self.changes.push(Change::GrantRole {
                role: role.clone(),
                to: Grantee::User(name.clone()),
            });
        }
        for role in current_roles.difference(&d.member_of) {
            if role.as_str() == "PUBLIC" {
                continue;
            }
            self.changes.push(Change::RevokeRole {
                role: role.clone(),
                from: Grantee::User(name.clone()),
            });
        }
    }
}

/// Sort key of a privilege statement: by kind of target (warehouses first, future grants last),
/// then by the target itself.
fn target_order(change: &Change) -> (u8, Option<&Target>) {
    let target = match change {
        Change::Grant { target, .. } | Change::Revoke { target, .. } => target,
        _ => return (u8::MAX, None),
    };
    let rank = match target {
        Target::Object { object } => match object {
            Object::Warehouse { .. } => 0,
            Object::Integration { .. } => 1,
            Object::Account | Object::Role { .. } | Object::Database { .. } => 2,
            Object::Schema { .. } => 3,
            Object::Table { .. } | Object::View { .. } => 5,
        },
        Target::All { .. } => 4,
        Target::Future { .. } => 6,
    };
    (rank, Some(target))
}

fn managed_privilege(object: &Object, privilege: &str) -> bool {
    desired::managed_privileges(object).contains(&privilege)
}

fn group_by_object(grants: BTreeSet<&Grant>) -> BTreeMap<Object, BTreeSet<String>> {
    let mut out: BTreeMap<Object, BTreeSet<String>> = BTreeMap::new();
    for g in grants {
        out.entry(g.object.clone())
            .or_default()
            .insert(g.privilege.clone());
    }
    out
}

fn group_future(
    grants: BTreeSet<&FutureGrant>,
) -> BTreeMap<(FutureKind, Container), BTreeSet<String>> {
    let mut out: BTreeMap<(FutureKind, Container), BTreeSet<String>> = BTreeMap::new();
    for g in grants {
        out.entry((g.kind, g.container.clone()))
            .or_default()
            .insert(g.privilege.clone());
    }
    out
}

/// The comment a new user gets: its own, or (as the handbook did) its email. An existing user
/// keeps the comment it has unless the spec gives one: an email is no reason to overwrite it.
fn comment_at_creation(d: &DesiredUser) -> Option<&String> {
    d.comment.as_ref().or(d.email.as_ref())
}

fn is_service(d: &DesiredUser) -> bool {
    d.user_type.as_deref() == Some("SERVICE")
}

/// `CREATE USER` settings, the handbook's way: a generated password the user must change,
/// email as comment, default role and warehouse.
fn creation_settings(d: &DesiredUser) -> Vec<Setting> {
    let mut s = Vec::new();
    let set = |s: &mut Vec<Setting>, property: &'static str, value: Value| {
        s.push(Setting { property, value })
    };
    // A service user logs in with a key or a token; Snowflake refuses it a password.
    if d.can_login && d.has_password != Some(false) && !is_service(d) {
        set(&mut s, "PASSWORD", Value::GeneratedPassword);
        set(&mut s, "MUST_CHANGE_PASSWORD", Value::Bool(true));
    }
    if !d.can_login {
        set(&mut s, "DISABLED", Value::Bool(true));
    }
    common_settings(d, comment_at_creation(d), &mut s);
    if let Some(m) = &d.middle_name {
        set(&mut s, "MIDDLE_NAME", Value::Text(m.clone()));
    }
    s
}

/// The settings the spec gives, in one order for creation and alteration.
fn common_settings(d: &DesiredUser, comment: Option<&String>, s: &mut Vec<Setting>) {
    let text = |s: &mut Vec<Setting>, property: &'static str, v: Option<&String>| {
        if let Some(v) = v {
            s.push(Setting {
                property,
                value: Value::Text(v.clone()),
            });
        }
    };
    text(s, "EMAIL", d.email.as_ref());
    text(s, "COMMENT", comment);
    text(s, "DISPLAY_NAME", d.display_name.as_ref());
    text(s, "FIRST_NAME", d.first_name.as_ref());
    text(s, "LAST_NAME", d.last_name.as_ref());
    if let Some(r) = &d.default_role {
        s.push(Setting {
            property: "DEFAULT_ROLE",
            value: Value::Identifier(r.clone()),
        });
    }
    if let Some(w) = &d.default_warehouse {
        s.push(Setting {
            property: "DEFAULT_WAREHOUSE",
            value: Value::Identifier(w.clone()),
        });
    }
    text(s, "DEFAULT_NAMESPACE", d.default_namespace.as_ref());
    if let Some(t) = &d.user_type {
        s.push(Setting {
            property: "TYPE",
            value: Value::Keyword(t.clone()),
        });
    }
    let key_body = |k: &Option<snowflake_conn::PublicKey>| k.as_ref().map(|k| k.body.clone());
    text(s, "RSA_PUBLIC_KEY", key_body(&d.rsa_public_key).as_ref());
    text(
        s,
        "RSA_PUBLIC_KEY_2",
        key_body(&d.rsa_public_key_2).as_ref(),
    );
}

/// The settings of an existing user that differ from the spec. Properties the spec leaves out
/// are left alone; `MIDDLE_NAME` is not compared (SHOW USERS does not list it).
fn alterations(d: &DesiredUser, current: &UserInfo) -> Vec<Setting> {
    let mut wanted = Vec::new();
    if d.can_login == current.disabled {
        wanted.push(Setting {
            property: "DISABLED",
            value: Value::Bool(!d.can_login),
        });
    }
    let mut spec_settings = Vec::new();
    common_settings(d, d.comment.as_ref(), &mut spec_settings);
    for setting in spec_settings {
        // Keys are compared by fingerprint (DESC USER's RSA_PUBLIC_KEY_FP).
        let key = match setting.property {
            "RSA_PUBLIC_KEY" => Some((&d.rsa_public_key, &current.rsa_public_key_fp)),
            "RSA_PUBLIC_KEY_2" => Some((&d.rsa_public_key_2, &current.rsa_public_key_2_fp)),
            _ => None,
        };
        if let Some((wanted_key, now)) = key {
            if wanted_key.as_ref().map(|k| &k.fingerprint) != now.as_ref() {
                wanted.push(setting);
            }
            continue;
        }
        let now = match setting.property {
            "EMAIL" => &current.email,
            "COMMENT" => &current.comment,
            "DISPLAY_NAME" => &current.display_name,
            "FIRST_NAME" => &current.first_name,
            "LAST_NAME" => &current.last_name,
            "DEFAULT_ROLE" => &current.default_role,
            "DEFAULT_WAREHOUSE" => &current.default_warehouse,
            "DEFAULT_NAMESPACE" => &current.default_namespace,
            "TYPE" => &current.user_type,
            _ => continue,
        };
        let want = match &setting.value {
            Value::Identifier(n) => n.as_str().to_owned(),
            Value::Text(t) | Value::Keyword(t) => t.clone(),
            Value::Bool(b) => b.to_string(),
            Value::GeneratedPassword => continue,
        };
        let same = match setting.property {
            // SHOW USERS prints TYPE in upper case, and NULL as empty; since bundle 2025_05
            // (BCR-2067) a user whose TYPE is unset reads back as PERSON: NULL and PERSON are
            // one type, or `type: null` would be set again on every run.
            "TYPE" => {
                let person = |t: &str| {
                    if t.is_empty() || t.eq_ignore_ascii_case("NULL") {
                        "PERSON".to_owned()
                    } else {
                        t.to_ascii_uppercase()
                    }
                };
                person(now.as_deref().unwrap_or("NULL")) == person(&want)
            }
            _ => now.as_deref() == Some(want.as_str()),
        };
        if !same {
            wanted.push(setting);
        }
    }
    wanted
}

#[cfg(test)]
mod tests;
