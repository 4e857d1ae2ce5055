//! pg-replicate: key-based incremental replication of the Heroku Connect Postgres (Salesforce
//! data) into the warehouse, as Stitch did it but without its blind spots: the bookmark commits
//! with the rows it covers, each read goes back a lookback before the bookmark so that late
//! commits and ties are not lost, rows with a NULL key are re-read and reported, a table is
//! copied in full into a new table swapped in atomically (first run, other keys, `--reload`),
//! and a table whose columns changed is merged as before: new columns added and backfilled
//! (the key and those columns read alone), dropped ones kept, grown types widened. Rows deleted
//! at the source (hard deletes, which no replication key shows) are found by reconciling the
//! keys bucket by bucket (`reconcile`) and marked `_deleted_at` or deleted.
//!
//! One table at a time: read in a read-only snapshot with `COPY … TO STDOUT` into a spool file
//! (memory stays flat), then loaded in one warehouse transaction with its bookmark: the embedded
//! DuckDB file (`load`), or Snowflake through an S3 stage (`snowflake`).

pub mod catalog;
pub mod config;
#[cfg(feature = "duckdb")]
pub mod embedded;
pub mod load;
pub mod reconcile;
pub mod report;
pub mod snowflake;
pub mod source;
pub mod types;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use job_kit::retry::RetryError;
use job_kit::{Context, EnvVar, Exit, Job, JobError};
use warehouse::WarehouseError;
#[cfg(feature = "duckdb")]
use warehouse::duckdb::DuckDbWarehouse;

use catalog::{CatalogError, HardDeletes, Reconcile, Selected, TableName};
pub use config::{Args, Config};
use report::{Mode, Report, Status, TableReport};
use source::{Since, SourceError};

pub struct PgReplicate;

#[derive(Debug, thiserror::Error)]
pub enum PgReplicateError {
    #[error("{0}")]
    Catalog(#[from] CatalogError),
    #[error(
        "{} is not set (nor {}): it names the Postgres to replicate from",
        config::URL_VAR,
        config::URL_ALIAS
    )]
    NoUrl,
    #[error("{}: {source}", config::URL_VAR)]
    Url { source: pg_conn::UrlError },
    #[error("PG_REPLICATE_TARGET_SCHEMA {schema:?}: {problem}")]
    TargetSchema {
        schema: String,
        problem: &'static str,
    },
    #[error("PG_REPLICATE_WORK_DIR {}: {message}", .dir.display())]
    WorkDir { dir: PathBuf, message: String },
    #[error("{name:?} is not a table of the catalog; it has: {known}")]
    UnknownTable { name: String, known: String },
    #[error("{name:?} is a table of more than one schema: write {candidates}")]
    AmbiguousTable { name: String, candidates: String },
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        source: RetryError<pg_conn::ConnectFailure>,
    },
    #[error("cannot list the source's tables: {0}")]
    List(SourceError),
    #[error("{0}")]
    Warehouse(#[from] WarehouseError),
    #[error("{0}")]
    SnowflakeConfig(String),
    #[error(
        "interrupted (SIGTERM/SIGINT) during {table}: nothing of it was committed, its bookmark is unchanged"
    )]
    Interrupted { table: String },
    #[error(
        "interrupted (SIGTERM/SIGINT) while looking for {table}'s hard deletes: its rows and bookmark \
         committed, no deletes were applied"
    )]
    InterruptedReconciling { table: String },
    #[error("interrupted (SIGTERM/SIGINT) before {table} started: the tables before it committed")]
    InterruptedBefore { table: String },
    #[error("every table failed ({0}); see the report")]
    AllFailed(usize),
    #[error("cannot write to stdout: {0}")]
    Output(std::io::Error),
}

impl JobError for PgReplicateError {
    fn exit(&self) -> Exit {
        match self {
            PgReplicateError::Catalog(_)
            | PgReplicateError::NoUrl
            | PgReplicateError::Url { .. }
            | PgReplicateError::TargetSchema { .. }
            | PgReplicateError::WorkDir { .. }
            | PgReplicateError::SnowflakeConfig(_)
            | PgReplicateError::UnknownTable { .. }
            | PgReplicateError::AmbiguousTable { .. } => Exit::Usage,
            PgReplicateError::Connect { source, .. }
                if source.error.as_ref().is_some_and(|e| e.refused_credentials) =>
            {
                Exit::Usage
            }
            PgReplicateError::Warehouse(err) => err.exit(),
            _ => Exit::Failure,
        }
    }
}

impl Job for PgReplicate {
    const NAME: &'static str = "pg-replicate";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const ABOUT: &'static str = "Replicates the Heroku Connect Postgres into the warehouse, \
                                 table by table, incrementally on each table's replication key.";
    const VARS: &'static [EnvVar] = config::VARS;
    type Config = Config;
    type Args = Args;
    type Error = PgReplicateError;

