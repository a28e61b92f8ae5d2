//! Workload (3c): small files the way the Nextcloud desktop client uploads them when the
//! server offers bulk upload: `POST /remote.php/dav/bulk`, `multipart/related`, up to 100
//! files a request, each part with `Content-Length`, `X-File-MD5`, `X-File-Mtime` and
//! `X-File-Path` (`docs/clients.md`). The bodies (with their MD5s) are built before the clock
//! starts, as the client reads its files into memory first; the clock stops when every
//! answer arrived (each checked file by file) and `sync -f DATA` returned.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use md5::{Digest, Md5};
use rand::RngCore;
use serde_json::{Value, json};

use crate::http::Body;
use crate::procstat::Watch;
use crate::{Result, ServerArgs, expect_status, folder_and_clients, sync_data, target};

/// The endpoint, at the server's root whatever the WebDAV base.
const BULK: &str = "/remote.php/dav/bulk";
/// The shape of the desktop client's boundary (quoted: it holds `/` and `+`).
const BOUNDARY: &str = "boundary_.oOo._percloudBench/0123+4567";

/// One request's body and how many files it carries.
struct Request {
    body: Vec<u8>,
    files: usize,
}

/// MKCOL FOLDER (untimed), then COUNT files of SIZE random bytes in requests of BATCH files
/// over CONCURRENCY connections.
pub async fn bulk_many(
    server: &ServerArgs,
    folder: &str,
    count: usize,
    size: usize,
    batch: usize,
    concurrency: usize,
) -> Result<Value> {
    let target = target(server)?;
    let requests = Arc::new(build(folder, count, size, batch.max(1)));
    let clients = folder_and_clients(&target, folder, concurrency).await?;
    let content_type = format!("multipart/related; boundary=\"{BOUNDARY}\"");
    let next = Arc::new(AtomicUsize::new(0));
    let watch = Watch::start(server.pid.clone(), server.clk_tck);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut client in clients {
        let (next, requests) = (Arc::clone(&next), Arc::clone(&requests));
        let content_type = content_type.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = requests.get(i) else {
                    return Ok::<(), String>(());
                };
                let headers = [("Content-Type", content_type.as_str())];
                let body = Body::Bytes(&request.body);
                let resp = client.request("POST", BULK, &headers, body, true).await;
                let resp = resp.map_err(|e| format!("POST {BULK}: {e}"))?;
                expect_status("POST", BULK, resp.status, &[200])?;
                check_answer(&resp.body, request.files)?;
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    sync_data(server)?;
    let seconds = started.elapsed().as_secs_f64();
    let usage = watch.finish();
    Ok(json!({
        "seconds": seconds,
        "bytes": count * size,
        "files": count,
        "requests": requests.len(),
        "peak_rss_kib": usage.peak_rss_kib,
        "cpu_seconds": usage.cpu_seconds,
    }))
}

/// The request bodies: fresh random bytes, `batch` files each.
fn build(folder: &str, count: usize, size: usize, batch: usize) -> Vec<Request> {
    let mut rng = rand::thread_rng();
    let mut data = vec![0u8; size];
    let mut requests = Vec::with_capacity(count.div_ceil(batch));
    for first in (0..count).step_by(batch) {
        let files = batch.min(count - first);
        let mut body = Vec::with_capacity(files * (size + 256) + 64);
        for i in first..first + files {
            rng.fill_bytes(&mut data);
            let mut md5 = String::with_capacity(32);
            for b in Md5::digest(&data) {
                let _ = write!(md5, "{b:02x}");
            }
            let head = format!(
                "--{BOUNDARY}\r\nContent-Length: {size}\r\nContent-Type: application/octet-stream\r\n\
                 X-File-MD5: {md5}\r\nX-File-Mtime: {}\r\nX-File-Path: /{folder}/f{i:05}.bin\r\n\r\n",
                1_700_000_000 + i
            );
            body.extend_from_slice(head.as_bytes());
            body.extend_from_slice(&data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        requests.push(Request { body, files });
    }
    requests
}

/// Every file of the request must be answered `"error": false`.
fn check_answer(body: &[u8], files: usize) -> Result<()> {
    let answer: Value =
        serde_json::from_slice(body).map_err(|e| format!("POST {BULK}: answer: {e}"))?;
    let stored = answer
        .as_object()
        .map_or(0, |o| o.values().filter(|v| v["error"] == false).count());
    if stored == files {
        Ok(())
    } else {
        Err(format!(
            "POST {BULK}: {stored} of {files} files stored: {answer}"
        ))
    }
}
