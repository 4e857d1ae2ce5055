//! The environment contract: one table of [`EnvVar`]s per job is the single definition of what a
//! job reads. From it come the command-line flags that mirror the variables, the `--help` text,
//! the `--env-schema` JSON that deployment checks read, the validation that reports every bad
//! variable at once, and the values `envy` deserializes into the job's config struct.
//!
//! The struct and the table cannot drift apart: [`load`] compares the struct's serde fields with
//! the table on every start and refuses to run on a mismatch (each job also tests it).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

use crate::secret;

/// What a variable's value must look like. Checked before `envy` runs so that all problems are
/// reported together, each naming its variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// An absolute URL (any scheme).
    Url,
    /// An absolute `http` or `https` URL.
    HttpUrl,
    /// An `https` URL that credentials are sent to (a login, a webhook key in the path);
    /// `http` only when the host is on this machine (tests, a local proxy).
    CredentialUrl,
    Integer {
        min: i64,
        max: i64,
    },
    /// A number of seconds, fractions allowed, from [`MIN_SECONDS`] to [`MAX_SECONDS`].
    Seconds,
    Bool,
    /// One of a fixed set of words (compared case-sensitively).
    Choice(&'static [&'static str]),
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An RFC 3339 timestamp (`2026-11-26T03:00:00+00:00`).
    Timestamp,
    /// A comma-separated list of words.
    List,
    Path,
}

impl Kind {
    fn describe(&self) -> String {
        match self {
            Kind::Text => "text".into(),
            Kind::Url => "an absolute URL".into(),
            Kind::HttpUrl => "an http(s) URL".into(),
            Kind::CredentialUrl => {
                "an https URL; http:// only for a host on this machine, as it sends credentials \
                 in clear text"
                    .into()
            }
            Kind::Integer { min, max } => format!("a whole number from {min} to {max}"),
            Kind::Seconds => {
                format!("a number of seconds from {MIN_SECONDS} to {MAX_SECONDS} (7 days)")
            }
            Kind::Bool => "true or false".into(),
            Kind::Choice(words) => format!("one of {}", words.join(", ")),
            Kind::Date => "a date YYYY-MM-DD".into(),
            Kind::Timestamp => "an RFC 3339 timestamp".into(),
            Kind::List => "a comma-separated list".into(),
            Kind::Path => "a file path".into(),
        }
    }

    fn schema_name(&self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Url => "url",
            Kind::HttpUrl => "http_url",
            Kind::CredentialUrl => "credential_url",
            Kind::Integer { .. } => "integer",
            Kind::Seconds => "seconds",
            Kind::Bool => "bool",
            Kind::Choice(_) => "choice",
            Kind::Date => "date",
            Kind::Timestamp => "timestamp",
            Kind::List => "list",
            Kind::Path => "path",
        }
    }

    /// `Err` says what is wrong without quoting the value (it may be a secret).
    fn check(&self, value: &str) -> Result<(), String> {
        let ok = match self {
            Kind::Text | Kind::List | Kind::Path => true,
            Kind::Url => url::Url::parse(value).is_ok(),
            Kind::HttpUrl => url::Url::parse(value)
                .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .unwrap_or(false),
            Kind::CredentialUrl => url::Url::parse(value)
                .map(|u| match u.scheme() {
                    "https" => u.host_str().is_some(),
                    "http" => is_loopback_host(&u),
                    _ => false,
                })
                .unwrap_or(false),
            Kind::Integer { min, max } => value
                .parse::<i64>()
                .map(|n| (*min..=*max).contains(&n))
                .unwrap_or(false),
            Kind::Seconds => value
                .parse::<f64>()
                .map(|s| (MIN_SECONDS..=MAX_SECONDS).contains(&s))
                .unwrap_or(false),
            Kind::Bool => matches!(value, "true" | "false"),
            Kind::Choice(words) => words.contains(&value),
            Kind::Date => is_date(value),
            Kind::Timestamp => value.parse::<jiff::Timestamp>().is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(format!("expected {}", self.describe()))
        }
    }
}

