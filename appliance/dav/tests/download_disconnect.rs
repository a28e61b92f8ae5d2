//! A client that goes away in the middle of a download releases its reader: the reading
//! thread stops instead of reading on, and lets go of the store. (Alone in its test binary:
//! it counts the bytes this process reads, `rchar` in /proc/self/io.)
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use percloud_dav::DavHandler;
use percloud_store::{Store, StoreError, StoreOptions};

/// Bytes read by this process so far.
fn rchar() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("rchar")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_releases_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let user = store
        .create_user("alice", "$argon2id$unused", None)
        .unwrap()
        .id;
    let handler = DavHandler::new(store.clone(), "/dav");
    let mut x = 7u64;
    let data: Vec<u8> = (0..64 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let put = Request::put("/dav/big.bin")
        .body(Full::new(Bytes::from(data)))
        .unwrap();
    assert!(handler.handle(user, put).await.status().is_success());

    let get = Request::get("/dav/big.bin")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let mut body = handler.handle(user, get).await.into_body();
    let first = body.frame().await.expect("a frame").expect("sound bytes");
    assert!(first.data_ref().is_some_and(|d| !d.is_empty()));
    drop(handler);
    drop(store);
    // While the client is connected (and not reading), its reader holds the store.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(matches!(
        Store::open(dir.path(), StoreOptions::default()),
        Err(StoreError::InUse { .. })
    ));

    // The client goes away: the reader stops within a few pieces and lets go.
    let before = rchar();
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(10);
    let reopened = loop {
        match Store::open(dir.path(), StoreOptions::default()) {
            Ok(store) => break store,
            Err(StoreError::InUse { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the reader still holds the store: {e}"),
        }
    };
    let read_after = rchar() - before;
    assert!(
        read_after < 8 << 20,
        "{read_after} bytes read after the client went away (the file has 64 MiB)"
    );
    drop(reopened);
}
