//! How a Postgres column travels to the warehouse. Postgres renders every column as text in the
//! COPY (in a session fixed to UTC and ISO dates), and the warehouse casts that text to the
//! column's type; so each column has the expression Postgres selects and the type the warehouse
//! casts to. The table in the README (pg-replicate, type mapping) is this function.

/// How one column is read and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnPlan {
    pub name: String,
    /// Postgres's `format_type`, e.g. `numeric(18,2)`, `timestamp without time zone`, `text[]`.
    pub source_type: String,
    /// The warehouse (DuckDB) type.
    pub target_type: String,
    /// How the COPY renders the column: an SQL expression over the quoted column name.
    pub select: Select,
    /// How the warehouse turns the text back into a value.
    pub load: Load,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// Postgres's own text output.
    Text,
    /// `array_to_json(column)::text`: `[1,2,null]`, `["a","b"]`.
    JsonArray,
    /// `encode(column, 'hex')`.
    Hex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// `CAST(text AS target_type)`.
    Cast,
    /// `unhex(text)`: hex digits to bytes.
    Unhex,
}

/// The plan of a column whose Postgres type is `source_type` (as `format_type` prints it).
pub fn plan(name: &str, source_type: &str) -> ColumnPlan {
    let (select, load, target_type) = if let Some(element) = source_type.strip_suffix("[]") {
        match scalar(element) {
            // JSON's numbers and booleans are DuckDB's list syntax as well.
            Some(t) if is_number_or_boolean(&t) => {
                (Select::JsonArray, Load::Cast, format!("{t}[]"))
            }
            // Strings in JSON escape as DuckDB's list syntax does not: kept as JSON text.
            _ => (Select::JsonArray, Load::Cast, "VARCHAR".to_owned()),
        }
    } else if source_type == "bytea" {
        (Select::Hex, Load::Unhex, "BLOB".to_owned())
    } else {
        (
            Select::Text,
            Load::Cast,
            scalar(source_type).unwrap_or_else(|| "VARCHAR".to_owned()),
        )
    };
    ColumnPlan {
        name: name.to_owned(),
        source_type: source_type.to_owned(),
        target_type,
        select,
        load,
    }
}

fn is_number_or_boolean(target: &str) -> bool {
    matches!(
        target,
        "SMALLINT" | "INTEGER" | "BIGINT" | "FLOAT" | "DOUBLE" | "BOOLEAN"
    ) || target.starts_with("DECIMAL")
}

/// DuckDB's type for a scalar Postgres type; `None` for what is kept as text.
fn scalar(source_type: &str) -> Option<String> {
    let t = match source_type {
        "smallint" => "SMALLINT",
        "integer" => "INTEGER",
        "bigint" => "BIGINT",
        "real" => "FLOAT",
        "double precision" => "DOUBLE",
        // Unconstrained numeric has no scale to keep: DuckDB's DECIMAL needs one.
        "numeric" => "DOUBLE",
        "boolean" => "BOOLEAN",
        "date" => "DATE",
        "timestamp without time zone" => "TIMESTAMP",
        "timestamp with time zone" => "TIMESTAMPTZ",
        "time without time zone" => "TIME",
        "uuid" => "UUID",
        "text" | "name" | "citext" | "json" | "jsonb" | "xml" => "VARCHAR",
        _ => {
            if let Some(modifiers) = source_type
                .strip_prefix("numeric(")
                .and_then(|rest| rest.strip_suffix(')'))
            {
                let (precision, scale) = modifiers.split_once(',').unwrap_or((modifiers, "0"));
                let (precision, scale): (u32, u32) =
                    (precision.trim().parse().ok()?, scale.trim().parse().ok()?);
                // DuckDB's DECIMAL holds 38 digits; a negative or larger scale does not fit.
                return Some(if precision <= 38 && scale <= precision {
                    format!("DECIMAL({precision},{scale})")
                } else {
                    "DOUBLE".to_owned()
                });
            }
            if source_type.starts_with("character varying")
                || source_type.starts_with("character(")
                || source_type == "character"
            {
                return Some("VARCHAR".to_owned());
            }
            if source_type.starts_with("timestamp(") {
                return Some(
                    if source_type.ends_with("with time zone")
                        && !source_type.ends_with("without time zone")
                    {
                        "TIMESTAMPTZ"
                    } else {
                        "TIMESTAMP"
                    }
                    .to_owned(),
                );
            }
            return None;
        }
    };
    Some(t.to_owned())
}

