//! The Nextcloud client protocol, so the Nextcloud desktop and phone apps (and owncloudcmd,
//! rclone's `nextcloud` vendor) sync with the box unchanged. `docs/clients.md` says which
//! clients were verified how and what they need from the server.
//!
//! The protocol is a set of paths beside our own: `/status.php`, `/ocs/v{1,2}.php/…`,
//! `/remote.php/{dav,webdav}/…` and a few `/index.php/…` pages. Each concern has its module;
//! this one only decides which module a path belongs to. Paths the apps call that we do not
//! implement get a clean 404 (or an empty OCS result) and are logged, so gaps are visible.

mod bulk;
mod capabilities;
mod chunked;
mod dav;
mod login_flow;
mod multistatus;
mod ocs;
mod preview;
mod shares;
mod trashbin;
mod unimplemented;
mod versions;

use http::Request;

use crate::json::{ReqBody, Resp};
use crate::router::{App, ConnInfo};

/// Whether `path` belongs to the Nextcloud protocol.
pub(crate) fn claims(path: &str) -> bool {
    path == "/status.php"
        || path.starts_with("/ocs/")
        || path.starts_with("/remote.php/")
        || path.starts_with("/index.php/")
        || path.starts_with("/core/")
}

/// Answers a request whose path `claims` accepted.
pub(crate) async fn handle(app: &App, req: Request<ReqBody>, conn: ConnInfo) -> Resp {
    let path = req.uri().path();
    if path == "/status.php" || capabilities::claims(path) {
        capabilities::handle(app, req, conn).await
    } else if bulk::claims(path) {
        bulk::handle(app, req, conn).await
    } else if dav::claims(path) {
        dav::handle(app, req, conn).await
    } else if login_flow::claims(path) {
        login_flow::handle(app, req, conn).await
    } else if shares::claims(path) {
        shares::handle(app, req, conn).await
    } else if preview::claims(path) {
        preview::handle(app, req, conn).await
    } else {
        unimplemented::handle(req).await
    }
}
