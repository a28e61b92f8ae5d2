//! GET of stored files as a client sees it: whole and in ranges, across chunk boundaries,
//! and what a damaged chunk does to a download (a new process: nothing verified yet).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use percloud_dav::DavHandler;
use percloud_store::{Store, StoreError, StoreOptions, UserId};

/// Incompressible bytes (stored raw, so served straight from the pack).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

struct Served {
    dir: tempfile::TempDir,
    store: Store,
    handler: DavHandler,
    user: UserId,
}

fn open(dir: tempfile::TempDir) -> Served {
    // The reading threads of a download that just ended let go of the store soon after.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let store = loop {
        match Store::open(dir.path(), StoreOptions::default()) {
            Err(StoreError::InUse { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other.expect("open store"),
        }
    };
    let user = match store.user("alice").expect("user") {
        Some(u) => u.id,
        None => {
            store
                .create_user("alice", "$argon2id$unused", None)
                .expect("user")
                .id
        }
    };
    Served {
        handler: DavHandler::new(store.clone(), "/dav"),
        store,
        user,
        dir,
    }
}

impl Served {
    async fn put(&self, path: &str, data: &[u8]) {
        let req = Request::builder()
            .method("PUT")
            .uri(path)
            .body(Full::new(Bytes::copy_from_slice(data)))
            .unwrap();
        let status = self.handler.handle(self.user, req).await.status();
        assert!(status.is_success(), "{status}");
    }

    /// GET with an optional Range: the status and every byte received before the body ended
    /// or failed (and whether it failed).
    async fn get(&self, path: &str, range: Option<&str>) -> (StatusCode, Vec<u8>, bool) {
        let mut req = Request::builder().method("GET").uri(path);
        if let Some(range) = range {
            req = req.header("range", range);
        }
        let response = self
            .handler
            .handle(self.user, req.body(Full::new(Bytes::new())).unwrap())
            .await;
        let status = response.status();
        let mut body = response.into_body();
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => got.extend_from_slice(frame.data_ref().map_or(&[][..], |d| d)),
                Err(_) => return (status, got, true),
            }
        }
        (status, got, false)
    }

    /// The store closed and opened again: a new process, which has verified nothing yet.
    fn reopen(self) -> Served {
        let Served {
            dir,
            store,
            handler,
            ..
        } = self;
        drop(handler);
        drop(store);
        open(dir)
    }
}

/// The only pack, and each chunk's (offset in the file, length, offset of its stored bytes in
/// the pack), from the entry headers: 48 bytes (magic "PCHK", plain length at 8, stored length
/// at 12), then the stored bytes. The file must be the only thing stored.
fn chunk_spans(dir: &std::path::Path) -> (std::path::PathBuf, Vec<(u64, u64, u64)>) {
    let packs: Vec<_> = std::fs::read_dir(dir.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(packs.len(), 1);
    let pack = std::fs::read(&packs[0]).unwrap();
    let mut at = pack
        .windows(4)
        .position(|w| w == b"PCHK")
        .expect("an entry");
    let (mut spans, mut file_at) = (Vec::new(), 0u64);
    while at + 48 <= pack.len() {
        assert_eq!(&pack[at..at + 4], b"PCHK");
        let field = |o: usize| {
            u64::from(u32::from_le_bytes(
                pack[at + o..at + o + 4].try_into().unwrap(),
            ))
        };
        let (plain, stored) = (field(8), field(12));
        spans.push((file_at, plain, at as u64 + 48));
        file_at += plain;
        at += 48 + stored as usize;
    }
    (packs[0].clone(), spans)
}

fn flip(pack: &std::path::Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(pack)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x80], at).unwrap();
}

#[tokio::test]
async fn ranges_across_chunks_give_the_stored_bytes() {
    let b = open(tempfile::tempdir().unwrap());
    let data = noise(1, 7_000_000);
    b.put("/dav/v.bin", &data).await;
    let b = b.reopen();
    let (_, spans) = chunk_spans(b.dir.path());
    assert!(spans.len() >= 3, "{spans:?}");
    let (s1, l1, _) = spans[1];
    let len = data.len() as u64;
    let cases = [
        (s1, s1 + l1 - 1),              // exactly one chunk, from its start
        (s1 - 5, s1 + 5),               // across a boundary
        (s1 + 1, spans[2].0 + 300_000), // from inside one chunk into the next but one
        (0, len - 1),                   // everything, as a range
        (len - 1, len - 1),             // the last byte
    ];
    for (first, last) in cases {
        let range = format!("bytes={first}-{last}");
        let (status, got, failed) = b.get("/dav/v.bin", Some(&range)).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert!(!failed, "{range}");
        assert!(got == data[first as usize..=last as usize], "{range}");
    }
    let (status, got, failed) = b.get("/dav/v.bin", Some("bytes=-1000")).await;
    assert!(status == StatusCode::PARTIAL_CONTENT && !failed);
    assert!(got == data[data.len() - 1000..]);
    // And whole, twice: hashed as served, then from the verified set.
    for _ in 0..2 {
        let (status, got, failed) = b.get("/dav/v.bin", None).await;
        assert!(status == StatusCode::OK && !failed && got == data);
    }
}

#[tokio::test]
async fn a_rotten_chunk_ends_the_download_before_it_completes() {
    let b = open(tempfile::tempdir().unwrap());
    let data = noise(2, 7_000_000);
    b.put("/dav/v.bin", &data).await;
    let (pack, spans) = chunk_spans(b.dir.path());
    assert!(spans.len() >= 3, "{spans:?}");
    let (start, len, stored_at) = spans[1];
    flip(&pack, stored_at + len / 2);
    let b = b.reopen();

    // Range inside the damaged chunk (entered mid-way, verified first): nothing of it.
    let range = format!("bytes={}-{}", start + 10, start + 20);
    let (_, got, failed) = b.get("/dav/v.bin", Some(&range)).await;
    assert!(
        failed && got.is_empty(),
        "{} bytes of a damaged chunk",
        got.len()
    );

    // A range from the damaged chunk's start that ends inside it: it would never complete
    // the chunk, so the chunk is verified first and nothing of it is sent.
    let range = format!("bytes={}-{}", start, start + len - 2);
    let (_, got, failed) = b.get("/dav/v.bin", Some(&range)).await;
    assert!(
        failed && got.is_empty(),
        "{} bytes of a damaged chunk",
        got.len()
    );

    // The whole file: the sound first chunk, perhaps the damaged one's first pieces (hashed
    // as served), never its end and nothing of the sound chunks after it.
    let b = b.reopen();
    let (status, got, failed) = b.get("/dav/v.bin", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(failed, "the body must end with an error");
    assert!(
        (got.len() as u64) >= start && (got.len() as u64) < start + len,
        "{} bytes sent; the damaged chunk is {start}..{}",
        got.len(),
        start + len
    );
    assert!(got[..start as usize] == data[..start as usize]);

    // A range of the sound chunk before it still reads.
    let range = format!("bytes=0-{}", start - 1);
    let (status, got, failed) = b.get("/dav/v.bin", Some(&range)).await;
    assert!(status == StatusCode::PARTIAL_CONTENT && !failed);
    assert!(got == data[..start as usize]);
}