    async fn run(config: Config, args: Args, context: Context) -> Result<Exit, PgReplicateError> {
        let catalog = catalog::load(config.pg_replicate_catalog.as_deref())?;
        if args.print_catalog {
            let mut out = std::io::stdout().lock();
            return match out.write_all(catalog.to_yaml().as_bytes()) {
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(Exit::Success),
                Err(err) => Err(PgReplicateError::Output(err)),
                Ok(()) => Ok(Exit::Success),
            };
        }
        let target_schema = config.pg_replicate_target_schema.clone();
        if let Some(problem) = catalog::name_problem(&target_schema) {
            return Err(PgReplicateError::TargetSchema {
                schema: target_schema,
                problem,
            });
        }
        let url = config
            .heroku_postgresql_url
            .as_ref()
            .ok_or(PgReplicateError::NoUrl)?;
        let connection_check = Duration::from_secs_f64(config.pg_replicate_connection_check_secs);
        let mut target = pg_conn::Target::from_url(
            url.expose(),
            "pg-replicate",
            Duration::from_secs_f64(config.pg_replicate_connect_timeout_secs),
        )
        .map_err(|source| PgReplicateError::Url { source })?;
        target.keep_alive(connection_check);
        let work_dir = config
            .pg_replicate_work_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        if !work_dir.is_dir() {
            return Err(PgReplicateError::WorkDir {
                dir: work_dir,
                message: "not a directory".to_owned(),
            });
        }

        let snowflake = config
            .snowflake()
            .map_err(PgReplicateError::SnowflakeConfig)?;
        let warehouse = match snowflake {
            Some((settings, s3, stage_url)) => {
                let warehouse = warehouse::snowflake::SnowflakeWarehouse::connect(
                    &settings.options,
                    &context.cancel,
                )
                .await?;
                let target = snowflake::SnowflakeTarget {
                    warehouse,
                    s3: s3_files::S3::new(&s3),
                    stage_url,
                    access: settings.stage_access,
                };
                target.setup(&target_schema).await?;
                Target::Snowflake(target)
            }
            None => open_embedded(&config)?,
        };
        tracing::info!(
            source = %url.redacted(),
            warehouse = %warehouse.describe(),
            sslmode = target.ssl_mode.as_str(),
            "replicating into schema {target_schema}"
        );
        target.warn_if_unverified();
        let policy = pg_conn::connect_policy(config.pg_replicate_connect_attempts);
        let session = pg_conn::connect(&target, &policy, &context.cancel)
            .await
            .map_err(|source| PgReplicateError::Connect {
                url: url.redacted(),
                source,
            })?;
        let result = replicate(
            &session, &warehouse, &catalog, &config, &args, &context, url, work_dir,
        )
        .await;
        session.close().await;
        result
    }
}

#[cfg(feature = "duckdb")]
fn open_embedded(config: &Config) -> Result<Target, PgReplicateError> {
    Ok(Target::DuckDb(DuckDbWarehouse::open(
        &config.warehouse_path,
        &warehouse::duckdb::Settings {
            memory_limit: config.duckdb_memory_limit.clone(),
            threads: config.duckdb_threads,
        },
        embedded::SETUP_SQL,
    )?))
}

/// Without the embedded warehouse (the images), Snowflake is the only place to write.
#[cfg(not(feature = "duckdb"))]
fn open_embedded(_config: &Config) -> Result<Target, PgReplicateError> {
    Err(PgReplicateError::SnowflakeConfig(
        "no warehouse: set SNOWFLAKE_ACCOUNT, SNOWFLAKE_LOAD_USER, SNOWFLAKE_LOAD_WAREHOUSE and \
         SNOWFLAKE_LOAD_PRIVATE_KEY (or _PRIVATE_KEY_PATH, _TOKEN, _PASSWORD), with \
         PG_REPLICATE_STAGE_URL (this build has no embedded warehouse)"
            .to_owned(),
    ))
}

/// Where the tables go: Snowflake when configured, else the embedded DuckDB file.
enum Target {
    #[cfg(feature = "duckdb")]
    DuckDb(DuckDbWarehouse),
    Snowflake(snowflake::SnowflakeTarget),
}

impl Target {
    fn describe(&self) -> String {
        use warehouse::Warehouse;
        match self {
            #[cfg(feature = "duckdb")]
            Target::DuckDb(w) => w.describe(),
            Target::Snowflake(s) => s.warehouse.describe(),
        }
    }

    fn dataset(&self, schema: &str, table: &str) -> job_kit::lineage::Dataset {
        use warehouse::Warehouse;
        match self {
            #[cfg(feature = "duckdb")]
            Target::DuckDb(w) => w.dataset(schema, table),
            Target::Snowflake(s) => s.warehouse.dataset(schema, table),
        }
    }
}

/// A source table as lineage names it: the server, its database, the table.
#[derive(Debug, Clone)]
struct SourceName {
    host: String,
    port: u16,
    database: String,
}

impl SourceName {
    fn of(url: &url::Url) -> SourceName {
        SourceName {
            host: url.host_str().unwrap_or("localhost").to_owned(),
            port: url.port().unwrap_or(5432),
            database: url.path().trim_start_matches('/').to_owned(),
        }
    }

    fn dataset(&self, table: &catalog::TableName) -> job_kit::lineage::Dataset {
        job_kit::lineage::Dataset::postgres(
            &self.host,
            self.port,
            &self.database,
            &table.schema,
            &table.table,
        )
    }
}

/// What every table's replication shares.
struct Run<'a> {
    session: &'a pg_conn::Session,
    source: SourceName,
    warehouse: &'a Target,
    target_schema: &'a str,
    work_dir: PathBuf,
    max_bytes: u64,
    lookback: Duration,
    settings: pg_conn::Settings,
    replicated_at: String,
    /// The run's start in seconds since the epoch: whether a reconciliation is due.
    started_epoch: i64,
    context: &'a Context,
}

