//! File content: round trips, seeking, dedup, compression, quota, abandoned uploads, reopen.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use percloud_store::{CommitOptions, PIECE_LEN, Store, StoreError, StoreOptions};
use rand::{Rng, SeedableRng};

#[test]
fn round_trips_small_empty_and_large() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    for (name, data) in [
        ("/empty", Vec::new()),
        ("/small", b"hello, world".to_vec()),
        ("/4k", random_bytes(1, 4096)),
        ("/odd", random_bytes(2, 1_234_567)),
        ("/large", random_bytes(3, 50 * 1024 * 1024)),
    ] {
        let e = put(&s, u, name, &data);
        assert_eq!(e.size, data.len() as u64);
        assert_eq!(e.content_hash, Some(*blake3::hash(&data).as_bytes()));
        assert!(get(&s, u, name) == data, "{name}");
    }
    assert!(s.fsck(false).unwrap().is_clean());
}

#[test]
fn seeks_anywhere() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    let data = random_bytes(4, 20 * 1024 * 1024 + 333);
    put(&s, u, "/f", &data);
    let mut r = s.open_file(u, &p("/f")).unwrap();
    assert_eq!(r.len(), data.len() as u64);
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for _ in 0..200 {
        let at = rng.gen_range(0..data.len());
        let n = rng.gen_range(1..3_000_000).min(data.len() - at);
        r.seek(SeekFrom::Start(at as u64)).unwrap();
        let mut buf = vec![0u8; n];
        r.read_exact(&mut buf).unwrap();
        assert!(buf == data[at..at + n], "range {at}+{n}");
    }
    assert_eq!(r.seek(SeekFrom::End(-10)).unwrap(), data.len() as u64 - 10);
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, data[data.len() - 10..]);
    r.seek(SeekFrom::Start(data.len() as u64 + 5)).unwrap();
    assert_eq!(r.read(&mut [0u8; 4]).unwrap(), 0);
    assert!(
        r.seek(SeekFrom::Current(-(data.len() as i64) - 100))
            .is_err()
    );
}

#[test]
fn identical_content_is_stored_once() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    let v = user(&s, "bob").id;
    let data = random_bytes(5, 100 * 1024 * 1024);
    let start = Instant::now();
    put(&s, u, "/one", &data);
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "100 MiB upload: {:.1} MB/s (test profile)",
        100.0 * 1.048_576 / secs
    );
    let first = s.stats().unwrap();
    put(&s, u, "/two", &data);
    put(&s, v, "/three", &data);
    let after = s.stats().unwrap();
    let extra = (after.stored_bytes - first.stored_bytes) as f64 / first.stored_bytes as f64;
    let extra_pack = (after.pack_bytes - first.pack_bytes) as f64 / first.pack_bytes as f64;
    eprintln!(
        "dedup overhead: stored {:.4}%, packs {:.4}%",
        extra * 100.0,
        extra_pack * 100.0
    );
    assert!(extra < 0.01 && extra_pack < 0.01);
    assert_eq!(after.logical_bytes, 3 * data.len() as u64);
    let start = Instant::now();
    assert!(get(&s, v, "/three") == data);
    eprintln!(
        "100 MiB read: {:.1} MB/s (test profile)",
        100.0 * 1.048_576 / start.elapsed().as_secs_f64()
    );
}

#[test]
fn small_files_are_cheap() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    let start = Instant::now();
    for i in 0..200u64 {
        put(&s, u, &format!("/s{i}"), &random_bytes(i, 4096));
    }
    let per_file = start.elapsed().as_secs_f64() * 1000.0 / 200.0;
    eprintln!("4 KiB upload: {per_file:.2} ms per file (one pack fdatasync + one redb commit)");
    let st = s.stats().unwrap();
    assert_eq!(st.packs, 1, "small files share a pack");
    assert!(st.pack_bytes < 200 * (4096 + 100) + 16);
}