/// Whether every address `url`'s host stands for is a loopback address: a literal one, or a
/// name that resolves only to such (`localhost`, or an `/etc/hosts` entry in a container).
fn is_loopback_host(url: &url::Url) -> bool {
    use std::net::ToSocketAddrs;
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => {
            let port = url.port_or_known_default().unwrap_or(80);
            match (name, port).to_socket_addrs() {
                Ok(addresses) => {
                    let addresses: Vec<_> = addresses.collect();
                    !addresses.is_empty() && addresses.iter().all(|a| a.ip().is_loopback())
                }
                Err(_) => false,
            }
        }
        None => false,
    }
}

/// The bounds of a `Seconds` value: a millisecond, and a week. Beyond them a value is a typo
/// (`1e300` would overflow a `Duration`), not a timeout anybody means.
/// A [`Kind::Seconds`] value as a duration; `None` when it is not one.
pub fn seconds(value: &str) -> Option<std::time::Duration> {
    Kind::Seconds.check(value).ok()?;
    value
        .parse::<f64>()
        .ok()
        .map(std::time::Duration::from_secs_f64)
}

pub const MIN_SECONDS: f64 = 0.001;
pub const MAX_SECONDS: f64 = 604_800.0;

/// Strictly `YYYY-MM-DD`: jiff alone would also take `20261126`.
fn is_date(value: &str) -> bool {
    value.len() == 10 && value.parse::<jiff::civil::Date>().is_ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Required,
    Optional,
    Default(&'static str),
}

/// One environment variable of a job's contract.
#[derive(Debug, Clone, Copy)]
pub struct EnvVar {
    pub name: &'static str,
    pub kind: Kind,
    pub presence: Presence,
    pub secret: bool,
    /// Other names accepted for the same value (an older or more common spelling); the first
    /// one set wins, `name` first.
    pub aliases: &'static [&'static str],
    /// The mirroring flag's name when the derived one would be clumsy (`STAGE_IMPORT_DATE` →
    /// `--date`).
    pub flag_name: Option<&'static str>,
    pub help: &'static str,
}

impl EnvVar {
    /// An optional variable; chain [`required`](Self::required), [`default`](Self::default),
    /// [`secret`](Self::secret), [`aliases`](Self::aliases).
    pub const fn new(name: &'static str, kind: Kind, help: &'static str) -> Self {
        EnvVar {
            name,
            kind,
            presence: Presence::Optional,
            secret: false,
            aliases: &[],
            flag_name: None,
            help,
        }
    }

    pub const fn required(mut self) -> Self {
        self.presence = Presence::Required;
        self
    }

    pub const fn default(mut self, value: &'static str) -> Self {
        self.presence = Presence::Default(value);
        self
    }

    pub const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }

    pub const fn flag(mut self, name: &'static str) -> Self {
        self.flag_name = Some(name);
        self
    }

    /// The serde field name `envy` maps this variable to.
    pub fn field_name(&self) -> String {
        self.name.to_ascii_lowercase()
    }

    /// The command-line flag that mirrors this variable: `MATTERMOST_WEBHOOK_URL` →
    /// `mattermost-webhook-url`.
    pub fn long_flag(&self) -> String {
        match self.flag_name {
            Some(name) => name.to_owned(),
            None => self.name.to_ascii_lowercase().replace('_', "-"),
        }
    }
}

/// Variables every job reads (through the kit), listed in every job's contract.
pub const COMMON: &[EnvVar] = &[
    EnvVar::new(
        "LOG_FORMAT",
        Kind::Choice(&["text", "json"]),
        "Log line format: json (one JSON object per line, for pods) or text.",
    )
    .default("text"),
    EnvVar::new(
        "LOG_LEVEL",
        Kind::Text,
        "Log filter: a level (error, warn, info, debug, trace) or tracing directives.",
    )
    .default("info"),
    EnvVar::new(
        "JOB_STATUS_FILE",
        Kind::Path,
        "File to write the exit code and the final error's summary to when the job ends (for \
         a watcher in the same pod, e.g. webhook-alert's ALERT_WATCH_STATUS_FILES)",
    ),
];

