//! Snowflake names: how a name written in the spec becomes the name Snowflake stores, and how a
//! stored name or a value is written back into SQL so that no spec value can change what a
//! statement means.
//!
//! Snowflake folds unquoted identifiers to upper case (`loader` is stored as `LOADER`) and keeps
//! double-quoted ones exactly (`"my-role"` is stored as `my-role`). Everything in this crate
//! compares stored names; SQL is only ever produced through the connection layer's
//! [`quote_ident_exact`] and [`quote_literal`], the quoting stage-import uses too.

use std::fmt;

use serde::{Deserialize, Serialize};
use snowflake_conn::quote::{is_plain as is_unquoted_identifier, is_reserved};
pub use snowflake_conn::{quote_ident_exact, quote_literal};

/// Longest identifier Snowflake accepts.
pub const MAX_LEN: usize = 255;

/// A name exactly as Snowflake stores it (and prints it in `SHOW` output).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Name(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name may not be empty")]
    Empty,
    #[error("a name may have at most {MAX_LEN} characters")]
    TooLong,
    #[error(
        "a name may not contain control characters (newline, tab, NUL, bidirectional controls such as U+202E...)"
    )]
    ControlCharacter,
    #[error("a double-quoted name must double the quotes inside it (\"\")")]
    StrayQuote,
}

impl Name {
    /// A name as written in the spec, resolved the way Snowflake resolves it in SQL:
    /// - `"Exact Name"` (with the double quotes) is taken exactly, `""` standing for `"`;
    /// - a valid unquoted identifier (`loader`, `Raw_2`) is folded to upper case;
    /// - anything else (`gitlab-ci`, `jane@example.com`, a reserved word) is taken exactly as
    ///   written, as Permifrost does: such a name can only exist in Snowflake if it was quoted.
    pub fn from_spec(written: &str) -> Result<Name, NameError> {
        let stored = if written.len() >= 2 && written.starts_with('"') && written.ends_with('"') {
            let inner = &written[1..written.len() - 1];
            if inner.replace("\"\"", "").contains('"') {
                return Err(NameError::StrayQuote);
            }
            inner.replace("\"\"", "\"")
        } else if is_unquoted_identifier(written) && !is_reserved(written) {
            written.to_ascii_uppercase()
        } else {
            written.to_owned()
        };
        Name::checked(stored)
    }

    /// A name as Snowflake printed it (a `SHOW` column, a snapshot).
    pub fn stored(stored: impl Into<String>) -> Name {
        Name(stored.into())
    }

    fn checked(stored: String) -> Result<Name, NameError> {
        if stored.is_empty() {
            Err(NameError::Empty)
        } else if stored.chars().count() > MAX_LEN {
            Err(NameError::TooLong)
        } else if stored.chars().any(is_control_or_bidi) {
            Err(NameError::ControlCharacter)
        } else {
            Ok(Name(stored))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an SQL identifier.
    pub fn sql(&self) -> String {
        quote_ident_exact(&self.0)
    }
}

/// Messages show names as SQL would write them, so that `"loader"` and `LOADER` are told apart.
impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Splits a dotted name as `SHOW GRANTS` prints it (`RAW."my schema".T`) into stored parts.
/// Returns `None` when the quotes do not balance.
pub fn split_qualified(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted_part = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if current.is_empty() && !quoted_part => {
                quoted_part = true;
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            current.push('"');
                        }
                        Some('"') => break,
                        Some(other) => current.push(other),
                        None => return None,
                    }
                }
                // A quoted part must end the name or be followed by a dot.
                if !matches!(chars.peek(), None | Some('.')) {
                    return None;
                }
            }
            '.' => {
                parts.push(std::mem::take(&mut current));
                quoted_part = false;
            }
            other => current.push(other),
        }
    }
    parts.push(current);
    Some(parts)
}

/// A control character, or a bidirectional formatting character (U+202E RIGHT-TO-LEFT OVERRIDE
/// and its kin): those reorder how a plan reads on screen, so the text would not show what the
/// statement does.
pub fn is_control_or_bidi(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_names_resolve_like_snowflake() {
        for (written, stored) in [
            ("loader", "LOADER"),
            ("Raw_2$x", "RAW_2$X"),
            ("_private", "_PRIVATE"),
            ("\"Mixed Case\"", "Mixed Case"),
            ("\"say \"\"hi\"\"\"", "say \"hi\""),
            ("gitlab-ci", "gitlab-ci"),
            ("jane.doe@example.com", "jane.doe@example.com"),
            ("table", "table"),
            ("2fast", "2fast"),
        ] {
            assert_eq!(
                Name::from_spec(written).unwrap().as_str(),
                stored,
                "{written}"
            );
        }
    }

    #[test]
    fn bad_spec_names_are_refused() {
        assert_eq!(Name::from_spec(""), Err(NameError::Empty));
        assert_eq!(Name::from_spec("\"\""), Err(NameError::Empty));
        assert_eq!(Name::from_spec("a\nb"), Err(NameError::ControlCharacter));
        for bidi in ['\u{202E}', '\u{2066}', '\u{200F}', '\u{061C}'] {
            assert_eq!(
                Name::from_spec(&format!("evil{bidi}txt.exe")),
                Err(NameError::ControlCharacter),
                "{bidi:?}"
            );
        }
        assert!(Name::from_spec("\"Zoë Ünïcode\"").is_ok());
        assert_eq!(Name::from_spec("\"a\"b\""), Err(NameError::StrayQuote));
        assert_eq!(Name::from_spec(&"x".repeat(256)), Err(NameError::TooLong));
        assert!(Name::from_spec(&"x".repeat(255)).is_ok());
    }

    #[test]
    fn identifiers_are_quoted_when_needed() {
        for (stored, sql) in [
            ("LOADER", "LOADER"),
            ("RAW_2$X", "RAW_2$X"),
            ("loader", "\"loader\""),
            ("Mixed", "\"Mixed\""),
            ("TABLE", "\"TABLE\""),
            ("gitlab-ci", "\"gitlab-ci\""),
            (
                "x\"; DROP ROLE ACCOUNTADMIN; --",
                "\"x\"\"; DROP ROLE ACCOUNTADMIN; --\"",
            ),
            ("1ABC", "\"1ABC\""),
        ] {
            assert_eq!(quote_ident_exact(stored), sql, "{stored}");
        }
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(quote_literal("plain"), "'plain'");
        assert_eq!(quote_literal("O'Brien"), "'O''Brien'");
        assert_eq!(
            quote_literal("a\\'; DROP USER X; --"),
            "'a\\\\''; DROP USER X; --'"
        );
    }

    #[test]
    fn qualified_names_split_on_unquoted_dots() {
        assert_eq!(
            split_qualified("RAW.PUBLIC.T").unwrap(),
            vec!["RAW", "PUBLIC", "T"]
        );
        assert_eq!(
            split_qualified("\"my.db\".\"sch\"\"x\".T").unwrap(),
            vec!["my.db", "sch\"x", "T"]
        );
        assert_eq!(
            split_qualified("RAW.<SCHEMA>").unwrap(),
            vec!["RAW", "<SCHEMA>"]
        );
        assert_eq!(split_qualified("\"open.T"), None);
        assert_eq!(split_qualified("\"a\"b.C"), None);
    }
}
