//! The discovery worker: one mDNS responder (the box's names and services) and one browser
//! (the device list), each an mdns-sd daemon thread, driven from one async loop.
//!
//! The browser is separate so it can be recycled (which drops mdns-sd's cache of what others
//! announced) without touching the announcements: after [`BROWSER_MAX_EVENTS`] sightings or
//! [`BROWSER_MAX_AGE`], whichever comes first. That bounds memory under an announcement
//! flood; the device list itself is bounded by [`crate::Devices`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mdns_sd::{
    DaemonEvent, IfKind, IfPredicate, RRType, Receiver, ResolvedService, ServiceDaemon,
    ServiceEvent, ServiceInfo,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::devices::{MAX_DEVICES, Sighting};
use crate::error::DiscoveryError;
use crate::interfaces::{is_virtual_bridge, lan_addresses};
use crate::names::host_label;
use crate::{BROWSED_TYPES, Discovery, lock, services};

/// How often addresses are checked by mdns-sd (seconds) and by the status (below).
const IP_CHECK_SECS: u32 = 1;
const STATUS_POLL: Duration = Duration::from_secs(1);
/// The browser is recycled after this many sightings or this long.
const BROWSER_MAX_EVENTS: usize = 2 * MAX_DEVICES;
const BROWSER_MAX_AGE: Duration = Duration::from_secs(30 * 60);
/// Browse events waiting for the loop; more are dropped (the next announcement repeats them).
const EVENT_QUEUE: usize = 1024;
/// How long to wait for each goodbye and for a daemon thread to exit.
const REPLY_WAIT: Duration = Duration::from_secs(1);
/// Retry delays when mDNS cannot start (no network, socket in use).
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Why a responder stopped.
#[derive(Debug)]
enum Outcome {
    Shutdown,
    Renamed,
    /// The set of LAN addresses changed: the responder starts over on the new ones (fresh
    /// sockets and multicast memberships; mdns-sd 0.21 can lose an interface when its first
    /// address goes while another stays). No goodbyes: the new announcement's cache-flush
    /// bit replaces the old addresses in the peers' caches.
    AddressesChanged,
    Failed(String),
}

