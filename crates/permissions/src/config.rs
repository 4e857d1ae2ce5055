//! The environment contract of permissions. The connection variables are the `PERMISSION_BOT_*`
//! ones existing deployments (Meltano's and Permifrost's) already have in their Secrets; the
//! rest say what to do. None is required by the table itself: `plan --state FILE` runs offline
//! with no credentials at all, and the job checks the connection variables itself when it does
//! connect (naming the missing ones).

use std::path::PathBuf;

use job_kit::{EnvVar, Kind, Secret};
use serde::Deserialize;
use snowflake_conn::CredentialVars;
use snowflake_conn::credential::CredentialValues;

pub const DEFAULT_PROTECTED_ROLES: &str =
    "ACCOUNTADMIN,SECURITYADMIN,SYSADMIN,USERADMIN,ORGADMIN,PUBLIC";

/// The login variables, for `snowflake_conn::credential::resolve`.
pub const CREDENTIAL_VARS: CredentialVars = CredentialVars {
    private_key: "PERMISSION_BOT_PRIVATE_KEY",
    private_key_path: "PERMISSION_BOT_PRIVATE_KEY_PATH",
    passphrase: "PERMISSION_BOT_PRIVATE_KEY_PASSPHRASE",
    token: "PERMISSION_BOT_TOKEN",
    password: "PERMISSION_BOT_PASSWORD",
};

pub const VARS: &[EnvVar] = &[
    EnvVar::new(
        "PERMISSION_BOT_ACCOUNT",
        Kind::Text,
        "Snowflake account identifier (xy12345.us-east-1 or myorg-myaccount)",
    ),
    EnvVar::new("PERMISSION_BOT_USER", Kind::Text, "User the job logs in as"),
    EnvVar::new(
        "PERMISSION_BOT_PRIVATE_KEY",
        Kind::Text,
        CredentialVars::HELP_PRIVATE_KEY,
    )
    .secret(),
    EnvVar::new(
        "PERMISSION_BOT_PRIVATE_KEY_PATH",
        Kind::Path,
        CredentialVars::HELP_PRIVATE_KEY_PATH,
    )
    // Permifrost's names, so that its Secrets work unchanged.
    .aliases(&["PERMISSION_BOT_KEY_PATH"]),
    EnvVar::new(
        "PERMISSION_BOT_PRIVATE_KEY_PASSPHRASE",
        Kind::Text,
        CredentialVars::HELP_PASSPHRASE,
    )
    .secret()
    .aliases(&["PERMISSION_BOT_KEY_PASSPHRASE"]),
    EnvVar::new("PERMISSION_BOT_TOKEN", Kind::Text, CredentialVars::HELP_TOKEN).secret(),
    EnvVar::new(
        "PERMISSION_BOT_PASSWORD",
        Kind::Text,
        CredentialVars::HELP_PASSWORD,
    )
    .secret(),
    EnvVar::new(
        "PERMISSION_BOT_ROLE",
        Kind::Text,
        "Role to run as (it needs to create roles and users and manage grants, e.g. one granted \
         SECURITYADMIN); default: the user's default role. Always protected",
    ),
    EnvVar::new(
        "PERMISSION_BOT_WAREHOUSE",
        Kind::Text,
        "Warehouse for the session (SHOW and GRANT need none; accepted for existing deployments)",
    ),
    EnvVar::new(
        "PERMISSION_BOT_DATABASE",
        Kind::Text,
        "Database for the session (not needed; accepted for existing deployments)",
    ),
    EnvVar::new(
        "PERMISSION_BOT_URL",
        Kind::CredentialUrl,
        "Base URL instead of https://<account>.snowflakecomputing.com (PrivateLink, tests)",
    ),
    EnvVar::new(
        "PERMISSIONS_COMMAND",
        Kind::Choice(&["plan", "apply", "snapshot"]),
        "What to do: plan (show the changes), apply (make them), snapshot (write the account's \
         state as JSON); the first argument says the same",
    )
    .default("plan")
    .flag("command"),
    EnvVar::new(
        "PERMISSIONS_SPEC",
        Kind::Path,
        "The Permifrost spec (roles.yml); the second argument says the same",
    )
    .default("roles.yml")
    .flag("spec"),
    EnvVar::new(
        "PERMISSIONS_FORMAT",
        Kind::Choice(&["text", "sql", "json"]),
        "How plan prints the changes: text (grouped by role and user), sql or json",
    )
    .default("text")
    .flag("format"),
    EnvVar::new(
        "PERMISSIONS_DRY_RUN",
        Kind::Bool,
        "apply: print the statements it would run, run none (Permifrost's --dry)",
    )
    .default("false")
    .flag("dry-run"),
    EnvVar::new(
        "PERMISSIONS_STATE_FILE",
        Kind::Path,
        "plan: plan offline against this snapshot (from `snapshot`) instead of the account",
    )
    .flag("state"),
    EnvVar::new(
        "PERMISSIONS_SNAPSHOT_FILE",
        Kind::Path,
        "snapshot: where to write the state; default: stdout",
    )
    .flag("output"),
    EnvVar::new(
        "PERMISSIONS_PASSWORD_RECIPIENT",
        Kind::Text,
        "apply: the admin's age public key (age1...); a new user's generated password goes to \
         stdout encrypted to it",
    )
    .flag("password-recipient"),
    EnvVar::new(
        "PERMISSIONS_PASSWORD_FILE",
        Kind::Path,
        "apply: instead, a new file (created mode 0600, never an existing one) for the generated \
         passwords; with neither, apply refuses a plan that generates one",
    )
    .flag("password-file"),
    EnvVar::new(
        "PERMISSIONS_PROTECTED_ROLES",
        Kind::List,
        "Roles no change may touch (the job's own role is always added)",
    )
    .default(DEFAULT_PROTECTED_ROLES)
    .flag("protected-roles"),
    EnvVar::new(
        "PERMISSIONS_MAX_REVOKES",
        Kind::Integer {
            min: 0,
            max: 1_000_000,
        },
        "A plan revoking more grants than this is refused unless forced",
    )
    .default("20")
    .flag("max-revokes"),
    EnvVar::new(
        "PERMISSIONS_FORCE",
        Kind::Bool,
        "Apply even when the plan revokes more than PERMISSIONS_MAX_REVOKES (never lifts role protection)",
    )
    .default("false")
    .flag("force"),
    EnvVar::new(
        "PERMISSIONS_CONCURRENCY",
        Kind::Integer { min: 1, max: 64 },
        "How many SHOW statements run at once while reading the account",
    )
    .default("32")
    .flag("concurrency"),
];

