//! What a connection needs: the account and the credentials, the session context to work in,
//! and where Snowflake is. Jobs fill this from their own variables (`SNOWFLAKE_LOAD_*`,
//! `PERMISSION_BOT_*`); this module only checks it and derives the URLs.

use std::time::Duration;

use job_kit::retry::Policy;
use url::Url;

use crate::credential::Credential;
use crate::error::Error;

/// The host every account has unless it is reached some other way (PrivateLink, a test server).
const DEFAULT_DOMAIN: &str = "snowflakecomputing.com";

/// How to connect. Build with [`ConnectOptions::new`], then set the fields that apply.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The account identifier as in its URL: `xy12345.us-east-1`, `myorg-myaccount`.
    pub account: String,
    pub user: String,
    /// A key pair, a programmatic access token or a password.
    pub credential: Credential,
    /// Session context, each applied with `USE ...` after login (an error names the one that
    /// failed). Names are read as [`crate::quote_ident`] reads them: `loader` means LOADER.
    pub role: Option<String>,
    pub warehouse: Option<String>,
    pub database: Option<String>,
    pub schema: Option<String>,
    /// Where Snowflake is, as `scheme://host[:port]`, instead of
    /// `https://<account>.snowflakecomputing.com`: PrivateLink endpoints, proxies, tests.
    pub base_url: Option<Url>,
    /// The longest a statement may take, retries and waiting for its result included; past it
    /// the statement is aborted on the server. [`crate::Statement::timeout`] overrides it.
    pub query_timeout: Duration,
    /// Retries of transient failures: the login, and statements that cannot have run yet (or
    /// that are idempotent).
    pub retry: Policy,
    /// The session's `QUERY_TAG`, set at login: the query history then attributes every
    /// statement to it. By default the job's run context ([`job_kit::run::RunContext::query_tag`]).
    pub query_tag: Option<String>,
}

impl ConnectOptions {
    pub fn new(
        account: impl Into<String>,
        user: impl Into<String>,
        credential: Credential,
    ) -> Self {
        ConnectOptions {
            account: account.into(),
            user: user.into(),
            credential,
            role: None,
            warehouse: None,
            database: None,
            schema: None,
            base_url: None,
            query_timeout: Duration::from_secs(3600),
            retry: Policy::default(),
            query_tag: job_kit::run::current().map(job_kit::run::RunContext::query_tag),
        }
    }

    /// Checks the settings and returns the base URL requests go to.
    pub(crate) fn validate(&self) -> Result<Url, Error> {
        let account = self.account.trim();
        if account.is_empty() {
            return Err(Error::InvalidOptions(
                "the account identifier is empty".into(),
            ));
        }
        if !account
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(Error::InvalidOptions(format!(
                "the account identifier {account:?} may hold only letters, digits, '-', '_' and \
                 '.' (as in xy12345.us-east-1 or myorg-myaccount)"
            )));
        }
        if self.user.trim().is_empty() {
            return Err(Error::InvalidOptions("the user name is empty".into()));
        }
        if let Credential::Password(secret) | Credential::AccessToken(secret) = &self.credential
            && secret.expose().is_empty()
        {
            return Err(Error::InvalidOptions(format!(
                "the {} is empty",
                self.credential.describe()
            )));
        }
        if self.query_timeout.is_zero() {
            return Err(Error::InvalidOptions("the query timeout is zero".into()));
        }
        match &self.base_url {
            Some(url) => base_url_override(url),
            None => default_base_url(account),
        }
    }

    /// The account name of the login request and of a key-pair JWT: [`login_account_name`].
    pub(crate) fn account_name(&self) -> &str {
        login_account_name(&self.account)
    }
}

/// The account name Snowflake's Python connector sends at login and names in a key-pair JWT,
/// by its own rule (`snowflake.connector.util_text.parse_account`): an identifier with a `.`
/// is cut at it (`xy12345` of `xy12345.us-east-1`), and when the second part is `global`
/// (`xy12345-abc.global`) the first part also loses its last `-` and what follows, the
/// external ID (`xy12345`). Without a `-` there, Python's `rfind` gives -1 and the slice drops
/// the last character: kept, so that both name the same account.
pub fn login_account_name(account: &str) -> &str {
    let account = account.trim();
    let mut parts = account.split('.');
    let first = parts.next().unwrap_or(account);
    match parts.next() {
        None => account,
        Some("global") => match first.rfind('-') {
            Some(dash) => &first[..dash],
            None => {
                let mut chars = first.char_indices();
                chars.next_back().map_or(first, |(last, _)| &first[..last])
            }
        },
        Some(_) => first,
    }
}

