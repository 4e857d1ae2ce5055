//! permissions: makes a Snowflake account's roles, users and grants match a Permifrost
//! `roles.yml`, as a reviewable plan first. A drop-in for `permifrost run roles.yml [--dry]`:
//! the same spec format and `PERMISSION_BOT_*` variables, but the account is read concurrently
//! (seconds, not minutes), changes are shown before they are made, protected roles and large
//! revokes are refused, and a failure stops the run saying what was and was not applied.
//!
//! The flow: [`spec`] reads and checks the file; [`inspect`] reads the account (or a snapshot
//! file is loaded); [`desired`] expands the spec against it; [`plan`] diffs, orders and guards
//! (pure); [`render`] prints; [`apply`] executes.

pub mod apply;
pub mod config;
pub mod desired;
pub mod ident;
pub mod inspect;
pub mod model;
pub mod plan;
pub mod render;
pub mod spec;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use job_kit::{Context, EnvVar, Exit, Job, JobError};
use snowflake_conn::{ConnectOptions, Connection};

pub use config::Config;
use ident::Name;
use inspect::{InspectError, Needs};
use model::{SnapshotError, State};
use plan::{Options, Plan};
use render::Format;

pub struct Permissions;

/// The optional positional arguments, as Permifrost took them (`permifrost run roles.yml`).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// plan, apply or snapshot (default: PERMISSIONS_COMMAND, else plan)
    #[arg(value_parser = ["plan", "apply", "snapshot"])]
    pub command: Option<String>,
    /// The spec file (default: PERMISSIONS_SPEC, else roles.yml)
    pub spec: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum PermissionsError {
    #[error("{0}")]
    Spec(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Snapshot { path: String, source: SnapshotError },
    #[error(
        "{missing} must be set to connect to Snowflake (plan can also run offline from a \
         snapshot: PERMISSIONS_STATE_FILE)"
    )]
    MissingConnection { missing: String },
    #[error("invalid Snowflake login: {0}")]
    Credential(snowflake_conn::credential::CredentialProblem),
    #[error(
        "apply works on the live account: PERMISSIONS_STATE_FILE (--state) is for planning \
         offline, unset it"
    )]
    StateWithApply,
    #[error("cannot connect to Snowflake: {0}")]
    Connect(#[source] snowflake_conn::Error),
    #[error(transparent)]
    Inspect(#[from] InspectError),
    #[error(
        "the plan cannot be applied: {problems} problem(s), {refusals} change(s) refused by the \
         guard rails (see the plan on stdout)"
    )]
    NotApplicable { problems: usize, refusals: usize },
    #[error(
        "apply stopped at a failure: {applied} statement(s) applied, {not_applied} not applied (see stdout); fix the cause and run again"
    )]
    ApplyFailed { applied: usize, not_applied: usize },
    #[error("apply was interrupted: {applied} statement(s) applied, {not_applied} not applied")]
    Interrupted { applied: usize, not_applied: usize },
    #[error("{0}")]
    PasswordDelivery(String),
    #[error(
        "cannot create the password file {path}: {source} (it is created new, mode 0600, never \
         through a symlink: remove an old one or name another)"
    )]
    PasswordFile {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {what}: {source}")]
    Write {
        what: String,
        source: std::io::Error,
    },
}

impl JobError for PermissionsError {
    fn exit(&self) -> Exit {
        match self {
            PermissionsError::Spec(_)
            | PermissionsError::Read { .. }
            | PermissionsError::Snapshot { .. }
            | PermissionsError::MissingConnection { .. }
            | PermissionsError::Credential(_)
            | PermissionsError::StateWithApply
            | PermissionsError::NotApplicable { .. }
            | PermissionsError::PasswordFile { .. }
            | PermissionsError::PasswordDelivery(_) => Exit::Usage,
            PermissionsError::Connect(e) => e.exit(),
            PermissionsError::Inspect(e) => e.snowflake().map_or(Exit::Failure, JobError::exit),
            PermissionsError::Interrupted { .. } => Exit::Interrupted,
            PermissionsError::ApplyFailed { .. } | PermissionsError::Write { .. } => Exit::Failure,
        }
    }
}

impl Job for Permissions {
    const NAME: &'static str = "permissions";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const ABOUT: &'static str = "Makes Snowflake roles, users and grants match a Permifrost roles.yml: plan, dry run, apply.";
    const VARS: &'static [EnvVar] = config::VARS;
    type Config = Config;
    type Args = Args;
    type Error = PermissionsError;

    /// plan, apply and snapshot are runs of their own: an alert on the last successful apply
    /// must not count a plan.
    fn scope(config: &Config, args: &Args) -> Option<(&'static str, String)> {
        let command = args
            .command
            .clone()
            .unwrap_or_else(|| config.permissions_command.clone());
        Some(("command", command))
    }