#[derive(Debug, Deserialize)]
pub struct Config {
    pub permission_bot_account: Option<String>,
    pub permission_bot_user: Option<String>,
    pub permission_bot_private_key: Option<Secret<String>>,
    pub permission_bot_private_key_path: Option<PathBuf>,
    pub permission_bot_private_key_passphrase: Option<Secret<String>>,
    pub permission_bot_token: Option<Secret<String>>,
    pub permission_bot_password: Option<Secret<String>>,
    pub permission_bot_role: Option<String>,
    pub permission_bot_warehouse: Option<String>,
    pub permission_bot_database: Option<String>,
    pub permission_bot_url: Option<url::Url>,
    pub permissions_command: String,
    pub permissions_spec: PathBuf,
    pub permissions_format: String,
    pub permissions_dry_run: bool,
    pub permissions_state_file: Option<PathBuf>,
    pub permissions_snapshot_file: Option<PathBuf>,
    pub permissions_password_recipient: Option<String>,
    pub permissions_password_file: Option<PathBuf>,
    pub permissions_protected_roles: String,
    pub permissions_max_revokes: usize,
    pub permissions_force: bool,
    pub permissions_concurrency: usize,
}

impl Config {
    pub fn credential_values(&self) -> CredentialValues<'_> {
        CredentialValues {
            private_key: self.permission_bot_private_key.as_ref(),
            private_key_path: self.permission_bot_private_key_path.as_deref(),
            passphrase: self.permission_bot_private_key_passphrase.as_ref(),
            token: self.permission_bot_token.as_ref(),
            password: self.permission_bot_password.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_struct_matches_the_variable_table() {
        job_kit::env::check_contract::<super::Config>(super::VARS).unwrap();
    }
}
