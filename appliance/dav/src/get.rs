//! GET and HEAD: files streamed from the store with ranges and conditional requests; folders
//! as a minimal HTML listing.

use std::io::{Seek, SeekFrom};

use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;
use percloud_store::{Entry, FileReader, Piece, StoreError};
use tokio::sync::mpsc;

use crate::body::{DavBody, PiecesBody, empty_body, full_body};
use crate::conditional::{self, Verdict};
use crate::dates::rfc1123;
use crate::handler::{DavHandler, Req};
use crate::props::content_type;
use crate::range::{self, RangeRequest};
use crate::status::DavError;
use crate::xml::escape_text;

/// Pieces (of at most `PIECE_LEN`, 128 KiB) buffered between the reading threads and the
/// connection, shared among the threads. A body holds at most this many, one more being read
/// per thread and one being written: 64 readers at once hold little.
const PIECES_IN_FLIGHT: usize = 2;
/// Bodies at least this long are read by two threads, alternate pieces each: a first read
/// hashes every byte, and two threads hash twice as fast as one. Shorter ones (ranges) use
/// one thread.
const TWO_READERS_FROM: u64 = 4 << 20;

enum Target {
    File(Box<FileReader>),
    Dir(Entry, Vec<Entry>),
}

impl DavHandler {
    pub(crate) async fn get(&self, req: Req, head: bool) -> Result<Response<DavBody>, DavError> {
        let (user, path) = (req.user, req.path.clone());
        let target = self
            .blocking(move |inner| {
                let entry = inner.store.stat(user, &path)?;
                if entry.is_dir() {
                    let children = inner.store.list(user, &path)?;
                    return Ok(Target::Dir(entry, children));
                }
                match inner.store.open_file(user, &path) {
                    Ok(reader) => Ok(Target::File(Box::new(reader))),
                    Err(StoreError::IsADirectory { .. }) => {
                        let children = inner.store.list(user, &path)?;
                        Ok(Target::Dir(entry, children))
                    }
                    Err(err) => Err(err.into()),
                }
            })
            .await?;
        match target {
            Target::Dir(entry, children) => Ok(self.listing(&req, &entry, &children, head)),
            Target::File(reader) => serve_file(&req, *reader, head),
        }
    }

    fn listing(&self, req: &Req, dir: &Entry, children: &[Entry], head: bool) -> Response<DavBody> {
        if let Some(response) = not_modified(req, dir) {
            return response;
        }
        let title = escape_text(&req.path.to_string());
        let mut html = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
             <body><h1>{title}</h1><ul>\n"
        );
        if !req.path.is_root() {
            html.push_str("<li><a href=\"../\">../</a></li>\n");
        }
        for child in children {
            let Ok(path) = req.path.join(&child.name) else {
                continue;
            };
            let href =
                escape_text(&self.inner.mount.href(&path, child.is_dir())).replace('"', "&quot;");
            let slash = if child.is_dir() { "/" } else { "" };
            html.push_str(&format!(
                "<li><a href=\"{href}\">{}{slash}</a></li>\n",
                escape_text(&child.name)
            ));
        }
        html.push_str("</ul></body></html>\n");
        let len = html.len();
        let mut response = Response::new(if head { empty_body() } else { full_body(html) });
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        validators(headers, dir);
        response
    }
}

/// 304 or 412 when the preconditions say so.
fn not_modified(req: &Req, entry: &Entry) -> Option<Response<DavBody>> {
    not_modified_by(&req.headers, entry)
}

fn not_modified_by(headers: &http::HeaderMap, entry: &Entry) -> Option<Response<DavBody>> {
    let status = match conditional::evaluate(headers, true, Some(entry)) {
        Verdict::Proceed => return None,
        Verdict::NotModified => StatusCode::NOT_MODIFIED,
        Verdict::Failed => StatusCode::PRECONDITION_FAILED,
    };
    let mut response = Response::new(empty_body());
    *response.status_mut() = status;
    validators(response.headers_mut(), entry);
    Some(response)
}

