//! What the binary hands the application: the store, the session database, keys and facts
//! about the box it cannot find out by itself.

use std::net::SocketAddr;
use std::sync::Arc;

use percloud_sessions::Sessions;
use percloud_store::Store;

use crate::recent_logs::RecentLogs;
use crate::server::ListenerKind;

/// The box's certificate authority, for devices to download and trust.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    pub ca_pem: String,
    pub ca_fingerprint: String,
    pub server_fingerprint: String,
}

/// Everything [`crate::App::new`] needs. Build it with [`AppConfig::new`] and set the rest.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub store: Store,
    pub sessions: Arc<Sessions>,
    /// 32 secret bytes share-link tokens are derived from (`<data>/link.key`).
    pub link_key: [u8; 32],
    /// Where plain requests from the network are redirected (443 if `None`).
    pub https_port: Option<u16>,
    pub tls: Option<TlsInfo>,
    pub recent_logs: RecentLogs,
    pub hostname: String,
    /// The addresses actually bound, for the admin page.
    pub listeners: Vec<(ListenerKind, SocketAddr)>,
    /// Makes thumbnails; without one, thumbnails stay "pending".
    pub thumbnailer: Option<percloud_thumbs::Thumbnailer>,
    /// The box on the LAN (names, services, devices nearby); `None` in tests.
    pub discovery: Option<percloud_discovery::Discovery>,
    /// Remote access (port mapping, public certificate); `None` when not wired (tests).
    pub remote: Option<Arc<dyn crate::RemoteAccess>>,
    /// System updates; `None` when the box has no `[update]` (tests, development).
    pub updates: Option<Arc<dyn crate::UpdateControl>>,
}

impl AppConfig {
    pub fn new(store: Store, sessions: Arc<Sessions>, link_key: [u8; 32]) -> Self {
        AppConfig {
            store,
            sessions,
            link_key,
            https_port: None,
            tls: None,
            recent_logs: RecentLogs::new(),
            hostname: "percloud".to_owned(),
            listeners: Vec::new(),
            thumbnailer: None,
            discovery: None,
            remote: None,
            updates: None,
        }
    }
}
