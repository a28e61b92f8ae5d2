//! The mapping state machine: find the router, map a port, renew the lease at half-life,
//! re-add what the router forgot, follow the LAN address, and say why when it fails.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::router::{Discovery, Router};
use crate::status::{State, Status};
use crate::{NatKind, RouterError, classify};

/// How the mapper behaves; see `docs/configuration.md` (`[remote]`).
#[derive(Debug, Clone)]
pub struct MapperConfig {
    /// The box's HTTPS port the router forwards to.
    pub https_port: u16,
    /// External ports to try, in order; the first one free (or already ours) wins.
    pub external_ports: Vec<u16>,
    /// Lease asked for; renewed at half-life. 0 asks for a permanent mapping.
    pub lease_secs: u32,
    /// The mapping's description on the router.
    pub description: String,
    /// Longest time between two checks that the router still holds the mapping.
    pub check_every: Duration,
    /// First wait after a failure; doubles up to `backoff_max`.
    pub backoff_first: Duration,
    pub backoff_max: Duration,
}

impl MapperConfig {
    /// 443 then 8443, one hour leases, checks every minute, backoff 5 s to 5 min.
    pub fn new(https_port: u16) -> MapperConfig {
        MapperConfig {
            https_port,
            external_ports: vec![443, 8443],
            lease_secs: 3600,
            description: "percloud HTTPS".to_owned(),
            check_every: Duration::from_secs(60),
            backoff_first: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// A mapping the router holds for us.
#[derive(Debug)]
struct Held<R> {
    router: R,
    external_port: u16,
    internal: SocketAddr,
    lease_secs: u32,
    renew_at: Instant,
}

/// Drives one port mapping; call [`Mapper::step`] when the delay it returned has passed.
#[derive(Debug)]
pub struct Mapper<D: Discovery> {
    discovery: D,
    config: MapperConfig,
    held: Option<Held<D::Router>>,
    backoff: Backoff,
    status: Status,
}

impl<D: Discovery> Mapper<D>
where
    D::Router: std::fmt::Debug,
{
    pub fn new(discovery: D, config: MapperConfig) -> Mapper<D> {
        let backoff = Backoff::new(config.backoff_first, config.backoff_max);
        Mapper {
            discovery,
            config,
            held: None,
            backoff,
            status: Status::new(State::Searching),
        }
    }

    /// The current state for the admin page.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Does what is due (search, map, renew, verify, move) and returns how long to wait
    /// before the next step.
    pub async fn step(&mut self) -> Duration {
        let outcome = match self.held.take() {
            None => self.establish().await,
            Some(held) => self.maintain(held).await,
        };
        match outcome {
            Ok(delay) => {
                self.backoff.reset();
                self.status.failures = 0;
                self.status.retry_in_secs = None;
                delay
            }
            Err(error) => {
                let wait = self.backoff.fail();
                self.record_failure(&error, wait);
                wait
            }
        }
    }

    /// Removes the mapping, if one is held (remote access off, or shutdown).
    pub async fn release(&mut self) {
        if let Some(held) = self.held.take() {
            match held.router.remove_port(held.external_port).await {
                Ok(()) => tracing::info!(port = held.external_port, "port mapping removed"),
                Err(error) => tracing::warn!(%error, "removing the port mapping failed"),
            }
        }
        let (renewals, readds) = (self.status.renewals, self.status.readds);
        self.status = Status::disabled();
        self.status.renewals = renewals;
        self.status.readds = readds;
        self.backoff.reset();
    }

    /// Finds the router and maps the first free external port.
    async fn establish(&mut self) -> Result<Duration, RouterError> {
        self.status.state = State::Searching;
        let router = self.discovery.discover().await?;
        self.status.gateway = Some(router.addr());
        self.refresh_external_ip(&router).await;
        let local = self.discovery.local_ip_towards(router.addr())?;
        let internal = SocketAddr::new(local, self.config.https_port);
        let (external_port, lease_secs) = self.add_first_free(&router, internal).await?;
        let now = Instant::now();
        let held = Held {
            router,
            external_port,
            internal,
            lease_secs,
            renew_at: renew_at(now, lease_secs, self.config.check_every),
        };
        if Some(external_port) != self.config.external_ports.first().copied() {
            tracing::warn!(
                port = external_port,
                "preferred external port taken by another host; mapped the next free one"
            );
        }
        tracing::info!(%internal, external_port, lease_secs, "port mapped");
        self.mark_mapped(&held);
        let delay = self.next_delay(&held, now);
        self.held = Some(held);
        Ok(delay)
    }

    /// Tries each external port in order; 718 moves on, 725 retries with lease 0.
    async fn add_first_free(
        &self,
        router: &D::Router,
        internal: SocketAddr,
    ) -> Result<(u16, u32), RouterError> {
        let mut lease = self.config.lease_secs;
        for &port in &self.config.external_ports {
            loop {
                match router
                    .add_port(port, internal, lease, &self.config.description)
                    .await
                {
                    Ok(()) => return Ok((port, lease)),
                    Err(e) if e.code() == Some(725) && lease != 0 => {
                        tracing::info!("router accepts only permanent mappings; using lease 0");
                        lease = 0;
                    }
                    Err(e) if e.code() == Some(718) => {
                        tracing::info!(
                            port,
                            "external port mapped to another host; trying the next"
                        );
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Err(RouterError::AllPortsTaken {
            ports: self.config.external_ports.clone(),
        })
    }

    /// Keeps a held mapping alive: follow the LAN address, renew at half-life, else verify.
    async fn maintain(&mut self, mut held: Held<D::Router>) -> Result<Duration, RouterError> {
        let now = Instant::now();
        let local = self.discovery.local_ip_towards(held.router.addr())?;
        if local != held.internal.ip() {
            tracing::warn!(old = %held.internal.ip(), new = %local, "LAN address changed; moving the port mapping");
            if let Err(error) = held.router.remove_port(held.external_port).await {
                tracing::debug!(%error, "removing the old mapping failed");
            }
            self.status.readds += 1;
            return self.establish().await;
        }
        if now >= held.renew_at {
            match self.re_add(&held).await {
                Ok(()) => {
                    self.status.renewals += 1;
                    tracing::debug!(port = held.external_port, "lease renewed");
                }
                Err(e) if e.code() == Some(718) => {
                    tracing::warn!("another host took our external port; mapping again");
                    return self.establish().await;
                }
                Err(e) => return Err(e),
            }
            self.refresh_external_ip(&held.router).await;
        } else {
            let present = held
                .router
                .mappings()
                .await?
                .into_iter()
                .any(|m| m.external_port == held.external_port && m.internal == held.internal);
            if !present {
                tracing::warn!(
                    port = held.external_port,
                    "the router forgot the port mapping; adding it again"
                );
                match self.re_add(&held).await {
                    Ok(()) => self.status.readds += 1,
                    Err(e) if e.code() == Some(718) => return self.establish().await,
                    Err(e) => return Err(e),
                }
            } else {
                self.mark_mapped(&held);
                let delay = self.next_delay(&held, now);
                self.held = Some(held);
                return Ok(delay);
            }
        }
        held.renew_at = renew_at(now, held.lease_secs, self.config.check_every);
        self.mark_mapped(&held);
        let delay = self.next_delay(&held, now);
        self.held = Some(held);
        Ok(delay)
    }

    async fn re_add(&self, held: &Held<D::Router>) -> Result<(), RouterError> {
        held.router
            .add_port(
                held.external_port,
                held.internal,
                held.lease_secs,
                &self.config.description,
            )
            .await
    }

    async fn refresh_external_ip(&mut self, router: &D::Router) {
        match router.external_ip().await {
            Ok(ip) => {
                if self.status.external_ip != Some(ip) {
                    tracing::info!(external_ip = %ip, nat = ?classify(ip), "router's external address");
                }
                self.status.external_ip = Some(ip);
                self.status.nat = Some(classify(ip));
            }
            Err(error) => {
                tracing::warn!(%error, "reading the external address failed");
                self.status.external_ip = None;
                // miniupnpd (most home routers) refuses to tell its external address with
                // 501 exactly when that address is private or reserved: double NAT.
                self.status.nat = (error.code() == Some(501)).then_some(NatKind::DoubleNat);
            }
        }
    }

    fn mark_mapped(&mut self, held: &Held<D::Router>) {
        let s = &mut self.status;
        s.state = State::Mapped;
        s.external_port = Some(held.external_port);
        s.internal = Some(held.internal);
        s.lease_secs = Some(held.lease_secs);
        s.lease_expires = (held.lease_secs > 0).then(|| {
            let remaining = held.renew_at.saturating_duration_since(Instant::now())
                + Duration::from_secs(u64::from(held.lease_secs / 2));
            unix_secs(SystemTime::now() + remaining)
        });
        s.last_error = None;
        s.upnp_error = None;
        s.diagnosis = match s.nat {
            Some(nat) if nat != NatKind::Public => Some(format!(
                "The router mapped port {}, but: {}",
                held.external_port,
                nat.advice()
            )),
            _ if Some(held.external_port) != self.config.external_ports.first().copied() => {
                Some(format!(
                    "Port {} is mapped to another device on the router; using port {}.",
                    self.config
                        .external_ports
                        .first()
                        .copied()
                        .unwrap_or_default(),
                    held.external_port
                ))
            }
            _ => None,
        };
    }

    fn record_failure(&mut self, error: &RouterError, wait: Duration) {
        tracing::warn!(%error, retry_in = ?wait, "port mapping failed");
        let s = &mut self.status;
        s.state = State::Failed;
        s.failures = self.backoff.failures();
        s.retry_in_secs = Some(wait.as_secs());
        s.last_error = Some(error.to_string());
        s.upnp_error = error.code();
        // A router that cannot name its external address and refuses mappings with 501:
        // miniupnpd does exactly this when its WAN address is private or reserved.
        if error.code() == Some(501) && s.external_ip.is_none() {
            s.nat = Some(NatKind::DoubleNat);
        }
        if matches!(error, RouterError::NoGateway { .. }) {
            s.gateway = None;
            s.external_ip = None;
            s.nat = None;
        }
        s.diagnosis = Some(diagnose(error, s.nat, self.config.https_port));
    }

    fn next_delay(&self, held: &Held<D::Router>, now: Instant) -> Duration {
        held.renew_at
            .saturating_duration_since(now)
            .min(self.config.check_every)
    }
}

/// Renewal at half the lease; a permanent mapping is only verified.
fn renew_at(now: Instant, lease_secs: u32, check_every: Duration) -> Instant {
    if lease_secs == 0 {
        now + check_every
    } else {
        now + Duration::from_secs(u64::from(lease_secs / 2).max(1))
    }
}

fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Plain words for a failure, knowing what the external address says.
fn diagnose(error: &RouterError, nat: Option<NatKind>, https_port: u16) -> String {
    if let Some(nat) = nat.filter(|n| *n != NatKind::Public) {
        return nat.advice().to_owned();
    }
    match error {
        RouterError::NoGateway { .. } => format!(
            "No UPnP Internet Gateway Device answered on the LAN. Turn on UPnP (IGD) on the \
             router, or forward TCP port 443 on the router to this box's port {https_port} by hand."
        ),
        RouterError::AllPortsTaken { .. } => "Every external port in the list is forwarded to \
             another device. Free one on the router or add ports to `external_ports`."
            .to_owned(),
        RouterError::Refused { code: 606, .. } => "The router has UPnP on but does not let this \
             box add port mappings; allow it in the router's UPnP settings."
            .to_owned(),
        RouterError::Refused { code: 728, .. } => {
            "The router's mapping table is full; remove unused mappings on the router.".to_owned()
        }
        RouterError::Refused { code, .. } => format!(
            "The router refused the mapping with UPnP error {code}: {}.",
            crate::upnp_meaning(*code)
        ),
        RouterError::Transport { .. } => "The router stopped answering UPnP requests (restarting, \
             or UPnP turned off); retrying."
            .to_owned(),
    }
}

#[cfg(test)]
#[path = "mapper_tests.rs"]
mod tests;
