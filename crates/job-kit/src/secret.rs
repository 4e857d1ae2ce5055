//! Secret values and the redaction that keeps them out of logs and errors.
//!
//! Two lines of defence: a [`Secret`] never shows its value through `Debug` or `Display`, and
//! every secret value the job loads is registered here so that [`redact`] (applied to every log
//! line and to the final error) replaces it wherever it turns up, e.g. inside a driver's error
//! message that quotes a connection string.

use std::borrow::Cow;
use std::fmt;
use std::sync::RwLock;

use serde::{Deserialize, Deserializer};

/// What a redacted value is replaced with.
pub const MASK: &str = "***";

/// Values shorter than this are not registered: masking every `a` or `1` in a log would destroy
/// the log and protect nothing.
const MIN_SECRET_LEN: usize = 4;

static REGISTERED: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// A value that must not be shown. `Debug` and `Display` print `***`; [`Secret::expose`] is the
/// one way to the value, so every use of it is greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret)
    }
}

impl Secret<url::Url> {
    /// The URL with its password and path hidden, for messages that must say where a job
    /// connects (`postgres://app:***@db.example.com:5432/***`). A webhook's secret is its path,
    /// a database URL's its password: both go.
    pub fn redacted(&self) -> String {
        redacted_url(&self.0)
    }
}

/// See [`Secret::<url::Url>::redacted`].
pub fn redacted_url(url: &url::Url) -> String {
    let mut out = format!("{}://", url.scheme());
    if !url.username().is_empty() {
        out.push_str(url.username());
        if url.password().is_some() {
            out.push(':');
            out.push_str(MASK);
        }
        out.push('@');
    }
    if let Some(host) = url.host_str() {
        out.push_str(host);
    }
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    if url.path() != "/" && !url.path().is_empty() {
        out.push('/');
        out.push_str(MASK);
    }
    out
}

/// Registers a secret value, and the forms it takes once escaped or encoded, for [`redact`].
pub fn register(value: &str) {
    let mut forms = vec![value.to_owned()];
    // Log lines are JSON in pods: a value with quotes or backslashes appears escaped there.
    let json = serde_json::to_string(value).unwrap_or_default();
    forms.push(json.trim_matches('"').to_owned());
    if let Ok(url) = url::Url::parse(value) {
        // A webhook's key is its last path segment; a server's error page may quote the path
        // without the host. Only for http(s): a database URL's path is a database name.
        if let Some(key) = matches!(url.scheme(), "http" | "https")
            .then_some(&url)
            .and_then(|url| url.path_segments())
            .and_then(|mut s| s.rfind(|s| s.len() >= 8))
        {
            forms.push(key.to_owned());
        }
        if let Some(password) = url.password() {
            forms.push(password.to_owned());
            if let Ok(decoded) = percent_encoding::percent_decode_str(password).decode_utf8() {
                forms.push(decoded.into_owned());
            }
        }
    }
    let mut registered = REGISTERED.write().unwrap_or_else(|e| e.into_inner());
    for form in forms {
        if form.chars().count() >= MIN_SECRET_LEN && !registered.contains(&form) {
            registered.push(form);
        }
    }
    // Longest first, so that a secret containing another is masked whole.
    registered.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Replaces every registered secret in `text` with [`MASK`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let registered = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for secret in registered.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    out
}

/// Whether a variable's name says it holds a credential (`*_PASSWORD`, `API_TOKEN`,
/// `AWS_SECRET_ACCESS_KEY`, `*_PRIVATE_KEY`...), for values read by a name the job's table
/// does not list (a catalog's `{env:NAME}`).
pub fn is_credential_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    CREDENTIAL_WORDS.iter().any(|w| lower.contains(w)) || lower.contains("private_key")
}

/// Words that mark the value after them (`password=...`, `"token": "..."`) as a credential.
const CREDENTIAL_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "access_key",
    "credential",
];

