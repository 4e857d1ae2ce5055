//! The source catalog: which files go into which table, as data, not code. The six sources of
//! the original job are built in (`catalog.yml`); a user catalog file adds sources, stages and
//! formats or replaces built-in ones by name, without a rebuild.
//!
//! Everything is checked before anything connects: references between sources, stages and
//! formats, identifiers, templates and the environment values they need.

use std::collections::BTreeMap;
use std::path::Path;

use yaml_input::{Limits, MarkedYaml, Walker};

use crate::stage::StageUrl;
use crate::template::{Template, Values};

const BUILT_IN: &str = include_str!("catalog.yml");

#[derive(Debug, Clone, Default)]
struct CatalogFile {
    stages: BTreeMap<String, String>,
    sources: BTreeMap<String, SourceDef>,
    formats: BTreeMap<String, Format>,
}

#[derive(Debug, Clone, Default)]
struct SourceDef {
    description: String,
    schema: String,
    table: String,
    stage: String,
    path: String,
    list_prefix: Option<String>,
    pattern: String,
    format: String,
    locations: Vec<String>,
}

/// How a source's files are read, and the columns of its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub description: String,
    pub delimiter: String,
    pub skip_header: u32,
    /// What the header lines say, where the job reads them before a load.
    pub header: HeaderKind,
    /// The quote character, or `none`.
    pub quote: String,
    /// The text that stands for NULL.
    pub null: Option<String>,
    pub compression: Compression,
    pub columns: Vec<Column>,
}

impl Format {
    pub fn quote_char(&self) -> Option<char> {
        (self.quote != "none")
            .then(|| self.quote.chars().next())
            .flatten()
    }
}

/// A format's header, as the embedded warehouse checks it before reading a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HeaderKind {
    /// Nothing to check: `skip_header` lines are skipped.
    #[default]
    None,
    /// The first line names the columns (each column's `field`, else its name), in order.
    Names,
    /// W3C extended log format (CloudFront): leading `#` directive lines, however many, and
    /// `#Fields:` names the fields; a file may have only the first of the columns' fields
    /// (older logs), the rest load as NULL.
    W3c,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compression {
    #[default]
    None,
    Gzip,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnType,
    /// The header's name for the column, where it is not the column's name.
    pub field: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Integer,
    Number,
    Date,
    Time,
    Timestamp,
    Boolean,
}

/// A source, checked: its templates parsed and its references resolved.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub description: String,
    pub schema: String,
    pub table: String,
    pub stage: String,
    stage_url: Template,
    path: Template,
    list_prefix: Option<Template>,
    pattern: Template,
    locations: Vec<Template>,
    pub format_name: String,
    pub format: Format,
}

/// One load: a source's files for one day (and one location, for sources with several).
#[derive(Debug, Clone)]
pub struct Load {
    pub source: String,
    pub location: Option<String>,
    pub date: jiff::civil::Date,
    pub schema: String,
    pub table: String,
    pub stage: String,
    pub stage_url: StageUrl,
    /// The path below the stage, as in `@stage/<path>`.
    pub path: String,
    /// What the preflight lists: `path`, or a narrower prefix below it.
    pub list_prefix: String,
    /// The regex matched against each file's whole path below the stage.
    pub pattern: String,
    pub format_name: String,
    pub format: Format,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    sources: BTreeMap<String, Source>,
}

/// Everything wrong with a catalog, each naming the file and object.
#[derive(Debug, thiserror::Error)]
#[error("the source catalog is invalid:\n  - {}", .0.join("\n  - "))]
pub struct CatalogError(pub Vec<String>);

impl Catalog {
    /// The built-in catalog, with the user's file (if any) merged over it by name.
    pub fn load(user_file: Option<&Path>) -> Result<Catalog, CatalogError> {
        let mut merged = read_catalog_file(BUILT_IN, "the built-in catalog")
            .map_err(|e| CatalogError(vec![format!("bug: {e}")]))?;
        if let Some(path) = user_file {
            let text = yaml_input::read_file(path, Limits::CONFIG)
                .map_err(|e| CatalogError(vec![e.to_string()]))?;
            let user = read_catalog_file(&text, &path.display().to_string())
                .map_err(|e| CatalogError(vec![e]))?;
            merged.stages.extend(user.stages);
            merged.sources.extend(user.sources);
            merged.formats.extend(user.formats);
        }
        Catalog::check(merged)
    }

