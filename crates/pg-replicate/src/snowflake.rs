//! Snowflake as the target: a table's spooled rows are gzipped into parts, written to the S3
//! stage (`PG_REPLICATE_STAGE_URL`, with s3-files), and loaded with `COPY INTO` in one Snowflake
//! transaction with the bookmark, as the embedded warehouse loads them in one DuckDB
//! transaction:
//!
//! - a full copy: `DELETE` and `COPY INTO` the table itself when it has the columns it had
//!   (readers see the old rows until the commit); a table with other columns is created anew
//!   first (`CREATE OR REPLACE`, which Snowflake commits at once: until the load commits,
//!   readers see it empty);
//! - an incremental load: `COPY INTO` a work table (`_PG_REPLICATE.BATCH_<table>`), then the
//!   rows that differ (`IS DISTINCT FROM`, column by column) updated and the new ones inserted
//!   on the primary key; columns the source dropped are set to NULL in the rows written; new
//!   columns are added first and filled in from a second work table (the key and those
//!   columns of every row);
//! - the bookmark in `_PG_REPLICATE.BOOKMARKS`, in the same transaction;
//! - hard deletes: Snowflake sums its keys into buckets (`reconcile`), the source's keys of the
//!   differing buckets are loaded into a work table, and the rows gone marked or deleted in one
//!   transaction with `RECONCILED_AT`.
//!
//! Snowflake commits DDL at once, so what must precede the transaction (the work tables, a type
//! widened, a column added) is safe to repeat: a run killed after it changes nothing the next
//! run minds (a column added is added again `IF NOT EXISTS`).
//! Names are the source's, upper-cased as Snowflake stores unquoted names (`ORGM.ACCOUNT`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use s3_files::S3;
use snowflake_conn::{QueryResult, quote_ident, quote_literal};
use warehouse::WarehouseError;
use warehouse::snowflake::{SnowflakeWarehouse, StageAccess, snowflake_error};

use crate::catalog::HardDeletes;
use crate::load::{Bookmark, LoadPlan, Loaded, REPLICATED_AT};
use crate::reconcile::DELETED_AT;
use crate::types::ColumnPlan;

/// The schema of the job's own objects: the stage and the bookmarks.
pub const SCHEMA: &str = "_PG_REPLICATE";
const STAGE: &str = "_PG_REPLICATE.EXTRACTS";
const BOOKMARKS: &str = "_PG_REPLICATE.BOOKMARKS";
/// Uncompressed bytes per extract file: Snowflake loads the files of one COPY in parallel, and
/// documents 100–250 MB compressed as the size that loads fastest.
const PART_BYTES: u64 = 512 * 1024 * 1024;

/// Postgres's CSV: NULL is an empty unquoted field, an empty string `""`, and a backslash is
/// a character like any other.
const FILE_FORMAT: &str = "FILE_FORMAT = (TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '\"' \
     ESCAPE_UNENCLOSED_FIELD = NONE EMPTY_FIELD_AS_NULL = TRUE NULL_IF = () \
     COMPRESSION = GZIP)";

pub struct SnowflakeTarget {
    pub warehouse: SnowflakeWarehouse,
    pub s3: S3,
    /// `s3://bucket/prefix/`.
    pub stage_url: String,
    pub access: StageAccess,
}

/// `s3://bucket/prefix`: the bucket and the prefix (ending in `/` unless empty).
pub fn parse_stage_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url:?}: expected s3://bucket/prefix"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{url:?}: no bucket"));
    }
    let prefix = prefix.trim_matches('/');
    Ok((
        bucket.to_owned(),
        if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        },
    ))
}

/// A name as Snowflake stores an unquoted one, quoted where it must be.
fn ident(name: &str) -> String {
    quote_ident(name)
}

fn table_name(schema: &str, table: &str) -> String {
    format!("{}.{}", ident(schema), ident(table))
}

impl SnowflakeTarget {
    fn connection(&self) -> Result<&snowflake_conn::Connection, WarehouseError> {
        self.warehouse.connection()
    }

    async fn run(&self, sql: &str, what: &str) -> Result<QueryResult, WarehouseError> {
        self.connection()?
            .query(sql)
            .await
            .map_err(snowflake_error(what))
    }