/// [`redact`], and also credentials the job was never told about: the password in any
/// `scheme://user:password@host`, and the value after a credential word and `=` or `:`. For
/// text that comes from outside (an error message from a task, a driver, a server).
pub fn scrub(text: &str) -> String {
    mask_credential_values(&mask_url_passwords(&redact(text)))
}

fn mask_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let authority_end = after
            .find(|c: char| c.is_whitespace() || "/?#\"'<>`".contains(c))
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    out.push_str(rest);
    out
}

fn mask_credential_values(text: &str) -> String {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(is_word) {
        let word_len = rest[start..]
            .find(|c: char| !is_word(c))
            .unwrap_or(rest.len() - start);
        let word = &rest[start..start + word_len];
        out.push_str(&rest[..start + word_len]);
        rest = &rest[start + word_len..];
        let lower = word.to_ascii_lowercase();
        if !CREDENTIAL_WORDS.iter().any(|w| lower.contains(w)) {
            continue;
        }
        // `word` then optional closing quote, spaces, `=` or `:`, spaces, optional opening quote.
        let sep_len = rest
            .char_indices()
            .find(|&(_, c)| !(c == '"' || c == '\'' || c == ' '))
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let Some(sep) = rest[sep_len..]
            .chars()
            .next()
            .filter(|c| *c == '=' || *c == ':')
        else {
            continue;
        };
        let after_sep = sep_len + sep.len_utf8();
        let value_start = after_sep
            + rest[after_sep..]
                .find(|c: char| !(c == ' ' || c == '"' || c == '\''))
                .unwrap_or(rest.len() - after_sep);
        let value_len = rest[value_start..]
            .find(|c: char| c.is_whitespace() || "\"',;&)}]".contains(c))
            .unwrap_or(rest.len() - value_start);
        if value_len == 0 || rest[after_sep..].starts_with("//") {
            continue;
        }
        out.push_str(&rest[..value_start]);
        out.push_str(MASK);
        rest = &rest[value_start + value_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let secret = Secret::new("hunter22".to_owned());
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(secret.expose(), "hunter22");
    }

    #[test]
    fn redacted_url_hides_password_and_path() {
        let url = url::Url::parse("postgres://app:s3cr%40t@db.example.com:5432/sales").unwrap();
        assert_eq!(
            redacted_url(&url),
            "postgres://app:***@db.example.com:5432/***"
        );
        let hook = url::Url::parse("https://chat.example.com/hooks/abc123").unwrap();
        assert_eq!(redacted_url(&hook), "https://chat.example.com/***");
    }

    #[test]
    fn registered_values_are_masked_in_every_form() {
        register("postgres://app:pa%24%24word-x@db:5432/sales");
        let text =
            "connect to postgres://app:pa%24%24word-x@db:5432/sales failed; password pa$$word-x";
        let masked = redact(text);
        assert!(!masked.contains("pa$$word-x"), "{masked}");
        assert!(!masked.contains("pa%24%24word-x"), "{masked}");
        register("quote\"d-secret");
        assert_eq!(redact(r#"{"msg":"quote\"d-secret"}"#), r#"{"msg":"***"}"#);
    }

    #[test]
    fn short_values_are_not_registered() {
        register("ab");
        assert_eq!(redact("about"), "about");
    }

    #[test]
    fn scrub_masks_credentials_nobody_registered() {
        assert_eq!(
            scrub("could not connect to postgres://etl:Sup3r-s3cret@db.internal:5432/app"),
            "could not connect to postgres://etl:***@db.internal:5432/app"
        );
        assert_eq!(
            scrub("login failed: password=hunter22 user=etl; AWS_SECRET_ACCESS_KEY: abcd/ef+gh"),
            "login failed: password=*** user=etl; AWS_SECRET_ACCESS_KEY: ***"
        );
        assert_eq!(
            scrub(r#"{"api_token": "tok-123", "n": 1}"#),
            r#"{"api_token": "***", "n": 1}"#
        );
        let plain =
            "password authentication failed for user \"etl\" (see https://docs.invalid/a:b)";
        assert_eq!(scrub(plain), plain);
    }
}