    fn check(file: CatalogFile) -> Result<Catalog, CatalogError> {
        let mut problems = Vec::new();
        let mut stage_urls = BTreeMap::new();
        for (name, url) in &file.stages {
            check_identifier(&mut problems, &format!("stage {name}"), "name", name);
            match Template::parse(url) {
                Ok(t) if t.uses_location() => {
                    problems.push(format!("stage {name}: its URL cannot use {{location}}"));
                }
                Ok(t) => {
                    stage_urls.insert(name.clone(), t);
                }
                Err(e) => problems.push(format!("stage {name}: url: {e}")),
            }
        }
        for (name, format) in &file.formats {
            let what = format!("format {name}");
            if format.columns.is_empty() {
                problems.push(format!("{what}: has no columns"));
            }
            for column in &format.columns {
                check_identifier(&mut problems, &what, "column", &column.name);
            }
            if format.delimiter.chars().count() != 1 {
                problems.push(format!("{what}: delimiter must be one character"));
            }
            if format.quote != "none" && format.quote.chars().count() != 1 {
                problems.push(format!("{what}: quote must be one character or none"));
            }
        }
        let mut sources = BTreeMap::new();
        for (name, def) in file.sources {
            let what = format!("source {name}");
            check_identifier(&mut problems, &what, "name", &name);
            check_identifier(&mut problems, &what, "schema", &def.schema);
            check_identifier(&mut problems, &what, "table", &def.table);
            let stage_url = stage_urls.get(&def.stage).cloned();
            if stage_url.is_none() {
                problems.push(format!("{what}: stage {} is not defined", def.stage));
            }
            let format = file.formats.get(&def.format).cloned();
            if format.is_none() {
                problems.push(format!("{what}: format {} is not defined", def.format));
            }
            let mut parse = |field: &str, text: &str| {
                Template::parse(text)
                    .map_err(|e| problems.push(format!("{what}: {field}: {e}")))
                    .ok()
            };
            let path = parse("path", &def.path);
            let list_prefix = def.list_prefix.as_deref().map(|p| parse("list_prefix", p));
            let pattern = parse("pattern", &def.pattern);
            let locations: Vec<_> = def
                .locations
                .iter()
                .filter_map(|l| parse("locations", l))
                .collect();
            if let Some(pattern) = &pattern {
                // The pattern with placeholders filled must still be a regex.
                let probe = pattern.render(
                    &Values {
                        date: jiff::civil::date(2026, 1, 1),
                        location: Some("x"),
                        env: &|_| Some("x".to_owned()),
                    },
                    true,
                );
                if let Ok(probe) = probe
                    && let Err(e) = regex::Regex::new(&probe)
                {
                    problems.push(format!("{what}: pattern is not a valid regex: {e}"));
                }
            }
            let uses_location = path.as_ref().is_some_and(Template::uses_location)
                || pattern.as_ref().is_some_and(Template::uses_location);
            if uses_location && locations.is_empty() {
                problems.push(format!("{what}: uses {{location}} but lists no locations"));
            }
            let list_prefix = match list_prefix {
                None => Some(None),
                Some(parsed) => parsed.map(Some),
            };
            if let (Some(stage_url), Some(format), Some(path), Some(list_prefix), Some(pattern)) =
                (stage_url, format, path, list_prefix, pattern)
            {
                sources.insert(
                    name.clone(),
                    Source {
                        name,
                        description: def.description,
                        schema: def.schema,
                        table: def.table,
                        stage: def.stage,
                        stage_url,
                        path,
                        list_prefix,
                        pattern,
                        locations,
                        format_name: def.format,
                        format,
                    },
                );
            }
        }
        // Two sources that share a table must agree on its columns.
        let mut tables: BTreeMap<(String, String), &Source> = BTreeMap::new();
        for source in sources.values() {
            let key = (source.schema.to_lowercase(), source.table.to_lowercase());
            if let Some(other) = tables.get(&key) {
                if other.format.columns != source.format.columns {
                    problems.push(format!(
                        "sources {} and {} load {}.{} with different columns",
                        other.name, source.name, source.schema, source.table
                    ));
                }
            } else {
                tables.insert(key, source);
            }
        }
        if problems.is_empty() {
            Ok(Catalog { sources })
        } else {
            Err(CatalogError(problems))
        }
    }

