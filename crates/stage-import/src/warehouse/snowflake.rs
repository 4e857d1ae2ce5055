//! The Snowflake warehouse: what the original job did (stages, file formats, `COPY INTO` as the
//! loader role with `ON_ERROR = 'CONTINUE'`), plus what it left out: it reads COPY's per-file
//! result instead of ignoring it, names exactly the files the preflight found (`FILES =`, so
//! that what is loaded is what is reported), and replaces a day atomically on `--reload`.
//!
//! Nothing is loaded twice without `--reload`: Snowflake's own load metadata (64 days per
//! table) skips files a COPY loaded before, and a file the result does not mention was skipped
//! that way. The connection layer (login, context, retries, timeouts, aborting the running COPY
//! on SIGTERM) is `snowflake-conn`, shared with the permissions job.

use std::collections::BTreeMap;

use ::warehouse::snowflake::{SnowflakeWarehouse, snowflake_error};
use ::warehouse::{Warehouse, WarehouseError};
use snowflake_conn::{QueryResult, quote_ident, quote_literal};
use tokio_util::sync::CancellationToken;

use super::{BOOTSTRAP_FIX, FileSource, LOADED_AT_COLUMN, Loader, SOURCE_FILE_COLUMN};
use crate::catalog::{Column, ColumnType, Compression, Format, Load, Source};
use crate::header::{Decision, ReadShape};
use crate::report::{FileOutcome, FileStatus};
use crate::stage::{StageUrl, StagedFile};

/// Snowflake takes at most this many names in one COPY's `FILES = (...)`.
pub const MAX_FILES_PER_COPY: usize = 1000;

pub use ::warehouse::snowflake::{LoadSettings as Settings, StageAccess};

/// Files COPY's result left out were skipped by its load metadata, or vanished, or have a
/// load status Snowflake could not tell. Only proof of an earlier load makes one LOAD_SKIPPED:
/// COPY_HISTORY's record of it (14 days), or else rows of it in the table (`_source_file`),
/// which covers the rest of the load metadata's 64 days; the others stay UNKNOWN and fail.
async fn confirm_skips(warehouse: &SnowflakeWarehouse, load: &Load, outcomes: &mut [FileOutcome]) {
    let unknown: Vec<usize> = (0..outcomes.len())
        .filter(|&i| outcomes[i].status == FileStatus::Unknown)
        .collect();
    if unknown.is_empty() {
        return;
    }
    let Ok(connection) = warehouse.connection() else {
        return;
    };
    let history = match connection.query_idempotent(&history_sql(load)).await {
        Ok(history) => history,
        Err(err) => {
            tracing::warn!(
                table = %qualified(&load.schema, &load.table),
                "cannot read COPY_HISTORY to confirm {} skipped file(s): {err}",
                unknown.len()
            );
            unchecked(outcomes, &unknown, "COPY_HISTORY", &err);
            return;
        }
    };
    let mut loaded_before = Vec::new();
    for row in history.rows() {
        let (Ok(file), Ok(status)) = (row.text("FILE_NAME"), row.text("STATUS")) else {
            continue;
        };
        if status.eq_ignore_ascii_case("Loaded") || status.eq_ignore_ascii_case("Partially loaded")
        {
            loaded_before.push(file.to_owned());
        }
    }
    let mut still_unknown = Vec::new();
    for i in unknown {
        let path = outcomes[i].file.clone();
        if loaded_before
            .iter()
            .any(|f| *f == path || f.ends_with(&format!("/{path}")))
        {
            outcomes[i] = FileOutcome::skipped(&path);
        } else {
            still_unknown.push(i);
        }
    }
    if still_unknown.is_empty() {
        return;
    }
    let held = match connection
        .query_idempotent(&super::files_held_sql(load, quote_literal))
        .await
    {
        Ok(held) => held,
        Err(err) => {
            tracing::warn!(
                table = %qualified(&load.schema, &load.table),
                "cannot read the table's files to confirm {} skipped file(s): {err}",
                still_unknown.len()
            );
            unchecked(outcomes, &still_unknown, "the table's _source_file", &err);
            return;
        }
    };
    let held: std::collections::BTreeSet<String> = held
        .rows()
        .filter_map(|row| row.text("FILE").ok().map(str::to_owned))
        .collect();
    for i in still_unknown {
        if held.contains(&outcomes[i].file) {
            outcomes[i] = FileOutcome::skipped(&outcomes[i].file.clone());
        }
    }
}

/// The UNKNOWN files at `indexes` whose earlier load could not be looked up in `source`: their
/// message says so, instead of claiming that no earlier load was found.
fn unchecked(
    outcomes: &mut [FileOutcome],
    indexes: &[usize],
    source: &str,
    error: &snowflake_conn::Error,
) {
    let first_line = error.to_string();
    let first_line = first_line.lines().next().unwrap_or_default();
    for &i in indexes {
        outcomes[i].first_error = Some(format!(
            "COPY's result does not mention it, and whether it was loaded before could not be \
             checked: reading {source} failed ({first_line}); --reload loads it"
        ));
    }
}

/// Fails with [`WarehouseError::MissingTable`] (exit 2) when bootstrap has not run.
async fn check_table(
    warehouse: &mut SnowflakeWarehouse,
    load: &Load,
) -> Result<(), WarehouseError> {
    if warehouse.table_exists(&load.schema, &load.table).await? {
        return Ok(());
    }
    Err(WarehouseError::MissingTable {
        table: format!("{}.{}.{}", warehouse.database(), load.schema, load.table),
        fix: BOOTSTRAP_FIX,
    })
}

