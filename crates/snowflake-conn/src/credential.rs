//! How a job proves who it is: a key pair (the way for `TYPE = SERVICE` users, which cannot have
//! a password), a programmatic access token, or a password (still accepted for existing users).
//!
//! The `snowflake-api` crate is always told to log in with a placeholder password; the HTTP
//! middleware writes the real credential into each login request it sends ([`Credential::apply`]),
//! so a fresh, short-lived JWT goes with every login, the crate's own re-logins included, and the
//! crate never holds a secret.
//!
//! The JWT is the one Snowflake's connectors send (snowflake-connector-python's `AuthByKeyPair`):
//! RS256, `iss` = `<ACCOUNT>.<USER>.SHA256:<fingerprint>`, `sub` = `<ACCOUNT>.<USER>`, where the
//! fingerprint is the base64 SHA-256 of the public key's DER SubjectPublicKeyInfo (what `DESC USER`
//! shows as RSA_PUBLIC_KEY_FP), and a lifetime of [`JWT_LIFETIME_SECONDS`].

use std::path::Path;

use base64::Engine as _;
use job_kit::Secret;
use rsa::RsaPrivateKey;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How long a login's JWT is valid: what Snowflake's Python connector uses. Each login signs a
/// new one, so it only has to outlive the trip to Snowflake.
pub const JWT_LIFETIME_SECONDS: i64 = 60;
/// Snowflake's key-pair authentication takes RSA keys of at least 2048 bits; the signer (ring)
/// takes up to 4096 bits.
const MIN_KEY_BITS: usize = 2048;
const MAX_KEY_BITS: usize = 4096;
/// A PEM key file is a few kilobytes; anything much larger is not one.
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// The credential a connection logs in with.
#[derive(Debug, Clone)]
pub enum Credential {
    KeyPair(KeyPair),
    /// A programmatic access token (`ALTER USER … ADD PROGRAMMATIC ACCESS TOKEN`).
    AccessToken(Secret<String>),
    Password(Secret<String>),
}

impl Credential {
    pub fn describe(&self) -> &'static str {
        match self {
            Credential::KeyPair(_) => "key pair",
            Credential::AccessToken(_) => "programmatic access token",
            Credential::Password(_) => "password",
        }
    }

    /// Registers every secret form of the credential for log redaction.
    pub(crate) fn register_secrets(&self) {
        match self {
            // A key's text is registered when it is read (`KeyPair::parse`).
            Credential::KeyPair(_) => {}
            Credential::AccessToken(token) | Credential::Password(token) => {
                job_kit::secret::register(token.expose())
            }
        }
    }

    /// Writes the credential into a login request's `data`, as Snowflake's drivers do:
    /// `PASSWORD`, or `AUTHENTICATOR` with `TOKEN`. `account` is the login's ACCOUNT_NAME.
    pub(crate) fn apply(
        &self,
        data: &mut serde_json::Map<String, Value>,
        account: &str,
        user: &str,
        now_unix: i64,
    ) -> Result<(), String> {
        data.remove("PASSWORD");
        match self {
            Credential::Password(password) => {
                data.insert("PASSWORD".into(), password.expose().clone().into());
            }
            Credential::AccessToken(token) => {
                data.insert("AUTHENTICATOR".into(), "PROGRAMMATIC_ACCESS_TOKEN".into());
                data.insert("TOKEN".into(), token.expose().clone().into());
            }
            Credential::KeyPair(key) => {
                let jwt = key.jwt(account, user, now_unix)?;
                job_kit::secret::register(&jwt);
                data.insert("AUTHENTICATOR".into(), "SNOWFLAKE_JWT".into());
                data.insert("TOKEN".into(), jwt.into());
            }
        }
        Ok(())
    }
}

