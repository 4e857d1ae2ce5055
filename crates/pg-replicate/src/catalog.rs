//! The catalog: which tables are replicated and how. A YAML file of two mappings, both optional:
//!
//! ```yaml
//! schemas:                 # every table of a schema
//!   salesforce:
//!     replication_key: systemmodstamp   # the default for its tables
//!     reconcile: 24h                    # the default for its tables
//!     exclude: [_hcmeta, _trigger_log]
//! tables:                  # one table: adds it, or sets how a schema's table is replicated
//!   salesforce.account:
//!     replication_key: systemmodstamp   # default: the schema's, else systemmodstamp
//!     primary_key: [sfid]               # default: the table's own primary key
//!     skip_columns: [_hc_err]
//!     reconcile: every_run              # off, every_run or every N hours (24h); default: the schema's, else off
//!     hard_deletes: delete              # mark (_deleted_at) or delete; default: the schema's, else mark
//! ```
//!
//! `reconcile` says how often the table's keys are compared with the warehouse's to find the
//! rows deleted at the source (hard deletes), which no replication key shows; `hard_deletes`
//! says what becomes of them.
//!
//! The built-in catalog (`catalog.yml`) comes first; the user's file adds to it, an entry with
//! the same name replacing the built-in one. Every problem of a file is reported with its line
//! and column before anything connects.

use std::collections::BTreeMap;
use std::path::Path;

use yaml_input::{Limits, MarkedYaml, Walker};

/// The replication key of a table whose catalog entry names none.
pub const DEFAULT_REPLICATION_KEY: &str = "systemmodstamp";

const BUILT_IN: &str = include_str!("catalog.yml");
const BUILT_IN_NAME: &str = "the built-in catalog";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub schemas: BTreeMap<String, SchemaEntry>,
    /// Keyed by `schema.table`.
    pub tables: BTreeMap<String, TableEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaEntry {
    pub replication_key: Option<String>,
    pub exclude: Vec<String>,
    pub reconcile: Option<Reconcile>,
    pub hard_deletes: Option<HardDeletes>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableEntry {
    pub replication_key: Option<String>,
    pub primary_key: Option<Vec<String>>,
    pub skip_columns: Vec<String>,
    pub reconcile: Option<Reconcile>,
    pub hard_deletes: Option<HardDeletes>,
}

/// How often a table's keys are reconciled with the warehouse's to find hard deletes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reconcile {
    #[default]
    Off,
    EveryRun,
    /// When the last reconciliation (or full copy) is at least this many hours old.
    EveryHours(u32),
}

impl std::fmt::Display for Reconcile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reconcile::Off => f.write_str("off"),
            Reconcile::EveryRun => f.write_str("every_run"),
            Reconcile::EveryHours(hours) => write!(f, "{hours}h"),
        }
    }
}

/// Longest `reconcile` interval: a year.
const MAX_RECONCILE_HOURS: u32 = 8784;

impl std::str::FromStr for Reconcile {
    type Err = String;

    fn from_str(text: &str) -> Result<Reconcile, String> {
        match text {
            "off" => Ok(Reconcile::Off),
            "every_run" => Ok(Reconcile::EveryRun),
            _ => text
                .strip_suffix('h')
                .and_then(|hours| hours.parse::<u32>().ok())
                .filter(|hours| (1..=MAX_RECONCILE_HOURS).contains(hours))
                .map(Reconcile::EveryHours)
                .ok_or_else(|| {
                    format!(
                        "expected off, every_run or a number of hours from 1h to \
                         {MAX_RECONCILE_HOURS}h, found {text:?}"
                    )
                }),
        }
    }
}

/// What becomes of a row that reconciliation finds deleted at the source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HardDeletes {
    /// Kept, with `_deleted_at` set to the start of the run that found it gone.
    #[default]
    Mark,
    /// Deleted from the warehouse table.
    Delete,
}

impl std::fmt::Display for HardDeletes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HardDeletes::Mark => "mark",
            HardDeletes::Delete => "delete",
        })
    }
}