impl Loader for SnowflakeWarehouse {
    fn reads_stages(&self) -> bool {
        true
    }

    fn bootstrap_sql(
        &self,
        sources: &[(&Source, Vec<Load>)],
        stage_access: &StageAccess,
    ) -> Vec<String> {
        let mut statements: Vec<String> = Vec::new();
        let mut push = |statement: String| {
            if !statements.contains(&statement) {
                statements.push(statement);
            }
        };
        for (source, loads) in sources {
            push(format!(
                "CREATE SCHEMA IF NOT EXISTS {};",
                quote_ident(&source.schema)
            ));
            push(create_file_format(
                &source.schema,
                &source.format_name,
                &source.format,
            ));
            // The stage's URL may hold placeholders; bootstrap renders it for today, and every
            // load of the source has the same one.
            if let Some(load) = loads.first() {
                push(create_stage(
                    &source.schema,
                    &source.stage,
                    &load.stage_url,
                    &source.format_name,
                    stage_access,
                ));
                if let Some(refresh) = set_stage_credentials(
                    &source.schema,
                    &source.stage,
                    &load.stage_url,
                    stage_access,
                ) {
                    push(refresh);
                }
            }
            push(create_table(&source.schema, &source.table, &source.format));
        }
        statements
    }

    async fn load(
        &mut self,
        load: &Load,
        files: &[StagedFile],
        from: &FileSource,
        reload: bool,
        cancel: &CancellationToken,
    ) -> Result<Vec<FileOutcome>, WarehouseError> {
        check_table(self, load).await?;
        let connection = self.connection()?.clone();
        let table = qualified(&load.schema, &load.table);
        let what = format!("loading into {}.{table}", self.database());
        if reload {
            let Copies {
                mut settled,
                batches,
            } = by_header(load, files, from);
            let mut results = Vec::new();
            let transaction = connection.begin().await.map_err(snowflake_error(&what))?;
            let mut failure = None;
            for (shape, batch) in &batches {
                let step = async {
                    transaction.query(&delete_sql(load, batch)).await?;
                    transaction
                        .query(&copy_sql(load, batch, *shape, true))
                        .await
                };
                match step.await {
                    Ok(result) => results.push(result),
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
            }
            if failure.is_none()
                && let Err(error) = replace_with_nothing(&transaction, load, &mut settled).await
            {
                match error {
                    Replace::Snowflake(error) => failure = Some(error),
                    Replace::Answer(message) => {
                        if transaction.rollback().await.is_err() {
                            let _ = connection.close().await;
                        }
                        return Err(WarehouseError::Query { what, message });
                    }
                }
            }
            match failure {
                None => transaction.commit().await.map_err(snowflake_error(&what))?,
                Some(error) => {
                    // A cancelled or failed reload leaves the day as it was. If the rollback
                    // cannot be sent (the job is stopping), ending the session rolls back.
                    if transaction.rollback().await.is_err() {
                        let _ = connection.close().await;
                    }
                    return Err(snowflake_error(&what)(error));
                }
            }
            let copied = copied_files(&batches);
            let rows = results.iter().flat_map(copy_rows).collect::<Vec<_>>();
            let mut copied_outcomes = outcomes(&copied, rows)
                .map_err(|message| WarehouseError::Query { what, message })?;
            confirm_skips(self, load, &mut copied_outcomes).await;
            settled.extend(copied_outcomes.into_iter().map(|o| (o.file.clone(), o)));
            return Ok(in_listed_order(files, settled));
        }
        if beyond_load_metadata(load.date) {
            // Snowflake keeps load metadata 64 days; past that, COPY skips a file whose status
            // it cannot tell, loaded or not. The table's own `_source_file` says which were
            // loaded; the others are loaded with LOAD_UNCERTAIN_FILES.
            let loaded: std::collections::BTreeSet<String> =
                self.files_held(load, cancel).await?.into_iter().collect();
            let unloaded: Vec<StagedFile> = files
                .iter()
                .filter(|f| !loaded.contains(&f.path))
                .cloned()
                .collect();
            let Copies {
                mut settled,
                batches,
            } = by_header(load, &unloaded, from);
            let mut results = Vec::new();
            for (shape, batch) in &batches {
                let sql = format!(
                    "{}\nLOAD_UNCERTAIN_FILES = TRUE",
                    copy_sql(load, batch, *shape, false)
                );
                results.push(
                    connection
                        .query(&sql)
                        .await
                        .map_err(snowflake_error(&what))?,
                );
            }
            let rows = results.iter().flat_map(copy_rows).collect::<Vec<_>>();
            let copied = outcomes(&copied_files(&batches), rows)
                .map_err(|message| WarehouseError::Query { what, message })?;
            settled.extend(copied.into_iter().map(|o| (o.file.clone(), o)));
            for file in loaded {
                settled.insert(file.clone(), FileOutcome::skipped(&file));
            }
            return Ok(in_listed_order(files, settled));
        }
        // Snowflake loads a re-staged file whose ETag changed as a new file: in the COPY's
        // transaction, that file's rows from its earlier load are deleted.
        let Copies {
            mut settled,
            batches,
        } = by_header(load, files, from);
        let copied = copied_files(&batches);
        let transaction = connection.begin().await.map_err(snowflake_error(&what))?;
        let step = async {
            let mut results = Vec::new();
            for (shape, batch) in &batches {
                results.push(
                    transaction
                        .query(&copy_sql(load, batch, *shape, false))
                        .await
                        .map_err(snowflake_error(&what))?,
                );
            }
            let rows = results.iter().flat_map(copy_rows).collect::<Vec<_>>();
            let mut outcomes =
                outcomes(&copied, rows).map_err(|message| WarehouseError::Query {
                    what: what.clone(),
                    message,
                })?;
            let replace_error = |e| match e {
                Replace::Snowflake(e) => snowflake_error(&what)(e),
                Replace::Answer(message) => WarehouseError::Query {
                    what: what.clone(),
                    message,
                },
            };
            replace_earlier_rows(&transaction, load, &mut outcomes)
                .await
                .map_err(replace_error)?;
            replace_with_nothing(&transaction, load, &mut settled)
                .await
                .map_err(replace_error)?;
            Ok::<_, WarehouseError>(outcomes)
        };
        let mut copied_outcomes = match step.await {
            Ok(outcomes) => {
                transaction.commit().await.map_err(snowflake_error(&what))?;
                outcomes
            }
            Err(error) => {
                if transaction.rollback().await.is_err() {
                    let _ = connection.close().await;
                }
                return Err(error);
            }
        };
        confirm_skips(self, load, &mut copied_outcomes).await;
        settled.extend(copied_outcomes.into_iter().map(|o| (o.file.clone(), o)));
        Ok(in_listed_order(files, settled))
    }

    fn add_column_sql(&self, schema: &str, table: &str, column: &Column) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN {} {};",
            qualified(schema, table),
            quote_ident(&column.name),
            snowflake_type(column.kind)
        )
    }

    async fn files_held(
        &mut self,
        load: &Load,
        cancel: &CancellationToken,
    ) -> Result<Vec<String>, WarehouseError> {
        let sql = super::files_held_sql(load, quote_literal);
        let (_, rows) = self.query_text(&sql, cancel).await?;
        Ok(::warehouse::first_column(rows))
    }
}