impl ColumnPlan {
    /// The Snowflake type of the column, and how a transforming `COPY INTO … FROM (SELECT …)`
    /// turns its CSV field (`field`, 1-based) into a value: Snowflake casts text to the
    /// column's type itself, except JSON (`PARSE_JSON`) and hex bytes (`TO_BINARY`).
    pub fn snowflake(&self, field: usize) -> (String, String) {
        let field_ref = format!("${field}");
        let json = || format!("PARSE_JSON({field_ref})");
        let source = self.source_type.as_str();
        match self.select {
            // Arrays as JSON: Snowflake's ARRAY holds either kind.
            Select::JsonArray => ("ARRAY".to_owned(), json()),
            Select::Hex => (
                "BINARY".to_owned(),
                format!("TO_BINARY({field_ref}, 'HEX')"),
            ),
            Select::Text if matches!(source, "json" | "jsonb") => ("VARIANT".to_owned(), json()),
            Select::Text => {
                let target = self.target_type.as_str();
                let snowflake = match target {
                    // Snowflake's integers are all NUMBER(38,0).
                    "SMALLINT" | "INTEGER" | "BIGINT" => "NUMBER(38,0)".to_owned(),
                    "FLOAT" | "DOUBLE" => "FLOAT".to_owned(),
                    "TIMESTAMP" => "TIMESTAMP_NTZ".to_owned(),
                    "TIMESTAMPTZ" => "TIMESTAMP_TZ".to_owned(),
                    "UUID" => "VARCHAR(36)".to_owned(),
                    "BOOLEAN" | "DATE" | "TIME" | "VARCHAR" => target.to_owned(),
                    _ => match target
                        .strip_prefix("DECIMAL(")
                        .and_then(|rest| rest.strip_suffix(')'))
                    {
                        Some(precision_scale) => format!("NUMBER({precision_scale})"),
                        None => "VARCHAR".to_owned(),
                    },
                };
                (snowflake, field_ref)
            }
        }
    }
}

/// Whether a warehouse column of type `from` can become `to` without losing a value it holds:
/// a wider integer, a float to a double, a decimal with more digits before the point.
pub fn widens(from: &str, to: &str) -> bool {
    fn decimal(t: &str) -> Option<(u32, u32)> {
        let (p, s) = t
            .strip_prefix("DECIMAL(")?
            .strip_suffix(')')?
            .split_once(',')?;
        Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
    }
    match (from, to) {
        ("SMALLINT", "INTEGER" | "BIGINT") | ("INTEGER", "BIGINT") | ("FLOAT", "DOUBLE") => true,
        _ => match (decimal(from), decimal(to)) {
            (Some((p1, s1)), Some((p2, s2))) => s2 >= s1 && p2 - s2 >= p1 - s1,
            _ => false,
        },
    }
}

/// A key whose values are times: the lookback applies to it.
pub fn is_time(target_type: &str) -> bool {
    matches!(target_type, "TIMESTAMP" | "TIMESTAMPTZ" | "DATE")
}

/// A name quoted for SQL (Postgres and DuckDB quote alike).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_types_heroku_connect_uses() {
        let cases = [
            ("character varying(18)", "VARCHAR", Select::Text),
            ("text", "VARCHAR", Select::Text),
            ("numeric(18,2)", "DECIMAL(18,2)", Select::Text),
            ("numeric(10)", "DECIMAL(10,0)", Select::Text),
            ("numeric(60,2)", "DOUBLE", Select::Text),
            ("numeric", "DOUBLE", Select::Text),
            ("integer", "INTEGER", Select::Text),
            ("bigint", "BIGINT", Select::Text),
            ("boolean", "BOOLEAN", Select::Text),
            ("date", "DATE", Select::Text),
            ("timestamp without time zone", "TIMESTAMP", Select::Text),
            ("timestamp(3) without time zone", "TIMESTAMP", Select::Text),
            ("timestamp with time zone", "TIMESTAMPTZ", Select::Text),
            ("jsonb", "VARCHAR", Select::Text),
            ("uuid", "UUID", Select::Text),
            ("integer[]", "INTEGER[]", Select::JsonArray),
            ("numeric(5,1)[]", "DECIMAL(5,1)[]", Select::JsonArray),
            ("text[]", "VARCHAR", Select::JsonArray),
            ("bytea", "BLOB", Select::Hex),
            ("interval", "VARCHAR", Select::Text),
            ("point", "VARCHAR", Select::Text),
        ];
        for (source, target, select) in cases {
            let plan = plan("c", source);
            assert_eq!(
                (plan.target_type.as_str(), plan.select),
                (target, select),
                "{source}"
            );
        }
        assert_eq!(plan("c", "bytea").load, Load::Unhex);
        assert!(is_time("TIMESTAMP") && !is_time("BIGINT"));
    }

    /// The README's table, Snowflake's column.
    #[test]
    fn maps_the_types_to_snowflake_as_documented() {
        let cases = [
            ("character varying(18)", "VARCHAR", "$3"),
            ("text", "VARCHAR", "$3"),
            ("smallint", "NUMBER(38,0)", "$3"),
            ("bigint", "NUMBER(38,0)", "$3"),
            ("numeric(18,2)", "NUMBER(18,2)", "$3"),
            ("numeric", "FLOAT", "$3"),
            ("double precision", "FLOAT", "$3"),
            ("boolean", "BOOLEAN", "$3"),
            ("date", "DATE", "$3"),
            ("time without time zone", "TIME", "$3"),
            ("timestamp without time zone", "TIMESTAMP_NTZ", "$3"),
            ("timestamp with time zone", "TIMESTAMP_TZ", "$3"),
            ("uuid", "VARCHAR(36)", "$3"),
            ("json", "VARIANT", "PARSE_JSON($3)"),
            ("jsonb", "VARIANT", "PARSE_JSON($3)"),
            ("integer[]", "ARRAY", "PARSE_JSON($3)"),
            ("text[]", "ARRAY", "PARSE_JSON($3)"),
            ("bytea", "BINARY", "TO_BINARY($3, 'HEX')"),
            ("interval", "VARCHAR", "$3"),
        ];
        for (source, snowflake_type, load) in cases {
            assert_eq!(
                plan("c", source).snowflake(3),
                (snowflake_type.to_owned(), load.to_owned()),
                "{source}"
            );
        }
    }
}
