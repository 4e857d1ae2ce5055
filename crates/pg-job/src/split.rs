//! Splitting a script into the statements psql would send, each with the line it starts on.
//!
//! A `;` ends a statement only outside quotes, comments, dollar-quoted bodies, parentheses and
//! the `BEGIN ... END` body of a `CREATE FUNCTION/PROCEDURE ... BEGIN ATOMIC`: the rules of
//! PostgreSQL's own scanner as psql applies them (`src/fe_utils/psqlscan.l`), so that a script
//! that worked under `psql -f` splits the same way here. No crate does this: `sqlparser`'s
//! tokenizer does not track parentheses or `BEGIN ATOMIC`, and `pg_query`'s scanner split skips
//! text it cannot lex and needs a C build. Statements are sent exactly as written (a slice of the
//! file), so that the server's error positions map back to lines of the file.
//!
//! psql meta-commands (`\set`, `\i`, ...) are refused rather than sent: pg-job runs plain SQL.
//! `standard_conforming_strings` is assumed on (the default since PostgreSQL 9.1): in `'...'`
//! a backslash is an ordinary character; in `E'...'` it escapes the next one.

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    /// 1-based position in the script.
    pub number: usize,
    /// The 1-based line of the file its first token is on.
    pub line: usize,
    /// From its first token to its last, without the `;`.
    pub text: &'a str,
    /// Its first words, lower-cased (up to four), to recognise the kind of statement.
    pub words: Vec<String>,
}

impl Statement<'_> {
    /// The first line of the statement, whitespace collapsed, cut to `max` characters: what the
    /// log shows of it.
    pub fn label(&self, max: usize) -> String {
        let first_line = self.text.lines().next().unwrap_or_default();
        let collapsed = first_line.split_whitespace().collect::<Vec<_>>().join(" ");
        let more = self.text.contains('\n') || collapsed.chars().count() > max;
        let mut label: String = collapsed.chars().take(max).collect();
        if more {
            label.push('…');
        }
        label
    }

    /// The file line of a 1-based character position inside the statement (the server's
    /// error position).
    pub fn line_of_position(&self, position: u32) -> usize {
        let before = position.saturating_sub(1) as usize;
        self.line
            + self
                .text
                .chars()
                .take(before)
                .filter(|c| *c == '\n')
                .count()
    }

    /// `BEGIN`, `COMMIT` and the like: statements that would end or nest the transaction
    /// pg-job wraps the script in. `ROLLBACK TO SAVEPOINT` and `SAVEPOINT` are fine inside one.
    pub fn controls_transaction(&self) -> bool {
        let first = self.words.first().map(String::as_str);
        let second = self.words.get(1).map(String::as_str);
        match first {
            Some("begin" | "commit" | "end" | "abort") => true,
            Some("start") => second == Some("transaction"),
            Some("rollback") => !matches!(second, Some("to")),
            Some("prepare") => second == Some("transaction"),
            _ => false,
        }
    }
}

/// A script split into statements, and what its header comments ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script<'a> {
    pub statements: Vec<Statement<'a>>,
    /// The header has a `-- pg-job: no-transaction` line.
    pub no_transaction: bool,
}

/// The comment directive that runs a script without a transaction.
pub const NO_TRANSACTION_DIRECTIVE: &str = "no-transaction";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("{what} is not closed before the end of the file")]
    Unterminated { what: &'static str, line: usize },
    #[error(
        "a parenthesis opened here is not closed before the end of the file (psql would send the rest as one statement)"
    )]
    UnclosedParenthesis { line: usize },
    #[error(
        "the BEGIN ATOMIC body of this CREATE FUNCTION/PROCEDURE has no matching END before the end of the file"
    )]
    UnclosedBegin { line: usize },
    #[error("`\\{command}` is a psql meta-command; pg-job runs plain SQL statements only")]
    MetaCommand { line: usize, command: String },
    #[error(
        "unknown pg-job directive `{directive}` (the one directive is `-- pg-job: {NO_TRANSACTION_DIRECTIVE}`)"
    )]
    UnknownDirective { line: usize, directive: String },
}

impl SplitError {
    /// The 1-based line the problem is on.
    pub fn line(&self) -> usize {
        match self {
            SplitError::Unterminated { line, .. }
            | SplitError::UnclosedParenthesis { line }
            | SplitError::UnclosedBegin { line }
            | SplitError::MetaCommand { line, .. }
            | SplitError::UnknownDirective { line, .. } => *line,
        }
    }
}

