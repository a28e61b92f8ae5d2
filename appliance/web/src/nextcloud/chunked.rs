//! Chunking v2, the Nextcloud client's upload of large files, at
//! `/remote.php/dav/uploads/<user>/<transfer id>/`:
//! `MKCOL` (with `OC-Total-Length`), `PUT …/<chunk>` for each chunk (16-digit names),
//! `PROPFIND` of the folder (the chunks already there, so an interrupted upload resumes where
//! it stopped), `MOVE …/.file` (assembles into the `Destination`, with `OC-Checksum` and
//! `X-OC-Mtime`), `DELETE` of a chunk or of the whole upload.
//!
//! An upload is one of the store's resumable ("staged") uploads, its *run*: each chunk's
//! bytes go straight into packs as they arrive, so assembling is a metadata commit and a 10 GB
//! file never needs 10 GB of temporary space, let alone twice. The run's label
//! (`label.rs`) holds the transfer id and the chunks received, recorded in the same
//! transaction as their bytes. A chunk is all or nothing: one whose body breaks off is not
//! recorded. Chunks arriving out of order go to staged uploads of their own and are merged
//! in at assembly (`receive.rs`, `assemble.rs`). Uploads idle for 24 hours are dropped by the
//! maintenance worker (`Store::expire_staged`).

mod assemble;
mod hashers;
mod label;
mod receive;

use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use percloud_store::{StagedInfo, User};

use self::label::{Chunk, Label};
use super::multistatus::{self, Listing, Prop, collection, encode};
use crate::json::{ApiError, ApiResult, ReqBody, Resp, blocking};
use crate::router::App;

/// The name of the final MOVE's source.
const ASSEMBLE: &str = ".file";
/// Longest chunk or transfer name accepted.
const MAX_NAME: usize = 64;

fn decode(segment: &str) -> ApiResult<String> {
    let name = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("upload path is not UTF-8"))?;
    if name.is_empty() || name.len() > MAX_NAME || name.contains(['/', '\\', '\0']) {
        return Err(ApiError::bad_request(format!("unusable name {name:?}")));
    }
    Ok(name.into_owned())
}

fn number_header(headers: &HeaderMap, name: &str) -> ApiResult<Option<u64>> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{name} is not a number"))),
    }
}

async fn find_async(app: &App, user: &User, tid: &str) -> ApiResult<(StagedInfo, Label)> {
    let (store, tid, uid) = (app.inner.store.clone(), tid.to_owned(), user.id);
    blocking(move || label::find(&store, uid, &tid)?.ok_or_else(ApiError::not_found)).await
}

/// Serves `rest` (after `/remote.php/dav/uploads/<user>`); `files_prefix` is where the
/// user's files are mounted (MOVE destinations resolve there).
pub(super) async fn handle(
    app: &App,
    user: &User,
    files_prefix: &str,
    rest: &str,
    req: Request<ReqBody>,
) -> Resp {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().as_str().to_owned();
    let result = match (method.as_str(), segments.as_slice()) {
        ("PROPFIND", []) => list_uploads(app, user).await,
        ("MKCOL", [tid]) => create(app, user, tid, req.headers()).await,
        ("PROPFIND", [tid]) => list_chunks(app, user, tid, req.headers()).await,
        ("DELETE", [tid]) => abort(app, user, tid).await,
        ("MOVE", [tid, ASSEMBLE]) => {
            assemble::assemble(app, user, files_prefix, tid, req.headers()).await
        }
        ("PUT", [tid, name]) => receive::put_chunk(app, user, tid, name, req).await,
        ("DELETE", [tid, name]) => receive::delete_chunk(app, user, tid, name).await,
        ("PROPFIND", [tid, name]) => chunk_props(app, user, tid, name).await,
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not supported here"),
        )),
    };
    result.unwrap_or_else(|e| {
        tracing::debug!(%method, %rest, status = %e.status, message = %e.message, "nextcloud upload refused");
        e.into_response()
    })
}

fn uploads_href(user: &User) -> String {
    format!("/remote.php/dav/uploads/{}/", encode(&user.name))
}