/// Files one COPY reads, all the same way.
type CopyBatch = (ReadShape, Vec<StagedFile>);

/// What a load's files need: their COPYs, and the outcomes settled without one.
struct Copies {
    settled: BTreeMap<String, FileOutcome>,
    batches: Vec<CopyBatch>,
}

/// The COPYs a load's `files` need, as batches of files read the same way (at most
/// [`MAX_FILES_PER_COPY`] each), and the outcomes their headers settled without a COPY: EMPTY
/// files, and files whose header is not the format's (LOAD_FAILED, both lists named).
fn by_header(load: &Load, files: &[StagedFile], from: &FileSource) -> Copies {
    let mut settled = BTreeMap::new();
    let mut by_shape: BTreeMap<ReadShape, Vec<StagedFile>> = BTreeMap::new();
    for file in files {
        let decision = match from {
            FileSource::Stage(decisions) => decisions.get(&file.path).cloned(),
            FileSource::Local(_) => None,
        };
        match decision.unwrap_or_else(|| Decision::Read(ReadShape::of_format(&load.format))) {
            Decision::Read(shape) => by_shape.entry(shape).or_default().push(file.clone()),
            Decision::Outcome(outcome) => {
                settled.insert(file.path.clone(), outcome);
            }
        }
    }
    let batches = by_shape
        .into_iter()
        .flat_map(|(shape, group)| {
            group
                .chunks(MAX_FILES_PER_COPY)
                .map(|batch| (shape, batch.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect();
    Copies { settled, batches }
}

fn copied_files(batches: &[CopyBatch]) -> Vec<StagedFile> {
    batches
        .iter()
        .flat_map(|(_, batch)| batch.iter().cloned())
        .collect()
}

/// Each listed file's outcome, in the preflight's order.
fn in_listed_order(
    files: &[StagedFile],
    mut by_file: BTreeMap<String, FileOutcome>,
) -> Vec<FileOutcome> {
    files
        .iter()
        .filter_map(|f| by_file.remove(&f.path))
        .collect()
}

/// Why the earlier rows of the files a COPY loaded again could not be replaced.
enum Replace {
    Snowflake(snowflake_conn::Error),
    /// Snowflake's answer was not what the query asks for.
    Answer(String),
}

/// In the COPY's transaction: the files it loaded whose table already held rows from an
/// earlier load (rows older than the file's newest, which are this COPY's) lose those rows and
/// become RELOADED. Files loaded for the first time cost one query, with nothing deleted.
async fn replace_earlier_rows(
    transaction: &snowflake_conn::Transaction,
    load: &Load,
    outcomes: &mut [FileOutcome],
) -> Result<(), Replace> {
    let loaded: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.rows_loaded > 0)
        .map(|o| o.file.as_str())
        .collect();
    let replaced = delete_counted(
        transaction,
        &loaded,
        |batch| count_earlier_rows_sql(load, batch),
        |batch| delete_earlier_rows_sql(load, batch),
    )
    .await?;
    for outcome in outcomes {
        if let Some(&rows) = replaced.get(&outcome.file) {
            outcome.status = FileStatus::Reloaded;
            outcome.rows_replaced = rows;
        }
    }
    Ok(())
}

/// In the load's transaction: the files that now hold no data row (EMPTY) lose the rows the table
/// holds of them, as a file rewritten with other rows loses its earlier ones, and become
/// RELOADED. A file the table holds nothing of stays EMPTY.
async fn replace_with_nothing(
    transaction: &snowflake_conn::Transaction,
    load: &Load,
    settled: &mut BTreeMap<String, FileOutcome>,
) -> Result<(), Replace> {
    let empty: Vec<&str> = settled
        .values()
        .filter(|o| o.status == FileStatus::Empty)
        .map(|o| o.file.as_str())
        .collect();
    let held = delete_counted(
        transaction,
        &empty,
        |batch| count_rows_sql(load, batch),
        |batch| delete_rows_sql(load, batch),
    )
    .await?;
    for (file, rows) in held {
        if let Some(outcome) = settled.get_mut(&file) {
            outcome.status = FileStatus::Reloaded;
            outcome.rows_replaced = rows;
        }
    }
    Ok(())
}

/// Counts, per file of `files`, the rows `count` selects (`source_file`, `row_count`), then
/// deletes them with `delete` for the files that have any: both in batches of
/// [`MAX_FILES_PER_COPY`]. The counts of the files that had rows.
async fn delete_counted(
    transaction: &snowflake_conn::Transaction,
    files: &[&str],
    count: impl Fn(&[&str]) -> String,
    delete: impl Fn(&[&str]) -> String,
) -> Result<BTreeMap<String, u64>, Replace> {
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    for batch in files.chunks(MAX_FILES_PER_COPY) {
        let answer = transaction
            .query(&count(batch))
            .await
            .map_err(Replace::Snowflake)?;
        for row in answer.rows() {
            let unreadable = |e: snowflake_conn::ValueError| Replace::Answer(e.to_string());
            counted.insert(
                row.text("SOURCE_FILE").map_err(unreadable)?.to_owned(),
                row.u64("ROW_COUNT").map_err(unreadable)?,
            );
        }
    }
    let with_rows: Vec<&str> = counted.keys().map(String::as_str).collect();
    for batch in with_rows.chunks(MAX_FILES_PER_COPY) {
        transaction
            .query(&delete(batch))
            .await
            .map_err(Replace::Snowflake)?;
    }
    Ok(counted)
}

/// Per file of `files`, how many rows the table holds of it.
pub fn count_rows_sql(load: &Load, files: &[&str]) -> String {
    let names: Vec<String> = files.iter().map(|f| quote_literal(f)).collect();
    format!(
        "SELECT {file} AS source_file, COUNT(*) AS row_count FROM {table} \
         WHERE {file} IN ({names}) GROUP BY 1",
        file = quote_ident(SOURCE_FILE_COLUMN),
        table = qualified(&load.schema, &load.table),
        names = names.join(", "),
    )
}

/// Each of `files` with its newest `_loaded_at`, as a subquery named `newest`.
fn newest_load_per_file(load: &Load, files: &[&str]) -> String {
    let names: Vec<String> = files.iter().map(|f| quote_literal(f)).collect();
    format!(
        "(SELECT {file} AS newest_file, MAX({at}) AS newest_at FROM {table} \
         WHERE {file} IN ({names}) GROUP BY 1) AS newest",
        file = quote_ident(SOURCE_FILE_COLUMN),
        at = quote_ident(LOADED_AT_COLUMN),
        table = qualified(&load.schema, &load.table),
        names = names.join(", ")
    )
}

/// Per file of `files`, how many of its rows are older than its newest load.
pub fn count_earlier_rows_sql(load: &Load, files: &[&str]) -> String {
    format!(
        "SELECT t.{file} AS source_file, COUNT(*) AS row_count FROM {table} AS t \
         JOIN {newest} ON t.{file} = newest.newest_file AND t.{at} < newest.newest_at GROUP BY 1",
        file = quote_ident(SOURCE_FILE_COLUMN),
        at = quote_ident(LOADED_AT_COLUMN),
        table = qualified(&load.schema, &load.table),
        newest = newest_load_per_file(load, files),
    )
}

/// Deletes the rows of `files` that are older than each file's newest load.
pub fn delete_earlier_rows_sql(load: &Load, files: &[&str]) -> String {
    let table = qualified(&load.schema, &load.table);
    format!(
        "DELETE FROM {table} USING {newest} \
         WHERE {table}.{file} = newest.newest_file AND {table}.{at} < newest.newest_at",
        file = quote_ident(SOURCE_FILE_COLUMN),
        at = quote_ident(LOADED_AT_COLUMN),
        newest = newest_load_per_file(load, files),
    )
}

/// How long Snowflake keeps a table's load metadata (COPY's "loaded before").
const LOAD_METADATA_DAYS: i32 = 64;

/// A day whose files Snowflake's load metadata may no longer know (staged more than 64 days ago).
fn beyond_load_metadata(day: jiff::civil::Date) -> bool {
    let today = jiff::Zoned::now().date();
    today
        .since(day)
        .is_ok_and(|span| span.get_days() > LOAD_METADATA_DAYS)
}

/// `schema.table` as SQL.
fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// Snowflake's type for a catalog column type.
pub fn snowflake_type(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::Text => "VARCHAR",
        ColumnType::Integer => "NUMBER(38,0)",
        ColumnType::Number => "FLOAT",
        ColumnType::Date => "DATE",
        ColumnType::Time => "TIME",
        ColumnType::Timestamp => "TIMESTAMP_NTZ",
        ColumnType::Boolean => "BOOLEAN",
    }
}

/// The file format a source's stage is created with (what a query of the stage reads with).
pub fn create_file_format(schema: &str, name: &str, format: &Format) -> String {
    format!(
        "CREATE FILE FORMAT IF NOT EXISTS {}\n  {};",
        qualified(schema, name),
        format_options(format, format.skip_header)
    )
}

/// The catalog format's options, with `skip_header` header lines: COPY names them itself, per
/// header shape, so that a file is read by its own header and by the catalog as it is now
/// (a named format keeps what it was created with).
fn format_options(format: &Format, skip_header: u32) -> String {
    let quote = match format.quote_char() {
        Some(q) => quote_literal(&q.to_string()),
        None => "NONE".to_owned(),
    };
    let null_if = match &format.null {
        Some(null) => format!("({})", quote_literal(null)),
        None => "()".to_owned(),
    };
    let compression = match format.compression {
        Compression::Gzip => "GZIP",
        Compression::None => "NONE",
    };
    format!(
        "TYPE = CSV FIELD_DELIMITER = {} SKIP_HEADER = {skip_header} \
         FIELD_OPTIONALLY_ENCLOSED_BY = {quote} NULL_IF = {null_if} COMPRESSION = {compression} \
         ERROR_ON_COLUMN_COUNT_MISMATCH = FALSE",
        quote_literal(&format.delimiter),
    )
}

/// The stage a source's files are read from: its S3 prefix (through a storage integration, or
/// with keys), or a local directory as a `file://` URL (what a test emulator reads).
/// For a stage that carries keys: the current ones, every bootstrap. `CREATE … IF NOT EXISTS`
/// keeps a stage's first credentials (an expired AWS_TOKEN among them), and Snowflake never
/// shows the stored secret to compare with.
pub fn set_stage_credentials(
    schema: &str,
    name: &str,
    url: &StageUrl,
    access: &StageAccess,
) -> Option<String> {
    match (url, access) {
        (StageUrl::S3 { .. }, StageAccess::Keys { .. }) => Some(format!(
            "ALTER STAGE {} SET{};",
            qualified(schema, name),
            access.credentials_clause()
        )),
        _ => None,
    }
}

pub fn create_stage(
    schema: &str,
    name: &str,
    url: &StageUrl,
    format_name: &str,
    access: &StageAccess,
) -> String {
    let access = match url {
        StageUrl::Local(_) => String::new(),
        StageUrl::S3 { .. } => access.clause(),
    };
    format!(
        "CREATE STAGE IF NOT EXISTS {}\n  URL = {}{access}\n  FILE_FORMAT = {};",
        qualified(schema, name),
        quote_literal(&url.url()),
        qualified(schema, format_name),
    )
}

/// The table a source loads into: the format's columns, typed, then where each row came from.
pub fn create_table(schema: &str, table: &str, format: &Format) -> String {
    let mut columns: Vec<String> = format
        .columns
        .iter()
        .map(|c| format!("  {} {}", quote_ident(&c.name), snowflake_type(c.kind)))
        .collect();
    columns.push(format!(
        "  {} VARCHAR NOT NULL",
        quote_ident(SOURCE_FILE_COLUMN)
    ));
    columns.push(format!(
        "  {} TIMESTAMP_LTZ NOT NULL",
        quote_ident(LOADED_AT_COLUMN)
    ));
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\n{}\n);",
        qualified(schema, table),
        columns.join(",\n")
    )
}