    pub fn sources(&self) -> impl Iterator<Item = &Source> {
        self.sources.values()
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.get(name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.sources.keys().map(String::as_str).collect()
    }
}

impl Source {
    /// The loads of this source for `date`: one, or one per location.
    pub fn loads(
        &self,
        date: jiff::civil::Date,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<Load>, String> {
        let plain = Values {
            date,
            location: None,
            env,
        };
        let err = |field: &'static str| {
            let name = self.name.clone();
            move |e: String| format!("source {name}: {field}: {e}")
        };
        let stage_url = self
            .stage_url
            .render(&plain, false)
            .map_err(err("stage url"))?;
        let stage_url = StageUrl::parse(&stage_url)
            .map_err(|e| format!("source {}: stage {}: {e}", self.name, self.stage))?;
        let locations: Vec<Option<String>> = if self.locations.is_empty() {
            vec![None]
        } else {
            self.locations
                .iter()
                .map(|l| l.render(&plain, false).map(Some))
                .collect::<Result<_, _>>()
                .map_err(err("locations"))?
        };
        locations
            .into_iter()
            .map(|location| {
                let values = Values {
                    date,
                    location: location.as_deref(),
                    env,
                };
                let path = self.path.render(&values, false).map_err(err("path"))?;
                let list_prefix = match &self.list_prefix {
                    Some(t) => t.render(&values, false).map_err(err("list_prefix"))?,
                    None => path.clone(),
                };
                if !list_prefix.starts_with(&path) {
                    return Err(format!(
                        "source {}: list_prefix {list_prefix:?} is not below path {path:?}",
                        self.name
                    ));
                }
                Ok(Load {
                    source: self.name.clone(),
                    date,
                    schema: self.schema.clone(),
                    table: self.table.clone(),
                    stage: self.stage.clone(),
                    stage_url: stage_url.clone(),
                    path,
                    list_prefix,
                    pattern: self.pattern.render(&values, true).map_err(err("pattern"))?,
                    format_name: self.format_name.clone(),
                    format: self.format.clone(),
                    location,
                })
            })
            .collect()
    }

    /// The environment variables this source's templates read.
    pub fn env_vars(&self) -> Vec<&str> {
        let mut vars: Vec<&str> = [&self.stage_url, &self.path, &self.pattern]
            .into_iter()
            .chain(&self.list_prefix)
            .chain(&self.locations)
            .flat_map(Template::env_vars)
            .collect();
        vars.sort_unstable();
        vars.dedup();
        vars
    }
}

/// Reads a catalog file with the bounded YAML reader: every problem of its shape (unknown or
/// missing keys, wrong kinds of value) with its line and column, all at once.
fn read_catalog_file(text: &str, file: &str) -> Result<CatalogFile, String> {
    yaml_input::read_document(text, file, "source catalog", read_catalog)
}

fn read_catalog<'a>(walker: &mut Walker, node: &'a MarkedYaml<'a>, catalog: &mut CatalogFile) {
    let Some(entries) = walker.mapping(node, "catalog") else {
        return;
    };
    walker.known_keys(&entries, &["stages", "sources", "formats"], "catalog");
    for (key, _, value) in &entries {
        let Some(items) = walker.mapping(value, key) else {
            continue;
        };
        for (name, _, item) in &items {
            match key.as_str() {
                "stages" => {
                    if let Some(url) = walker.string(item, &format!("stage {name}")) {
                        catalog.stages.insert(name.clone(), url);
                    }
                }
                "sources" => {
                    if let Some(source) = read_source(walker, item, &format!("source {name}")) {
                        catalog.sources.insert(name.clone(), source);
                    }
                }
                "formats" => {
                    if let Some(format) = read_format(walker, item, &format!("format {name}")) {
                        catalog.formats.insert(name.clone(), format);
                    }
                }
                _ => {}
            }
        }
    }
}

