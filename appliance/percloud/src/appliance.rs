//! The appliance's duties, wired from `[appliance]` in the config file: the first-boot
//! marker, the host name, the hardware watchdog, the console's welcome line and the time
//! from NTP. The logic lives in percloud-system; this file only connects it to the daemon.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, SystemTime};

use percloud_system::watchdog::{self, DevWatchdog};
use percloud_system::{console, first_boot, health, hostname, ntp};
use percloud_web::ListenerKind;

use crate::config::ApplianceConfig;
use crate::error::CliError;
use crate::workers::Workers;

/// How long one health probe may take before the daemon counts as unhealthy.
const PROBE_TIMEOUT: Duration = Duration::from_secs(4);

/// What must be undone at a clean stop.
#[derive(Debug, Default)]
pub struct Running {
    watchdog: Option<watchdog::Shared<DevWatchdog>>,
}

/// First-boot steps and the host name; runs before the listeners are bound.
pub fn prepare(data: &Path, name: &str) -> Result<(), CliError> {
    let version = &crate::update::running_version();
    match first_boot::prepare(data, version, SystemTime::now()).map_err(system)? {
        first_boot::Boot::First => tracing::info!("first boot: {} set up", data.display()),
        first_boot::Boot::Again { version } => {
            tracing::info!(set_up_by = %version, "data folder set up before")
        }
    }
    match hostname::set(Path::new(hostname::KERNEL_HOSTNAME), name) {
        Ok(true) => tracing::info!(hostname = name, "host name set"),
        Ok(false) => {}
        Err(error) => tracing::warn!(%error, "host name"),
    }
    Ok(())
}

/// Arms the watchdog and starts the `ntp`, `watchdog` and `console` workers, once serving.
pub fn start(
    config: &ApplianceConfig,
    name: &str,
    bound: &[(ListenerKind, SocketAddr)],
    workers: &mut Workers,
) -> Result<Running, CliError> {
    start_ntp(config, workers);
    let https_port = port_of(bound, ListenerKind::Tls);
    let mut running = Running::default();
    if let Some(path) = &config.watchdog {
        let plain = port_of(bound, ListenerKind::Plain).ok_or_else(|| {
            CliError::Usage(
                "[appliance] watchdog needs a plain listener for its health probe".into(),
            )
        })?;
        // A board without a watchdog driver still serves: say so and carry on.
        let device = match DevWatchdog::open(path) {
            Ok(device) => std::sync::Arc::new(std::sync::Mutex::new(device)),
            Err(error) => {
                tracing::warn!(%error, "no hardware watchdog: running without one");
                return Ok(start_console(config, name, https_port, workers, running));
            }
        };
        tracing::info!(path = %path.display(), "watchdog armed: fed while healthy");
        let probe = health::HttpProbe {
            plain: SocketAddr::from((Ipv4Addr::LOCALHOST, plain)),
            tls: https_port.map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
            timeout: PROBE_TIMEOUT,
        };
        workers.spawn(
            "watchdog",
            watchdog::feed_while_healthy(
                device.clone(),
                probe,
                watchdog::FEED_INTERVAL,
                workers.token(),
            ),
        );
        running.watchdog = Some(device);
    }
    Ok(start_console(config, name, https_port, workers, running))
}

/// The `ntp` worker sets the system clock (a Pi has no battery-backed clock). It is the one
/// owner of the time on the image: init runs no NTP daemon.
fn start_ntp(config: &ApplianceConfig, workers: &mut Workers) {
    // The config file was validated on load; a server that still fails to parse is skipped.
    let servers: Vec<ntp::Server> = config
        .ntp_servers
        .iter()
        .filter_map(|server| {
            server
                .parse()
                .map_err(|error| tracing::warn!(%error, "NTP"))
                .ok()
        })
        .collect();
    if servers.is_empty() {
        tracing::info!("no NTP servers configured: the clock is not set from the network");
        return;
    }
    workers.spawn(
        "ntp",
        ntp::keep_time(
            ntp::Settings::new(servers),
            ntp::SystemClock,
            workers.token(),
        ),
    );
}

fn start_console(
    config: &ApplianceConfig,
    name: &str,
    https_port: Option<u16>,
    workers: &mut Workers,
    running: Running,
) -> Running {
    if let Some(path) = &config.console {
        workers.spawn(
            "console",
            console::announce(
                path.clone(),
                crate::update::running_version(),
                name.to_owned(),
                https_port.unwrap_or(443),
                workers.token(),
            ),
        );
    }
    running
}

/// At exit: a clean stop disarms the watchdog; after a failure it stays armed, so the box
/// resets unless init brings the daemon back in time.
pub fn stop(running: Running, clean: bool) {
    if let Some(device) = running.watchdog {
        if clean {
            match watchdog::disarm(&device) {
                Ok(()) => tracing::info!("watchdog disarmed"),
                Err(error) => tracing::warn!(%error, "watchdog"),
            }
        } else {
            tracing::warn!("stopping after a failure: the watchdog stays armed");
        }
    }
}

fn port_of(bound: &[(ListenerKind, SocketAddr)], kind: ListenerKind) -> Option<u16> {
    bound
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, addr)| addr.port())
}

fn system(error: percloud_system::SystemError) -> CliError {
    CliError::Internal(error.to_string())
}
