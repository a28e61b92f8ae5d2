//! `percloud serve`: open the store, make sure the box has its certificates, bind the
//! listeners and run the workers until asked to stop.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use percloud_sessions::Sessions;
use percloud_store::{Store, StoreOptions};
use percloud_tls::{ServerIdentity, Tls};
use percloud_web::{App, AppConfig, BoundListeners, ListenerKind, RecentLogs, Server, TlsInfo};

use crate::error::CliError;
use crate::workers::Workers;
use crate::{control, data_dir};

/// How often old versions and trash are expired and space reclaimed.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(3600);
/// Unfinished resumable uploads are dropped after this long without a byte arriving.
const STAGED_UPLOAD_EXPIRY: Duration = Duration::from_secs(24 * 3600);
/// Workers get this long to finish when the daemon stops.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

/// Everything `serve` needs, after the config file and the flags were merged.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub data: PathBuf,
    pub listen: Vec<SocketAddr>,
    pub tls_listen: Vec<SocketAddr>,
    pub hostname: String,
    pub store: StoreOptions,
    /// The ring of recent log lines the admin page shows.
    pub recent_logs: RecentLogs,
    /// `[appliance]` of the config file: set only on the appliance image.
    pub appliance: Option<crate::config::ApplianceConfig>,
    pub discovery: DiscoveryChoice,
    /// `[remote]` of the config file.
    pub remote: crate::config::RemoteConfig,
    /// `[update]` of the config file: set only on the appliance image.
    pub update: Option<crate::config::UpdateConfig>,
}

/// `[discovery]` and `--no-discovery`, merged.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryChoice {
    /// `None`: on when a listener is beyond loopback.
    pub enabled: Option<bool>,
    pub instance: Option<String>,
}