/// Splits `source` into statements. Comment-only and empty statements (`;;`) are dropped, as
/// psql does.
pub fn split(source: &str) -> Result<Script<'_>, SplitError> {
    let mut scanner = Scanner {
        src: source,
        bytes: source.as_bytes(),
        pos: 0,
        line: 1,
        statements: Vec::new(),
        current: None,
        no_transaction: false,
    };
    scanner.run()?;
    Ok(Script {
        statements: scanner.statements,
        no_transaction: scanner.no_transaction,
    })
}

/// The statement being scanned.
struct Current {
    start: usize,
    line: usize,
    /// End of the last token seen, so that trailing comments are not part of the statement.
    end: usize,
    paren_depth: usize,
    /// Line of the outermost open parenthesis, for the error when it is never closed.
    paren_line: usize,
    begin_depth: usize,
    words: Vec<String>,
}

impl Current {
    /// `CREATE [OR REPLACE] FUNCTION|PROCEDURE`: the one statement whose body may hold `;`
    /// outside quotes (`BEGIN ATOMIC ... END`). psql's heuristic, word for word.
    fn is_routine(&self) -> bool {
        let word = |i: usize| self.words.get(i).map(String::as_str);
        let routine = |w: Option<&str>| matches!(w, Some("function" | "procedure"));
        word(0) == Some("create")
            && (routine(word(1))
                || (word(1) == Some("or") && word(2) == Some("replace") && routine(word(3))))
    }
}

struct Scanner<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    line: usize,
    statements: Vec<Statement<'a>>,
    current: Option<Current>,
    no_transaction: bool,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

/// Identifier characters; `$` only after the first (`a$b` is one identifier).
fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// Dollar-quote tags are identifiers without `$`.
fn is_tag_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit()
}

