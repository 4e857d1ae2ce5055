//! Snowflake's REST protocol for statements, as its own drivers speak it: the request body, the
//! reply envelope, and the codes that mean "still running" or "log in again". Every reply field
//! is optional here: a missing field must not hide the error code of a reply that has one.

use serde::{Deserialize, Deserializer, Serialize};

pub(crate) const ABORT_REQUEST_PATH: &str = "queries/v1/abort-request";

/// The statement is still running; follow `getResultUrl`.
const QUERY_IN_PROGRESS: &str = "333333";
/// The statement outlived Snowflake's synchronous wait and now runs detached; same as above.
const QUERY_IN_PROGRESS_ASYNC: &str = "333334";

/// Codes meaning the session is gone and the request was not carried out: log in again.
const SESSION_GONE: &[&str] = &[
    "390104", // user must login again
    "390111", // session no longer exists
    "390112", // session expired
    "390114", // authentication token expired
];

pub(crate) fn is_session_gone(code: &str) -> bool {
    SESSION_GONE.contains(&code)
}

/// Session parameters for one statement, sent in its request's `parameters`.
#[derive(Debug, Serialize)]
pub(crate) struct StatementParameters {
    /// JSON rows (text or null per value) rather than Arrow; the `snowflake-api` crate logs in as
    /// a Go client, whose result format this parameter sets.
    #[serde(rename = "GO_QUERY_RESULT_FORMAT")]
    pub result_format: &'static str,
    /// Snowflake stops the statement itself after this long, even if this process is gone
    /// (SIGKILL) and cannot abort it.
    #[serde(rename = "STATEMENT_TIMEOUT_IN_SECONDS")]
    pub statement_timeout_seconds: u64,
}

/// The body of `POST /queries/v1/abort-request`: the statement is named by its request id.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AbortRequest<'a> {
    pub sql_text: &'a str,
    pub request_id: &'a str,
}

/// The envelope of every reply.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Reply {
    #[serde(default, deserialize_with = "text_or_number")]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub success: bool,
    #[serde(default)]
    pub data: Option<ReplyData>,
}

/// The reply says the statement is still running.
pub(crate) fn is_in_progress(code: Option<&str>) -> bool {
    matches!(code, Some(QUERY_IN_PROGRESS | QUERY_IN_PROGRESS_ASYNC))
}

impl Reply {
    pub fn in_progress(&self) -> bool {
        is_in_progress(self.code.as_deref())
    }

    pub fn data(&self) -> Option<&ReplyData> {
        self.data.as_ref()
    }

    pub fn query_id(&self) -> Option<&str> {
        self.data().and_then(|d| d.query_id.as_deref())
    }

    /// The error code, from the envelope or from `data.errorCode`.
    pub fn error_code(&self) -> Option<&str> {
        self.code
            .as_deref()
            .or_else(|| self.data().and_then(|d| d.error_code.as_deref()))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ReplyData {
    pub query_id: Option<String>,
    pub get_result_url: Option<String>,
    pub rowtype: Vec<RowType>,
    pub rowset: Option<Vec<Vec<serde_json::Value>>>,
    pub rowset_base64: Option<String>,
    pub query_result_format: Option<String>,
    pub total: Option<i64>,
    pub statement_type_id: Option<i64>,
    #[serde(deserialize_with = "text_or_number")]
    pub error_code: Option<String>,
    pub sql_state: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RowType {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(default = "yes")]
    pub nullable: bool,
    #[serde(default)]
    pub scale: Option<i64>,
}

fn yes() -> bool {
    true
}

/// Statement types whose result row counts what they changed (Snowflake's ids: 0x3000 DML,
/// then insert, update, delete, merge, multi-table insert).
pub(crate) fn is_dml(statement_type_id: Option<i64>) -> bool {
    matches!(
        statement_type_id,
        Some(0x3000 | 0x3100 | 0x3200 | 0x3300 | 0x3400 | 0x3500)
    )
}

/// The columns of a DML result that count changed rows (as Snowflake's drivers sum them).
pub(crate) fn counts_changed_rows(column: &str) -> bool {
    matches!(
        column,
        "number of rows updated" | "number of multi-joined rows updated" | "number of rows deleted"
    ) || column.starts_with("number of rows inserted")
}

fn text_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(
        match Option::<serde_json::Value>::deserialize(deserializer)? {
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_replies_with_and_without_the_optional_fields() {
        let still_running: Reply = serde_json::from_str(
            r#"{"code":"333334","message":"Asynchronous execution in progress.","success":true,
                "data":{"queryId":"01b2","getResultUrl":"/queries/01b2/result","progressDesc":null}}"#,
        )
        .unwrap();
        assert!(still_running.in_progress());
        assert_eq!(still_running.query_id(), Some("01b2"));

        let expired: Reply = serde_json::from_str(
            r#"{"data":null,"code":"390112","message":"Your session has expired.","success":false}"#,
        )
        .unwrap();
        assert!(is_session_gone(expired.error_code().unwrap()));

        let sql_error: Reply = serde_json::from_str(
            r#"{"data":{"errorCode":"002003","sqlState":"42S02"},"code":"002003","message":"x","success":false}"#,
        )
        .unwrap();
        assert_eq!(sql_error.error_code(), Some("002003"));
        assert_eq!(
            sql_error.data().unwrap().sql_state.as_deref(),
            Some("42S02")
        );

        let numeric: Reply = serde_json::from_str(r#"{"code":390100,"success":false}"#).unwrap();
        assert_eq!(numeric.code.as_deref(), Some("390100"));
    }

    #[test]
    fn dml_counts() {
        assert!(is_dml(Some(0x3100)));
        assert!(!is_dml(Some(0x1000)));
        assert!(!is_dml(None));
        assert!(counts_changed_rows("number of rows inserted"));
        assert!(counts_changed_rows("number of rows inserted into T2"));
        assert!(!counts_changed_rows("rows_loaded"));
    }

    #[test]
    fn asks_for_json_and_a_server_side_timeout() {
        let parameters = serde_json::to_value(StatementParameters {
            result_format: "JSON",
            statement_timeout_seconds: 60,
        })
        .unwrap();
        assert_eq!(
            parameters,
            serde_json::json!({"GO_QUERY_RESULT_FORMAT": "JSON", "STATEMENT_TIMEOUT_IN_SECONDS": 60})
        );
    }
}