#[allow(clippy::too_many_arguments)]
async fn replicate(
    session: &pg_conn::Session,
    warehouse: &Target,
    catalog: &catalog::Catalog,
    config: &Config,
    args: &Args,
    context: &Context,
    url: &job_kit::Secret<url::Url>,
    work_dir: PathBuf,
) -> Result<Exit, PgReplicateError> {
    let started = Instant::now();
    let started_at = jiff::Timestamp::now();
    let listed = source::list_tables(session, catalog.schemas.keys())
        .await
        .map_err(PgReplicateError::List)?;
    let mut selected = catalog.select(&listed);
    let wanted = resolve(&args.tables, &selected)?;
    let reload = resolve(&args.reload, &selected)?;
    let reconcile = resolve(&args.reconcile, &selected)?;
    if !args.tables.is_empty() {
        selected.retain(|s| {
            wanted.contains(&s.name) || reload.contains(&s.name) || reconcile.contains(&s.name)
        });
    }
    tracing::info!(
        tables = selected.len(),
        "replicating {} tables",
        selected.len()
    );
    let run = Run {
        session,
        source: SourceName::of(url.expose()),
        warehouse,
        target_schema: &config.pg_replicate_target_schema,
        work_dir,
        max_bytes: config.pg_replicate_max_table_bytes,
        lookback: Duration::from_secs(u64::from(config.pg_replicate_lookback_secs)),
        settings: pg_conn::Settings {
            statement_timeout: Some(Duration::from_secs_f64(
                config.pg_replicate_statement_timeout_secs,
            )),
            lock_timeout: None,
            idle_in_transaction_timeout: None,
            connection_check: Some(Duration::from_secs_f64(
                config.pg_replicate_connection_check_secs,
            )),
        },
        replicated_at: format!(
            "{}.{:06}",
            started_at.strftime("%Y-%m-%d %H:%M:%S"),
            started_at.subsec_microsecond()
        ),
        started_epoch: started_at.as_second(),
        context,
    };
    let mut tables = Vec::new();
    let mut interrupted = None;
    let mut not_started = None;
    for table in &selected {
        if context.cancel.is_cancelled() {
            not_started = Some(table.name.to_string());
            break;
        }
        let forced = Forced {
            reload: reload.contains(&table.name),
            reconcile: reconcile.contains(&table.name),
        };
        let entry = replicate_table(&run, table, forced).await;
        if entry.status != Status::Interrupted {
            let counts = job_kit::metrics::Counts {
                rows: entry.inserted + entry.updated,
                bytes: entry.bytes_read,
                ..Default::default()
            };
            job_kit::metrics::tally().record(
                "table",
                &entry.table,
                counts,
                entry.status == Status::Ok,
            );
            let written = run.warehouse.dataset(run.target_schema, &table.name.table);
            job_kit::lineage::output(written, Some(counts));
        }
        if entry.status == Status::Interrupted {
            interrupted = Some((entry.table.clone(), entry.committed));
        }
        tables.push(entry);
        if interrupted.is_some() {
            break;
        }
    }
    let failed = tables.iter().filter(|t| t.status == Status::Failed).count();
    let report = Report {
        job: PgReplicate::NAME,
        source: url.redacted(),
        warehouse: job_kit::secret::scrub(&warehouse.describe()),
        started_at: started_at.to_string(),
        seconds: report::seconds(started.elapsed()),
        tables_failed: failed,
        tables,
    };
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut out, &report)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out));
    if let Err(err) = written
        && err.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(PgReplicateError::Output(err));
    }
    if let Some((table, reconciling)) = interrupted {
        return Err(if reconciling {
            PgReplicateError::InterruptedReconciling { table }
        } else {
            PgReplicateError::Interrupted { table }
        });
    }
    if let Some(table) = not_started {
        return Err(PgReplicateError::InterruptedBefore { table });
    }
    match failed {
        0 => Ok(Exit::Success),
        n if n == report.tables.len() => Err(PgReplicateError::AllFailed(n)),
        _ => Ok(Exit::Partial),
    }
}

