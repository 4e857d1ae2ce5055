//! A statement's result, simple enough for what the jobs read: `SHOW` output, `COPY INTO`'s
//! per-file report, a DML's row count. Values are text or `None` for NULL; a [`Row`] finds
//! them by column name and says clearly when a column is missing, NULL or not a number.

use crate::protocol;

/// One column of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// As Snowflake names it: `rows_loaded` for `COPY INTO`, `name` for `SHOW`, `A` for
    /// `SELECT a`.
    pub name: String,
    /// Snowflake's type, lower case: `fixed`, `real`, `text`, `boolean`, `date`, `time`,
    /// `timestamp_ntz`, `timestamp_ltz`, `timestamp_tz`, `variant`, `object`, `array`, `binary`.
    pub type_name: String,
    pub nullable: bool,
    pub scale: Option<i64>,
}

impl From<protocol::RowType> for Column {
    fn from(row_type: protocol::RowType) -> Self {
        Column {
            name: row_type.name,
            type_name: row_type.type_name.to_ascii_lowercase(),
            nullable: row_type.nullable,
            scale: row_type.scale,
        }
    }
}

/// The complete result of one statement (never a partial one: a reply that promised more rows
/// than arrived is an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult {
    pub(crate) query_id: String,
    pub(crate) columns: Vec<Column>,
    pub(crate) rows: Vec<Vec<Option<String>>>,
    pub(crate) rows_affected: Option<u64>,
}

impl QueryResult {
    /// Snowflake's id for the statement (its query history knows it by this).
    pub fn query_id(&self) -> &str {
        &self.query_id
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn rows(&self) -> impl ExactSizeIterator<Item = Row<'_>> {
        self.rows.iter().map(|values| Row {
            columns: &self.columns,
            values,
        })
    }

    /// The values, row by row, in column order; `None` is NULL.
    pub fn raw_rows(&self) -> &[Vec<Option<String>>] {
        &self.rows
    }

    pub fn into_raw_rows(self) -> Vec<Vec<Option<String>>> {
        self.rows
    }

    /// Rows inserted, updated or deleted, for DML statements; `None` for everything else.
    pub fn rows_affected(&self) -> Option<u64> {
        self.rows_affected
    }

    /// The position of a column: its exact name, or else the one column whose name matches
    /// ignoring case.
    pub fn column_index(&self, name: &str) -> Result<usize, ValueError> {
        column_index(&self.columns, name)
    }
}

fn column_index(columns: &[Column], name: &str) -> Result<usize, ValueError> {
    if let Some(i) = columns.iter().position(|c| c.name == name) {
        return Ok(i);
    }
    let mut matches = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.name.eq_ignore_ascii_case(name));
    match (matches.next(), matches.next()) {
        (Some((i, _)), None) => Ok(i),
        _ => Err(ValueError::NoColumn {
            column: name.to_owned(),
            available: columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// One row of a [`QueryResult`].
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [Column],
    values: &'a [Option<String>],
}

impl<'a> Row<'a> {
    /// The value of a column; `None` is NULL.
    pub fn get(&self, column: &str) -> Result<Option<&'a str>, ValueError> {
        let i = column_index(self.columns, column)?;
        Ok(self.values.get(i).and_then(|v| v.as_deref()))
    }

    /// The value of a column that must not be NULL.
    pub fn text(&self, column: &str) -> Result<&'a str, ValueError> {
        self.get(column)?.ok_or_else(|| ValueError::Null {
            column: column.to_owned(),
        })
    }

    pub fn i64(&self, column: &str) -> Result<i64, ValueError> {
        parse(column, self.text(column)?)
    }

    pub fn u64(&self, column: &str) -> Result<u64, ValueError> {
        parse(column, self.text(column)?)
    }

    /// A count that may be NULL (e.g. `COPY INTO`'s `first_error_line` when there was none).
    pub fn opt_u64(&self, column: &str) -> Result<Option<u64>, ValueError> {
        self.get(column)?.map(|v| parse(column, v)).transpose()
    }

    /// `true`/`false`, as typed BOOLEAN columns come back and `SHOW` writes its flags.
    pub fn bool(&self, column: &str) -> Result<bool, ValueError> {
        let value = self.text(column)?;
        if value.eq_ignore_ascii_case("true") {
            Ok(true)
        } else if value.eq_ignore_ascii_case("false") {
            Ok(false)
        } else {
            Err(ValueError::Invalid {
                column: column.to_owned(),
                expected: "true or false",
                value: value.to_owned(),
            })
        }
    }

    /// All values in column order.
    pub fn values(&self) -> &'a [Option<String>] {
        self.values
    }
}

fn parse<T: std::str::FromStr>(column: &str, value: &str) -> Result<T, ValueError> {
    value.trim().parse().map_err(|_| ValueError::Invalid {
        column: column.to_owned(),
        expected: "a whole number",
        value: value.to_owned(),
    })
}

/// A value a caller asked for is not there or not what it expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("the result has no column {column:?} (it has: {available})")]
    NoColumn { column: String, available: String },
    #[error("column {column:?} is NULL")]
    Null { column: String },
    #[error("column {column:?} holds {value:?}, not {expected}")]
    Invalid {
        column: String,
        expected: &'static str,
        value: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result() -> QueryResult {
        let column = |name: &str, type_name: &str| Column {
            name: name.into(),
            type_name: type_name.into(),
            nullable: true,
            scale: None,
        };
        QueryResult {
            query_id: "q1".into(),
            columns: vec![
                column("file", "text"),
                column("rows_loaded", "fixed"),
                column("first_error_line", "fixed"),
                column("grant_option", "text"),
            ],
            rows: vec![
                vec![
                    Some("s3://b/a.csv".into()),
                    Some("10".into()),
                    None,
                    Some("false".into()),
                ],
                vec![
                    Some("s3://b/b.csv".into()),
                    None,
                    Some("x".into()),
                    Some("yes".into()),
                ],
            ],
            rows_affected: None,
        }
    }

    #[test]
    fn rows_read_by_column_name() {
        let result = result();
        let rows: Vec<_> = result.rows().collect();
        assert_eq!(rows[0].text("file").unwrap(), "s3://b/a.csv");
        assert_eq!(rows[0].u64("ROWS_LOADED").unwrap(), 10);
        assert_eq!(rows[0].opt_u64("first_error_line").unwrap(), None);
        assert_eq!(rows[0].get("first_error_line").unwrap(), None);
        assert!(!rows[0].bool("grant_option").unwrap());
        assert_eq!(result.column_index("File").unwrap(), 0);
    }

    #[test]
    fn missing_null_and_malformed_values_are_named() {
        let result = result();
        let rows: Vec<_> = result.rows().collect();
        assert_eq!(
            rows[0].text("status").unwrap_err().to_string(),
            "the result has no column \"status\" (it has: file, rows_loaded, first_error_line, \
             grant_option)"
        );
        assert_eq!(
            rows[1].u64("rows_loaded").unwrap_err().to_string(),
            "column \"rows_loaded\" is NULL"
        );
        assert_eq!(
            rows[1].opt_u64("first_error_line").unwrap_err().to_string(),
            "column \"first_error_line\" holds \"x\", not a whole number"
        );
        assert!(rows[1].bool("grant_option").is_err());
    }

    #[test]
    fn ambiguous_case_insensitive_names_are_refused() {
        let mut result = result();
        result.columns[1].name = "Xx".into();
        result.columns[2].name = "xX".into();
        assert_eq!(result.column_index("xX").unwrap(), 2);
        assert!(matches!(
            result.column_index("XX"),
            Err(ValueError::NoColumn { .. })
        ));
    }
}
