//! RSA keys for key-pair login tests, made with openssl the way Snowflake's docs tell users to
//! make them ("Key-pair authentication and key-pair rotation").

use std::io::Write as _;
use std::process::{Command, Stdio};

/// Runs `openssl args…` with `input` on stdin; returns its stdout. openssl is a CI requirement
/// (`.ci/run` installs it), so a missing one fails the test.
pub fn openssl(args: &[&str], input: &str) -> String {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed (.ci/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `openssl genrsa <bits> | openssl pkcs8 -topk8 -inform PEM -nocrypt`: an unencrypted PKCS#8
/// PEM private key (rsa_key.p8 in the docs).
pub fn rsa_private_key(bits: u32) -> String {
    let rsa = openssl(&["genrsa", &bits.to_string()], "");
    openssl(&["pkcs8", "-topk8", "-inform", "PEM", "-nocrypt"], &rsa)
}

/// `openssl rsa -pubout` of a private key: the PEM public key (rsa_key.pub).
pub fn public_pem(private_pem: &str) -> String {
    openssl(&["rsa", "-pubout"], private_pem)
}

/// What `ALTER USER … SET RSA_PUBLIC_KEY = '…'` takes: the public PEM without its delimiters.
pub fn public_key_for_alter_user(private_pem: &str) -> String {
    public_pem(private_pem)
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect()
}