    async fn run(config: Config, args: Args, context: Context) -> Result<Exit, PermissionsError> {
        let command = args
            .command
            .clone()
            .unwrap_or_else(|| config.permissions_command.clone());
        let spec_path = args
            .spec
            .clone()
            .unwrap_or_else(|| config.permissions_spec.clone());
        match command.as_str() {
            "snapshot" => snapshot(&config, &context).await,
            "apply" => apply_spec(&config, &spec_path, &context).await,
            _ => plan_spec(&config, &spec_path, &context).await,
        }
    }
}

fn out(text: &str) -> Result<(), PermissionsError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|source| PermissionsError::Write {
            what: "stdout".into(),
            source,
        })
}

fn read_spec(path: &Path) -> Result<spec::Spec, PermissionsError> {
    let shown = path.display().to_string();
    let text = yaml_input::read_file(path, yaml_input::Limits::CONFIG)
        .map_err(|e| PermissionsError::Spec(e.to_string()))?;
    spec::parse(&text).map_err(|e| PermissionsError::Spec(e.report(&shown)))
}

async fn connect(config: &Config, context: &Context) -> Result<Connection, PermissionsError> {
    let vars = &crate::config::CREDENTIAL_VARS;
    let values = config.credential_values();
    let mut missing: Vec<String> = [
        (
            "PERMISSION_BOT_ACCOUNT",
            config.permission_bot_account.is_none(),
        ),
        ("PERMISSION_BOT_USER", config.permission_bot_user.is_none()),
    ]
    .into_iter()
    .filter(|(_, absent)| *absent)
    .map(|(name, _)| name.to_owned())
    .collect();
    if values.is_empty() {
        missing.push(vars.one_of());
    }
    let (Some(account), Some(user), true) = (
        &config.permission_bot_account,
        &config.permission_bot_user,
        missing.is_empty(),
    ) else {
        return Err(PermissionsError::MissingConnection {
            missing: missing.join(", "),
        });
    };
    let credential =
        snowflake_conn::credential::resolve(vars, values).map_err(PermissionsError::Credential)?;
    let mut options = ConnectOptions::new(account.clone(), user.clone(), credential);
    options.role = config.permission_bot_role.clone();
    options.warehouse = config.permission_bot_warehouse.clone();
    options.database = config.permission_bot_database.clone();
    options.base_url = config.permission_bot_url.clone();
    Connection::connect(options, context.cancel.clone())
        .await
        .map_err(PermissionsError::Connect)
}

/// The guard rails from the config, plus what the session says about who it is.
fn options(config: &Config, state: &State) -> Options {
    let mut protected: BTreeSet<Name> = config
        .permissions_protected_roles
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .filter_map(|r| Name::from_spec(r).ok())
        .collect();
    let bot_role = config
        .permission_bot_role
        .as_deref()
        .and_then(|r| Name::from_spec(r).ok());
    protected.extend(bot_role);
    protected.extend(state.current_role.clone());
    let bot_user = state.current_user.clone().or_else(|| {
        config
            .permission_bot_user
            .as_deref()
            .and_then(|u| Name::from_spec(u).ok())
    });
    Options {
        protected,
        max_revokes: config.permissions_max_revokes,
        force: config.permissions_force,
        bot_user,
        bot_uses_password: config.permission_bot_password.is_some(),
    }
}

/// The spec, the state (from the account, or from the snapshot file when planning offline)
/// and the plan.
async fn make_plan(
    config: &Config,
    spec_path: &Path,
    context: &Context,
    offline: bool,
) -> Result<(Plan, Option<Connection>), PermissionsError> {
    let spec = read_spec(spec_path)?;
    let (state, connection) = match (&config.permissions_state_file, offline) {
        (Some(path), true) => {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| PermissionsError::Read {
                path: shown.clone(),
                source,
            })?;
            let state = State::from_json(&text).map_err(|source| PermissionsError::Snapshot {
                path: shown,
                source,
            })?;
            tracing::info!(snapshot = %path.display(), read_at = state.read_at.as_deref().unwrap_or("?"), "planning offline from a snapshot");
            (state, None)
        }
        _ => {
            let connection = connect(config, context).await?;
            let needs = Needs::for_spec(&spec);
            let (state, _) =
                inspect::read_state(&connection, &needs, config.permissions_concurrency).await?;
            (state, Some(connection))
        }
    };
    let plan = plan::plan_spec(&spec, &state, &options(config, &state));
    let summary = render::summary(&plan);
    tracing::info!(
        statements = summary.statements,
        grants_added = summary.grants_added,
        grants_revoked = summary.grants_revoked,
        problems = plan.problems.len(),
        refusals = plan.refusals.len(),
        "planned"
    );
    Ok((plan, connection))
}