/// An RSA private key, checked and ready to sign.
#[derive(Clone)]
pub struct KeyPair {
    /// PKCS#1 DER, what the signer takes.
    pkcs1_der: Secret<Vec<u8>>,
    /// `SHA256:<base64>`, as in the JWT's `iss` and `DESC USER`'s RSA_PUBLIC_KEY_FP.
    fingerprint: String,
    /// The public key as `ALTER USER … SET RSA_PUBLIC_KEY = '…'` takes it (base64 DER).
    public_key: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// Reads a private key: PEM (`BEGIN PRIVATE KEY`, `BEGIN ENCRYPTED PRIVATE KEY`, `BEGIN RSA
    /// PRIVATE KEY`) or the base64 of its DER. An encrypted key needs `passphrase`; an
    /// unencrypted one refuses it, as Snowflake's connectors do. Messages never quote the key.
    pub fn parse(text: &str, passphrase: Option<&Secret<String>>) -> Result<KeyPair, String> {
        let text = text.trim();
        // Masked whole and line by line: a log that quotes part of a PEM quotes lines of it.
        job_kit::secret::register(text);
        for line in text.lines().filter(|l| !l.starts_with("-----")) {
            job_kit::secret::register(line.trim());
        }
        if let Some(pass) = passphrase {
            job_kit::secret::register(pass.expose());
        }
        let encrypted = text.contains("ENCRYPTED PRIVATE KEY");
        let key = if text.starts_with("-----BEGIN") {
            match (encrypted, passphrase) {
                (true, None) => {
                    return Err("the key is encrypted, but no passphrase is set".into());
                }
                (true, Some(pass)) => RsaPrivateKey::from_pkcs8_encrypted_pem(
                    text,
                    pass.expose().as_bytes(),
                )
                .map_err(|_| {
                    "cannot decrypt the key: wrong passphrase, or an encryption it does not know \
                     (PKCS#8 with AES or DES3, as `openssl pkcs8 -topk8` writes)"
                        .to_owned()
                })?,
                (false, Some(_)) => {
                    return Err("a passphrase is set, but the key is not encrypted".into());
                }
                (false, None) if text.starts_with("-----BEGIN RSA PRIVATE KEY") => {
                    RsaPrivateKey::from_pkcs1_pem(text)
                        .map_err(|e| format!("not a readable PKCS#1 RSA key ({e})"))?
                }
                (false, None) if text.starts_with("-----BEGIN PRIVATE KEY") => {
                    RsaPrivateKey::from_pkcs8_pem(text).map_err(|e| {
                        format!("not a readable RSA key ({e}); Snowflake takes RSA keys only")
                    })?
                }
                (false, None) => {
                    return Err("the PEM holds no private key (expected BEGIN PRIVATE KEY, \
                                BEGIN ENCRYPTED PRIVATE KEY or BEGIN RSA PRIVATE KEY)"
                        .into());
                }
            }
        } else {
            let compact: String = text.split_whitespace().collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|_| "neither a PEM key nor the base64 of a DER key".to_owned())?;
            match passphrase {
                Some(pass) => RsaPrivateKey::from_pkcs8_encrypted_der(&der, pass.expose())
                    .map_err(|_| "cannot decrypt the DER key with the passphrase".to_owned())?,
                None => RsaPrivateKey::from_pkcs8_der(&der)
                    .or_else(|_| RsaPrivateKey::from_pkcs1_der(&der))
                    .map_err(|_| {
                        "the base64 DER is not an unencrypted RSA private key".to_owned()
                    })?,
            }
        };
        Self::from_key(&key)
    }

    /// [`KeyPair::parse`] of a file, read up to [`MAX_KEY_FILE_BYTES`].
    pub fn read(path: &Path, passphrase: Option<&Secret<String>>) -> Result<KeyPair, String> {
        use std::io::Read as _;
        let file = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
        let mut text = String::new();
        file.take(MAX_KEY_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read it as text: {e}"))?;
        if text.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(format!(
                "it is larger than {MAX_KEY_FILE_BYTES} bytes; a key file is a few kilobytes"
            ));
        }
        Self::parse(&text, passphrase)
    }

    fn from_key(key: &RsaPrivateKey) -> Result<KeyPair, String> {
        let bits = key.size() * 8;
        if !(MIN_KEY_BITS..=MAX_KEY_BITS).contains(&bits) {
            return Err(format!(
                "the key has {bits} bits; Snowflake needs RSA keys of at least {MIN_KEY_BITS} \
                 (and this client signs with up to {MAX_KEY_BITS})"
            ));
        }
        let public = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| format!("cannot derive the public key: {e}"))?;
        let fingerprint = format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(public.as_bytes()))
        );
        let pkcs1 = key
            .to_pkcs1_der()
            .map_err(|e| format!("cannot encode the key: {e}"))?;
        let pair = KeyPair {
            pkcs1_der: Secret::new(pkcs1.as_bytes().to_vec()),
            fingerprint,
            public_key: base64::engine::general_purpose::STANDARD.encode(public.as_bytes()),
        };
        // Sign once now, so that a key the signer refuses fails at start, not at login.
        pair.jwt("CHECK", "CHECK", 0)?;
        Ok(pair)
    }

    /// `SHA256:<base64>`: compare with `DESC USER`'s RSA_PUBLIC_KEY_FP.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The public key in the form `ALTER USER … SET RSA_PUBLIC_KEY = '…'` takes.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The login JWT for `account` and `user`, issued at `now_unix`. Its names use the login's
    /// account name (`options::login_account_name`), upper-cased as the connectors do.
    pub(crate) fn jwt(&self, account: &str, user: &str, now_unix: i64) -> Result<String, String> {
        let qualified = format!(
            "{}.{}",
            crate::options::login_account_name(account).to_ascii_uppercase(),
            user.to_uppercase()
        );
        let claims = serde_json::json!({
            "iss": format!("{qualified}.{}", self.fingerprint),
            "sub": qualified,
            "iat": now_unix,
            "exp": now_unix + JWT_LIFETIME_SECONDS,
        });
        let key = jsonwebtoken::EncodingKey::from_rsa_der(self.pkcs1_der.expose());
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &key,
        )
        .map_err(|e| format!("cannot sign the login token with the key: {e}"))
    }
}

