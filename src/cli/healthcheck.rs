//! `tokengate healthcheck`: a probe for containers, whose image has no shell or curl.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;

use crate::cli::client::{CliError, http_client};

/// Succeeds when `url` answers 2xx within `timeout`.
pub async fn run(url: &str, timeout: Duration) -> Result<(), CliError> {
    let req = http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .map_err(|e| CliError::Failed(format!("invalid URL {url}: {e}")))?;
    match tokio::time::timeout(timeout, http_client().request(req)).await {
        Err(_) => Err(CliError::Failed(format!("{url} did not answer within {timeout:?}"))),
        Ok(Err(e)) => Err(CliError::Failed(format!("{url}: {e}"))),
        Ok(Ok(r)) if r.status().is_success() => Ok(()),
        Ok(Ok(r)) => Err(CliError::Failed(format!("{url} answered {}", r.status()))),
    }
}