/// One COPY for up to [`MAX_FILES_PER_COPY`] files read the same way (`shape`: header lines,
/// and how many of the format's columns the files have; the others load NULL), named by their
/// path below the stage (the stage's root, so that a file is named the same way in `FILES`, in
/// `_source_file` and in the preflight's listing). `force` loads them even if loaded before
/// (`--reload`).
pub fn copy_sql(load: &Load, files: &[StagedFile], shape: ReadShape, force: bool) -> String {
    let columns: Vec<String> = load
        .format
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .chain([
            quote_ident(SOURCE_FILE_COLUMN),
            quote_ident(LOADED_AT_COLUMN),
        ])
        .collect();
    let fields: Vec<String> = (1..=load.format.columns.len())
        .map(|i| {
            if i <= shape.fields {
                format!("${i}")
            } else {
                "NULL".to_owned()
            }
        })
        .chain([
            source_file(&load.stage_url),
            // The load time: the one documented for COPY transformations (CURRENT_TIMESTAMP()
            // is not among the functions they support).
            "METADATA$START_SCAN_TIME".to_owned(),
        ])
        .collect();
    let names: Vec<String> = files.iter().map(|f| quote_literal(&f.path)).collect();
    format!(
        "COPY INTO {table} ({columns})\nFROM (SELECT {fields} FROM @{stage})\n\
         FILES = ({names})\nFILE_FORMAT = ({format})\nON_ERROR = 'CONTINUE'{force}",
        table = qualified(&load.schema, &load.table),
        columns = columns.join(", "),
        fields = fields.join(", "),
        stage = qualified(&load.schema, &load.stage),
        names = names.join(", "),
        format = format_options(&load.format, shape.skip_lines),
        force = if force { "\nFORCE = TRUE" } else { "" },
    )
}

