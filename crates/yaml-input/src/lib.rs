//! The one YAML reader of the jobs (permissions' spec, pg-replicate's catalog): every YAML input
//! goes through it, so that every one is bounded the same way and reports problems the same way.
//!
//! Bounded twice, because a small file can be a large document: the bytes read, and the bytes
//! the document expands to once aliases are resolved (a 1 KB file of nested aliases, or one long
//! string aliased many times, would otherwise become gigabytes in memory). The expansion is
//! measured on the parser's events, before any node is built. Documents keep their positions
//! (saphyr's marked nodes), so that a job reports every problem with its line and column.

use std::collections::HashMap;
use std::fmt;
use std::io::Read as _;
use std::path::Path;

pub use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use saphyr_parser::{Event, Parser};

/// How much YAML a job accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the file.
    pub max_input_bytes: usize,
    /// Bytes of the document with every alias replaced by what it names.
    pub max_expanded_bytes: usize,
}

impl Limits {
    /// A configuration file that people write: far above any real one, far below a pod's
    /// memory.
    pub const CONFIG: Limits = Limits {
        max_input_bytes: 8 * 1024 * 1024,
        max_expanded_bytes: 32 * 1024 * 1024,
    };
}

/// A position in a YAML file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loc {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A value and where the file says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    pub at: Loc,
}

/// One problem in a file: where (when a position is known) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub at: Option<Loc>,
    pub message: String,
}

impl Problem {
    pub fn at(node: &MarkedYaml, message: impl Into<String>) -> Problem {
        Problem {
            at: Some(loc(node)),
            message: message.into(),
        }
    }

    pub fn whole(message: impl Into<String>) -> Problem {
        Problem {
            at: None,
            message: message.into(),
        }
    }
}

/// `file: N problems in the <what>`, then one line per problem prefixed with
/// `file:line:column`, in the order given.
pub fn report(file: &str, what: &str, problems: &[Problem]) -> String {
    let n = problems.len();
    let mut out = format!(
        "{file}: {n} problem{} in the {what}",
        if n == 1 { "" } else { "s" }
    );
    for problem in problems {
        match problem.at {
            Some(at) => out.push_str(&format!("\n  {file}:{at}: {}", problem.message)),
            None => out.push_str(&format!("\n  {file}: {}", problem.message)),
        }
    }
    out
}

/// Why a file could not be read: the message names the file.
#[derive(Debug)]
pub struct ReadError(String);

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReadError {}