pub(crate) async fn run(discovery: Discovery, shutdown: CancellationToken) {
    if !discovery.shared.settings.enabled {
        shutdown.cancelled().await;
        return;
    }
    let mut retry = RETRY_FIRST;
    loop {
        match Responder::start(&discovery) {
            Ok(mut responder) => {
                let outcome = responder.serve(&discovery, &shutdown).await;
                responder
                    .stop(!matches!(outcome, Outcome::AddressesChanged))
                    .await;
                match outcome {
                    Outcome::Shutdown => {
                        tracing::info!("discovery stopped; goodbye records sent");
                        return;
                    }
                    Outcome::Renamed => {
                        retry = RETRY_FIRST;
                        continue;
                    }
                    Outcome::AddressesChanged => {
                        tracing::info!("LAN addresses changed: announcing again");
                        retry = RETRY_FIRST;
                        continue;
                    }
                    Outcome::Failed(reason) => {
                        tracing::warn!(%reason, ?retry, "discovery failed; restarting");
                    }
                }
            }
            Err(error) => tracing::warn!(%error, ?retry, "discovery cannot start; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// An mdns-sd daemon bound to the LAN interfaces.
fn new_daemon() -> Result<ServiceDaemon, DiscoveryError> {
    let start = |e: mdns_sd::Error| DiscoveryError::Start(e.to_string());
    let daemon = ServiceDaemon::new().map_err(start)?;
    daemon
        .disable_interface(vec![
            IfKind::LoopbackV4,
            IfKind::LoopbackV6,
            IfKind::Predicate(IfPredicate::new(|i| is_virtual_bridge(&i.name))),
        ])
        .map_err(start)?;
    daemon.set_ip_check_interval(IP_CHECK_SECS).map_err(start)?;
    Ok(daemon)
}

/// Asks a daemon thread to exit and waits a little for it.
async fn shut(daemon: &ServiceDaemon) {
    if let Ok(reply) = daemon.shutdown() {
        let _ = tokio::time::timeout(REPLY_WAIT, reply.recv_async()).await;
    }
}

/// Asks a daemon thread to exit without waiting (error paths of start-up).
fn shut_now(daemon: &ServiceDaemon) {
    let _ = daemon.shutdown();
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

struct Responder {
    announcer: ServiceDaemon,
    monitor: Receiver<DaemonEvent>,
    /// Full names of the registered services, for the goodbyes.
    registered: Vec<String>,
    /// The LAN addresses when the services were registered.
    addresses: Vec<std::net::IpAddr>,
    browser: Browser,
}

impl Responder {
    fn start(discovery: &Discovery) -> Result<Responder, DiscoveryError> {
        let announcer = new_daemon()?;
        let monitor = announcer
            .monitor()
            .map_err(|e| DiscoveryError::Start(e.to_string()))?;
        let announcement = discovery.announcement();
        let host = format!("{}.local.", announcement.hostname);
        let mut registered = Vec::new();
        for spec in services::services(&announcement) {
            let register = |message: String| DiscoveryError::Register {
                service: spec.service_type.clone(),
                message,
            };
            let info = ServiceInfo::new(
                &spec.type_domain(),
                &announcement.instance,
                &host,
                (),
                spec.port,
                spec.txt.as_slice(),
            )
            .map_err(|e| register(e.to_string()))?
            .enable_addr_auto();
            let fullname = info.get_fullname().to_owned();
            announcer
                .register(info)
                .map_err(|e| register(e.to_string()))?;
            registered.push(fullname);
        }
        let addresses = lan_addresses();
        discovery.set_addresses(addresses.clone());
        tracing::info!(
            host = %host,
            instance = %announcement.instance,
            services = registered.len(),
            "announcing on the LAN"
        );
        let browser = match Browser::start() {
            Ok(browser) => browser,
            Err(error) => {
                shut_now(&announcer);
                return Err(error);
            }
        };
        Ok(Responder {
            announcer,
            monitor,
            registered,
            addresses,
            browser,
        })
    }

    async fn serve(&mut self, discovery: &Discovery, shutdown: &CancellationToken) -> Outcome {
        let mut poll = tokio::time::interval(STATUS_POLL);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Outcome::Shutdown,
                () = discovery.shared.renamed.notified() => {
                    tracing::info!("names changed: announcing again");
                    return Outcome::Renamed;
                }
                event = self.monitor.recv_async() => match event {
                    Ok(event) => on_daemon_event(discovery, event),
                    Err(_) => return Outcome::Failed("the mDNS responder thread ended".into()),
                },
                event = self.browser.events.recv() => match event {
                    Some(event) => {
                        self.browser.on_event(discovery, event);
                        if self.browser.sightings() >= BROWSER_MAX_EVENTS {
                            self.recycle_browser("many announcements").await;
                        }
                    }
                    None => self.recycle_browser("the browser thread ended").await,
                },
                _ = poll.tick() => {
                    let addresses = lan_addresses();
                    if addresses != self.addresses {
                        discovery.set_addresses(addresses);
                        return Outcome::AddressesChanged;
                    }
                    lock(&discovery.shared.devices).expire(unix_now());
                    if self.browser.started.elapsed() >= BROWSER_MAX_AGE {
                        self.recycle_browser("periodic refresh").await;
                    }
                }
            }
        }
    }

    /// Replaces the browser with a fresh one (an empty mdns-sd cache); keeps the old one if a
    /// new one cannot start.
    async fn recycle_browser(&mut self, reason: &str) {
        match Browser::start() {
            Ok(fresh) => {
                tracing::debug!(reason, "browser recycled");
                let old = std::mem::replace(&mut self.browser, fresh);
                shut(&old.daemon).await;
            }
            Err(error) => tracing::warn!(%error, reason, "cannot recycle the browser"),
        }
    }

    /// Stops both daemons; with `goodbye`, unregisters every service first (goodbye
    /// records, TTL 0).
    async fn stop(self, goodbye: bool) {
        if goodbye {
            for fullname in &self.registered {
                if let Ok(reply) = self.announcer.unregister(fullname) {
                    let _ = tokio::time::timeout(REPLY_WAIT, reply.recv_async()).await;
                }
            }
            // mdns-sd repeats goodbyes once shortly after; give it the chance.
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        shut(&self.announcer).await;
        shut(&self.browser.daemon).await;
    }
}

fn on_daemon_event(discovery: &Discovery, event: DaemonEvent) {
    match event {
        DaemonEvent::NameChange(change) => {
            if matches!(change.rr_type, RRType::A | RRType::AAAA) {
                let actual = host_label(&change.new_name);
                tracing::warn!(
                    wanted = %change.original,
                    actual,
                    interface = %change.intf_name,
                    "host name taken on the LAN: using another"
                );
                if let Err(error) = discovery.record_claim(actual) {
                    tracing::error!(%error, "cannot remember the host name");
                }
            } else {
                tracing::info!(
                    wanted = %change.original,
                    actual = %change.new_name,
                    "service name taken on the LAN: using another"
                );
            }
        }
        DaemonEvent::IpAdd(ip) => {
            tracing::info!(%ip, "address added: announcing it");
            discovery.set_addresses(lan_addresses());
        }
        DaemonEvent::IpDel(ip) => {
            tracing::info!(%ip, "address removed");
            discovery.set_addresses(lan_addresses());
        }
        DaemonEvent::Error(error) => tracing::debug!(%error, "mDNS responder"),
        _ => {}
    }
}

/// The mdns-sd daemon that browses, and the events of all its browses in one queue.
struct Browser {
    daemon: ServiceDaemon,
    events: mpsc::Receiver<ServiceEvent>,
    started: Instant,
    /// Services resolved since the start, counted as they leave mdns-sd (also those the full
    /// queue dropped).
    sightings: Arc<AtomicUsize>,
}

impl Browser {
    fn start() -> Result<Browser, DiscoveryError> {
        let daemon = new_daemon()?;
        let (sender, events) = mpsc::channel(EVENT_QUEUE);
        let sightings = Arc::new(AtomicUsize::new(0));
        for ty in BROWSED_TYPES {
            let receiver = match daemon.browse(&format!("{ty}.local.")) {
                Ok(receiver) => receiver,
                Err(e) => {
                    shut_now(&daemon);
                    return Err(DiscoveryError::Browse {
                        service: ty.to_owned(),
                        message: e.to_string(),
                    });
                }
            };
            let sender = sender.clone();
            let counter = sightings.clone();
            // Forwards until the daemon drops its side; never blocks the daemon thread.
            tokio::spawn(async move {
                while let Ok(event) = receiver.recv_async().await {
                    if matches!(event, ServiceEvent::ServiceResolved(_)) {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Err(mpsc::error::TrySendError::Closed(_)) = sender.try_send(event) {
                        break;
                    }
                }
            });
        }
        Ok(Browser {
            daemon,
            events,
            started: Instant::now(),
            sightings,
        })
    }

    fn sightings(&self) -> usize {
        self.sightings.load(Ordering::Relaxed)
    }

    fn on_event(&self, discovery: &Discovery, event: ServiceEvent) {
        match event {
            ServiceEvent::ServiceResolved(service) => {
                if is_self(discovery, &service) {
                    return;
                }
                let sighting = Sighting {
                    fullname: service.fullname.clone(),
                    service_type: service.ty_domain.clone(),
                    host: service.host.clone(),
                    addresses: service.addresses.iter().map(|ip| ip.to_ip_addr()).collect(),
                    port: service.port,
                    txt: service
                        .txt_properties
                        .iter()
                        .take(crate::devices::MAX_TXT_ENTRIES)
                        .map(|p| (p.key().to_owned(), p.val_str().to_owned()))
                        .collect(),
                };
                lock(&discovery.shared.devices).seen(sighting, unix_now());
            }
            ServiceEvent::ServiceRemoved(_, fullname) => {
                lock(&discovery.shared.devices).removed(&fullname);
            }
            _ => {}
        }
    }
}

/// Our own `_percloud._tcp`, heard back over multicast loop.
fn is_self(discovery: &Discovery, service: &ResolvedService) -> bool {
    service
        .ty_domain
        .eq_ignore_ascii_case("_percloud._tcp.local.")
        && service.get_property_val_str("id")
            == Some(lock(&discovery.shared.status).device_id.as_str())
}
