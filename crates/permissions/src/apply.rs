//! Executing a plan: one statement at a time in the plan's order, each outcome reported, and a
//! stop at the first failure that says exactly what was and was not applied. Statements are
//! never retried once sent: a GRANT that may have run is not worth the risk of a REVOKE's
//! twin running twice, and the next run's plan picks up whatever is left.
//!
//! New users get a generated password, which goes to stdout or to a file of mode 0600 once,
//! and is registered as a secret so that no log line or error can show it.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use snowflake_conn::Connection;
use tokio_util::sync::CancellationToken;

use crate::plan::{Change, Plan, Value};

/// Length of generated passwords: about 143 bits from 62 symbols.
const PASSWORD_LEN: usize = 24;
const PASSWORD_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A strong password Snowflake's default policy accepts (upper, lower and digit present).
pub fn generate_password() -> Result<String, getrandom::Error> {
    loop {
        let mut bytes = [0u8; PASSWORD_LEN * 2];
        getrandom::fill(&mut bytes)?;
        // Rejection sampling keeps every symbol equally likely (256 is not a multiple of 62).
        let limit = 256 - 256 % PASSWORD_ALPHABET.len();
        let password: String = bytes
            .iter()
            .filter(|b| usize::from(**b) < limit)
            .take(PASSWORD_LEN)
            .map(|b| char::from(PASSWORD_ALPHABET[usize::from(*b) % PASSWORD_ALPHABET.len()]))
            .collect();
        let complete = password.len() == PASSWORD_LEN
            && password.chars().any(|c| c.is_ascii_uppercase())
            && password.chars().any(|c| c.is_ascii_lowercase())
            && password.chars().any(|c| c.is_ascii_digit());
        if complete {
            return Ok(password);
        }
    }
}

/// Where generated passwords go.
#[derive(Debug)]
pub enum PasswordSink {
    Stdout,
    File { path: PathBuf, file: File },
}

impl PasswordSink {
    /// Opens (creating, mode 0600) the file before anything is applied, so that a user is
    /// never created with a password that cannot be written.
    pub fn open(path: Option<&Path>) -> std::io::Result<PasswordSink> {
        let Some(path) = path else {
            return Ok(PasswordSink::Stdout);
        };
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(path)?;
        // An existing file keeps its mode on open: make sure nobody else can read it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(PasswordSink::File {
            path: path.to_owned(),
            file,
        })
    }

    fn write(&mut self, user: &str, password: &str) -> std::io::Result<()> {
        match self {
            PasswordSink::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "password of new user {user}: {password} (they must change it at first login)"
                )?;
                out.flush()
            }
            PasswordSink::File { file, .. } => {
                writeln!(file, "{user}\t{password}")?;
                file.flush()
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            PasswordSink::Stdout => "stdout".into(),
            PasswordSink::File { path, .. } => path.display().to_string(),
        }
    }
}

/// What happened to each statement of a plan.
#[derive(Debug, Default)]
pub struct Outcome {
    pub applied: Vec<String>,
    /// The statement that failed, and why.
    pub failed: Option<(String, String)>,
    pub not_applied: Vec<String>,
    pub interrupted: bool,
}

impl Outcome {
    pub fn is_complete(&self) -> bool {
        self.failed.is_none() && self.not_applied.is_empty() && !self.interrupted
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total =
            self.applied.len() + self.not_applied.len() + usize::from(self.failed.is_some());
        if self.is_complete() {
            writeln!(f, "Applied all {total} statements.")?;
        } else if self.failed.is_some() {
            writeln!(
                f,
                "Stopped at a failure: {} of {total} statements applied, 1 failed, {} not applied.",
                self.applied.len(),
                self.not_applied.len()
            )?;
        } else {
            writeln!(
                f,
                "Interrupted: {} of {total} statements applied, {} not applied.",
                self.applied.len(),
                self.not_applied.len()
            )?;
        }
        for sql in &self.applied {
            writeln!(f, "  applied      {sql};")?;
        }
        if let Some((sql, error)) = &self.failed {
            writeln!(f, "  FAILED       {sql};")?;
            for line in error.lines() {
                writeln!(f, "               {line}")?;
            }
        }
        for sql in &self.not_applied {
            writeln!(f, "  not applied  {sql};")?;
        }
        Ok(())
    }
}

/// Runs the plan's statements in order; stops at the first failure or at cancellation.
pub async fn apply(
    connection: &Connection,
    plan: &Plan,
    passwords: &mut PasswordSink,
    cancel: &CancellationToken,
) -> Outcome {
    let mut outcome = Outcome::default();
    let total = plan.changes.len();
    let mut changes = plan.changes.iter().enumerate();
    for (i, change) in changes.by_ref() {
        let shown = change.sql();
        if cancel.is_cancelled() {
            outcome.interrupted = true;
            outcome.not_applied.push(shown);
            break;
        }
        let password = match generated_password(change) {
            Ok(p) => p,
            Err(error) => {
                outcome.failed = Some((shown, error));
                break;
            }
        };
        let sql = change.sql_with(password.as_deref());
        match connection.query(&sql).await {
            Ok(_) => {
                tracing::info!(statement = i + 1, of = total, "applied: {shown}");
                outcome.applied.push(shown);
                if let (Some(password), Change::CreateUser { user, .. }) = (&password, change)
                    && let Err(e) = passwords.write(user.as_str(), password)
                {
                    let error = format!(
                        "user {user} was created, but its password could not be written to {}: {e}; \
                         reset it by hand (ALTER USER ... SET PASSWORD)",
                        passwords.describe()
                    );
                    tracing::error!("{error}");
                    outcome.failed = Some(("(writing the password)".into(), error));
                    break;
                }
            }
            Err(e) => {
                let error = job_kit::secret::redact(&job_kit::exit::chain(&e)).into_owned();
                tracing::error!(statement = i + 1, of = total, "failed: {shown}: {error}");
                outcome.failed = Some((shown, error));
                break;
            }
        }
    }
    outcome.not_applied.extend(changes.map(|(_, c)| c.sql()));
    outcome
}

/// A new password when the change creates a user that gets one, registered as a secret first.
fn generated_password(change: &Change) -> Result<Option<String>, String> {
    let Change::CreateUser { settings, .. } = change else {
        return Ok(None);
    };
    if !settings.iter().any(|s| s.value == Value::GeneratedPassword) {
        return Ok(None);
    }
    let password = generate_password().map_err(|e| format!("cannot generate a password: {e}"))?;
    job_kit::secret::register(&password);
    Ok(Some(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_varied_and_random() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), PASSWORD_LEN);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert!(
            a.chars().any(|c| c.is_ascii_uppercase())
                && a.chars().any(|c| c.is_ascii_lowercase())
                && a.chars().any(|c| c.is_ascii_digit())
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_password_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwords.tsv");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut sink = PasswordSink::open(Some(&path)).unwrap();
        sink.write("JANE", "Secret123abc").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "JANE\tSecret123abc\n"
        );
    }
}