/// Reads a YAML file as text, at most `limits.max_input_bytes` of it.
pub fn read_file(path: &Path, limits: Limits) -> Result<String, ReadError> {
    let shown = path.display();
    let file =
        std::fs::File::open(path).map_err(|e| ReadError(format!("cannot read {shown}: {e}")))?;
    let mut bytes = Vec::new();
    file.take(limits.max_input_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError(format!("cannot read {shown}: {e}")))?;
    if bytes.len() > limits.max_input_bytes {
        return Err(ReadError(format!(
            "{shown} is larger than {} bytes, the most a YAML file may be",
            limits.max_input_bytes
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        ReadError(format!(
            "{shown} is not UTF-8 text (byte {} is not)",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Parses `text` into its documents, after checking its size and what its aliases expand to.
pub fn load(text: &str, limits: Limits) -> Result<Vec<MarkedYaml<'_>>, Problem> {
    if text.len() > limits.max_input_bytes {
        return Err(Problem::whole(format!(
            "the file is {} bytes; at most {} are read",
            text.len(),
            limits.max_input_bytes
        )));
    }
    check_expansion(text, limits.max_expanded_bytes)?;
    MarkedYaml::load_from_str(text).map_err(|e| Problem {
        at: Some(Loc {
            line: e.marker().line(),
            column: e.marker().col() + 1,
        }),
        message: format!("invalid YAML: {}", e.info()),
    })
}

/// Parses `text` as one document (none reads as `T::default()`) and hands it to `read`, which
/// records every problem on the walker; the value, or all the problems as [`report`] words them
/// for `file` and `what`.
pub fn read_document<T: Default>(
    text: &str,
    file: &str,
    what: &str,
    read: impl for<'a> FnOnce(&mut Walker, &'a MarkedYaml<'a>, &mut T),
) -> Result<T, String> {
    let documents = load(text, Limits::CONFIG).map_err(|p| report(file, what, &[p]))?;
    let mut walker = Walker::default();
    let mut value = T::default();
    match documents.as_slice() {
        [] => {}
        [document] => read(&mut walker, document, &mut value),
        [_, second, ..] => walker.problem(second, "one document expected, found more (---)"),
    }
    if walker.problems.is_empty() {
        Ok(value)
    } else {
        Err(report(file, what, &walker.problems))
    }
}

/// Walks the parser's events and adds up what the document would take once every alias is
/// replaced by its anchor's content: each scalar's bytes plus one per node. Stops at the first
/// event past `max`.
fn check_expansion(text: &str, max: usize) -> Result<(), Problem> {
    // Open collections: their anchor id and their size so far.
    let mut open: Vec<(usize, usize)> = Vec::new();
    let mut anchors: HashMap<usize, usize> = HashMap::new();
    let mut total: usize = 0;
    for event in Parser::new_from_str(text) {
        // A syntax error is reported by the loader, with its position.
        let Ok((event, span)) = event else {
            return Ok(());
        };
        let finished = match event {
            Event::Scalar(value, _, anchor, _) => Some((anchor, value.len().saturating_add(1))),
            Event::Alias(anchor) => Some((0, anchors.get(&anchor).copied().unwrap_or(1))),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                open.push((anchor, 1));
                None
            }
            Event::SequenceEnd | Event::MappingEnd => open.pop(),
            _ => None,
        };
        let Some((anchor, size)) = finished else {
            continue;
        };
        if anchor > 0 {
            anchors.insert(anchor, size);
        }
        match open.last_mut() {
            Some((_, parent)) => *parent = parent.saturating_add(size),
            None => total = total.saturating_add(size),
        }
        let open_total = open
            .iter()
            .fold(total, |sum, (_, n)| sum.saturating_add(*n));
        if open_total > max {
            return Err(Problem {
                at: Some(Loc {
                    line: span.start.line(),
                    column: span.start.col() + 1,
                }),
                message: format!(
                    "the document expands to more than {max} bytes once its aliases are \
                     resolved (an alias repeats what its anchor names): refused"
                ),
            });
        }
    }
    Ok(())
}

/// Where a node starts.
pub fn loc(node: &MarkedYaml) -> Loc {
    Loc {
        line: node.span.start.line(),
        column: node.span.start.col() + 1,
    }
}

/// What a node is, for messages ("expected a list, found a mapping").
pub fn describe(node: &MarkedYaml) -> &'static str {
    match &node.data {
        YamlData::Value(Scalar::Null) => "nothing",
        YamlData::Value(Scalar::Boolean(_)) => "a boolean",
        YamlData::Value(Scalar::Integer(_)) => "a number",
        YamlData::Value(Scalar::FloatingPoint(_)) => "a number",
        YamlData::Value(Scalar::String(_)) | YamlData::Representation(..) => "a string",
        YamlData::Sequence(_) => "a list",
        YamlData::Mapping(_) => "a mapping",
        YamlData::Tagged(..) => "a tagged value",
        _ => "an unreadable value",
    }
}

/// A mapping's entries: each key as text, the key's node, the value's node.
pub type Entries<'a> = Vec<(String, &'a MarkedYaml<'a>, &'a MarkedYaml<'a>)>;

/// Walks a YAML tree for a job's reader, collecting problems instead of stopping at the first:
/// the checks every YAML input needs (a mapping with known keys, strings, booleans, lists).
#[derive(Debug, Default)]
pub struct Walker {
    pub problems: Vec<Problem>,
}

impl Walker {
    pub fn problem(&mut self, node: &MarkedYaml, message: impl Into<String>) {
        self.problems.push(Problem {
            at: Some(loc(node)),
            message: message.into(),
        });
    }

    pub fn is_null(node: &MarkedYaml) -> bool {
        matches!(node.data, YamlData::Value(Scalar::Null))
    }

    /// A mapping's entries with their keys as text; `null` counts as an empty mapping.
    pub fn mapping<'a>(&mut self, node: &'a MarkedYaml<'a>, what: &str) -> Option<Entries<'a>> {
        match &node.data {
            YamlData::Mapping(map) => {
                let mut entries = Vec::with_capacity(map.len());
                for (key, value) in map {
                    // A key YAML reads as null (`null:`) is a field named `null` in the
                    // formats that use one (stage-import's NULL marker), not a missing key.
                    let text = if Self::is_null(key) {
                        Some("null".to_owned())
                    } else {
                        Self::scalar_text(key)
                    };
                    match text {
                        Some(text) => entries.push((text, key, value)),
                        None => self.problem(
                            key,
                            format!(
                                "{what}: a key must be a plain name, found {}",
                                describe(key)
                            ),
                        ),
                    }
                }
                Some(entries)
            }
            _ if Self::is_null(node) => Some(Vec::new()),
            YamlData::Tagged(tag, _) => {
                self.problem(
                    node,
                    format!(
                        "{what}: YAML tags such as !{} are not supported (write the content itself)",
                        tag.suffix
                    ),
                );
                None
            }
            _ => {
                self.problem(
                    node,
                    format!("{what}: expected a mapping, found {}", describe(node)),
                );
                None
            }
        }
    }

    /// Reports keys outside `allowed`, naming the ones that are.
    pub fn known_keys(&mut self, entries: &Entries, allowed: &[&str], what: &str) {
        for (key, key_node, _) in entries {
            if !allowed.contains(&key.as_str()) {
                self.problem(
                    key_node,
                    format!(
                        "{what}: unknown key `{key}` (expected one of: {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    pub fn scalar_text(node: &MarkedYaml) -> Option<String> {
        match &node.data {
            YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
            YamlData::Value(Scalar::Integer(i)) => Some(i.to_string()),
            YamlData::Representation(s, _, _) => Some(s.to_string()),
            _ => None,
        }
    }

    pub fn string(&mut self, node: &MarkedYaml, what: &str) -> Option<String> {
        let text = Self::scalar_text(node);
        if text.is_none() {
            self.problem(
                node,
                format!("{what}: expected a string, found {}", describe(node)),
            );
        }
        text
    }

    /// A boolean, also in the YAML 1.1 spellings (`yes`, `no`, `on`, `off`) that Permifrost's
    /// PyYAML reads as booleans and existing specs use.
    pub fn boolean(&mut self, node: &MarkedYaml, what: &str) -> Option<bool> {
        match &node.data {
            YamlData::Value(Scalar::Boolean(b)) => Some(*b),
            YamlData::Value(Scalar::String(s)) => match s.as_ref() {
                "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
                "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
                _ => {
                    self.problem(node, format!("{what}: expected true or false, found {s:?}"));
                    None
                }
            },
            _ => {
                self.problem(
                    node,
                    format!("{what}: expected true or false, found {}", describe(node)),
                );
                None
            }
        }
    }

    /// A list's items; `null` counts as an empty list.
    pub fn sequence<'a>(&mut self, node: &'a MarkedYaml<'a>, what: &str) -> &'a [MarkedYaml<'a>] {
        match &node.data {
            YamlData::Sequence(items) => items,
            _ if Walker::is_null(node) => &[],
            _ => {
                self.problem(
                    node,
                    format!("{what}: expected a list, found {}", describe(node)),
                );
                &[]
            }
        }
    }

    /// A list of strings (a single string is not taken for a list of one).
    pub fn strings(&mut self, node: &MarkedYaml, what: &str) -> Vec<String> {
        let mut out = Vec::new();
        for item in self.sequence(node, what) {
            if let Some(text) = self.string(item, what) {
                out.push(text);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limits = Limits {
        max_input_bytes: 4096,
        max_expanded_bytes: 10_000,
    };

    #[test]
    fn a_document_keeps_its_positions() {
        let docs = load("tables:\n  - name: account\n", SMALL).unwrap();
        assert_eq!(docs.len(), 1);
        let YamlData::Mapping(map) = &docs[0].data else {
            panic!("not a mapping")
        };
        let (_, tables) = map.iter().next().unwrap();
        assert_eq!(loc(tables), Loc { line: 2, column: 3 });
        assert_eq!(describe(tables), "a list");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let problem = load("a: [1, 2\nb: 3\n", SMALL).unwrap_err();
        assert!(problem.message.starts_with("invalid YAML"), "{problem:?}");
        assert!(problem.at.is_some());
    }

    /// A billion laughs: nine levels of nine aliases is 9^9 strings from a 400-byte file.
    #[test]
    fn nested_aliases_are_refused_before_they_expand() {
        let mut text = String::from("a0: &a0 [\"lol\"]\n");
        for level in 1..10 {
            let prev = format!("*a{}", level - 1);
            let items = vec![prev; 9].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
        }
        assert!(text.len() < 600);
        let problem = load(&text, Limits::CONFIG).unwrap_err();
        assert!(
            problem.message.contains("expands to more than"),
            "{problem:?}"
        );
        assert!(problem.at.is_some_and(|at| at.line > 1), "{problem:?}");
    }

    /// Few nodes, many bytes: a long string aliased many times (a node budget lets it pass).
    #[test]
    fn a_long_string_aliased_many_times_is_refused() {
        let long = "x".repeat(2000);
        let aliases = ["*s"; 10].join(", ");
        let text = format!("s: &s {long}\nmany: [{aliases}]\n");
        let problem = load(&text, SMALL).unwrap_err();
        assert!(problem.message.contains("10000 bytes"), "{problem:?}");
        // Under the limit, the same shape loads.
        let text = format!("s: &s {}\nmany: [*s, *s]\n", "x".repeat(100));
        assert_eq!(load(&text, SMALL).unwrap().len(), 1);
    }

    #[test]
    fn files_are_read_bounded_and_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yml");
        std::fs::write(&big, vec![b'#'; 5000]).unwrap();
        let err = read_file(&big, SMALL).unwrap_err().to_string();
        assert!(err.contains("big.yml is larger than 4096 bytes"), "{err}");
        let missing = dir.path().join("missing.yml");
        let err = read_file(&missing, SMALL).unwrap_err().to_string();
        assert!(
            err.contains("cannot read") && err.contains("missing.yml"),
            "{err}"
        );
        let ok = dir.path().join("ok.yml");
        std::fs::write(&ok, "a: 1\n").unwrap();
        assert_eq!(read_file(&ok, SMALL).unwrap(), "a: 1\n");
        assert!(load(&"#".repeat(5000), SMALL).is_err());
    }

    #[test]
    fn reports_name_the_file_line_and_column() {
        let problems = [
            Problem::whole("the catalog is empty"),
            Problem {
                at: Some(Loc { line: 3, column: 5 }),
                message: "unknown key `colums`".into(),
            },
        ];
        assert_eq!(
            report("catalog.yml", "catalog", &problems),
            "catalog.yml: 2 problems in the catalog\n  catalog.yml: the catalog is empty\n  \
             catalog.yml:3:5: unknown key `colums`"
        );
    }
}