impl<'a> Scanner<'a> {
    fn peek(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.pos + offset).copied()
    }

    /// Moves to `to`, counting the lines passed.
    fn advance_to(&mut self, to: usize) {
        let to = to.min(self.bytes.len());
        self.line += self.bytes[self.pos..to]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.pos = to;
    }

    fn run(&mut self) -> Result<(), SplitError> {
        while let Some(b) = self.peek(0) {
            match b {
                b' ' | b'\t' | b'\r' | b'\x0c' => self.pos += 1,
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                }
                b'-' if self.peek(1) == Some(b'-') => self.line_comment()?,
                b'/' if self.peek(1) == Some(b'*') => self.block_comment()?,
                _ => self.token(b)?,
            }
        }
        self.finish_statement_at_end()
    }

    fn line_comment(&mut self) -> Result<(), SplitError> {
        let start = self.pos;
        let end = self.bytes[start..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .map_or(self.bytes.len(), |n| start + n);
        // Directives count only in the header, before the first statement.
        if self.current.is_none() && self.statements.is_empty() {
            self.directive(&self.src[start + 2..end])?;
        }
        self.pos = end;
        Ok(())
    }

    fn directive(&mut self, comment: &str) -> Result<(), SplitError> {
        let Some((key, value)) = comment.split_once(':') else {
            return Ok(());
        };
        if !key.trim().eq_ignore_ascii_case("pg-job") {
            return Ok(());
        }
        let value = value.trim();
        if value.eq_ignore_ascii_case(NO_TRANSACTION_DIRECTIVE) {
            self.no_transaction = true;
            Ok(())
        } else {
            Err(SplitError::UnknownDirective {
                line: self.line,
                directive: value.to_owned(),
            })
        }
    }

    /// `/* ... */`, nesting as PostgreSQL's comments do.
    fn block_comment(&mut self) -> Result<(), SplitError> {
        let line = self.line;
        let mut depth = 0usize;
        let mut i = self.pos;
        while i < self.bytes.len() {
            if self.bytes[i..].starts_with(b"/*") {
                depth += 1;
                i += 2;
            } else if self.bytes[i..].starts_with(b"*/") {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    self.advance_to(i);
                    return Ok(());
                }
            } else {
                i += 1;
            }
        }
        Err(SplitError::Unterminated {
            what: "a /* comment",
            line,
        })
    }

    fn current(&mut self) -> &mut Current {
        let (pos, line) = (self.pos, self.line);
        self.current.get_or_insert_with(|| Current {
            start: pos,
            line,
            end: pos,
            paren_depth: 0,
            paren_line: line,
            begin_depth: 0,
            words: Vec::new(),
        })
    }

    fn token(&mut self, b: u8) -> Result<(), SplitError> {
        self.current();
        let next = self.peek(1);
        match b {
            b'\'' => self.quoted(1, b'\'', false, "a quoted string")?,
            b'"' => self.quoted(1, b'"', false, "a quoted identifier")?,
            b'e' | b'E' if next == Some(b'\'') => self.quoted(2, b'\'', true, "an E'' string")?,
            b'b' | b'B' | b'x' | b'X' | b'n' | b'N' if next == Some(b'\'') => {
                self.quoted(2, b'\'', false, "a quoted string")?
            }
            b'u' | b'U' if next == Some(b'&') && self.peek(2) == Some(b'\'') => {
                self.quoted(3, b'\'', false, "a U&'' string")?
            }
            b'u' | b'U' if next == Some(b'&') && self.peek(2) == Some(b'"') => {
                self.quoted(3, b'"', false, "a U&\"\" identifier")?
            }
            b'$' => self.dollar()?,
            b'\\' => return Err(self.meta_command()),
            b'(' => {
                let line = self.line;
                let current = self.current();
                if current.paren_depth == 0 {
                    current.paren_line = line;
                }
                current.paren_depth += 1;
                self.pos += 1;
            }
            b')' => {
                let current = self.current();
                current.paren_depth = current.paren_depth.saturating_sub(1);
                self.pos += 1;
            }
            b';' => {
                let current = self.current();
                if current.paren_depth == 0 && current.begin_depth == 0 {
                    self.pos += 1;
                    self.finish_statement();
                    return Ok(());
                }
                self.pos += 1;
            }
            b'0'..=b'9' => self.number(),
            _ if is_ident_start(b) => self.identifier(),
            _ => self.pos += 1,
        }
        let pos = self.pos;
        self.current().end = pos;
        Ok(())
    }

    /// A string or identifier whose opening quote is `skip - 1` bytes in: doubled quotes stay
    /// inside; with `backslash`, so does any character after a backslash.
    fn quoted(
        &mut self,
        skip: usize,
        quote: u8,
        backslash: bool,
        what: &'static str,
    ) -> Result<(), SplitError> {
        let line = self.line;
        let mut i = self.pos + skip;
        while i < self.bytes.len() {
            let b = self.bytes[i];
            if b == quote {
                if self.bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                    continue;
                }
                self.advance_to(i + 1);
                return Ok(());
            }
            i += if backslash && b == b'\\' { 2 } else { 1 };
        }
        Err(SplitError::Unterminated { what, line })
    }

    /// `$tag$ ... $tag$`, a `$1` parameter, or a lone `$`.
    fn dollar(&mut self) -> Result<(), SplitError> {
        let start = self.pos;
        let mut i = start + 1;
        match self.bytes.get(i) {
            Some(b) if b.is_ascii_digit() => {
                while self.bytes.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                self.pos = i;
                return Ok(());
            }
            Some(&b) if is_ident_start(b) => {
                while self.bytes.get(i).is_some_and(|&b| is_tag_cont(b)) {
                    i += 1;
                }
            }
            _ => {}
        }
        if self.bytes.get(i) != Some(&b'$') {
            // `$abc` without a closing `$` is no quote; PostgreSQL rescans after the `$`.
            self.pos = start + 1;
            return Ok(());
        }
        let tag = &self.src[start..=i];
        let line = self.line;
        let body = i + 1;
        match self.src[body..].find(tag) {
            Some(n) => {
                self.advance_to(body + n + tag.len());
                Ok(())
            }
            None => Err(SplitError::Unterminated {
                what: if tag == "$$" {
                    "a $$ quoted body"
                } else {
                    "a dollar-quoted body"
                },
                line,
            }),
        }
    }

    /// Digits, a fraction and an exponent: enough that `1e5` is not read as identifier `e5`,
    /// while `1e'x'`-style oddities split as PostgreSQL's scanner does.
    fn number(&mut self) {
        let digits = |s: &Self, mut i: usize| {
            while s.bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        let mut i = digits(self, self.pos);
        if self.bytes.get(i) == Some(&b'.') && self.bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
        {
            i = digits(self, i + 1);
        }
        if matches!(self.bytes.get(i), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.bytes.get(i + 1), Some(b'+' | b'-')));
            if self.bytes.get(i + 1 + sign).is_some_and(u8::is_ascii_digit) {
                i = digits(self, i + 1 + sign);
            }
        }
        self.pos = i;
    }

    fn identifier(&mut self) {
        let start = self.pos;
        let mut i = start + 1;
        while self.bytes.get(i).is_some_and(|&b| is_ident_cont(b)) {
            i += 1;
        }
        self.pos = i;
        let word = &self.src[start..i];
        let current = self.current();
        if current.words.len() < 4 {
            current.words.push(word.to_ascii_lowercase());
        }
        if current.paren_depth == 0 && current.is_routine() {
            if word.eq_ignore_ascii_case("begin") {
                current.begin_depth += 1;
            } else if word.eq_ignore_ascii_case("case") {
                // CASE ends with END too; it matters only inside a BEGIN.
                if current.begin_depth >= 1 {
                    current.begin_depth += 1;
                }
            } else if word.eq_ignore_ascii_case("end") {
                current.begin_depth = current.begin_depth.saturating_sub(1);
            }
        }
    }

    fn meta_command(&self) -> SplitError {
        let rest = &self.src[self.pos + 1..];
        let command: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace())
            .take(20)
            .collect();
        SplitError::MetaCommand {
            line: self.line,
            command,
        }
    }

    fn finish_statement(&mut self) {
        if let Some(current) = self.current.take() {
            let text = &self.src[current.start..current.end];
            // A lone `;` starts a statement with no tokens: nothing to send.
            if !text.trim().is_empty() && text != ";" {
                self.statements.push(Statement {
                    number: self.statements.len() + 1,
                    line: current.line,
                    text,
                    words: current.words,
                });
            }
        }
    }

    fn finish_statement_at_end(&mut self) -> Result<(), SplitError> {
        if let Some(current) = &self.current {
            if current.paren_depth > 0 {
                return Err(SplitError::UnclosedParenthesis {
                    line: current.paren_line,
                });
            }
            if current.begin_depth > 0 {
                return Err(SplitError::UnclosedBegin { line: current.line });
            }
        }
        self.finish_statement();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(line, text)` of each statement.
    fn parts(source: &str) -> Vec<(usize, &str)> {
        split(source)
            .unwrap()
            .statements
            .iter()
            .map(|s| (s.line, s.text))
            .collect()
    }

    #[test]
    fn splits_on_top_level_semicolons_with_start_lines() {
        let source = "-- header\n\nCREATE TABLE t (a int, b text);\nINSERT INTO t\n  VALUES (1, 'x');  SELECT 1;\n\nSELECT 2";
        assert_eq!(
            parts(source),
            [
                (3, "CREATE TABLE t (a int, b text)"),
                (4, "INSERT INTO t\n  VALUES (1, 'x')"),
                (5, "SELECT 1"),
                (7, "SELECT 2"),
            ]
        );
    }

    #[test]
    fn semicolons_in_strings_identifiers_and_comments_do_not_split() {
        let source = concat!(
            "SELECT 'a;b', 'it''s; fine', \"odd;\"\"name\" -- trailing; comment\n",
            "  FROM t /* block; /* nested; */ still comment; */ WHERE x = ';';\n",
            "SELECT E'back\\'slash;', E'\\\\', 'plain\\';\n",
            "SELECT U&'d\\0061t;a', U&\"i;d\", B'1;0' , X'ff;', N'n;';\n",
        );
        let got = parts(source);
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(got[0].1.ends_with("WHERE x = ';'"), "{got:#?}");
        assert_eq!(got[1], (3, "SELECT E'back\\'slash;', E'\\\\', 'plain\\'"));
        assert_eq!(got[2].0, 4);
        assert!(got[2].1.ends_with("N'n;'"), "{got:#?}");
    }

    #[test]
    fn dollar_quoted_bodies_keep_their_semicolons() {
        let source = "CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$ LANGUAGE plpgsql;\nDO $body$ BEGIN PERFORM 'x$$y'; RAISE NOTICE $m$a;b$m$; END $body$;\nSELECT $1, a$b$c, $x FROM t;\nSELECT $tag$ $tagx$ ; $TAG$ ; $tag$;";
        let got = parts(source);
        assert_eq!(got.len(), 4, "{got:#?}");
        assert_eq!(got[0].0, 1);
        assert!(got[0].1.ends_with("$$ LANGUAGE plpgsql"));
        assert_eq!(got[1].0, 6);
        assert_eq!(got[2], (7, "SELECT $1, a$b$c, $x FROM t"));
        assert_eq!(got[3], (8, "SELECT $tag$ $tagx$ ; $TAG$ ; $tag$"));
    }

    #[test]
    fn parentheses_and_begin_atomic_hold_statements_together() {
        let source = "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO log VALUES (1); INSERT INTO log VALUES (2));\nCREATE OR REPLACE FUNCTION g(a int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN a > 0 THEN 1 ELSE 0 END;\n  SELECT a;\nEND;\nCREATE PROCEDURE p() BEGIN ATOMIC INSERT INTO t VALUES (1); END;\nSELECT 1 ); SELECT 2;\nBEGIN; END;";
        let got = parts(source);
        let lines: Vec<_> = got.iter().map(|p| p.0).collect();
        assert_eq!(lines, [1, 2, 7, 8, 8, 9, 9], "{got:#?}");
        assert!(got[1].1.ends_with("SELECT a;\nEND"));
    }

    #[test]
    fn comments_and_empty_statements_are_dropped() {
        assert!(parts("-- nothing\n/* at all */ ;;\n  ;").is_empty());
        assert_eq!(
            parts("SELECT 1 -- no semicolon at the end"),
            [(1, "SELECT 1")]
        );
        assert_eq!(parts("SELECT 1; -- done\n"), [(1, "SELECT 1")]);
        assert_eq!(
            parts("SELECT 1 /* c */ ;\n/* lead */ SELECT 2;"),
            [(1, "SELECT 1"), (2, "SELECT 2")]
        );
    }

    #[test]
    fn numbers_operators_and_non_ascii_text() {
        assert_eq!(
            parts(
                "SELECT 1e5, 1.5e-3, 2.e1, 1..2, café, 'héllo;' ;SELECT a-->b\n;SELECT 1 +-- c\n1;"
            ),
            [
                (1, "SELECT 1e5, 1.5e-3, 2.e1, 1..2, café, 'héllo;'"),
                (1, "SELECT a"),
                (2, "SELECT 1 +-- c\n1"),
            ]
        );
    }

    #[test]
    fn unterminated_constructs_name_the_line_they_start_on() {
        let cases = [
            (
                "SELECT 1;\nSELECT 'abc;\n",
                "line 2: a quoted string is not closed",
            ),
            (
                "SELECT 1;\n\nDO $$ BEGIN END;",
                "line 3: a $$ quoted body is not closed",
            ),
            (
                "SELECT $f$ x $g$;",
                "line 1: a dollar-quoted body is not closed",
            ),
            (
                "/* a /* b */\nSELECT 1;",
                "line 1: a /* comment is not closed",
            ),
            ("SELECT \"x;", "line 1: a quoted identifier is not closed"),
            ("SELECT E'\\';", "line 1: an E'' string is not closed"),
            (
                "SELECT 1;\nSELECT (1;\nSELECT 2;",
                "line 2: a parenthesis opened here",
            ),
            (
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1;",
                "line 1: the BEGIN ATOMIC body",
            ),
        ];
        for (source, expected) in cases {
            let err = split(source).unwrap_err();
            let shown = format!("line {}: {err}", err.line());
            assert!(shown.starts_with(expected), "{source:?}: {shown}");
        }
    }

    #[test]
    fn psql_meta_commands_are_refused() {
        let err = split("SELECT 1;\n\\set ON_ERROR_STOP on\n").unwrap_err();
        assert_eq!(
            err,
            SplitError::MetaCommand {
                line: 2,
                command: "set".into()
            }
        );
    }

    #[test]
    fn the_no_transaction_directive_counts_in_the_header_only() {
        let script = split("-- Rebuild indexes.\n--   pg-job:  No-Transaction\nVACUUM t;").unwrap();
        assert!(script.no_transaction);
        let script = split("SELECT 1;\n-- pg-job: no-transaction\nVACUUM t;").unwrap();
        assert!(!script.no_transaction);
        let err = split("-- pg-job: no_transaction\nVACUUM t;").unwrap_err();
        assert_eq!(
            err,
            SplitError::UnknownDirective {
                line: 1,
                directive: "no_transaction".into()
            }
        );
        // An ordinary comment that happens to hold a colon is no directive.
        assert!(
            !split("-- note: runs hourly\nSELECT 1;")
                .unwrap()
                .no_transaction
        );
    }

    #[test]
    fn statements_know_their_kind_label_and_error_lines() {
        let script = split("begin;\nStart Transaction;\nROLLBACK TO SAVEPOINT a; rollback;\nSAVEPOINT a;\nCOMMIT;\nEND;\nDO $$BEGIN END$$;\nSELECT 1,\n  2,\n  x;").unwrap();
        let controls: Vec<_> = script
            .statements
            .iter()
            .map(Statement::controls_transaction)
            .collect();
        assert_eq!(
            controls,
            [true, true, false, true, false, true, true, false, false]
        );
        let select = script.statements.last().unwrap();
        assert_eq!(select.label(80), "SELECT 1,…");
        assert_eq!(select.line_of_position(1), 8);
        assert_eq!(select.line_of_position(16), 10);
        assert_eq!(select.number, 9);
        assert_eq!(script.statements[0].label(3), "beg…");
    }
}
