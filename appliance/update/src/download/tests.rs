//! Resume against a small HTTP server on loopback that can cut a transfer short.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::*;

#[derive(Default)]
struct Seen {
    ranges: Vec<Option<String>>,
}

/// Serves `content` with Range support; the first response is cut after `cut` body bytes.
async fn server(content: Vec<u8>, cut: usize) -> (String, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/b.pcup", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_string();
            let range = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("range: ")
                        .or_else(|| l.strip_prefix("Range: "))
                })
                .map(str::to_owned);
            log.lock().expect("lock").ranges.push(range.clone());
            let from: usize = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.trim_end_matches('-').parse().ok())
                .unwrap_or(0);
            let body = &content[from..];
            let status = if from > 0 {
                format!(
                    "206 Partial Content\r\nContent-Range: bytes {from}-{}/{}",
                    content.len() - 1,
                    content.len()
                )
            } else {
                "200 OK".to_owned()
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let send = if first {
                &body[..cut.min(body.len())]
            } else {
                body
            };
            first = false;
            let _ = stream.write_all(send).await;
            let _ = stream.shutdown().await;
        }
    });
    (url, seen)
}

#[tokio::test]
async fn a_broken_download_resumes_where_it_stopped() {
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let (url, seen) = server(content.clone(), 1_000_000).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("download.pcup");
    let downloader = Downloader::new(None).expect("client");
    let mut last = (0, None);
    let first = downloader
        .fetch_to_file(&url, &target, 10_000_000, &mut |done, total| {
            last = (done, total)
        })
        .await;
    assert!(first.is_err(), "the cut transfer must fail: {first:?}");
    assert_eq!(
        std::fs::metadata(&target).expect("partial").len(),
        1_000_000
    );
    downloader
        .fetch_to_file(&url, &target, 10_000_000, &mut |done, total| {
            last = (done, total)
        })
        .await
        .expect("resumed");
    assert_eq!(std::fs::read(&target).expect("read"), content);
    assert_eq!(last, (3_000_000, Some(3_000_000)));
    let ranges = seen.lock().expect("lock").ranges.clone();
    assert_eq!(ranges, vec![None, Some("bytes=1000000-".to_owned())]);
    assert!(
        !sidecar(&target).exists(),
        "the resume record goes once complete"
    );
}

#[tokio::test]
async fn a_partial_file_of_another_url_is_not_resumed_and_size_is_bounded() {
    let content = vec![7u8; 50_000];
    let (url, seen) = server(content.clone(), usize::MAX).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("download.pcup");
    std::fs::write(&target, b"stale bytes of something else").expect("write");
    write_partial(
        &sidecar(&target),
        &Partial {
            url: "http://elsewhere/x".into(),
            validator: None,
        },
    )
    .expect("sidecar");
    let downloader = Downloader::new(None).expect("client");
    downloader
        .fetch_to_file(&url, &target, 1_000_000, &mut |_, _| {})
        .await
        .expect("fetched");
    assert_eq!(std::fs::read(&target).expect("read"), content);
    assert_eq!(seen.lock().expect("lock").ranges, vec![None]);
    let too_big = downloader
        .fetch_to_file(&url, &dir.path().join("other"), 1000, &mut |_, _| {})
        .await;
    assert!(too_big.is_err());
}
