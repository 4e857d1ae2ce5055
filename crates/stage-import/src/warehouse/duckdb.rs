//! The embedded warehouse: a DuckDB database file, loaded with DuckDB's own CSV reader, so that a
//! data engineer without a Snowflake account gets the same sources, tables, per-file report and
//! idempotency on a laptop.
//!
//! Snowflake's load metadata becomes a history table (`_stage_import.load_history`): a file
//! already loaded with the same tag (its content's identity: S3's ETag, or the SHA-256 of a
//! local file) is skipped; a file loaded before with another tag replaces its earlier rows in
//! the transaction that loads it (`RELOADED`). `ON_ERROR='CONTINUE'` becomes
//! DuckDB's rejects tables: rejected rows are counted per file with the first error and its
//! line. A day's new files are read in one statement (DuckDB parallelises across them); if that
//! statement fails as a whole (an unreadable file), each file is probed alone so that only the
//! bad ones fail.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ::warehouse::duckdb::{Connection, DuckDbWarehouse, Settings};
use ::warehouse::{Warehouse, WarehouseError, line_in_message, literal_glob, sql_literal};
use tokio_util::sync::CancellationToken;

use super::snowflake::StageAccess;
use super::{BOOTSTRAP_FIX, FileSource, LOADED_AT_COLUMN, Loader, SOURCE_FILE_COLUMN, duckdb_type};
use crate::catalog::{Column, Compression, Format, HeaderKind, Load, Source};
use crate::header::{self, Decision, ReadShape};
use crate::report::{FileOutcome, FileStatus};
use crate::stage::StagedFile;

const HISTORY: &str = "_stage_import.load_history";

/// Opens the database file with the load history, what the embedded warehouse keeps in place of
/// Snowflake's load metadata.
pub fn open(path: &Path, settings: &Settings) -> Result<DuckDbWarehouse, WarehouseError> {
    DuckDbWarehouse::open(
        path,
        settings,
        "CREATE SCHEMA IF NOT EXISTS _stage_import;
         CREATE TABLE IF NOT EXISTS _stage_import.load_history (
             table_name VARCHAR NOT NULL,
             file VARCHAR NOT NULL,
             tag VARCHAR NOT NULL,
             status VARCHAR NOT NULL,
             rows_loaded BIGINT NOT NULL,
             errors_seen BIGINT NOT NULL,
             loaded_at TIMESTAMP NOT NULL
         );",
    )
}