/// A user's RSA public key as `ALTER USER … SET RSA_PUBLIC_KEY = '…'` takes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PublicKey {
    /// The base64 of the DER SubjectPublicKeyInfo: a PEM without its delimiters.
    pub body: String,
    /// `SHA256:<base64>`, as `DESC USER` shows it (RSA_PUBLIC_KEY_FP).
    pub fingerprint: String,
}

impl PublicKey {
    /// Reads a public key given as PEM (`BEGIN PUBLIC KEY`, from `openssl rsa -pubout`) or as
    /// its base64 body. RSA, at least 2048 bits, as Snowflake requires.
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        use rsa::pkcs8::DecodePublicKey;
        let body: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("-----"))
            .flat_map(|line| line.split_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| "not a PEM public key or its base64 body".to_owned())?;
        let key = rsa::RsaPublicKey::from_public_key_der(&der).map_err(|_| {
            "not an RSA public key (SubjectPublicKeyInfo, as openssl rsa -pubout writes)".to_owned()
        })?;
        let bits = key.size() * 8;
        if bits < MIN_KEY_BITS {
            return Err(format!(
                "the key has {bits} bits; Snowflake needs at least {MIN_KEY_BITS}"
            ));
        }
        Ok(PublicKey {
            body,
            fingerprint: format!(
                "SHA256:{}",
                base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&der))
            ),
        })
    }
}

/// The names a job gives its credential variables (`SNOWFLAKE_LOAD_*`, `PERMISSION_BOT_*`).
#[derive(Debug, Clone, Copy)]
pub struct CredentialVars {
    pub private_key: &'static str,
    pub private_key_path: &'static str,
    pub passphrase: &'static str,
    pub token: &'static str,
    pub password: &'static str,
}

impl CredentialVars {
    /// `<prefix>PRIVATE_KEY`, `<prefix>PRIVATE_KEY_PATH`, `<prefix>PRIVATE_KEY_PASSPHRASE`,
    /// `<prefix>TOKEN`, `<prefix>PASSWORD`; the help text each job's table gives them.
    pub const HELP_PRIVATE_KEY: &'static str = "The user's RSA private key, PEM (PKCS#8, \
        encrypted or not) or base64 DER: key-pair login, the way for TYPE = SERVICE users";
    pub const HELP_PRIVATE_KEY_PATH: &'static str =
        "A file holding that key instead (a mounted Secret)";
    pub const HELP_PASSPHRASE: &'static str = "The passphrase of an encrypted private key";
    pub const HELP_TOKEN: &'static str =
        "A programmatic access token of the user, instead of a key";
    pub const HELP_PASSWORD: &'static str =
        "The user's password (users that still have one; not TYPE = SERVICE)";

    /// "one of A, B, C or D": what to set when no credential is.
    pub fn one_of(&self) -> String {
        format!(
            "one of {}, {}, {} or {}",
            self.private_key, self.private_key_path, self.token, self.password
        )
    }
}

/// The values set, by variable.
#[derive(Debug, Clone, Copy, Default)]
pub struct CredentialValues<'a> {
    pub private_key: Option<&'a Secret<String>>,
    pub private_key_path: Option<&'a Path>,
    pub passphrase: Option<&'a Secret<String>>,
    pub token: Option<&'a Secret<String>>,
    pub password: Option<&'a Secret<String>>,
}

