//! Placeholders in stage URLs, paths, patterns and locations: `{date}`, `{yyyy}`, `{env:NAME}`…
//!
//! Templates are parsed when the catalog loads, so an unknown placeholder is a configuration
//! error before anything connects. Regex quantifiers such as `{4}` or `{2,3}` are not
//! placeholders and stay as written.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Literal(String),
    /// `2026-11-26`
    Date,
    /// `20261126`
    DateCompact,
    Year,
    Month,
    Day,
    Location,
    Env(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    pieces: Vec<Piece>,
}

pub const PLACEHOLDERS: &str = "{date}, {date_compact}, {yyyy}, {mm}, {dd}, {location}, {env:NAME}";

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            literal.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                literal.push_str(&rest[open..]);
                rest = "";
                break;
            };
            let name = &after[..close];
            let piece = match name {
                "date" => Some(Piece::Date),
                "date_compact" => Some(Piece::DateCompact),
                "yyyy" => Some(Piece::Year),
                "mm" => Some(Piece::Month),
                "dd" => Some(Piece::Day),
                "location" => Some(Piece::Location),
                _ if name.starts_with("env:") => {
                    let var = &name[4..];
                    if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        return Err(format!("{{{name}}} does not name an environment variable"));
                    }
                    Some(Piece::Env(var.to_owned()))
                }
                // A regex quantifier like {4} or {2,3}.
                _ if name.chars().all(|c| c.is_ascii_digit() || c == ',') => None,
                _ => {
                    return Err(format!(
                        "unknown placeholder {{{name}}} (known: {PLACEHOLDERS})"
                    ));
                }
            };
            match piece {
                Some(piece) => {
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(piece);
                }
                None => literal.push_str(&rest[open..open + close + 2]),
            }
            rest = &after[close + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Template {
            text: text.to_owned(),
            pieces,
        })
    }

    pub fn uses_location(&self) -> bool {
        self.pieces.contains(&Piece::Location)
    }

    pub fn env_vars(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Env(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// Fills the placeholders. With `escape_regex`, every inserted value is escaped so that it
    /// matches itself literally inside a regex pattern.
    pub fn render(&self, values: &Values<'_>, escape_regex: bool) -> Result<String, String> {
        let mut out = String::new();
        for piece in &self.pieces {
            let value = match piece {
                Piece::Literal(text) => {
                    out.push_str(text);
                    continue;
                }
                Piece::Date => values.date.to_string(),
                Piece::DateCompact => values.date.strftime("%Y%m%d").to_string(),
                Piece::Year => values.date.strftime("%Y").to_string(),
                Piece::Month => values.date.strftime("%m").to_string(),
                Piece::Day => values.date.strftime("%d").to_string(),
                Piece::Location => values
                    .location
                    .ok_or("{location} is used, but the source has no locations")?
                    .to_owned(),
                Piece::Env(name) => (values.env)(name)
                    .ok_or_else(|| format!("environment variable {name} is not set"))?,
            };
            if escape_regex {
                out.push_str(&escape_regex_literal(&value));
            } else {
                out.push_str(&value);
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What placeholders stand for in one rendering.
pub struct Values<'a> {
    pub date: jiff::civil::Date,
    pub location: Option<&'a str>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// Escapes the characters that are special outside brackets in both Snowflake's (POSIX-style)
/// and Rust's regex syntax. Only those: `\-` or `\/` are not valid everywhere.
pub fn escape_regex_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(
        location: Option<&'a str>,
        env: &'a dyn Fn(&str) -> Option<String>,
    ) -> Values<'a> {
        Values {
            date: jiff::civil::date(2026, 3, 9),
            location,
            env,
        }
    }

    #[test]
    fn renders_dates_locations_and_env_values() {
        let env = |name: &str| (name == "LOC").then(|| "E1AB.CD".to_owned());
        let t =
            Template::parse("{env:LOC}/{yyyy}/{mm}/{dd}/{date_compact}-{date}-{location}").unwrap();
        assert_eq!(
            t.render(&values(Some("x"), &env), false).unwrap(),
            "E1AB.CD/2026/03/09/20260309-2026-03-09-x"
        );
    }

    #[test]
    fn inserted_values_are_escaped_in_patterns_but_the_template_is_not() {
        let env = |_: &str| Some("E1(A).B+".to_owned());
        let t = Template::parse(r".*{env:LOC}\.{date}.*").unwrap();
        assert_eq!(
            t.render(&values(None, &env), true).unwrap(),
            r".*E1\(A\)\.B\+\.2026-03-09.*"
        );
    }

    #[test]
    fn regex_quantifiers_are_not_placeholders() {
        let t = Template::parse(r"\d{4}-\d{2,3}/{date}").unwrap();
        let env = |_: &str| None;
        assert_eq!(
            t.render(&values(None, &env), true).unwrap(),
            r"\d{4}-\d{2,3}/2026-03-09"
        );
    }

    #[test]
    fn unknown_placeholders_and_missing_values_are_errors() {
        let err = Template::parse("{datum}").unwrap_err();
        assert!(err.contains("unknown placeholder {datum}"), "{err}");
        assert!(Template::parse("{env:}").is_err());
        let env = |_: &str| None;
        let t = Template::parse("{env:RELEASE_LOCATION}").unwrap();
        assert_eq!(
            t.render(&values(None, &env), false).unwrap_err(),
            "environment variable RELEASE_LOCATION is not set"
        );
        let t = Template::parse("{location}").unwrap();
        assert!(t.render(&values(None, &env), false).is_err());
    }
}
