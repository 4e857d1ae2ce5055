//! The spec: a Permifrost `roles.yml`, read and checked before anything connects.
//!
//! The YAML is loaded with position marks (the yaml-input crate, bounded) and walked by hand rather than deserialized,
//! so that every problem in the file is found in one pass and reported with its line and
//! column, not only the first one a deserializer trips on. Then [`validate`] checks what only
//! the whole file can tell: duplicate names, references to undefined roles, databases or
//! warehouses, `member_of` cycles.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub use yaml_input::{Loc, Located, Problem};
use yaml_input::{MarkedYaml, Scalar, Walker, YamlData, loc};

use crate::ident::Name;

/// A reference to a role, database or warehouse by name.
pub type Ref = Located<Name>;

/// Every problem found in a spec, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    pub problems: Vec<Problem>,
}

impl SpecError {
    /// The report, each problem prefixed with `file:line:column`.
    pub fn report(&self, file: &str) -> String {
        yaml_input::report(file, "spec", &self.problems)
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.report("spec"))
    }
}

/// A named entry of a section (`- loader: {...}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity<T> {
    pub name: Name,
    pub at: Loc,
    pub spec: T,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spec {
    pub version: Option<String>,
    pub require_owner: bool,
    pub databases: Vec<Entity<DatabaseSpec>>,
    pub warehouses: Vec<Entity<WarehouseSpec>>,
    pub integrations: Vec<Entity<IntegrationSpec>>,
    pub roles: Vec<Entity<RoleSpec>>,
    pub users: Vec<Entity<UserSpec>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatabaseSpec {
    /// Created from a share: access is `IMPORTED PRIVILEGES`, nothing finer.
    pub shared: bool,
    pub owner: Option<Ref>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarehouseSpec {
    pub size: Option<String>,
    pub owner: Option<Ref>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegrationSpec {
    pub category: Option<String>,
    pub owner: Option<Ref>,
}

/// Which roles a role or user is granted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberOf {
    pub include: Vec<Ref>,
    /// `include: ["*"]`: every role the spec defines, but the role itself and `exclude`.
    pub all: bool,
    pub exclude: Vec<Ref>,
}

/// A part of a privilege path: a name, `*`, or a `prefix*` / `*suffix` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Named(Name),
    All,
    Glob { prefix: String, suffix: String },
}

impl Part {
    /// Whether the stored name `name` is one this part stands for.
    pub fn matches(&self, name: &Name) -> bool {
        match self {
            Part::Named(n) => n == name,
            Part::All => true,
            Part::Glob { prefix, suffix } => {
                let s = name.as_str();
                s.len() >= prefix.len() + suffix.len()
                    && s.starts_with(prefix.as_str())
                    && s.ends_with(suffix.as_str())
            }
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Named(n) => write!(f, "{n}"),
            Part::All => f.write_str("*"),
            Part::Glob { prefix, suffix } => write!(f, "{prefix}*{suffix}"),
        }
    }
}

/// `db.schema`, `db.*` or `db.prefix*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaPath {
    pub database: Name,
    pub schema: Part,
}

/// `db.schema.table`, `db.schema.*` or `db.*.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePath {
    pub database: Name,
    pub schema: Part,
    pub table: Part,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access<P> {
    pub read: Vec<Located<P>>,
    pub write: Vec<Located<P>>,
}