    /// The job's schema, bookmarks table and stage, and the target schema: created when
    /// missing; the stage's URL and access are the run's.
    pub async fn setup(&self, target_schema: &str) -> Result<(), WarehouseError> {
        for sql in [
            format!("CREATE SCHEMA IF NOT EXISTS {SCHEMA}"),
            format!(
                "CREATE TABLE IF NOT EXISTS {BOOKMARKS} (SOURCE_TABLE VARCHAR NOT NULL, \
                 TARGET_TABLE VARCHAR NOT NULL, REPLICATION_KEY VARCHAR NOT NULL, \
                 BOOKMARK VARCHAR, COLUMNS_SIGNATURE VARCHAR NOT NULL, \
                 REPLICATED_AT TIMESTAMP_NTZ NOT NULL, RECONCILED_AT TIMESTAMP_NTZ)"
            ),
            format!(
                "CREATE OR REPLACE STAGE {STAGE}\n  URL = {}{}",
                quote_literal(&self.stage_url),
                self.access.clause()
            ),
            format!("CREATE SCHEMA IF NOT EXISTS {}", ident(target_schema)),
        ] {
            self.connection()?
                .query_idempotent(&sql)
                .await
                .map_err(snowflake_error("setting up the job's schema and stage"))?;
        }
        Ok(())
    }

    pub async fn read_bookmark(
        &self,
        source_table: &str,
        target_schema: &str,
        target_table: &str,
    ) -> Result<Option<Bookmark>, WarehouseError> {
        let result = self
            .connection()?
            .query_idempotent(&format!(
                "SELECT BOOKMARK, COLUMNS_SIGNATURE, \
                 DATE_PART(EPOCH_SECOND, RECONCILED_AT) AS RECONCILED_AT \
                 FROM {BOOKMARKS} WHERE SOURCE_TABLE = {}",
                quote_literal(source_table)
            ))
            .await
            .map_err(snowflake_error("reading the bookmark"))?;
        let found = result
            .rows()
            .next()
            .map(|row| -> Result<_, snowflake_conn::ValueError> {
                Ok((
                    row.get("BOOKMARK")?.map(str::to_owned),
                    row.text("COLUMNS_SIGNATURE")?.to_owned(),
                    row.get("RECONCILED_AT")?
                        .and_then(|at| at.split('.').next()?.parse::<i64>().ok()),
                ))
            })
            .transpose()
            .map_err(value_error("reading the bookmark"))?;
        let Some((value, signature, reconciled_at)) = found else {
            return Ok(None);
        };
        let target_exists = self
            .warehouse
            .table_exists(target_schema, target_table)
            .await?;
        Ok(Some(Bookmark {
            value,
            signature,
            target_exists,
            reconciled_at,
        }))
    }

    /// Gzips `spool` into parts below `work_dir` and writes them to the stage under `dir`; the
    /// parts' names below `dir`.
    pub async fn upload(
        &self,
        spool: &Path,
        work_dir: &Path,
        dir: &str,
    ) -> Result<Vec<String>, WarehouseError> {
        let (bucket, prefix) = parse_stage_url(&self.stage_url).map_err(WarehouseError::Setup)?;
        let parts_dir = tempfile::Builder::new()
            .prefix("pg-replicate-parts-")
            .tempdir_in(work_dir)
            .map_err(|e| WarehouseError::Setup(format!("{}: {e}", work_dir.display())))?;
        let (spool_path, parts_path) = (spool.to_owned(), parts_dir.path().to_owned());
        let parts =
            tokio::task::spawn_blocking(move || split_gzip(&spool_path, &parts_path, PART_BYTES))
                .await
                .map_err(|e| WarehouseError::Setup(format!("compressing the extract failed: {e}")))?
                .map_err(|e| WarehouseError::Setup(format!("compressing the extract: {e}")))?;
        let mut names = Vec::new();
        for part in &parts {
            let name = part
                .file_name()
                .and_then(|n| n.to_str())
                .expect("named by split_gzip")
                .to_owned();
            let key = format!("{prefix}{dir}/{name}");
            self.s3
                .put_file(&bucket, &key, part)
                .await
                .map_err(|e| WarehouseError::Setup(format!("writing the extract: {e}")))?;
            names.push(name);
        }
        Ok(names)
    }