pub async fn run(settings: ServeSettings) -> Result<(), CliError> {
    data_dir::prepare(&settings.data)?;
    let store = {
        let (data, options) = (settings.data.clone(), settings.store.clone());
        tokio::task::spawn_blocking(move || Store::open(&data, options))
            .await
            .map_err(|e| CliError::Internal(e.to_string()))??
    };
    let sessions = {
        let path = settings.data.join("sessions.redb");
        tokio::task::spawn_blocking(move || Sessions::open(&path))
            .await
            .map_err(|e| CliError::Internal(e.to_string()))?
            .map(Arc::new)
            .map_err(|e| CliError::Internal(e.to_string()))?
    };
    let link_key = data_dir::link_key(&settings.data)?;
    // Before anything is served: is this a trial boot, or did a trial fail and come back?
    // A box whose update machinery is broken (an unreadable grubenv) still serves its files.
    let updates = settings.update.as_ref().and_then(|config| {
        crate::update_worker::Updates::start(config, &settings.data)
            .inspect_err(|error| tracing::error!(%error, "updates are unavailable"))
            .ok()
    });
    if settings.appliance.is_some() {
        crate::appliance::prepare(&settings.data, &settings.hostname)?;
    }
    // The name the box answers to may carry a suffix won in a conflict (`percloud-2`).
    let lan_hostname = percloud_discovery::announced_hostname(&settings.data, &settings.hostname)
        .map_err(|e| CliError::Internal(e.to_string()))?;
    let base_identity = identity(&settings, &lan_hostname);
    let tls = Arc::new(Tls::load_or_create(&settings.data, &base_identity)?);
    tracing::info!(
        fingerprint = tls.server_fingerprint_sha256(),
        "server certificate ready"
    );

    let listeners = BoundListeners::bind(&settings.listen, &settings.tls_listen).await?;
    let bound = listeners.local_addrs();
    warn_about_plain_network_listeners(&bound);
    for (kind, addr) in &bound {
        let scheme = match kind {
            ListenerKind::Plain => "http",
            ListenerKind::Tls => "https",
        };
        // A stable line on stdout for people and for tests that ask for port 0.
        println!("listening on {scheme}://{addr}");
    }
    if store.users()?.is_empty() {
        tracing::warn!("no accounts yet: create one with `percloud user add NAME`");
    }

    let https_port = bound
        .iter()
        .find(|(kind, _)| *kind == ListenerKind::Tls)
        .map(|(_, addr)| addr.port());
    let control = control::bind(&settings.data)?;
    let mut workers = Workers::default();
    let mut app = AppConfig::new(store.clone(), sessions.clone(), link_key);
    app.https_port = https_port;
    app.tls = Some(TlsInfo {
        ca_pem: tls.ca_pem().to_owned(),
        ca_fingerprint: tls.ca_fingerprint_sha256(),
        server_fingerprint: tls.server_fingerprint_sha256(),
    });
    app.recent_logs = settings.recent_logs.clone();
    app.hostname = lan_hostname;
    app.listeners = bound.clone();
    // Thumbnails are made by `percloud thumbnail` child processes, cached in <data>/thumbs.
    let thumbnailer = percloud_thumbs::Thumbnailer::new(
        settings.data.join("thumbs"),
        percloud_thumbs::HelperCommand::current_exe(["thumbnail"])?,
    )?;
    app.thumbnailer = Some(thumbnailer.clone());
    let discovery = percloud_discovery::Discovery::new(percloud_discovery::Settings {
        data: settings.data.clone(),
        hostname: settings.hostname.clone(),
        instance: settings.discovery.instance.clone(),
        enabled: settings
            .discovery
            .enabled
            .unwrap_or_else(|| beyond_loopback(&bound)),
        // Plain requests from the LAN are redirected to HTTPS, so the plain port offers no
        // WebDAV there and `_webdav._tcp` is not announced.
        https_port: https_port.unwrap_or(443),
        plain_http_port: None,
        fingerprint: tls.server_fingerprint_sha256(),
        version: crate::update::running_version(),
    })
    .map_err(|e| CliError::Internal(e.to_string()))?;
    app.discovery = Some(discovery.clone());
    let announced = discovery.status().enabled.then(|| discovery.clone());
    let https_addr = bound
        .iter()
        .find(|(kind, _)| *kind == ListenerKind::Tls)
        .map(|(_, addr)| *addr);
    let remote = crate::remote::start(
        &settings.data,
        &settings.remote,
        https_addr,
        tls.clone(),
        base_identity,
        &mut workers,
    )?;
    app.remote = Some(remote);
    app.updates = updates
        .clone()
        .map(|u| Arc::new(u) as Arc<dyn percloud_web::UpdateControl>);
    let server = Server::new(App::new(app), Some(tls.server_config()));
    workers.spawn("web", {
        let token = workers.token();
        async move {
            if let Err(error) = server.run(listeners, token).await {
                tracing::error!(%error, "web server stopped");
            }
        }
    });
    workers.spawn("thumbs", {
        let token = workers.token();
        async move { thumbnailer.run(token).await }
    });
    if discovery.status().enabled {
        workers.spawn("discovery", discovery.run(workers.token()));
    } else {
        tracing::info!("discovery off: the box is not announced on the LAN");
    }
    workers.spawn(
        "control",
        control::serve(control, store.clone(), updates.clone(), workers.token()),
    );
    if let Some(updates) = updates {
        let inputs = crate::update_gate::GateInputs {
            data: settings.data.clone(),
            store: store.clone(),
            https: https_addr,
            plain: bound
                .iter()
                .find(|(kind, _)| *kind == ListenerKind::Plain)
                .map(|(_, addr)| *addr),
            ca_pem: tls.ca_pem().to_owned(),
            discovery: announced,
            recent_logs: settings.recent_logs.clone(),
            fail_step: updates.config().gate_fail.clone(),
        };
        workers.spawn(
            "update",
            crate::update_gate::run(updates, inputs, workers.token()),
        );
    }
    workers.spawn(
        "maintenance",
        maintenance(store.clone(), sessions, workers.token()),
    );

    let appliance = match &settings.appliance {
        Some(config) => Some(crate::appliance::start(
            config,
            &settings.hostname,
            &bound,
            &mut workers,
        )?),
        None => None,
    };
    let failure = workers.run_until(stop_signal(), STOP_DEADLINE).await;
    if let Some(running) = appliance {
        crate::appliance::stop(running, failure.is_none());
    }
    let _ = std::fs::remove_file(control::socket_path(&settings.data));
    match failure {
        Some(reason) => Err(CliError::Internal(reason)),
        None => {
            tracing::info!("stopped");
            Ok(())
        }
    }
}

