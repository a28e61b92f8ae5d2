//! Earlier versions of a file as the Nextcloud apps see them, at
//! `/remote.php/dav/versions/<user>/versions/<file id>/`: `PROPFIND` lists the versions
//! before the current one (named by version id), `GET …/<version>` downloads one, `MOVE
//! …/<version>` to `…/versions/<user>/restore/target` makes it current again (as a new
//! version: nothing is lost). The file is found by its id, which survives renames and moves.

use http::{HeaderMap, Method, Request, StatusCode};
use percloud_store::{NodeId, StorePath, User, VersionId, VersionInfo};

use super::multistatus::{self, Listing, Prop, collection, encode};
use crate::json::{ApiError, ApiResult, ReqBody, Resp, blocking};
use crate::router::App;

fn base(user: &User) -> String {
    format!("/remote.php/dav/versions/{}/", encode(&user.name))
}

fn number<T: std::str::FromStr>(segment: &str) -> ApiResult<T> {
    segment
        .parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("no such item {segment:?}")))
}

/// Serves `rest` (after `/remote.php/dav/versions/<user>`).
pub(super) async fn handle(app: &App, user: &User, rest: &str, req: Request<ReqBody>) -> Resp {
    let method = req.method().clone();
    route(app, user, rest, &method, req.headers())
        .await
        .unwrap_or_else(|e| {
            tracing::debug!(%method, %rest, status = %e.status, message = %e.message, "nextcloud versions request refused");
            e.into_response()
        })
}

async fn route(
    app: &App,
    user: &User,
    rest: &str,
    method: &Method,
    headers: &HeaderMap,
) -> ApiResult {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (method.as_str(), segments.as_slice()) {
        ("PROPFIND", []) => {
            let mut listing = Listing::new();
            listing.add(&base(user), &[collection()]);
            listing.add(&format!("{}versions/", base(user)), &[collection()]);
            Ok(listing.into_response())
        }
        ("PROPFIND", ["versions", file]) => list(app, user, number(file)?).await,
        ("GET" | "HEAD", ["versions", file, version]) => {
            let head = method == Method::HEAD;
            download(app, user, number(file)?, number(version)?, headers, head).await
        }
        ("MOVE", ["versions", file, version]) => {
            restore(app, user, number(file)?, number(version)?, headers).await
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{method} {rest} is not supported in versions"),
        )),
    }
}

/// The file's current path and its versions (current first).
async fn versions_of(
    app: &App,
    user: &User,
    file: NodeId,
) -> ApiResult<(StorePath, Vec<VersionInfo>)> {
    let (store, uid) = (app.inner.store.clone(), user.id);
    blocking(move || {
        let path = store.path_of(uid, file)?;
        let versions = store.versions(uid, &path)?;
        Ok((path, versions))
    })
    .await
}

async fn list(app: &App, user: &User, file: NodeId) -> ApiResult {
    let (path, versions) = versions_of(app, user, file).await?;
    let folder = format!("{}versions/{file}/", base(user));
    let mut listing = Listing::new();
    listing.add(&folder, &[collection()]);
    let name = path.segments().last().cloned().unwrap_or_default();
    for v in versions.iter().filter(|v| !v.current) {
        listing.add(&format!("{folder}{}", v.version), &version_props(&name, v));
    }
    Ok(listing.into_response())
}

fn version_props(name: &str, v: &VersionInfo) -> Vec<Prop> {
    vec![
        ("d:resourcetype", String::new()),
        ("d:getcontentlength", v.size.to_string()),
        ("d:getlastmodified", multistatus::http_date(v.mtime)),
        ("d:getetag", format!("\"{}\"", multistatus::escape(&v.etag))),
        (
            "d:getcontenttype",
            percloud_dav::content_type(name).to_owned(),
        ),
    ]
}

async fn download(
    app: &App,
    user: &User,
    file: NodeId,
    version: VersionId,
    headers: &HeaderMap,
    head: bool,
) -> ApiResult {
    let (store, uid) = (app.inner.store.clone(), user.id);
    let reader = blocking(move || {
        let path = store.path_of(uid, file)?;
        Ok(store.open_version(uid, &path, version)?)
    })
    .await?;
    Ok(percloud_dav::file_response(headers, reader, head))
}

async fn restore(
    app: &App,
    user: &User,
    file: NodeId,
    version: VersionId,
    headers: &HeaderMap,
) -> ApiResult {
    let destination = super::dav::destination(headers)?;
    if !destination.starts_with(&format!("{}restore", base(user))) {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "a version can only be moved to restore/target",
        ));
    }
    let (store, uid) = (app.inner.store.clone(), user.id);
    blocking(move || {
        let path = store.path_of(uid, file)?;
        Ok(store.restore_version(uid, &path, version)?)
    })
    .await?;
    Ok(percloud_dav::status_response(StatusCode::NO_CONTENT))
}
