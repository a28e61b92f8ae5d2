//! The trash as the Nextcloud apps see it, at `/remote.php/dav/trashbin/<user>/`:
//! `PROPFIND trash/` lists what was deleted (`nc:trashbin-filename`,
//! `nc:trashbin-original-location`, `nc:trashbin-deletion-time`), `MOVE trash/<item>` to
//! `restore/<item>` puts it back, `DELETE trash/<item>` purges it and `DELETE trash` empties the
//! trash. It is the store's trash, the same the web page shows. An item's name in URLs is
//! `<name>.d<trash id>` (Nextcloud's items end in `.d<deletion time>`; the id is unique).

use http::{Request, StatusCode};
use percloud_store::{TrashEntry, TrashId, User};

use super::multistatus::{self, Listing, Prop, collection, encode};
use crate::json::{ApiError, ApiResult, ReqBody, Resp, blocking};
use crate::router::App;

/// The item name of a trash entry in URLs.
fn item_name(item: &TrashEntry) -> String {
    format!("{}.d{}", item.entry.name, item.id)
}

/// The trash id in an item name (`%XX`-decoded or not: the id is digits after the last `.d`).
fn item_id(segment: &str) -> Option<TrashId> {
    segment.rsplit_once(".d")?.1.parse().ok()
}

fn base(user: &User) -> String {
    format!("/remote.php/dav/trashbin/{}/", encode(&user.name))
}

/// Serves `rest` (after `/remote.php/dav/trashbin/<user>`).
pub(super) async fn handle(app: &App, user: &User, rest: &str, req: Request<ReqBody>) -> Resp {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().as_str().to_owned();
    let result = match (method.as_str(), segments.as_slice()) {
        ("PROPFIND", []) => Ok(root(user)),
        ("PROPFIND", ["trash"]) => list(app, user, req.headers()).await,
        ("PROPFIND", ["restore"]) => {
            let mut listing = Listing::new();
            listing.add(&format!("{}restore/", base(user)), &[collection()]);
            Ok(listing.into_response())
        }
        ("DELETE", ["trash"]) => empty(app, user).await,
        ("DELETE", ["trash", item]) => purge(app, user, item).await,
        ("MOVE", ["trash", item]) => restore(app, user, item, req.headers()).await,
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{method} {rest} is not supported in the trash"),
        )),
    };
    result.unwrap_or_else(|e| {
        tracing::debug!(%method, %rest, status = %e.status, message = %e.message, "nextcloud trash request refused");
        e.into_response()
    })
}

fn root(user: &User) -> Resp {
    let base = base(user);
    let mut listing = Listing::new();
    listing.add(&base, &[collection()]);
    listing.add(&format!("{base}trash/"), &[collection()]);
    listing.add(&format!("{base}restore/"), &[collection()]);
    listing.into_response()
}

async fn list(app: &App, user: &User, headers: &http::HeaderMap) -> ApiResult {
    let (store, id) = (app.inner.store.clone(), user.id);
    let items = blocking(move || Ok(store.trash(id)?)).await?;
    let trash = format!("{}trash/", base(user));
    let mut listing = Listing::new();
    listing.add(&trash, &[collection()]);
    let depth_zero = headers
        .get("depth")
        .is_some_and(|d| d.as_bytes().trim_ascii() == b"0");
    if !depth_zero {
        for item in &items {
            let mut href = format!("{trash}{}", encode(&item_name(item)));
            if item.entry.is_dir() {
                href.push('/');
            }
            listing.add(&href, &item_props(app, item));
        }
    }
    Ok(listing.into_response())
}

fn item_props(app: &App, item: &TrashEntry) -> Vec<Prop> {
    let e = &item.entry;
    let deleted = item
        .deleted
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut props = vec![
        ("nc:trashbin-filename", multistatus::escape(&e.name)),
        (
            "nc:trashbin-original-location",
            multistatus::escape(item.original_path.trim_start_matches('/')),
        ),
        ("nc:trashbin-deletion-time", deleted.to_string()),
        ("d:getlastmodified", multistatus::http_date(e.mtime)),
        ("d:getetag", format!("\"{}\"", multistatus::escape(&e.etag))),
        ("oc:id", app.inner.dav.oc_id(e.id)),
        ("oc:fileid", e.id.to_string()),
        ("oc:size", e.size.to_string()),
    ];
    if e.is_dir() {
        props.push(collection());
    } else {
        props.push(("d:resourcetype", String::new()));
        props.push(("d:getcontentlength", e.size.to_string()));
        props.push((
            "d:getcontenttype",
            percloud_dav::content_type(&e.name).to_owned(),
        ));
    }
    props
}

fn parse_item(segment: &str) -> ApiResult<TrashId> {
    let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
    item_id(&decoded).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such trash item"))
}

async fn purge(app: &App, user: &User, item: &str) -> ApiResult {
    let id = parse_item(item)?;
    let (store, uid) = (app.inner.store.clone(), user.id);
    blocking(move || Ok(store.purge_from_trash(uid, id)?)).await?;
    Ok(percloud_dav::status_response(StatusCode::NO_CONTENT))
}

async fn empty(app: &App, user: &User) -> ApiResult {
    let (store, uid) = (app.inner.store.clone(), user.id);
    blocking(move || Ok(store.empty_trash(uid)?)).await?;
    Ok(percloud_dav::status_response(StatusCode::NO_CONTENT))
}

/// `MOVE trash/<item>` with `Destination: …/trashbin/<user>/restore/<anything>`: back to where
/// it was (under a new name when that place is taken, as the store decides).
async fn restore(app: &App, user: &User, item: &str, headers: &http::HeaderMap) -> ApiResult {
    let id = parse_item(item)?;
    let destination = super::dav::destination(headers)?;
    if !destination.starts_with(&format!("{}restore/", base(user))) {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "a trash item can only be moved to restore/",
        ));
    }
    let (store, uid) = (app.inner.store.clone(), user.id);
    blocking(move || Ok(store.restore_from_trash(uid, id)?)).await?;
    Ok(percloud_dav::status_response(StatusCode::CREATED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_names_carry_the_trash_id() {
        assert_eq!(item_id("notes.d.txt.d17"), Some(17));
        assert_eq!(item_id("x.d"), None);
        assert_eq!(item_id("plain"), None);
    }
}
