//! The public side of share links: no account, only what the link allows.
//!
//! Unknown, revoked and expired links get the same 404. A read link sees its file, or its
//! folder and everything beneath; client paths are resolved under the shared node's current
//! path from validated names only, so they cannot climb out. An upload link can only add
//! files to its folder. Store errors are answered with their status and a generic message, so
//! the owner's own paths never show.

use std::time::{Instant, SystemTime};

use http::request::Parts;
use http::{HeaderMap, Method, StatusCode, header};
use percloud_store::{CommitOptions, Entry, Precondition, Share, ShareMode, StorePath, UserId};
use serde::Deserialize;
use serde_json::json;

use super::shares::mode_name;
use super::{content, zip};
use crate::cookies;
use crate::json::{
    ApiError, ApiResult, Query, ReqBody, blocking, is_json, json, no_content, ok, read_json,
    store_path,
};
use crate::links::decode_token;
use crate::router::{AppInner, ConnInfo};

/// Names tried for an upload before giving up: `N`, `N (2)`, … `N (1000)`.
const MAX_RENAMES: u32 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Unlock {
    password: String,
}

/// A live link and where its node is now.
struct Link {
    share: Share,
    base: StorePath,
    entry: Entry,
}

pub(crate) async fn route(
    app: &AppInner,
    parts: &Parts,
    body: ReqBody,
    conn: ConnInfo,
    token: &str,
    rest: &[&str],
    query: &Query,
) -> ApiResult {
    let link = resolve(app, token).await?;
    let (method, headers) = (&parts.method, &parts.headers);
    match (method, rest) {
        (&Method::GET, []) => ok(&json!({
            "name": link.entry.name,
            "kind": if link.entry.is_dir() { "dir" } else { "file" },
            "mode": mode_name(link.share.mode),
            "needs_password": !unlocked(app, &link.share, headers),
        })),
        (&Method::POST, ["unlock"]) => unlock(app, &link, headers, body, conn).await,
        (&Method::PUT, ["upload"]) => upload(app, &link, headers, body, query).await,
        (&Method::GET | &Method::HEAD, ["list" | "file" | "zip" | "thumb"]) => {
            if link.share.mode != ShareMode::Read {
                return Err(ApiError::forbidden("this link only accepts uploads"));
            }
            if !unlocked(app, &link.share, headers) {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "this link needs its password",
                ));
            }
            let head = *method == Method::HEAD;
            read(app, &link, rest[0], query, headers, head).await
        }
        _ => Err(ApiError::not_found()),
    }
}

/// The live link behind `token`, or the one 404 for every kind of dead or unknown link.
async fn resolve(app: &AppInner, token: &str) -> ApiResult<Link> {
    let gone = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "this link does not exist or has expired",
        )
    };
    let bytes = decode_token(token).ok_or_else(gone)?;
    let hash = crate::links::token_hash(&bytes);
    let store = app.store.clone();
    let found = blocking(move || {
        let Some(share) = store.share_by_token_hash(&hash)? else {
            return Ok(None);
        };
        if share.expires.is_some_and(|t| t <= SystemTime::now()) {
            return Ok(None);
        }
        let Ok(base) = store.path_of(share.user, share.node) else {
            return Ok(None);
        };
        let Ok(entry) = store.stat(share.user, &base) else {
            return Ok(None);
        };
        Ok(Some(Link { share, base, entry }))
    })
    .await;
    match found {
        Ok(Some(link)) if link.share.token_hash == hash => Ok(link),
        Ok(_) => Err(gone()),
        Err(error) if error.status.is_server_error() => Err(error),
        Err(_) => Err(gone()),
    }
}

fn unlocked(app: &AppInner, share: &Share, headers: &HeaderMap) -> bool {
    share.password_hash.is_none()
        || cookies::get(headers, &crate::links::cookie_name(share.id))
            .is_some_and(|v| app.links.cookie_valid(share, v))
}

async fn unlock(
    app: &AppInner,
    link: &Link,
    headers: &HeaderMap,
    body: ReqBody,
    conn: ConnInfo,
) -> ApiResult {
    if !is_json(headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    let client = conn.peer.ip();
    if let Err(wait) = app.share_throttle.check(client, Instant::now()) {
        return Err(ApiError::too_many(wait.as_secs()));
    }
    let body: Unlock = read_json(body).await?;
    let Some(phc) = link.share.password_hash.clone() else {
        return Ok(no_content());
    };
    let right =
        blocking(move || Ok(percloud_accounts::verify_password(&body.password, &phc))).await?;
    if !right {
        app.share_throttle.record_failure(client, Instant::now());
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong password"));
    }
    app.share_throttle.record_success(client);
    let (name, value) = app.links.unlock_cookie(&link.share);
    let mut response = no_content();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookies::set(&name, &value, None, conn.is_tls()),
    );
    Ok(response)
}