/// A credential setting that cannot be used, with the variable to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialProblem {
    pub variable: &'static str,
    pub message: String,
}

impl CredentialValues<'_> {
    /// No credential variable is set at all (a passphrase alone counts as one).
    pub fn is_empty(&self) -> bool {
        self.private_key.is_none()
            && self.private_key_path.is_none()
            && self.passphrase.is_none()
            && self.token.is_none()
            && self.password.is_none()
    }
}

impl std::fmt::Display for CredentialProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

impl std::error::Error for CredentialProblem {}

/// The one credential the variables name. Exactly one way of logging in may be set: a Secret
/// holding a key and a password would leave it unclear which one Snowflake checks, so that is
/// refused, naming the variable to drop.
pub fn resolve(
    vars: &CredentialVars,
    values: CredentialValues<'_>,
) -> Result<Credential, CredentialProblem> {
    let problem = |variable, message: String| CredentialProblem { variable, message };
    let key_var = match (values.private_key, values.private_key_path) {
        (Some(_), Some(_)) => {
            return Err(problem(
                vars.private_key_path,
                format!(
                    "both {} and {} are set; set one",
                    vars.private_key, vars.private_key_path
                ),
            ));
        }
        (Some(_), None) => Some(vars.private_key),
        (None, Some(_)) => Some(vars.private_key_path),
        (None, None) => None,
    };
    let others = [
        (vars.token, values.token.is_some()),
        (vars.password, values.password.is_some()),
    ];
    let first = key_var.or_else(|| others.iter().find(|(_, set)| *set).map(|(name, _)| *name));
    let Some(first) = first else {
        return Err(problem(
            vars.private_key,
            format!("no credential is set: set {}", vars.one_of()),
        ));
    };
    if let Some((extra, _)) = others.iter().find(|(name, set)| *set && *name != first) {
        return Err(problem(
            extra,
            format!(
                "{first} is set too, and a login uses one credential; drop {extra} from the \
                 Secret"
            ),
        ));
    }
    if values.passphrase.is_some() && key_var.is_none() {
        return Err(problem(
            vars.passphrase,
            format!(
                "is set, but no {} or {} is",
                vars.private_key, vars.private_key_path
            ),
        ));
    }
    let empty = |var: &'static str| problem(var, "is set but empty".into());
    if let Some(text) = values.private_key {
        return KeyPair::parse(text.expose(), values.passphrase)
            .map(Credential::KeyPair)
            .map_err(|message| problem(vars.private_key, message));
    }
    if let Some(path) = values.private_key_path {
        return KeyPair::read(path, values.passphrase)
            .map(Credential::KeyPair)
            .map_err(|message| {
                problem(
                    vars.private_key_path,
                    format!("{}: {message}", path.display()),
                )
            });
    }
    if let Some(token) = values.token {
        if token.expose().is_empty() {
            return Err(empty(vars.token));
        }
        return Ok(Credential::AccessToken(token.clone()));
    }
    match values.password {
        Some(password) if password.expose().is_empty() => Err(empty(vars.password)),
        Some(password) => Ok(Credential::Password(password.clone())),
        None => unreachable!("a credential was found above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VARS: CredentialVars = CredentialVars {
        private_key: "X_PRIVATE_KEY",
        private_key_path: "X_PRIVATE_KEY_PATH",
        passphrase: "X_PRIVATE_KEY_PASSPHRASE",
        token: "X_TOKEN",
        password: "X_PASSWORD",
    };

    fn secret(value: &str) -> Secret<String> {
        Secret::new(value.to_owned())
    }

    use test_servers::keys::{openssl, public_pem};

    /// One 2048-bit key per test binary (openssl genrsa takes a moment).
    fn test_key() -> &'static str {
        static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        KEY.get_or_init(|| test_servers::keys::rsa_private_key(2048))
    }

    #[test]
    fn the_jwt_has_the_claims_snowflake_checks_and_verifies_with_the_public_key() {
        let pem = test_key();
        let pair = KeyPair::parse(pem, None).unwrap();
        let jwt = pair
            .jwt("xy12345.us-east-1", "loader", 1_700_000_000)
            .unwrap();
        let public_pem = public_pem(pem);
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let decoded = jsonwebtoken::decode::<Value>(
            &jwt,
            &jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()).unwrap(),
            &validation,
        )
        .unwrap();
        let claims = decoded.claims;
        assert_eq!(claims["sub"], "XY12345.LOADER");
        assert_eq!(
            claims["iss"],
            format!("XY12345.LOADER.{}", pair.fingerprint())
        );
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["exp"], 1_700_000_000 + JWT_LIFETIME_SECONDS);
        // What `ALTER USER … SET RSA_PUBLIC_KEY` takes: the PEM body of `openssl rsa -pubout`.
        assert_eq!(
            pair.public_key(),
            test_servers::keys::public_key_for_alter_user(pem)
        );
        // The fingerprint as Snowflake's docs compute it to compare with RSA_PUBLIC_KEY_FP.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pub.pem"), &public_pem).unwrap();
        let documented = std::process::Command::new("sh")
            .arg("-c")
            .arg("openssl rsa -pubin -in pub.pem -outform DER 2>/dev/null | openssl dgst -sha256 -binary | openssl enc -base64")
            .current_dir(dir.path())
            .output()
            .unwrap();
        let documented = String::from_utf8(documented.stdout).unwrap();
        assert_eq!(pair.fingerprint(), format!("SHA256:{}", documented.trim()));
        // A `.global` identifier names its account without the external ID, as the connector's
        // `parse_account` does (it once kept `XY12345-ABC`).
        for (account, named) in [
            ("xy12345-abc.global", "XY12345.LOADER"),
            ("xy12345.us-east-1", "XY12345.LOADER"),
            ("myorg-myaccount", "MYORG-MYACCOUNT.LOADER"),
        ] {
            let jwt = pair.jwt(account, "loader", 1_700_000_000).unwrap();
            let claims = jwt.split('.').nth(1).unwrap();
            let claims: serde_json::Value = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(claims)
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(claims["sub"], named, "{account}");
            assert_eq!(
                claims["iss"],
                format!("{named}.{}", pair.fingerprint()),
                "{account}"
            );
        }
    }

    #[test]
    fn encrypted_keys_need_their_passphrase_and_plain_ones_refuse_one() {
        let pem = test_key();
        let pass = secret("s3cret-pass");
        let plain = KeyPair::parse(pem, None).unwrap();
        // The docs' `-v2 des3`, and openssl's default (AES-256, PBKDF2 with SHA-256).
        let mut encrypted = String::new();
        for scheme in ["des3", "aes256"] {
            encrypted = openssl(
                &[
                    "pkcs8",
                    "-topk8",
                    "-v2",
                    scheme,
                    "-passout",
                    "pass:s3cret-pass",
                ],
                pem,
            );
            let from_encrypted = KeyPair::parse(&encrypted, Some(&pass)).unwrap();
            assert_eq!(
                from_encrypted.fingerprint(),
                plain.fingerprint(),
                "{scheme}"
            );
        }
        // `openssl genrsa` of OpenSSL 1.x writes PKCS#1
        let pkcs1 = openssl(&["rsa", "-traditional"], pem);
        assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY"));
        assert_eq!(
            KeyPair::parse(&pkcs1, None).unwrap().fingerprint(),
            plain.fingerprint()
        );
        let err = KeyPair::parse(&encrypted, None).unwrap_err();
        assert!(err.contains("encrypted"), "{err}");
        let err = KeyPair::parse(&encrypted, Some(&secret("wrong-pass"))).unwrap_err();
        assert!(err.contains("wrong passphrase"), "{err}");
        let err = KeyPair::parse(pem, Some(&pass)).unwrap_err();
        assert!(err.contains("not encrypted"), "{err}");
        // base64 DER, as Snowflake's Python connector also takes it
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert_eq!(
            KeyPair::parse(&b64, None).unwrap().fingerprint(),
            plain.fingerprint()
        );
        for bad in [
            "not a key",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        ] {
            let err = KeyPair::parse(bad, None).unwrap_err();
            assert!(!err.contains("AAAA"), "{err}");
        }
    }

    #[test]
    fn a_public_key_reads_as_pem_or_body_with_the_fingerprint_of_its_private_key() {
        let pem = test_key();
        let pair = KeyPair::parse(pem, None).unwrap();
        let public = public_pem(pem);
        let from_pem = PublicKey::parse(&public).unwrap();
        assert_eq!(from_pem.fingerprint, pair.fingerprint());
        assert_eq!(from_pem.body, pair.public_key());
        assert_eq!(PublicKey::parse(pair.public_key()).unwrap(), from_pem);
        assert!(PublicKey::parse("MIIB-not-base64").is_err());
        let small = public_pem(&test_servers::keys::rsa_private_key(1024));
        assert!(PublicKey::parse(&small).unwrap_err().contains("1024 bits"));
    }

    #[test]
    fn small_keys_are_refused() {
        let pem = test_servers::keys::rsa_private_key(1024);
        let err = KeyPair::parse(&pem, None).unwrap_err();
        assert!(err.contains("1024 bits"), "{err}");
    }

    #[test]
    fn one_credential_is_chosen_or_the_variable_to_drop_is_named() {
        let key = secret(test_key());
        let password = secret("pw-123456");
        let token = secret("pat-abcdef");
        let pass = secret("passphrase");

        let got = resolve(
            &VARS,
            CredentialValues {
                private_key: Some(&key),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(matches!(got, Credential::KeyPair(_)));
        let got = resolve(
            &VARS,
            CredentialValues {
                password: Some(&password),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(matches!(got, Credential::Password(_)));
        let got = resolve(
            &VARS,
            CredentialValues {
                token: Some(&token),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(matches!(got, Credential::AccessToken(_)));

        let err = resolve(
            &VARS,
            CredentialValues {
                private_key: Some(&key),
                password: Some(&password),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(err.variable, "X_PASSWORD");
        assert!(err.message.contains("drop X_PASSWORD"), "{err}");
        let err = resolve(
            &VARS,
            CredentialValues {
                token: Some(&token),
                password: Some(&password),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(err.variable, "X_PASSWORD");
        let err = resolve(
            &VARS,
            CredentialValues {
                private_key: Some(&key),
                private_key_path: Some(Path::new("/k.p8")),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(err.variable, "X_PRIVATE_KEY_PATH");
        let err = resolve(
            &VARS,
            CredentialValues {
                password: Some(&password),
                passphrase: Some(&pass),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(err.variable, "X_PRIVATE_KEY_PASSPHRASE");
        let err = resolve(&VARS, CredentialValues::default()).unwrap_err();
        assert!(err.message.contains("no credential"), "{err}");
        let shown = err.to_string();
        assert!(
            !shown.contains("pw-123456") && !shown.contains("BEGIN"),
            "{shown}"
        );
    }

    #[test]
    fn a_key_file_is_read_bounded_and_its_problems_name_the_variable_and_file() {
        let pem = test_key();
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("rsa_key.p8");
        std::fs::write(&good, pem).unwrap();
        let got = resolve(
            &VARS,
            CredentialValues {
                private_key_path: Some(&good),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(matches!(got, Credential::KeyPair(_)));
        let big = dir.path().join("big.p8");
        std::fs::write(&big, vec![b'A'; MAX_KEY_FILE_BYTES as usize + 10]).unwrap();
        let missing = dir.path().join("missing.p8");
        for path in [&big, &missing] {
            let err = resolve(
                &VARS,
                CredentialValues {
                    private_key_path: Some(path),
                    ..Default::default()
                },
            )
            .unwrap_err();
            assert_eq!(err.variable, "X_PRIVATE_KEY_PATH");
            assert!(err.message.contains(&path.display().to_string()), "{err}");
        }
    }

    #[test]
    fn apply_writes_what_snowflakes_drivers_send() {
        let mut data = serde_json::Map::new();
        data.insert("PASSWORD".into(), "placeholder".into());
        Credential::AccessToken(secret("pat-abcdef"))
            .apply(&mut data, "XY12345", "LOADER", 0)
            .unwrap();
        assert_eq!(data["AUTHENTICATOR"], "PROGRAMMATIC_ACCESS_TOKEN");
        assert_eq!(data["TOKEN"], "pat-abcdef");
        assert!(!data.contains_key("PASSWORD"));
        let pem = test_key();
        let mut data = serde_json::Map::new();
        Credential::KeyPair(KeyPair::parse(pem, None).unwrap())
            .apply(&mut data, "XY12345", "LOADER", 0)
            .unwrap();
        assert_eq!(data["AUTHENTICATOR"], "SNOWFLAKE_JWT");
        assert_eq!(data["TOKEN"].as_str().unwrap().split('.').count(), 3);
        let mut data = serde_json::Map::new();
        Credential::Password(secret("pw-123456"))
            .apply(&mut data, "XY12345", "LOADER", 0)
            .unwrap();
        assert_eq!(data["PASSWORD"], "pw-123456");
        assert!(!data.contains_key("AUTHENTICATOR"));
    }
}
