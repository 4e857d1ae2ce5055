//! Quoting names and values into Snowflake SQL. Both jobs build statements from configuration
//! (role, stage and table names, dates, patterns, e-mail comments) and none of it may change a
//! statement's meaning: a name is either a plain identifier Snowflake reads as written, or it is
//! double-quoted; a value is always a single-quoted literal.
//!
//! Snowflake folds an unquoted identifier to upper case and takes a double-quoted one exactly,
//! so there are two questions: "what did the person mean by `loader`" (LOADER: [`quote_ident`])
//! and "how do I name the object SHOW reported as `loader`" (it is lower case, so `"loader"`:
//! [`quote_ident_exact`]).

/// Words Snowflake reserves: unquoted, they are not read as names. From Snowflake's
/// "Reserved & limited keywords" list.
const RESERVED: &[&str] = &[
    "ACCOUNT",
    "ALL",
    "ALTER",
    "AND",
    "ANY",
    "AS",
    "BETWEEN",
    "BY",
    "CASE",
    "CAST",
    "CHECK",
    "COLUMN",
    "CONNECT",
    "CONNECTION",
    "CONSTRAINT",
    "CREATE",
    "CROSS",
    "CURRENT",
    "CURRENT_DATE",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "CURRENT_USER",
    "DATABASE",
    "DELETE",
    "DISTINCT",
    "DROP",
    "ELSE",
    "EXISTS",
    "FALSE",
    "FOLLOWING",
    "FOR",
    "FROM",
    "FULL",
    "GRANT",
    "GROUP",
    "GSCLUSTER",
    "HAVING",
    "ILIKE",
    "IN",
    "INCREMENT",
    "INNER",
    "INSERT",
    "INTERSECT",
    "INTO",
    "IS",
    "ISSUE",
    "JOIN",
    "LATERAL",
    "LEFT",
    "LIKE",
    "LOCALTIME",
    "LOCALTIMESTAMP",
    "MINUS",
    "NATURAL",
    "NOT",
    "NULL",
    "OF",
    "ON",
    "OR",
    "ORDER",
    "ORGANIZATION",
    "QUALIFY",
    "REGEXP",
    "REVOKE",
    "RIGHT",
    "RLIKE",
    "ROW",
    "ROWS",
    "SAMPLE",
    "SCHEMA",
    "SELECT",
    "SET",
    "SOME",
    "START",
    "TABLE",
    "TABLESAMPLE",
    "THEN",
    "TO",
    "TRIGGER",
    "TRUE",
    "TRY_CAST",
    "UNION",
    "UNIQUE",
    "UPDATE",
    "USING",
    "VALUES",
    "VIEW",
    "WHEN",
    "WHENEVER",
    "WHERE",
    "WITH",
];

/// A name as a person writes it in configuration (a variable, a `roles.yml`): a plain
/// identifier (letters, digits, `_`, `$`, not starting with a digit or `$`) stays unquoted and
/// Snowflake folds it to upper case, as it would in hand-written SQL; a name already in double
/// quotes (`"Mixed Case"`) is kept as written; anything else is double-quoted exactly, with
/// inner `"` doubled. Reserved words are quoted in upper case, which is what they mean.
pub fn quote_ident(name: &str) -> String {
    if is_quoted_ident(name) {
        return name.to_owned();
    }
    if is_plain(name) {
        let upper = name.to_ascii_uppercase();
        return if is_reserved(&upper) {
            double_quote(&upper)
        } else {
            name.to_owned()
        };
    }
    double_quote(name)
}

/// A name exactly as Snowflake stores it (as `SHOW` and `information_schema` report it): left
/// unquoted only when the unquoted form folds back to the same name, otherwise double-quoted.
pub fn quote_ident_exact(name: &str) -> String {
    let folds_to_itself =
        is_plain(name) && !name.bytes().any(|b| b.is_ascii_lowercase()) && !is_reserved(name);
    if folds_to_itself {
        name.to_owned()
    } else {
        double_quote(name)
    }
}

/// The name Snowflake stores (and `information_schema` reports) for a name written as
/// [`quote_ident`] reads it: `loader` → `LOADER`, `"Mixed Case"` → `Mixed Case`, `my-table` →
/// `my-table`. For comparing with catalog views, where names are values, not identifiers.
pub fn stored_name(name: &str) -> String {
    let quoted = quote_ident(name);
    match quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => quoted.to_ascii_uppercase(),
    }
}

/// A string literal: single quotes, with `'` doubled and `\` escaped (Snowflake reads `\` as an
/// escape inside single quotes, so a value ending in `\` would otherwise swallow the quote).
pub fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            // NUL ends a string in places Snowflake passes it on to; its escape keeps it whole.
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `^[A-Za-z_][A-Za-z0-9_$]*$`: what Snowflake reads as a name without quotes (folded to upper
/// case), unless it is a reserved word.
pub fn is_plain(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// Whether Snowflake reserves `word` (in any case): unquoted, it is not read as a name.
pub fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(word))
}

