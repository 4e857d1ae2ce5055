//! The job kit: everything a batch job of this suite needs besides its own logic, written once.
//!
//! A job describes itself with the [`Job`] trait (its name, its environment contract, its config
//! struct, its `run`), and its `main` is one call to [`main`]. The kit then owns the command line
//! (`--help`, `--env-schema`, one flag per variable), reading and validating the environment,
//! logging, the TLS crypto provider, the async runtime, signals, the exit code and the status
//! file (`JOB_STATUS_FILE`, [`status`]).
//!
//! The kit knows nothing of Snowflake, Postgres, S3 or Mattermost.

pub mod env;
pub mod exit;
mod http;
pub mod lineage;
pub mod logging;
pub mod metrics;
pub mod retry;
pub mod run;
pub mod secret;
pub mod signal;
pub mod status;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

pub use env::{EnvVar, Kind};
pub use exit::{Exit, JobError};
pub use secret::Secret;

/// A job of the suite.
pub trait Job {
    /// The binary's name, as in `crates/<name>` and the image name.
    const NAME: &'static str;
    const VERSION: &'static str;
    /// One line for `--help`.
    const ABOUT: &'static str;
    /// The environment contract. The kit adds its own ([`kit_vars`]).
    const VARS: &'static [EnvVar];

    /// Read from the environment with `envy`; its fields are the lower-cased `VARS` names.
    type Config: DeserializeOwned;
    /// The job's own arguments besides the flags that mirror variables (e.g. a subcommand).
    type Args: clap::Args + clap::FromArgMatches;
    type Error: JobError;

    /// What this run is a run of, when the job runs one of several things: a grouping label
    /// and its value (`("source", "licenses")`). It groups the run's pushed metrics
    /// ([`metrics`]). None by default: the run is the job's.
    fn scope(_config: &Self::Config, _args: &Self::Args) -> Option<(&'static str, String)> {
        None
    }

    fn run(
        config: Self::Config,
        args: Self::Args,
        context: Context,
    ) -> impl Future<Output = Result<Exit, Self::Error>>;
}

/// What the kit hands a running job besides its config.
#[derive(Debug, Clone)]
pub struct Context {
    /// Cancelled on SIGTERM/SIGINT: stop, clean up, and return.
    pub cancel: CancellationToken,
    /// The environment as the job was started with it, for the rare job whose config names
    /// other variables (it reads them through [`env::Sources::raw`]).
    pub env: env::Sources,
    /// Who started this run, and its id ([`run`]).
    pub run: &'static run::RunContext,
}

/// The variables the kit reads for every job, after the job's own.
pub fn kit_vars() -> impl Iterator<Item = &'static EnvVar> {
    env::COMMON
        .iter()
        .chain(run::VARS)
        .chain(metrics::VARS)
        .chain(lineage::VARS)
}

// For jobs that take no arguments besides their variables.
#[derive(Debug, Clone, clap::Args)]
pub struct NoArgs {}

/// How long a job may take to stop after SIGTERM before the kit stops waiting for it. Kubernetes
/// allows 30 s by default before SIGKILL; this leaves room to flush logs.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// A job binary's whole `main`.
pub fn main<J: Job>() -> std::process::ExitCode {
    let ended = run::<J>(std::env::args_os().collect());
    status::record(ended.exit.code(), ended.error.as_deref());
    ended.exit.into()
}

/// How a run ended: the exit, and the final error exactly as it was logged (if one was).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ended {
    exit: Exit,
    error: Option<String>,
}

impl Ended {
    fn ok(exit: Exit) -> Self {
        Ended { exit, error: None }
    }

    /// Logs `error` as the run's final error.
    fn failed(exit: Exit, error: String) -> Self {
        tracing::error!("{error}");
        Ended {
            exit,
            error: Some(error),
        }
    }