/// True when some listener is reachable from beyond this machine.
fn beyond_loopback(bound: &[(ListenerKind, SocketAddr)]) -> bool {
    bound.iter().any(|(_, addr)| !addr.ip().is_loopback())
}

/// Names and addresses the server certificate must cover.
fn identity(settings: &ServeSettings, lan_hostname: &str) -> ServerIdentity {
    let mut identity = ServerIdentity::local_default(lan_hostname);
    let configured = format!("{}.local", settings.hostname);
    if !identity.names.contains(&configured) {
        identity.names.push(configured);
    }
    let lan = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|iface| !iface.is_loopback())
        .map(|iface| iface.ip());
    let explicit = settings
        .listen
        .iter()
        .chain(&settings.tls_listen)
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified());
    for ip in lan.chain(explicit) {
        if !identity.ips.contains(&ip) {
            identity.ips.push(ip);
        }
    }
    identity
}

fn warn_about_plain_network_listeners(bound: &[(ListenerKind, SocketAddr)]) {
    let has_tls = bound.iter().any(|(kind, _)| *kind == ListenerKind::Tls);
    for (kind, addr) in bound {
        let loopback_only = matches!(addr.ip(), IpAddr::V4(ip) if ip == Ipv4Addr::LOCALHOST)
            || addr.ip() == IpAddr::V6(Ipv6Addr::LOCALHOST);
        if *kind == ListenerKind::Plain && !loopback_only {
            tracing::info!(%addr, "plain HTTP from the network is redirected to HTTPS");
            if !has_tls {
                tracing::warn!(%addr, "plain listener on the network but no --tls-listen: network clients will be redirected to port 443");
            }
        }
    }
}

/// Expires old versions, trash, idle resumable uploads and idle sessions, drops the sign-ins
/// of removed accounts, then reclaims space, once an interval.
async fn maintenance(
    store: Store,
    sessions: Arc<Sessions>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut ticks = tokio::time::interval(MAINTENANCE_INTERVAL);
    ticks.tick().await; // the first tick is immediate; start-up has enough to do
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let store = store.clone();
        let sessions = sessions.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let now = std::time::SystemTime::now();
            match store.expire_staged(now - STAGED_UPLOAD_EXPIRY) {
                Ok(0) => {}
                Ok(n) => tracing::info!(uploads = n, "idle resumable uploads dropped"),
                Err(error) => tracing::error!(%error, "expiring resumable uploads failed"),
            }
            if let Err(error) = sessions.purge_expired(now) {
                tracing::error!(%error, "expiring sessions failed");
            }
            // Accounts removed from the command line leave their sessions and app passwords
            // behind (inert: the ids no longer match); drop them.
            let live = store
                .users()
                .map(|users| users.iter().map(|u| u.id).collect::<Vec<_>>());
            match live.map(|live| sessions.forget_users_except(&live)) {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(revoked = n, "sign-ins of removed accounts dropped"),
                Ok(Err(error)) => {
                    tracing::error!(%error, "dropping removed accounts' sign-ins failed")
                }
                Err(error) => tracing::error!(%error, "listing accounts failed"),
            }
            let expired = store.expire(now)?;
            let gc = store.gc()?;
            Ok::<_, percloud_store::StoreError>((expired, gc))
        })
        .await;
        match outcome {
            Ok(Ok((expired, gc))) => tracing::info!(?expired, ?gc, "maintenance done"),
            Ok(Err(error)) => tracing::error!(%error, "maintenance failed"),
            Err(error) => tracing::error!(%error, "maintenance task failed"),
        }
    }
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::error!(%error, "cannot watch SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: stopping"),
    }
}
