//! The environment contract of stage-import. Variable names are the original job's, so that
//! existing Kubernetes Secrets work unchanged.

use job_kit::{EnvVar, Kind};
use serde::Deserialize;
use warehouse::snowflake::{LOAD_VARS, LoadLogin};

pub const VARS: &[EnvVar] = &[
    EnvVar::new(
        "STAGE_IMPORT_SOURCES",
        Kind::List,
        "Sources to load when none are given as arguments (comma-separated, or all)",
    ),
    EnvVar::new(
        "STAGE_IMPORT_DATE",
        Kind::Date,
        "The day to load; default: yesterday (UTC)",
    )
    .flag("date"),
    EnvVar::new(
        "STAGE_IMPORT_FROM",
        Kind::Date,
        "First day of a backfill (with --to)",
    )
    .flag("from"),
    EnvVar::new(
        "STAGE_IMPORT_TO",
        Kind::Date,
        "Last day of a backfill (inclusive)",
    )
    .flag("to"),
    EnvVar::new(
        "STAGE_IMPORT_LOOKBACK_DAYS",
        Kind::Integer { min: 0, max: 62 },
        "Also load this many days before the first day: late files (CloudFront and ELB logs arrive \
         hours late) are picked up, and files loaded before are skipped",
    )
    .flag("lookback-days")
    .default("0"),
    EnvVar::new(
        "STAGE_IMPORT_RELOAD",
        Kind::Bool,
        "Replace the day's data: delete its files' rows and load them again, in one transaction",
    )
    .flag("reload")
    .default("false"),
    EnvVar::new(
        "STAGE_IMPORT_ALLOW_EMPTY",
        Kind::Bool,
        "A day without files, or whose files hold no data row, is a success instead of exit code 4",
    )
    .flag("allow-empty")
    .default("false"),
    EnvVar::new(
        "STAGE_IMPORT_MAX_ERRORS_PER_FILE",
        Kind::Integer {
            min: 0,
            max: i64::MAX,
        },
        "Rejected rows a file may have and still count as loaded",
    )
    .flag("max-errors-per-file")
    .default("0"),
    EnvVar::new(
        "STAGE_IMPORT_CATALOG",
        Kind::Path,
        "A YAML source catalog that adds sources, stages and formats or replaces built-in ones",
    )
    .flag("catalog"),
    EnvVar::new(
        "STAGE_ROOT",
        Kind::Text,
        "Base URL of the built-in stages (s3://bucket/prefix or a local directory)",
    ),
    EnvVar::new(
        "RELEASE_LOCATION",
        Kind::Text,
        "CloudFront distribution of the releases logs",
    ),
    EnvVar::new(
        "DIAGNOSTIC_LOCATION_ONE",
        Kind::Text,
        "First CloudFront distribution of the diagnostics logs",
    ),
    EnvVar::new(
        "DIAGNOSTIC_LOCATION_TWO",
        Kind::Text,
        "Second CloudFront distribution of the diagnostics logs",
    ),
    EnvVar::new(
        "AWS_ACCOUNT_ID",
        Kind::Text,
        "AWS account of the push-proxy load balancer logs",
    ),
    s3_files::VARS[0],
    s3_files::VARS[1],
    s3_files::VARS[2],
    s3_files::VARS[3],
    s3_files::VARS[4],
    LOAD_VARS[0],
    LOAD_VARS[1],
    LOAD_VARS[2],
    LOAD_VARS[3],
    LOAD_VARS[4],
    LOAD_VARS[5],
    LOAD_VARS[6],
    LOAD_VARS[7],
    LOAD_VARS[8],
    LOAD_VARS[9],
    LOAD_VARS[10],
    LOAD_VARS[11],
    LOAD_VARS[12],
    warehouse::WAREHOUSE_PATH_VAR,
    warehouse::DUCKDB_MEMORY_LIMIT_VAR,
    warehouse::DUCKDB_THREADS_VAR,
];

