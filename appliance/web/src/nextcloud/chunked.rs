//! Chunking v2, the Nextcloud client's upload of large files, at
//! `/remote.php/dav/uploads/<user>/<transfer id>/`:
//! `MKCOL` (with `OC-Total-Length`), `PUT …/<chunk>` for each chunk (16-digit names, in
//! ascending order), `PROPFIND` of the folder (the chunks already there, so an interrupted
//! upload resumes where it stopped), `MOVE …/.file` (assembles into the `Destination`, with
//! `OC-Checksum` and `X-OC-Mtime`), `DELETE` (abandons it).
//!
//! An upload is one of the store's resumable ("staged") uploads: each chunk's bytes go straight
//! into packs as they arrive, so assembling is a metadata commit and a 10 GB file never needs
//! 10 GB of temporary space, let alone twice. The label of the staged upload holds the transfer
//! id and the chunks received (name and length), recorded in the same transaction as the
//! offset. A chunk is all or nothing: one whose body breaks off is not recorded. Uploads idle
//! for 24 hours are dropped by the maintenance worker (`Store::expire_staged`).
//!
//! The SHA-1 the final MOVE is checked against is computed while the chunks stream in and kept
//! in memory; after a restart the MOVE reads the staged bytes back once instead.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use http_body_util::BodyExt;
use percloud_dav::{Announced, Sha1, oc_mtime, upload_reply};
use percloud_store::{CommitOptions, Precondition, StagedId, StagedInfo, Store, User, UserId};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::multistatus::{self, Listing, Prop, collection, encode};
use crate::json::{ApiError, ApiResult, ReqBody, Resp, blocking};
use crate::router::App;

/// The name of the final MOVE's source.
const ASSEMBLE: &str = ".file";
/// Longest chunk or transfer name accepted.
const MAX_NAME: usize = 64;
/// Body pieces buffered between the connection and the store.
const PIECES_IN_FLIGHT: usize = 8;
/// SHA-1 states kept in memory at most (an upload beyond it is re-read at the MOVE).
const MAX_HASHERS: usize = 1024;

/// What the staged upload's label holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Label {
    /// The client's transfer id: the upload folder's name.
    nextcloud_upload: String,
    chunks: Vec<Chunk>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Chunk {
    name: String,
    len: u64,
}

/// Running SHA-1 of uploads, by (data folder, staged id), with the offset it covers.
type Hashers = HashMap<(PathBuf, StagedId), (u64, Sha1)>;
static HASHERS: LazyLock<Mutex<Hashers>> = LazyLock::new(Mutex::default);

fn hashers() -> std::sync::MutexGuard<'static, Hashers> {
    HASHERS.lock().unwrap_or_else(|p| p.into_inner())
}

fn take_hasher(store: &Store, id: StagedId, offset: u64) -> Option<Sha1> {
    let key = (store.data_dir().to_owned(), id);
    match hashers().remove(&key) {
        Some((at, sha)) if at == offset => Some(sha),
        _ => None,
    }
}

fn keep_hasher(store: &Store, id: StagedId, offset: u64, sha: Sha1) {
    let mut map = hashers();
    if map.len() >= MAX_HASHERS {
        map.clear();
    }
    map.insert((store.data_dir().to_owned(), id), (offset, sha));
}

/// Whether chunk `a` comes after chunk `b`: numerically when both are numbers (any width),
/// else by byte order.
fn comes_after(a: &str, b: &str) -> bool {
    let numeric = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    if numeric(a) && numeric(b) {
        let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
        (a.len(), a) > (b.len(), b)
    } else {
        a > b
    }
}

fn decode(segment: &str) -> ApiResult<String> {
    let name = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("upload path is not UTF-8"))?;
    if name.is_empty() || name.len() > MAX_NAME || name.contains(['/', '\\', '\0']) {
        return Err(ApiError::bad_request(format!("unusable name {name:?}")));
    }
    Ok(name.into_owned())
}

