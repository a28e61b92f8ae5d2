//! Remote access wiring: the owner's settings (`<data>/remote.json`), the `portmap` and
//! `acme` workers, and the `remote` worker that follows the mapping (the external address
//! joins the server certificate; ACME runs only while the port is mapped).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percloud_acme::{AcmeConfig, AcmeFiles, AcmeStatus, AcmeWorker};
use percloud_portmap::{IgdDiscovery, Mapper, MapperConfig, State, Status};
use percloud_tls::{ServerIdentity, Tls};
use percloud_web::{RemoteAccess, RemoteSettings};
use serde_json::json;
use tokio::sync::{Notify, watch};

use crate::config::{RemoteConfig, validate_domain};
use crate::error::CliError;
use crate::workers::Workers;

/// `remote.json`, versioned.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    version: u32,
    #[serde(flatten)]
    settings: RemoteSettings,
}

/// The result of the last attempt to reach the mapped port from the box.
#[derive(Debug, Clone, serde::Serialize)]
struct Reachability {
    at: u64,
    target: String,
    ok: bool,
    detail: String,
}

/// Shared between the web app and the workers.
#[derive(Debug)]
pub struct Remote {
    path: PathBuf,
    settings: Mutex<RemoteSettings>,
    enabled: watch::Sender<bool>,
    domain: watch::Sender<String>,
    portmap: watch::Receiver<Status>,
    acme: watch::Receiver<AcmeStatus>,
    renew: Arc<Notify>,
    reachability: Mutex<Option<Reachability>>,
    tls: Arc<Tls>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

impl RemoteAccess for Remote {
    fn status(&self) -> serde_json::Value {
        let portmap = self.portmap.borrow().clone();
        let acme = self.acme.borrow().clone();
        let lan_ca = json!({
            "issuer": "the box's own CA",
            "fingerprint": self.tls.server_fingerprint_sha256(),
        });
        json!({
            "settings": *lock(&self.settings),
            "mapping": portmap,
            "certificate": {
                "public": acme,
                "lan": lan_ca,
            },
            "reachability": *lock(&self.reachability),
        })
    }

    fn settings(&self) -> RemoteSettings {
        lock(&self.settings).clone()
    }

    fn update(&self, settings: RemoteSettings) -> Result<(), String> {
        let domain = settings.domain.trim().to_ascii_lowercase();
        if !domain.is_empty() {
            validate_domain(&domain)?;
        }
        let settings = RemoteSettings { domain, ..settings };
        save(&self.path, &settings).map_err(|e| format!("saving the settings: {e}"))?;
        tracing::info!(
            enabled = settings.enabled,
            domain = settings.domain,
            allow_remote_admin = settings.allow_remote_admin,
            "remote access settings changed"
        );
        self.enabled.send_replace(settings.enabled);
        self.domain.send_replace(settings.domain.clone());
        *lock(&self.settings) = settings;
        Ok(())
    }

    fn renew_certificate(&self) {
        self.renew.notify_one();
    }

    fn trusted_domain(&self) -> Option<String> {
        self.tls.resolver().public().map(|(domain, _)| domain)
    }
}

/// Settings from `<data>/remote.json`, else from the config file.
fn load(path: &Path, config: &RemoteConfig) -> RemoteSettings {
    let defaults = RemoteSettings {
        enabled: config.enabled,
        domain: config.domain.clone(),
        allow_remote_admin: config.allow_remote_admin,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => match serde_json::from_str::<Stored>(&text) {
            Ok(stored) => stored.settings,
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "unreadable remote settings; using the config file's");
                defaults
            }
        },
        Err(_) => defaults,
    }
}