#[derive(Debug, Deserialize)]
pub struct Config {
    pub stage_import_sources: Option<String>,
    pub stage_import_date: Option<String>,
    pub stage_import_from: Option<String>,
    pub stage_import_to: Option<String>,
    pub stage_import_lookback_days: u32,
    pub stage_import_reload: bool,
    pub stage_import_allow_empty: bool,
    pub stage_import_max_errors_per_file: u64,
    pub stage_import_catalog: Option<std::path::PathBuf>,
    pub stage_root: Option<String>,
    pub release_location: Option<String>,
    pub diagnostic_location_one: Option<String>,
    pub diagnostic_location_two: Option<String>,
    pub aws_account_id: Option<String>,
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<job_kit::Secret<String>>,
    pub aws_session_token: Option<job_kit::Secret<String>>,
    pub aws_region: String,
    pub s3_endpoint_url: Option<String>,
    pub snowflake_account: Option<String>,
    pub snowflake_load_user: Option<String>,
    pub snowflake_load_private_key: Option<job_kit::Secret<String>>,
    pub snowflake_load_private_key_path: Option<std::path::PathBuf>,
    pub snowflake_load_private_key_passphrase: Option<job_kit::Secret<String>>,
    pub snowflake_load_token: Option<job_kit::Secret<String>>,
    pub snowflake_load_password: Option<job_kit::Secret<String>>,
    pub snowflake_load_role: String,
    pub snowflake_load_database: String,
    pub snowflake_load_warehouse: Option<String>,
    pub snowflake_url: Option<url::Url>,
    pub snowflake_storage_integration: Option<String>,
    pub snowflake_query_timeout: f64,
    pub warehouse_path: std::path::PathBuf,
    pub duckdb_memory_limit: String,
    pub duckdb_threads: Option<u32>,
}

impl Config {
    /// S3 settings, when the credentials are there.
    pub fn s3(&self) -> Result<s3_files::Settings, String> {
        s3_files::Settings::from_values(
            &self.aws_region,
            self.s3_endpoint_url.as_ref(),
            self.aws_access_key_id.as_ref(),
            self.aws_secret_access_key.as_ref(),
            self.aws_session_token.as_ref(),
        )
        .ok_or_else(|| "S3 stages need AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_owned())
    }

    /// The Snowflake settings when `SNOWFLAKE_ACCOUNT` is set (`None`: the embedded warehouse).
    /// Every missing variable is named in one message.
    pub fn snowflake(&self) -> Result<Option<warehouse::snowflake::LoadSettings>, String> {
        LoadLogin {
            account: self.snowflake_account.as_ref(),
            user: self.snowflake_load_user.as_ref(),
            private_key: self.snowflake_load_private_key.as_ref(),
            private_key_path: self.snowflake_load_private_key_path.as_deref(),
            passphrase: self.snowflake_load_private_key_passphrase.as_ref(),
            token: self.snowflake_load_token.as_ref(),
            password: self.snowflake_load_password.as_ref(),
            role: &self.snowflake_load_role,
            database: &self.snowflake_load_database,
            warehouse: self.snowflake_load_warehouse.as_ref(),
            url: self.snowflake_url.as_ref(),
            storage_integration: self.snowflake_storage_integration.as_ref(),
            query_timeout_secs: self.snowflake_query_timeout,
            aws_access_key_id: self.aws_access_key_id.as_ref(),
            aws_secret_access_key: self.aws_secret_access_key.as_ref(),
            aws_session_token: self.aws_session_token.as_ref(),
        }
        .settings()
    }

    /// Values for `{env:NAME}` placeholders: the config's own (so that flags count), then the
    /// environment.
    pub fn template_value(&self, name: &str, env: &job_kit::env::Sources) -> Option<String> {
        let own = match name {
            "STAGE_ROOT" => self.stage_root.as_ref(),
            "RELEASE_LOCATION" => self.release_location.as_ref(),
            "DIAGNOSTIC_LOCATION_ONE" => self.diagnostic_location_one.as_ref(),
            "DIAGNOSTIC_LOCATION_TWO" => self.diagnostic_location_two.as_ref(),
            "AWS_ACCOUNT_ID" => self.aws_account_id.as_ref(),
            _ => None,
        };
        let value = own.cloned().or_else(|| env.raw(name).map(str::to_owned))?;
        // A placeholder may name a credential: its value is then masked wherever a log line
        // or the report shows what the placeholder filled in.
        let secret = VARS.iter().any(|v| v.name == name && v.secret)
            || job_kit::secret::is_credential_name(name);
        if secret {
            job_kit::secret::register(&value);
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_placeholder_naming_a_credential_is_masked_once_filled() {
        let mut sources = job_kit::env::Sources::default();
        sources
            .env
            .insert("PARTNER_API_TOKEN".into(), "tok-ab12cd34ef56".into());
        sources
            .env
            .insert("PARTNER_REGION".into(), "eu-west-region".into());
        let config: super::Config = job_kit::env::load(super::VARS, &sources).unwrap();
        assert_eq!(
            config
                .template_value("PARTNER_API_TOKEN", &sources)
                .as_deref(),
            Some("tok-ab12cd34ef56")
        );
        assert_eq!(
            job_kit::secret::redact("s3://b/tok-ab12cd34ef56/x"),
            "s3://b/***/x"
        );
        config.template_value("PARTNER_REGION", &sources);
        assert_eq!(job_kit::secret::redact("eu-west-region"), "eu-west-region");
    }

    #[test]
    fn config_struct_matches_the_variable_table() {
        job_kit::env::check_contract::<super::Config>(super::VARS).unwrap();
    }
}