#[test]
fn compressible_data_is_stored_smaller() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    let text: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| {
            b"the quick brown fox jumps over the lazy dog "[(i % 44) as usize]
                ^ ((i / 997) as u8 & 1)
        })
        .collect();
    put(&s, u, "/text", &text);
    let st = s.stats().unwrap();
    assert_eq!(st.unique_bytes, text.len() as u64);
    assert!(st.stored_bytes * 4 < st.unique_bytes, "{st:?}");
    assert_eq!(get(&s, u, "/text"), text);
}

#[test]
fn quota_is_enforced() {
    let (_d, s) = store();
    let u = s.create_user("alice", "h", Some(1000)).unwrap().id;
    put(&s, u, "/a", &[1u8; 600]);
    assert!(matches!(
        s.begin_upload(u, Some(500)),
        Err(StoreError::QuotaExceeded { .. })
    ));
    // Unknown length: refused at commit.
    let mut up = s.begin_upload(u, None).unwrap();
    up.write(&[2u8; 500]).unwrap();
    assert!(matches!(
        up.commit(&p("/b"), &CommitOptions::default()),
        Err(StoreError::QuotaExceeded { .. })
    ));
    // Up front, the announced length must fit in the free quota; at commit an overwrite is
    // credited with the size it replaces.
    assert!(matches!(
        s.begin_upload(u, Some(900)),
        Err(StoreError::QuotaExceeded { .. })
    ));
    let mut up = s.begin_upload(u, None).unwrap();
    up.write(&[3u8; 900]).unwrap();
    up.commit(&p("/a"), &CommitOptions::default()).unwrap();
    assert_eq!(s.user("alice").unwrap().unwrap().used, 900);
    assert!(matches!(
        s.copy(u, &p("/a"), &p("/c"), false, false),
        Err(StoreError::QuotaExceeded { .. })
    ));
    // Trash still counts; purging frees.
    s.delete(u, &p("/a"), &Default::default()).unwrap();
    assert_eq!(s.user("alice").unwrap().unwrap().used, 900);
    s.empty_trash(u).unwrap();
    assert_eq!(s.user("alice").unwrap().unwrap().used, 0);
    assert!(s.fsck(false).unwrap().is_clean());
}

#[test]
fn abandoned_upload_leaves_old_version() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    let old = random_bytes(6, 3_000_000);
    put(&s, u, "/f", &old);
    {
        let mut up = s.begin_upload(u, None).unwrap();
        up.write(&random_bytes(7, 9_000_000)).unwrap();
        // dropped without commit
    }
    // A failing commit (parent missing) also leaves everything as it was.
    let mut up = s.begin_upload(u, None).unwrap();
    up.write(b"x").unwrap();
    assert!(up.commit(&p("/nope/f"), &CommitOptions::default()).is_err());
    assert!(get(&s, u, "/f") == old);
    assert_eq!(s.versions(u, &p("/f")).unwrap().len(), 1);
    let report = s.fsck(false).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert!(
        report.reclaimable_bytes >= 4_000_000,
        "abandoned bytes are reclaimable, not damage: {report:?} {:?}",
        s.stats().unwrap()
    );
    s.gc().unwrap();
    assert!(get(&s, u, "/f") == old);
}

#[test]
fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(8, 5_000_000);
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let (u, etag) = {
        let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let u = user(&s, "alice").id;
        s.mkdir(u, &p("/d")).unwrap();
        put(&s, u, "/d/f", &data);
        let opts = CommitOptions {
            mtime: Some(mtime),
            ..Default::default()
        };
        let e = put_with(&s, u, "/d/f", b"v2", &opts).unwrap();
        (u, e.etag)
    };
    let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let e = s.stat(u, &p("/d/f")).unwrap();
    assert_eq!(e.etag, etag);
    assert_eq!(e.mtime, mtime);
    assert_eq!(get(&s, u, "/d/f"), b"v2");
    let versions = s.versions(u, &p("/d/f")).unwrap();
    assert_eq!(versions.len(), 2);
    let mut old = Vec::new();
    s.open_version(u, &p("/d/f"), versions[1].version)
        .unwrap()
        .read_to_end(&mut old)
        .unwrap();
    assert!(old == data);
    // New uploads after reopen append after whatever is in the last pack.
    put(&s, u, "/g", b"after reopen");
    assert_eq!(get(&s, u, "/g"), b"after reopen");
    assert!(s.fsck(false).unwrap().is_clean());
}