fn validators(headers: &mut http::HeaderMap, entry: &Entry) {
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", entry.etag)) {
        headers.insert(header::ETAG, etag);
    }
    if let Ok(date) = HeaderValue::from_str(&rfc1123(entry.mtime)) {
        headers.insert(header::LAST_MODIFIED, date);
    }
    // The Nextcloud and ownCloud clients check a download against it.
    if let Some(sum) = entry
        .checksum
        .as_deref()
        .and_then(|s| HeaderValue::from_str(s).ok())
    {
        headers.insert("oc-checksum", sum);
    }
}

fn serve_file(req: &Req, reader: FileReader, head: bool) -> Result<Response<DavBody>, DavError> {
    Ok(file_response(&req.headers, reader, head))
}

/// Answers a GET or HEAD of an opened file as WebDAV does: validators, conditional requests
/// (304/412), a single `Range` (206/416), the body streamed in bounded memory. Other front
/// ends (the web pages' JSON API) reuse it so ranges are handled in one place.
pub fn file_response(
    request_headers: &http::HeaderMap,
    reader: FileReader,
    head: bool,
) -> Response<DavBody> {
    let entry = reader.entry().clone();
    if let Some(response) = not_modified_by(request_headers, &entry) {
        return response;
    }
    let len = reader.len();
    let range_header = request_headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    let wanted = if range_header.is_some() && conditional::if_range_allows(request_headers, &entry)
    {
        range::parse(range_header, len)
    } else {
        RangeRequest::Full
    };
    let mut response = Response::new(empty_body());
    let headers = response.headers_mut();
    validators(headers, &entry);
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&entry.name)),
    );
    let (start, count) = match wanted {
        RangeRequest::Full => (0, len),
        RangeRequest::Partial { start, end } => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            (start, end - start + 1)
        }
        RangeRequest::Unsatisfiable => {
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            return response;
        }
    };
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if !head && count > 0 {
        *response.body_mut() = stream(reader, start, count);
    }
    response
}

/// Streams `count` bytes from `start` on blocking threads through bounded channels; a client
/// that goes away closes them and stops the readers. Pieces come out only through one
/// verifier, in file order: a piece that would complete a damaged chunk ends the body with
/// an error instead, and nothing read after it is sent.
fn stream(mut reader: FileReader, start: u64, count: u64) -> DavBody {
    if let Err(err) = reader.seek(SeekFrom::Start(start)) {
        tracing::error!(error = %err, "seeking in stored file failed");
        return PiecesBody::failed(err).boxed_unsync();
    }
    reader.limit(start.saturating_add(count));
    let verifier = reader.verifier();
    let mut readers = vec![reader];
    if count >= TWO_READERS_FROM {
        let mut second = readers[0].fork();
        second.skip_piece();
        readers.push(second);
    }
    let stride = readers.len() - 1;
    let room = PIECES_IN_FLIGHT / readers.len();
    let receivers = readers
        .into_iter()
        .map(|reader| {
            let (tx, rx) = mpsc::channel(room);
            tokio::task::spawn_blocking(move || read_pieces(reader, stride, &tx));
            rx
        })
        .collect();
    PiecesBody::new(receivers, verifier).boxed_unsync()
}

/// Reads every piece `reader` is at, skipping `stride` pieces after each (the other
/// readers'), into `tx` until the end, an error, or the connection going away.
fn read_pieces(mut reader: FileReader, stride: usize, tx: &mpsc::Sender<std::io::Result<Piece>>) {
    loop {
        let piece = match reader.read_piece() {
            Ok(Some(piece)) => Ok(piece),
            Ok(None) => return,
            Err(err) => Err(err),
        };
        let failed = piece.is_err();
        if tx.blocking_send(piece).is_err() || failed {
            return;
        }
        for _ in 0..stride {
            reader.skip_piece();
        }
    }
}