    /// An exit without an error of its own (a job's `Ok(Exit::Partial)`) is summed up by its
    /// meaning, so that a status file always says why.
    fn summary<J: Job>(exit: Exit) -> Self {
        let error = (exit != Exit::Success).then(|| format!("{}: {}", J::NAME, exit.meaning()));
        Ended { exit, error }
    }
}

fn run<J: Job>(argv: Vec<std::ffi::OsString>) -> Ended {
    let matches = match command::<J>().try_get_matches_from(argv) {
        Ok(matches) => matches,
        Err(err) => {
            let _ = err.print();
            if !err.use_stderr() {
                return Ended::ok(Exit::Success);
            }
            // Bad arguments in a pod are a configuration error like any other: say so in the
            // status file too (the flags could not be read, so only the environment names it).
            let sources = env::Sources::from_process(BTreeMap::new());
            set_status_path(&sources);
            let text = err.kind().as_str().unwrap_or("invalid arguments");
            return Ended {
                exit: Exit::Usage,
                error: Some(format!("{}: usage: {text}", J::NAME)),
            };
        }
    };
    if matches.get_flag("env-schema") {
        let schema = env::schema(J::NAME, J::VERSION, J::VARS);
        let mut out = std::io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut out, &schema);
        let _ = writeln!(out);
        return Ended::ok(Exit::Success);
    }

    let sources = env::Sources::from_process(flag_values::<J>(&matches));
    // The kit's own secrets (a lineage API key) are masked as the job's are when its config
    // loads, and before the first log line.
    for var in kit_vars().filter(|var| var.secret) {
        if let Some(value) = sources.value(var) {
            secret::register(value);
        }
    }
    let (run_context, run_warnings) = run::RunContext::read(J::NAME, J::VERSION, &sources);
    let run_context = run::set_current(run_context);
    let mut problems = init_logging(&sources, run_context);
    for warning in run_warnings {
        tracing::warn!("{warning}");
    }
    set_status_path(&sources);
    install_crypto_provider();

    let started = std::time::SystemTime::now();
    let lineage = lineage::Transport::read(&sources);
    let mut start_sent = false;
    let args = <J::Args as clap::FromArgMatches>::from_arg_matches(&matches);
    let config = env::load::<J::Config>(J::VARS, &sources);
    let ended = match (config, args) {
        (Ok(config), Ok(args)) if problems.is_empty() => {
            start_sent = lineage.is_some();
            execute::<J>(config, args, sources.clone(), run_context, lineage.as_ref())
        }
        (config, args) => {
            if let Err(err) = config {
                problems.extend(err.problems);
            }
            if let Err(err) = args {
                let _ = err.print();
            }
            let err = env::ConfigError { problems };
            Ended::failed(Exit::Usage, format!("{}: {err}", J::NAME))
        }
    };
    let lineage = lineage.map(|transport| (transport, start_sent));
    report_run(&sources, run_context, &ended, started, lineage);
    ended
}

/// What every run reports when it ends, whatever the job: its metrics to a Pushgateway and its
/// end to the lineage server (its start too, for a run that never started: a configuration
/// error), each if configured. Both at once, each bounded in time; a failure is a warning.
fn report_run(
    sources: &env::Sources,
    run_context: &run::RunContext,
    ended: &Ended,
    started: std::time::SystemTime,
    lineage: Option<(lineage::Transport, bool)>,
) {
    let finished = std::time::SystemTime::now();
    if lineage.is_none() && !metrics::configured(sources) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        tracing::warn!("cannot start the runtime that reports the run: nothing reported");
        return;
    };
    let scope = metrics::tally().scope_group();
    let lineage_end = async {
        let Some((transport, start_sent)) = &lineage else {
            return;
        };
        if !start_sent {
            transport
                .send(&transport.start(run_context, scope.as_ref()))
                .await;
        }
        let event = transport.end(
            run_context,
            scope.as_ref(),
            ended.exit,
            ended.error.as_deref(),
        );
        transport.send(&event).await;
    };
    runtime.block_on(async {
        tokio::join!(
            metrics::push(sources, run_context, ended.exit, started, finished),
            lineage_end,
        )
    });
}