fn not_applicable(plan: &Plan) -> PermissionsError {
    PermissionsError::NotApplicable {
        problems: plan.problems.len(),
        refusals: plan.refusals.len(),
    }
}

async fn plan_spec(
    config: &Config,
    spec_path: &Path,
    context: &Context,
) -> Result<Exit, PermissionsError> {
    let format = Format::parse(&config.permissions_format).unwrap_or(Format::Text);
    let (plan, connection) = make_plan(config, spec_path, context, true).await?;
    close(connection).await;
    out(&render::render(
        &plan,
        format,
        &spec_path.display().to_string(),
    ))?;
    if plan.is_applicable() {
        Ok(Exit::Success)
    } else {
        Err(not_applicable(&plan))
    }
}

async fn apply_spec(
    config: &Config,
    spec_path: &Path,
    context: &Context,
) -> Result<Exit, PermissionsError> {
    if config.permissions_state_file.is_some() {
        return Err(PermissionsError::StateWithApply);
    }
    let shown = spec_path.display().to_string();
    let (plan, connection) = make_plan(config, spec_path, context, false).await?;
    let result = apply_plan(config, &plan, &shown, connection.as_ref(), context).await;
    close(connection).await;
    result
}

async fn apply_plan(
    config: &Config,
    plan: &Plan,
    spec_file: &str,
    connection: Option<&Connection>,
    context: &Context,
) -> Result<Exit, PermissionsError> {
    if config.permissions_dry_run {
        // Permifrost's --dry printed the statements: so does this.
        out(&render::render(plan, Format::Sql, spec_file))?;
        return if plan.is_applicable() {
            Ok(Exit::Success)
        } else {
            Err(not_applicable(plan))
        };
    }
    if !plan.is_applicable() {
        out(&render::render(plan, Format::Text, spec_file))?;
        return Err(not_applicable(plan));
    }
    if plan.changes.is_empty() {
        out(&render::render(plan, Format::Text, spec_file))?;
        return Ok(Exit::Success);
    }
    let Some(connection) = connection else {
        return Err(PermissionsError::MissingConnection {
            missing: "a connection".into(),
        });
    };
    let delivery = apply::PasswordDelivery::from_config(
        config.permissions_password_recipient.as_deref(),
        config.permissions_password_file.as_deref(),
    )
    .map_err(PermissionsError::PasswordDelivery)?;
    let mut passwords = if apply::generates_passwords(plan) {
        let sink = apply::PasswordSink::open(&delivery).map_err(|source| {
            PermissionsError::PasswordFile {
                path: config
                    .permissions_password_file
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                source,
            }
        })?;
        if sink.is_none() {
            return Err(PermissionsError::PasswordDelivery(
                "the plan creates users with a generated password, and no way to deliver it is \
                 set, so nothing was applied: set PERMISSIONS_PASSWORD_RECIPIENT to the admin's \
                 age public key (the password goes to stdout encrypted to it), or \
                 PERMISSIONS_PASSWORD_FILE to a new file on a volume only the admin reads; or \
                 give these users `has_password: no`"
                    .into(),
            ));
        }
        sink
    } else {
        None
    };
    let outcome = apply::apply(connection, plan, passwords.as_mut(), &context.cancel).await;
    out(&outcome.to_string())?;
    if outcome.interrupted {
        return Err(PermissionsError::Interrupted {
            applied: outcome.applied.len(),
            not_applied: outcome.not_applied.len(),
        });
    }
    if outcome.failed.is_some() {
        return Err(PermissionsError::ApplyFailed {
            applied: outcome.applied.len(),
            not_applied: outcome.not_applied.len(),
        });
    }
    tracing::info!(statements = outcome.applied.len(), "applied the plan");
    Ok(Exit::Success)
}

async fn snapshot(config: &Config, context: &Context) -> Result<Exit, PermissionsError> {
    let connection = connect(config, context).await?;
    let read = inspect::read_state(
        &connection,
        &Needs::everything(),
        config.permissions_concurrency,
    )
    .await;
    close(Some(connection)).await;
    let (state, statements) = read?;
    let json = state.to_json() + "\n";
    match &config.permissions_snapshot_file {
        Some(path) => std::fs::write(path, json).map_err(|source| PermissionsError::Write {
            what: path.display().to_string(),
            source,
        })?,
        None => out(&json)?,
    }
    tracing::info!(
        statements,
        roles = state.roles.len(),
        users = state.users.len(),
        databases = state.databases.len(),
        "wrote the snapshot"
    );
    Ok(Exit::Success)
}

async fn close(connection: Option<Connection>) {
    if let Some(connection) = connection
        && let Err(e) = connection.close().await
    {
        tracing::debug!("closing the session: {e}");
    }
}
