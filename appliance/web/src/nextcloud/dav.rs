//! `/remote.php/…`: the Nextcloud client's WebDAV. The user's files are the same tree as
//! `/dav/`, served by `percloud-dav` mounted at `/remote.php/dav/files/<user>` (and at
//! `/remote.php/webdav` for older clients); chunked uploads, trash and versions have their
//! own modules. The user named in a path must be the one who signed in (403 otherwise).

use http::{HeaderMap, Request, StatusCode};
use percloud_store::User;

use super::{chunked, trashbin, versions};
use crate::json::{ApiError, ReqBody, Resp};
use crate::responses;
use crate::router::{App, ConnInfo};

const WEBDAV: &str = "/remote.php/webdav";
const DAV: &str = "/remote.php/dav/";

/// The path of a MOVE's `Destination` header (the trash and versions spaces restore by
/// moving to `…/restore/…`).
pub(super) fn destination(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get("destination")
        .and_then(|v| v.to_str().ok())
        .and_then(percloud_dav::destination_path)
        .ok_or_else(|| ApiError::bad_request("Destination header missing or malformed"))
}

pub(super) fn claims(path: &str) -> bool {
    path == WEBDAV || path.starts_with("/remote.php/webdav/") || path.starts_with(DAV)
}

/// Which space of `/remote.php/dav/<space>/<user>/…` a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Space {
    Files,
    Uploads,
    Trashbin,
    Versions,
}

/// A parsed `/remote.php/dav/<space>/<user>[/rest]`.
#[derive(Debug)]
struct Target<'a> {
    space: Space,
    /// The user segment as it appears in the URL (still percent-encoded).
    raw_user: &'a str,
    /// What follows the user segment (`""` or starting with `/`).
    rest: &'a str,
}

fn parse(path: &str) -> Option<Target<'_>> {
    let tail = path.strip_prefix(DAV)?;
    let (space, tail) = tail.split_once('/')?;
    let space = match space {
        "files" => Space::Files,
        "uploads" => Space::Uploads,
        "trashbin" => Space::Trashbin,
        "versions" => Space::Versions,
        _ => return None,
    };
    let (raw_user, rest) = match tail.find('/') {
        Some(at) => (&tail[..at], &tail[at..]),
        None => (tail, ""),
    };
    (!raw_user.is_empty()).then_some(Target {
        space,
        raw_user,
        rest,
    })
}

/// Whether the URL's user segment names `user` (`%XX` decoded; `+` stays `+`).
fn names(raw_user: &str, user: &User) -> bool {
    percent_encoding::percent_decode_str(raw_user)
        .decode_utf8()
        .is_ok_and(|name| name == user.name)
}

pub(super) async fn handle(app: &App, req: Request<ReqBody>, conn: ConnInfo) -> Resp {
    let user = match app
        .inner
        .auth
        .require_user(req.headers(), conn.peer.ip())
        .await
    {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    let path = req.uri().path().to_owned();
    if path == WEBDAV || path.starts_with("/remote.php/webdav/") {
        let dav = app.inner.dav.mounted_at(WEBDAV);
        return dav.handle(user.id, req).await;
    }
    let Some(target) = parse(&path) else {
        return super::unimplemented::handle(req).await;
    };
    if !names(target.raw_user, &user) {
        tracing::debug!(%path, user = %user.name, "nextcloud path names another user");
        return responses::text(StatusCode::FORBIDDEN, "this path belongs to another user");
    }
    let files_prefix = format!("{DAV}files/{}", target.raw_user);
    match target.space {
        Space::Files => {
            let dav = app.inner.dav.mounted_at(files_prefix);
            dav.handle(user.id, req).await
        }
        Space::Uploads => chunked::handle(app, &user, &files_prefix, target.rest, req).await,
        Space::Trashbin => trashbin::handle(app, &user, target.rest, req).await,
        Space::Versions => versions::handle(app, &user, target.rest, req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spaces_and_users() {
        let t = parse("/remote.php/dav/files/alice/a/b").expect("files");
        assert_eq!(
            (t.space, t.raw_user, t.rest),
            (Space::Files, "alice", "/a/b")
        );
        let t = parse("/remote.php/dav/uploads/al%20ice").expect("uploads");
        assert_eq!(
            (t.space, t.raw_user, t.rest),
            (Space::Uploads, "al%20ice", "")
        );
        assert!(parse("/remote.php/dav/files/").is_none());
        assert!(parse("/remote.php/dav/calendars/alice/").is_none());
        assert!(parse("/remote.php/dav/").is_none());
    }
}