/// Writes the settings atomically (temporary file, fsync, rename, fsync of the folder).
fn save(path: &Path, settings: &RemoteSettings) -> std::io::Result<()> {
    use std::io::Write as _;
    let stored = Stored {
        version: 1,
        settings: settings.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&stored).map_err(std::io::Error::other)?;
    let temp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Starts the `portmap`, `acme` and `remote` workers; returns what the web app asks.
pub fn start(
    data: &Path,
    config: &RemoteConfig,
    https: Option<SocketAddr>,
    tls: Arc<Tls>,
    identity: ServerIdentity,
    workers: &mut Workers,
) -> Result<Arc<Remote>, CliError> {
    let path = data.join("remote.json");
    let settings = load(&path, config);
    let (enabled_tx, enabled_rx) = watch::channel(settings.enabled);
    let (domain_tx, domain_rx) = watch::channel(settings.domain.clone());
    let (portmap_tx, portmap_rx) = watch::channel(percloud_portmap::Status::disabled());
    let (acme_tx, acme_rx) = watch::channel(AcmeStatus::default());
    let (wanted_tx, wanted_rx) = watch::channel(None::<String>);
    let renew = Arc::new(Notify::new());

    match https {
        Some(https) => {
            let discovery = IgdDiscovery {
                igd_url: (!config.igd_url.is_empty()).then(|| config.igd_url.clone()),
                timeout: Duration::from_secs(5),
            };
            let mut mapper_config = MapperConfig::new(https.port());
            mapper_config.external_ports = config.external_ports.clone();
            mapper_config.lease_secs = config.lease_secs;
            let mapper = Mapper::new(discovery, mapper_config);
            workers.spawn(
                "portmap",
                percloud_portmap::run(mapper, enabled_rx, portmap_tx, workers.token()),
            );
        }
        None => {
            if settings.enabled {
                tracing::warn!(
                    "remote access is on but there is no HTTPS listener: nothing to map"
                );
            }
        }
    }

    let acme = AcmeWorker::new(
        AcmeConfig {
            directory_url: config.acme_directory.clone(),
            contact: config.acme_contact.clone(),
            ca_file: (!config.acme_ca_file.is_empty()).then(|| PathBuf::from(&config.acme_ca_file)),
        },
        AcmeFiles::new(data),
        tls.resolver(),
        acme_tx,
        renew.clone(),
    );
    workers.spawn("acme", acme.run(wanted_rx, workers.token()));

    let remote = Arc::new(Remote {
        path,
        settings: Mutex::new(settings),
        enabled: enabled_tx,
        domain: domain_tx,
        portmap: portmap_rx.clone(),
        acme: acme_rx,
        renew,
        reachability: Mutex::new(None),
        tls: tls.clone(),
    });
    workers.spawn(
        "remote",
        follow(
            remote.clone(),
            portmap_rx,
            domain_rx,
            wanted_tx,
            identity,
            workers.token(),
        ),
    );
    Ok(remote)
}

/// Follows the mapping: adds the external address to the server certificate, tells the
/// ACME worker which domain to serve (only while mapped), and checks reachability.
async fn follow(
    remote: Arc<Remote>,
    mut portmap: watch::Receiver<Status>,
    mut domain: watch::Receiver<String>,
    wanted: watch::Sender<Option<String>>,
    base: ServerIdentity,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut covered: Option<IpAddr> = None;
    let mut probed: Option<(IpAddr, u16)> = None;
    let (mut portmap_open, mut domain_open) = (true, true);
    loop {
        let status = portmap.borrow_and_update().clone();
        let domain_now = domain.borrow_and_update().clone();
        let mapped = status.state == State::Mapped;
        let want = (mapped && !domain_now.is_empty()).then_some(domain_now);
        wanted.send_if_modified(|w| {
            let changed = *w != want;
            *w = want;
            changed
        });
        if let Some(ip) = status.external_ip.filter(|ip| !ip.is_unspecified())
            && covered != Some(ip)
        {
            let mut identity = base.clone();
            identity.ips.push(ip);
            let tls = remote.tls.clone();
            match tokio::task::spawn_blocking(move || tls.update_identity(&identity)).await {
                Ok(Ok(changed)) => {
                    covered = Some(ip);
                    if changed {
                        tracing::info!(%ip, "server certificate now covers the external address");
                    }
                }
                Ok(Err(error)) => {
                    tracing::error!(%error, "reissuing the server certificate failed")
                }
                Err(error) => tracing::error!(%error, "certificate task failed"),
            }
        }
        if let (true, Some(ip), Some(port)) = (mapped, status.external_ip, status.external_port)
            && probed != Some((ip, port))
        {
            probed = Some((ip, port));
            *lock(&remote.reachability) = Some(probe(SocketAddr::new(ip, port)).await);
        }
        // A closed source (no portmap worker without an HTTPS listener) is simply no longer
        // watched: this worker lives until shutdown, as every worker must.
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = portmap.changed(), if portmap_open => portmap_open = changed.is_ok(),
            changed = domain.changed(), if domain_open => domain_open = changed.is_ok(),
        }
    }
}

/// Tries a TCP connection to the external address and port from the box itself. Many
/// routers do not loop back (no NAT hairpinning): a failure here is not proof that the
/// internet cannot reach the box, and the status says so.
async fn probe(target: SocketAddr) -> Reachability {
    let outcome = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect(target),
    )
    .await;
    let (ok, detail) = match outcome {
        Ok(Ok(_)) => (true, "the mapped port answers (tested from the box through the router)".to_owned()),
        Ok(Err(e)) => (false, format!("not reachable from inside the LAN ({e}); many routers do not loop back, so test from a phone on mobile data")),
        Err(_) => (false, "no answer within 3 s from inside the LAN; many routers do not loop back, so test from a phone on mobile data".to_owned()),
    };
    Reachability {
        at: unix(SystemTime::now()),
        target: target.to_string(),
        ok,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_file_wins_over_the_config_and_is_written_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("remote.json");
        let config = RemoteConfig {
            enabled: true,
            ..RemoteConfig::default()
        };
        assert!(load(&path, &config).enabled);
        let settings = RemoteSettings {
            enabled: false,
            domain: "box.example.org".into(),
            allow_remote_admin: true,
        };
        save(&path, &settings).expect("save");
        assert_eq!(load(&path, &config), settings);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("\"version\": 1"), "{text}");
        assert!(!path.with_extension("json.tmp").exists());
    }
}