/// `user`'s upload with transfer id `tid`, with its label.
fn find(store: &Store, user: UserId, tid: &str) -> ApiResult<Option<(StagedInfo, Label)>> {
    Ok(store
        .staged_uploads(user)?
        .into_iter()
        .filter_map(|info| {
            let label: Label = serde_json::from_str(&info.label).ok()?;
            Some((info, label))
        })
        .find(|(_, label)| label.nextcloud_upload == tid))
}

async fn find_async(app: &App, user: UserId, tid: &str) -> ApiResult<(StagedInfo, Label)> {
    let (store, tid) = (app.inner.store.clone(), tid.to_owned());
    blocking(move || find(&store, user, &tid)?.ok_or_else(ApiError::not_found)).await
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
        ("MOVE", [tid, ASSEMBLE]) => assemble(app, user, files_prefix, tid, req.headers()).await,
        ("PUT", [tid, name]) => put_chunk(app, user, tid, name, req).await,
        ("DELETE", [tid, name]) => delete_chunk(app, user, tid, name).await,
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

async fn create(app: &App, user: &User, tid: &str, headers: &HeaderMap) -> ApiResult {
    let tid = decode(tid)?;
    let length = number_header(headers, "oc-total-length")?;
    let (store, id) = (app.inner.store.clone(), user.id);
    blocking(move || {
        if find(&store, id, &tid)?.is_some() {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this upload folder exists",
            ));
        }
        let label = Label {
            nextcloud_upload: tid,
            chunks: Vec::new(),
        };
        let label = serde_json::to_string(&label)
            .map_err(|e| ApiError::internal("writing an upload label", e))?;
        store.create_staged(id, length, &label)?;
        Ok(())
    })
    .await?;
    Ok(percloud_dav::status_response(StatusCode::CREATED))
}

async fn list_chunks(app: &App, user: &User, tid: &str, headers: &HeaderMap) -> ApiResult {
    let tid = decode(tid)?;
    let (info, label) = find_async(app, user.id, &tid).await?;
    let folder = format!("{}{}/", uploads_href(user), encode(&tid));
    let mut listing = Listing::new();
    listing.add(&folder, &folder_props(&info));
    let depth_zero = headers
        .get("depth")
        .is_some_and(|d| d.as_bytes().trim_ascii() == b"0");
    if !depth_zero {
        for chunk in &label.chunks {
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
    let (info, label) = find_async(app, user.id, &tid).await?;
    let chunk = label
        .chunks
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(ApiError::not_found)?;
    let mut listing = Listing::new();
    let href = format!("{}{}/{}", uploads_href(user), encode(&tid), encode(&name));
    listing.add(&href, &chunk_prop_list(&info, chunk));
    Ok(listing.into_response())
}

async fn abort(app: &App, user: &User, tid: &str) -> ApiResult {
    let tid = decode(tid)?;
    let (info, _) = find_async(app, user.id, &tid).await?;
    let (store, id) = (app.inner.store.clone(), user.id);
    take_hasher(&store, info.id, info.offset);
    blocking(move || Ok(store.abort_staged(id, info.id)?)).await?;
    Ok(percloud_dav::status_response(StatusCode::NO_CONTENT))
}

/// Chunks are kept only in one contiguous run, so a client never has one to delete; one
/// that is not there is already gone.
async fn delete_chunk(app: &App, user: &User, tid: &str, name: &str) -> ApiResult {
    let (tid, name) = (decode(tid)?, decode(name)?);
    let (_, label) = find_async(app, user.id, &tid).await?;
    if label.chunks.iter().any(|c| c.name == name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "a received chunk cannot be removed alone; delete the upload folder",
        ));
    }
    Ok(percloud_dav::status_response(StatusCode::NO_CONTENT))
}

enum Msg {
    Data(Bytes),
    /// The whole body arrived: record the chunk.
    End,
}

