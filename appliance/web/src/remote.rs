//! Remote access as the web side sees it: the owner's settings, the status to show, and
//! which requests answer only to the local network.

use std::fmt::Debug;

use serde::{Deserialize, Serialize};

/// The owner's choices, from `PUT /api/admin/remote`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteSettings {
    pub enabled: bool,
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub allow_remote_admin: bool,
}

/// What the binary provides: the port mapping and certificate state, and the settings.
pub trait RemoteAccess: Send + Sync + Debug {
    /// The status for `GET /api/remote` (a JSON object).
    fn status(&self) -> serde_json::Value;
    /// The settings in force.
    fn settings(&self) -> RemoteSettings;
    /// Validates, persists and applies new settings; `Err` is a message for a 400.
    fn update(&self, settings: RemoteSettings) -> Result<(), String>;
    /// Asks for a certificate renewal now.
    fn renew_certificate(&self);
    /// The domain a publicly trusted certificate is served for (HSTS is sent for it only).
    fn trusted_domain(&self) -> Option<String>;
}

/// Paths that answer only to the local network unless the owner allows remote admin:
/// the claim page, the admin pages and their API.
pub(crate) fn is_lan_only(path: &str) -> bool {
    matches!(path, "/claim" | "/admin" | "/api/claim" | "/api/remote")
        || path.starts_with("/admin/")
        || path.starts_with("/api/admin/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_only_paths() {
        for path in [
            "/claim",
            "/admin",
            "/api/claim",
            "/api/admin/users",
            "/api/remote",
        ] {
            assert!(is_lan_only(path), "{path}");
        }
        for path in [
            "/",
            "/login",
            "/api/login",
            "/api/list",
            "/dav/x",
            "/administrator",
        ] {
            assert!(!is_lan_only(path), "{path}");
        }
    }

    #[test]
    fn settings_are_strict() {
        let ok: RemoteSettings = serde_json::from_str(r#"{"enabled":true}"#).expect("valid");
        assert!(ok.enabled && ok.domain.is_empty() && !ok.allow_remote_admin);
        assert!(serde_json::from_str::<RemoteSettings>(r#"{"enabled":true,"x":1}"#).is_err());
    }
}
