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

/// Where the generated password of a new user goes: never to stdout or a log in clear text.
pub enum PasswordSink {
    /// Encrypted to the admin's age key; the armored ciphertext goes to stdout (the task log),
    /// which only the key's holder can read.
    Encrypted {
        recipient: Box<age::x25519::Recipient>,
    },
    /// A new file (mode 0600) on a mounted volume.
    File { path: PathBuf, file: File },
}

/// How a password may be delivered: `PERMISSIONS_PASSWORD_RECIPIENT` or `_FILE`.
#[derive(Debug, Clone)]
pub enum PasswordDelivery {
    Recipient(Box<age::x25519::Recipient>),
    File(PathBuf),
    None,
}

impl PasswordDelivery {
    /// From the two variables; exactly one may be set.
    pub fn from_config(
        recipient: Option<&str>,
        file: Option<&Path>,
    ) -> Result<PasswordDelivery, String> {
        match (recipient, file) {
            (Some(_), Some(_)) => Err(
                "PERMISSIONS_PASSWORD_RECIPIENT and PERMISSIONS_PASSWORD_FILE are both set; a \
                 password goes one way: unset one"
                    .into(),
            ),
            (Some(key), None) => key
                .trim()
                .parse::<age::x25519::Recipient>()
                .map(|r| PasswordDelivery::Recipient(Box::new(r)))
                .map_err(|e| {
                    format!(
                        "PERMISSIONS_PASSWORD_RECIPIENT is not an age public key (age1..., as \
                         age-keygen prints it): {e}"
                    )
                }),
            (None, Some(path)) => Ok(PasswordDelivery::File(path.to_owned())),
            (None, None) => Ok(PasswordDelivery::None),
        }
    }
}

impl PasswordSink {
    /// Opens the sink before anything is applied, so that a user is never created with a
    /// password that cannot be delivered. A file is created new (never an existing file,
    /// never through a symlink), mode 0600. `None` when no way is configured.
    pub fn open(delivery: &PasswordDelivery) -> std::io::Result<Option<PasswordSink>> {
        let path = match delivery {
            PasswordDelivery::None => return Ok(None),
            PasswordDelivery::Recipient(recipient) => {
                return Ok(Some(PasswordSink::Encrypted {
                    recipient: recipient.clone(),
                }));
            }
            PasswordDelivery::File(path) => path,
        };
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        }
        let file = options.open(path)?;
        Ok(Some(PasswordSink::File {
            path: path.to_owned(),
            file,
        }))
    }

    fn write(&mut self, user: &str, password: &str) -> std::io::Result<()> {
        match self {
            PasswordSink::Encrypted { recipient } => {
                let armored = age::encrypt_and_armor(
                    recipient.as_ref(),
                    format!("{user}\t{password}\n").as_bytes(),
                )
                .map_err(std::io::Error::other)?;
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "password of new user {user}, encrypted to PERMISSIONS_PASSWORD_RECIPIENT \
                     (decrypt: age -d -i <identity file>; they must change it at first login):\n\
                     {armored}"
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
            PasswordSink::Encrypted { .. } => "stdout, encrypted to the age recipient".into(),
            PasswordSink::File { path, .. } => path.display().to_string(),
        }
    }
}

/// Whether applying the plan creates a user with a generated password.
pub fn generates_passwords(plan: &Plan) -> bool {
    plan.changes.iter().any(|change| {
        matches!(change, Change::CreateUser { settings, .. }
            if settings.iter().any(|s| s.value == Value::GeneratedPassword))
    })
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
    mut passwords: Option<&mut PasswordSink>,
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
            Ok(Some(_)) if passwords.is_none() => {
                // Refused before anything is applied (`generates_passwords`): a safety net.
                outcome.failed = Some((shown, "no way to deliver its password is set".into()));
                break;
            }
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
                if let (Some(password), Change::CreateUser { user, .. }, Some(passwords)) =
                    (&password, change, passwords.as_deref_mut())
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
    fn the_password_file_is_new_private_and_never_a_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwords.tsv");
        let delivery = PasswordDelivery::File(path.clone());
        let mut sink = PasswordSink::open(&delivery).unwrap().unwrap();
        sink.write("JANE", "Secret123abc").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "JANE\tSecret123abc\n"
        );
        // An existing file (someone else may read it) and a symlink are refused.
        assert!(PasswordSink::open(&delivery).is_err());
        let target = dir.path().join("elsewhere");
        let link = dir.path().join("link.tsv");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(PasswordSink::open(&PasswordDelivery::File(link)).is_err());
        assert!(!target.exists());
    }

    #[test]
    fn a_recipient_must_be_an_age_public_key_and_only_one_way_is_set() {
        let key = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
        assert!(matches!(
            PasswordDelivery::from_config(Some(key), None),
            Ok(PasswordDelivery::Recipient(_))
        ));
        let err = PasswordDelivery::from_config(Some("not-a-key"), None).unwrap_err();
        assert!(err.contains("PERMISSIONS_PASSWORD_RECIPIENT"), "{err}");
        let err = PasswordDelivery::from_config(Some(key), Some(Path::new("/p.tsv"))).unwrap_err();
        assert!(err.contains("both set"), "{err}");
        assert!(matches!(
            PasswordDelivery::from_config(None, None),
            Ok(PasswordDelivery::None)
        ));
    }
}
