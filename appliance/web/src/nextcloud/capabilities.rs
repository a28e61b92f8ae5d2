//! What a Nextcloud client asks first on every run: `GET /status.php` (is this a Nextcloud
//! server, which version), `cloud/capabilities` (what the server can do: chunking v2, the
//! checksum to send, trash and versions, share links) and `cloud/user` (who signed in), over
//! `/ocs/v1.php` and `/ocs/v2.php`, in JSON or XML (the envelope is `ocs`).
//!
//! Capabilities are promises the clients act on: advertise only what is implemented.
//! `dav.chunking: "1.0"` makes the client use chunking v2 (without it, it falls back to v1
//! chunking, which we do not speak); `dav.bulkupload: "1.0"` makes the desktop client send
//! its small files many to a request (`bulk.rs`).

use http::{Method, Request, StatusCode};
use serde_json::{Value, json};

use super::ocs::Ocs;
use crate::json::{ReqBody, Resp};
use crate::responses;
use crate::router::{App, ConnInfo};

/// The Nextcloud version we answer as: the clients gate features on it (25 has chunking v2
/// with `OC-Total-Length` and the trash/versions DAV endpoints the apps use).
const VERSION: (u32, u32, u32) = (25, 0, 0);

/// How often (milliseconds) an idle client polls the root's ETag.
const POLL_INTERVAL_MS: u32 = 30_000;

const CAPABILITIES: &str = "cloud/capabilities";
const USER: &str = "cloud/user";

/// The OCS endpoint `path` names (`/ocs/v{1,2}.php/<endpoint>`), if any.
fn ocs_endpoint(path: &str) -> Option<&str> {
    path.strip_prefix("/ocs/v1.php/")
        .or_else(|| path.strip_prefix("/ocs/v2.php/"))
        .map(|rest| rest.trim_end_matches('/'))
}

pub(super) fn claims(path: &str) -> bool {
    path == "/status.php" || matches!(ocs_endpoint(path), Some(CAPABILITIES | USER))
}

pub(super) async fn handle(app: &App, req: Request<ReqBody>, conn: ConnInfo) -> Resp {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return responses::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let path = req.uri().path();
    if path == "/status.php" {
        return crate::json::json(StatusCode::OK, &status(app));
    }
    let ocs = Ocs::of(path, req.uri().query(), req.headers());
    match ocs_endpoint(path) {
        Some(CAPABILITIES) => ocs.ok(capabilities()),
        Some(USER) => match app
            .inner
            .auth
            .require_user(req.headers(), conn.peer.ip())
            .await
        {
            Ok(user) => ocs.ok(user_json(&user)),
            Err(refusal) => refusal,
        },
        _ => super::unimplemented::handle(req).await,
    }
}

fn version_string() -> String {
    let (major, minor, micro) = VERSION;
    format!("{major}.{minor}.{micro}")
}

/// `status.php`: what the clients check before anything else (a server that is installed,
/// not in maintenance).
fn status(app: &App) -> Value {
    json!({
        "installed": true,
        "maintenance": false,
        "needsDbUpgrade": false,
        "version": format!("{}.0", version_string()),
        "versionstring": version_string(),
        "edition": "",
        "productname": app.inner.hostname,
        "extendedSupport": false,
    })
}

fn capabilities() -> Value {
    let (major, minor, micro) = VERSION;
    json!({
        "version": {
            "major": major, "minor": minor, "micro": micro,
            "string": version_string(), "edition": "", "extendedSupport": false,
        },
        "capabilities": {
            "core": {
                "pollinterval": POLL_INTERVAL_MS,
                "webdav-root": "remote.php/webdav",
                "reference-api": false,
            },
            "dav": { "chunking": "1.0", "bulkupload": "1.0" },
            "checksums": { "supportedTypes": ["SHA1"], "preferredUploadType": "SHA1" },
            "files": {
                "bigfilechunking": true,
                "blacklisted_files": [".htaccess"],
                "undelete": true,
                "versioning": true,
                "comments": false,
            },
            "files_sharing": {
                "api_enabled": true,
                "resharing": false,
                "group_sharing": false,
                "sharebymail": { "enabled": false },
                "federation": { "outgoing": false, "incoming": false },
                "user": { "send_mail": false, "expire_date": { "enabled": false } },
                "public": {
                    "enabled": true,
                    "password": { "enforced": false, "askForOptionalPassword": false },
                    "expire_date": { "enabled": true, "enforced": false },
                    "multiple_links": true,
                    "send_mail": false,
                    "upload": true,
                    "upload_files_drop": true,
                },
            },
        },
    })
}

fn user_json(user: &percloud_store::User) -> Value {
    let quota = match user.quota {
        Some(total) => json!({
            "free": total.saturating_sub(user.used),
            "used": user.used,
            "total": total,
            "relative": if total == 0 { 0.0 } else { user.used as f64 * 100.0 / total as f64 },
            "quota": total,
        }),
        // Nextcloud's "unlimited" is a negative quota.
        None => json!({ "used": user.used, "quota": -3, "relative": 0 }),
    };
    json!({
        "id": user.name,
        "display-name": user.name,
        "displayname": user.name,
        "email": null,
        "enabled": true,
        "quota": quota,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_only_its_endpoints() {
        assert!(claims("/status.php"));
        assert!(claims("/ocs/v1.php/cloud/capabilities"));
        assert!(claims("/ocs/v2.php/cloud/user/"));
        assert!(!claims("/ocs/v2.php/apps/files_sharing/api/v1/shares"));
        assert!(!claims("/ocs/v3.php/cloud/user"));
    }

    #[test]
    fn advertises_chunking_v2_and_bulk_upload() {
        let caps = capabilities();
        let c = &caps["capabilities"];
        assert_eq!(c["dav"]["chunking"], "1.0");
        assert_eq!(c["dav"]["bulkupload"], "1.0");
        assert_eq!(c["core"]["webdav-root"], "remote.php/webdav");
        assert_eq!(c["checksums"]["preferredUploadType"], "SHA1");
        assert_eq!(c["files_sharing"]["public"]["upload"], true);
    }
}