impl<P> Default for Access<P> {
    fn default() -> Self {
        Access {
            read: Vec::new(),
            write: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Privileges {
    pub databases: Access<Name>,
    pub schemas: Access<SchemaPath>,
    pub tables: Access<TablePath>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owns {
    pub databases: Vec<Located<Name>>,
    pub schemas: Vec<Located<SchemaPath>>,
    pub tables: Vec<Located<TablePath>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleSpec {
    pub owner: Option<Ref>,
    pub warehouses: Vec<Ref>,
    pub integrations: Vec<Ref>,
    pub member_of: MemberOf,
    pub privileges: Privileges,
    pub owns: Owns,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSpec {
    pub can_login: bool,
    pub member_of: Vec<Ref>,
    pub has_password: Option<bool>,
    pub email: Option<String>,
    pub comment: Option<String>,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub middle_name: Option<String>,
    pub last_name: Option<String>,
    pub default_warehouse: Option<Ref>,
    pub default_namespace: Option<String>,
    pub default_role: Option<Ref>,
    pub user_type: Option<String>,
    /// `rsa_public_key` / `rsa_public_key_2`: the keys a service user logs in with (the
    /// second for rotation).
    pub rsa_public_key: Option<snowflake_conn::PublicKey>,
    pub rsa_public_key_2: Option<snowflake_conn::PublicKey>,
    pub owner: Option<Ref>,
}

/// Roles every Snowflake account has: they may be referenced without being defined.
pub const BUILTIN_ROLES: &[&str] = &[
    "ACCOUNTADMIN",
    "SECURITYADMIN",
    "SYSADMIN",
    "USERADMIN",
    "ORGADMIN",
    "PUBLIC",
];

pub fn is_builtin_role(name: &Name) -> bool {
    BUILTIN_ROLES.contains(&name.as_str())
}

/// User types a spec may ask for (`TYPE = ...`). LEGACY_SERVICE can no longer be created.
const USER_TYPES: &[&str] = &["PERSON", "SERVICE", "NULL"];
/// What Snowflake refuses on a `TYPE = SERVICE` user (which logs in with a key or a token).
const NOT_FOR_SERVICE_USERS: &[&str] = &["first_name", "middle_name", "last_name"];

/// Reads and checks a spec. All problems, structural and semantic, come back together.
pub fn parse(text: &str) -> Result<Spec, SpecError> {
    let docs = yaml_input::load(text, yaml_input::Limits::CONFIG).map_err(|problem| SpecError {
        problems: vec![problem],
    })?;
    let mut reader = Reader::default();
    let spec = match docs.as_slice() {
        [] => {
            reader.problems.push(Problem {
                at: None,
                message: "the spec is empty".into(),
            });
            Spec::default()
        }
        [doc] => reader.spec(doc),
        [_, second, ..] => {
            reader.problem(second, "the spec must be one YAML document, found several");
            Spec::default()
        }
    };
    let mut problems = reader.walker.problems;
    problems.extend(validate(&spec));
    if problems.is_empty() {
        Ok(spec)
    } else {
        problems.sort_by_key(|p| p.at);
        Err(SpecError { problems })
    }
}

/// Walks the YAML tree, collecting problems instead of stopping at the first.
#[derive(Default)]
struct Reader {
    walker: Walker,
}

impl std::ops::Deref for Reader {
    type Target = Walker;
    fn deref(&self) -> &Walker {
        &self.walker
    }
}

impl std::ops::DerefMut for Reader {
    fn deref_mut(&mut self) -> &mut Walker {
        &mut self.walker
    }
}

impl Reader {
    fn name(&mut self, node: &MarkedYaml, what: &str) -> Option<Ref> {
        let text = self.string(node, what)?;
        self.name_from(&text, node, what)
    }

    fn name_from(&mut self, text: &str, node: &MarkedYaml, what: &str) -> Option<Ref> {
        match Name::from_spec(text) {
            Ok(value) => Some(Located {
                value,
                at: loc(node),
            }),
            Err(e) => {
                self.problem(node, format!("{what}: invalid name {text:?}: {e}"));
                None
            }
        }
    }

    /// A list of items read by `item`; `null` counts as an empty list.
    fn list<'a, T>(
        &mut self,
        node: &'a MarkedYaml<'a>,
        what: &str,
        mut item: impl FnMut(&mut Self, &'a MarkedYaml<'a>) -> Option<T>,
    ) -> Vec<T> {
        let items = self.sequence(node, what);
        items.iter().filter_map(|i| item(self, i)).collect()
    }

    fn names(&mut self, node: &MarkedYaml, what: &str) -> Vec<Ref> {
        self.list(node, what, |r, item| r.name(item, what))
    }

    fn spec(&mut self, doc: &MarkedYaml) -> Spec {
        let mut spec = Spec::default();
        if Walker::is_null(doc) {
            self.problem(doc, "the spec is empty");
            return spec;
        }
        let Some(entries) = self.mapping(doc, "the spec") else {
            return spec;
        };
        self.known_keys(
            &entries,
            &[
                "version",
                "require-owner",
                "databases",
                "warehouses",
                "integrations",
                "roles",
                "users",
            ],
            "the spec",
        );
        for (key, _, value) in &entries {
            match key.as_str() {
                "version" => spec.version = self.version(value),
                "require-owner" => {
                    spec.require_owner = self.boolean(value, "require-owner").unwrap_or(false)
                }
                "databases" => spec.databases = self.section(value, "database", Self::database),
                "warehouses" => spec.warehouses = self.section(value, "warehouse", Self::warehouse),
                "integrations" => {
                    spec.integrations = self.section(value, "integration", Self::integration)
                }
                "roles" => spec.roles = self.section(value, "role", Self::role),
                "users" => spec.users = self.section(value, "user", Self::user),
                _ => {}
            }
        }
        spec
    }

    fn version(&mut self, node: &MarkedYaml) -> Option<String> {
        let text = match &node.data {
            YamlData::Value(Scalar::FloatingPoint(f)) => Some(f.to_string()),
            YamlData::Value(Scalar::Integer(i)) => Some(format!("{i}.0")),
            _ => self.string(node, "version"),
        }?;
        if text != "1.0" && text != "1" {
            self.problem(
                node,
                format!("version: only version \"1.0\" of the format is known, found {text:?}"),
            );
        }
        Some(text)
    }

    /// A section: a list of one-key mappings, `- name: {settings}`.
    fn section<'a, T>(
        &mut self,
        node: &'a MarkedYaml<'a>,
        kind: &str,
        mut read: impl FnMut(&mut Self, &str, &'a MarkedYaml<'a>) -> T,
    ) -> Vec<Entity<T>> {
        let plural = format!("{kind}s");
        self.list(node, &plural, |r, item| {
            let entries = r.mapping(item, &format!("an entry of {plural}"))?;
            match entries.as_slice() {
                [(written, key, value)] => {
                    let what = format!("{kind} {written}");
                    let name = r.name_from(written, key, &format!("{kind} name"))?;
                    let spec = read(r, &what, value);
                    Some(Entity {
                        name: name.value,
                        at: name.at,
                        spec,
                    })
                }
                _ => {
                    r.problem(
                        item,
                        format!(
                            "an entry of {plural} must be one `name:` with its settings indented \
                             under it, found {} keys",
                            entries.len()
                        ),
                    );
                    None
                }
            }
        })
    }

    fn database(&mut self, what: &str, node: &MarkedYaml) -> DatabaseSpec {
        let mut spec = DatabaseSpec::default();
        let Some(entries) = self.mapping(node, what) else {
            return spec;
        };
        self.known_keys(&entries, &["shared", "owner", "meta"], what);
        let mut shared = None;
        for (key, _, value) in &entries {
            match key.as_str() {
                "shared" => shared = self.boolean(value, &format!("{what}: shared")),
                "owner" => spec.owner = self.name(value, &format!("{what}: owner")),
                "meta" => self.meta(value, what),
                _ => {}
            }
        }
        match shared {
            Some(shared) => spec.shared = shared,
            None if !entries.iter().any(|(k, _, _)| k == "shared") => self.problem(
                node,
                format!("{what}: `shared: true` or `shared: false` is required"),
            ),
            None => {}
        }
        spec
    }

    fn warehouse(&mut self, what: &str, node: &MarkedYaml) -> WarehouseSpec {
        let mut spec = WarehouseSpec::default();
        let Some(entries) = self.mapping(node, what) else {
            return spec;
        };
        self.known_keys(&entries, &["size", "owner", "meta"], what);
        for (key, _, value) in &entries {
            match key.as_str() {
                "size" => spec.size = self.string(value, &format!("{what}: size")),
                "owner" => spec.owner = self.name(value, &format!("{what}: owner")),
                "meta" => self.meta(value, what),
                _ => {}
            }
        }
        if !entries.iter().any(|(k, _, _)| k == "size") {
            self.problem(node, format!("{what}: `size` is required (e.g. x-small)"));
        }
        spec
    }

    fn integration(&mut self, what: &str, node: &MarkedYaml) -> IntegrationSpec {
        let mut spec = IntegrationSpec::default();
        let Some(entries) = self.mapping(node, what) else {
            return spec;
        };
        self.known_keys(&entries, &["category", "owner", "meta"], what);
        for (key, _, value) in &entries {
            match key.as_str() {
                "category" => spec.category = self.string(value, &format!("{what}: category")),
                "owner" => spec.owner = self.name(value, &format!("{what}: owner")),
                "meta" => self.meta(value, what),
                _ => {}
            }
        }
        if !entries.iter().any(|(k, _, _)| k == "category") {
            self.problem(node, format!("{what}: `category` is required"));
        }
        spec
    }

    /// `meta` is free-form documentation: any mapping.
    fn meta(&mut self, node: &MarkedYaml, what: &str) {
        self.mapping(node, &format!("{what}: meta"));
    }

    fn role(&mut self, what: &str, node: &MarkedYaml) -> RoleSpec {
        let mut spec = RoleSpec::default();
        let Some(entries) = self.mapping(node, what) else {
            return spec;
        };
        self.known_keys(
            &entries,
            &[
                "owner",
                "warehouses",
                "integrations",
                "member_of",
                "privileges",
                "owns",
                "meta",
            ],
            what,
        );
        for (key, _, value) in &entries {
            match key.as_str() {
                "owner" => spec.owner = self.name(value, &format!("{what}: owner")),
                "warehouses" => spec.warehouses = self.names(value, &format!("{what}: warehouses")),
                "integrations" => {
                    spec.integrations = self.names(value, &format!("{what}: integrations"))
                }
                "member_of" => spec.member_of = self.member_of(value, what),
                "privileges" => spec.privileges = self.privileges(value, what),
                "owns" => spec.owns = self.owns(value, what),
                "meta" => self.meta(value, what),
                _ => {}
            }
        }
        spec
    }

    fn member_of(&mut self, node: &MarkedYaml, what: &str) -> MemberOf {
        let what = format!("{what}: member_of");
        let mut member_of = MemberOf::default();
        if let YamlData::Mapping(_) = node.data {
            let Some(entries) = self.mapping(node, &what) else {
                return member_of;
            };
            self.known_keys(&entries, &["include", "exclude"], &what);
            for (key, _, value) in &entries {
                match key.as_str() {
                    "include" => {
                        for role in self.list(value, &format!("{what}: include"), |r, item| {
                            r.string(item, &what).map(|text| (text, item))
                        }) {
                            if role.0 == "*" {
                                member_of.all = true;
                            } else if let Some(r) = self.name_from(&role.0, role.1, &what) {
                                member_of.include.push(r);
                            }
                        }
                    }
                    "exclude" => member_of.exclude = self.names(value, &format!("{what}: exclude")),
                    _ => {}
                }
            }
            if !entries.iter().any(|(k, _, _)| k == "include") {
                self.problem(
                    node,
                    format!("{what}: `include` is required with `exclude`"),
                );
            }
        } else {
            for (text, item) in self.list(node, &what, |r, item| {
                r.string(item, &what).map(|text| (text, item))
            }) {
                if text == "*" {
                    member_of.all = true;
                } else if let Some(r) = self.name_from(&text, item, &what) {
                    member_of.include.push(r);
                }
            }
        }
        member_of
    }

    fn privileges(&mut self, node: &MarkedYaml, what: &str) -> Privileges {
        let what = format!("{what}: privileges");
        let mut privileges = Privileges::default();
        let Some(entries) = self.mapping(node, &what) else {
            return privileges;
        };
        self.known_keys(&entries, &["databases", "schemas", "tables"], &what);
        for (key, _, value) in &entries {
            let what = format!("{what}.{key}");
            match key.as_str() {
                "databases" => {
                    privileges.databases = self.access(value, &what, |r, text, item, what| {
                        r.database_path(text, item, what)
                    })
                }
                "schemas" => {
                    privileges.schemas = self.access(value, &what, |r, text, item, what| {
                        r.schema_path(text, item, what)
                    })
                }
                "tables" => {
                    privileges.tables = self.access(value, &what, |r, text, item, what| {
                        r.table_path(text, item, what)
                    })
                }
                _ => {}
            }
        }
        privileges
    }

    fn access<P>(
        &mut self,
        node: &MarkedYaml,
        what: &str,
        mut path: impl FnMut(&mut Self, &str, &MarkedYaml, &str) -> Option<P>,
    ) -> Access<P> {
        let mut access = Access::default();
        let Some(entries) = self.mapping(node, what) else {
            return access;
        };
        self.known_keys(&entries, &["read", "write"], what);
        for (key, _, value) in &entries {
            let what = format!("{what}.{key}");
            let paths = self.paths(value, &what, &mut path);
            match key.as_str() {
                "read" => access.read = paths,
                "write" => access.write = paths,
                _ => {}
            }
        }
        access
    }

    fn paths<P>(
        &mut self,
        node: &MarkedYaml,
        what: &str,
        path: &mut impl FnMut(&mut Self, &str, &MarkedYaml, &str) -> Option<P>,
    ) -> Vec<Located<P>> {
        self.list(node, what, |r, item| {
            let text = r.string(item, what)?;
            let value = path(r, &text, item, what)?;
            Some(Located {
                value,
                at: loc(item),
            })
        })
    }

    fn owns(&mut self, node: &MarkedYaml, what: &str) -> Owns {
        let what = format!("{what}: owns");
        let mut owns = Owns::default();
        let Some(entries) = self.mapping(node, &what) else {
            return owns;
        };
        self.known_keys(&entries, &["databases", "schemas", "tables"], &what);
        for (key, _, value) in &entries {
            let what = format!("{what}.{key}");
            match key.as_str() {
                "databases" => {
                    owns.databases = self.paths(value, &what, &mut |r, text, item, what| {
                        r.database_path(text, item, what)
                    })
                }
                "schemas" => {
                    owns.schemas = self.paths(value, &what, &mut |r, text, item, what| {
                        r.schema_path(text, item, what)
                    })
                }
                "tables" => {
                    owns.tables = self.paths(value, &what, &mut |r, text, item, what| {
                        r.table_path(text, item, what)
                    })
                }
                _ => {}
            }
        }
        owns
    }

    /// The parts of a dotted path; a problem (and `None`) when malformed.
    fn path_parts(
        &mut self,
        text: &str,
        node: &MarkedYaml,
        what: &str,
        expected: &str,
        count: usize,
    ) -> Option<Vec<Part>> {
        let bad = |r: &mut Self, why: String| {
            r.problem(
                node,
                format!("{what}: malformed path {text:?}: {why} (expected {expected})"),
            );
            None
        };
        let Some(written) = split_written(text) else {
            return bad(self, "unbalanced double quotes".into());
        };
        if written.len() != count {
            return bad(
                self,
                format!(
                    "{} part{} where {count} {} needed",
                    written.len(),
                    if written.len() == 1 { "" } else { "s" },
                    if count == 1 { "is" } else { "are" }
                ),
            );
        }
        let mut parts = Vec::with_capacity(count);
        for part in &written {
            if part.is_empty() {
                return bad(self, "an empty part".into());
            }
            if part == "*" {
                parts.push(Part::All);
            } else if !part.starts_with('"') && part.contains('*') {
                let stars = part.matches('*').count();
                let (prefix, suffix) = part.split_once('*').unwrap_or((part, ""));
                if stars > 1 || (!prefix.is_empty() && !suffix.is_empty()) {
                    return bad(
                        self,
                        format!("pattern {part:?} may only have one * at its start or end"),
                    );
                }
                parts.push(Part::Glob {
                    prefix: fold_pattern(prefix),
                    suffix: fold_pattern(suffix),
                });
            } else {
                match Name::from_spec(part) {
                    Ok(name) => parts.push(Part::Named(name)),
                    Err(e) => return bad(self, format!("part {part:?}: {e}")),
                }
            }
        }
        Some(parts)
    }

    fn database_path(&mut self, text: &str, node: &MarkedYaml, what: &str) -> Option<Name> {
        let parts = self.path_parts(text, node, what, "a database name", 1)?;
        match parts.into_iter().next() {
            Some(Part::Named(name)) => Some(name),
            _ => {
                self.problem(
                    node,
                    format!(
                        "{what}: malformed path {text:?}: a database must be named, not a pattern"
                    ),
                );
                None
            }
        }
    }

    fn schema_path(&mut self, text: &str, node: &MarkedYaml, what: &str) -> Option<SchemaPath> {
        let mut parts = self
            .path_parts(text, node, what, "DB.SCHEMA or DB.*", 2)?
            .into_iter();
        let (Some(database), Some(schema)) = (parts.next(), parts.next()) else {
            return None;
        };
        let Part::Named(database) = database else {
            self.problem(
                node,
                format!("{what}: malformed path {text:?}: the database must be named (expected DB.SCHEMA or DB.*)"),
            );
            return None;
        };
        Some(SchemaPath { database, schema })
    }

    fn table_path(&mut self, text: &str, node: &MarkedYaml, what: &str) -> Option<TablePath> {
        let expected = "DB.SCHEMA.TABLE, DB.SCHEMA.* or DB.*.*";
        let mut parts = self.path_parts(text, node, what, expected, 3)?.into_iter();
        let (Some(database), Some(schema), Some(table)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let Part::Named(database) = database else {
            self.problem(
                node,
                format!("{what}: malformed path {text:?}: the database must be named (expected {expected})"),
            );
            return None;
        };
        if !matches!(schema, Part::Named(_)) && table != Part::All {
            self.problem(
                node,
                format!(
                    "{what}: malformed path {text:?}: after a schema pattern the table must be * \
                     (expected {expected})"
                ),
            );
            return None;
        }
        if matches!(table, Part::Glob { .. }) {
            self.problem(
                node,
                format!("{what}: malformed path {text:?}: table patterns other than * are not supported (expected {expected})"),
            );
            return None;
        }
        Some(TablePath {
            database,
            schema,
            table,
        })
    }

    fn user(&mut self, what: &str, node: &MarkedYaml) -> UserSpec {
        let mut spec = UserSpec::default();
        let Some(entries) = self.mapping(node, what) else {
            return spec;
        };
        self.known_keys(
            &entries,
            &[
                "can_login",
                "member_of",
                "has_password",
                "email",
                "comment",
                "display_name",
                "first_name",
                "middle_name",
                "last_name",
                "default_warehouse",
                "default_namespace",
                "default_role",
                "type",
                "rsa_public_key",
                "rsa_public_key_2",
                "owner",
                "meta",
            ],
            what,
        );
        let mut can_login = None;
        for (key, _, value) in &entries {
            let field = format!("{what}: {key}");
            match key.as_str() {
                "can_login" => can_login = self.boolean(value, &field),
                "member_of" => spec.member_of = self.names(value, &field),
                "has_password" => spec.has_password = self.boolean(value, &field),
                "email" => spec.email = self.text_value(value, &field),
                "comment" => spec.comment = self.text_value(value, &field),
                "display_name" => spec.display_name = self.text_value(value, &field),
                "first_name" => spec.first_name = self.text_value(value, &field),
                "middle_name" => spec.middle_name = self.text_value(value, &field),
                "last_name" => spec.last_name = self.text_value(value, &field),
                "default_warehouse" => spec.default_warehouse = self.name(value, &field),
                "default_namespace" => spec.default_namespace = self.text_value(value, &field),
                "default_role" => spec.default_role = self.name(value, &field),
                // `type: null` (YAML's null) is Snowflake's TYPE = NULL, as `type: "null"` is.
                "type" if Walker::is_null(value) => spec.user_type = Some("NULL".to_owned()),
                "type" => {
                    spec.user_type = self.string(value, &field).and_then(|t| {
                        let upper = t.to_ascii_uppercase();
                        if USER_TYPES.contains(&upper.as_str()) {
                            Some(upper)
                        } else if upper == "LEGACY_SERVICE" {
                            self.problem(
                                value,
                                format!(
                                    "{field}: LEGACY_SERVICE users can no longer be created \
                                     (Snowflake retires password-only service users); use \
                                     `type: service` with a key pair"
                                ),
                            );
                            None
                        } else {
                            self.problem(
                                value,
                                format!(
                                    "{field}: expected one of {}, found {t:?}",
                                    USER_TYPES.join(", ")
                                ),
                            );
                            None
                        }
                    })
                }
                "rsa_public_key" => spec.rsa_public_key = self.public_key(value, &field),
                "rsa_public_key_2" => spec.rsa_public_key_2 = self.public_key(value, &field),
                "owner" => spec.owner = self.name(value, &field),
                "meta" => self.meta(value, what),
                _ => {}
            }
        }
        if spec.user_type.as_deref() == Some("SERVICE") {
            for (key, _, value) in &entries {
                let refused = NOT_FOR_SERVICE_USERS.contains(&key.as_str())
                    || (key == "has_password" && spec.has_password == Some(true));
                if refused {
                    self.problem(
                        value,
                        format!(
                            "{what}: {key}: a `type: service` user has no {}; Snowflake refuses \
                             it for TYPE = SERVICE",
                            if key == "has_password" {
                                "password"
                            } else {
                                "name"
                            }
                        ),
                    );
                }
            }
        }
        match can_login {
            Some(b) => spec.can_login = b,
            None if !entries.iter().any(|(k, _, _)| k == "can_login") => self.problem(
                node,
                format!("{what}: `can_login: true` or `can_login: false` is required"),
            ),
            None => {}
        }
        spec
    }

    /// A public key: PEM or its base64 body (not a secret: it may live in git with the spec).
    fn public_key(&mut self, node: &MarkedYaml, what: &str) -> Option<snowflake_conn::PublicKey> {
        let text = self.string(node, what)?;
        match snowflake_conn::PublicKey::parse(&text) {
            Ok(key) => Some(key),
            Err(e) => {
                self.problem(node, format!("{what}: {e}"));
                None
            }
        }
    }

    /// A free-text property (email, comment): any string without control or bidirectional
    /// formatting characters but newlines and tabs.
    fn text_value(&mut self, node: &MarkedYaml, what: &str) -> Option<String> {
        let text = self.string(node, what)?;
        if text
            .chars()
            .any(|c| crate::ident::is_control_or_bidi(c) && c != '\n' && c != '\t')
        {
            self.problem(
                node,
                format!("{what}: may not contain control or bidirectional formatting characters"),
            );
            return None;
        }
        Some(text)
    }
}

/// Splits a path on dots outside double quotes, keeping each part as written.
fn split_written(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    for c in text.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                current.push(c);
            }
            '.' if !in_quotes => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    if in_quotes {
        return None;
    }
    parts.push(current);
    Some(parts)
}

/// A pattern's fixed text, folded like an unquoted name would be (`stitch_*` matches
/// `STITCH_ORDERS`).
fn fold_pattern(text: &str) -> String {
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    {
        text.to_ascii_uppercase()
    } else {
        text.to_owned()
    }
}

/// The checks that need the whole spec: duplicates, references, cycles, owners.
pub fn validate(spec: &Spec) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |at: Loc, message: String| {
        problems.push(Problem {
            at: Some(at),
            message,
        })
    };

    let databases = defined(&spec.databases, "database", &mut problem);
    let warehouses = defined(&spec.warehouses, "warehouse", &mut problem);
    let integrations = defined(&spec.integrations, "integration", &mut problem);
    let roles = defined(&spec.roles, "role", &mut problem);
    defined(&spec.users, "user", &mut problem);

    let role_exists = |r: &Name| roles.contains_key(r) || is_builtin_role(r);
    let check_role = |r: &Ref, context: &str, problem: &mut dyn FnMut(Loc, String)| {
        if !role_exists(&r.value) {
            problem(
                r.at,
                format!(
                    "{context}: role {} is not defined in roles (nor a built-in role)",
                    r.value
                ),
            );
        }
    };
    let check_database =
        |d: &Name, at: Loc, context: &str, problem: &mut dyn FnMut(Loc, String)| {
            if !databases.contains_key(d) {
                problem(
                    at,
                    format!("{context}: database {d} is not defined in databases"),
                );
            }
        };

    for role in &spec.roles {
        let what = format!("role {}", role.name);
        let r = &role.spec;
        for parent in r.member_of.include.iter().chain(&r.member_of.exclude) {
            check_role(parent, &format!("{what}: member_of"), &mut problem);
        }
        if let Some(owner) = &r.owner {
            check_role(owner, &format!("{what}: owner"), &mut problem);
        }
        for w in &r.warehouses {
            if !warehouses.contains_key(&w.value) {
                problem(
                    w.at,
                    format!("{what}: warehouse {} is not defined in warehouses", w.value),
                );
            }
        }
        for i in &r.integrations {
            if !integrations.contains_key(&i.value) {
                problem(
                    i.at,
                    format!(
                        "{what}: integration {} is not defined in integrations",
                        i.value
                    ),
                );
            }
        }
        let p = &r.privileges;
        let read_dbs: BTreeSet<&Name> = p.databases.read.iter().map(|d| &d.value).collect();
        let write_dbs: BTreeSet<&Name> = p.databases.write.iter().map(|d| &d.value).collect();
        for d in p.databases.read.iter().chain(&p.databases.write) {
            check_database(&d.value, d.at, &what, &mut problem);
        }
        let need_db =
            |db: &Name, at: Loc, kind: &str, write: bool, problem: &mut dyn FnMut(Loc, String)| {
                if !databases.contains_key(db) {
                    check_database(db, at, &what, problem);
                } else if !(read_dbs.contains(db) || (write && write_dbs.contains(db))) {
                    // Permifrost's rule: access inside a database needs access to the database.
                    problem(
                        at,
                        format!(
                            "{what}: database {db} is used in {kind} privileges but is not in the \
                         role's privileges.databases.{}",
                            if write { "read or write" } else { "read" }
                        ),
                    );
                }
            };
        for s in &p.schemas.read {
            need_db(&s.value.database, s.at, "schemas.read", false, &mut problem);
        }
        for s in &p.schemas.write {
            need_db(&s.value.database, s.at, "schemas.write", true, &mut problem);
        }
        for t in &p.tables.read {
            need_db(&t.value.database, t.at, "tables.read", false, &mut problem);
        }
        for t in &p.tables.write {
            need_db(&t.value.database, t.at, "tables.write", true, &mut problem);
        }
        let o = &r.owns;
        for d in &o.databases {
            check_database(&d.value, d.at, &format!("{what}: owns"), &mut problem);
        }
        for s in &o.schemas {
            check_database(
                &s.value.database,
                s.at,
                &format!("{what}: owns"),
                &mut problem,
            );
        }
        for t in &o.tables {
            check_database(
                &t.value.database,
                t.at,
                &format!("{what}: owns"),
                &mut problem,
            );
        }
    }

    for user in &spec.users {
        let what = format!("user {}", user.name);
        let u = &user.spec;
        for role in &u.member_of {
            check_role(role, &format!("{what}: member_of"), &mut problem);
        }
        if let Some(role) = &u.default_role {
            check_role(role, &format!("{what}: default_role"), &mut problem);
            let granted = role.value.as_str() == "PUBLIC"
                || u.member_of.iter().any(|m| m.value == role.value);
            if role_exists(&role.value) && !granted {
                problem(
                    role.at,
                    format!(
                        "{what}: default_role {} is not among the user's member_of roles, so the \
                         user could not use it",
                        role.value
                    ),
                );
            }
        }
        if let Some(w) = &u.default_warehouse
            && !warehouses.contains_key(&w.value)
        {
            problem(
                w.at,
                format!(
                    "{what}: default_warehouse {} is not defined in warehouses",
                    w.value
                ),
            );
        }
        if let Some(owner) = &u.owner {
            check_role(owner, &format!("{what}: owner"), &mut problem);
        }
    }
    for (kind, owners) in [
        (
            "database",
            spec.databases
                .iter()
                .map(|e| (&e.name, e.at, &e.spec.owner))
                .collect::<Vec<_>>(),
        ),
        (
            "warehouse",
            spec.warehouses
                .iter()
                .map(|e| (&e.name, e.at, &e.spec.owner))
                .collect(),
        ),
        (
            "integration",
            spec.integrations
                .iter()
                .map(|e| (&e.name, e.at, &e.spec.owner))
                .collect(),
        ),
    ] {
        for (name, at, owner) in owners {
            match owner {
                Some(owner) => check_role(owner, &format!("{kind} {name}: owner"), &mut problem),
                None if spec.require_owner => problem(
                    at,
                    format!("{kind} {name}: require-owner is set but no owner is given"),
                ),
                None => {}
            }
        }
    }
    if spec.require_owner {
        for role in spec.roles.iter().filter(|r| r.spec.owner.is_none()) {
            problem(
                role.at,
                format!(
                    "role {}: require-owner is set but no owner is given",
                    role.name
                ),
            );
        }
        for user in spec.users.iter().filter(|u| u.spec.owner.is_none()) {
            problem(
                user.at,
                format!(
                    "user {}: require-owner is set but no owner is given",
                    user.name
                ),
            );
        }
    }

    for cycle in member_of_cycles(spec) {
        let names: Vec<String> = cycle.iter().map(|(n, _)| n.to_string()).collect();
        let first = cycle
            .first()
            .map(|(_, at)| *at)
            .unwrap_or(Loc { line: 0, column: 0 });
        problem(
            first,
            format!(
                "member_of cycle: {} (a role cannot inherit from itself)",
                names.join(" → ")
            ),
        );
    }
    problems
}

/// Names defined in a section; a second definition of a name is a problem at both places.
fn defined<T>(
    entities: &[Entity<T>],
    kind: &str,
    problem: &mut dyn FnMut(Loc, String),
) -> BTreeMap<Name, Loc> {
    let mut seen: BTreeMap<Name, Loc> = BTreeMap::new();
    for entity in entities {
        if let Some(first) = seen.get(&entity.name) {
            problem(
                entity.at,
                format!(
                    "{kind} {} is defined twice (first at line {}); names are compared as \
                     Snowflake stores them, so `loader` and `LOADER` are the same",
                    entity.name, first.line
                ),
            );
        } else {
            seen.insert(entity.name.clone(), entity.at);
        }
    }
    seen
}

/// The roles a spec role is a member of, `*` expanded to every other spec role.
pub fn parents(spec: &Spec, role: &Entity<RoleSpec>) -> Vec<Ref> {
    let m = &role.spec.member_of;
    let excluded: BTreeSet<&Name> = m.exclude.iter().map(|e| &e.value).collect();
    let mut out: Vec<Ref> = m
        .include
        .iter()
        .filter(|r| !excluded.contains(&r.value))
        .cloned()
        .collect();
    if m.all {
        for other in &spec.roles {
            if other.name != role.name
                && !excluded.contains(&other.name)
                && !out.iter().any(|r| r.value == other.name)
            {
                out.push(Located {
                    value: other.name.clone(),
                    at: role.at,
                });
            }
        }
    }
    out
}

/// Each cycle in the member_of graph once, as the roles along it with where each edge is
/// written.
fn member_of_cycles(spec: &Spec) -> Vec<Vec<(Name, Loc)>> {
    // A name defined twice is reported elsewhere; its first definition stands here.
    let mut edges: BTreeMap<&Name, Vec<Ref>> = BTreeMap::new();
    for role in &spec.roles {
        edges
            .entry(&role.name)
            .or_insert_with(|| parents(spec, role));
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks: BTreeMap<&Name, Mark> = edges.keys().map(|k| (*k, Mark::New)).collect();
    let mut cycles = Vec::new();
    let mut seen_cycles: BTreeSet<Vec<Name>> = BTreeSet::new();

    fn visit<'a>(
        node: &'a Name,
        edges: &'a BTreeMap<&'a Name, Vec<Ref>>,
        marks: &mut BTreeMap<&'a Name, Mark>,
        path: &mut Vec<(&'a Name, Loc)>,
        cycles: &mut Vec<Vec<(Name, Loc)>>,
        seen: &mut BTreeSet<Vec<Name>>,
    ) {
        marks.insert(node, Mark::Active);
        for parent in edges.get(node).into_iter().flatten() {
            match marks.get(&parent.value).copied() {
                Some(Mark::Active) => {
                    path.push((node, parent.at));
                    let start = path
                        .iter()
                        .position(|(n, _)| **n == parent.value)
                        .unwrap_or(0);
                    let mut cycle: Vec<(Name, Loc)> = path[start..]
                        .iter()
                        .map(|(n, at)| ((*n).clone(), *at))
                        .collect();
                    let mut key: Vec<Name> = cycle.iter().map(|(n, _)| n.clone()).collect();
                    key.sort();
                    if seen.insert(key) {
                        cycle.push((parent.value.clone(), parent.at));
                        cycles.push(cycle);
                    }
                    path.pop();
                }
                Some(Mark::New) => {
                    path.push((node, parent.at));
                    // The key is borrowed from `edges`, which outlives the walk.
                    let key = edges.get_key_value(&parent.value).map(|(k, _)| *k);
                    if let Some(key) = key {
                        visit(key, edges, marks, path, cycles, seen);
                    }
                    path.pop();
                }
                _ => {}
            }
        }
        marks.insert(node, Mark::Done);
    }

    let roots: Vec<&Name> = edges.keys().copied().collect();
    for root in roots {
        if marks.get(root) == Some(&Mark::New) {
            let mut path = Vec::new();
            visit(
                root,
                &edges,
                &mut marks,
                &mut path,
                &mut cycles,
                &mut seen_cycles,
            );
        }
    }
    cycles
}

#[cfg(test)]
mod tests;
