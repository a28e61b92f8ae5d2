//! percloud-portmap: remote access through the home router.
//!
//! Owns the UPnP IGD port mapping of the box's HTTPS port (igd-next): finding the router
//! (SSDP, or unicast to a configured router), reading its external address, mapping the
//! first free external port of a list with a finite lease renewed at half-life, checking
//! that the router still holds it (re-adding after a router restart), moving it when the
//! box's LAN address changes, removing it when remote access is turned off and at shutdown,
//! and saying in plain words why it does not work (no router, UPnP error codes, double NAT,
//! carrier-grade NAT). The router sits behind the small [`Router`]/[`Discovery`] traits so
//! the state machine is tested against a fake.
//!
//! It must never map anything while remote access is off, never map a port other than to
//! the box's own HTTPS port (plain HTTP stays on the LAN), never hold a permanent mapping
//! when the router accepts leases, and knows nothing about HTTP, certificates or the store.

mod backoff;
mod error;
#[cfg(test)]
mod fake;
mod mapper;
mod nat;
mod router;
mod status;
mod worker;

pub use backoff::Backoff;
pub use error::{RouterError, UpnpCode, upnp_meaning};
pub use mapper::{Mapper, MapperConfig};
pub use nat::{NatKind, classify};
pub use router::{Discovery, IgdDiscovery, IgdRouter, Mapping, Router};
pub use status::{State, Status};
pub use worker::run;