#[test]
fn second_open_is_refused() {
    let (d, _s) = store();
    assert!(matches!(
        Store::open(d.path(), StoreOptions::default()),
        Err(StoreError::InUse { .. })
    ));
}

#[test]
fn records_of_unknown_version_are_refused() {
    use redb::{ReadableTable, TableDefinition};
    const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("users");
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        user(&s, "alice");
    }
    {
        let db = redb::Database::create(dir.path().join("meta.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(USERS).unwrap();
            let (id, mut rec) = {
                let (k, v) = t.iter().unwrap().next().unwrap().unwrap();
                (k.value(), v.value().to_vec())
            };
            rec[0] = 99;
            t.insert(id, rec.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert!(matches!(
        s.user("alice"),
        Err(StoreError::UnsupportedFormat { found: 99, .. })
    ));
}

/// Group commit: uploads finishing together share a transaction, yet each gets its own
/// answer: of 16 creators of one path with If-None-Match: *, exactly one wins; 16 uploads of
/// different files all land.
#[test]
fn concurrent_commits_get_their_own_answers() {
    let (_dir, s) = store();
    let u = user(&s, "alice").id;
    let must_be_new = CommitOptions {
        precondition: percloud_store::Precondition {
            if_none_match_any: true,
            ..Default::default()
        },
        ..CommitOptions::default()
    };
    let barrier = std::sync::Barrier::new(16);
    let wins = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16u64)
            .map(|i| {
                let (s, barrier, must_be_new) = (&s, &barrier, &must_be_new);
                scope.spawn(move || {
                    let data = random_bytes(i, 3000);
                    let mut up = s.begin_upload(u, None).unwrap();
                    up.write(&data).unwrap();
                    barrier.wait();
                    let same = up.commit(&p("/same"), must_be_new).is_ok();
                    let mut up = s.begin_upload(u, None).unwrap();
                    up.write(&data).unwrap();
                    up.commit(&p(&format!("/f{i}")), must_be_new).unwrap();
                    same
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&w| w)
            .count()
    });
    assert_eq!(wins, 1);
    for i in 0..16u64 {
        assert_eq!(get(&s, u, &format!("/f{i}")), random_bytes(i, 3000));
    }
    assert_eq!(s.list(u, &p("/")).unwrap().len(), 17);
    assert!(s.fsck(false).unwrap().is_clean());
}

/// Flips the byte `back` bytes before the end of the only pack (the last chunk written).
fn flip_in_last_chunk(dir: &std::path::Path, back: u64) {
    use std::os::unix::fs::FileExt;
    let packs: Vec<_> = std::fs::read_dir(dir.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(packs.len(), 1);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&packs[0])
        .unwrap();
    let at = file.metadata().unwrap().len() - back;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x01], at).unwrap();
}

/// Reads in `piece`-byte reads until the end or an error; returns the bytes and the error.
fn read_pieces(r: &mut impl Read, piece: usize) -> (Vec<u8>, Option<std::io::Error>) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; piece];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(e)),
        }
    }
}

#[test]
fn a_download_never_completes_a_chunk_whose_bytes_rotted() {
    let (d, s) = store();
    let u = user(&s, "alice").id;
    // Random bytes: stored raw, so read straight from the pack.
    let data = random_bytes(7, 3_000_000);
    put(&s, u, "/photo", &data);
    flip_in_last_chunk(d.path(), 1000);
    let rotten = data.len() - 1000;
    // A new process: this one wrote the chunks and trusts them for a while (next test).
    drop(s);
    let s = Store::open(d.path(), StoreOptions::default()).unwrap();

    // From the start, in order (a download): hashed as served; the read that would
    // complete the damaged chunk fails, so the file never reads to its end.
    let (got, err) = read_pieces(&mut s.open_file(u, &p("/photo")).unwrap(), 128 * 1024);
    let err = err.expect("the damaged chunk must not read to its end");
    assert!(err.to_string().contains("does not match"), "{err}");
    assert!(
        got.len() <= rotten,
        "{} bytes served past the damage",
        got.len()
    );
    assert_eq!(got, data[..got.len()], "sound chunks served as stored");

    // Entered in the middle (a range): verified first, nothing of the chunk is served.
    let mut r = s.open_file(u, &p("/photo")).unwrap();
    r.seek(SeekFrom::Start(data.len() as u64 - 2000)).unwrap();
    let (got, err) = read_pieces(&mut r, 64 * 1024);
    assert!(
        err.is_some() && got.is_empty(),
        "{} bytes of a damaged chunk",
        got.len()
    );
}