    /// Loads the uploaded parts (`files`, below `dir` in the stage) as `plan` says, in one
    /// transaction with the bookmark. `previous`: the bookmark the table had.
    pub async fn load(
        &self,
        plan: &LoadPlan,
        dir: &str,
        files: &[String],
        backfill_files: &[String],
        previous: Option<&Bookmark>,
    ) -> Result<Loaded, WarehouseError> {
        let target = table_name(&plan.target_schema, &plan.target_table);
        let stamp = format!("{}::TIMESTAMP_NTZ", quote_literal(&plan.replicated_at));
        let before: Vec<String> = previous
            .and_then(|b| crate::signature_parts(&b.signature))
            .map(|(columns, _)| columns.into_iter().map(str::to_owned).collect())
            .unwrap_or_default();
        let now: Vec<String> = plan
            .columns
            .iter()
            .map(|c| format!("{} {}", c.name, c.source_type))
            .collect();
        let dropped: Vec<String> = before
            .iter()
            .filter_map(|entry| entry.split_once(' ').map(|(name, _)| name))
            .filter(|name| !plan.columns.iter().any(|c| c.name == *name))
            .map(ident)
            .collect();

        let (loaded_into, full_in_place) = if plan.full {
            let same_shape = previous.is_some_and(|b| b.target_exists) && before == now;
            if !same_shape {
                self.run(
                    &create_table_sql(&target, &plan.columns, plan.marks_deletes),
                    "creating the table",
                )
                .await?;
            }
            (target.clone(), true)
        } else {
            for (column, _) in &plan.widen {
                let plan_column = plan
                    .columns
                    .iter()
                    .find(|c| &c.name == column)
                    .expect("a widened column is a column");
                let (snowflake_type, _) = plan_column.snowflake(1);
                // Snowflake's integers and floats are one type each: only a NUMBER's
                // precision grows.
                if snowflake_type.starts_with("NUMBER(") && snowflake_type != "NUMBER(38,0)" {
                    self.run(
                        &format!(
                            "ALTER TABLE {target} ALTER COLUMN {} SET DATA TYPE {snowflake_type}",
                            ident(column)
                        ),
                        "widening a column",
                    )
                    .await?;
                }
            }
            if let Some(backfill) = &plan.backfill {
                for name in &backfill.added {
                    let column = backfill
                        .columns
                        .iter()
                        .find(|c| &c.name == name)
                        .expect("a new column is among the backfill's");
                    self.run(
                        &format!(
                            "ALTER TABLE {target} ADD COLUMN IF NOT EXISTS {} {}",
                            ident(name),
                            column.snowflake(1).0
                        ),
                        "adding a new column",
                    )
                    .await?;
                }
                self.run(
                    &format!(
                        "CREATE OR REPLACE TRANSIENT TABLE {} ({})",
                        backfill_table(&plan.target_table),
                        column_definitions(&backfill.columns).join(", ")
                    ),
                    "creating the backfill's work table",
                )
                .await?;
            }
            // Transient: no fail-safe copy of what is dropped after the load. (Not temporary:
            // the emulator keeps temporary tables out of other schemas.)
            let batch = table_name(SCHEMA, &format!("BATCH_{}", plan.target_table));
            self.run(
                &format!(
                    "CREATE OR REPLACE TRANSIENT TABLE {batch} ({})",
                    column_definitions(&plan.columns).join(", ")
                ),
                "creating the work table",
            )
            .await?;
            (batch, false)
        };

        let transaction = self
            .connection()?
            .begin()
            .await
            .map_err(snowflake_error("BEGIN"))?;
        let result = async {
            if full_in_place {
                transaction
                    .query(&format!("DELETE FROM {target}"))
                    .await
                    .map_err(snowflake_error("replacing the table's rows"))?;
            }
            if !files.is_empty() {
                transaction
                    .query(&copy_sql(
                        &loaded_into,
                        &plan.columns,
                        full_in_place.then_some(stamp.as_str()),
                        dir,
                        files,
                    ))
                    .await
                    .map_err(snowflake_error("COPY INTO"))?;
            }
            let counted = transaction
                .query(&count_sql(&loaded_into, plan))
                .await
                .map_err(snowflake_error("counting the rows read"))?;
            let what = "counting the rows read";
            let row = counted.rows().next().ok_or_else(|| no_row(what))?;
            let number = |column: &str| row.u64(column).map_err(value_error(what));
            let (rows_read, null_key_rows, distinct_keys, null_primary_keys) = (
                number("N")?,
                number("NULL_KEYS")?,
                number("DISTINCT_KEYS")?,
                number("NULL_PRIMARY_KEYS")?,
            );
            let greatest = row
                .get("GREATEST")
                .map_err(value_error(what))?
                .map(str::to_owned);
            crate::load::check_primary_key(plan, rows_read, distinct_keys, null_primary_keys)?;
            let mut rows_backfilled = 0;
            if let (Some(backfill), false) = (&plan.backfill, full_in_place) {
                rows_backfilled = fill_in(
                    &transaction,
                    &target,
                    plan,
                    backfill,
                    &format!("{dir}-backfill"),
                    backfill_files,
                )
                .await?;
            }
            let (inserted, updated) = if full_in_place {
                (rows_read, 0)
            } else {
                merge(&transaction, &target, &loaded_into, plan, &dropped, &stamp).await?
            };
            let greatest = greatest.or_else(|| plan.previous.clone());
            save_bookmark(&transaction, plan, previous.is_some(), greatest.as_deref()).await?;
            Ok(Loaded {
                rows_read,
                inserted,
                updated,
                null_key_rows,
                bookmark: greatest,
                columns_dropped: dropped
                    .iter()
                    .map(|c| c.trim_matches('"').to_ascii_lowercase())
                    .collect(),
                rows_backfilled,
            })
        }
        .await;
        finish(transaction, result).await
    }
}