/// One problem with one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub variable: &'static str,
    pub message: String,
}

/// Every problem found in the environment, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid configuration ({n} problem{})",
            if n == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  - {}: {}", problem.variable, problem.message)?;
        }
        Ok(())
    }
}

/// Where a variable's value came from, in precedence order: a flag beats the environment.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub flags: BTreeMap<&'static str, String>,
    pub env: BTreeMap<String, String>,
}

impl Sources {
    /// The process environment (the one place the kit reads it) plus flag values.
    pub fn from_process(flags: BTreeMap<&'static str, String>) -> Self {
        #[allow(clippy::disallowed_methods)]
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Sources { flags, env }
    }

    /// The value of a variable, `None` when unset or empty (Kubernetes and Airflow templates
    /// often render a missing value as an empty string).
    pub fn value(&self, var: &EnvVar) -> Option<&str> {
        if let Some(v) = self.flags.get(var.name).filter(|v| !v.is_empty()) {
            return Some(v);
        }
        std::iter::once(&var.name)
            .chain(var.aliases)
            .find_map(|name| self.env.get(*name).filter(|v| !v.is_empty()))
            .map(String::as_str)
    }

    /// The raw value of any environment variable by name (not through a contract): for jobs
    /// whose config names other variables, e.g. which values to redact.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Checks every variable of `vars`, registers secret values for redaction, and deserializes the
/// result into `T` with `envy`. All problems are returned in one [`ConfigError`].
pub fn load<T: DeserializeOwned>(vars: &[EnvVar], sources: &Sources) -> Result<T, ConfigError> {
    if let Err(message) = check_contract::<T>(vars) {
        return Err(ConfigError {
            problems: vec![Problem {
                variable: "(contract)",
                message,
            }],
        });
    }
    let mut problems = Vec::new();
    let mut values: Vec<(String, String)> = Vec::new();
    for var in vars {
        let value = match (sources.value(var), var.presence) {
            (Some(v), _) => v,
            (None, Presence::Default(d)) => d,
            (None, Presence::Required) => {
                problems.push(Problem {
                    variable: var.name,
                    message: format!("is required but not set ({})", var.kind.describe()),
                });
                continue;
            }
            (None, Presence::Optional) => continue,
        };
        if var.secret {
            secret::register(value);
        }
        match var.kind.check(value) {
            Ok(()) => values.push((var.field_name(), value.to_owned())),
            Err(expected) if var.secret => problems.push(Problem {
                variable: var.name,
                message: format!("{expected}; the value (a secret, not shown) is not one"),
            }),
            Err(expected) => problems.push(Problem {
                variable: var.name,
                message: format!("{expected}, got {value:?}"),
            }),
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    envy::from_iter(values).map_err(|e| ConfigError {
        problems: vec![Problem {
            variable: "(config)",
            message: secret::redact(&e.to_string()).into_owned(),
        }],
    })
}

/// Checks that the config struct's fields and the variable table name the same variables.
pub fn check_contract<T: DeserializeOwned>(vars: &[EnvVar]) -> Result<(), String> {
    let fields = struct_fields::<T>();
    let mut names: Vec<String> = vars.iter().map(EnvVar::field_name).collect();
    names.sort();
    if let Some(dup) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!(
            "variable {} is listed twice",
            dup[0].to_uppercase()
        ));
    }
    let missing: Vec<_> = fields.iter().filter(|f| !names.contains(f)).collect();
    let unused: Vec<_> = names.iter().filter(|n| !fields.contains(n)).collect();
    if missing.is_empty() && unused.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "config struct and variable table disagree: fields without a variable {missing:?}, \
             variables without a field {unused:?}"
        ))
    }
}