/// A table of the source, named by its schema and its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableName {
    pub schema: String,
    pub table: String,
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// How one table is replicated, once the catalog is applied to what the source holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub name: TableName,
    pub replication_key: String,
    /// `None`: the table's own primary key.
    pub primary_key: Option<Vec<String>>,
    pub skip_columns: Vec<String>,
    pub reconcile: Reconcile,
    pub hard_deletes: HardDeletes,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CatalogError(pub String);

/// The built-in catalog, with the user's file (if any) on top.
pub fn load(user_file: Option<&Path>) -> Result<Catalog, CatalogError> {
    let mut catalog =
        parse(BUILT_IN, BUILT_IN_NAME).map_err(|e| CatalogError(format!("bug: {e}")))?;
    if let Some(path) = user_file {
        let text = yaml_input::read_file(path, Limits::CONFIG)
            .map_err(|e| CatalogError(format!("PG_REPLICATE_CATALOG: {e}")))?;
        let user = parse(&text, &path.display().to_string())?;
        catalog.schemas.extend(user.schemas);
        catalog.tables.extend(user.tables);
    }
    Ok(catalog)
}

/// Reads a catalog file's text; `file` names it in the report of its problems.
pub fn parse(text: &str, file: &str) -> Result<Catalog, CatalogError> {
    yaml_input::read_document(text, file, "catalog", read_catalog).map_err(CatalogError)
}

fn read_catalog<'a>(walker: &mut Walker, node: &'a MarkedYaml<'a>, catalog: &mut Catalog) {
    let Some(entries) = walker.mapping(node, "catalog") else {
        return;
    };
    walker.known_keys(&entries, &["schemas", "tables"], "catalog");
    for (key, _, value) in &entries {
        match key.as_str() {
            "schemas" => {
                let Some(schemas) = walker.mapping(value, "schemas") else {
                    continue;
                };
                for (schema, schema_node, entry) in &schemas {
                    if let Some(problem) = name_problem(schema) {
                        walker.problem(schema_node, format!("schema {schema:?}: {problem}"));
                    }
                    let what = format!("schema {schema}");
                    let entry = read_schema(walker, entry, &what);
                    catalog.schemas.insert(schema.clone(), entry);
                }
            }
            "tables" => {
                let Some(tables) = walker.mapping(value, "tables") else {
                    continue;
                };
                for (table, table_node, entry) in &tables {
                    let name = match parse_table_name(table) {
                        Ok(name) => name,
                        Err(problem) => {
                            walker.problem(table_node, format!("table {table:?}: {problem}"));
                            continue;
                        }
                    };
                    let entry = read_table(walker, entry, &format!("table {name}"));
                    catalog.tables.insert(name.to_string(), entry);
                }
            }
            _ => {}
        }
    }
}

fn read_schema<'a>(walker: &mut Walker, node: &'a MarkedYaml<'a>, what: &str) -> SchemaEntry {
    let mut entry = SchemaEntry::default();
    let Some(entries) = walker.mapping(node, what) else {
        return entry;
    };
    walker.known_keys(
        &entries,
        &["replication_key", "exclude", "reconcile", "hard_deletes"],
        what,
    );
    for (key, _, value) in &entries {
        match key.as_str() {
            "replication_key" => entry.replication_key = column(walker, value, what, key),
            "exclude" => entry.exclude = columns(walker, value, what, key),
            "reconcile" => entry.reconcile = reconcile(walker, value, what),
            "hard_deletes" => entry.hard_deletes = hard_deletes(walker, value, what),
            _ => {}
        }
    }
    entry
}

