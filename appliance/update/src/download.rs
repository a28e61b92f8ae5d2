//! HTTP(S) downloads with resume: a bundle is fetched into a staging file on the data
//! partition; a broken transfer continues from the bytes already there (HTTP Range, with
//! If-Range on the validator the server gave), so a flaky line never starts over.
//!
//! hyper's client (already in the tree for the server) with rustls on ring; the trusted
//! roots are Mozilla's (webpki-roots, built in: the image carries no CA bundle) plus an
//! optional extra PEM file for a private channel or a test CA.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;

use crate::error::UpdateError;

/// No byte for this long: the transfer is broken (it resumes on the next attempt).
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_REDIRECTS: usize = 5;
/// Largest channel index read.
pub const MAX_INDEX_BYTES: usize = 1 << 20;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// What a staged download was of, so a resume never mixes two files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Partial {
    url: String,
    /// ETag or Last-Modified of the first response, for If-Range.
    #[serde(default)]
    validator: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Downloader {
    client: HttpsClient,
}

impl Downloader {
    /// A client trusting Mozilla's roots and, if given, the certificates of `extra_ca`.
    pub fn new(extra_ca: Option<&Path>) -> Result<Downloader, UpdateError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = extra_ca {
            let pem = std::fs::read(path).map_err(UpdateError::read(path))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(UpdateError::read(path))?;
                roots.add(cert).map_err(|e| UpdateError::Download {
                    url: path.display().to_string(),
                    reason: format!("bad CA certificate: {e}"),
                })?;
            }
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| UpdateError::Download {
                url: String::new(),
                reason: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Downloader {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// GETs `url` following redirects, with an optional Range start and If-Range.
    async fn get(
        &self,
        url: &str,
        from: u64,
        validator: Option<&str>,
    ) -> Result<(String, http::Response<hyper::body::Incoming>), UpdateError> {
        let mut current = url.to_owned();
        for _ in 0..=MAX_REDIRECTS {
            let uri: Uri = current.parse().map_err(|e| bad(&current, format!("{e}")))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) {
                return Err(bad(&current, "only http and https URLs".into()));
            }
            let mut request = Request::get(uri).header(header::USER_AGENT, "percloud-update");
            if from > 0 {
                request = request.header(header::RANGE, format!("bytes={from}-"));
                if let Some(v) = validator {
                    request = request.header(header::IF_RANGE, v);
                }
            }
            let request = request
                .body(Empty::new())
                .map_err(|e| bad(&current, e.to_string()))?;
            let response = tokio::time::timeout(CONNECT_TIMEOUT * 2, self.client.request(request))
                .await
                .map_err(|_| bad(&current, "no answer".into()))?
                .map_err(|e| bad(&current, error_chain(&e)))?;
            if response.status().is_redirection() {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| bad(&current, "redirect without Location".into()))?;
                current = crate::channel::resolve(&current, location)?;
                continue;
            }
            return Ok((current, response));
        }
        Err(bad(url, "too many redirects".into()))
    }

    /// A small document (the channel index), at most [`MAX_INDEX_BYTES`].
    pub async fn fetch_small(&self, url: &str) -> Result<Vec<u8>, UpdateError> {
        let (_, response) = self.get(url, 0, None).await?;
        if response.status() != StatusCode::OK {
            return Err(bad(url, format!("server answered {}", response.status())));
        }
        let mut body = response.into_body();
        let mut out = Vec::new();
        while let Some(frame) = next_frame(&mut body, url).await? {
            out.extend_from_slice(&frame);
            if out.len() > MAX_INDEX_BYTES {
                return Err(bad(url, "larger than an index can be".into()));
            }
        }
        Ok(out)
    }