/// The field names serde would read for `T`, captured by a deserializer that only records them.
fn struct_fields<T: DeserializeOwned>() -> Vec<String> {
    struct FieldNames(Vec<&'static str>);

    #[derive(Debug)]
    struct Captured;

    impl fmt::Display for Captured {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("captured")
        }
    }
    impl std::error::Error for Captured {}
    impl de::Error for Captured {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Captured
        }
    }

    impl<'de> Deserializer<'de> for &mut FieldNames {
        type Error = Captured;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Captured> {
            Err(Captured)
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Captured> {
            self.0.extend_from_slice(fields);
            Err(Captured)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut names = FieldNames(Vec::new());
    let _ = T::deserialize(&mut names);
    names.0.into_iter().map(str::to_owned).collect()
}

/// `--env-schema`: the contract as JSON.
#[derive(Debug, Serialize)]
pub struct Schema {
    pub job: &'static str,
    pub version: &'static str,
    pub variables: Vec<SchemaVar>,
}

#[derive(Debug, Serialize)]
pub struct SchemaVar {
    pub name: &'static str,
    pub required: bool,
    pub default: Option<&'static str>,
    pub secret: bool,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<&'static [&'static str]>,
    pub aliases: &'static [&'static str],
    pub flag: String,
    pub help: &'static str,
}