async fn put_chunk(
    app: &App,
    user: &User,
    tid: &str,
    name: &str,
    req: Request<ReqBody>,
) -> ApiResult {
    let (tid, name) = (decode(tid)?, decode(name)?);
    if name == ASSEMBLE {
        return Err(ApiError::bad_request(".file is not a chunk name"));
    }
    let length = number_header(req.headers(), header::CONTENT_LENGTH.as_str())?;
    let announced_offset = number_header(req.headers(), "oc-chunk-offset")?;
    let (info, mut label) = find_async(app, user.id, &tid).await?;
    if let Some(chunk) = label.chunks.iter().find(|c| c.name == name) {
        // A chunk sent again because its answer was lost: the same size is accepted as is.
        return if length == Some(chunk.len) {
            Ok(chunk_reply(&info, &name))
        } else {
            Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("chunk {name} was already received with another size"),
            ))
        };
    }
    if let Some(last) = label.chunks.last()
        && !comes_after(&name, &last.name)
    {
        return Err(ApiError::bad_request(format!(
            "chunk {name} arrived after chunk {}: chunks must come in ascending order",
            last.name
        )));
    }
    if let Some(at) = announced_offset
        && at != info.offset
    {
        return Err(ApiError::bad_request(format!(
            "OC-Chunk-Offset {at} does not continue the upload, which holds {} bytes",
            info.offset
        )));
    }

    let store = app.inner.store.clone();
    let (uid, sid, start) = (user.id, info.id, info.offset);
    let writer = {
        let store = store.clone();
        blocking(move || Ok(store.append_staged(uid, sid, start)?)).await?
    };
    let sha = take_hasher(&store, sid, start).or_else(|| (start == 0).then(Sha1::default));
    let (tx, mut rx) = mpsc::channel::<Msg>(PIECES_IN_FLIGHT);
    let chunk_name = name.clone();
    let worker = tokio::task::spawn_blocking(move || -> ApiResult<StagedInfo> {
        let mut writer = writer;
        let mut sha = sha;
        let mut received = 0u64;
        loop {
            match rx.blocking_recv() {
                Some(Msg::Data(data)) => {
                    received += data.len() as u64;
                    if let Some(sha) = &mut sha {
                        sha.update(&data);
                    }
                    writer.write(&data)?;
                }
                Some(Msg::End) => break,
                // The body broke off: dropping the writer records nothing of this chunk.
                None => return Err(ApiError::bad_request("chunk body incomplete")),
            }
        }
        label.chunks.push(Chunk {
            name: chunk_name,
            len: received,
        });
        let text = serde_json::to_string(&label)
            .map_err(|e| ApiError::internal("writing an upload label", e))?;
        writer.set_label(text);
        let info = writer.finish()?;
        if let Some(sha) = sha {
            keep_hasher(&store, sid, info.offset, sha);
        }
        Ok(info)
    });

    let mut body = req.into_body();
    let mut received = 0u64;
    let fed: Result<(), String> = loop {
        match body.frame().await {
            None => break Ok(()),
            Some(Err(e)) => break Err(format!("request body failed: {e}")),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                received += data.len() as u64;
                if length.is_some_and(|n| received > n) {
                    break Err("body longer than Content-Length".to_owned());
                }
                if tx.send(Msg::Data(data)).await.is_err() {
                    // The writer stopped (quota, beyond OC-Total-Length); its error says why.
                    break Ok(());
                }
            }
        }
    };
    let fed = fed.and_then(|()| match length {
        Some(n) if received < n => Err(format!("body ended after {received} of {n} bytes")),
        _ => Ok(()),
    });
    match &fed {
        Ok(()) => {
            let _ = tx.send(Msg::End).await;
        }
        Err(_) => drop(tx),
    }
    let stored = worker
        .await
        .map_err(|e| ApiError::internal("a chunk upload task", e))?;
    if let Err(why) = fed {
        tracing::debug!(upload = %tid, chunk = %name, %why, "chunk interrupted; not recorded");
        return Err(ApiError::bad_request(why));
    }
    let info = stored?;
    tracing::debug!(upload = %tid, chunk = %name, offset = info.offset, "chunk stored");
    Ok(chunk_reply(&info, &name))
}

