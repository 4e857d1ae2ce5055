//! Reading the source: which tables a schema holds, a table's columns and primary key, and a
//! table's rows streamed with `COPY (SELECT …) TO STDOUT` into a spool file. Each table is read
//! in its own read-only REPEATABLE READ transaction, so that its columns and its rows come from
//! one snapshot; a cancellation (SIGTERM) sends the server a cancel request and rolls back.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use job_kit::secret;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::catalog::TableName;
use crate::types::{self, ColumnPlan, Select, quote};
use pg_conn::Session;

/// Fixed session settings, so that Postgres renders values the same way for every run: times in
/// UTC, ISO dates, floats exactly, bytes as hex.
pub const SESSION_SETUP: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; \
     SET IntervalStyle = 'postgres'; SET extra_float_digits = 1; SET bytea_output = 'hex';";

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Query(String),
    #[error("table {0} does not exist in the source")]
    NoTable(TableName),
    #[error("the read was cancelled (SIGTERM/SIGINT): a cancel request was sent to the server")]
    Interrupted,
    #[error("the read spooled more than {0} bytes (PG_REPLICATE_MAX_TABLE_BYTES): stopped")]
    TooLarge(u64),
    #[error("cannot write the spool file {file}: {source}")]
    Spool {
        file: String,
        source: std::io::Error,
    },
}

fn query_error(err: &tokio_postgres::Error) -> SourceError {
    SourceError::Query(secret::scrub(&job_kit::exit::chain(err)))
}

/// The ordinary and partitioned tables of each schema (partitions are read through their
/// parent).
pub async fn list_tables(
    session: &Session,
    schemas: impl IntoIterator<Item = &String>,
) -> Result<BTreeMap<String, Vec<String>>, SourceError> {
    let mut listed = BTreeMap::new();
    for schema in schemas {
        let rows = session
            .client
            .query(
                "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
                 ORDER BY 1",
                &[schema],
            )
            .await
            .map_err(|e| query_error(&e))?;
        listed.insert(schema.clone(), rows.iter().map(|r| r.get(0)).collect());
    }
    Ok(listed)
}

/// A table's columns (name and `format_type`) in order, and its primary key's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub columns: Vec<(String, String)>,
    pub primary_key: Vec<String>,
}

async fn describe(
    client: &tokio_postgres::Client,
    table: &TableName,
) -> Result<Described, SourceError> {
    let qualified = format!("{}.{}", quote(&table.schema), quote(&table.table));
    let found = client
        .query_one("SELECT to_regclass($1)::oid", &[&qualified])
        .await
        .map_err(|e| query_error(&e))?;
    let Some(oid) = found.get::<_, Option<u32>>(0) else {
        return Err(SourceError::NoTable(table.clone()));
    };
    let columns = client
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&oid],
        )
        .await
        .map_err(|e| query_error(&e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let primary_key = client
        .query(
            "SELECT a.attname::text FROM pg_index i \
             CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.position",
            &[&oid],
        )
        .await
        .map_err(|e| query_error(&e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Described {
        columns,
        primary_key,
    })
}

/// Which rows a read takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// Every row: a full copy.
    All,
    /// `key >= bookmark - lookback`, and every row whose key is NULL.
    Bookmark {
        key: String,
        /// The key's Postgres type, to read the bookmark back as one.
        key_type: String,
        bookmark: String,
        lookback: Option<Duration>,
    },
}

/// The query the COPY runs: each column rendered as its plan says.
pub fn select_sql(table: &TableName, columns: &[ColumnPlan], since: &Since) -> String {
    let list: Vec<String> = columns
        .iter()
        .map(|c| {
            let name = quote(&c.name);
            match c.select {
                Select::Text => format!("{name}::text"),
                Select::JsonArray => format!("array_to_json({name})::text"),
                Select::Hex => format!("encode({name}, 'hex')"),
            }
        })
        .collect();
    let mut sql = format!(
        "SELECT {} FROM {}.{}",
        list.join(", "),
        quote(&table.schema),
        quote(&table.table)
    );
    if let Since::Bookmark {
        key,
        key_type,
        bookmark,
        lookback,
    } = since
    {
        let key = quote(key);
        let literal = format!("'{}'::{key_type}", bookmark.replace('\'', "''"));
        let from = match lookback {
            Some(lookback) if !lookback.is_zero() => {
                format!("{literal} - interval '{} seconds'", lookback.as_secs())
            }
            _ => literal,
        };
        sql.push_str(&format!(" WHERE {key} >= {from} OR {key} IS NULL"));
    }
    sql
}

/// What [`read`] hands the load: the table as the snapshot saw it, and how many bytes it
/// spooled.
#[derive(Debug)]
pub struct Read {
    pub described: Described,
    pub bytes: u64,
}

/// Reads `table` into `spools` as CSV (no header; NULL as an empty field, an empty string as
/// `""`), in one snapshot (`in_snapshot`). `plan` turns the table's description into the
/// queries to run (the `n`th into the `n`th spool; a backfill reads beside the rows), or
/// refuses it.
pub async fn read<E: From<SourceError>>(
    session: &Session,
    table: &TableName,
    settings: &pg_conn::Settings,
    spools: &[&Path],
    max_bytes: u64,
    cancel: &CancellationToken,
    plan: impl FnOnce(&Described) -> Result<Vec<String>, E>,
) -> Result<Read, E> {
    in_snapshot(session, settings, async {
        let described = describe(&session.client, table).await?;
        let reads = plan(&described)?;
        assert!(reads.len() <= spools.len(), "a spool for each read");
        let mut bytes = 0;
        for (sql, spool) in reads.iter().zip(spools) {
            bytes += copy_out(session, sql, spool, max_bytes, cancel).await?;
        }
        Ok::<_, E>(Read { described, bytes })
    })
    .await
}

/// Runs `work` in one read-only REPEATABLE READ transaction, so that every query it makes sees
/// one snapshot of the source, with the session's fixed settings; rolls back when it fails.
pub async fn in_snapshot<T, E: From<SourceError>>(
    session: &Session,
    settings: &pg_conn::Settings,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let client = &session.client;
    let begin = format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {SESSION_SETUP} {}",
        settings.sql()
    );
    client
        .batch_execute(&begin)
        .await
        .map_err(|e| query_error(&e))?;
    match work.await {
        Ok(done) => {
            // Read-only: the COMMIT only ends the snapshot.
            client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| query_error(&e))?;
            Ok(done)
        }
        Err(err) => {
            session.rollback().await;
            Err(err)
        }
    }
}

