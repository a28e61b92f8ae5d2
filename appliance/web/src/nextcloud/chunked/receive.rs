//! A chunk `PUT`: the body streams on a blocking thread into the upload's run when the chunk
//! comes after every chunk there (the clients send them in order), else into a staged
//! upload of its own ("parked") that assembly merges in. Only a body received whole is
//! recorded; the chunk list changes in the same transaction as the bytes it describes.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use percloud_dav::Sha1;
use percloud_store::{StagedId, StagedInfo, StagedWriter, Store, User, UserId};
use tokio::sync::mpsc;

use super::hashers::{keep_hasher, take_hasher};
use super::label::{self, Chunk, Label, ParkedLabel};
use super::{ASSEMBLE, chunk_reply, decode, number_header};
use crate::json::{ApiError, ApiResult, ReqBody, blocking};
use crate::router::App;

/// Body pieces buffered between the connection and the store.
const PIECES_IN_FLIGHT: usize = 8;
/// Chunks one upload may have: the label lists them all and is rewritten with each one
/// (10 GB in 1 MiB chunks is about 10,000).
const MAX_CHUNKS: usize = 50_000;

pub(super) async fn put_chunk(
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
    let (info, label) = {
        let (store, tid) = (app.inner.store.clone(), tid.clone());
        let uid = user.id;
        blocking(move || label::find(&store, uid, &tid)?.ok_or_else(ApiError::not_found)).await?
    };
    if let Some(chunk) = label.live(&name) {
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
    if label.chunks.len() >= MAX_CHUNKS {
        return Err(ApiError::bad_request(format!(
            "an upload holds at most {MAX_CHUNKS} chunks; use larger ones"
        )));
    }
    check_offset(req.headers(), &label, &name)?;
    let store = app.inner.store.clone();
    let target = if label.appends(&name) {
        let (uid, sid, start) = (user.id, info.id, info.offset);
        let writer = {
            let store = store.clone();
            blocking(move || Ok(store.append_staged(uid, sid, start)?)).await?
        };
        let sha = take_hasher(&store, sid, start)
            .or_else(|| (start == 0).then(Sha1::default))
            .map(Box::new);
        Sink::Run {
            writer,
            sha,
            store,
            user: uid,
            id: sid,
            name: name.clone(),
        }
    } else {
        let (uid, tid2, name2) = (user.id, tid.clone(), name.clone());
        let run = info.id;
        let (parked, writer) = {
            let store = store.clone();
            blocking(move || {
                let text = label::to_text(&ParkedLabel {
                    nextcloud_chunk_of: tid2,
                    name: name2,
                })?;
                let parked = store.create_staged(uid, length, &text)?;
                Ok((parked.id, store.append_staged(uid, parked.id, 0)?))
            })
            .await?
        };
        tracing::debug!(upload = %tid, chunk = %name, "chunk out of order; parked");
        Sink::Parked {
            writer,
            store,
            user: uid,
            run,
            parked,
            name: name.clone(),
        }
    };
    let info = stream(req.into_body(), length, target)
        .await
        .inspect_err(|e| {
            tracing::debug!(upload = %tid, chunk = %name, why = %e.message, "chunk not recorded");
        })?;
    tracing::debug!(upload = %tid, chunk = %name, offset = info.offset, "chunk stored");
    Ok(chunk_reply(&info, &name))
}

/// 400 when `OC-Chunk-Offset` puts chunk `name` before the end of the chunks named before it
/// that are already here: the client and the box disagree about the upload. (An offset past
/// them is a gap that chunks still to come will fill.)
fn check_offset(headers: &HeaderMap, label: &Label, name: &str) -> ApiResult<()> {
    let Some(at) = number_header(headers, "oc-chunk-offset")? else {
        return Ok(());
    };
    let before: u64 = label
        .in_file_order()
        .iter()
        .filter(|c| label::comes_after(name, &c.name))
        .map(|c| c.len)
        .sum();
    if at < before {
        return Err(ApiError::bad_request(format!(
            "OC-Chunk-Offset {at} of chunk {name} overlaps the {before} bytes of the chunks \
             before it"
        )));
    }
    Ok(())
}

/// Where a chunk's bytes go.
enum Sink {
    /// The end of the upload's run.
    Run {
        writer: StagedWriter,
        /// Boxed: a SHA-1 state is large beside the other variant.
        sha: Option<Box<Sha1>>,
        store: Store,
        user: UserId,
        id: StagedId,
        name: String,
    },
    /// A staged upload of its own, then recorded in the run's label.
    Parked {
        writer: StagedWriter,
        store: Store,
        user: UserId,
        run: StagedId,
        parked: StagedId,
        name: String,
    },
}

impl Sink {
    fn write(&mut self, data: &[u8]) -> ApiResult<()> {
        match self {
            Sink::Run { writer, sha, .. } => {
                if let Some(sha) = sha {
                    sha.update(data);
                }
                writer.write(data)?;
            }
            Sink::Parked { writer, .. } => writer.write(data)?,
        }
        Ok(())
    }

    /// The whole body arrived: records the chunk; the run's state after it.
    fn finish(self, received: u64) -> ApiResult<StagedInfo> {
        match self {
            Sink::Run {
                mut writer,
                sha,
                store,
                user,
                id,
                name,
            } => {
                // The label as it is now: we hold the upload, nothing changes it meanwhile.
                let (_, mut label) = label::current(&store, user, id)?;
                label.chunks.push(Chunk {
                    name,
                    len: received,
                    parked: None,
                    dropped: false,
                });
                writer.set_label(label.to_text()?);
                let info = writer.finish()?;
                if let Some(sha) = sha {
                    keep_hasher(&store, id, info.offset, *sha);
                }
                Ok(info)
            }
            Sink::Parked {
                writer,
                store,
                user,
                run,
                parked,
                name,
            } => {
                writer.finish()?;
                let recorded = label::relabel(&store, user, run, |label: &mut Label| {
                    label.chunks.push(Chunk {
                        name,
                        len: received,
                        parked: Some(parked),
                        dropped: false,
                    });
                });
                if let Err(e) = recorded {
                    let _ = store.abort_staged(user, parked);
                    return Err(e);
                }
                Ok(store.staged(user, run)?)
            }
        }
    }

    /// The body did not arrive whole: a parked chunk's own upload goes; a run keeps nothing
    /// (its writer is dropped unfinished).
    fn abandon(self) {
        if let Sink::Parked {
            writer,
            store,
            user,
            parked,
            ..
        } = self
        {
            drop(writer);
            let _ = store.abort_staged(user, parked);
        }
    }
}

enum Msg {
    Data(Bytes),
    /// The whole body arrived.
    End,
}

/// Streams `body` into `sink` on a blocking thread; records the chunk only when the body
/// arrived whole (and as long as `Content-Length` said, when sent).
async fn stream(body: ReqBody, length: Option<u64>, sink: Sink) -> ApiResult<StagedInfo> {
    let (tx, mut rx) = mpsc::channel::<Msg>(PIECES_IN_FLIGHT);
    let worker = tokio::task::spawn_blocking(move || -> ApiResult<StagedInfo> {
        let mut sink = sink;
        let mut received = 0u64;
        loop {
            match rx.blocking_recv() {
                Some(Msg::Data(data)) => {
                    received += data.len() as u64;
                    if let Err(e) = sink.write(&data) {
                        sink.abandon();
                        return Err(e);
                    }
                }
                Some(Msg::End) => return sink.finish(received),
                None => {
                    sink.abandon();
                    return Err(ApiError::bad_request("chunk body incomplete"));
                }
            }
        }
    });
    let mut body = body;
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
        return Err(ApiError::bad_request(why));
    }
    stored
}

/// Deletes chunk `name`: a parked one goes with its upload; one in the run is marked dropped
/// (its bytes are skipped at assembly). One that is not there is already gone.
pub(super) async fn delete_chunk(app: &App, user: &User, tid: &str, name: &str) -> ApiResult {
    let (tid, name) = (decode(tid)?, decode(name)?);
    let (store, uid) = (app.inner.store.clone(), user.id);
    blocking(move || {
        let (info, label) = label::find(&store, uid, &tid)?.ok_or_else(ApiError::not_found)?;
        let Some(chunk) = label.live(&name).cloned() else {
            return Ok(());
        };
        label::relabel(&store, uid, info.id, |label| match chunk.parked {
            Some(parked) => label.chunks.retain(|c| c.parked != Some(parked)),
            None => {
                for c in label.chunks.iter_mut() {
                    if c.in_run() && c.is_live() && c.name == name {
                        c.dropped = true;
                    }
                }
            }
        })?;
        if let Some(parked) = chunk.parked {
            store.abort_staged(uid, parked)?;
        }
        Ok(())
    })
    .await?;
    Ok(percloud_dav::status_response(StatusCode::NO_CONTENT))
}