/// Large raw chunks an upload of this process wrote are served without hashing them again
/// for a while (the bytes are the ones it hashed, still in the page cache); damage made behind
/// the store's back meanwhile is found by the next process. Small ones are always hashed.
#[test]
fn chunks_this_process_wrote_are_trusted_until_the_next_process() {
    let (d, s) = store();
    let u = user(&s, "alice").id;
    let video = random_bytes(11, 3_000_000);
    put(&s, u, "/video", &video);
    flip_in_last_chunk(d.path(), 1000);
    let (got, err) = read_pieces(&mut s.open_file(u, &p("/video")).unwrap(), 128 * 1024);
    assert!(err.is_none(), "trusted: {err:?}");
    assert_eq!(got.len(), video.len());
    assert!(got != video, "served as the pack now holds it, unhashed");

    let note = random_bytes(12, 4096);
    put(&s, u, "/note", &note);
    flip_in_last_chunk(d.path(), 100);
    let (_, err) = read_pieces(&mut s.open_file(u, &p("/note")).unwrap(), 128 * 1024);
    assert!(
        err.is_some_and(|e| e.to_string().contains("does not match")),
        "a small chunk is hashed on every read"
    );

    drop(s);
    let s = Store::open(d.path(), StoreOptions::default()).unwrap();
    let (got, err) = read_pieces(&mut s.open_file(u, &p("/video")).unwrap(), 128 * 1024);
    let err = err.expect("the next process hashes it");
    assert!(err.to_string().contains("does not match"), "{err}");
    assert!(got.len() < video.len());
}

#[test]
fn sound_chunks_read_the_same_streamed_seeked_and_again() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    let data = random_bytes(8, 5_000_000);
    put(&s, u, "/video", &data);
    // A seek inside a chunk that is being hashed as it is read switches to the up-front
    // check; either way the bytes are the stored ones.
    let mut r = s.open_file(u, &p("/video")).unwrap();
    let mut head = vec![0u8; 100_000];
    r.read_exact(&mut head).unwrap();
    assert_eq!(head, data[..100_000]);
    r.seek(SeekFrom::Start(200_000)).unwrap();
    let (rest, err) = read_pieces(&mut r, 77_777);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(rest, data[200_000..]);
    // Streamed in odd pieces, twice (the second time from the verified set).
    for _ in 0..2 {
        let (all, err) = read_pieces(&mut s.open_file(u, &p("/video")).unwrap(), 100_003);
        assert!(err.is_none(), "{err:?}");
        assert!(all == data);
    }
}

