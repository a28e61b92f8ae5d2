//! The `acme` worker: keeps a trusted certificate for the wanted domain, renewing it when
//! fewer than 30 days are left (or when asked), with backoff after failures.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use percloud_tls::CertResolver;
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::{AcmeConfig, AcmeError, AcmeFiles, obtain};

/// Renew when fewer than this many days are left.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Look again at least this often.
const RECHECK: Duration = Duration::from_secs(12 * 3600);
/// One order may take this long.
const ORDER_DEADLINE: Duration = Duration::from_secs(180);
const BACKOFF_FIRST: Duration = Duration::from_secs(30);
const BACKOFF_MAX: Duration = Duration::from_secs(6 * 3600);

/// What the admin page shows about the public certificate.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AcmeStatus {
    pub domain: Option<String>,
    /// Whether a publicly trusted certificate is served for the domain.
    pub trusted: bool,
    pub issuer: Option<String>,
    /// Expiry, Unix seconds.
    pub not_after: Option<u64>,
    pub last_attempt: Option<u64>,
    pub last_error: Option<String>,
    /// Shown prominently: renewal failing, or the fallback to the box's own certificate.
    pub warning: Option<String>,
    /// Certificates obtained since start.
    pub issued: u64,
    /// How long the last successful order took.
    pub last_order_ms: Option<u64>,
}

/// Runs ACME for one domain at a time; see [`AcmeWorker::run`].
#[derive(Debug)]
pub struct AcmeWorker {
    config: AcmeConfig,
    files: AcmeFiles,
    resolver: Arc<CertResolver>,
    status: watch::Sender<AcmeStatus>,
    force: Arc<Notify>,
    failures: u32,
}

impl AcmeWorker {
    pub fn new(
        config: AcmeConfig,
        files: AcmeFiles,
        resolver: Arc<CertResolver>,
        status: watch::Sender<AcmeStatus>,
        force: Arc<Notify>,
    ) -> AcmeWorker {
        AcmeWorker {
            config,
            files,
            resolver,
            status,
            force,
            failures: 0,
        }
    }

    /// Keeps a certificate for the domain `wanted` names (`None`: remote access off, no
    /// domain, or the port not mapped yet) until `shutdown`.
    pub async fn run(
        mut self,
        mut wanted: watch::Receiver<Option<String>>,
        shutdown: CancellationToken,
    ) {
        let mut forced = false;
        loop {
            let domain = wanted.borrow_and_update().clone();
            let wait = match domain {
                None => {
                    self.resolver.clear_public();
                    self.status.send_replace(AcmeStatus::default());
                    None
                }
                Some(domain) => {
                    let work = self.tend(&domain, std::mem::take(&mut forced));
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        wait = work => Some(wait),
                    }
                }
            };
            let sleep = async {
                match wait {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = wanted.changed() => if changed.is_err() { return },
                () = self.force.notified() => forced = true,
                () = sleep => {}
            }
        }
    }

    /// Loads, checks and if due renews the certificate of `domain`; returns when to look again.
    async fn tend(&mut self, domain: &str, forced: bool) -> Duration {
        if self.resolver.public().is_none_or(|(d, _)| d != domain) {
            self.load_stored(domain);
        }
        let now = SystemTime::now();
        let current = self.resolver.public().map(|(_, facts)| facts);
        let renew_at = current.as_ref().map(|f| f.not_after - RENEW_BEFORE);
        let due = forced || renew_at.is_none_or(|at| at <= now);
        if !due {
            self.publish(domain, None, None);
            let until = renew_at
                .and_then(|at| at.duration_since(now).ok())
                .unwrap_or(RECHECK);
            return until.min(RECHECK);
        }
        tracing::info!(domain, forced, "requesting a certificate by ACME");
        let started = Instant::now();
        let result = match tokio::time::timeout(
            ORDER_DEADLINE,
            obtain(&self.config, &self.files, &self.resolver, domain),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(AcmeError::Timeout {
                secs: ORDER_DEADLINE.as_secs(),
            }),
        };
        let result =
            result.and_then(|issued| self.install(domain, &issued.chain_pem, &issued.key_pem));
        match result {
            Ok(()) => {
                let ms = started.elapsed().as_millis() as u64;
                tracing::info!(domain, ms, "certificate obtained");
                self.failures = 0;
                self.status.send_modify(|s| {
                    s.issued += 1;
                    s.last_order_ms = Some(ms);
                });
                self.publish(domain, None, None);
                RECHECK
            }
            Err(error) => {
                tracing::warn!(domain, %error, "obtaining a certificate failed");
                self.resolver.clear_challenge(domain);
                let still_valid = self
                    .resolver
                    .public()
                    .is_some_and(|(_, f)| f.not_after > SystemTime::now());
                let warning = if still_valid {
                    "Renewing the certificate failed; the current one is served until it expires."
                        .to_owned()
                } else {
                    self.resolver.clear_public();
                    "No trusted certificate for the domain: the box's own certificate is served \
                     and browsers will warn. Check that the domain points at the router's \
                     external address and that port 443 is mapped."
                        .to_owned()
                };
                self.publish(domain, Some(error.to_string()), Some(warning));
                let wait = BACKOFF_FIRST
                    .saturating_mul(1 << self.failures.min(16))
                    .min(BACKOFF_MAX);
                self.failures += 1;
                wait
            }
        }
    }