/// Table names from the command line: `schema.table`, or `table` when one schema has it.
fn resolve(
    names: &[String],
    selected: &[Selected],
) -> Result<BTreeSet<TableName>, PgReplicateError> {
    let mut out = BTreeSet::new();
    for name in names {
        let matches: Vec<&TableName> = selected
            .iter()
            .map(|s| &s.name)
            .filter(|n| n.to_string() == *name || (!name.contains('.') && n.table == *name))
            .collect();
        match matches.as_slice() {
            [one] => {
                out.insert((*one).clone());
            }
            [] => {
                return Err(PgReplicateError::UnknownTable {
                    name: name.clone(),
                    known: selected
                        .iter()
                        .map(|s| s.name.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            many => {
                return Err(PgReplicateError::AmbiguousTable {
                    name: name.clone(),
                    candidates: many
                        .iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(" or "),
                });
            }
        }
    }
    Ok(out)
}

/// Why a table failed.
#[derive(Debug, thiserror::Error)]
enum TableError {
    #[error("{0}")]
    Source(#[from] SourceError),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Warehouse(#[from] WarehouseError),
}

/// How a table is read and loaded, decided from what the snapshot shows.
struct Prepared {
    columns: Vec<types::ColumnPlan>,
    primary_key: Vec<String>,
    signature: String,
    full_copy_reason: Option<&'static str>,
    /// Columns whose warehouse type is widened before the merge.
    widened: Vec<(String, String)>,
    /// New columns, added to the table and backfilled before the merge.
    added: Vec<String>,
    /// The primary key's columns.
    key_columns: Vec<types::ColumnPlan>,
    /// Rows found deleted at the source get `_deleted_at`.
    marks_deletes: bool,
    /// The keys are reconciled after the load.
    reconcile_due: bool,
}

/// What the command line forces for a table.
#[derive(Debug, Clone, Copy)]
struct Forced {
    reload: bool,
    reconcile: bool,
}

async fn replicate_table(run: &Run<'_>, table: &Selected, forced: Forced) -> TableReport {
    let started = Instant::now();
    let target_name = format!("{}.{}", run.target_schema, table.name.table);
    let mut entry = TableReport::new(table.name.to_string(), target_name);
    entry.replication_key = Some(table.replication_key.clone());
    let result = replicate_table_inner(run, table, forced, &mut entry).await;
    entry.seconds = report::seconds(started.elapsed());
    let due = match result {
        Ok(due) => due,
        Err(err) => {
            let interrupted = is_interruption(&err) || run.context.cancel.is_cancelled();
            let message = job_kit::secret::scrub(&err.to_string());
            entry.status = if interrupted {
                Status::Interrupted
            } else {
                tracing::error!(table = %entry.table, "{}: {message}; nothing of it was committed, its bookmark is unchanged", entry.table);
                Status::Failed
            };
            entry.rows_read = 0;
            entry.inserted = 0;
            entry.updated = 0;
            entry.bookmark_after = entry.bookmark_before.clone();
            entry.error = Some(message);
            return entry;
        }
    };
    entry.status = Status::Ok;
    entry.committed = true;
    tracing::info!(
        table = %entry.table,
        rows_read = entry.rows_read,
        inserted = entry.inserted,
        updated = entry.updated,
        seconds = entry.seconds,
        "{}: {}, bookmark {} -> {}",
        entry.table,
        match entry.mode {
            Some(Mode::Full) => "copied in full",
            _ => "merged",
        },
        entry.bookmark_before.as_deref().unwrap_or("none"),
        entry.bookmark_after.as_deref().unwrap_or("none"),
    );
    if !entry.columns_dropped.is_empty() {
        tracing::warn!(
            table = %entry.table,
            "{}: the source no longer has {}: kept in {}, NULL in the rows written from \
             now on",
            entry.table,
            entry.columns_dropped.join(", "),
            entry.target
        );
    }
    if entry.null_key_rows > 0 {
        tracing::warn!(
            table = %entry.table,
            rows = entry.null_key_rows,
            "{}: {} rows have a NULL {}: they are read and merged again on every run",
            entry.table,
            entry.null_key_rows,
            table.replication_key
        );
    }
    let Some(due) = due else {
        return entry;
    };
    match reconcile_table(run, table, due, &entry.target).await {
        Ok(found) => {
            tracing::info!(
                table = %entry.table,
                rows_deleted_at_source = found.rows_deleted_at_source,
                buckets_differing = found.buckets_differing,
                keys_read = found.keys_read,
                bytes_read = found.bytes_read,
                "{}: reconciled {} keys in {} buckets ({} differed, {} keys read): {} rows \
                 deleted at the source, {}",
                entry.table,
                found.source_rows,
                found.buckets,
                found.buckets_differing,
                found.keys_read,
                found.rows_deleted_at_source,
                match found.hard_deletes {
                    HardDeletes::Mark => "marked _deleted_at",
                    HardDeletes::Delete => "deleted",
                }
            );
            entry.reconciliation = Some(found);
        }
        Err(err) => {
            let interrupted = is_interruption(&err) || run.context.cancel.is_cancelled();
            let message = format!(
                "the rows read were merged and committed with the bookmark; finding the hard \
                 deletes failed, and none was applied: {}",
                job_kit::secret::scrub(&err.to_string())
            );
            if !interrupted {
                tracing::error!(table = %entry.table, "{}: {message}", entry.table);
            }
            entry.status = if interrupted {
                Status::Interrupted
            } else {
                Status::Failed
            };
            entry.error = Some(message);
        }
    }
    entry.seconds = report::seconds(started.elapsed());
    entry
}

fn is_interruption(err: &TableError) -> bool {
    matches!(
        err,
        TableError::Source(SourceError::Interrupted)
            | TableError::Warehouse(WarehouseError::Interrupted)
    )
}

/// A reconciliation this run makes, after the table's load.
#[derive(Debug)]
struct Due {
    key: Vec<types::ColumnPlan>,
    hard_deletes: HardDeletes,
}

/// Finds the rows the warehouse table has and the source no longer does, and marks or deletes
/// them (`reconcile` has the method).
async fn reconcile_table(
    run: &Run<'_>,
    table: &Selected,
    due: Due,
    target_name: &str,
) -> Result<report::Reconciliation, TableError> {
    let started = Instant::now();
    let cancel = &run.context.cancel;
    let target = reconcile::Target {
        name: format!(
            "{}.{}",
            types::quote(run.target_schema),
            types::quote(&table.name.table)
        ),
        schema: run.target_schema.to_owned(),
        table: table.name.table.clone(),
        key: due.key,
    };
    let (marked, warehouse_rows) = match run.warehouse {
        #[cfg(feature = "duckdb")]
        Target::DuckDb(warehouse) => {
            let target = target.clone();
            warehouse
                .blocking(cancel, move |c| embedded::reconcile::live_rows(c, &target))
                .await?
        }
        Target::Snowflake(snowflake) => snowflake.live_rows(&target.schema, &target.table).await?,
    };
    let buckets = reconcile::buckets_for(warehouse_rows);
    let (summary_spool, keys_spool) = (spool_file(run)?, spool_file(run)?);
    let (compared, listed, bytes_read) = source::in_snapshot(run.session, &run.settings, async {
        // Each side sums its own keys at the same time: Postgres hashes every key while the
        // warehouse hashes its own, and neither waits for the other.
        let summary_sql = reconcile::source_summary_sql(&table.name, &target.key, buckets);
        let source_sums = source::copy_out(
            run.session,
            &summary_sql,
            summary_spool.path(),
            run.max_bytes,
            cancel,
        );
        let warehouse_sums = async {
            match run.warehouse {
                #[cfg(feature = "duckdb")]
                Target::DuckDb(warehouse) => {
                    let target = target.clone();
                    warehouse
                        .blocking(cancel, move |c| {
                            embedded::reconcile::summaries(c, &target, marked, buckets)
                        })
                        .await
                }
                Target::Snowflake(snowflake) => {
                    snowflake
                        .key_summaries(&target.schema, &target.table, &target.key, buckets, marked)
                        .await
                }
            }
        };
        let (source_sums, warehouse_sums) = tokio::join!(source_sums, warehouse_sums);
        let mut bytes = source_sums?;
        let compared = reconcile::differing_buckets(summary_spool.path(), warehouse_sums?)
            .map_err(|e| {
                TableError::Warehouse(WarehouseError::Query {
                    what: "comparing the key summaries".to_owned(),
                    message: e.to_string(),
                })
            })?;
        let listed = reconcile::worth_listing(&compared.differing, buckets)
            .then(|| compared.differing.clone());
        if !compared.differing.is_empty() {
            bytes += source::copy_out(
                run.session,
                &reconcile::source_keys_sql(&table.name, &target.key, buckets, listed.as_deref()),
                keys_spool.path(),
                run.max_bytes,
                cancel,
            )
            .await?;
        }
        Ok::<_, TableError>((compared, listed, bytes))
    })
    .await?;
    let plan = reconcile::Apply {
        target,
        buckets,
        differing: listed,
        keys_spool: keys_spool.path().to_owned(),
        hard_deletes: due.hard_deletes,
        source_table: table.name.to_string(),
        reconciled_at: run.replicated_at.clone(),
    };
    let applied = match run.warehouse {
        #[cfg(feature = "duckdb")]
        Target::DuckDb(warehouse) => {
            let interrupted = warehouse.interrupted();
            warehouse
                .blocking(cancel, move |c| {
                    embedded::reconcile::apply(c, &plan, &interrupted)
                })
                .await?
        }
        Target::Snowflake(snowflake) => {
            let dir = format!(
                "{}/{}-keys",
                plan.source_table,
                run.replicated_at.replace([' ', ':'], "-")
            );
            let files = if compared.differing.is_empty() {
                Vec::new()
            } else {
                snowflake
                    .upload(&plan.keys_spool, &run.work_dir, &dir)
                    .await?
            };
            snowflake.apply_reconciliation(&plan, &dir, &files).await?
        }
    };
    tracing::debug!(table = %target_name, "reconciled");
    Ok(report::Reconciliation {
        hard_deletes: due.hard_deletes,
        buckets,
        buckets_differing: compared.differing.len() as u64,
        source_rows: compared.source_rows,
        warehouse_rows,
        keys_read: applied.keys_read,
        bytes_read,
        rows_deleted_at_source: applied.rows_gone,
        seconds: report::seconds(started.elapsed()),
    })
}

/// A file to spool a read into, in the work directory; removed when dropped.
fn spool_file(run: &Run<'_>) -> Result<tempfile::NamedTempFile, TableError> {
    tempfile::Builder::new()
        .prefix("pg-replicate-")
        .suffix(".csv")
        .tempfile_in(&run.work_dir)
        .map_err(|e| {
            TableError::Refused(format!(
                "cannot create a spool file in {}: {e}",
                run.work_dir.display()
            ))
        })
}

/// The table's read and load; the reconciliation due after it, if one is.
async fn replicate_table_inner(
    run: &Run<'_>,
    table: &Selected,
    forced: Forced,
    entry: &mut TableReport,
) -> Result<Option<Due>, TableError> {
    let cancel = &run.context.cancel;
    let source_table = table.name.to_string();
    let bookmark = match run.warehouse {
        #[cfg(feature = "duckdb")]
        Target::DuckDb(warehouse) => {
            let (source_table, schema, target) = (
                source_table.clone(),
                run.target_schema.to_owned(),
                table.name.table.clone(),
            );
            warehouse
                .blocking(cancel, move |c| {
                    embedded::read_bookmark(c, &source_table, &schema, &target)
                })
                .await?
        }
        Target::Snowflake(target) => {
            target
                .read_bookmark(&source_table, run.target_schema, &table.name.table)
                .await?
        }
    };
    entry.bookmark_before = bookmark.as_ref().and_then(|b| b.value.clone());
    // The rows read; and the key and new columns of every row, when columns were added.
    let (spool, backfill_spool) = (spool_file(run)?, spool_file(run)?);
    let mut prepared = None;
    let read = source::read(
        run.session,
        &table.name,
        &run.settings,
        &[spool.path(), backfill_spool.path()],
        run.max_bytes,
        cancel,
        |described| {
            let (plan, since) = prepare(
                table,
                described,
                bookmark.as_ref(),
                forced,
                run.lookback,
                run.started_epoch,
                matches!(run.warehouse, Target::Snowflake(_)),
            )?;
            let mut reads = vec![source::select_sql(&table.name, &plan.columns, &since)];
            if !plan.added.is_empty() {
                // The new columns of every row: the key and those columns, nothing else.
                reads.push(source::select_sql(
                    &table.name,
                    &backfill_columns(&plan),
                    &Since::All,
                ));
            }
            prepared = Some(plan);
            Ok::<_, TableError>(reads)
        },
    )
    .await?;
    let prepared = prepared.expect("set when the read succeeds");
    let columns = |typed: fn(&types::ColumnPlan) -> &str| -> Vec<(String, String)> {
        prepared
            .columns
            .iter()
            .map(|c| (c.name.clone(), typed(c).to_owned()))
            .collect()
    };
    job_kit::lineage::input(
        run.source
            .dataset(&table.name)
            .with_columns(columns(|c| &c.source_type)),
    );
    job_kit::lineage::output(
        run.warehouse
            .dataset(run.target_schema, &table.name.table)
            .with_columns(columns(|c| &c.target_type)),
        None,
    );
    tracing::debug!(table = %source_table, bytes = read.bytes, "read");
    entry.bytes_read = read.bytes;
    entry.mode = Some(if prepared.full_copy_reason.is_some() {
        Mode::Full
    } else {
        Mode::Incremental
    });
    entry.full_copy_reason = prepared.full_copy_reason;
    let backfill = (!prepared.added.is_empty()).then(|| load::Backfill {
        columns: backfill_columns(&prepared),
        added: prepared.added.clone(),
        spool: backfill_spool.path().to_owned(),
    });
    let plan = load::LoadPlan {
        source_table,
        target_schema: run.target_schema.to_owned(),
        target_table: table.name.table.clone(),
        columns: prepared.columns,
        primary_key: prepared.primary_key,
        replication_key: table.replication_key.clone(),
        signature: prepared.signature,
        spool: spool.path().to_owned(),
        full: prepared.full_copy_reason.is_some(),
        marks_deletes: prepared.marks_deletes,
        widen: prepared.widened.clone(),
        backfill,
        previous: entry.bookmark_before.clone(),
        replicated_at: run.replicated_at.clone(),
    };
    let loaded = match run.warehouse {
        #[cfg(feature = "duckdb")]
        Target::DuckDb(warehouse) => {
            let interrupted = warehouse.interrupted();
            warehouse
                .blocking(cancel, move |c| {
                    embedded::load::load(c, &plan, &interrupted)
                })
                .await?
        }
        Target::Snowflake(target) => {
            let dir = format!(
                "{}/{}",
                plan.source_table,
                run.replicated_at.replace([' ', ':'], "-")
            );
            let files = target.upload(&plan.spool, &run.work_dir, &dir).await?;
            let backfill_files = match &plan.backfill {
                Some(backfill) => {
                    target
                        .upload(&backfill.spool, &run.work_dir, &format!("{dir}-backfill"))
                        .await?
                }
                None => Vec::new(),
            };
            target
                .load(&plan, &dir, &files, &backfill_files, bookmark.as_ref())
                .await?
        }
    };
    drop(spool);
    drop(backfill_spool);
    entry.rows_read = loaded.rows_read;
    entry.inserted = loaded.inserted;
    entry.updated = loaded.updated;
    entry.null_key_rows = loaded.null_key_rows;
    entry.columns_dropped = loaded.columns_dropped;
    entry.columns_added = prepared.added.clone();
    entry.rows_backfilled = loaded.rows_backfilled;
    entry.columns_widened = prepared
        .widened
        .iter()
        .map(|(column, target)| format!("{column} {target}"))
        .collect();
    entry.bookmark_after = loaded.bookmark;
    Ok(prepared.reconcile_due.then_some(Due {
        key: prepared.key_columns,
        hard_deletes: table.hard_deletes,
    }))
}

/// How a table's columns changed since its last load (`previous`, that load's signature).
#[derive(Debug, PartialEq, Eq)]
enum Drift {
    /// Columns dropped, reordered, retyped to what the warehouse column holds already or once
    /// widened (`widened`: column and warehouse type), or new (`added`: backfilled with the
    /// key and the column alone): the table is merged, not copied.
    Merge {
        widened: Vec<(String, String)>,
        added: Vec<String>,
    },
    /// Other keys, or a signature that cannot be read: a full copy.
    FullCopy(&'static str),
    /// A type the warehouse column cannot take: the table fails, left as it was.
    Refused(String),
}

/// A signature's column entries (`name type`) and the rest (`;key=…;primary_key=…`).
pub(crate) fn signature_parts(signature: &str) -> Option<(Vec<&str>, &str)> {
    let at = signature.find(";key=")?;
    let columns = signature[..at].strip_prefix("columns=")?;
    // A type can hold a comma inside parentheses: numeric(18,2).
    let mut entries = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in columns.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                entries.push(&columns[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    entries.push(&columns[start..]);
    Some((entries, &signature[at..]))
}

fn drift(previous: &str, current: &str, columns: &[types::ColumnPlan]) -> Drift {
    let parts = signature_parts;
    let (Some((before, keys_before)), Some((_, keys_now))) = (parts(previous), parts(current))
    else {
        return Drift::FullCopy("the columns or keys changed");
    };
    if keys_before != keys_now {
        return Drift::FullCopy("the keys changed");
    }
    let mut widened = Vec::new();
    let mut added = Vec::new();
    for column in columns {
        let entry = format!("{} {}", column.name, column.source_type);
        if before.contains(&entry.as_str()) {
            continue;
        }
        let prefix = format!("{} ", column.name);
        let Some(old_type) = before.iter().find_map(|e| e.strip_prefix(&prefix)) else {
            added.push(column.name.clone());
            continue;
        };
        let old_target = types::plan(&column.name, old_type).target_type;
        if old_target == column.target_type {
            continue;
        }
        if !types::widens(&old_target, &column.target_type) {
            return Drift::Refused(format!(
                "column {} changed type from {old_type} to {} at the source; the warehouse \
                 column is {old_target} and cannot hold {} without loss: the table is left as \
                 it was (--reload copies it in full with the new type)",
                column.name, column.source_type, column.target_type
            ));
        }
        widened.push((column.name.clone(), column.target_type.clone()));
    }
    Drift::Merge { widened, added }
}

/// What a backfill reads: the primary key's columns, then the new ones.
fn backfill_columns(plan: &Prepared) -> Vec<types::ColumnPlan> {
    plan.primary_key
        .iter()
        .chain(plan.added.iter())
        .filter_map(|name| plan.columns.iter().find(|c| &c.name == name).cloned())
        .collect()
}

/// Checks the table against its catalog entry and decides how it is read: in full or from the
/// bookmark.
fn prepare(
    table: &Selected,
    described: &source::Described,
    bookmark: Option<&load::Bookmark>,
    forced: Forced,
    lookback: Duration,
    now_epoch: i64,
    on_snowflake: bool,
) -> Result<(Prepared, Since), TableError> {
    let name = &table.name;
    let has = |column: &str| described.columns.iter().any(|(c, _)| c == column);
    for column in &table.skip_columns {
        if !has(column) {
            return Err(TableError::Refused(format!(
                "skip_columns names {column}, which {name} does not have"
            )));
        }
    }
    if has(load::REPLICATED_AT) {
        return Err(TableError::Refused(format!(
            "{name} has a column {}, the name of the column pg-replicate adds: skip it \
             (skip_columns)",
            load::REPLICATED_AT
        )));
    }
    let columns: Vec<types::ColumnPlan> = described
        .columns
        .iter()
        .filter(|(c, _)| !table.skip_columns.contains(c))
        .map(|(c, t)| types::plan(c, t))
        .collect();
    let key = &table.replication_key;
    let Some((_, key_type)) = described.columns.iter().find(|(c, _)| c == key) else {
        return Err(TableError::Refused(format!(
            "{name} has no column {key}, its replication key: set replication_key for it in \
             the catalog (tables: {name}: replication_key: …)"
        )));
    };
    let primary_key = table
        .primary_key
        .clone()
        .unwrap_or_else(|| described.primary_key.clone());
    if primary_key.is_empty() {
        return Err(TableError::Refused(format!(
            "{name} has no primary key: name the columns that identify a row in the catalog \
             (tables: {name}: primary_key: […])"
        )));
    }
    for column in &primary_key {
        if !columns.iter().any(|c| &c.name == column) {
            return Err(TableError::Refused(format!(
                "the primary key column {column} is not among {name}'s replicated columns"
            )));
        }
    }
    let signature = format!(
        "columns={};key={key};primary_key={}",
        columns
            .iter()
            .map(|c| format!("{} {}", c.name, c.source_type))
            .collect::<Vec<_>>()
            .join(","),
        primary_key.join(",")
    );
    let mut widened = Vec::new();
    let mut added = Vec::new();
    let key_columns: Vec<types::ColumnPlan> = primary_key
        .iter()
        .filter_map(|k| columns.iter().find(|c| &c.name == k).cloned())
        .collect();
    let reconciles = forced.reconcile || table.reconcile != Reconcile::Off;
    let key_problem = if on_snowflake {
        reconcile::snowflake_key_problem(&key_columns)
    } else {
        reconcile::key_problem(&key_columns)
    };
    if reconciles && let Some(problem) = key_problem {
        return Err(TableError::Refused(format!("{name}: {problem}")));
    }
    let full_copy_reason = match bookmark {
        _ if forced.reload => Some("--reload"),
        None => Some("first run"),
        Some(b) if !b.target_exists => Some("the warehouse table is missing"),
        Some(b) if b.signature != signature => match drift(&b.signature, &signature, &columns) {
            Drift::Merge {
                widened: grown,
                added: new,
            } => {
                widened = grown;
                added = new;
                None
            }
            Drift::FullCopy(reason) => Some(reason),
            Drift::Refused(problem) => {
                return Err(TableError::Refused(format!("{name}: {problem}")));
            }
        },
        Some(_) => None,
    };
    // A full copy holds exactly the source's rows: nothing to reconcile.
    let reconcile_due = full_copy_reason.is_none()
        && (forced.reconcile
            || reconcile_is_due(
                table.reconcile,
                bookmark.and_then(|b| b.reconciled_at),
                now_epoch,
            ));
    let since = match bookmark.and_then(|b| b.value.clone()) {
        Some(value) if full_copy_reason.is_none() => Since::Bookmark {
            key: key.clone(),
            key_type: key_type.clone(),
            bookmark: value,
            lookback: source::key_is_time(key_type).then_some(lookback),
        },
        _ => Since::All,
    };
    Ok((
        Prepared {
            columns,
            primary_key,
            signature,
            full_copy_reason,
            widened,
            added,
            key_columns,
            marks_deletes: reconciles && table.hard_deletes == HardDeletes::Mark,
            reconcile_due,
        },
        since,
    ))
}

/// Whether a table reconciled last at `last` (seconds since the epoch) is reconciled at `now`.
/// A run that starts a little before the interval is over (a scheduler's jitter) counts: a
/// tenth of the interval, at most ten minutes.
fn reconcile_is_due(every: Reconcile, last: Option<i64>, now: i64) -> bool {
    match (every, last) {
        (Reconcile::Off, _) => false,
        (Reconcile::EveryRun, _) | (Reconcile::EveryHours(_), None) => true,
        (Reconcile::EveryHours(hours), Some(last)) => {
            let interval = i64::from(hours) * 3600;
            now - last >= interval - (interval / 10).min(600)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Drift, drift, reconcile_is_due};
    use crate::catalog::Reconcile;
    use crate::types::plan;

    #[test]
    fn a_reconciliation_is_due_once_its_interval_is_over_give_or_take_a_schedulers_jitter() {
        let hour = 3600;
        let now = 1_800_000_000;
        assert!(!reconcile_is_due(Reconcile::Off, None, now));
        assert!(reconcile_is_due(Reconcile::EveryRun, Some(now), now));
        assert!(reconcile_is_due(Reconcile::EveryHours(24), None, now));
        assert!(!reconcile_is_due(
            Reconcile::EveryHours(24),
            Some(now - 23 * hour),
            now
        ));
        // The hourly run that starts a few seconds short of a day.
        assert!(reconcile_is_due(
            Reconcile::EveryHours(24),
            Some(now - 24 * hour + 5),
            now
        ));
        assert!(!reconcile_is_due(
            Reconcile::EveryHours(1),
            Some(now - 50 * 60),
            now
        ));
        assert!(reconcile_is_due(
            Reconcile::EveryHours(1),
            Some(now - 55 * 60),
            now
        ));
    }

    fn signature(columns: &[(&str, &str)]) -> (String, Vec<crate::types::ColumnPlan>) {
        let plans: Vec<_> = columns.iter().map(|(n, t)| plan(n, t)).collect();
        let list: Vec<String> = columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
        (
            format!(
                "columns={};key=systemmodstamp;primary_key=sfid",
                list.join(",")
            ),
            plans,
        )
    }

    #[test]
    fn drift_merges_drops_and_widenings_and_refuses_what_cannot_widen() {
        let (before, _) = signature(&[
            ("sfid", "character varying(18)"),
            ("qty", "integer"),
            ("amount", "numeric(18,2)"),
            ("stage", "text"),
        ]);
        let (now, columns) = signature(&[
            ("sfid", "character varying(18)"),
            ("qty", "integer"),
            ("amount", "numeric(18,2)"),
        ]);
        assert_eq!(
            drift(&before, &now, &columns),
            Drift::Merge {
                widened: vec![],
                added: vec![]
            }
        );
        let (now, columns) = signature(&[
            ("sfid", "character varying(40)"),
            ("qty", "bigint"),
            ("amount", "numeric(20,2)"),
            ("stage", "text"),
        ]);
        assert_eq!(
            drift(&before, &now, &columns),
            Drift::Merge {
                widened: vec![
                    ("qty".into(), "BIGINT".into()),
                    ("amount".into(), "DECIMAL(20,2)".into())
                ],
                added: vec![]
            }
        );
        let (now, columns) = signature(&[
            ("sfid", "character varying(18)"),
            ("qty", "integer"),
            ("amount", "numeric(18,2)"),
            ("stage", "integer"),
        ]);
        let Drift::Refused(problem) = drift(&before, &now, &columns) else {
            panic!("a text column turned integer must be refused");
        };
        assert!(
            problem.contains("stage") && problem.contains("text") && problem.contains("INTEGER"),
            "{problem}"
        );
        let (now, columns) = signature(&[
            ("sfid", "character varying(18)"),
            ("qty", "integer"),
            ("amount", "numeric(18,2)"),
            ("stage", "text"),
            ("other", "text"),
        ]);
        assert_eq!(
            drift(&before, &now, &columns),
            Drift::Merge {
                widened: vec![],
                added: vec!["other".into()]
            }
        );
        let rekeyed = now.replace("key=systemmodstamp", "key=createddate");
        assert_eq!(
            drift(&before, &rekeyed, &columns),
            Drift::FullCopy("the keys changed")
        );
    }
}