/// A mapping's keys checked against `allowed`, and the `required` ones present.
fn fields<'a>(
    walker: &mut Walker,
    node: &'a MarkedYaml<'a>,
    what: &str,
    allowed: &[&str],
    required: &[&str],
) -> Option<yaml_input::Entries<'a>> {
    let entries = walker.mapping(node, what)?;
    walker.known_keys(&entries, allowed, what);
    let missing: Vec<&str> = required
        .iter()
        .filter(|key| !entries.iter().any(|(k, _, _)| k == *key))
        .copied()
        .collect();
    if !missing.is_empty() {
        walker.problem(node, format!("{what}: missing {}", missing.join(", ")));
        return None;
    }
    Some(entries)
}

fn read_source<'a>(walker: &mut Walker, node: &'a MarkedYaml<'a>, what: &str) -> Option<SourceDef> {
    const REQUIRED: &[&str] = &["schema", "table", "stage", "path", "pattern", "format"];
    const ALLOWED: &[&str] = &[
        "description",
        "schema",
        "table",
        "stage",
        "path",
        "list_prefix",
        "pattern",
        "format",
        "locations",
    ];
    let entries = fields(walker, node, what, ALLOWED, REQUIRED)?;
    let mut source = SourceDef::default();
    let problems_before = walker.problems.len();
    for (key, _, value) in &entries {
        let field = format!("{what}: {key}");
        if key == "locations" {
            source.locations = walker.strings(value, &field);
            continue;
        }
        let Some(text) = walker.string(value, &field) else {
            continue;
        };
        match key.as_str() {
            "description" => source.description = text,
            "schema" => source.schema = text,
            "table" => source.table = text,
            "stage" => source.stage = text,
            "path" => source.path = text,
            "list_prefix" => source.list_prefix = Some(text),
            "pattern" => source.pattern = text,
            "format" => source.format = text,
            _ => {}
        }
    }
    (walker.problems.len() == problems_before).then_some(source)
}

fn read_format<'a>(walker: &mut Walker, node: &'a MarkedYaml<'a>, what: &str) -> Option<Format> {
    const ALLOWED: &[&str] = &[
        "description",
        "delimiter",
        "skip_header",
        "header",
        "quote",
        "null",
        "compression",
        "columns",
    ];
    let entries = fields(walker, node, what, ALLOWED, &["delimiter", "columns"])?;
    let mut format = Format {
        description: String::new(),
        delimiter: String::new(),
        skip_header: 0,
        header: HeaderKind::None,
        quote: "\"".to_owned(),
        null: None,
        compression: Compression::None,
        columns: Vec::new(),
    };
    let problems_before = walker.problems.len();
    for (key, _, value) in &entries {
        let field = format!("{what}: {key}");
        match key.as_str() {
            "columns" => {
                for column in walker.sequence(value, &field) {
                    if let Some(column) = read_column(walker, column, &field) {
                        format.columns.push(column);
                    }
                }
            }
            "null" if Walker::is_null(value) => format.null = None,
            "skip_header" => match Walker::scalar_text(value).map(|t| t.parse::<u32>()) {
                Some(Ok(n)) => format.skip_header = n,
                _ => walker.problem(value, format!("{field}: expected a number of lines")),
            },
            "header" => match walker.string(value, &field).as_deref() {
                Some("none") => format.header = HeaderKind::None,
                Some("names") => format.header = HeaderKind::Names,
                Some("w3c") => format.header = HeaderKind::W3c,
                Some(other) => walker.problem(
                    value,
                    format!("{field}: {other:?} is not none, names or w3c"),
                ),
                None => {}
            },
            "compression" => match walker.string(value, &field).as_deref() {
                Some("none") => format.compression = Compression::None,
                Some("gzip") => format.compression = Compression::Gzip,
                Some(other) => {
                    walker.problem(value, format!("{field}: {other:?} is not none or gzip"))
                }
                None => {}
            },
            _ => {
                let Some(text) = walker.string(value, &field) else {
                    continue;
                };
                match key.as_str() {
                    "description" => format.description = text,
                    "delimiter" => format.delimiter = text,
                    "quote" => format.quote = text,
                    "null" => format.null = Some(text),
                    _ => {}
                }
            }
        }
    }
    (walker.problems.len() == problems_before).then_some(format)
}

