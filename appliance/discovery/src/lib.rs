//! percloud-discovery: the box on the LAN, over multicast DNS (mdns-sd).
//!
//! Owns the box's host name `<name>.local` (A/AAAA for every LAN address, re-announced
//! within seconds of an address change), its DNS-SD services (`_https._tcp`, `_webdavs._tcp`,
//! `_webdav._tcp` when plain HTTP is served to the LAN, `_percloud._tcp` with the device id and
//! certificate fingerprint), name conflicts (`percloud-2`, kept across reboots in
//! `<data>/discovery.json`), goodbye records on a clean stop, and a bounded live list of the
//! services other devices announce (other perclouds, casting, printing, file sharing).
//!
//! It must never know about storage, accounts or HTTP, never open a socket other than
//! mDNS's (UDP 5353, multicast), and never keep anything a packet says without a bound:
//! every list, string and map built from the network has a cap.

mod devices;
mod error;
mod interfaces;
mod names;
mod services;
mod worker;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use devices::{Device, Devices, MAX_DEVICES};
pub use error::DiscoveryError;
pub use interfaces::{is_lan_interface, lan_addresses};
pub use names::{STATE_FILE, validate_hostname, validate_instance};
pub use services::{Announcement, ServiceSpec};

use names::State;

/// The service types browsed for the device list.
pub const BROWSED_TYPES: [&str; 8] = [
    "_percloud._tcp",
    "_device-info._tcp",
    "_googlecast._tcp",
    "_airplay._tcp",
    "_raop._tcp",
    "_ipp._tcp",
    "_printer._tcp",
    "_smb._tcp",
];

/// What the binary tells discovery.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The data folder (`discovery.json` lives there).
    pub data: PathBuf,
    /// The host name from the config file or the command line.
    pub hostname: String,
    /// The instance name from the config file; the host name when `None`.
    pub instance: Option<String>,
    /// Whether the worker announces anything (the handle works either way).
    pub enabled: bool,
    /// The HTTPS port announced.
    pub https_port: u16,
    /// The plain HTTP port, when plain HTTP is served to the LAN.
    pub plain_http_port: Option<u16>,
    /// SHA-256 fingerprint of the TLS server certificate.
    pub fingerprint: String,
    /// The software version.
    pub version: String,
}

/// What the admin page shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub enabled: bool,
    /// The host label (`percloud-2`), reached as `<hostname>.local`.
    pub hostname: String,
    pub instance: String,
    pub device_id: String,
    /// The LAN addresses announced.
    pub addresses: Vec<IpAddr>,
    pub services: Vec<ServiceSpec>,
}

/// A cheap handle on discovery: its status and device list for the web layer, renames, and
/// the worker ([`Discovery::run`]).
#[derive(Debug, Clone)]
pub struct Discovery {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    settings: Settings,
    state: Mutex<State>,
    status: Mutex<Status>,
    devices: Mutex<Devices>,
    /// Wakes the worker to re-announce after a rename.
    renamed: tokio::sync::Notify,
}

impl Discovery {
    /// Reads (or creates) the persisted names and device id.
    pub fn new(settings: Settings) -> Result<Discovery, DiscoveryError> {
        validate_hostname(&settings.hostname)?;
        if let Some(instance) = &settings.instance {
            validate_instance(instance)?;
        }
        let state = State::load_or_create(&settings.data)?;
        let status = Status {
            enabled: settings.enabled,
            hostname: String::new(),
            instance: String::new(),
            device_id: state.device_id.clone(),
            addresses: Vec::new(),
            services: Vec::new(),
        };
        let discovery = Discovery {
            shared: Arc::new(Shared {
                settings,
                state: Mutex::new(state),
                status: Mutex::new(status),
                devices: Mutex::new(Devices::default()),
                renamed: tokio::sync::Notify::new(),
            }),
        };
        discovery.refresh_status();
        Ok(discovery)
    }

    /// The host label the box answers to now (`percloud`, `percloud-2`).
    pub fn hostname(&self) -> String {
        lock(&self.shared.status).hostname.clone()
    }

    pub fn status(&self) -> Status {
        lock(&self.shared.status).clone()
    }

    /// The devices seen on the network, by type then name.
    pub fn devices(&self) -> Vec<Device> {
        lock(&self.shared.devices).list()
    }

