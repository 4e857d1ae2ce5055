//! stage-import: loads each source's files for a day into warehouse tables, the way the original
//! job did with Snowflake stages and `COPY INTO ... PATTERN`, and says what happened to every
//! file. Before loading it lists the stage (the preflight): a day without files is a distinct
//! outcome, not a silent success.
//!
//! Flow: catalog → loads (source × day × location, templates filled) → for each: list and match
//! files → warehouse load → per-file outcomes → report and exit code.

pub mod catalog;
pub mod config;
pub mod dates;
pub mod header;
pub mod report;
pub mod stage;
pub mod template;
pub mod warehouse;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use job_kit::{Context, EnvVar, Exit, Job, JobError};

use catalog::{Catalog, CatalogError, Load};
pub use config::Config;
use report::{FileOutcome, FileStatus, LoadOutcome, LoadReport, RunReport};
use s3_files::S3;
use stage::{StageUrl, StagedFile};
use warehouse::{Backend, FileSource, Loader, Warehouse, WarehouseError};

pub struct StageImport;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Sources to load, or `all`; default: STAGE_IMPORT_SOURCES
    sources: Vec<String>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create (idempotently) the schemas and tables the sources load into
    Bootstrap {
        /// Print the SQL instead of running it
        #[arg(long)]
        print: bool,
        /// Sources to bootstrap; default: all
        sources: Vec<String>,
    },
    /// List the catalog's sources
    Sources,
    /// Run a read query on the warehouse and print the result as a table
    Query {
        /// The SQL, e.g. "SELECT count(*) FROM licenses.licenses"
        sql: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("stage {stage}: {message}")]
    Stage { stage: String, message: String },
}

/// Listings in flight at once: S3 answers each page in tens of milliseconds, and a backfill
/// lists every day.
const LISTING_CONCURRENCY: usize = 8;
/// Objects fetched at once for the embedded warehouse.
const DOWNLOAD_CONCURRENCY: usize = 8;

impl JobError for ImportError {
    fn exit(&self) -> Exit {
        match self {
            ImportError::Config(_) | ImportError::Catalog(_) => Exit::Usage,
            ImportError::Warehouse(e) => e.exit(),
            ImportError::Stage { .. } => Exit::Failure,
        }
    }
}

impl Job for StageImport {
    const NAME: &'static str = "stage-import";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const ABOUT: &'static str =
        "Loads each source's files for a day from a stage (S3 or local) into warehouse tables.";
    const VARS: &'static [EnvVar] = config::VARS;
    type Config = Config;
    type Args = Args;
    type Error = ImportError;

    /// A load of one source is that source's run; a run of several is the job's.
    fn scope(config: &Config, args: &Args) -> Option<(&'static str, String)> {
        if args.command.is_some() {
            return None;
        }
        match source_names(config, args).as_slice() {
            [only] if only != "all" => Some(("source", only.clone())),
            _ => None,
        }
    }

    async fn run(config: Config, args: Args, context: Context) -> Result<Exit, ImportError> {
        let catalog = Catalog::load(config.stage_import_catalog.as_deref())?;
        match args.command {
            Some(Command::Sources) => {
                print_sources(&catalog);
                Ok(Exit::Success)
            }
            Some(Command::Query { sql }) => {
                let warehouse = open_warehouse(&config, &context.cancel, true).await?;
                let (columns, rows) = warehouse.query_text(&sql, &context.cancel).await?;
                print_table(&columns, &rows);
                Ok(Exit::Success)
            }
            Some(Command::Bootstrap { print, sources }) => {
                let names = if sources.is_empty() {
                    vec!["all".to_owned()]
                } else {
                    sources
                };
                bootstrap(&config, &catalog, &names, print, &context).await
            }
            None => {
                let names = source_names(&config, &args);
                import(&config, &catalog, &names, &context).await
            }
        }
    }
}