fn column_definitions(columns: &[ColumnPlan]) -> Vec<String> {
    columns
        .iter()
        .map(|c| format!("{} {}", ident(&c.name), c.snowflake(1).0))
        .collect()
}

fn create_table_sql(target: &str, columns: &[ColumnPlan], marks_deletes: bool) -> String {
    let mut definitions = column_definitions(columns);
    definitions.push(format!("{} TIMESTAMP_NTZ", ident(REPLICATED_AT)));
    if marks_deletes {
        definitions.push(format!("{} TIMESTAMP_NTZ", ident(DELETED_AT)));
    }
    format!(
        "CREATE OR REPLACE TABLE {target} ({})",
        definitions.join(", ")
    )
}

/// `COPY INTO` the table from the stage's parts, each field turned into its column's value;
/// `stamp`: the `_REPLICATED_AT` of the rows, when the table has the column.
fn copy_sql(
    table: &str,
    columns: &[ColumnPlan],
    stamp: Option<&str>,
    dir: &str,
    files: &[String],
) -> String {
    let mut names: Vec<String> = columns.iter().map(|c| ident(&c.name)).collect();
    let mut values: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| c.snowflake(i + 1).1)
        .collect();
    if let Some(stamp) = stamp {
        names.push(ident(REPLICATED_AT));
        values.push(stamp.to_owned());
    }
    let files: Vec<String> = files.iter().map(|f| quote_literal(f)).collect();
    format!(
        "COPY INTO {table} ({}) FROM (SELECT {} FROM @{STAGE}/{dir}/) FILES = ({}) {FILE_FORMAT} \
         ON_ERROR = ABORT_STATEMENT",
        names.join(", "),
        values.join(", "),
        files.join(", ")
    )
}

/// The rows loaded: their count, NULL replication keys, distinct and NULL primary keys, and
/// the greatest replication key (with the previous bookmark) as Postgres reads it back.
fn count_sql(table: &str, plan: &LoadPlan) -> String {
    let key_plan = plan
        .columns
        .iter()
        .find(|c| c.name == plan.replication_key)
        .expect("the replication key is one of the columns");
    let (key_type, _) = key_plan.snowflake(1);
    let key = ident(&plan.replication_key);
    let pk: Vec<String> = plan.primary_key.iter().map(|c| ident(c)).collect();
    let previous = match &plan.previous {
        Some(value) => format!("{}::{key_type}", quote_literal(value)),
        None => format!("NULL::{key_type}"),
    };
    // Snowflake prints times to the millisecond unless told: the bookmark keeps microseconds.
    let format = match key_type.as_str() {
        "TIMESTAMP_NTZ" => ", 'YYYY-MM-DD HH24:MI:SS.FF6'",
        "TIMESTAMP_TZ" => ", 'YYYY-MM-DD HH24:MI:SS.FF6TZH:TZM'",
        "DATE" => ", 'YYYY-MM-DD'",
        _ => "",
    };
    format!(
        "SELECT COUNT(*) AS N, COUNT_IF({key} IS NULL) AS NULL_KEYS, \
         COUNT(DISTINCT {pk}) AS DISTINCT_KEYS, COUNT_IF({null_pk}) AS NULL_PRIMARY_KEYS, \
         TO_VARCHAR(GREATEST(COALESCE(MAX({key}), {previous}), COALESCE({previous}, MAX({key})))\
         {format}) AS GREATEST FROM {table}",
        pk = pk.join(", "),
        null_pk = pk
            .iter()
            .map(|c| format!("{c} IS NULL"))
            .collect::<Vec<_>>()
            .join(" OR "),
    )
}

