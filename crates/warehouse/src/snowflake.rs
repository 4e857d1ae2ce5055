//! Snowflake as a warehouse: a session from `snowflake-conn` (login, context, retries,
//! timeouts, aborting the running query on SIGTERM), with the account and database it works in.

use std::collections::HashSet;

use job_kit::{EnvVar, Kind, Secret};
use snowflake_conn::{
    ConnectOptions, Connection, CredentialVars, Statement, quote_ident, quote_literal,
};
use tokio_util::sync::CancellationToken;

use crate::{TextRows, Warehouse, WarehouseError, first_line};

/// The loader's login, the same variables in every job that writes to Snowflake as the loader
/// (stage-import, pg-replicate), for `snowflake_conn::credential::resolve`.
pub const LOAD_CREDENTIAL_VARS: CredentialVars = CredentialVars {
    private_key: "SNOWFLAKE_LOAD_PRIVATE_KEY",
    private_key_path: "SNOWFLAKE_LOAD_PRIVATE_KEY_PATH",
    passphrase: "SNOWFLAKE_LOAD_PRIVATE_KEY_PASSPHRASE",
    token: "SNOWFLAKE_LOAD_TOKEN",
    password: "SNOWFLAKE_LOAD_PASSWORD",
};

/// The loader's variables, in the order a job's table lists them (its config struct has the
/// fields of the same names).
pub const LOAD_VARS: [EnvVar; 13] = [
    EnvVar::new(
        "SNOWFLAKE_ACCOUNT",
        Kind::Text,
        "Snowflake account identifier (xy12345.us-east-1 or myorg-myaccount); set: write to \
         Snowflake, unset: to the embedded warehouse (not in the image, which has none)",
    ),
    EnvVar::new(
        "SNOWFLAKE_LOAD_USER",
        Kind::Text,
        "User the loads run as (with SNOWFLAKE_ACCOUNT)",
    ),
    EnvVar::new(
        "SNOWFLAKE_LOAD_PRIVATE_KEY",
        Kind::Text,
        CredentialVars::HELP_PRIVATE_KEY,
    )
    .secret(),
    EnvVar::new(
        "SNOWFLAKE_LOAD_PRIVATE_KEY_PATH",
        Kind::Path,
        CredentialVars::HELP_PRIVATE_KEY_PATH,
    ),
    EnvVar::new(
        "SNOWFLAKE_LOAD_PRIVATE_KEY_PASSPHRASE",
        Kind::Text,
        CredentialVars::HELP_PASSPHRASE,
    )
    .secret(),
    EnvVar::new(
        "SNOWFLAKE_LOAD_TOKEN",
        Kind::Text,
        CredentialVars::HELP_TOKEN,
    )
    .secret(),
    EnvVar::new(
        "SNOWFLAKE_LOAD_PASSWORD",
        Kind::Text,
        CredentialVars::HELP_PASSWORD,
    )
    .secret(),
    EnvVar::new(
        "SNOWFLAKE_LOAD_ROLE",
        Kind::Text,
        "Role the loads run as (and stage-import's bootstrap)",
    )
    .default("LOADER"),
    EnvVar::new(
        "SNOWFLAKE_LOAD_DATABASE",
        Kind::Text,
        "Database the loads' schemas, stages, formats and tables live in",
    )
    .default("RAW"),
    EnvVar::new(
        "SNOWFLAKE_LOAD_WAREHOUSE",
        Kind::Text,
        "Warehouse that runs COPY INTO (with SNOWFLAKE_ACCOUNT)",
    ),
    EnvVar::new(
        "SNOWFLAKE_URL",
        Kind::CredentialUrl,
        "Base URL instead of https://<account>.snowflakecomputing.com: scheme://host[:port] \
         (PrivateLink, tests)",
    ),
    EnvVar::new(
        "SNOWFLAKE_STORAGE_INTEGRATION",
        Kind::Text,
        "Storage integration of the S3 stages the job creates; unset: the stages carry \
         AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY as CREDENTIALS",
    ),
    EnvVar::new(
        "SNOWFLAKE_QUERY_TIMEOUT",
        Kind::Seconds,
        "Longest a Snowflake statement (one COPY INTO) may run before it is aborted",
    )
    .default("3600"),
];

/// The values of [`LOAD_VARS`] (and the AWS keys, for [`StageAccess`]) as a job read them.
#[derive(Debug, Clone, Copy)]
pub struct LoadLogin<'a> {
    pub account: Option<&'a String>,
    pub user: Option<&'a String>,
    pub private_key: Option<&'a Secret<String>>,
    pub private_key_path: Option<&'a std::path::Path>,
    pub passphrase: Option<&'a Secret<String>>,
    pub token: Option<&'a Secret<String>>,
    pub password: Option<&'a Secret<String>>,
    pub role: &'a str,
    pub database: &'a str,
    pub warehouse: Option<&'a String>,
    pub url: Option<&'a url::Url>,
    pub storage_integration: Option<&'a String>,
    pub query_timeout_secs: f64,
    pub aws_access_key_id: Option<&'a String>,
    pub aws_secret_access_key: Option<&'a Secret<String>>,
    pub aws_session_token: Option<&'a Secret<String>>,
}