/// The sources to load: the arguments, else STAGE_IMPORT_SOURCES.
fn source_names(config: &Config, args: &Args) -> Vec<String> {
    if !args.sources.is_empty() {
        return args.sources.clone();
    }
    config
        .stage_import_sources
        .iter()
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Checks everything a run needs before anything connects; every problem in one error.
fn plan(
    config: &Config,
    catalog: &Catalog,
    names: &[String],
    days: Result<Vec<jiff::civil::Date>, String>,
    context: &Context,
) -> Result<Vec<Load>, ImportError> {
    let mut problems = Vec::new();
    if names.is_empty() {
        problems.push(format!(
            "no source given: name one or more as arguments or in STAGE_IMPORT_SOURCES (all, {})",
            catalog.names().join(", ")
        ));
    }
    let mut sources = Vec::new();
    for name in names {
        if name == "all" {
            sources.extend(catalog.sources());
        } else if let Some(source) = catalog.source(name) {
            sources.push(source);
        } else {
            problems.push(format!(
                "unknown source {name:?} (known: all, {})",
                catalog.names().join(", ")
            ));
        }
    }
    sources.dedup_by(|a, b| a.name == b.name);
    let days = days.unwrap_or_else(|e| {
        problems.push(e);
        Vec::new()
    });
    let env = |name: &str| config.template_value(name, &context.env);
    let mut loads = Vec::new();
    for day in &days {
        for source in &sources {
            match source.loads(*day, &env) {
                Ok(more) => loads.extend(more),
                Err(e) if !problems.contains(&e) => problems.push(e),
                Err(_) => {}
            }
        }
    }
    if problems.is_empty() {
        Ok(loads)
    } else {
        Err(ImportError::Config(format!(
            "cannot start:\n  - {}",
            problems.join("\n  - ")
        )))
    }
}

async fn import(
    config: &Config,
    catalog: &Catalog,
    names: &[String],
    context: &Context,
) -> Result<Exit, ImportError> {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let days = dates::days(
        config.stage_import_date.as_deref(),
        config.stage_import_from.as_deref(),
        config.stage_import_to.as_deref(),
        config.stage_import_lookback_days,
        today,
    );
    // The days before this one are the lookback: loaded again for late files, and a warning,
    // not a failure, when they have none.
    let first_named_day = days.as_ref().ok().and_then(|days| {
        days.get(config.stage_import_lookback_days as usize)
            .copied()
    });
    let loads = plan(config, catalog, names, days, context)?;
    let s3 = if loads
        .iter()
        .any(|l| matches!(l.stage_url, StageUrl::S3 { .. }))
    {
        Some(Arc::new(S3::new(
            &config.s3().map_err(ImportError::Config)?,
        )))
    } else {
        None
    };
    let mut warehouse = open_warehouse(config, &context.cancel, true).await?;
    tracing::info!(
        warehouse = %warehouse.describe(),
        loads = loads.len(),
        reload = config.stage_import_reload,
        "starting"
    );
    let started = Instant::now();
    let listings = preflight(&loads, s3.clone(), &context.cancel).await?;
    tracing::info!(
        listings = listings.len(),
        s3_requests = s3.as_ref().map(|s| s.requests()),
        seconds = started.elapsed().as_secs_f64(),
        "preflight listed the stages"
    );
    let mut reports = Vec::new();
    for load in &loads {
        if context.cancel.is_cancelled() {
            break;
        }
        let listed = listings
            .get(&listing_key(load))
            .cloned()
            .unwrap_or_default();
        let sizes: HashMap<String, u64> = listed.iter().map(|f| (f.path.clone(), f.size)).collect();
        let lookback = first_named_day.is_some_and(|first| load.date < first);
        let result = run_load(
            &mut warehouse,
            load,
            lookback,
            listed,
            s3.as_ref(),
            config,
            context,
        )
        .await;
        tally_load(
            load,
            &result,
            &sizes,
            config.stage_import_max_errors_per_file,
            &warehouse,
        );
        match result {
            Ok(report) => reports.push(report),
            Err(err) if context.cancel.is_cancelled() => {
                stopped_by_signal(reports.len(), loads.len());
                return Err(err);
            }
            Err(err) => return Err(err),
        }
    }
    if context.cancel.is_cancelled() {
        stopped_by_signal(reports.len(), loads.len());
        return Err(WarehouseError::Interrupted.into());
    }
    let report = RunReport::new(
        &warehouse.describe(),
        reports,
        config.stage_import_allow_empty,
        config.stage_import_max_errors_per_file,
    );
    tracing::info!(
        files_loaded = report.files_loaded,
        files_skipped = report.files_skipped,
        files_failed = report.files_failed,
        rows_loaded = report.rows_loaded,
        exit_code = report.exit_code,
        "done"
    );
    print_json(&report);
    Ok(report.exit())
}

/// What a load did, for the run's metrics and lineage: per source, the files it loaded (a file
/// loaded before counts as neither loaded nor failed), their rows and bytes; the stage's
/// directory for the day read, the table written.
fn tally_load(
    load: &Load,
    result: &Result<LoadReport, ImportError>,
    sizes: &HashMap<String, u64>,
    max_errors_per_file: u64,
    target: &impl Warehouse,
) {
    let tally = job_kit::metrics::tally();
    let columns: Vec<(String, String)> = load
        .format
        .columns
        .iter()
        .map(|c| (c.name.clone(), warehouse::kind_name(c.kind).to_owned()))
        .chain([
            (warehouse::SOURCE_FILE_COLUMN.to_owned(), "text".to_owned()),
            (
                warehouse::LOADED_AT_COLUMN.to_owned(),
                "timestamp".to_owned(),
            ),
        ])
        .collect();
    let table = target
        .dataset(&load.schema, &load.table)
        .with_columns(columns);
    job_kit::lineage::input(stage_dataset(load));
    let Ok(report) = result else {
        tally.record("source", &load.source, Default::default(), false);
        job_kit::lineage::output(table, None);
        return;
    };
    let mut counts = job_kit::metrics::Counts {
        rows: report.rows_loaded,
        ..Default::default()
    };
    for file in &report.files {
        if file.failed(max_errors_per_file) {
            counts.failed_items += 1;
        } else if matches!(
            file.status,
            FileStatus::Loaded | FileStatus::PartiallyLoaded | FileStatus::Reloaded
        ) {
            counts.files += 1;
            counts.bytes += sizes.get(&file.file).copied().unwrap_or(0);
        }
    }
    let succeeded = match report.outcome {
        LoadOutcome::Loaded | LoadOutcome::Empty => true,
        LoadOutcome::NoFiles => report.lookback,
        LoadOutcome::Partial | LoadOutcome::Failed => false,
    };
    tally.record("source", &load.source, counts, succeeded);
    job_kit::lineage::output(table, Some(counts));
}

/// The stage's directory of the day a load reads, as lineage names it.
fn stage_dataset(load: &Load) -> job_kit::lineage::Dataset {
    let path = load.path.trim_matches('/');
    match &load.stage_url {
        StageUrl::S3 { bucket, prefix } => {
            let key = [prefix.trim_matches('/'), path]
                .into_iter()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join("/");
            job_kit::lineage::Dataset::s3(bucket, &key)
        }
        StageUrl::Local(dir) => {
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            job_kit::lineage::Dataset::local_file(&dir.join(path).display().to_string())
        }
    }
}

/// Loads are committed one by one: after a signal, say how far the run got. A load that
/// committed before it saw the signal has logged its files as loaded.
fn stopped_by_signal(loads_committed: usize, loads_planned: usize) {
    tracing::warn!(
        loads_committed,
        loads_planned,
        "stopped: the loads logged above as done are committed; the one running was rolled back and the rest did not run"
    );
}

/// A stage and the prefix listed below it: loads that share one are listed once.
fn listing_key(load: &Load) -> (String, String) {
    (load.stage_url.url(), load.list_prefix.clone())
}

/// Lists every distinct (stage, prefix) of the run, concurrently, before any load starts.
async fn preflight(
    loads: &[Load],
    s3: Option<Arc<S3>>,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<HashMap<(String, String), Vec<StagedFile>>, ImportError> {
    let mut listings = HashMap::new();
    let mut pending: Vec<&Load> = Vec::new();
    for load in loads {
        let key = listing_key(load);
        if listings.contains_key(&key) || pending.iter().any(|l| listing_key(l) == key) {
            continue;
        }
        match &load.stage_url {
            StageUrl::Local(root) => {
                // Listing reads every file (its content is its identity): off the runtime.
                let (dir, prefix) = (root.clone(), load.list_prefix.clone());
                let listed = tokio::task::spawn_blocking(move || stage::list_local(&dir, &prefix))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
                let files = listed.map_err(|e| ImportError::Stage {
                    stage: load.stage.clone(),
                    message: format!("cannot list {}: {e}", root.display()),
                })?;
                listings.insert(key, files);
            }
            StageUrl::S3 { .. } => pending.push(load),
        }
    }
    let Some(s3) = s3 else {
        return Ok(listings);
    };
    let limit = Arc::new(tokio::sync::Semaphore::new(LISTING_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for load in pending {
        let StageUrl::S3 { bucket, prefix } = load.stage_url.clone() else {
            continue;
        };
        let (s3, limit, key, stage, list_prefix) = (
            Arc::clone(&s3),
            Arc::clone(&limit),
            listing_key(load),
            load.stage.clone(),
            load.list_prefix.clone(),
        );
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let listed = s3
                .list(&bucket, &prefix, &list_prefix)
                .await
                .map(|objects| {
                    objects
                        .into_iter()
                        .map(|o| StagedFile {
                            path: o.path,
                            size: o.size,
                            tag: o.tag,
                        })
                        .collect::<Vec<_>>()
                });
            (key, stage, listed)
        });
    }
    loop {
        let next = tokio::select! {
            next = tasks.join_next() => next,
            () = cancel.cancelled() => return Err(WarehouseError::Interrupted.into()),
        };
        let Some(joined) = next else { break };
        let (key, stage, listed) = joined.map_err(|e| ImportError::Stage {
            stage: "(preflight)".to_owned(),
            message: e.to_string(),
        })?;
        let files = listed.map_err(|e| ImportError::Stage {
            stage,
            message: e.to_string(),
        })?;
        listings.insert(key, files);
    }
    Ok(listings)
}

#[allow(clippy::too_many_arguments)]
async fn run_load<W: Loader>(
    warehouse: &mut W,
    load: &Load,
    lookback: bool,
    listed: Vec<StagedFile>,
    s3: Option<&Arc<S3>>,
    config: &Config,
    context: &Context,
) -> Result<LoadReport, ImportError> {
    let started = Instant::now();
    let pattern = stage::anchored(&load.pattern)
        .map_err(|e| ImportError::Config(format!("source {}: pattern: {e}", load.source)))?;
    let mut files = Vec::new();
    let mut refused = Vec::new();
    for file in stage::matching(listed, &pattern) {
        match stage::unsafe_path(&file.path) {
            None => files.push(file),
            Some(why) => refused.push(FileOutcome::refused(
                &file.path,
                format!("not loaded: {why}"),
            )),
        }
    }
    let where_ = format!(
        "{}{} {}",
        load.source,
        load.location
            .as_deref()
            .map(|l| format!("/{l}"))
            .unwrap_or_default(),
        load.date
    );
    let mut outcomes = if files.is_empty() {
        if refused.is_empty() {
            tracing::warn!(
                load = %where_,
                stage = %load.stage,
                path = %load.list_prefix,
                pattern = %load.pattern,
                "no files match: upstream data is missing or late{}",
                if lookback {
                    " (a lookback day: a warning, not a failure)"
                } else {
                    ""
                }
            );
        }
        Vec::new()
    } else {
        tracing::info!(load = %where_, files = files.len(), "files found");
        // Kept until the load is done: the embedded warehouse reads S3 files from here.
        let mut fetched: Option<tempfile::TempDir> = None;
        let from = match &load.stage_url {
            _ if warehouse.reads_stages() => FileSource::Stage(
                read_headers(load, &files, s3, &context.cancel)
                    .await
                    .map_err(|message| ImportError::Stage {
                        stage: load.stage.clone(),
                        message,
                    })?,
            ),
            StageUrl::Local(root) => FileSource::Local(root.clone()),
            StageUrl::S3 { bucket, prefix } => {
                let s3 = s3.expect("an S3 client exists when a load has an S3 stage");
                let dir = fetch(s3, bucket, prefix, &files, &context.cancel)
                    .await
                    .map_err(|message| ImportError::Stage {
                        stage: load.stage.clone(),
                        message,
                    })?;
                let root = dir.path().to_owned();
                fetched = Some(dir);
                FileSource::Local(root)
            }
        };
        let outcomes = warehouse
            .load(
                load,
                &files,
                &from,
                config.stage_import_reload,
                &context.cancel,
            )
            .await?;
        drop(fetched);
        outcomes
    };
    let files_gone = if config.stage_import_reload {
        gone_from_stage(
            warehouse, load, &pattern, &files, &refused, &where_, context,
        )
        .await
    } else {
        Vec::new()
    };
    let files_found = files.len() + refused.len();
    outcomes.extend(refused);
    for outcome in &mut outcomes {
        // A driver's message may quote the file's text: scrubbed for the report as for the log.
        outcome.first_error = outcome.first_error.as_deref().map(job_kit::secret::scrub);
        let line = match outcome.status {
            FileStatus::Loaded => "loaded",
            FileStatus::LoadSkipped => "skipped: loaded before",
            FileStatus::PartiallyLoaded => "partially loaded: rows rejected",
            FileStatus::Reloaded => "reloaded: its content changed, its earlier rows replaced",
            FileStatus::Empty => "empty: no data row",
            FileStatus::LoadFailed => "failed",
            FileStatus::Unknown => "unknown: not in COPY's result nor in its history",
        };
        let error = outcome.first_error.as_deref();
        if outcome.failed(config.stage_import_max_errors_per_file) {
            tracing::warn!(
                load = %where_,
                file = %outcome.file,
                rows_loaded = outcome.rows_loaded,
                errors_seen = outcome.errors_seen,
                first_error_line = outcome.first_error_line,
                first_error = error,
                "{line}"
            );
        } else if outcome.status == FileStatus::Empty {
            tracing::warn!(load = %where_, file = %outcome.file, "{line}");
        } else if outcome.status == FileStatus::Reloaded {
            tracing::warn!(
                load = %where_,
                file = %outcome.file,
                rows_loaded = outcome.rows_loaded,
                rows_replaced = outcome.rows_replaced,
                errors_seen = outcome.errors_seen,
                "{line}"
            );
        } else {
            tracing::info!(
                load = %where_,
                file = %outcome.file,
                rows_loaded = outcome.rows_loaded,
                errors_seen = outcome.errors_seen,
                "{line}"
            );
        }
    }
    Ok(LoadReport {
        source: load.source.clone(),
        location: load.location.clone(),
        date: load.date.to_string(),
        table: format!("{}.{}", load.schema, load.table),
        stage: load.stage.clone(),
        path: load.path.clone(),
        pattern: load.pattern.clone(),
        files_found,
        lookback,
        reload: config.stage_import_reload,
        outcome: LoadReport::outcome_of(&outcomes, config.stage_import_max_errors_per_file),
        rows_loaded: outcomes.iter().map(|o| o.rows_loaded).sum(),
        files: outcomes,
        files_gone,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Files of this load the table holds rows of but the stage no longer has, each said in a
/// warning. Their rows stay: only the stage's files are reloaded.
async fn gone_from_stage<W: Loader>(
    warehouse: &mut W,
    load: &Load,
    pattern: &regex::Regex,
    files: &[StagedFile],
    refused: &[FileOutcome],
    where_: &str,
    context: &Context,
) -> Vec<String> {
    let held = match warehouse.files_held(load, &context.cancel).await {
        Ok(held) => held,
        Err(err) => {
            tracing::warn!(load = %where_, "cannot list the files the table holds: {err}");
            return Vec::new();
        }
    };
    let gone: Vec<String> = held
        .into_iter()
        .filter(|f| pattern.is_match(f))
        .filter(|f| !files.iter().any(|s| &s.path == f) && !refused.iter().any(|r| &r.file == f))
        .collect();
    for file in &gone {
        tracing::warn!(
            load = %where_,
            file = %file,
            "the table holds rows of this file, which is no longer in the stage: its rows are \
             kept (delete them by hand if the file was withdrawn)"
        );
    }
    gone
}

/// For a warehouse that reads its own stage: what each file's start says (its header checked
/// against the format, data or not), read where the preflight listed it: a ranged GET of the
/// first [`header::START_BYTES`] from S3, or the file on disk. A start that cannot be fetched
/// leaves the file to the warehouse's reader, with the format's header lines, and a warning
/// says how many were not checked (the job's S3 keys may lack s3:GetObject).
async fn read_headers(
    load: &Load,
    files: &[StagedFile],
    s3: Option<&Arc<S3>>,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<std::collections::BTreeMap<String, header::Decision>, String> {
    let format = Arc::new(load.format.clone());
    let unread: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    match &load.stage_url {
        StageUrl::Local(root) => {
            let (root, format, files) = (root.clone(), Arc::clone(&format), files.to_vec());
            tasks.spawn_blocking(move || {
                files
                    .iter()
                    .map(|f| {
                        let inspected = header::inspect(&root.join(&f.path), &format);
                        (
                            f.path.clone(),
                            header::Decision::of(&f.path, inspected, &format),
                        )
                    })
                    .collect::<Vec<_>>()
            });
        }
        StageUrl::S3 { bucket, prefix } => {
            let s3 = s3.expect("an S3 client exists when a load has an S3 stage");
            let limit = Arc::new(tokio::sync::Semaphore::new(DOWNLOAD_CONCURRENCY));
            for file in files {
                let (s3, limit, format) = (Arc::clone(s3), Arc::clone(&limit), Arc::clone(&format));
                let unread = Arc::clone(&unread);
                let (bucket, key) = (bucket.clone(), format!("{prefix}{}", file.path));
                let file = file.clone();
                tasks.spawn(async move {
                    let _permit = limit.acquire_owned().await;
                    let inspected = if file.size == 0 {
                        Ok(Some(header::Shape::Empty))
                    } else {
                        match s3.start_of(&bucket, &key, header::START_BYTES).await {
                            Ok(start) => header::inspect_start(
                                &start,
                                file.size <= header::START_BYTES,
                                &format,
                            ),
                            Err(err) => {
                                unread.lock().expect("not poisoned").push(err.to_string());
                                Ok(None)
                            }
                        }
                    };
                    vec![(
                        file.path.clone(),
                        header::Decision::of(&file.path, inspected, &format),
                    )]
                });
            }
        }
    }
    let mut decisions = std::collections::BTreeMap::new();
    loop {
        let next = tokio::select! {
            next = tasks.join_next() => next,
            () = cancel.cancelled() => return Err("interrupted".to_owned()),
        };
        match next {
            None => break,
            Some(Ok(decided)) => decisions.extend(decided),
            Some(Err(e)) => return Err(e.to_string()),
        }
    }
    let unread = unread.lock().expect("not poisoned");
    if let Some(first) = unread.first() {
        tracing::warn!(
            stage = %load.stage,
            files = unread.len(),
            "cannot read the start of {} file(s), so their headers are not checked and COPY \
             skips the format's {} header line(s) of each; the first: {first}",
            unread.len(),
            load.format.skip_header
        );
    }
    Ok(decisions)
}

/// Fetches `files` from S3 into a temporary directory laid out as the stage is.
async fn fetch(
    s3: &Arc<S3>,
    bucket: &str,
    prefix: &str,
    files: &[StagedFile],
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<tempfile::TempDir, String> {
    let dir = tempfile::Builder::new()
        .prefix("stage-import-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let limit = Arc::new(tokio::sync::Semaphore::new(DOWNLOAD_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for file in files {
        let (s3, limit) = (Arc::clone(s3), Arc::clone(&limit));
        let (bucket, key) = (bucket.to_owned(), format!("{prefix}{}", file.path));
        let destination = dir.path().join(&file.path);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            s3.download(&bucket, &key, &destination).await
        });
    }
    loop {
        let next = tokio::select! {
            next = tasks.join_next() => next,
            () = cancel.cancelled() => return Err("interrupted".to_owned()),
        };
        match next {
            None => return Ok(dir),
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(e))) => return Err(e.to_string()),
            Some(Err(e)) => return Err(e.to_string()),
        }
    }
}

async fn bootstrap(
    config: &Config,
    catalog: &Catalog,
    names: &[String],
    print: bool,
    context: &Context,
) -> Result<Exit, ImportError> {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let loads = plan(config, catalog, names, Ok(vec![today]), context)?;
    let mut sources = Vec::new();
    for load in loads {
        let source = catalog
            .source(&load.source)
            .expect("planned from the catalog");
        match sources
            .iter_mut()
            .find(|(s, _): &&mut (&catalog::Source, Vec<Load>)| s.name == source.name)
        {
            Some((_, loads)) => loads.push(load),
            None => sources.push((source, vec![load])),
        }
    }
    let mut warehouse = open_warehouse(config, &context.cancel, !print).await?;
    let stage_access = match config.snowflake().map_err(ImportError::Config)? {
        Some(settings) => settings.stage_access,
        None => warehouse::snowflake::StageAccess::Missing,
    };
    let mut statements = warehouse.bootstrap_sql(&sources, &stage_access);
    if !print {
        // A table that existed before: its columns must be the catalog's, or become them by
        // adding nullable columns. Checked before any statement runs.
        let mut refused = Vec::new();
        let mut checked = Vec::new();
        for (source, _) in &sources {
            let table = (source.schema.clone(), source.table.clone());
            if checked.contains(&table) {
                continue;
            }
            let sql = warehouse::existing_columns_sql(&table.0, &table.1, ::warehouse::sql_literal);
            let (_, rows) = warehouse.query_text(&sql, &context.cancel).await?;
            let existing: Vec<(String, String)> = rows
                .into_iter()
                .map(|row| {
                    let mut row = row.into_iter();
                    let mut next = || row.next().flatten().unwrap_or_default();
                    (next(), next())
                })
                .collect();
            let name = format!("{}.{}", table.0, table.1);
            match warehouse::missing_columns(&name, &source.format.columns, &existing) {
                Ok(missing) => {
                    for column in missing {
                        tracing::warn!(table = %name, column = %column.name, "adding a column the table lacks (NULL in the rows it holds)");
                        statements.push(warehouse.add_column_sql(&table.0, &table.1, column));
                    }
                }
                Err(problem) => refused.push(problem),
            }
            checked.push(table);
        }
        if !refused.is_empty() {
            return Err(ImportError::Config(refused.join("\n")));
        }
    }
    if print {
        let mut out = std::io::stdout().lock();
        for statement in &statements {
            // A stage's CREDENTIALS hold the AWS secret key: never printed, a placeholder
            // naming its variable instead.
            let _ = writeln!(
                out,
                "{}\n",
                job_kit::secret::redact(&with_placeholders(statement, config))
            );
        }
        return Ok(Exit::Success);
    }
    warehouse.execute(&statements, &context.cancel).await?;
    tracing::info!(
        warehouse = %warehouse.describe(),
        statements = statements.len(),
        sources = sources.len(),
        "bootstrap done"
    );
    Ok(Exit::Success)
}

/// Snowflake when `SNOWFLAKE_ACCOUNT` is set (logged in unless `connect` is false: printing
/// SQL needs no session), else the embedded warehouse.
async fn open_warehouse(
    config: &Config,
    cancel: &tokio_util::sync::CancellationToken,
    connect: bool,
) -> Result<Backend, ImportError> {
    if let Some(settings) = config.snowflake().map_err(ImportError::Config)? {
        let warehouse = if connect {
            ::warehouse::snowflake::SnowflakeWarehouse::connect(&settings.options, cancel).await?
        } else {
            ::warehouse::snowflake::SnowflakeWarehouse::offline(&settings.options)
        };
        return Ok(Backend::Snowflake(warehouse));
    }
    open_embedded(config)
}

#[cfg(feature = "duckdb")]
fn open_embedded(config: &Config) -> Result<Backend, ImportError> {
    let settings = ::warehouse::duckdb::Settings {
        memory_limit: config.duckdb_memory_limit.clone(),
        threads: config.duckdb_threads,
    };
    Ok(Backend::DuckDb(warehouse::duckdb::open(
        &config.warehouse_path,
        &settings,
    )?))
}

#[cfg(not(feature = "duckdb"))]
fn open_embedded(_config: &Config) -> Result<Backend, ImportError> {
    Err(ImportError::Config(
        "no warehouse: set SNOWFLAKE_ACCOUNT, SNOWFLAKE_LOAD_USER, SNOWFLAKE_LOAD_WAREHOUSE and \
         SNOWFLAKE_LOAD_PRIVATE_KEY (or _PRIVATE_KEY_PATH, _TOKEN, _PASSWORD) (this build has no \
         embedded warehouse)"
            .to_owned(),
    ))
}

/// `statement` with each secret's SQL literal replaced by `'<VARIABLE>'`.
fn with_placeholders(statement: &str, config: &Config) -> String {
    let mut shown = statement.to_owned();
    for (name, secret) in [
        ("AWS_SECRET_ACCESS_KEY", &config.aws_secret_access_key),
        ("AWS_SESSION_TOKEN", &config.aws_session_token),
    ] {
        if let Some(secret) = secret {
            shown = shown.replace(
                &snowflake_conn::quote_literal(secret.expose()),
                &format!("'<{name}>'"),
            );
        }
    }
    shown
}

fn print_sources(catalog: &Catalog) {
    let mut out = std::io::stdout().lock();
    for source in catalog.sources() {
        let _ = writeln!(
            out,
            "{}\n  {}\n  table {}.{}, format {}, stage {}, env {}\n",
            source.name,
            source.description,
            source.schema,
            source.table,
            source.format_name,
            source.stage,
            source.env_vars().join(", ")
        );
    }
}

/// Columns padded to their widest value; NULL shown as `NULL`.
fn print_table(columns: &[String], rows: &[Vec<Option<String>>]) {
    let cell = |v: &Option<String>| v.clone().unwrap_or_else(|| "NULL".to_owned());
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, name)| {
            rows.iter()
                .map(|r| cell(&r[i]).chars().count())
                .chain([name.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<String>| {
        values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line(columns.to_vec()));
    let _ = writeln!(
        out,
        "{}",
        line(widths.iter().map(|w| "-".repeat(*w)).collect())
    );
    for row in rows {
        let _ = writeln!(out, "{}", line(row.iter().map(cell).collect()));
    }
}

fn print_json(report: &RunReport) {
    // Paths and errors may hold what a placeholder filled in: masked like the logs.
    let text = serde_json::to_string_pretty(report).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", job_kit::secret::redact(&text));
}
