//! The kit's own HTTP: one POST to a server that watches runs (lineage, metrics), answered by
//! a status and at most a few hundred characters of why.

/// A client for the kit's reports. No timeout of its own: each report bounds its whole send
/// (one deadline, one message).
pub(crate) fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("data-jobs-kit/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| crate::exit::chain(&e.without_url()))
}

/// `url` as a base that `join` appends to (a path without its trailing slash would lose its
/// last segment).
pub(crate) fn with_slash(mut url: url::Url) -> url::Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

/// Sends `request`; `Err` says what failed: the connection, or the server's status and the
/// start of its answer.
pub(crate) async fn send(request: reqwest::RequestBuilder) -> Result<(), String> {
    let response = request
        .send()
        .await
        .map_err(|e| crate::exit::chain(&e.without_url()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    Err(format!("the server answered {status}: {}", body.trim()))
}
