//! What the admin page shows about the port mapping.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::NatKind;

/// Where the mapping stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Remote access is off; nothing is mapped.
    Disabled,
    /// Looking for the router or adding the mapping.
    Searching,
    /// The router forwards `external_port` to the box.
    Mapped,
    /// The last attempt failed; another follows after a backoff.
    Failed,
}

/// A snapshot of the mapper, serialized for `GET /api/remote`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub state: State,
    /// The gateway's control address.
    pub gateway: Option<SocketAddr>,
    pub external_ip: Option<IpAddr>,
    pub external_port: Option<u16>,
    /// The box's address and HTTPS port the router forwards to.
    pub internal: Option<SocketAddr>,
    /// Lease asked for; 0 when the router accepts only permanent mappings.
    pub lease_secs: Option<u32>,
    /// When the lease runs out unless renewed (Unix seconds).
    pub lease_expires: Option<u64>,
    pub nat: Option<NatKind>,
    /// Plain words for the owner: why it does not work and what to do, or a warning.
    pub diagnosis: Option<String>,
    /// The last error, with the UPnP code and its meaning when the router refused.
    pub last_error: Option<String>,
    pub upnp_error: Option<u16>,
    /// Consecutive failed attempts.
    pub failures: u32,
    /// Seconds until the next attempt after a failure.
    pub retry_in_secs: Option<u64>,
    /// Lease renewals done.
    pub renewals: u64,
    /// Times the mapping had to be added again (router forgot it, LAN address changed).
    pub readds: u64,
}

impl Status {
    pub(crate) fn new(state: State) -> Status {
        Status {
            state,
            gateway: None,
            external_ip: None,
            external_port: None,
            internal: None,
            lease_secs: None,
            lease_expires: None,
            nat: None,
            diagnosis: None,
            last_error: None,
            upnp_error: None,
            failures: 0,
            retry_in_secs: None,
            renewals: 0,
            readds: 0,
        }
    }

    /// Disabled: nothing mapped, nothing to diagnose.
    pub fn disabled() -> Status {
        Status::new(State::Disabled)
    }
}
