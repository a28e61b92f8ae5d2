//! percloud-web: the HTTP(S) front door.
//!
//! Owns the listeners (plain HTTP and HTTPS through rustls), connection handling with hyper,
//! authentication of requests (HTTP Basic against the accounts in the store, with sign-in
//! throttling; cookie sessions with CSRF tokens for the web pages), routing to the protocol
//! handlers (WebDAV at `/dav/`, the pages' JSON API at `/api/`, share links, the Nextcloud
//! client protocol at `/status.php`, `/ocs/…` and `/remote.php/…`: `nextcloud/`), `/healthz`
//! and request logs. It never touches files itself: content goes through `percloud-store` (the
//! API) or `percloud-dav` (WebDAV), and store errors become statuses through
//! `percloud_dav::status_for`.
//!
//! Policy: plain HTTP is served in full only to loopback peers; anywhere else a plain request
//! is redirected to HTTPS, so credentials never cross the network in clear. The claim page,
//! the admin pages and their API answer only to the local network unless the owner allows
//! remote admin; every response carries no-sniff, no-referrer and `frame-ancestors 'none'`,
//! and HSTS when the request names a domain with a publicly trusted certificate.

mod api;
mod auth;
mod config;
mod cookies;
mod error;
mod headers;
mod json;
mod links;
mod net;
mod nextcloud;
mod pages;
mod recent_logs;
mod remote;
mod responses;
mod router;
mod server;

pub use api::update::{MAX_BUNDLE_BYTES, UpdateControl, UpdateFuture, UpdateRefused};
pub use auth::Authenticator;
pub use config::{AppConfig, TlsInfo};
pub use error::WebError;
pub use recent_logs::{RECENT_LOG_LINES, RecentLogs};
pub use remote::{RemoteAccess, RemoteSettings};
pub use router::App;
pub use server::{BoundListeners, ListenerKind, Server};