/// The select item that fills `_source_file`: the file's path below the stage, the name the
/// preflight, the report and `--reload`'s DELETE use. `METADATA$FILENAME` alone may not be
/// that: Snowflake documents it as "the full path to the data file" (older docs: "the path to
/// the data file in the stage"); read the first way, an external stage's file is named by its
/// object key, the stage URL's own prefix in front (`landing/licenses/2026-11-26/x.csv` for a
/// stage at `s3://bucket/landing/licenses/`), and `--reload`'s DELETE would match nothing and
/// load the day twice. The prefix is cut when present, so both readings give the same name.
fn source_file(stage: &StageUrl) -> String {
    let url = stage.url();
    let key_prefix = match stage {
        StageUrl::S3 { prefix, .. } => prefix.as_str(),
        StageUrl::Local(_) => url
            .strip_prefix("file://")
            .unwrap_or(&url)
            .trim_start_matches('/'),
    };
    if key_prefix.is_empty() {
        return "METADATA$FILENAME".to_owned();
    }
    format!(
        "IFF(STARTSWITH(METADATA$FILENAME, {prefix}), SUBSTR(METADATA$FILENAME, {from}), \
         METADATA$FILENAME)",
        prefix = quote_literal(key_prefix),
        from = key_prefix.chars().count() + 1,
    )
}