fn chunk_reply(info: &StagedInfo, name: &str) -> Resp {
    let mut response = percloud_dav::status_response(StatusCode::CREATED);
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}-{}\"", info.id, name)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

async fn assemble(
    app: &App,
    user: &User,
    files_prefix: &str,
    tid: &str,
    headers: &HeaderMap,
) -> ApiResult {
    let tid = decode(tid)?;
    let files = app.inner.dav.mounted_at(files_prefix);
    let destination = headers
        .get("destination")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request("Destination header missing"))?;
    let target = files.resolve_url(destination).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Destination {destination:?} is not in this user's files"
        ))
    })?;
    if target.is_root() {
        return Err(ApiError::bad_request("cannot upload to the root"));
    }
    let (info, _) = find_async(app, user.id, &tid).await?;
    if let Some(length) = number_header(headers, "oc-total-length")?.or(info.length)
        && length != info.offset
    {
        return Err(ApiError::bad_request(format!(
            "the upload is incomplete: {} of {length} bytes received",
            info.offset
        )));
    }
    if let Some(refusal) = files
        .refuse_unless_preconditions(user.id, &target, headers)
        .await
    {
        return Ok(refusal);
    }
    let announced =
        Announced::from_headers(headers).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mtime = oc_mtime(headers);
    let conditional = ["if", "if-match", "if-none-match"]
        .iter()
        .any(|h| headers.contains_key(*h));
    let store = app.inner.store.clone();
    let uid = user.id;
    let outcome = blocking(move || {
        let checksum = match &announced {
            None => None,
            Some(announced) => match verify(&store, uid, &info, announced) {
                Ok(stored) => Some(stored),
                Err(e) => {
                    // The bytes are not what the client meant: drop them, store nothing.
                    let _ = store.abort_staged(uid, info.id);
                    return Err(e);
                }
            },
        };
        let precondition = if conditional {
            // What the headers were checked against must still hold at the commit.
            match store.stat(uid, &target) {
                Ok(entry) => Precondition {
                    if_match: Some(entry.etag),
                    if_none_match_any: false,
                },
                Err(percloud_store::StoreError::NotFound { .. }) => Precondition {
                    if_match: None,
                    if_none_match_any: true,
                },
                Err(e) => return Err(e.into()),
            }
        } else {
            Precondition::default()
        };
        let options = CommitOptions {
            mtime,
            precondition,
            checksum,
        };
        let outcome = store.commit_staged(uid, info.id, &target, &options)?;
        take_hasher(&store, info.id, info.offset);
        Ok(outcome)
    })
    .await?;
    tracing::debug!(upload = %tid, size = outcome.entry.size, "chunked upload assembled");
    Ok(upload_reply(
        &files.oc_id(outcome.entry.id),
        &outcome,
        mtime.is_some(),
    ))
}

/// The stored form of the announced checksum once the staged bytes match it.
fn verify(
    store: &Store,
    user: UserId,
    info: &StagedInfo,
    announced: &Announced,
) -> ApiResult<String> {
    let sha = match take_hasher(store, info.id, info.offset) {
        Some(sha) => sha,
        None => {
            let mut sha = Sha1::default();
            store.read_staged(user, info.id, &mut |bytes| sha.update(bytes))?;
            sha
        }
    };
    sha.verify(announced)
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_chunk_names() {
        assert!(comes_after("0000000000000002", "0000000000000001"));
        assert!(comes_after("10", "9"));
        assert!(!comes_after("0000000000000001", "0000000000000001"));
        assert!(!comes_after("0000000000000001", "0000000000000010"));
        assert!(comes_after("b", "a"));
    }
}
