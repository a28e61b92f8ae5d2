//! `MOVE …/<transfer id>/.file`: the upload becomes the file at `Destination`. When every
//! chunk came in order (the clients' way) the run is committed as it is — a metadata commit,
//! no byte copied. Otherwise (chunks parked or deleted) the live chunks are streamed in file
//! order into a new upload: the bytes are read once more, and deduplication keeps the new
//! copy almost free on disk.

use std::collections::VecDeque;

use http::HeaderMap;
use percloud_dav::{Announced, Sha1, oc_mtime, upload_reply};
use percloud_store::{
    CommitOptions, CommitOutcome, Precondition, StagedId, StagedInfo, Store, StorePath, Upload,
    User, UserId,
};

use super::hashers::take_hasher;
use super::label::{self, Label, order};
use super::{decode, number_header};
use crate::json::{ApiError, ApiResult, blocking};
use crate::router::App;

pub(super) async fn assemble(
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
    let (info, label) = {
        let (store, tid, uid) = (app.inner.store.clone(), tid.clone(), user.id);
        blocking(move || label::find(&store, uid, &tid)?.ok_or_else(ApiError::not_found)).await?
    };
    let have: u64 = label.in_file_order().iter().map(|c| c.len).sum();
    if let Some(length) = number_header(headers, "oc-total-length")?.or(label.total)
        && length != have
    {
        return Err(ApiError::bad_request(format!(
            "the upload is incomplete: {have} of {length} bytes received"
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
        let options = CommitOptions {
            mtime,
            precondition: precondition(&store, uid, &target, conditional)?,
            checksum: None,
        };
        let outcome = if label.needs_merge() {
            merge(
                &store,
                uid,
                &info,
                &label,
                &target,
                options,
                announced.as_ref(),
            )
        } else {
            commit_run(&store, uid, &info, &target, options, announced.as_ref())
        };
        if matches!(&outcome, Err(e) if e.status == http::StatusCode::BAD_REQUEST) {
            // The bytes are not what the client meant: drop them, store nothing.
            discard(&store, uid, &info, &label);
        }
        outcome
    })
    .await?;
    tracing::debug!(upload = %tid, size = outcome.entry.size, "chunked upload assembled");
    Ok(upload_reply(
        &files.oc_id(outcome.entry.id),
        &outcome,
        mtime.is_some(),
    ))
}

/// What the conditional headers were checked against must still hold at the commit.
fn precondition(
    store: &Store,
    user: UserId,
    target: &StorePath,
    conditional: bool,
) -> ApiResult<Precondition> {
    if !conditional {
        return Ok(Precondition::default());
    }
    Ok(match store.stat(user, target) {
        Ok(entry) => Precondition {
            if_match: Some(entry.etag),
            if_none_match_any: false,
        },
        Err(percloud_store::StoreError::NotFound { .. }) => Precondition {
            if_match: None,
            if_none_match_any: true,
        },
        Err(e) => return Err(e.into()),
    })
}

/// Drops the run and its parked chunks.
fn discard(store: &Store, user: UserId, info: &StagedInfo, label: &Label) {
    take_hasher(store, info.id, info.offset);
    for parked in label.chunks.iter().filter_map(|c| c.parked) {
        let _ = store.abort_staged(user, parked);
    }
    let _ = store.abort_staged(user, info.id);
}

/// The fast path: the run is the file.
fn commit_run(
    store: &Store,
    user: UserId,
    info: &StagedInfo,
    target: &StorePath,
    mut options: CommitOptions,
    announced: Option<&Announced>,
) -> ApiResult<CommitOutcome> {
    if let Some(announced) = announced {
        let sha = match take_hasher(store, info.id, info.offset) {
            Some(sha) => sha,
            None => {
                let mut sha = Sha1::default();
                store.read_staged(user, info.id, &mut |bytes| sha.update(bytes))?;
                sha
            }
        };
        options.checksum = Some(
            sha.verify(announced)
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        );
    }
    let outcome = store.commit_staged(user, info.id, target, &options)?;
    take_hasher(store, info.id, info.offset);
    Ok(outcome)
}

/// The slow path: live chunks in file order into a new upload, then the staged ones go.
fn merge(
    store: &Store,
    user: UserId,
    info: &StagedInfo,
    label: &Label,
    target: &StorePath,
    mut options: CommitOptions,
    announced: Option<&Announced>,
) -> ApiResult<CommitOutcome> {
    let total: u64 = label.in_file_order().iter().map(|c| c.len).sum();
    let mut merger = Merger {
        store: store.clone(),
        user,
        upload: store.begin_upload(user, Some(total))?,
        sha: Sha1::default(),
        written: 0,
        error: None,
        parked: label
            .in_file_order()
            .into_iter()
            .filter_map(|c| c.parked.map(|id| (c.name.clone(), id)))
            .collect(),
        segments: label
            .chunks
            .iter()
            .filter(|c| c.in_run())
            .map(|c| (c.name.clone(), c.len, c.dropped))
            .collect(),
        next: 0,
        left: 0,
        dropped: false,
    };
    let run = store.clone();
    run.read_staged(user, info.id, &mut |bytes| merger.run_bytes(bytes))?;
    merger.finish_segments();
    merger.flush_parked(None);
    if let Some(e) = merger.error {
        return Err(e);
    }
    if merger.written != total {
        return Err(ApiError::internal(
            "assembling a chunked upload",
            format!("{} of {total} bytes found", merger.written),
        ));
    }
    if let Some(announced) = announced {
        options.checksum = Some(
            merger
                .sha
                .verify(announced)
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        );
    }
    let outcome = merger.upload.commit(target, &options)?;
    discard(store, user, info, label);
    Ok(outcome)
}

/// Streams the run's bytes, skipping dropped chunks and putting parked ones in place.
struct Merger {
    store: Store,
    user: UserId,
    upload: Upload,
    sha: Sha1,
    written: u64,
    error: Option<ApiError>,
    /// Parked chunks not yet written, in file order.
    parked: VecDeque<(String, StagedId)>,
    /// The run's chunks in arrival order: name, length, dropped.
    segments: Vec<(String, u64, bool)>,
    /// The next segment to enter.
    next: usize,
    /// Bytes left in the current segment, and whether it is dropped.
    left: u64,
    dropped: bool,
}

impl Merger {
    fn emit(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        self.sha.update(bytes);
        self.written += bytes.len() as u64;
        if let Err(e) = self.upload.write(bytes) {
            self.error = Some(e.into());
        }
    }

    /// Writes the parked chunks that come before `name` (all of them for `None`).
    fn flush_parked(&mut self, name: Option<&str>) {
        while let Some((first, id)) = self.parked.front().cloned() {
            if name.is_some_and(|n| order(&first, n) != std::cmp::Ordering::Less) {
                return;
            }
            self.parked.pop_front();
            let store = self.store.clone();
            if let Err(e) = store.read_staged(self.user, id, &mut |b| self.emit(b)) {
                self.error.get_or_insert(e.into());
            }
        }
    }

    /// Enters the next segment of the run; `false` when there is none.
    fn enter_next(&mut self) -> bool {
        let Some((name, len, dropped)) = self.segments.get(self.next).cloned() else {
            return false;
        };
        self.next += 1;
        if !dropped {
            self.flush_parked(Some(&name));
        }
        self.left = len;
        self.dropped = dropped;
        true
    }

    fn run_bytes(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.error.is_none() {
            while self.left == 0 {
                if !self.enter_next() {
                    self.error = Some(ApiError::internal(
                        "assembling a chunked upload",
                        "the run holds more bytes than its chunks",
                    ));
                    return;
                }
            }
            let n = (self.left as usize).min(bytes.len());
            if !self.dropped {
                self.emit(&bytes[..n]);
            }
            self.left -= n as u64;
            bytes = &bytes[n..];
        }
    }

    /// Enters the segments left (empty chunks), placing parked chunks before them.
    fn finish_segments(&mut self) {
        while self.left == 0 && self.enter_next() {}
    }
}