fn read_column<'a>(walker: &mut Walker, node: &'a MarkedYaml<'a>, what: &str) -> Option<Column> {
    let entries = fields(
        walker,
        node,
        what,
        &["name", "type", "field"],
        &["name", "type"],
    )?;
    let (mut name, mut kind, mut field) = (None, None, None);
    for (key, _, value) in &entries {
        let text = walker.string(value, &format!("{what}: {key}"))?;
        if key == "name" {
            name = Some(text);
        } else if key == "field" {
            field = Some(text);
        } else {
            kind = match text.as_str() {
                "text" => Some(ColumnType::Text),
                "integer" => Some(ColumnType::Integer),
                "number" => Some(ColumnType::Number),
                "date" => Some(ColumnType::Date),
                "time" => Some(ColumnType::Time),
                "timestamp" => Some(ColumnType::Timestamp),
                "boolean" => Some(ColumnType::Boolean),
                other => {
                    walker.problem(
                        value,
                        format!(
                            "{what}: type {other:?} is not one of text, integer, number, date, \
                             time, timestamp, boolean"
                        ),
                    );
                    None
                }
            };
        }
    }
    Some(Column {
        name: name?,
        kind: kind?,
        field,
    })
}

/// Names that go into SQL unquoted: a letter or `_`, then letters, digits, `_`.
fn check_identifier(problems: &mut Vec<String>, what: &str, field: &str, value: &str) {
    let mut chars = value.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        problems.push(format!(
            "{what}: {field} {value:?} must start with a letter or _ and hold only letters, digits and _"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(name: &str) -> Option<String> {
        match name {
            "STAGE_ROOT" => Some("file:///data/stage".into()),
            "RELEASE_LOCATION" => Some("E1REL".into()),
            "DIAGNOSTIC_LOCATION_ONE" => Some("E1ONE".into()),
            "DIAGNOSTIC_LOCATION_TWO" => Some("E2TWO".into()),
            "AWS_ACCOUNT_ID" => Some("123456789012".into()),
            _ => None,
        }
    }

    #[test]
    fn built_in_sources_match_the_original_job() {
        let catalog = Catalog::load(None).unwrap();
        assert_eq!(
            catalog.names(),
            [
                "diagnostics",
                "licenses",
                "push_proxy",
                "push_proxy_de",
                "push_proxy_test",
                "releases"
            ]
        );
        let date = jiff::civil::date(2026, 11, 26);
        let table = |name: &str| {
            let loads = catalog.source(name).unwrap().loads(date, &env).unwrap();
            loads
                .iter()
                .map(|l| {
                    format!(
                        "{}.{} @{}/{} '{}'",
                        l.schema, l.table, l.stage, l.path, l.pattern
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            table("licenses"),
            [r"licenses.licenses @licenses_stage/2026-11-26 '.*2026-11-26\.csv'"]
        );
        assert_eq!(
            table("releases"),
            [
                r"releases.log_entries @releases_stage/releases.mattermost.com-cloudfront/E1REL '.*E1REL\.2026-11-26.*'"
            ]
        );
        assert_eq!(
            table("diagnostics"),
            [
                r"diagnostics.log_entries @diagnostics_stage/E1ONE '.*E1ONE\.2026-11-26.*'",
                r"diagnostics.log_entries @diagnostics_stage/E2TWO '.*E2TWO\.2026-11-26.*'",
            ]
        );
        let push = &catalog
            .source("push_proxy")
            .unwrap()
            .loads(date, &env)
            .unwrap()[0];
        assert_eq!(
            push.list_prefix,
            "AWSLogs/123456789012/elasticloadbalancing/us-east-1/2026/11/26/"
        );
        assert_eq!(
            table("push_proxy_de"),
            [
                "push_proxy.de_logs @push_proxy_de_stage/AWSLogs/123456789012/elasticloadbalancing/eu-central-1 '.*2026/11/26/.*'"
            ]
        );
    }

    #[test]
    fn a_user_catalog_adds_and_overrides_sources() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        write!(
            file,
            "stages:\n  exports: \"file:///exports\"\n\
             sources:\n  licenses:\n    schema: licenses\n    table: licenses_v2\n    stage: exports\n    \
             path: \"lic/{{yyyy}}\"\n    pattern: '.*{{date_compact}}\\.csv'\n    format: license_csv\n  \
             invoices:\n    schema: billing\n    table: invoices\n    stage: exports\n    \
             path: invoices\n    pattern: '.*{{date}}.*'\n    format: license_csv\n"
        )
        .unwrap();
        let catalog = Catalog::load(Some(file.path())).unwrap();
        assert!(catalog.source("invoices").is_some());
        let load = &catalog
            .source("licenses")
            .unwrap()
            .loads(jiff::civil::date(2026, 1, 2), &env)
            .unwrap()[0];
        assert_eq!(
            (
                load.table.as_str(),
                load.path.as_str(),
                load.pattern.as_str()
            ),
            ("licenses_v2", "lic/2026", r".*20260102\.csv")
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_object() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        write!(
            file,
            "sources:\n  bad-name:\n    schema: \"x; drop table y\"\n    table: t\n    stage: nowhere\n    \
             path: \"{{day}}\"\n    pattern: '(unclosed{{date}}'\n    format: nope\n"
        )
        .unwrap();
        let err = Catalog::load(Some(file.path())).unwrap_err().to_string();
        for needle in [
            "source bad-name: name \"bad-name\" must start with a letter",
            "source bad-name: schema \"x; drop table y\"",
            "source bad-name: stage nowhere is not defined",
            "source bad-name: format nope is not defined",
            "source bad-name: path: unknown placeholder {day}",
            "source bad-name: pattern is not a valid regex",
        ] {
            assert!(err.contains(needle), "{needle:?} not in:\n{err}");
        }
    }

    #[test]
    fn yaml_errors_name_file_line_and_column() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        write!(file, "sources:\n  x:\n    schema: [unclosed\n").unwrap();
        let err = Catalog::load(Some(file.path())).unwrap_err().to_string();
        let name = file.path().display().to_string();
        assert!(err.contains(&format!("{name}:")), "{err}");
        assert!(err.contains(":4:") || err.contains(":3:"), "{err}");
    }

    #[test]
    fn every_shape_problem_is_reported_with_its_line_and_column() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        write!(
            file,
            "stages:\n  s: [a]\nsources:\n  x:\n    schema: a\n    colour: red\n\
             formats:\n  f:\n    delimiter: \",\"\n    skip_header: many\n    compression: zip\n    \
             columns:\n      - {{name: a, type: text}}\n      - {{name: b, type: money}}\n"
        )
        .unwrap();
        let err = Catalog::load(Some(file.path())).unwrap_err().to_string();
        let name = file.path().display().to_string();
        for needle in [
            format!("{name}:2:6: stage s: expected a string, found a list"),
            format!("{name}:5:5: source x: missing table, stage, path, pattern, format"),
            format!("{name}:10:18: format f: skip_header: expected a number of lines"),
            format!("{name}:11:18: format f: compression: \"zip\" is not none or gzip"),
            format!("{name}:14:25: format f: columns: type \"money\" is not one of"),
        ] {
            assert!(err.contains(&needle), "{needle:?} not in:\n{err}");
        }
    }

    #[test]
    fn a_catalog_that_expands_past_its_limit_is_refused() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let mut text =
            String::from("a0: &a0 [\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"]\n");
        for level in 1..10 {
            let previous = format!("*a{}", level - 1);
            text.push_str(&format!(
                "a{level}: &a{level} [{}]\n",
                std::iter::repeat_n(previous, 10)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        write!(file, "{text}").unwrap();
        let err = Catalog::load(Some(file.path())).unwrap_err().to_string();
        assert!(err.contains("once its aliases are resolved"), "{err}");
    }

    #[test]
    fn missing_environment_values_are_named() {
        let catalog = Catalog::load(None).unwrap();
        let no_env = |_: &str| None;
        let err = catalog
            .source("releases")
            .unwrap()
            .loads(jiff::civil::date(2026, 1, 2), &no_env)
            .unwrap_err();
        assert_eq!(
            err,
            "source releases: stage url: environment variable STAGE_ROOT is not set"
        );
        assert_eq!(
            catalog.source("releases").unwrap().env_vars(),
            ["RELEASE_LOCATION", "STAGE_ROOT"]
        );
    }
}