    /// Downloads `url` into `target`, resuming a partial file left by an earlier attempt at
    /// the same URL. `progress` gets (bytes so far, total when known). At most `max_bytes`.
    pub async fn fetch_to_file(
        &self,
        url: &str,
        target: &Path,
        max_bytes: u64,
        progress: &mut (dyn FnMut(u64, Option<u64>) + Send),
    ) -> Result<(), UpdateError> {
        let sidecar = sidecar(target);
        let partial = read_partial(&sidecar)
            .filter(|p| p.url == url)
            .map(|p| (p, file_len(target)))
            .filter(|(_, len)| *len > 0);
        let (from, validator) = match &partial {
            Some((p, len)) => (*len, p.validator.clone()),
            None => (0, None),
        };
        let (_, response) = self.get(url, from, validator.as_deref()).await?;
        let status = response.status();
        let (append, start) = match status {
            StatusCode::PARTIAL_CONTENT if from > 0 => {
                let start = content_range_start(response.headers().get(header::CONTENT_RANGE));
                if start != Some(from) {
                    return Err(bad(url, "the server resumed at the wrong offset".into()));
                }
                (true, from)
            }
            StatusCode::OK => (false, 0),
            StatusCode::RANGE_NOT_SATISFIABLE if from > 0 => {
                // The partial file is as long as the resource or longer: start over.
                let _ = std::fs::remove_file(target);
                let _ = std::fs::remove_file(&sidecar);
                return Box::pin(self.fetch_to_file(url, target, max_bytes, progress)).await;
            }
            other => return Err(bad(url, format!("server answered {other}"))),
        };
        let total = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|len| start + len);
        if total.is_some_and(|t| t > max_bytes) {
            return Err(bad(url, format!("larger than {max_bytes} bytes")));
        }
        if !append {
            let validator = validator_of(response.headers());
            write_partial(
                &sidecar,
                &Partial {
                    url: url.to_owned(),
                    validator,
                },
            )?;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(target)
            .await
            .map_err(UpdateError::write(target))?;
        let mut done = start;
        progress(done, total);
        let mut body = response.into_body();
        let received = async {
            while let Some(data) = next_frame(&mut body, url).await? {
                done += data.len() as u64;
                if done > max_bytes {
                    return Err(bad(url, format!("larger than {max_bytes} bytes")));
                }
                file.write_all(&data)
                    .await
                    .map_err(UpdateError::write(target))?;
                progress(done, total);
            }
            Ok(())
        }
        .await;
        // Whatever arrived is kept (flushed and synced) for the next attempt to resume from.
        let flushed = async {
            file.flush().await?;
            file.sync_all().await
        }
        .await;
        received?;
        flushed.map_err(UpdateError::write(target))?;
        if total.is_some_and(|t| t != done) {
            return Err(bad(
                url,
                format!("transfer ended at {done} of {total:?} bytes"),
            ));
        }
        let _ = std::fs::remove_file(&sidecar);
        Ok(())
    }
}

async fn next_frame(
    body: &mut hyper::body::Incoming,
    url: &str,
) -> Result<Option<Bytes>, UpdateError> {
    loop {
        let frame = tokio::time::timeout(STALL_TIMEOUT, body.frame())
            .await
            .map_err(|_| bad(url, format!("no data for {} s", STALL_TIMEOUT.as_secs())))?;
        match frame {
            None => return Ok(None),
            Some(Err(e)) => return Err(bad(url, error_chain(&e))),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

fn bad(url: &str, reason: String) -> UpdateError {
    UpdateError::Download {
        url: url.to_owned(),
        reason,
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

fn validator_of(headers: &http::HeaderMap) -> Option<String> {
    let strong_etag = headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.starts_with("W/"));
    strong_etag
        .or_else(|| {
            headers
                .get(header::LAST_MODIFIED)
                .and_then(|v| v.to_str().ok())
        })
        .map(str::to_owned)
}

fn content_range_start(value: Option<&HeaderValue>) -> Option<u64> {
    let text = value?.to_str().ok()?;
    let range = text.strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}

fn sidecar(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".source.json");
    PathBuf::from(name)
}

fn read_partial(path: &Path) -> Option<Partial> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn write_partial(path: &Path, partial: &Partial) -> Result<(), UpdateError> {
    let bytes = serde_json::to_vec(partial).map_err(|e| UpdateError::State {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    std::fs::write(path, bytes).map_err(UpdateError::write(path))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests;