fn read_table<'a>(walker: &mut Walker, node: &'a MarkedYaml<'a>, what: &str) -> TableEntry {
    let mut entry = TableEntry::default();
    let Some(entries) = walker.mapping(node, what) else {
        return entry;
    };
    walker.known_keys(
        &entries,
        &[
            "replication_key",
            "primary_key",
            "skip_columns",
            "reconcile",
            "hard_deletes",
        ],
        what,
    );
    for (key, _, value) in &entries {
        match key.as_str() {
            "reconcile" => entry.reconcile = reconcile(walker, value, what),
            "hard_deletes" => entry.hard_deletes = hard_deletes(walker, value, what),
            "replication_key" => entry.replication_key = column(walker, value, what, key),
            "primary_key" => {
                let names = columns(walker, value, what, key);
                if names.is_empty() {
                    walker.problem(value, format!("{what}: primary_key names no column"));
                } else {
                    entry.primary_key = Some(names);
                }
            }
            "skip_columns" => entry.skip_columns = columns(walker, value, what, key),
            _ => {}
        }
    }
    if let (Some(key), Some(skipped)) = (
        &entry.replication_key,
        entries.iter().find(|(k, _, _)| k == "skip_columns"),
    ) && entry.skip_columns.contains(key)
    {
        walker.problem(
            skipped.2,
            format!("{what}: skip_columns leaves out the replication key {key}"),
        );
    }
    entry
}

fn reconcile(walker: &mut Walker, node: &MarkedYaml, what: &str) -> Option<Reconcile> {
    let text = walker.string(node, &format!("{what}: reconcile"))?;
    match text.parse() {
        Ok(every) => Some(every),
        Err(problem) => {
            walker.problem(node, format!("{what}: reconcile: {problem}"));
            None
        }
    }
}

fn hard_deletes(walker: &mut Walker, node: &MarkedYaml, what: &str) -> Option<HardDeletes> {
    match walker
        .string(node, &format!("{what}: hard_deletes"))?
        .as_str()
    {
        "mark" => Some(HardDeletes::Mark),
        "delete" => Some(HardDeletes::Delete),
        other => {
            walker.problem(
                node,
                format!("{what}: hard_deletes: expected mark or delete, found {other:?}"),
            );
            None
        }
    }
}

/// One column name.
fn column(walker: &mut Walker, node: &MarkedYaml, what: &str, key: &str) -> Option<String> {
    let name = walker.string(node, &format!("{what}: {key}"))?;
    match name_problem(&name) {
        Some(problem) => {
            walker.problem(node, format!("{what}: {key} {name:?}: {problem}"));
            None
        }
        None => Some(name),
    }
}

/// A list of names (columns or tables).
fn columns<'a>(
    walker: &mut Walker,
    node: &'a MarkedYaml<'a>,
    what: &str,
    key: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for item in walker.sequence(node, &format!("{what}: {key}")) {
        if let Some(name) = column(walker, item, what, key) {
            out.push(name);
        }
    }
    out
}

/// Names are Postgres identifiers as Heroku Connect writes them: lower-case letters, digits,
/// `_` and `$`, starting with a letter or `_`, at most 63 bytes. Anything else is refused rather
/// than quoted, so that a name means the same in Postgres and in the warehouse.
pub fn name_problem(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    match chars.next() {
        None => Some("a name cannot be empty"),
        _ if name.len() > 63 => Some("longer than 63 bytes, the most Postgres keeps"),
        Some(first) if !(first.is_ascii_lowercase() || first == '_') => {
            Some("must start with a lower-case letter or _")
        }
        _ if !chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$') =>
        {
            Some("only lower-case letters, digits, _ and $ may follow")
        }
        _ => None,
    }
}

/// `schema.table`.
pub fn parse_table_name(text: &str) -> Result<TableName, String> {
    let Some((schema, table)) = text.split_once('.') else {
        return Err("expected schema.table".to_owned());
    };
    for part in [schema, table] {
        if let Some(problem) = name_problem(part) {
            return Err(format!("{part:?}: {problem}"));
        }
    }
    Ok(TableName {
        schema: schema.to_owned(),
        table: table.to_owned(),
    })
}