fn set_status_path(sources: &env::Sources) {
    let [_, _, status_var, ..] = env::COMMON else {
        unreachable!("COMMON holds LOG_FORMAT, LOG_LEVEL and JOB_STATUS_FILE")
    };
    if let Some(path) = sources.value(status_var) {
        status::set_path(path.into());
    }
}

fn execute<J: Job>(
    config: J::Config,
    args: J::Args,
    sources: env::Sources,
    run: &'static run::RunContext,
    lineage: Option<&lineage::Transport>,
) -> Ended {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            return Ended::failed(
                Exit::Failure,
                format!("{}: cannot start the async runtime: {err}", J::NAME),
            );
        }
    };
    if let Some((label, value)) = J::scope(&config, &args) {
        metrics::tally().scope(label, &value);
    }
    let cancel = CancellationToken::new();
    let context = Context {
        cancel: cancel.clone(),
        env: sources,
        run,
    };
    runtime.block_on(async {
        signal::cancel_on_signal(cancel.clone());
        if let Some(transport) = lineage {
            let scope = metrics::tally().scope_group();
            transport.send(&transport.start(run, scope.as_ref())).await;
        }
        let job = J::run(config, args, context);
        let gave_up = async {
            cancel.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            result = job => match result {
                Ok(exit) => Ended::summary::<J>(exit),
                Err(err) if cancel.is_cancelled() => Ended::failed(
                    Exit::Interrupted,
                    format!("{}: interrupted: {}", J::NAME, exit::chain(&err)),
                ),
                Err(err) => Ended::failed(err.exit(), format!("{}: {}", J::NAME, exit::chain(&err))),
            },
            () = gave_up => Ended::failed(
                Exit::Interrupted,
                format!("{}: did not stop within {SHUTDOWN_GRACE:?} of the signal", J::NAME),
            ),
        }
    })
}

/// Sets up logging from `LOG_FORMAT`/`LOG_LEVEL`; a bad value still leaves working (default)
/// logging and becomes a config problem reported with the rest.
fn init_logging(sources: &env::Sources, run: &run::RunContext) -> Vec<env::Problem> {
    let mut problems = Vec::new();
    let [format_var, level_var, _, ..] = env::COMMON else {
        unreachable!("COMMON holds LOG_FORMAT, LOG_LEVEL and JOB_STATUS_FILE")
    };
    let format = match sources.value(format_var) {
        None | Some("text") => logging::Format::Text,
        Some("json") => logging::Format::Json,
        Some(other) => {
            problems.push(env::Problem {
                variable: format_var.name,
                message: format!("expected one of text, json, got {other:?}"),
            });
            logging::Format::Text
        }
    };
    let level = sources.value(level_var).unwrap_or("info");
    let run_fields = run.log_fields();
    if let Err(message) = logging::init(format, level, &run_fields) {
        problems.push(env::Problem {
            variable: level_var.name,
            message,
        });
        let _ = logging::init(format, "info", &run_fields);
    }
    problems
}

/// Every TLS connection of the suite uses rustls with ring; reqwest and the database drivers
/// are built without a provider of their own, so it must be installed before the first client.
pub fn install_crypto_provider() {
    // `Err` means one is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn command<J: Job>() -> Command {
    let command = Command::new(J::NAME)
        .version(J::VERSION)
        .about(J::ABOUT)
        .after_help(format!(
            "Every flag under 'Environment' mirrors the variable it names; pods set the \
             variables.\n\n{}",
            exit::table()
        ))
        .arg(
            Arg::new("env-schema")
                .long("env-schema")
                .action(ArgAction::SetTrue)
                .help("Print the environment contract (every variable read) as JSON and exit"),
        );
    // After the job's args: clap would take a derived struct's doc comment as the about text.
    let mut command = <J::Args as clap::Args>::augment_args(command).about(J::ABOUT);
    for var in J::VARS.iter().chain(kit_vars()) {
        let arg = Arg::new(var.name)
            .long(var.long_flag())
            .help_heading("Environment")
            .help(flag_help(var));
        // A boolean variable is a switch on the command line: `--reload`, not `--reload true`.
        let arg = if var.kind == Kind::Bool {
            arg.action(ArgAction::SetTrue)
        } else {
            arg.value_name(var.name)
        };
        command = command.arg(arg);
    }
    command
}