#[test]
fn pieces_give_the_bytes_alone_forked_and_in_ranges() {
    let (_d, s) = store();
    let u = user(&s, "alice").id;
    let raw = random_bytes(9, 2_500_000);
    let text = b"compressible text, stored with zstd. ".repeat(40_000);
    put(&s, u, "/text", &text);
    put(&s, u, "/raw", &raw);
    // Twice: hashed as served, then from the verified set.
    for _ in 0..2 {
        for (path, data) in [("/raw", &raw), ("/text", &text)] {
            let mut r = s.open_file(u, &p(path)).unwrap();
            let mut v = r.verifier();
            let mut out = Vec::new();
            while let Some(piece) = r.read_piece().unwrap() {
                assert!(!piece.is_empty() && piece.len() <= PIECE_LEN, "{path}");
                out.extend_from_slice(&v.release(piece).unwrap());
            }
            assert!(out == *data, "{path}");
        }
    }
    // Two readers of alternate pieces, released in order through one verifier, from
    // anywhere to anywhere (ranges entering and ending inside chunks are verified first).
    let len = raw.len() as u64;
    for (start, end) in [
        (0, len),
        (1, len),
        (300_000, 2_000_000),
        (0, 1),
        (len - 1, len),
    ] {
        let mut a = s.open_file(u, &p("/raw")).unwrap();
        a.seek(SeekFrom::Start(start)).unwrap();
        a.limit(end);
        let mut b = a.fork();
        b.skip_piece();
        let mut v = a.verifier();
        let mut out = Vec::new();
        while let Some(piece) = a.read_piece().unwrap() {
            out.extend_from_slice(&v.release(piece).unwrap());
            a.skip_piece();
            let Some(piece) = b.read_piece().unwrap() else {
                break;
            };
            out.extend_from_slice(&v.release(piece).unwrap());
            b.skip_piece();
        }
        assert!(out == raw[start as usize..end as usize], "{start}..{end}");
    }
}

/// The only pack, and each chunk's (offset in the file, length, offset of its stored bytes in
/// the pack), read from the entry headers: 48 bytes (magic, plain length at 8, stored length
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

#[test]
fn pieces_read_ahead_of_a_rotten_chunk_are_never_released() {
    use std::os::unix::fs::FileExt;
    let (d, s) = store();
    let u = user(&s, "alice").id;
    let data = random_bytes(10, 6_000_000);
    put(&s, u, "/video", &data);
    drop(s);
    let (pack, spans) = chunk_spans(d.path());
    assert!(spans.len() >= 3, "{spans:?}");
    assert_eq!(spans.iter().map(|s| s.1).sum::<u64>(), data.len() as u64);
    // Rot in the middle of the second chunk (a new process: nothing verified yet).
    let (start, len, stored_at) = spans[1];
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(pack)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, stored_at + len / 2).unwrap();
    file.write_all_at(&[byte[0] ^ 0x80], stored_at + len / 2)
        .unwrap();
    let s = Store::open(d.path(), StoreOptions::default()).unwrap();

    // The reading side runs to the end first (everything is read ahead), then the pieces
    // are released in order: the damaged chunk never completes, and nothing after it —
    // all of it read, sound and waiting — comes out.
    let mut r = s.open_file(u, &p("/video")).unwrap();
    let mut v = r.verifier();
    let mut pieces = Vec::new();
    while let Some(piece) = r.read_piece().unwrap() {
        pieces.push(piece);
    }
    let mut out = Vec::new();
    let mut refused = 0;
    for piece in pieces {
        match v.release(piece) {
            Ok(bytes) => {
                assert_eq!(refused, 0, "released after a refusal");
                out.extend_from_slice(&bytes);
            }
            Err(e) => {
                if refused == 0 {
                    assert!(e.to_string().contains("does not match"), "{e}");
                }
                refused += 1;
            }
        }
    }
    assert!(refused > 1, "the damaged chunk and everything after it");
    assert!(
        (out.len() as u64) < start + len,
        "{} bytes released, the damaged chunk ends at {}",
        out.len(),
        start + len
    );
    // The damaged chunk's earlier pieces went out (hashed as served); it never completes.
    assert!(out.len() as u64 >= start, "sound chunks before it released");
    assert!(
        out[..start as usize] == data[..start as usize],
        "sound chunks as stored"
    );

    // Pieces out of order are refused, never released unhashed (the damaged chunk: the
    // sound first one is verified by now and needs no hashing).
    let mut r = s.open_file(u, &p("/video")).unwrap();
    r.seek(SeekFrom::Start(start)).unwrap();
    let first = r.read_piece().unwrap().unwrap();
    let second = r.read_piece().unwrap().unwrap();
    let mut v = r.verifier();
    assert!(v.release(second).is_err());
    assert!(
        v.release(first).is_err(),
        "refuses everything after a refusal"
    );
}
