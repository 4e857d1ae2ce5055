//! Snowflake as a warehouse: a session from `snowflake-conn` (login, context, retries,
//! timeouts, aborting the running query on SIGTERM), with the account and database it works in.

use std::collections::HashSet;

use snowflake_conn::{ConnectOptions, Connection, Statement, quote_ident, quote_literal};
use tokio_util::sync::CancellationToken;

use crate::{TextRows, Warehouse, WarehouseError, first_line};

pub struct SnowflakeWarehouse {
    account: String,
    database: String,
    /// `None` until [`SnowflakeWarehouse::connect`]: writing SQL needs no login.
    connection: Option<Connection>,
    /// Tables seen to exist in this run: checked once, not before every day of a backfill.
    tables_seen: HashSet<(String, String)>,
}

impl SnowflakeWarehouse {
    /// The warehouse without a session: enough to write SQL.
    pub fn offline(options: &ConnectOptions) -> SnowflakeWarehouse {
        SnowflakeWarehouse {
            account: options.account.clone(),
            database: options.database.clone().unwrap_or_default(),
            connection: None,
            tables_seen: HashSet::new(),
        }
    }

    /// Logs in and sets the role, warehouse and database (a wrong password or a missing
    /// warehouse is a configuration error, exit 2).
    pub async fn connect(
        options: &ConnectOptions,
        cancel: &CancellationToken,
    ) -> Result<SnowflakeWarehouse, WarehouseError> {
        let mut warehouse = SnowflakeWarehouse::offline(options);
        let connection = Connection::connect(options.clone(), cancel.clone())
            .await
            .map_err(|source| WarehouseError::Snowflake {
                what: format!("cannot connect to Snowflake account {}", warehouse.account),
                source,
            })?;
        warehouse.connection = Some(connection);
        Ok(warehouse)
    }

    /// The session; an error before [`SnowflakeWarehouse::connect`].
    pub fn connection(&self) -> Result<&Connection, WarehouseError> {
        self.connection
            .as_ref()
            .ok_or_else(|| WarehouseError::Setup("not connected to Snowflake".to_owned()))
    }

    /// The database the session works in.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Whether `schema.table` exists in the session's database (asked once per run for a
    /// table that does).
    pub async fn table_exists(
        &mut self,
        schema: &str,
        table: &str,
    ) -> Result<bool, WarehouseError> {
        let key = (schema.to_owned(), table.to_owned());
        if self.tables_seen.contains(&key) {
            return Ok(true);
        }
        let what = format!(
            "checking table {}.{}",
            quote_ident(schema),
            quote_ident(table)
        );
        let sql = format!(
            "SELECT COUNT(*) AS N FROM INFORMATION_SCHEMA.TABLES \
             WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
            quote_literal(&snowflake_conn::stored_name(schema)),
            quote_literal(&snowflake_conn::stored_name(table))
        );
        let result = self
            .connection()?
            .query_idempotent(&sql)
            .await
            .map_err(snowflake_error(&what))?;
        let count = result
            .rows()
            .next()
            .map(|row| row.u64("N"))
            .transpose()
            .map_err(|e| WarehouseError::Query {
                what,
                message: e.to_string(),
            })?
            .unwrap_or(0);
        if count > 0 {
            self.tables_seen.insert(key);
        }
        Ok(count > 0)
    }
}

impl Warehouse for SnowflakeWarehouse {
    fn describe(&self) -> String {
        format!("snowflake:{}/{}", self.account, self.database)
    }

    async fn execute(
        &mut self,
        statements: &[String],
        _cancel: &CancellationToken,
    ) -> Result<(), WarehouseError> {
        let connection = self.connection()?;
        for statement in statements {
            connection
                .run(Statement::new(statement).idempotent())
                .await
                .map_err(snowflake_error(&first_line(statement)))?;
        }
        Ok(())
    }

    async fn query_text(
        &self,
        sql: &str,
        _cancel: &CancellationToken,
    ) -> Result<TextRows, WarehouseError> {
        let result = self
            .connection()?
            .query(sql)
            .await
            .map_err(snowflake_error("query"))?;
        let columns = result.columns().iter().map(|c| c.name.clone()).collect();
        Ok((columns, result.into_raw_rows()))
    }
}

/// Wraps a Snowflake error with what was being done.
pub fn snowflake_error(what: &str) -> impl FnOnce(snowflake_conn::Error) -> WarehouseError + use<> {
    let what = what.to_owned();
    move |source| WarehouseError::Snowflake { what, source }
}
