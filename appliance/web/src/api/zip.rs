//! A folder as a zip, made while it is sent: a blocking thread walks the tree and writes a
//! streaming zip (stored, no compression: photos and videos do not shrink, and a Raspberry
//! Pi's CPU is better spent serving) into a bounded channel feeding the response body, so
//! memory stays bounded whatever the folder's size. Zip64 records are used for large files.

use std::io::{self, Write};
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;
use percloud_dav::ChannelBody;
use percloud_store::{Store, StoreError, StorePath, UserId};
use tokio::sync::mpsc;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::content::disposition;
use crate::json::{ApiError, ApiResult, blocking};

/// Bytes gathered before a chunk goes to the connection.
const CHUNK: usize = 64 * 1024;
/// Chunks buffered between the zipping thread and the connection.
const CHUNKS_IN_FLIGHT: usize = 4;
/// Files at least this large get Zip64 sizes (the 32-bit fields stop just below 4 GiB).
const ZIP64_FROM: u64 = 0xFFFF_FFFF;

/// The zip answer for folder `root` of `user` (404/409 before any byte is sent when it is
/// missing or not a folder).
pub(crate) async fn folder(store: &Store, user: UserId, root: StorePath) -> ApiResult {
    let check = (store.clone(), root.clone());
    let entry = blocking(move || Ok(check.0.stat(user, &check.1)?)).await?;
    if !entry.is_dir() {
        return Err(ApiError::new(StatusCode::CONFLICT, "not a folder"));
    }
    let name = if entry.name.is_empty() {
        "percloud".to_owned()
    } else {
        entry.name.clone()
    };
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let mut sink = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(err) = write_zip(&store, user, &root, &mut sink) {
            // The client sees a cut download rather than a zip that looks whole.
            if err.kind() != io::ErrorKind::BrokenPipe {
                tracing::warn!(error = %err, "making a zip failed");
                let _ = tx.blocking_send(Err(err));
            }
        }
    });
    let mut response = Response::new(ChannelBody::new(rx).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition("attachment", &format!("{name}.zip"))) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Walks `root` depth first and writes every file and empty folder into a streaming zip.
fn write_zip(
    store: &Store,
    user: UserId,
    root: &StorePath,
    sink: &mut ChannelWriter,
) -> io::Result<()> {
    let mut zip = ZipWriter::new_stream(&mut *sink);
    let mut pending = vec![(root.clone(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let children = match store.list(user, &dir) {
            Ok(children) => children,
            // Moved or deleted while we were zipping: leave it out.
            Err(StoreError::NotFound { .. }) => continue,
            Err(err) => return Err(io::Error::other(err)),
        };
        if children.is_empty() && !prefix.is_empty() {
            zip.add_directory(prefix.as_str(), options(SystemTime::UNIX_EPOCH, 0))
                .map_err(io::Error::other)?;
        }
        for child in children {
            let Ok(path) = dir.join(&child.name) else {
                continue;
            };
            let name = format!("{prefix}{}", child.name);
            if child.is_dir() {
                pending.push((path, format!("{name}/")));
                continue;
            }
            let mut reader = match store.open_file(user, &path) {
                Ok(reader) => reader,
                Err(StoreError::NotFound { .. }) => continue,
                Err(err) => return Err(io::Error::other(err)),
            };
            let entry = reader.entry().clone();
            zip.start_file(name.as_str(), options(entry.mtime, entry.size))
                .map_err(io::Error::other)?;
            io::copy(&mut reader, &mut zip)?;
        }
    }
    zip.finish().map_err(io::Error::other)?;
    sink.flush()
}

fn options(mtime: SystemTime, size: u64) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .large_file(size >= ZIP64_FROM)
        .last_modified_time(zip_time(mtime))
        .unix_permissions(0o644)
}

/// A zip (DOS) timestamp, UTC; times it cannot hold become 1980-01-01.
fn zip_time(t: SystemTime) -> DateTime {
    let secs = crate::json::unix(t) as i64;
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            DateTime::from_date_and_time(
                u16::try_from(t.year()).ok()?,
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
            )
            .ok()
        })
        .unwrap_or_default()
}

/// Gathers bytes into chunks and sends them to the response body; a closed body (the client
/// left) is a broken pipe that stops the walk.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_times_clamp() {
        assert_eq!(zip_time(SystemTime::UNIX_EPOCH), DateTime::default());
        let t = zip_time(crate::json::from_unix(1_700_000_000));
        assert_eq!((t.year(), t.month(), t.day()), (2023, 11, 14));
    }
}