/// The table's loads of the last 14 days (as long as COPY_HISTORY keeps them).
pub fn history_sql(load: &Load) -> String {
    format!(
        "SELECT FILE_NAME, STATUS FROM TABLE(INFORMATION_SCHEMA.COPY_HISTORY(TABLE_NAME => {}, \
         START_TIME => DATEADD(DAY, -14, CURRENT_TIMESTAMP())))",
        quote_literal(&format!(
            "{}.{}",
            quote_ident(&load.schema),
            quote_ident(&load.table)
        ))
    )
}

/// Removes the rows of `files` before a `--reload` loads them again.
pub fn delete_sql(load: &Load, files: &[StagedFile]) -> String {
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    delete_rows_sql(load, &paths)
}

/// Removes every row of `files`.
fn delete_rows_sql(load: &Load, files: &[&str]) -> String {
    let names: Vec<String> = files.iter().map(|f| quote_literal(f)).collect();
    format!(
        "DELETE FROM {} WHERE {} IN ({})",
        qualified(&load.schema, &load.table),
        quote_ident(SOURCE_FILE_COLUMN),
        names.join(", ")
    )
}

/// One row of COPY's result, as Snowflake documents it (column names compared
/// case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRow {
    pub file: String,
    pub status: String,
    pub rows_parsed: u64,
    pub rows_loaded: u64,
    pub errors_seen: u64,
    pub first_error: Option<String>,
    pub first_error_line: Option<u64>,
}

/// The per-file rows of a COPY's result. A COPY that loaded nothing answers one `status` column
/// ("Copy executed with 0 files processed."), which holds no file.
pub fn copy_rows(result: &QueryResult) -> Vec<Result<CopyRow, String>> {
    if result.column_index("file").is_err() {
        return Vec::new();
    }
    result
        .rows()
        .map(|row| {
            let number = |name: &str| {
                row.opt_u64(name)
                    .map(Option::unwrap_or_default)
                    .map_err(|e| e.to_string())
            };
            Ok(CopyRow {
                file: row.text("file").map_err(|e| e.to_string())?.to_owned(),
                status: row
                    .text("status")
                    .map_err(|e| e.to_string())?
                    .to_ascii_uppercase(),
                rows_parsed: number("rows_parsed")?,
                rows_loaded: number("rows_loaded")?,
                errors_seen: number("errors_seen")?,
                first_error: row
                    .get("first_error")
                    .map_err(|e| e.to_string())?
                    .map(str::to_owned),
                first_error_line: row.opt_u64("first_error_line").map_err(|e| e.to_string())?,
            })
        })
        .collect()
}