    /// Sets the instance and host names (as from the Admin page), persists them and
    /// re-announces.
    pub fn set_names(&self, instance: &str, hostname: &str) -> Result<(), DiscoveryError> {
        validate_instance(instance)?;
        validate_hostname(hostname)?;
        {
            let mut state = lock(&self.shared.state);
            let mut next = state.clone();
            next.instance = Some(instance.to_owned());
            next.hostname = Some(hostname.to_owned());
            next.save(&self.shared.settings.data)?;
            *state = next;
        }
        self.refresh_status();
        self.shared.renamed.notify_one();
        Ok(())
    }

    /// Runs the responder and browser until `shutdown`, then says goodbye. Waits and
    /// retries when the network or the mDNS socket is not available.
    pub async fn run(self, shutdown: tokio_util::sync::CancellationToken) {
        worker::run(self, shutdown).await;
    }

    /// What to announce now.
    fn announcement(&self) -> Announcement {
        let settings = &self.shared.settings;
        let state = lock(&self.shared.state);
        let hostname = state.hostname(&settings.hostname);
        Announcement {
            instance: state.instance(settings.instance.as_deref(), &hostname),
            hostname,
            https_port: settings.https_port,
            plain_http_port: settings.plain_http_port,
            device_id: state.device_id.clone(),
            version: settings.version.clone(),
            fingerprint: settings.fingerprint.clone(),
        }
    }

    /// Recomputes names and services in the status from the persisted state.
    fn refresh_status(&self) {
        let announcement = self.announcement();
        let mut status = lock(&self.shared.status);
        status.services = services::services(&announcement);
        status.hostname = announcement.hostname;
        status.instance = announcement.instance;
    }

    /// Remembers that the network gave the box `actual` for the host name it wanted.
    fn record_claim(&self, actual: &str) -> Result<(), DiscoveryError> {
        {
            let mut state = lock(&self.shared.state);
            let wanted = state
                .wanted_hostname(&self.shared.settings.hostname)
                .to_owned();
            let mut next = state.clone();
            next.record_claim(&wanted, actual);
            if next != *state {
                next.save(&self.shared.settings.data)?;
                *state = next;
            }
        }
        self.refresh_status();
        Ok(())
    }

    fn set_addresses(&self, addresses: Vec<IpAddr>) {
        lock(&self.shared.status).addresses = addresses;
    }
}

/// The host label the box will announce for `configured` in `data`: the Admin page's name or
/// `configured`, with the suffix won in an earlier conflict. Creates the state when missing.
pub fn announced_hostname(
    data: &std::path::Path,
    configured: &str,
) -> Result<String, DiscoveryError> {
    Ok(State::load_or_create(data)?.hostname(configured))
}

/// A poisoned lock only means another thread panicked mid-update; the data stays usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &std::path::Path) -> Settings {
        Settings {
            data: dir.to_owned(),
            hostname: "percloud".into(),
            instance: None,
            enabled: true,
            https_port: 443,
            plain_http_port: None,
            fingerprint: "AA:BB".into(),
            version: "0.1.0".into(),
        }
    }

    #[test]
    fn renames_persist_and_a_claim_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let discovery = Discovery::new(settings(dir.path())).expect("new");
        assert_eq!(discovery.hostname(), "percloud");
        assert_eq!(discovery.status().instance, "percloud");
        discovery.record_claim("percloud-2").expect("claim");
        assert_eq!(discovery.hostname(), "percloud-2");
        let id = discovery.status().device_id;
        drop(discovery);

        let discovery = Discovery::new(settings(dir.path())).expect("restart");
        assert_eq!(discovery.hostname(), "percloud-2");
        assert_eq!(discovery.status().device_id, id);

        discovery.set_names("Attic", "attic").expect("rename");
        assert!(discovery.set_names("Attic", "bad name").is_err());
        let discovery = Discovery::new(settings(dir.path())).expect("restart");
        let status = discovery.status();
        assert_eq!(
            (status.hostname.as_str(), status.instance.as_str()),
            ("attic", "Attic")
        );
        let percloud = status
            .services
            .iter()
            .find(|s| s.service_type == "_percloud._tcp")
            .expect("_percloud._tcp");
        assert!(
            percloud
                .txt
                .contains(&("name".to_owned(), "Attic".to_owned()))
        );
    }
}
