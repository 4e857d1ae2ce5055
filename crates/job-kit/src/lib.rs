//! The job kit: everything a batch job of this suite needs besides its own logic, written once.
//!
//! A job describes itself with the [`Job`] trait (its name, its environment contract, its config
//! struct, its `run`), and its `main` is one call to [`main`]. The kit then owns the command line
//! (`--help`, `--env-schema`, one flag per variable), reading and validating the environment,
//! logging, the TLS crypto provider, the async runtime, signals and the exit code.
//!
//! The kit knows nothing of Snowflake, Postgres, S3 or Mattermost.

pub mod env;
pub mod exit;
pub mod logging;
pub mod retry;
pub mod secret;
pub mod signal;

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
    /// The environment contract. [`env::COMMON`] is added by the kit.
    const VARS: &'static [EnvVar];

    /// Read from the environment with `envy`; its fields are the lower-cased `VARS` names.
    type Config: DeserializeOwned;
    /// The job's own arguments besides the flags that mirror variables (e.g. a subcommand).
    type Args: clap::Args + clap::FromArgMatches;
    type Error: JobError;

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
}

// For jobs that take no arguments besides their variables.
#[derive(Debug, Clone, clap::Args)]
pub struct NoArgs {}

/// How long a job may take to stop after SIGTERM before the kit stops waiting for it. Kubernetes
/// allows 30 s by default before SIGKILL; this leaves room to flush logs.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// A job binary's whole `main`.
pub fn main<J: Job>() -> std::process::ExitCode {
    run::<J>(std::env::args_os().collect()).into()
}

fn run<J: Job>(argv: Vec<std::ffi::OsString>) -> Exit {
    let matches = match command::<J>().try_get_matches_from(argv) {
        Ok(matches) => matches,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                Exit::Usage
            } else {
                Exit::Success
            };
        }
    };
    if matches.get_flag("env-schema") {
        let schema = env::schema(J::NAME, J::VERSION, J::VARS);
        let mut out = std::io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut out, &schema);
        let _ = writeln!(out);
        return Exit::Success;
    }

    let sources = env::Sources::from_process(flag_values::<J>(&matches));
    let mut problems = init_logging(&sources);
    install_crypto_provider();

    let args = <J::Args as clap::FromArgMatches>::from_arg_matches(&matches);
    let config = env::load::<J::Config>(J::VARS, &sources);
    match (config, args) {
        (Ok(config), Ok(args)) if problems.is_empty() => execute::<J>(config, args, sources),
        (config, args) => {
            if let Err(err) = config {
                problems.extend(err.problems);
            }
            if let Err(err) = args {
                let _ = err.print();
            }
            let err = env::ConfigError { problems };
            tracing::error!("{}: {err}", J::NAME);
            Exit::Usage
        }
    }
}

fn execute<J: Job>(config: J::Config, args: J::Args, sources: env::Sources) -> Exit {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("{}: cannot start the async runtime: {err}", J::NAME);
            return Exit::Failure;
        }
    };
    let cancel = CancellationToken::new();
    let context = Context {
        cancel: cancel.clone(),
        env: sources,
    };
    runtime.block_on(async {
        signal::cancel_on_signal(cancel.clone());
        let job = J::run(config, args, context);
        let gave_up = async {
            cancel.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            result = job => match result {
                Ok(exit) => exit,
                Err(err) if cancel.is_cancelled() => {
                    tracing::error!("{}: interrupted: {}", J::NAME, exit::chain(&err));
                    Exit::Interrupted
                }
                Err(err) => {
                    tracing::error!("{}: {}", J::NAME, exit::chain(&err));
                    err.exit()
                }
            },
            () = gave_up => {
                tracing::error!("{}: did not stop within {SHUTDOWN_GRACE:?} of the signal", J::NAME);
                Exit::Interrupted
            }
        }
    })
}

/// Sets up logging from `LOG_FORMAT`/`LOG_LEVEL`; a bad value still leaves working (default)
/// logging and becomes a config problem reported with the rest.
fn init_logging(sources: &env::Sources) -> Vec<env::Problem> {
    let mut problems = Vec::new();
    let [format_var, level_var] = env::COMMON else {
        unreachable!("COMMON holds LOG_FORMAT and LOG_LEVEL")
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
    if let Err(message) = logging::init(format, level) {
        problems.push(env::Problem {
            variable: level_var.name,
            message,
        });
        let _ = logging::init(format, "info");
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
    for var in J::VARS.iter().chain(env::COMMON) {
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
        .chain(env::COMMON)
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
            "--env-schema",
            "130  interrupted",
        ] {
            assert!(help.contains(needle), "{needle:?} not in:\n{help}");
        }
    }

    #[test]
    fn usage_errors_exit_with_the_usage_code() {
        assert_eq!(
            run::<Sample>(vec!["sample".into(), "--bogus".into()]),
            Exit::Usage
        );
    }
}