/// The outcome of each file the preflight found, in its order. COPY names a file by its full
/// location (`s3://bucket/prefix/path` for an external stage), so a row belongs to the file
/// whose stage path ends it. A file the result does not mention is UNKNOWN until COPY_HISTORY
/// confirms an earlier load (`confirm_skips`).
pub fn outcomes(
    files: &[StagedFile],
    rows: Vec<Result<CopyRow, String>>,
) -> Result<Vec<FileOutcome>, String> {
    let mut by_file: BTreeMap<&str, FileOutcome> = BTreeMap::new();
    for row in rows {
        let row = row.map_err(|e| format!("COPY's result cannot be read: {e}"))?;
        let Some(file) = files
            .iter()
            .filter(|f| row.file == f.path || row.file.ends_with(&format!("/{}", f.path)))
            .max_by_key(|f| f.path.len())
        else {
            return Err(format!(
                "COPY reported file {:?}, which the preflight did not find",
                row.file
            ));
        };
        let status = match row.status.as_str() {
            // Header lines only, or nothing: COPY parsed no row of it.
            "LOADED" if row.errors_seen == 0 && row.rows_parsed == 0 => FileStatus::Empty,
            "LOADED" if row.errors_seen == 0 => FileStatus::Loaded,
            "LOADED" | "PARTIALLY_LOADED" => FileStatus::PartiallyLoaded,
            "LOAD_SKIPPED" => FileStatus::LoadSkipped,
            "LOAD_FAILED" => FileStatus::LoadFailed,
            other => return Err(format!("COPY reported status {other:?} for {}", row.file)),
        };
        let outcome = if status == FileStatus::LoadSkipped {
            // Snowflake's "errors" for a skipped file are only the reason it was skipped.
            FileOutcome::skipped(&file.path)
        } else {
            FileOutcome {
                file: file.path.clone(),
                status,
                rows_parsed: row.rows_parsed,
                rows_loaded: row.rows_loaded,
                rows_replaced: 0,
                errors_seen: row.errors_seen,
                first_error: row.first_error,
                first_error_line: row.first_error_line,
            }
        };
        by_file.insert(&file.path, outcome);
    }
    Ok(files
        .iter()
        .map(|f| {
            by_file.remove(f.path.as_str()).unwrap_or_else(|| {
                FileOutcome::unknown(
                    &f.path,
                    "COPY's result does not mention it, COPY_HISTORY of the last 14 days \
                         shows no load of it, and the table holds no row of it: it may have \
                         vanished from the stage, or Snowflake could not tell whether it was \
                         loaded; --reload loads it"
                        .to_owned(),
                )
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use job_kit::Secret;
    use snowflake_conn::ConnectOptions;

    fn load(source: &str) -> Load {
        let env = |name: &str| match name {
            "STAGE_ROOT" => Some("s3://raw-bucket/landing".to_owned()),
            "DIAGNOSTIC_LOCATION_ONE" => Some("E1ONE".to_owned()),
            "DIAGNOSTIC_LOCATION_TWO" => Some("E2TWO".to_owned()),
            _ => Some("x".to_owned()),
        };
        Catalog::load(None)
            .unwrap()
            .source(source)
            .unwrap()
            .loads(jiff::civil::date(2026, 11, 26), &env)
            .unwrap()
            .remove(0)
    }

    fn file(path: &str) -> StagedFile {
        StagedFile {
            path: path.to_owned(),
            size: 1,
            tag: "etag".to_owned(),
        }
    }

    fn row(file: &str, status: &str, parsed: u64, loaded: u64, errors: u64) -> CopyRow {
        CopyRow {
            file: file.to_owned(),
            status: status.to_owned(),
            rows_parsed: parsed,
            rows_loaded: loaded,
            errors_seen: errors,
            first_error: (errors > 0).then(|| "Number of columns in file (14) does not match that of the corresponding table (12)".to_owned()),
            first_error_line: (errors > 0).then_some(41),
        }
    }

    #[test]
    fn copy_names_exactly_the_preflight_files() {
        let load = load("licenses");
        let files = [
            file("2026-11-26/licenses-2026-11-26.csv"),
            file("2026-11-26/it's.csv"),
        ];
        let shape = ReadShape::of_format(&load.format);
        let sql = copy_sql(&load, &files, shape, false);
        assert_eq!(
            sql,
            "COPY INTO licenses.licenses (license_id, customer_id, company_name, contact_email, \
             sku, edition, seats, is_trial, issued_at, starts_at, expires_at, features, \
             _source_file, _loaded_at)\n\
             FROM (SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             IFF(STARTSWITH(METADATA$FILENAME, 'landing/licenses/'), SUBSTR(METADATA$FILENAME, 18), \
             METADATA$FILENAME), METADATA$START_SCAN_TIME FROM @licenses.licenses_stage)\n\
             FILES = ('2026-11-26/licenses-2026-11-26.csv', '2026-11-26/it''s.csv')\n\
             FILE_FORMAT = (TYPE = CSV FIELD_DELIMITER = ',' SKIP_HEADER = 1 \
             FIELD_OPTIONALLY_ENCLOSED_BY = '\"' NULL_IF = () COMPRESSION = NONE \
             ERROR_ON_COLUMN_COUNT_MISMATCH = FALSE)\n\
             ON_ERROR = 'CONTINUE'"
        );
        assert!(
            copy_sql(&load, &files, shape, true).ends_with("ON_ERROR = 'CONTINUE'\nFORCE = TRUE")
        );

        assert_eq!(
            delete_sql(&load, &files),
            "DELETE FROM licenses.licenses WHERE _source_file IN \
             ('2026-11-26/licenses-2026-11-26.csv', '2026-11-26/it''s.csv')"
        );
    }

    #[test]
    fn copy_reads_a_file_by_its_header_shape() {
        // A CloudFront log without its `#` lines and with 24 of the 33 fields: nothing
        // skipped, the other columns NULL.
        let logs = load("diagnostics");
        let older = ReadShape {
            skip_lines: 0,
            fields: 24,
        };
        let sql = copy_sql(&logs, &[file("E1ONE/a.gz")], older, false);
        assert!(sql.contains("SKIP_HEADER = 0 "), "{sql}");
        assert!(
            sql.contains("$23, $24, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, IFF("),
            "{sql}"
        );
        assert!(!sql.contains("$25"), "{sql}");
    }

    #[test]
    fn bootstrap_creates_schema_format_stage_and_table() {
        let catalog = Catalog::load(None).unwrap();
        let source = catalog.source("diagnostics").unwrap();
        let loads = vec![load("diagnostics")];
        let keys = StageAccess::Keys {
            key_id: "AKIAEXAMPLE".to_owned(),
            secret: Secret::new("s3cr3t'key".to_owned()),
            token: None,
        };
        let options = ConnectOptions::new(
            "xy12345",
            "loader",
            snowflake_conn::Credential::Password(Secret::new("pw".to_owned())),
        );
        let sql = SnowflakeWarehouse::offline(&options).bootstrap_sql(&[(source, loads)], &keys);
        assert_eq!(sql.len(), 5, "{sql:#?}");
        assert_eq!(sql[0], "CREATE SCHEMA IF NOT EXISTS diagnostics;");
        assert_eq!(
            sql[1],
            "CREATE FILE FORMAT IF NOT EXISTS diagnostics.cloudfront_log\n  TYPE = CSV \
             FIELD_DELIMITER = '\t' SKIP_HEADER = 2 FIELD_OPTIONALLY_ENCLOSED_BY = NONE \
             NULL_IF = ('-') COMPRESSION = GZIP ERROR_ON_COLUMN_COUNT_MISMATCH = FALSE;"
        );
        assert_eq!(
            sql[2],
            "CREATE STAGE IF NOT EXISTS diagnostics.diagnostics_stage\n  \
             URL = 's3://raw-bucket/landing/diagnostics/'\n  \
             CREDENTIALS = (AWS_KEY_ID = 'AKIAEXAMPLE' AWS_SECRET_KEY = 's3cr3t''key')\n  \
             FILE_FORMAT = diagnostics.cloudfront_log;"
        );
        // An existing stage gets the current keys (CREATE ... IF NOT EXISTS keeps its old ones).
        assert_eq!(
            sql[3],
            "ALTER STAGE diagnostics.diagnostics_stage SET\n  \
             CREDENTIALS = (AWS_KEY_ID = 'AKIAEXAMPLE' AWS_SECRET_KEY = 's3cr3t''key');"
        );
        let sql = [&sql[..3], &sql[4..]].concat();
        assert!(sql[3].starts_with(
            "CREATE TABLE IF NOT EXISTS diagnostics.log_entries (\n  log_date DATE,\n  \
             log_time TIME,\n"
        ));
        assert!(sql[3].contains("  sc_bytes NUMBER(38,0),\n"));
        assert!(sql[3].contains("  time_taken FLOAT,\n"));
        assert!(sql[3].ends_with(
            "  _source_file VARCHAR NOT NULL,\n  _loaded_at TIMESTAMP_LTZ NOT NULL\n);"
        ));

        let integration = create_stage(
            "diagnostics",
            "diagnostics_stage",
            &StageUrl::parse("s3://raw-bucket/landing/diagnostics").unwrap(),
            "cloudfront_log",
            &StageAccess::Integration("s3_raw".to_owned()),
        );
        assert!(
            integration.contains("\n  STORAGE_INTEGRATION = s3_raw\n"),
            "{integration}"
        );
        let local = create_stage(
            "licenses",
            "licenses_stage",
            &StageUrl::parse("file:///data/stage/licenses").unwrap(),
            "license_csv",
            &StageAccess::Integration("s3_raw".to_owned()),
        );
        assert_eq!(
            local,
            "CREATE STAGE IF NOT EXISTS licenses.licenses_stage\n  \
             URL = 'file:///data/stage/licenses/'\n  FILE_FORMAT = licenses.license_csv;"
        );
    }

    #[test]
    fn copy_results_become_per_file_outcomes() {
        let files = [
            file("E1ONE/E1ONE.2026-11-26-00.a.gz"),
            file("E1ONE/E1ONE.2026-11-26-01.b.gz"),
            file("E1ONE/E1ONE.2026-11-26-02.c.gz"),
            file("E1ONE/E1ONE.2026-11-26-03.d.gz"),
            file("E1ONE/E1ONE.2026-11-26-04.e.gz"),
        ];
        let base = "s3://raw-bucket/landing/diagnostics/";
        let rows = vec![
            Ok(row(
                &format!("{base}{}", files[1].path),
                "PARTIALLY_LOADED",
                60,
                59,
                1,
            )),
            Ok(row(
                &format!("{base}{}", files[0].path),
                "LOADED",
                60,
                60,
                0,
            )),
            Ok(row(
                &format!("{base}{}", files[2].path),
                "LOAD_FAILED",
                0,
                0,
                1,
            )),
            // fakesnow reports a skipped file with an "error": the reason it was skipped.
            Ok(row(
                &format!("{base}{}", files[3].path),
                "LOAD_SKIPPED",
                0,
                0,
                1,
            )),
        ];
        let outcomes = outcomes(&files, rows).unwrap();
        let summary: Vec<_> = outcomes
            .iter()
            .map(|o| (o.file.as_str(), o.status, o.rows_loaded, o.errors_seen))
            .collect();
        assert_eq!(
            summary,
            [
                (files[0].path.as_str(), FileStatus::Loaded, 60, 0),
                (files[1].path.as_str(), FileStatus::PartiallyLoaded, 59, 1),
                (files[2].path.as_str(), FileStatus::LoadFailed, 0, 1),
                (files[3].path.as_str(), FileStatus::LoadSkipped, 0, 0),
                // not in the result: unknown until COPY_HISTORY confirms an earlier load
                (files[4].path.as_str(), FileStatus::Unknown, 0, 0),
            ]
        );
        assert_eq!(outcomes[1].first_error_line, Some(41));
        assert!(
            outcomes[1]
                .first_error
                .as_deref()
                .unwrap()
                .contains("Number of columns")
        );

        // A stage-relative name (an internal stage's) matches too; an unknown one is an error.
        let relative = outcomes_of(&files, row(&files[4].path, "LOADED", 1, 1, 0));
        assert_eq!(relative.unwrap()[4].status, FileStatus::Loaded);
        let unknown = outcomes_of(&files, row("s3://elsewhere/x.gz", "LOADED", 1, 1, 0));
        assert!(unknown.unwrap_err().contains("s3://elsewhere/x.gz"));
        let odd = outcomes_of(&files, row(&files[0].path, "MAYBE", 1, 1, 0));
        assert!(odd.unwrap_err().contains("MAYBE"));
    }

    fn outcomes_of(files: &[StagedFile], row: CopyRow) -> Result<Vec<FileOutcome>, String> {
        outcomes(files, vec![Ok(row)])
    }
}