impl Loader for DuckDbWarehouse {
    fn bootstrap_sql(
        &self,
        sources: &[(&Source, Vec<Load>)],
        _stage_access: &StageAccess,
    ) -> Vec<String> {
        let mut statements = Vec::new();
        for (source, _) in sources {
            let schema = format!("CREATE SCHEMA IF NOT EXISTS {};", source.schema);
            if !statements.contains(&schema) {
                statements.push(schema);
            }
            let mut columns: Vec<String> = source
                .format
                .columns
                .iter()
                .map(|c| format!("    \"{}\" {}", c.name, duckdb_type(c.kind)))
                .collect();
            columns.push(format!("    {SOURCE_FILE_COLUMN} VARCHAR NOT NULL"));
            columns.push(format!("    {LOADED_AT_COLUMN} TIMESTAMP NOT NULL"));
            let table = format!(
                "CREATE TABLE IF NOT EXISTS {}.{} (\n{}\n);",
                source.schema,
                source.table,
                columns.join(",\n")
            );
            if !statements.contains(&table) {
                statements.push(table);
            }
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
        let FileSource::Local(root) = from else {
            return Err(WarehouseError::Setup(
                "the embedded warehouse reads local files only".to_owned(),
            ));
        };
        let job = LoadJob {
            table: format!("{}.{}", load.schema, load.table),
            format: load.format.clone(),
            root: std::path::absolute(root).unwrap_or_else(|_| root.clone()),
            files: files.to_vec(),
            reload,
            interrupted: self.interrupted(),
        };
        self.blocking(cancel, move |connection| job.run(connection))
            .await
    }

    fn add_column_sql(&self, schema: &str, table: &str, column: &Column) -> String {
        format!(
            "ALTER TABLE {schema}.{table} ADD COLUMN \"{}\" {};",
            column.name,
            duckdb_type(column.kind)
        )
    }

    async fn files_held(
        &mut self,
        load: &Load,
        cancel: &CancellationToken,
    ) -> Result<Vec<String>, WarehouseError> {
        let sql = super::files_held_sql(load, sql_literal);
        let (_, rows) = self.query_text(&sql, cancel).await?;
        Ok(::warehouse::first_column(rows))
    }
}

/// Why a batch did not commit.
enum BatchFailure {
    Interrupted,
    Failed(duckdb::Error),
}

impl From<duckdb::Error> for BatchFailure {
    fn from(error: duckdb::Error) -> Self {
        BatchFailure::Failed(error)
    }
}

/// One load's work on the connection (runs on a blocking thread).
struct LoadJob {
    table: String,
    format: Format,
    root: PathBuf,
    files: Vec<StagedFile>,
    reload: bool,
    interrupted: Arc<AtomicBool>,
}

impl LoadJob {
    fn run(&self, connection: &mut Connection) -> Result<Vec<FileOutcome>, WarehouseError> {
        let query_error = |what: &str| {
            let what = what.to_owned();
            move |e: duckdb::Error| WarehouseError::Query {
                what,
                message: e.to_string(),
            }
        };
        let exists: bool = connection
            .query_row(
                "SELECT count(*) > 0 FROM information_schema.tables
                 WHERE table_schema || '.' || table_name = ?",
                [&self.table],
                |row| row.get(0),
            )
            .map_err(query_error("checking the table"))?;
        if !exists {
            return Err(WarehouseError::MissingTable {
                table: self.table.clone(),
                fix: BOOTSTRAP_FIX,
            });
        }

        let loaded_before = if self.reload {
            HashMap::new()
        } else {
            self.loaded_before(connection)
                .map_err(query_error("reading the load history"))?
        };
        let mut outcomes: BTreeMap<String, FileOutcome> = BTreeMap::new();
        let mut new_files = Vec::new();
        let mut known = Known::default();
        let mut emptied = Vec::new();
        for file in &self.files {
            let tag = loaded_before.get(&file.path);
            if tag == Some(&file.tag) {
                outcomes.insert(file.path.clone(), FileOutcome::skipped(&file.path));
                continue;
            }
            let inspected = header::inspect(&self.root.join(&file.path), &self.format);
            let read = match Decision::of(&file.path, inspected, &self.format) {
                Decision::Read(shape) => shape,
                // Rewritten to hold no row: its earlier rows go (below), as a rewritten file's
                // are replaced by its new ones.
                Decision::Outcome(outcome)
                    if outcome.status == FileStatus::Empty && (self.reload || tag.is_some()) =>
                {
                    emptied.push(file.clone());
                    continue;
                }
                Decision::Outcome(outcome) => {
                    outcomes.insert(file.path.clone(), outcome);
                    continue;
                }
            };
            known.shapes.insert(file.path.clone(), read);
            if tag.is_some() {
                known.changed.insert(file.path.clone());
            }
            new_files.push(file.clone());
        }
        if !new_files.is_empty() {
            let loaded = match self.load_batch(connection, &new_files, &known) {
                Ok(loaded) => loaded,
                Err(BatchFailure::Interrupted) => return Err(WarehouseError::Interrupted),
                Err(BatchFailure::Failed(batch_error)) => {
                    // Find the files that cannot be read at all, then load the others.
                    tracing::debug!(table = %self.table, "batch load failed, probing each file: {batch_error}");
                    let mut readable = Vec::new();
                    for file in &new_files {
                        if self.interrupted.load(Ordering::SeqCst) {
                            return Err(WarehouseError::Interrupted);
                        }
                        match self.probe(connection, file, known.shape(&file.path)) {
                            Ok(()) => readable.push(file.clone()),
                            Err(message) => {
                                outcomes.insert(file.path.clone(), failed(&file.path, &message));
                            }
                        }
                    }
                    if self.interrupted.load(Ordering::SeqCst) {
                        return Err(WarehouseError::Interrupted);
                    }
                    if readable.is_empty() {
                        Vec::new()
                    } else {
                        self.load_batch(connection, &readable, &known)
                            .map_err(|failure| match failure {
                                BatchFailure::Interrupted => WarehouseError::Interrupted,
                                BatchFailure::Failed(e) => {
                                    query_error(&format!("loading into {}", self.table))(e)
                                }
                            })?
                    }
                }
            };
            for outcome in loaded {
                outcomes.insert(outcome.file.clone(), outcome);
            }
        }
        if !emptied.is_empty() {
            let emptied = self
                .replace_with_nothing(connection, &emptied)
                .map_err(|failure| match failure {
                    BatchFailure::Interrupted => WarehouseError::Interrupted,
                    BatchFailure::Failed(e) => query_error(&format!("emptying {}", self.table))(e),
                })?;
            for outcome in emptied {
                outcomes.insert(outcome.file.clone(), outcome);
            }
        }
        Ok(self
            .files
            .iter()
            .filter_map(|f| outcomes.remove(&f.path))
            .collect())
    }