    fn load_stored(&self, domain: &str) {
        let (chain, key) = (self.files.chain(domain), self.files.key(domain));
        let (Ok(Some(chain)), Ok(Some(key))) = (self.files.read(&chain), self.files.read(&key))
        else {
            return;
        };
        match self.resolver.set_public(domain, &chain, &key) {
            Ok(facts) if facts.not_after > SystemTime::now() => {
                tracing::info!(
                    domain,
                    issuer = facts.issuer,
                    "loaded the stored certificate"
                );
            }
            Ok(_) => self.resolver.clear_public(),
            Err(error) => tracing::warn!(%error, "ignoring the stored certificate"),
        }
    }

    fn install(&self, domain: &str, chain: &str, key: &str) -> Result<(), AcmeError> {
        // Key first: a crash in between leaves a new key with the old chain, which fails
        // to load and is simply obtained again.
        self.files
            .write_private(&self.files.key(domain), key.as_bytes())?;
        self.files
            .write_private(&self.files.chain(domain), chain.as_bytes())?;
        self.resolver
            .set_public(domain, chain, key)
            .map_err(|source| AcmeError::Tls {
                step: "installing the certificate",
                source,
            })?;
        Ok(())
    }

    fn publish(&self, domain: &str, error: Option<String>, warning: Option<String>) {
        let public = self.resolver.public();
        let now = unix(SystemTime::now());
        self.status.send_modify(|s| {
            s.domain = Some(domain.to_owned());
            s.trusted = public.is_some();
            s.issuer = public.as_ref().map(|(_, f)| f.issuer.clone());
            s.not_after = public.as_ref().map(|(_, f)| unix(f.not_after));
            if error.is_some() || s.last_attempt.is_none() {
                s.last_attempt = Some(now);
            }
            s.last_error = error;
            s.warning = warning;
        });
    }
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(data: &std::path::Path) -> (AcmeWorker, watch::Receiver<AcmeStatus>) {
        let identity = percloud_tls::ServerIdentity::local_default("percloud");
        let tls = percloud_tls::Tls::load_or_create(data, &identity).expect("tls");
        let (tx, rx) = watch::channel(AcmeStatus::default());
        let config = AcmeConfig {
            // Nothing listens there: every order fails at once.
            directory_url: "https://127.0.0.1:9/dir".into(),
            contact: String::new(),
            ca_file: None,
        };
        let worker = AcmeWorker::new(
            config,
            AcmeFiles::new(data),
            tls.resolver(),
            tx,
            Arc::default(),
        );
        (worker, rx)
    }

    #[tokio::test]
    async fn failure_without_a_certificate_falls_back_with_a_warning() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut worker, status) = worker(dir.path());
        let wait = worker.tend("box.example.org", false).await;
        assert_eq!(wait, BACKOFF_FIRST);
        assert_eq!(
            worker.tend("box.example.org", false).await,
            BACKOFF_FIRST * 2
        );
        let s = status.borrow().clone();
        assert!(!s.trusted);
        assert!(s.last_error.is_some());
        assert!(
            s.warning
                .as_deref()
                .unwrap_or_default()
                .contains("own certificate"),
            "{s:?}"
        );
        assert!(worker.resolver.public().is_none());
    }

    #[tokio::test]
    async fn a_stored_valid_certificate_is_loaded_and_kept_when_renewal_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut worker, status) = worker(dir.path());
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let cert = rcgen::CertificateParams::new(vec!["box.example.org".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let files = AcmeFiles::new(dir.path());
        files
            .write_private(&files.chain("box.example.org"), cert.pem().as_bytes())
            .expect("chain");
        files
            .write_private(
                &files.key("box.example.org"),
                key.serialize_pem().as_bytes(),
            )
            .expect("key");
        // Valid for years (rcgen's default): loaded, nothing due.
        let wait = worker.tend("box.example.org", false).await;
        assert_eq!(wait, RECHECK);
        assert!(status.borrow().trusted);
        // Forced renewal fails: the current certificate stays, with a warning.
        worker.tend("box.example.org", true).await;
        let s = status.borrow().clone();
        assert!(s.trusted, "{s:?}");
        assert!(
            s.warning
                .as_deref()
                .unwrap_or_default()
                .contains("current one"),
            "{s:?}"
        );
    }
}