fn double_quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"..."` whose inner quotes all come in pairs: one quoted identifier, nothing after it.
fn is_quoted_ident(name: &str) -> bool {
    let Some(inner) = name
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return false;
    };
    !inner.is_empty() && inner.replace("\"\"", "").find('"').is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_stay_unquoted_and_fold() {
        assert_eq!(quote_ident("loader"), "loader");
        assert_eq!(quote_ident("RAW"), "RAW");
        assert_eq!(quote_ident("_tmp$1"), "_tmp$1");
        assert_eq!(quote_ident_exact("LOADER"), "LOADER");
        assert_eq!(quote_ident_exact("_TMP$1"), "_TMP$1");
    }

    #[test]
    fn reserved_words_are_quoted_in_upper_case() {
        assert_eq!(quote_ident("table"), "\"TABLE\"");
        assert_eq!(quote_ident("Select"), "\"SELECT\"");
        assert_eq!(quote_ident_exact("ORDER"), "\"ORDER\"");
    }

    #[test]
    fn stored_names_are_what_information_schema_reports() {
        assert_eq!(stored_name("loader"), "LOADER");
        assert_eq!(stored_name("Diagnostics"), "DIAGNOSTICS");
        assert_eq!(stored_name("\"Mixed Case\""), "Mixed Case");
        assert_eq!(stored_name("\"My\"\"Table\""), "My\"Table");
        assert_eq!(stored_name("my-table"), "my-table");
        assert_eq!(stored_name("select"), "SELECT");
    }

    #[test]
    fn exact_names_keep_their_case() {
        assert_eq!(quote_ident_exact("loader"), "\"loader\"");
        assert_eq!(quote_ident_exact("Mixed"), "\"Mixed\"");
        assert_eq!(quote_ident_exact("My Role"), "\"My Role\"");
    }

    #[test]
    fn hostile_names_cannot_escape_their_quotes() {
        let cases = [
            (
                "a\"; DROP DATABASE raw; --",
                "\"a\"\"; DROP DATABASE raw; --\"",
            ),
            ("role\"", "\"role\"\"\""),
            ("\"", "\"\"\"\""),
            ("x y", "\"x y\""),
            ("1abc", "\"1abc\""),
            ("$abc", "\"$abc\""),
            ("naïve", "\"naïve\""),
            ("a.b", "\"a.b\""),
            ("tab\there", "\"tab\there\""),
            ("", "\"\""),
        ];
        for (name, want) in cases {
            assert_eq!(quote_ident(name), want, "{name:?}");
            assert_eq!(quote_ident_exact(name), want, "{name:?}");
            assert_balanced_ident(&quote_ident(name));
        }
    }

    #[test]
    fn already_quoted_names_are_taken_as_written_only_when_well_formed() {
        assert_eq!(quote_ident("\"Mixed Case\""), "\"Mixed Case\"");
        assert_eq!(quote_ident("\"a\"\"b\""), "\"a\"\"b\"");
        // Not one quoted identifier: quoted as a whole, so the quotes become part of the name.
        assert_eq!(
            quote_ident("\"a\" OR 1=1 --\""),
            "\"\"\"a\"\" OR 1=1 --\"\"\""
        );
        assert_eq!(quote_ident("\"a\"b\""), "\"\"\"a\"\"b\"\"\"");
        assert_eq!(quote_ident("\"\""), "\"\"\"\"\"\"");
        // The exact form never trusts quotes: they are part of the stored name.
        assert_eq!(quote_ident_exact("\"x\""), "\"\"\"x\"\"\"");
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(quote_literal("plain"), "'plain'");
        assert_eq!(quote_literal("O'Brien"), "'O''Brien'");
        assert_eq!(quote_literal("ends with \\"), "'ends with \\\\'");
        assert_eq!(
            quote_literal("\\'; DROP TABLE t; --"),
            "'\\\\''; DROP TABLE t; --'"
        );
        assert_eq!(quote_literal("nul\0x"), "'nul\\0x'");
        assert_eq!(quote_literal(""), "''");
        for hostile in ["'", "\\", "\\'", "''", "a'||'b", "x\\\\'y", "é'\u{2019}"] {
            assert_balanced_literal(&quote_literal(hostile));
        }
    }

    /// Reads a quoted identifier the way Snowflake's lexer does and checks it ends at the end.
    fn assert_balanced_ident(quoted: &str) {
        if !quoted.starts_with('"') {
            return;
        }
        let body = &quoted[1..];
        let mut chars = body.chars().peekable();
        let mut consumed = 1;
        while let Some(c) = chars.next() {
            consumed += c.len_utf8();
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    consumed += 1;
                } else {
                    assert_eq!(consumed, quoted.len(), "identifier ends early: {quoted}");
                    return;
                }
            }
        }
        panic!("identifier never closes: {quoted}");
    }

    /// Reads a string literal the way Snowflake's lexer does (`''` and `\x` escapes).
    fn assert_balanced_literal(quoted: &str) {
        let bytes = quoted.as_bytes();
        assert_eq!(bytes[0], b'\'');
        let mut i = 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
                b'\'' => {
                    assert_eq!(i + 1, bytes.len(), "literal ends early: {quoted}");
                    return;
                }
                _ => i += 1,
            }
        }
        panic!("literal never closes: {quoted}");
    }
}