async fn list_uploads(app: &App, user: &User) -> ApiResult {
    let (store, id) = (app.inner.store.clone(), user.id);
    let uploads = blocking(move || Ok(store.staged_uploads(id)?)).await?;
    let mut listing = Listing::new();
    let base = uploads_href(user);
    listing.add(&base, &[collection()]);
    for info in uploads {
        if let Ok(label) = serde_json::from_str::<Label>(&info.label) {
            let href = format!("{base}{}/", encode(&label.nextcloud_upload));
            listing.add(&href, &folder_props(&info));
        }
    }
    Ok(listing.into_response())
}

fn folder_props(info: &StagedInfo) -> Vec<Prop> {
    vec![
        collection(),
        ("d:getlastmodified", multistatus::http_date(info.updated)),
        ("d:getetag", format!("\"{}-{}\"", info.id, info.offset)),
    ]
}

/// `MKCOL`: a new upload. Its length is kept in the label (the run may hold more bytes than
/// the file: chunks deleted by the client), and checked against the free quota now.
async fn create(app: &App, user: &User, tid: &str, headers: &HeaderMap) -> ApiResult {
    let tid = decode(tid)?;
    let total = number_header(headers, "oc-total-length")?;
    if let (Some(total), Some(quota)) = (total, user.quota)
        && total > quota.saturating_sub(user.used)
    {
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            format!("{total} bytes do not fit the free quota"),
        ));
    }
    let (store, id) = (app.inner.store.clone(), user.id);
    blocking(move || {
        if label::find(&store, id, &tid)?.is_some() {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this upload folder exists",
            ));
        }
        store.create_staged(id, None, &Label::new(tid, total).to_text()?)?;
        Ok(())
    })
    .await?;
    Ok(percloud_dav::status_response(StatusCode::CREATED))
}

async fn list_chunks(app: &App, user: &User, tid: &str, headers: &HeaderMap) -> ApiResult {
    let tid = decode(tid)?;
    let (info, label) = find_async(app, user, &tid).await?;
    let folder = format!("{}{}/", uploads_href(user), encode(&tid));
    let mut listing = Listing::new();
    listing.add(&folder, &folder_props(&info));
    let depth_zero = headers
        .get("depth")
        .is_some_and(|d| d.as_bytes().trim_ascii() == b"0");
    if !depth_zero {
        for chunk in label.in_file_order() {
            listing.add(
                &format!("{folder}{}", encode(&chunk.name)),
                &chunk_prop_list(&info, chunk),
            );
        }
    }
    Ok(listing.into_response())
}

fn chunk_prop_list(info: &StagedInfo, chunk: &Chunk) -> Vec<Prop> {
    vec![
        ("d:resourcetype", String::new()),
        ("d:getcontentlength", chunk.len.to_string()),
        ("d:getlastmodified", multistatus::http_date(info.updated)),
        (
            "d:getetag",
            format!("\"{}\"", multistatus::escape(&chunk.name)),
        ),
    ]
}

async fn chunk_props(app: &App, user: &User, tid: &str, name: &str) -> ApiResult {
    let (tid, name) = (decode(tid)?, decode(name)?);
    let (info, label) = find_async(app, user, &tid).await?;
    let chunk = label.live(&name).ok_or_else(ApiError::not_found)?;
    let mut listing = Listing::new();
    let href = format!("{}{}/{}", uploads_href(user), encode(&tid), encode(&name));
    listing.add(&href, &chunk_prop_list(&info, chunk));
    Ok(listing.into_response())
}

/// `DELETE` of the upload folder: the run and its parked chunks go.
async fn abort(app: &App, user: &User, tid: &str) -> ApiResult {
    let tid = decode(tid)?;
    let (info, label) = find_async(app, user, &tid).await?;
    let (store, id) = (app.inner.store.clone(), user.id);
    blocking(move || {
        hashers::take_hasher(&store, info.id, info.offset);
        for parked in label.chunks.iter().filter_map(|c| c.parked) {
            let _ = store.abort_staged(id, parked);
        }
        Ok(store.abort_staged(id, info.id)?)
    })
    .await?;
    Ok(percloud_dav::status_response(StatusCode::NO_CONTENT))
}

/// A chunk PUT's answer.
fn chunk_reply(info: &StagedInfo, name: &str) -> Resp {
    let mut response = percloud_dav::status_response(StatusCode::CREATED);
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}-{}\"", info.id, name)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}