    /// The tag each file of this load had when it was last loaded.
    fn loaded_before(&self, connection: &Connection) -> duckdb::Result<HashMap<String, String>> {
        let mut statement = connection.prepare(&format!(
            "SELECT file, arg_max(tag, loaded_at) FROM {HISTORY}
             WHERE table_name = ? AND status IN ('LOADED', 'PARTIALLY_LOADED', 'RELOADED')
             GROUP BY file"
        ))?;
        let rows = statement.query_map([&self.table], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect()
    }

    /// Loads `files` in one transaction. Their earlier rows go in the same one: all of them with
    /// `reload`, else those of a file whose content changed since its last load.
    /// Once the job is cancelled, any failure is the interruption (DuckDB's own error for an
    /// interrupted statement is not a bad file).
    fn load_batch(
        &self,
        connection: &mut Connection,
        files: &[StagedFile],
        known: &Known,
    ) -> Result<Vec<FileOutcome>, BatchFailure> {
        self.commit_batch(connection, files, known)
            .map_err(|failure| {
                if self.interrupted.load(Ordering::SeqCst) {
                    BatchFailure::Interrupted
                } else {
                    failure
                }
            })
    }

    fn commit_batch(
        &self,
        connection: &mut Connection,
        files: &[StagedFile],
        known: &Known,
    ) -> Result<Vec<FileOutcome>, BatchFailure> {
        let loaded_at = jiff::Timestamp::now()
            .strftime("%Y-%m-%d %H:%M:%S%.6f")
            .to_string();
        let transaction = connection.transaction()?;
        if self.reload {
            let list = files
                .iter()
                .map(|f| sql_literal(&f.path))
                .collect::<Vec<_>>()
                .join(", ");
            transaction.execute_batch(&format!(
                "DELETE FROM {table} WHERE {SOURCE_FILE_COLUMN} IN ({list});
                 DELETE FROM {HISTORY} WHERE table_name = {t} AND file IN ({list});",
                table = self.table,
                t = sql_literal(&self.table),
            ))?;
        }
        self.stop_if_interrupted()?;
        let columns: Vec<String> = self
            .format
            .columns
            .iter()
            .map(|c| format!("\"{}\"", c.name))
            .collect();
        let root_prefix = format!("{}/", self.root.display());
        // One read per shape: files whose headers name fewer fields are read with fewer columns.
        let mut by_shape: BTreeMap<ReadShape, Vec<&StagedFile>> = BTreeMap::new();
        // The reject scans of this batch's reads: DuckDB keeps a connection's rejects.
        let mut scans: Vec<String> = Vec::new();
        for file in files {
            by_shape
                .entry(known.shape(&file.path))
                .or_default()
                .push(file);
        }
        for (shape, group) in by_shape {
            self.stop_if_interrupted()?;
            let paths = group
                .iter()
                .map(|f| {
                    sql_literal(&literal_glob(
                        &self.root.join(&f.path).display().to_string(),
                    ))
                })
                .collect::<Vec<_>>()
                .join(", ");
            let cols = columns[..shape.fields].join(", ");
            transaction.execute(
                &format!(
                    "INSERT INTO {table} ({cols}, {SOURCE_FILE_COLUMN}, {LOADED_AT_COLUMN})
                     SELECT {cols}, substr(filename, {skip}), TIMESTAMP {at}
                     FROM read_csv([{paths}], {options}, filename = true, store_rejects = true)",
                    table = self.table,
                    skip = root_prefix.chars().count() + 1,
                    at = sql_literal(&loaded_at),
                    options = self.read_options(shape),
                ),
                [],
            )?;
            // NULL until a read of the connection rejected a row; an earlier batch's scan is
            // harmless, its files are not this batch's.
            let scan: Option<i64> =
                transaction.query_row("SELECT max(scan_id) FROM reject_scans", [], |row| {
                    row.get(0)
                })?;
            if let Some(scan) = scan.map(|s| s.to_string())
                && !scans.contains(&scan)
            {
                scans.push(scan);
            }
        }
        let loaded = rows_per_file(
            &transaction,
            &format!(
                "SELECT {SOURCE_FILE_COLUMN}, count(*) FROM {} WHERE {LOADED_AT_COLUMN} = TIMESTAMP {}
                 GROUP BY 1",
                self.table,
                sql_literal(&loaded_at)
            ),
        )?;
        // A file loaded before with other content: its earlier rows are replaced by this load's,
        // when this load has rows of it (a rewritten file that fails to load keeps what it had).
        let rewritten: Vec<String> = files
            .iter()
            .filter(|f| {
                known.changed.contains(&f.path) && loaded.get(&f.path).is_some_and(|&n| n > 0)
            })
            .map(|f| sql_literal(&f.path))
            .collect();
        let mut replaced: HashMap<String, u64> = HashMap::new();
        if !rewritten.is_empty() {
            let list = rewritten.join(", ");
            replaced = rows_per_file(
                &transaction,
                &format!(
                    "SELECT {SOURCE_FILE_COLUMN}, count(*) FROM {} WHERE {SOURCE_FILE_COLUMN} IN ({list})
                     AND {LOADED_AT_COLUMN} <> TIMESTAMP {} GROUP BY 1",
                    self.table,
                    sql_literal(&loaded_at)
                ),
            )?;
            transaction.execute(
                &format!(
                    "DELETE FROM {} WHERE {SOURCE_FILE_COLUMN} IN ({list})
                     AND {LOADED_AT_COLUMN} <> TIMESTAMP {}",
                    self.table,
                    sql_literal(&loaded_at)
                ),
                [],
            )?;
        }
        let mut rejected: HashMap<String, (u64, Option<u64>, Option<String>)> = HashMap::new();
        if !scans.is_empty() {
            let mut statement = transaction.prepare(&format!(
                // DuckDB records an error per bad column: a rejected row is a distinct line.
                "SELECT s.file_path, count(DISTINCT e.line), min(e.line), arg_min(e.error_message, e.line)
                 FROM reject_errors e JOIN reject_scans s USING (scan_id, file_id)
                 WHERE e.scan_id IN ({})
                 GROUP BY 1",
                scans.join(", ")
            ))?;
            for row in statement.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Option<i64>>(2)?,
                    row.get::<_, Option<String>>(3)?,
                ))
            })? {
                let (path, count, line, message) = row?;
                let file = path.strip_prefix(&root_prefix).unwrap_or(&path).to_owned();
                rejected.insert(file, (count as u64, line.map(|l| l as u64), message));
            }
        }
        let mut outcomes = Vec::new();
        for file in files {
            let rows_loaded = loaded.get(&file.path).copied().unwrap_or(0);
            let (errors_seen, first_error_line, first_error) =
                rejected.remove(&file.path).unwrap_or((0, None, None));
            let rows_replaced = replaced.get(&file.path).copied().unwrap_or(0);
            let status = match (rows_loaded, errors_seen) {
                _ if rows_replaced > 0 => FileStatus::Reloaded,
                (_, 0) => FileStatus::Loaded,
                (0, _) => FileStatus::LoadFailed,
                _ => FileStatus::PartiallyLoaded,
            };
            transaction.execute(
                &format!(
                    "INSERT INTO {HISTORY} VALUES (?, ?, ?, ?, ?, ?, TIMESTAMP {})",
                    sql_literal(&loaded_at)
                ),
                duckdb::params![
                    self.table,
                    file.path,
                    file.tag,
                    status_name(status),
                    rows_loaded as i64,
                    errors_seen as i64
                ],
            )?;
            outcomes.push(FileOutcome {
                file: file.path.clone(),
                status,
                rows_parsed: rows_loaded + errors_seen,
                rows_loaded,
                rows_replaced,
                errors_seen,
                first_error,
                first_error_line,
            });
        }
        // Dropping the transaction rolls it back.
        self.stop_if_interrupted()?;
        transaction.commit()?;
        // Rejects are kept per connection; the next load reads only its own scan.
        Ok(outcomes)
    }

    /// Files loaded before (or `--reload`ed) that now hold no data row: their rows go, in one
    /// transaction. One whose rows the table held is RELOADED (`rows_replaced`); one it held
    /// nothing of stays EMPTY, as it is on the next run (no load is recorded for a file
    /// without rows, as on Snowflake, where the table is the only record).
    fn replace_with_nothing(
        &self,
        connection: &mut Connection,
        files: &[StagedFile],
    ) -> Result<Vec<FileOutcome>, BatchFailure> {
        let list = files
            .iter()
            .map(|f| sql_literal(&f.path))
            .collect::<Vec<_>>()
            .join(", ");
        let transaction = connection.transaction()?;
        let held = rows_per_file(
            &transaction,
            &format!(
                "SELECT {SOURCE_FILE_COLUMN}, count(*) FROM {} WHERE {SOURCE_FILE_COLUMN} IN ({list})
                 GROUP BY 1",
                self.table
            ),
        )?;
        transaction.execute(
            &format!(
                "DELETE FROM {} WHERE {SOURCE_FILE_COLUMN} IN ({list})",
                self.table
            ),
            [],
        )?;
        let mut outcomes = Vec::new();
        for file in files {
            let rows_replaced = held.get(&file.path).copied().unwrap_or(0);
            if rows_replaced == 0 {
                outcomes.push(FileOutcome::empty(&file.path));
                continue;
            }
            outcomes.push(FileOutcome {
                status: FileStatus::Reloaded,
                rows_replaced,
                ..FileOutcome::empty(&file.path)
            });
        }
        self.stop_if_interrupted()?;
        transaction.commit()?;
        Ok(outcomes)
    }

    /// Gives up the batch (its transaction rolls back) once the job is cancelled.
    fn stop_if_interrupted(&self) -> Result<(), BatchFailure> {
        if self.interrupted.load(Ordering::SeqCst) {
            Err(BatchFailure::Interrupted)
        } else {
            Ok(())
        }
    }

    /// Reads one file without loading it: `Err` is why it cannot be read at all.
    fn probe(
        &self,
        connection: &Connection,
        file: &StagedFile,
        shape: ReadShape,
    ) -> Result<(), String> {
        let path = literal_glob(&self.root.join(&file.path).display().to_string());
        connection
            .query_row(
                &format!(
                    "SELECT count(*) FROM read_csv({}, {})",
                    sql_literal(&path),
                    self.read_options(shape)
                ),
                [],
                |row| row.get::<_, i64>(0),
            )
            .map(|_| ())
            .map_err(|e| {
                e.to_string()
                    .replace(&format!("{}/", self.root.display()), "")
            })
    }

    /// `read_csv` options for the format and a file's shape: explicit columns and types, no
    /// sniffing (faster, and a file cannot change the table's shape), bad rows rejected.
    fn read_options(&self, shape: ReadShape) -> String {
        let format = &self.format;
        let columns = format.columns[..shape.fields]
            .iter()
            .map(|c| {
                format!(
                    "{}: {}",
                    sql_literal(&c.name),
                    sql_literal(duckdb_type(c.kind))
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let (quote, escape) = match format.quote_char() {
            Some(q) => (q.to_string(), q.to_string()),
            None => (String::new(), String::new()),
        };
        let mut options = vec![
            format!("columns = {{{columns}}}"),
            "auto_detect = false".to_owned(),
            "header = false".to_owned(),
            format!("skip = {}", shape.skip_lines),
            format!("delim = {}", sql_literal(&format.delimiter)),
            format!("quote = {}", sql_literal(&quote)),
            format!("escape = {}", sql_literal(&escape)),
            "ignore_errors = true".to_owned(),
            format!(
                "compression = {}",
                sql_literal(match format.compression {
                    Compression::Gzip => "gzip",
                    Compression::None => "none",
                })
            ),
        ];
        // Short rows load with NULLs in the missing columns where no header says how many
        // fields a file has (a W3C log's own #Fields: does: a shorter line is rejected). DuckDB's
        // parallel reader refuses padding together with quoted fields, which may hold
        // newlines; quoted formats have a fixed width anyway.
        if format.quote_char().is_none() && format.header != HeaderKind::W3c {
            options.push("null_padding = true".to_owned());
        }
        if let Some(null) = &format.null {
            options.push(format!("nullstr = {}", sql_literal(null)));
        }
        options.join(", ")
    }
}

/// The answer of `sql`, a file and a count per row, as a map.
fn rows_per_file(connection: &Connection, sql: &str) -> duckdb::Result<HashMap<String, u64>> {
    let mut statement = connection.prepare(sql)?;
    let rows = statement.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
    })?;
    rows.collect()
}

