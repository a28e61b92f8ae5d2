//! Time from NTP: a small SNTP client (RFC 4330, client mode of RFC 5905) that asks the
//! configured servers in order, believes the first reply that passes the checks, and steps
//! the clock when it is off by more than [`STEP_THRESHOLD`]; then asks again every
//! [`RESYNC_INTERVAL`], and after a failure retries with a doubling pause (the network may
//! not be up yet at boot). A Raspberry Pi has no battery-backed clock, and certificates and
//! the store's timestamps need the right time.
//!
//! Smaller offsets are left alone: slewing needs `adjtimex`, which rustix does not wrap and
//! which would need unsafe code; a crystal's drift of a few tens of ppm stays far below a
//! second between two resyncs. The protocol is hand-written because it is one 48-byte
//! packet and no small, maintained SNTP crate was in the vetted package lists.

mod clock;
mod packet;
mod query;

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

pub use clock::{Clock, FakeClock, SystemClock};
pub use packet::{Measurement, Offset, PacketError};
pub use query::{NTP_PORT, Sample, Server, query};

use crate::SystemError;

/// The servers asked when the configuration names none (the NTP Pool's global zone).
pub const DEFAULT_SERVERS: [&str; 4] = [
    "0.pool.ntp.org",
    "1.pool.ntp.org",
    "2.pool.ntp.org",
    "3.pool.ntp.org",
];
/// Offsets at least this large are corrected by stepping the clock.
pub const STEP_THRESHOLD: Duration = Duration::from_secs(1);
/// How often the clock is checked again once in sync.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(3600);
/// The first pause after a failed round; it doubles up to [`RETRY_MAX`].
pub const RETRY_MIN: Duration = Duration::from_secs(2);
pub const RETRY_MAX: Duration = Duration::from_secs(300);
/// How long one server address has to answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Addresses tried per server name (a pool name resolves to several).
const ADDRESSES_PER_SERVER: usize = 2;

/// How the time keeper runs; [`Settings::new`] gives the defaults above.
#[derive(Debug, Clone)]
pub struct Settings {
    pub servers: Vec<Server>,
    pub step_threshold: Duration,
    pub resync_interval: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub query_timeout: Duration,
}

impl Settings {
    pub fn new(servers: Vec<Server>) -> Settings {
        Settings {
            servers,
            step_threshold: STEP_THRESHOLD,
            resync_interval: RESYNC_INTERVAL,
            retry_min: RETRY_MIN,
            retry_max: RETRY_MAX,
            query_timeout: QUERY_TIMEOUT,
        }
    }
}

/// What one round did to the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjustment {
    /// The clock was set from `from` to `to`.
    Stepped { from: SystemTime, to: SystemTime },
    /// The offset was below the step threshold.
    InSync,
}

/// Asks `servers` in order (each name's first addresses) and returns the first sample that
/// passes the checks, or the last failure.
pub async fn sync_once(
    servers: &[Server],
    clock: &impl Clock,
    timeout: Duration,
) -> Result<Sample, SystemError> {
    let mut last = None;
    for server in servers {
        let addrs = match server.resolve(RESOLVE_TIMEOUT).await {
            Ok(addrs) if addrs.is_empty() => {
                last = Some(SystemError::NtpNoAddress {
                    server: server.to_string(),
                });
                continue;
            }
            Ok(addrs) => addrs,
            Err(error) => {
                last = Some(error);
                continue;
            }
        };
        for addr in addrs.into_iter().take(ADDRESSES_PER_SERVER) {
            match query(addr, clock, timeout).await {
                Ok(sample) => return Ok(sample),
                Err(error) => {
                    tracing::debug!(%error, "NTP");
                    last = Some(error);
                }
            }
        }
    }
    Err(last.unwrap_or(SystemError::NtpNoAddress {
        server: "(none configured)".into(),
    }))
}

/// Steps `clock` by the sample's offset if it is at least `threshold`.
pub fn adjust(
    clock: &impl Clock,
    sample: &Sample,
    threshold: Duration,
) -> Result<Adjustment, SystemError> {
    let offset = sample.measurement.offset;
    if offset.magnitude() < threshold {
        return Ok(Adjustment::InSync);
    }
    let from = clock.now();
    let to = clock.step(offset)?;
    Ok(Adjustment::Stepped { from, to })
}

/// The time keeper worker: keeps `clock` in step with the servers until `shutdown`. It
/// never ends on its own; failures are logged and retried.
pub async fn keep_time<C: Clock>(settings: Settings, clock: C, shutdown: CancellationToken) {
    let mut retry = settings.retry_min;
    let mut failing = false;
    let mut synced_once = false;
    loop {
        let pause = match sync_once(&settings.servers, &clock, settings.query_timeout).await {
            Ok(sample) => {
                if failing {
                    tracing::info!(server = %sample.server, "NTP answers again");
                }
                failing = false;
                retry = settings.retry_min;
                report(
                    adjust(&clock, &sample, settings.step_threshold),
                    &sample,
                    synced_once,
                );
                synced_once = true;
                settings.resync_interval
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "no time from NTP yet; retrying");
                } else {
                    tracing::debug!(%error, "NTP");
                }
                failing = true;
                let pause = retry;
                retry = (retry * 2).min(settings.retry_max);
                pause
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

fn report(adjusted: Result<Adjustment, SystemError>, sample: &Sample, synced_before: bool) {
    let offset = sample.measurement.offset;
    let (server, stratum) = (sample.server, sample.stratum);
    match adjusted {
        Ok(Adjustment::Stepped { from, to }) => tracing::info!(
            %server, stratum, %offset,
            "clock stepped from {} to {}", show(from), show(to)
        ),
        Ok(Adjustment::InSync) if !synced_before => {
            tracing::info!(%server, stratum, %offset, "clock in sync with NTP")
        }
        Ok(Adjustment::InSync) => tracing::debug!(%server, %offset, "clock in sync with NTP"),
        Err(error) => tracing::warn!(%error, "NTP"),
    }
}

/// A time for the log: an HTTP date, or Unix seconds outside the years it can show.
fn show(time: SystemTime) -> String {
    let unix = packet::unix_nanos(time) / 1_000_000_000;
    if (0..253_402_300_800).contains(&unix) {
        httpdate::fmt_http_date(time)
    } else {
        format!("Unix time {unix}")
    }
}

#[cfg(test)]
mod tests;