pub fn schema(job: &'static str, version: &'static str, vars: &'static [EnvVar]) -> Schema {
    let variables = vars
        .iter()
        .chain(crate::kit_vars())
        .map(|v| SchemaVar {
            name: v.name,
            required: v.presence == Presence::Required,
            default: match v.presence {
                Presence::Default(d) => Some(d),
                _ => None,
            },
            secret: v.secret,
            kind: v.kind.schema_name(),
            choices: match v.kind {
                Kind::Choice(words) => Some(words),
                _ => None,
            },
            aliases: v.aliases,
            flag: format!("--{}", v.long_flag()),
            help: v.help,
        })
        .collect();
    Schema {
        job,
        version,
        variables,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    struct Sample {
        api_url: crate::Secret<url::Url>,
        retries: u32,
        mode: String,
        label: Option<String>,
    }

    const VARS: &[EnvVar] = &[
        EnvVar::new("API_URL", Kind::HttpUrl, "where")
            .required()
            .secret(),
        EnvVar::new("RETRIES", Kind::Integer { min: 1, max: 10 }, "how many").default("3"),
        EnvVar::new("MODE", Kind::Choice(&["fast", "safe"]), "how")
            .required()
            .aliases(&["OLD_MODE"]),
        EnvVar::new("LABEL", Kind::Text, "what"),
    ];

    fn sources(pairs: &[(&str, &str)]) -> Sources {
        Sources {
            flags: BTreeMap::new(),
            env: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn loads_defaults_aliases_and_secrets() {
        let config: Sample = load(
            VARS,
            &sources(&[("API_URL", "https://x.test/h/abc"), ("OLD_MODE", "safe")]),
        )
        .unwrap();
        assert_eq!(config.retries, 3);
        assert_eq!(config.mode, "safe");
        assert_eq!(config.label, None);
        assert_eq!(config.api_url.expose().as_str(), "https://x.test/h/abc");
    }

    #[test]
    fn flags_win_over_environment() {
        let mut s = sources(&[("API_URL", "https://x.test/"), ("MODE", "fast")]);
        s.flags.insert("MODE", "safe".into());
        let config: Sample = load(VARS, &s).unwrap();
        assert_eq!(config.mode, "safe");
    }

    #[test]
    fn reports_every_problem_at_once_without_secret_values() {
        let err = load::<Sample>(
            VARS,
            &sources(&[("API_URL", "ftp://user:topsecretpw@x"), ("RETRIES", "99")]),
        )
        .unwrap_err();
        let variables: Vec<_> = err.problems.iter().map(|p| p.variable).collect();
        assert_eq!(variables, ["API_URL", "RETRIES", "MODE"]);
        let text = err.to_string();
        assert!(
            text.contains("invalid configuration (3 problems)"),
            "{text}"
        );
        assert!(text.contains("RETRIES: expected a whole number from 1 to 10, got \"99\""));
        assert!(text.contains("MODE: is required but not set (one of fast, safe)"));
        assert!(!text.contains("topsecretpw"), "{text}");
    }

    #[test]
    fn empty_values_count_as_unset() {
        let err = load::<Sample>(VARS, &sources(&[("API_URL", ""), ("MODE", "fast")])).unwrap_err();
        assert_eq!(err.problems[0].variable, "API_URL");
    }

    #[test]
    fn contract_mismatch_is_refused() {
        let vars = &VARS[..3];
        let err = check_contract::<Sample>(vars).unwrap_err();
        assert!(err.contains("\"label\""), "{err}");
        assert!(check_contract::<Sample>(VARS).is_ok());
    }

    #[test]
    fn kinds_check_their_values() {
        assert!(Kind::Date.check("2024-02-29").is_ok());
        assert!(Kind::Date.check("2023-02-29").is_err());
        assert!(Kind::Date.check("2023-2-28").is_err());
        assert!(Kind::Timestamp.check("2026-11-26T00:00:00+00:00").is_ok());
        assert!(Kind::Timestamp.check("2026-11-26T00:00:00.123456Z").is_ok());
        assert!(Kind::Timestamp.check("2026-11-26").is_err());
        assert!(Kind::Seconds.check("0.5").is_ok());
        assert!(Kind::Seconds.check("0").is_err());
        assert!(Kind::Seconds.check("0.001").is_ok());
        assert!(Kind::Seconds.check("604800").is_ok());
        for out_of_bounds in ["0.0009", "604800.5", "1e300", "inf", "NaN", "-1"] {
            assert!(
                Kind::Seconds.check(out_of_bounds).is_err(),
                "{out_of_bounds}"
            );
        }
        assert!(Kind::HttpUrl.check("mailto:x@y").is_err());
        for taken in [
            "https://xy12345.snowflakecomputing.com",
            "http://127.0.0.1:8080",
            "http://127.9.9.9/hooks/key",
            "http://[::1]:9/",
            "http://localhost:8080/hooks/key",
        ] {
            assert!(Kind::CredentialUrl.check(taken).is_ok(), "{taken}");
        }
        for refused in [
            "http://xy12345.snowflakecomputing.com",
            "http://10.0.0.5/hooks/key",
            "http://[2001:db8::1]/",
            "http://no-such-host.invalid/hooks/key",
            "ftp://127.0.0.1/",
            "mailto:x@y",
        ] {
            let err = Kind::CredentialUrl.check(refused).unwrap_err();
            assert!(err.contains("clear text"), "{refused}: {err}");
        }
        assert!(Kind::Bool.check("yes").is_err());
    }

    #[test]
    fn schema_lists_job_and_common_variables() {
        let schema = schema("sample", "1.0.0", VARS);
        let names: Vec<_> = schema.variables.iter().map(|v| v.name).collect();
        // The job's own, then the kit's: logging and status, run context, metrics, lineage.
        assert_eq!(
            names[..7],
            [
                "API_URL",
                "RETRIES",
                "MODE",
                "LABEL",
                "LOG_FORMAT",
                "LOG_LEVEL",
                "JOB_STATUS_FILE"
            ]
        );
        for kit in [
            "AIRFLOW_CTX_DAG_ID",
            "PROMETHEUS_PUSHGATEWAY_URL",
            "OPENLINEAGE_URL",
        ] {
            assert!(names.contains(&kit), "{kit} missing from {names:?}");
        }
        assert_eq!(names.len(), 7 + crate::run::VARS.len() + 2 + 8);
        let json = serde_json::to_value(&schema).unwrap();
        assert_eq!(json["variables"][0]["secret"], true);
        assert_eq!(json["variables"][0]["required"], true);
        assert_eq!(json["variables"][1]["default"], "3");
        assert_eq!(json["variables"][2]["choices"][1], "safe");
        assert_eq!(json["variables"][2]["flag"], "--mode");
    }
}