/// Updates the rows of `batch` that differ from the table's and inserts the new ones: the
/// counts inserted and updated.
async fn merge(
    transaction: &snowflake_conn::Transaction,
    target: &str,
    batch: &str,
    plan: &LoadPlan,
    dropped: &[String],
    stamp: &str,
) -> Result<(u64, u64), WarehouseError> {
    let columns: Vec<String> = plan.columns.iter().map(|c| ident(&c.name)).collect();
    let matches = plan
        .primary_key
        .iter()
        .map(|c| format!("t.{0} = c.{0}", ident(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let mut differs: Vec<String> = columns
        .iter()
        .map(|c| format!("t.{c} IS DISTINCT FROM c.{c}"))
        .collect();
    if plan.marks_deletes {
        differs.push(format!("t.{} IS NOT NULL", ident(DELETED_AT)));
    }
    let differs = differs.join(" OR ");
    let counted = transaction
        .query(&format!(
            "SELECT COUNT_IF(NOT EXISTS (SELECT 1 FROM {target} t WHERE {matches})) AS INSERTED, \
             COUNT_IF(EXISTS (SELECT 1 FROM {target} t WHERE {matches} AND ({differs}))) \
             AS UPDATED FROM {batch} c"
        ))
        .await
        .map_err(snowflake_error("counting the changed rows"))?;
    let what = "counting the changed rows";
    let row = counted.rows().next().ok_or_else(|| no_row(what))?;
    let count = |column: &str| row.u64(column).map_err(value_error(what));
    let (inserted, updated) = (count("INSERTED")?, count("UPDATED")?);
    let set: Vec<String> = columns
        .iter()
        .map(|c| format!("{c} = c.{c}"))
        .chain(dropped.iter().map(|c| format!("{c} = NULL")))
        .chain(
            plan.marks_deletes
                .then(|| format!("{} = NULL", ident(DELETED_AT))),
        )
        .chain([format!("{} = {stamp}", ident(REPLICATED_AT))])
        .collect();
    if updated > 0 {
        transaction
            .query(&format!(
                "UPDATE {target} t SET {} FROM {batch} c WHERE {matches} AND ({differs})",
                set.join(", ")
            ))
            .await
            .map_err(snowflake_error("updating the changed rows"))?;
    }
    if inserted > 0 {
        let values: Vec<String> = columns.iter().map(|c| format!("c.{c}")).collect();
        transaction
            .query(&format!(
                "INSERT INTO {target} ({}, {}) SELECT {}, {stamp} FROM {batch} c \
                 WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {matches})",
                columns.join(", "),
                ident(REPLICATED_AT),
                values.join(", ")
            ))
            .await
            .map_err(snowflake_error("inserting the new rows"))?;
    }
    Ok((inserted, updated))
}

impl SnowflakeTarget {
    /// Whether the table has `_DELETED_AT`, and how many rows it holds that are not marked.
    pub async fn live_rows(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<(bool, u64), WarehouseError> {
        let marked = self
            .count(
                &format!(
                    "SELECT COUNT(*) AS N FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = {} \
                     AND TABLE_NAME = {} AND COLUMN_NAME = {}",
                    quote_literal(&snowflake_conn::stored_name(schema)),
                    quote_literal(&snowflake_conn::stored_name(table)),
                    quote_literal(&snowflake_conn::stored_name(DELETED_AT))
                ),
                "reading the table's columns",
            )
            .await?
            > 0;
        let rows = self
            .count(
                &format!(
                    "SELECT COUNT(*) AS N FROM {} WHERE {}",
                    table_name(schema, table),
                    live(marked)
                ),
                "counting the table's rows",
            )
            .await?;
        Ok((marked, rows))
    }

    async fn count(&self, sql: &str, what: &str) -> Result<u64, WarehouseError> {
        let result = self
            .connection()?
            .query_idempotent(sql)
            .await
            .map_err(snowflake_error(what))?;
        result
            .rows()
            .next()
            .map(|row| row.u64("N"))
            .transpose()
            .map_err(value_error(what))
            .map(|n| n.unwrap_or(0))
    }

    /// The table's bucket summaries, `(bucket, count, hash sum)` over its live rows, summed by
    /// Snowflake: compared with the source's by `reconcile::differing_buckets`.
    pub async fn key_summaries(
        &self,
        schema: &str,
        table: &str,
        key: &[ColumnPlan],
        buckets: u64,
        marked: bool,
    ) -> Result<Vec<(u64, u64, u64)>, WarehouseError> {
        let what = "summing the table's keys";
        let result = self
            .connection()?
            .query_idempotent(&crate::reconcile::snowflake_summary_sql(
                &table_name(schema, table),
                key,
                buckets,
                live(marked),
            ))
            .await
            .map_err(snowflake_error(what))?;
        let fail = value_error(what);
        let mut summaries = Vec::with_capacity(result.rows().len());
        for row in result.rows() {
            summaries.push((
                row.u64("B").map_err(&fail)?,
                row.u64("N").map_err(&fail)?,
                row.u64("S").map_err(&fail)?,
            ));
        }
        Ok(summaries)
    }

    /// Marks or deletes the rows of the differing buckets that the source's keys (uploaded
    /// below `dir`) lack, and stamps the bookmark, in one transaction.
    pub async fn apply_reconciliation(
        &self,
        plan: &crate::reconcile::Apply,
        dir: &str,
        files: &[String],
    ) -> Result<crate::reconcile::Applied, WarehouseError> {
        let target = &plan.target;
        let table = table_name(&target.schema, &target.table);
        if plan.hard_deletes == HardDeletes::Mark {
            self.run(
                &format!(
                    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {} TIMESTAMP_NTZ",
                    ident(DELETED_AT)
                ),
                "adding _DELETED_AT",
            )
            .await?;
        }
        let (marked, _) = self.live_rows(&target.schema, &target.table).await?;
        let keys = table_name(SCHEMA, &format!("KEYS_{}", target.table));
        self.run(
            &format!(
                "CREATE OR REPLACE TRANSIENT TABLE {keys} ({})",
                column_definitions(&target.key).join(", ")
            ),
            "creating the keys' work table",
        )
        .await?;
        let stamp = format!("{}::TIMESTAMP_NTZ", quote_literal(&plan.reconciled_at));
        let transaction = self
            .connection()?
            .begin()
            .await
            .map_err(snowflake_error("BEGIN"))?;
        let result = async {
            let nothing_differs = plan.differing.as_ref().is_some_and(Vec::is_empty);
            let mut applied = crate::reconcile::Applied {
                keys_read: 0,
                rows_gone: 0,
            };
            if !nothing_differs {
                if !files.is_empty() {
                    transaction
                        .query(&copy_sql(&keys, &target.key, None, dir, files))
                        .await
                        .map_err(snowflake_error("COPY INTO the keys' work table"))?;
                }
                let counted = transaction
                    .query(&format!("SELECT COUNT(*) AS N FROM {keys}"))
                    .await
                    .map_err(snowflake_error("counting the source's keys"))?;
                applied.keys_read = the_count(&counted, "N", "counting the source's keys")?;
                let matches: Vec<String> = target
                    .key
                    .iter()
                    .map(|c| format!("k.{0} = t.{0}", ident(&c.name)))
                    .collect();
                let gone = format!(
                    "{} AND {} AND NOT EXISTS (SELECT 1 FROM {keys} k WHERE {})",
                    live_in(marked, "t"),
                    crate::reconcile::snowflake_in_buckets(
                        &target.key,
                        plan.buckets,
                        plan.differing.as_deref()
                    ),
                    matches.join(" AND ")
                );
                let (sql, column) = match plan.hard_deletes {
                    HardDeletes::Mark => (
                        format!(
                            "UPDATE {table} t SET {} = {stamp} WHERE {gone}",
                            ident(DELETED_AT)
                        ),
                        "number of rows updated",
                    ),
                    HardDeletes::Delete => (
                        format!("DELETE FROM {table} t WHERE {gone}"),
                        "number of rows deleted",
                    ),
                };
                let changed = transaction
                    .query(&sql)
                    .await
                    .map_err(snowflake_error("applying the hard deletes"))?;
                applied.rows_gone = the_count(&changed, column, "applying the hard deletes")?;
            }
            transaction
                .query(&format!(
                    "UPDATE {BOOKMARKS} SET RECONCILED_AT = {stamp} WHERE SOURCE_TABLE = {}",
                    quote_literal(&plan.source_table)
                ))
                .await
                .map_err(snowflake_error("saving the reconciliation's time"))?;
            Ok(applied)
        }
        .await;
        finish(transaction, result).await
    }
}

/// Commits the transaction when its work succeeded, else rolls it back.
async fn finish<T>(
    transaction: snowflake_conn::Transaction,
    result: Result<T, WarehouseError>,
) -> Result<T, WarehouseError> {
    match result {
        Ok(done) => {
            transaction
                .commit()
                .await
                .map_err(snowflake_error("COMMIT"))?;
            Ok(done)
        }
        Err(err) => {
            let _ = transaction.rollback().await;
            Err(err)
        }
    }
}

fn live(marked: bool) -> &'static str {
    if marked {
        "_DELETED_AT IS NULL"
    } else {
        "TRUE"
    }
}

fn live_in(marked: bool, alias: &str) -> String {
    if marked {
        format!("{alias}._DELETED_AT IS NULL")
    } else {
        "TRUE".to_owned()
    }
}

/// The work table the new columns of every row are loaded into.
fn backfill_table(target_table: &str) -> String {
    table_name(SCHEMA, &format!("BACKFILL_{target_table}"))
}

/// Loads the backfill's parts (the key and the new columns of every row) and fills the new
/// columns in: the rows filled in.
async fn fill_in(
    transaction: &snowflake_conn::Transaction,
    target: &str,
    plan: &LoadPlan,
    backfill: &crate::load::Backfill,
    dir: &str,
    files: &[String],
) -> Result<u64, WarehouseError> {
    let work = backfill_table(&plan.target_table);
    if !files.is_empty() {
        transaction
            .query(&copy_sql(&work, &backfill.columns, None, dir, files))
            .await
            .map_err(snowflake_error("COPY INTO the backfill's work table"))?;
    }
    let set: Vec<String> = backfill
        .added
        .iter()
        .map(|c| format!("{0} = b.{0}", ident(c)))
        .collect();
    let matches: Vec<String> = plan
        .primary_key
        .iter()
        .map(|c| format!("t.{0} = b.{0}", ident(c)))
        .collect();
    let updated = transaction
        .query(&format!(
            "UPDATE {target} t SET {} FROM {work} b WHERE {}",
            set.join(", "),
            matches.join(" AND ")
        ))
        .await
        .map_err(snowflake_error("filling in the new columns"))?;
    the_count(
        &updated,
        "number of rows updated",
        "filling in the new columns",
    )
}

async fn save_bookmark(
    transaction: &snowflake_conn::Transaction,
    plan: &LoadPlan,
    exists: bool,
    greatest: Option<&str>,
) -> Result<(), WarehouseError> {
    let stamp = format!("{}::TIMESTAMP_NTZ", quote_literal(&plan.replicated_at));
    let value = greatest.map_or_else(|| "NULL".to_owned(), quote_literal);
    let target = format!("{}.{}", plan.target_schema, plan.target_table);
    // A full copy holds exactly the source's rows: it counts as a reconciliation.
    let reconciled = if plan.full {
        stamp.clone()
    } else {
        "RECONCILED_AT".to_owned()
    };
    let sql = if exists {
        format!(
            "UPDATE {BOOKMARKS} SET TARGET_TABLE = {}, REPLICATION_KEY = {}, BOOKMARK = {value}, \
             COLUMNS_SIGNATURE = {}, REPLICATED_AT = {stamp}, RECONCILED_AT = {reconciled} \
             WHERE SOURCE_TABLE = {}",
            quote_literal(&target),
            quote_literal(&plan.replication_key),
            quote_literal(&plan.signature),
            quote_literal(&plan.source_table)
        )
    } else {
        format!(
            "INSERT INTO {BOOKMARKS} (SOURCE_TABLE, TARGET_TABLE, REPLICATION_KEY, BOOKMARK, \
             COLUMNS_SIGNATURE, REPLICATED_AT, RECONCILED_AT) VALUES ({}, {}, {}, {value}, {}, \
             {stamp}, {})",
            quote_literal(&plan.source_table),
            quote_literal(&target),
            quote_literal(&plan.replication_key),
            quote_literal(&plan.signature),
            if plan.full { stamp.as_str() } else { "NULL" }
        )
    };
    transaction
        .query(&sql)
        .await
        .map_err(snowflake_error("saving the bookmark"))?;
    Ok(())
}

/// Splits Postgres's CSV at record ends (a newline outside quotes; a doubled quote inside a
/// quoted field toggles twice) into gzipped parts of about `part_bytes` each:
/// `part-00000.csv.gz`, … An empty spool makes no part.
fn split_gzip(spool: &Path, dir: &Path, part_bytes: u64) -> std::io::Result<Vec<PathBuf>> {
    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(spool)?);
    let mut parts = Vec::new();
    let mut writer: Option<flate2::write::GzEncoder<std::io::BufWriter<std::fs::File>>> = None;
    let (mut in_quotes, mut written) = (false, 0u64);
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let mut start = 0;
        let length = chunk.len();
        for (i, byte) in chunk.iter().enumerate() {
            match byte {
                b'"' => in_quotes = !in_quotes,
                b'\n' if !in_quotes && written + (i + 1 - start) as u64 >= part_bytes => {
                    let out = match writer.as_mut() {
                        Some(out) => out,
                        None => writer.insert(new_part(dir, &mut parts)?),
                    };
                    out.write_all(&chunk[start..=i])?;
                    writer.take().expect("open").finish()?.flush()?;
                    written = 0;
                    start = i + 1;
                }
                _ => {}
            }
        }
        if start < length {
            let out = match writer.as_mut() {
                Some(out) => out,
                None => writer.insert(new_part(dir, &mut parts)?),
            };
            out.write_all(&chunk[start..])?;
            written += (length - start) as u64;
        }
        reader.consume(length);
    }
    if let Some(out) = writer {
        out.finish()?.flush()?;
    }
    Ok(parts)
}

fn new_part(
    dir: &Path,
    parts: &mut Vec<PathBuf>,
) -> std::io::Result<flate2::write::GzEncoder<std::io::BufWriter<std::fs::File>>> {
    let path = dir.join(format!("part-{:05}.csv.gz", parts.len()));
    let file = std::fs::File::create(&path)?;
    parts.push(path);
    Ok(flate2::write::GzEncoder::new(
        std::io::BufWriter::new(file),
        flate2::Compression::fast(),
    ))
}

/// A value of a Snowflake reply that is not what `what`'s statement returns.
fn value_error(what: &str) -> impl Fn(snowflake_conn::ValueError) -> WarehouseError + '_ {
    move |e| WarehouseError::Query {
        what: what.to_owned(),
        message: e.to_string(),
    }
}

