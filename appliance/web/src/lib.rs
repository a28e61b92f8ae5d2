//! percloud-web: the HTTP(S) front door.
//!
//! Owns the listeners (plain HTTP and HTTPS through rustls), connection handling with hyper,
//! authentication of requests (HTTP Basic against the accounts in the store, with sign-in
//! throttling), routing to the protocol handlers (WebDAV at `/dav/`), `/healthz` and request
//! logs. It never touches files itself: content goes through `percloud-dav` to `percloud-store`.
//!
//! Policy: plain HTTP is served in full only to loopback peers; anywhere else a plain request
//! is redirected to HTTPS, so credentials never cross the network in clear.

mod auth;
mod error;
mod responses;
mod router;
mod server;

pub use auth::Authenticator;
pub use error::WebError;
pub use router::App;
pub use server::{BoundListeners, ListenerKind, Server};