/// `https://<account>.snowflakecomputing.com/`.
pub fn default_base_url(account: &str) -> Result<Url, Error> {
    Url::parse(&format!("https://{account}.{DEFAULT_DOMAIN}/"))
        .map_err(|e| Error::InvalidOptions(format!("account {account:?} gives no valid URL: {e}")))
}

/// An override must say only where Snowflake is: scheme, host and port.
fn base_url_override(url: &Url) -> Result<Url, Error> {
    let shown = job_kit::secret::redacted_url(url);
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::InvalidOptions(format!(
            "the base URL {shown} is not an http(s) URL with a host"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::InvalidOptions(format!(
            "the base URL {shown} holds credentials; give only scheme://host[:port]"
        )));
    }
    if (url.path() != "/" && !url.path().is_empty())
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(Error::InvalidOptions(format!(
            "the base URL {shown} has a path or query; give only scheme://host[:port]"
        )));
    }
    let mut base = url.clone();
    base.set_path("/");
    Ok(base)
}

/// The host the `snowflake-api` crate builds its URLs with for this account name; the HTTP
/// middleware sends those requests to the base URL instead.
pub(crate) fn crate_host(account_name: &str) -> String {
    format!("{}.{DEFAULT_DOMAIN}", account_name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use job_kit::Secret;

    fn options() -> ConnectOptions {
        ConnectOptions::new(
            "xy12345.us-east-1",
            "etl",
            Credential::Password(Secret::new("pw-123456".into())),
        )
    }

    #[test]
    fn default_url_is_the_account_host() {
        let url = options().validate().unwrap();
        assert_eq!(
            url.as_str(),
            "https://xy12345.us-east-1.snowflakecomputing.com/"
        );
        assert_eq!(options().account_name(), "xy12345");
        for (identifier, name) in [
            ("myorg-myaccount", "myorg-myaccount"),
            ("xy12345.us-east-1", "xy12345"),
            ("xy12345.us-east-1.aws", "xy12345"),
            ("xy12345-abc.global", "xy12345"),
            ("myorg-myaccount-ext.global", "myorg-myaccount"),
            ("xy12345.us-east-1.global", "xy12345"),
            ("abc.global", "ab"),
        ] {
            assert_eq!(login_account_name(identifier), name, "{identifier}");
        }
        assert_eq!(crate_host("XY12345"), "xy12345.snowflakecomputing.com");
    }

    #[test]
    fn override_takes_scheme_host_and_port_only() {
        let mut o = options();
        o.base_url = Some(Url::parse("http://127.0.0.1:8080").unwrap());
        assert_eq!(o.validate().unwrap().as_str(), "http://127.0.0.1:8080/");
        o.base_url =
            Some(Url::parse("https://xy12345.privatelink.snowflakecomputing.com/").unwrap());
        assert_eq!(
            o.validate().unwrap().as_str(),
            "https://xy12345.privatelink.snowflakecomputing.com/"
        );
        for bad in [
            "ftp://host",
            "https://host/some/path",
            "https://host/?x=1",
            "https://u:secret-pw@host",
        ] {
            o.base_url = Some(Url::parse(bad).unwrap());
            let err = o.validate().unwrap_err().to_string();
            assert!(err.contains("base URL"), "{bad}: {err}");
            assert!(!err.contains("secret-pw"), "{err}");
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let mut o = options();
        o.account = "bad account/x".into();
        assert!(
            o.validate()
                .unwrap_err()
                .to_string()
                .contains("account identifier")
        );
        let mut o = options();
        o.user = " ".into();
        assert!(o.validate().unwrap_err().to_string().contains("user name"));
        let mut o = options();
        o.credential = Credential::Password(Secret::new(String::new()));
        assert!(
            o.validate()
                .unwrap_err()
                .to_string()
                .contains("password is empty")
        );
    }
}