fn flag_help(var: &EnvVar) -> String {
    let presence = match var.presence {
        env::Presence::Required => "required".to_owned(),
        env::Presence::Optional => "optional".to_owned(),
        env::Presence::Default(d) => format!("default: {d}"),
    };
    let mut help = format!("{} [{presence}", var.help);
    if var.kind == Kind::Bool || var.flag_name.is_some() {
        help.push_str(&format!(", env {}", var.name));
    }
    if var.secret {
        help.push_str(", secret");
    }
    if !var.aliases.is_empty() {
        help.push_str(&format!(", also read from {}", var.aliases.join(", ")));
    }
    help.push(']');
    help
}

fn flag_values<J: Job>(matches: &ArgMatches) -> BTreeMap<&'static str, String> {
    J::VARS
        .iter()
        .chain(kit_vars())
        .filter_map(|var| {
            let value = if var.kind == Kind::Bool {
                matches.get_flag(var.name).then(|| "true".to_owned())?
            } else {
                matches.get_one::<String>(var.name)?.clone()
            };
            Some((var.name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Config {
        target_url: Secret<url::Url>,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("never")]
    struct Never;
    impl JobError for Never {}

    struct Sample;
    impl Job for Sample {
        const NAME: &'static str = "sample";
        const VERSION: &'static str = "0.0.0";
        const ABOUT: &'static str = "A sample job";
        const VARS: &'static [EnvVar] =
            &[EnvVar::new("TARGET_URL", Kind::HttpUrl, "Where to send")
                .required()
                .secret()];
        type Config = Config;
        type Args = NoArgs;
        type Error = Never;

        async fn run(_: Config, _: NoArgs, _: Context) -> Result<Exit, Never> {
            Ok(Exit::Success)
        }
    }

    #[test]
    fn help_lists_every_variable_and_the_exit_codes() {
        let help = command::<Sample>().render_help().to_string();
        for needle in [
            "A sample job",
            "--target-url <TARGET_URL>",
            "Where to send [required, secret]",
            "--log-format <LOG_FORMAT>",
            "[default: text]",
            "--job-status-file <JOB_STATUS_FILE>",
            "--env-schema",
            "130  interrupted",
        ] {
            assert!(help.contains(needle), "{needle:?} not in:\n{help}");
        }
    }

    #[test]
    fn usage_errors_exit_with_the_usage_code() {
        let ended = run::<Sample>(vec!["sample".into(), "--bogus".into()]);
        assert_eq!(ended.exit, Exit::Usage);
        assert_eq!(
            ended.error.as_deref(),
            Some("sample: usage: unexpected argument found")
        );
    }

    #[test]
    fn a_config_error_is_ended_with_the_text_it_logged() {
        let ended = run::<Sample>(vec!["sample".into(), "--target-url".into(), "nope".into()]);
        assert_eq!(ended.exit, Exit::Usage);
        let error = ended.error.unwrap();
        assert!(
            error.starts_with("sample: invalid configuration (1 problem)\n  - TARGET_URL:"),
            "{error}"
        );
    }

    #[test]
    fn an_exit_without_an_error_is_summed_up_by_its_meaning() {
        assert_eq!(Ended::summary::<Sample>(Exit::Success).error, None);
        assert_eq!(
            Ended::summary::<Sample>(Exit::NoInput).error.as_deref(),
            Some("sample: no input: what the run expects to process does not exist")
        );
    }
}