/// A client path under the shared node: validated names appended to its current path.
fn under(link: &Link, relative: Option<&str>) -> ApiResult<StorePath> {
    let relative = store_path(relative.unwrap_or("/"))?;
    if !link.entry.is_dir() && !relative.is_root() {
        return Err(ApiError::not_found());
    }
    let mut path = link.base.clone();
    for name in relative.segments() {
        path = path
            .join(name)
            .map_err(|e| ApiError::bad_request(format!("invalid path: {e}")))?;
    }
    Ok(path)
}

/// `path` (under the base) as the client sees it: relative to the shared folder.
fn relative(link: &Link, path: &StorePath) -> StorePath {
    let skip = link.base.segments().len();
    StorePath::from_segments(path.segments().iter().skip(skip).cloned()).unwrap_or_default()
}

async fn read(
    app: &AppInner,
    link: &Link,
    what: &str,
    query: &Query,
    headers: &HeaderMap,
    head: bool,
) -> ApiResult {
    let user = link.share.user;
    let result = match what {
        "list" => {
            if !link.entry.is_dir() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "this link is a single file",
                ));
            }
            let path = under(link, query.get("path"))?;
            let store = app.store.clone();
            let shown = relative(link, &path);
            blocking(move || {
                let entry = store.stat(user, &path)?;
                let children = store.list(user, &path)?;
                Ok(crate::json::listing_json(&shown, &entry, &children))
            })
            .await
            .map(|listing| json(StatusCode::OK, &listing))
        }
        "file" => {
            let path = under(link, query.get("path"))?;
            content::open(&app.store, user, path)
                .await
                .map(|reader| content::file_answer(reader, headers, head, query.flag("download")))
        }
        "zip" => {
            if !link.entry.is_dir() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "this link is a single file",
                ));
            }
            zip::folder(&app.store, user, link.base.clone()).await
        }
        _ => {
            let path = under(link, query.get("path"))?;
            content::thumb(app, user, path, query.get("size")).await
        }
    };
    result.map_err(generic)
}

/// A store refusal with its status but none of the owner's details.
fn generic(error: ApiError) -> ApiError {
    let message = match error.status {
        StatusCode::NOT_FOUND => "not found",
        StatusCode::BAD_REQUEST => "invalid request",
        StatusCode::CONFLICT => "not possible here",
        StatusCode::INSUFFICIENT_STORAGE => "the box has no room for this",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "no thumbnail for this file",
        status if status.is_server_error() => "the box failed to do that",
        _ => return error,
    };
    ApiError {
        message: message.to_owned(),
        ..error
    }
}

async fn upload(
    app: &AppInner,
    link: &Link,
    headers: &HeaderMap,
    body: ReqBody,
    query: &Query,
) -> ApiResult {
    if link.share.mode != ShareMode::Upload || !link.entry.is_dir() {
        return Err(ApiError::forbidden("this link does not accept uploads"));
    }
    let name = query.require("name")?.to_owned();
    let expected = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("invalid Content-Length"))?,
        ),
    };
    let user = link.share.user;
    let target = free_name(app, user, &link.base, &name).await?;
    let options = CommitOptions {
        mtime: None,
        precondition: Precondition {
            if_match: None,
            if_none_match_any: true,
        },
        checksum: None,
    };
    let outcome = content::put_file(&app.store, user, target, body, expected, options)
        .await
        .map_err(generic)?;
    Ok(json(
        StatusCode::CREATED,
        &json!({ "name": outcome.entry.name, "size": outcome.entry.size }),
    ))
}

/// `name` in `dir`, or `name (2).ext`, `name (3).ext`, … when taken.
async fn free_name(
    app: &AppInner,
    user: UserId,
    dir: &StorePath,
    name: &str,
) -> ApiResult<StorePath> {
    let first = dir
        .join(name)
        .map_err(|e| ApiError::bad_request(format!("invalid file name: {e}")))?;
    let (store, dir, name) = (app.store.clone(), dir.clone(), name.to_owned());
    blocking(move || {
        let mut candidate = first;
        for n in 2..=MAX_RENAMES + 1 {
            match store.stat(user, &candidate) {
                Err(percloud_store::StoreError::NotFound { .. }) => return Ok(candidate),
                Err(err) => return Err(generic(err.into())),
                Ok(_) => {}
            }
            candidate = dir
                .join(&numbered(&name, n))
                .map_err(|_| ApiError::bad_request("file name too long"))?;
        }
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "too many files with this name",
        ))
    })
    .await
}

/// `photo.jpg`, 2 → `photo (2).jpg`; `notes`, 3 → `notes (3)`.
fn numbered(name: &str, n: u32) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem} ({n}).{ext}"),
        _ => format!("{name} ({n})"),
    }
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn numbers_names_before_the_extension() {
        assert_eq!(numbered("photo.jpg", 2), "photo (2).jpg");
        assert_eq!(numbered("notes", 3), "notes (3)");
        assert_eq!(numbered(".bashrc", 2), ".bashrc (2)");
        assert_eq!(numbered("a.tar.gz", 2), "a.tar (2).gz");
    }
}