/// The count in `column` of the one row `what`'s statement returns. A reply without it, or
/// with a value that is no count, is an error: a report must not show 0 rows for an answer it
/// could not read.
fn the_count(
    result: &snowflake_conn::QueryResult,
    column: &str,
    what: &str,
) -> Result<u64, WarehouseError> {
    result
        .rows()
        .next()
        .ok_or_else(|| no_row(what))?
        .u64(column)
        .map_err(value_error(what))
}

/// A reply to `what`'s statement without the one row it returns.
fn no_row(what: &str) -> WarehouseError {
    WarehouseError::Query {
        what: what.to_owned(),
        message: "no row".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn extracts_split_at_record_ends_only() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool.csv");
        // A newline inside a quoted field, and a doubled quote, must not end a record.
        let text = "1,\"a\nb\",x\n2,\"say \"\"hi\"\"\n!\",y\n3,,z\n";
        std::fs::write(&spool, text).unwrap();
        let parts = split_gzip(&spool, dir.path(), 4).unwrap();
        let read: Vec<String> = parts
            .iter()
            .map(|p| {
                let mut out = String::new();
                flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap())
                    .read_to_string(&mut out)
                    .unwrap();
                out
            })
            .collect();
        assert_eq!(
            read,
            ["1,\"a\nb\",x\n", "2,\"say \"\"hi\"\"\n!\",y\n", "3,,z\n"]
        );
        assert_eq!(read.concat(), text);
        std::fs::write(&spool, "").unwrap();
        assert!(split_gzip(&spool, dir.path(), 4).unwrap().is_empty());
        let whole = split_gzip(
            &{
                std::fs::write(&spool, text).unwrap();
                spool.clone()
            },
            dir.path(),
            PART_BYTES,
        )
        .unwrap();
        assert_eq!(whole.len(), 1);
    }

    #[test]
    fn a_stage_url_is_a_bucket_and_a_prefix() {
        assert_eq!(
            parse_stage_url("s3://extracts/pg-replicate").unwrap(),
            ("extracts".to_owned(), "pg-replicate/".to_owned())
        );
        assert_eq!(
            parse_stage_url("s3://extracts").unwrap(),
            ("extracts".to_owned(), String::new())
        );
        assert!(parse_stage_url("https://extracts/x").is_err());
        assert!(parse_stage_url("s3:///x").is_err());
    }
}