/// What the run learnt of the files it loads, before their batch.
#[derive(Default)]
struct Known {
    /// Loaded before with other content: this load replaces their rows.
    changed: HashSet<String>,
    shapes: HashMap<String, ReadShape>,
}

impl Known {
    fn shape(&self, path: &str) -> ReadShape {
        self.shapes[path]
    }
}

fn failed(file: &str, message: &str) -> FileOutcome {
    FileOutcome {
        file: file.to_owned(),
        status: FileStatus::LoadFailed,
        rows_parsed: 0,
        rows_loaded: 0,
        rows_replaced: 0,
        errors_seen: 1,
        first_error: Some(message.lines().next().unwrap_or(message).to_owned()),
        first_error_line: line_in_message(message),
    }
}

fn status_name(status: FileStatus) -> &'static str {
    match status {
        FileStatus::Loaded => "LOADED",
        FileStatus::LoadSkipped => "LOAD_SKIPPED",
        FileStatus::PartiallyLoaded => "PARTIALLY_LOADED",
        FileStatus::Reloaded => "RELOADED",
        FileStatus::Empty => "EMPTY",
        FileStatus::LoadFailed => "LOAD_FAILED",
        FileStatus::Unknown => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    const LICENSES: usize = 12;

    /// A warehouse with the built-in licenses source bootstrapped, and that source's export of
    /// one day (`LICENSES` rows) written by sample-data.
    async fn warehouse_with_a_file(dir: &Path) -> (DuckDbWarehouse, Load, StagedFile) {
        let day = jiff::civil::date(2026, 11, 26);
        let stage = dir.join("stage");
        sample_data::write(&sample_data::Plan {
            root: stage.clone(),
            days: vec![day],
            layout: sample_data::Layout::default(),
            seed: 1,
            servers: LICENSES,
            files_per_day: 1,
            rows_per_file: 1,
            malformed: false,
        })
        .unwrap();
        let catalog = Catalog::load(None).unwrap();
        let source = catalog.source("licenses").unwrap();
        let stage_root = format!("file://{}", stage.display());
        let load = source
            .loads(day, &|name| {
                (name == "STAGE_ROOT").then(|| stage_root.clone())
            })
            .unwrap()
            .remove(0);
        let settings = Settings {
            memory_limit: "256MB".to_owned(),
            threads: Some(1),
        };
        let mut warehouse = open(&dir.join("w.duckdb"), &settings).unwrap();
        let statements =
            warehouse.bootstrap_sql(&[(source, vec![load.clone()])], &StageAccess::Missing);
        warehouse
            .execute(&statements, &CancellationToken::new())
            .await
            .unwrap();
        let file = crate::stage::list_local(&stage.join("licenses"), &load.list_prefix)
            .unwrap()
            .remove(0);
        (warehouse, load, file)
    }

    async fn rows(warehouse: &DuckDbWarehouse) -> String {
        let (_, rows) = warehouse
            .query_text(
                "SELECT count(*) FROM licenses.licenses",
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        rows[0][0].clone().unwrap()
    }

    #[tokio::test]
    async fn a_load_commits_and_reports_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (mut warehouse, load, file) = warehouse_with_a_file(dir.path()).await;
        let root = FileSource::Local(dir.path().join("stage/licenses"));
        let outcomes = warehouse
            .load(&load, &[file], &root, false, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(outcomes.len(), 1);
        assert_eq!(outcomes[0].status, FileStatus::Loaded);
        assert_eq!(outcomes[0].rows_loaded, LICENSES as u64);
        assert_eq!(rows(&warehouse).await, LICENSES.to_string());
    }

    #[tokio::test]
    async fn a_row_with_several_bad_columns_is_one_rejected_row_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let (mut warehouse, load, file) = warehouse_with_a_file(dir.path()).await;
        let stage = dir.path().join("stage/licenses");
        let mut text = std::fs::read_to_string(stage.join(&file.path)).unwrap();
        assert!(text.ends_with('\n'));
        // seats, is_trial, issued_at, starts_at and expires_at are all wrong: five errors.
        text.push_str(
            "L-bad,C-1,Acme,a@example.com,E20,enterprise,many,maybe,soon,later,never,x\n",
        );
        std::fs::write(stage.join(&file.path), text).unwrap();
        let outcomes = warehouse
            .load(
                &load,
                &[file],
                &FileSource::Local(stage),
                false,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        let outcome = &outcomes[0];
        assert_eq!(outcome.status, FileStatus::PartiallyLoaded, "{outcome:?}");
        assert_eq!(outcome.rows_loaded, LICENSES as u64);
        assert_eq!(outcome.errors_seen, 1, "{outcome:?}");
        assert_eq!(outcome.rows_parsed, LICENSES as u64 + 1);
        // The header is line 1, the good rows lines 2 to LICENSES + 1.
        assert_eq!(outcome.first_error_line, Some(LICENSES as u64 + 2));
    }

    #[tokio::test]
    async fn a_file_named_like_a_glob_loads_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let (mut warehouse, load, file) = warehouse_with_a_file(dir.path()).await;
        let stage = dir.path().join("stage/licenses");
        let extension = file.path.rsplit_once('.').unwrap().1;
        // As a glob, `*?[!-].<ext>` also matches the file sample-data wrote beside it.
        let name = format!("*?[!-].{extension}");
        let path = match file.path.rsplit_once('/') {
            Some((folder, _)) => format!("{folder}/{name}"),
            None => name,
        };
        std::fs::copy(stage.join(&file.path), stage.join(&path)).unwrap();
        let globbed = StagedFile { path, ..file };
        let outcomes = warehouse
            .load(
                &load,
                std::slice::from_ref(&globbed),
                &FileSource::Local(stage),
                false,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        assert_eq!(outcomes[0].file, globbed.path);
        assert_eq!(outcomes[0].status, FileStatus::Loaded, "{outcomes:?}");
        assert_eq!(outcomes[0].rows_loaded, LICENSES as u64);
        assert_eq!(rows(&warehouse).await, LICENSES.to_string());
    }

    // DuckDB forgets an interrupt that arrives while no statement runs: a cancellation that
    // comes before or between the load's statements must still stop it before it commits.
    // Where the interrupt lands is up to the threads, so the load is tried a number of times.
    #[tokio::test]
    async fn a_cancellation_before_the_load_starts_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut warehouse, load, file) = warehouse_with_a_file(dir.path()).await;
        let root = FileSource::Local(dir.path().join("stage/licenses"));
        let cancel = CancellationToken::new();
        cancel.cancel();
        for attempt in 0..20 {
            let result = warehouse
                .load(&load, std::slice::from_ref(&file), &root, false, &cancel)
                .await;
            assert!(
                matches!(result, Err(WarehouseError::Interrupted)),
                "attempt {attempt}: {result:?}"
            );
            assert_eq!(rows(&warehouse).await, "0", "attempt {attempt}");
        }
    }
}
