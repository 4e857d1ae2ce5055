//! The embedded warehouse: a DuckDB database file. DuckDB's API blocks, so every piece of work
//! runs on a blocking thread with the connection, and a cancellation (SIGTERM) interrupts the
//! statement that is running: its transaction rolls back.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub use duckdb::Connection;
use tokio_util::sync::CancellationToken;

use crate::{TextRows, Warehouse, WarehouseError, first_line};

pub struct DuckDbWarehouse {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
    interrupt: Arc<duckdb::InterruptHandle>,
    /// Set before a statement is interrupted, so that the work on the blocking thread does not
    /// take the failure for a bad input and carry on.
    interrupted: Arc<AtomicBool>,
}

/// How the embedded database runs: bounded memory whatever the day's size.
#[derive(Debug, Clone)]
pub struct Settings {
    pub memory_limit: String,
    pub threads: Option<u32>,
}

impl DuckDbWarehouse {
    /// Opens (or creates) the database file, then runs `setup`: the statements that create
    /// (idempotently) what the job itself keeps there.
    pub fn open(
        path: &Path,
        settings: &Settings,
        setup: &str,
    ) -> Result<DuckDbWarehouse, WarehouseError> {
        let fail = |e: duckdb::Error| {
            WarehouseError::Setup(format!(
                "cannot open DuckDB database {}: {e}",
                path.display()
            ))
        };
        let mut config = duckdb::Config::default()
            .max_memory(&settings.memory_limit)
            .map_err(fail)?
            // No network at run time: the bundled build would otherwise try to download
            // extensions it thinks a query needs.
            .enable_autoload_extension(false)
            .map_err(fail)?;
        if let Some(threads) = settings.threads {
            config = config.threads(i64::from(threads)).map_err(fail)?;
        }
        let connection = Connection::open_with_flags(path, config).map_err(fail)?;
        connection
            .execute_batch(
                "SET autoinstall_known_extensions = false;
                 SET preserve_insertion_order = false;",
            )
            .map_err(fail)?;
        connection.execute_batch(setup).map_err(fail)?;
        let interrupt = connection.interrupt_handle();
        Ok(DuckDbWarehouse {
            path: path.to_owned(),
            connection: Arc::new(Mutex::new(connection)),
            interrupt,
            interrupted: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Set once a cancellation has interrupted the work: work on the blocking thread checks it
    /// before it commits, because DuckDB forgets an interrupt that comes between statements.
    pub fn interrupted(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.interrupted)
    }

    /// Runs `work` on the connection off the async runtime; a cancellation interrupts the
    /// running statement.
    pub async fn blocking<T: Send + 'static>(
        &self,
        cancel: &CancellationToken,
        work: impl FnOnce(&mut Connection) -> Result<T, WarehouseError> + Send + 'static,
    ) -> Result<T, WarehouseError> {
        let connection = Arc::clone(&self.connection);
        let mut task = tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(|e| e.into_inner());
            // An interrupt that lands on a transaction's rollback leaves the transaction open and
            // aborted, and every later statement on the connection refused: closed first.
            if !connection.is_autocommit() {
                let _ = connection.execute_batch("ROLLBACK");
            }
            work(&mut connection)
        });
        tokio::select! {
            result = &mut task => {
                result.map_err(|e| WarehouseError::Setup(format!("DuckDB worker failed: {e}")))?
            }
            () = cancel.cancelled() => {
                self.interrupted.store(true, Ordering::SeqCst);
                self.interrupt.interrupt();
                // The running statement stops at its next check and its transaction rolls back.
                // Work that finished before it noticed is done (a load committed): say so rather
                // than call it interrupted.
                match task.await {
                    Ok(Ok(done)) => Ok(done),
                    _ => Err(WarehouseError::Interrupted),
                }
            }
        }
    }
}

impl Warehouse for DuckDbWarehouse {
    fn describe(&self) -> String {
        format!("duckdb:{}", self.path.display())
    }

    fn dataset(&self, schema: &str, table: &str) -> job_kit::lineage::Dataset {
        job_kit::lineage::Dataset::duckdb(&self.path, schema, table)
    }

    async fn execute(
        &mut self,
        statements: &[String],
        cancel: &CancellationToken,
    ) -> Result<(), WarehouseError> {
        let statements = statements.to_vec();
        self.blocking(cancel, move |connection| {
            for statement in &statements {
                connection
                    .execute_batch(statement)
                    .map_err(|e| WarehouseError::Query {
                        what: first_line(statement),
                        message: e.to_string(),
                    })?;
            }
            Ok(())
        })
        .await
    }

    /// Every value is cast to text by DuckDB itself, so that `stage-import query` and the
    /// tests need no DuckDB CLI and see DuckDB's own rendering.
    async fn query_text(
        &self,
        sql: &str,
        cancel: &CancellationToken,
    ) -> Result<TextRows, WarehouseError> {
        let sql = format!(
            "SELECT COLUMNS(*)::VARCHAR FROM ({})",
            sql.trim().trim_end_matches(';')
        );
        self.blocking(cancel, move |connection| {
            let fail = |e: duckdb::Error| WarehouseError::Query {
                what: "query".to_owned(),
                message: e.to_string(),
            };
            let mut statement = connection.prepare(&sql).map_err(fail)?;
            let mut rows = statement.query([]).map_err(fail)?;
            let columns = rows.as_ref().map(|s| s.column_names()).unwrap_or_default();
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(fail)? {
                let values = (0..columns.len())
                    .map(|i| row.get::<_, Option<String>>(i))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(fail)?;
                out.push(values);
            }
            Ok((columns, out))
        })
        .await
    }
}