/// How long a cancelled COPY may take to end before the job stops waiting for it.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// Streams the rows of `select` into `spool` as CSV; the bytes written. Fails past `max_bytes`.
pub async fn copy_out(
    session: &Session,
    select: &str,
    spool: &Path,
    max_bytes: u64,
    cancel: &CancellationToken,
) -> Result<u64, SourceError> {
    let sql = format!("COPY ({select}) TO STDOUT WITH (FORMAT csv)");
    let spool_error = |source| SourceError::Spool {
        file: spool.display().to_string(),
        source,
    };
    let file = tokio::fs::File::create(spool).await.map_err(spool_error)?;
    let mut writer = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let copy = async {
        let stream = session
            .client
            .copy_out(sql.as_str())
            .await
            .map_err(|e| query_error(&e))?;
        futures_util::pin_mut!(stream);
        let mut bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| query_error(&e))?;
            bytes += chunk.len() as u64;
            if bytes > max_bytes {
                return Err(SourceError::TooLarge(max_bytes));
            }
            writer.write_all(&chunk).await.map_err(spool_error)?;
        }
        writer.flush().await.map_err(spool_error)?;
        Ok(bytes)
    };
    tokio::pin!(copy);
    tokio::select! {
        biased;
        result = &mut copy => result,
        () = cancel.cancelled() => {
            tracing::warn!("cancelling the running read on the server");
            session.cancel_query().await;
            let _ = tokio::time::timeout(CANCEL_WAIT, copy).await;
            Err(SourceError::Interrupted)
        }
    }
}

/// Whether a replication key of this Postgres type takes the lookback.
pub fn key_is_time(source_type: &str) -> bool {
    types::is_time(&types::plan("k", source_type).target_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incremental_read_takes_the_lookback_and_null_keys() {
        let table = TableName {
            schema: "salesforce".into(),
            table: "account".into(),
        };
        let columns = [
            types::plan("sfid", "character varying(18)"),
            types::plan("tags", "text[]"),
            types::plan("logo", "bytea"),
        ];
        let since = Since::Bookmark {
            key: "systemmodstamp".into(),
            key_type: "timestamp without time zone".into(),
            bookmark: "2026-01-01 10:00:00".into(),
            lookback: Some(Duration::from_secs(600)),
        };
        assert_eq!(
            select_sql(&table, &columns, &since),
            "SELECT \"sfid\"::text, array_to_json(\"tags\")::text, encode(\"logo\", 'hex') \
             FROM \"salesforce\".\"account\" WHERE \"systemmodstamp\" >= \
             '2026-01-01 10:00:00'::timestamp without time zone - interval '600 seconds' \
             OR \"systemmodstamp\" IS NULL"
        );
        assert_eq!(
            select_sql(&table, &columns[..1], &Since::All),
            "SELECT \"sfid\"::text FROM \"salesforce\".\"account\""
        );
        assert!(key_is_time("timestamp with time zone"));
        assert!(!key_is_time("bigint"));
    }
}