impl Catalog {
    /// The tables to replicate: every table of each schema entry (as `list` finds them, less
    /// its exclusions) and every table entry, each with its settings. Sorted by name.
    pub fn select(&self, listed: &BTreeMap<String, Vec<String>>) -> Vec<Selected> {
        let mut selected: BTreeMap<TableName, Selected> = BTreeMap::new();
        for (schema, entry) in &self.schemas {
            for table in listed.get(schema).into_iter().flatten() {
                if entry.exclude.contains(table) {
                    continue;
                }
                let name = TableName {
                    schema: schema.clone(),
                    table: table.clone(),
                };
                selected.insert(name.clone(), self.settings(name));
            }
        }
        for key in self.tables.keys() {
            let name = parse_table_name(key).expect("checked when read");
            selected.insert(name.clone(), self.settings(name));
        }
        selected.into_values().collect()
    }

    fn settings(&self, name: TableName) -> Selected {
        let table = self.tables.get(&name.to_string());
        let schema = self.schemas.get(&name.schema);
        Selected {
            replication_key: table
                .and_then(|t| t.replication_key.clone())
                .or_else(|| schema.and_then(|s| s.replication_key.clone()))
                .unwrap_or_else(|| DEFAULT_REPLICATION_KEY.to_owned()),
            primary_key: table.and_then(|t| t.primary_key.clone()),
            skip_columns: table.map(|t| t.skip_columns.clone()).unwrap_or_default(),
            reconcile: table
                .and_then(|t| t.reconcile)
                .or_else(|| schema.and_then(|s| s.reconcile))
                .unwrap_or_default(),
            hard_deletes: table
                .and_then(|t| t.hard_deletes)
                .or_else(|| schema.and_then(|s| s.hard_deletes))
                .unwrap_or_default(),
            name,
        }
    }