/// How the stages a job creates reach S3.
#[derive(Debug, Clone)]
pub enum StageAccess {
    /// `STORAGE_INTEGRATION = <name>`: no key in Snowflake (what an account admin prefers).
    Integration(String),
    /// `CREDENTIALS = (AWS_KEY_ID = ... AWS_SECRET_KEY = ... [AWS_TOKEN = ...])`.
    Keys {
        key_id: String,
        secret: Secret<String>,
        token: Option<Secret<String>>,
    },
    /// Neither is configured: S3 stages cannot be created (local `file://` stages can).
    Missing,
}

impl StageAccess {
    /// `STORAGE_INTEGRATION = …` or `CREDENTIALS = (…)`, each on a new line; empty when missing.
    pub fn clause(&self) -> String {
        match self {
            StageAccess::Integration(integration) => {
                format!("\n  STORAGE_INTEGRATION = {}", quote_ident(integration))
            }
            StageAccess::Keys { .. } => self.credentials_clause(),
            StageAccess::Missing => String::new(),
        }
    }

    /// `CREDENTIALS = (…)` for keys; empty otherwise.
    pub fn credentials_clause(&self) -> String {
        match self {
            StageAccess::Keys {
                key_id,
                secret,
                token,
            } => format!(
                "\n  CREDENTIALS = (AWS_KEY_ID = {} AWS_SECRET_KEY = {}{})",
                quote_literal(key_id),
                quote_literal(secret.expose()),
                token
                    .as_ref()
                    .map(|t| format!(" AWS_TOKEN = {}", quote_literal(t.expose())))
                    .unwrap_or_default()
            ),
            _ => String::new(),
        }
    }
}

/// The loader's connection and stage access.
#[derive(Debug, Clone)]
pub struct LoadSettings {
    pub options: ConnectOptions,
    pub stage_access: StageAccess,
}

impl LoadLogin<'_> {
    /// The settings when `SNOWFLAKE_ACCOUNT` is set (`None`: the embedded warehouse). Every
    /// missing variable is named in one message.
    pub fn settings(&self) -> Result<Option<LoadSettings>, String> {
        let Some(account) = self.account else {
            return Ok(None);
        };
        let values = snowflake_conn::credential::CredentialValues {
            private_key: self.private_key,
            private_key_path: self.private_key_path,
            passphrase: self.passphrase,
            token: self.token,
            password: self.password,
        };
        let mut missing: Vec<String> = [
            ("SNOWFLAKE_LOAD_USER", self.user.is_none()),
            ("SNOWFLAKE_LOAD_WAREHOUSE", self.warehouse.is_none()),
        ]
        .into_iter()
        .filter(|(_, missing)| *missing)
        .map(|(name, _)| name.to_owned())
        .collect();
        if values.is_empty() {
            missing.push(LOAD_CREDENTIAL_VARS.one_of());
        }
        let (Some(user), Some(warehouse), true) = (self.user, self.warehouse, missing.is_empty())
        else {
            return Err(format!(
                "SNOWFLAKE_ACCOUNT is set, so the loads go to Snowflake, but {} {} not set",
                missing.join(", "),
                if missing.len() == 1 { "is" } else { "are" }
            ));
        };
        let credential = snowflake_conn::credential::resolve(&LOAD_CREDENTIAL_VARS, values)
            .map_err(|problem| problem.to_string())?;
        let mut options = ConnectOptions::new(account.clone(), user.clone(), credential);
        options.role = Some(self.role.to_owned());
        options.warehouse = Some(warehouse.clone());
        options.database = Some(self.database.to_owned());
        options.base_url = self.url.cloned();
        options.query_timeout = std::time::Duration::from_secs_f64(self.query_timeout_secs);
        let stage_access = match (
            self.storage_integration,
            self.aws_access_key_id,
            self.aws_secret_access_key,
        ) {
            (Some(integration), _, _) => StageAccess::Integration(integration.clone()),
            (None, Some(key_id), Some(secret)) => StageAccess::Keys {
                key_id: key_id.clone(),
                secret: secret.clone(),
                token: self.aws_session_token.cloned(),
            },
            _ => StageAccess::Missing,
        };
        Ok(Some(LoadSettings {
            options,
            stage_access,
        }))
    }
}

pub struct SnowflakeWarehouse {
    account: String,
    database: String,
    /// `None` until [`SnowflakeWarehouse::connect`]: writing SQL needs no login.
    connection: Option<Connection>,
    /// Tables seen to exist in this run: checked once, not before every day of a backfill.
    tables_seen: std::sync::Mutex<HashSet<(String, String)>>,
}

impl SnowflakeWarehouse {
    /// The warehouse without a session: enough to write SQL.
    pub fn offline(options: &ConnectOptions) -> SnowflakeWarehouse {
        SnowflakeWarehouse {
            account: options.account.clone(),
            database: options.database.clone().unwrap_or_default(),
            connection: None,
            tables_seen: std::sync::Mutex::new(HashSet::new()),
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
    pub async fn table_exists(&self, schema: &str, table: &str) -> Result<bool, WarehouseError> {
        let key = (schema.to_owned(), table.to_owned());
        if self
            .tables_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
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
            self.tables_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key);
        }
        Ok(count > 0)
    }
}

impl Warehouse for SnowflakeWarehouse {
    fn describe(&self) -> String {
        format!("snowflake:{}/{}", self.account, self.database)
    }

    fn dataset(&self, schema: &str, table: &str) -> job_kit::lineage::Dataset {
        job_kit::lineage::Dataset::snowflake(&self.account, &self.database, schema, table)
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