    /// The catalog as YAML, as `--print-catalog` shows it.
    pub fn to_yaml(&self) -> String {
        let list = |names: &[String]| format!("[{}]", names.join(", "));
        let mut out = String::from("schemas:\n");
        for (schema, entry) in &self.schemas {
            out.push_str(&format!("  {schema}:\n"));
            if let Some(key) = &entry.replication_key {
                out.push_str(&format!("    replication_key: {key}\n"));
            }
            out.push_str(&format!("    exclude: {}\n", list(&entry.exclude)));
            if let Some(every) = entry.reconcile {
                out.push_str(&format!("    reconcile: {every}\n"));
            }
            if let Some(deletes) = entry.hard_deletes {
                out.push_str(&format!("    hard_deletes: {deletes}\n"));
            }
        }
        out.push_str("tables:\n");
        for (table, entry) in &self.tables {
            out.push_str(&format!("  {table}:\n"));
            if let Some(key) = &entry.replication_key {
                out.push_str(&format!("    replication_key: {key}\n"));
            }
            if let Some(key) = &entry.primary_key {
                out.push_str(&format!("    primary_key: {}\n", list(key)));
            }
            out.push_str(&format!(
                "    skip_columns: {}\n",
                list(&entry.skip_columns)
            ));
            if let Some(every) = entry.reconcile {
                out.push_str(&format!("    reconcile: {every}\n"));
            }
            if let Some(deletes) = entry.hard_deletes {
                out.push_str(&format!("    hard_deletes: {deletes}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_catalog_reads_and_leaves_heroku_connect_bookkeeping_out() {
        let catalog = load(None).unwrap();
        let listed = BTreeMap::from([(
            "salesforce".to_owned(),
            vec!["_hcmeta".into(), "_trigger_log".into(), "account".into()],
        )]);
        let selected = catalog.select(&listed);
        assert_eq!(selected.len(), 1);
        assert_eq!(selected[0].name.to_string(), "salesforce.account");
        assert_eq!(selected[0].replication_key, "systemmodstamp");
        assert_eq!(selected[0].primary_key, None);
    }

    #[test]
    fn table_entries_add_tables_and_set_a_schema_tables_settings() {
        let mut catalog = load(None).unwrap();
        let user = parse(
            "tables:\n  salesforce.account:\n    primary_key: [sfid]\n    skip_columns: [_hc_err]\n  \
             billing.invoice:\n    replication_key: updated_at\n",
            "user.yml",
        )
        .unwrap();
        catalog.tables.extend(user.tables);
        let listed = BTreeMap::from([("salesforce".to_owned(), vec!["account".into()])]);
        let selected = catalog.select(&listed);
        let names: Vec<String> = selected.iter().map(|s| s.name.to_string()).collect();
        assert_eq!(names, ["billing.invoice", "salesforce.account"]);
        assert_eq!(selected[0].replication_key, "updated_at");
        assert_eq!(selected[1].primary_key, Some(vec!["sfid".to_owned()]));
        assert_eq!(selected[1].skip_columns, ["_hc_err"]);
        assert_eq!(selected[1].replication_key, "systemmodstamp");
    }

    #[test]
    fn every_problem_is_reported_with_its_line_and_column() {
        let text = "\
schemas:
  Sales:
    exclude: account
tables:
  account: {}
  salesforce.contact:
    primary_key: []
    colour: red
    replication_key: [a, b]
";
        let err = parse(text, "c.yml").unwrap_err().to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines[0], "c.yml: 6 problems in the catalog", "{err}");
        for expected in [
            "c.yml:2:3: schema \"Sales\": must start with a lower-case letter or _",
            "c.yml:3:14: schema Sales: exclude: expected a list, found a string",
            "c.yml:5:3: table \"account\": expected schema.table",
            "c.yml:7:18: table salesforce.contact: primary_key names no column",
            "c.yml:8:5: table salesforce.contact: unknown key `colour`",
            "c.yml:9:22: table salesforce.contact: replication_key: expected a string, found a list",
        ] {
            assert!(
                lines.iter().any(|line| line.trim().starts_with(expected)),
                "{expected:?} not in:\n{err}"
            );
        }
    }

    #[test]
    fn reconciliation_is_set_per_schema_and_per_table() {
        let catalog = parse(
            "schemas:\n  salesforce:\n    reconcile: 24h\n    hard_deletes: delete\n\
             tables:\n  salesforce.account:\n    reconcile: every_run\n  \
             salesforce.contact:\n    hard_deletes: mark\n  billing.invoice: {}\n",
            "user.yml",
        )
        .unwrap();
        let listed = BTreeMap::from([("salesforce".to_owned(), vec!["lead".into()])]);
        let settings: Vec<(String, Reconcile, HardDeletes)> = catalog
            .select(&listed)
            .into_iter()
            .map(|s| (s.name.to_string(), s.reconcile, s.hard_deletes))
            .collect();
        assert_eq!(
            settings,
            [
                ("billing.invoice".into(), Reconcile::Off, HardDeletes::Mark),
                (
                    "salesforce.account".into(),
                    Reconcile::EveryRun,
                    HardDeletes::Delete
                ),
                (
                    "salesforce.contact".into(),
                    Reconcile::EveryHours(24),
                    HardDeletes::Mark
                ),
                (
                    "salesforce.lead".into(),
                    Reconcile::EveryHours(24),
                    HardDeletes::Delete
                ),
            ]
        );
        let yaml = catalog.to_yaml();
        assert_eq!(parse(&yaml, "printed").unwrap(), catalog, "{yaml}");

        let err = parse(
            "tables:\n  a.b:\n    reconcile: daily\n    hard_deletes: soft\n  a.c:\n    \
             reconcile: 0h\n",
            "bad.yml",
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "bad.yml:3:16: table a.b: reconcile: expected off, every_run or a number of hours",
            "bad.yml:4:19: table a.b: hard_deletes: expected mark or delete, found \"soft\"",
            "bad.yml:6:16: table a.c: reconcile: expected off",
        ] {
            assert!(err.contains(expected), "{expected:?} not in:\n{err}");
        }
    }

    #[test]
    fn names_that_would_need_quoting_are_refused() {
        assert!(name_problem("account").is_none());
        assert!(name_problem("start_date__c").is_none());
        assert!(name_problem("Account").is_some());
        assert!(name_problem("a\"; drop").is_some());
        assert!(name_problem("").is_some());
        assert!(parse_table_name("salesforce").is_err());
        assert!(parse_table_name("a.b.c").is_err());
    }
}
