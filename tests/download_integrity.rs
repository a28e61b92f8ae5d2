//! Downloads of damaged data, by curl against the real daemon: bit rot in a stored chunk
//! (found by a daemon that has not verified it yet) cuts the transfer short before the
//! damaged chunk completes, so the client sees a failed transfer, never a complete file
//! with bad bytes; a range inside the damaged chunk gets nothing of it; sound files and
//! sound ranges of the same file still download.

use std::path::{Path, PathBuf};
use std::process::Command;

use percloud_system_tests::{Daemon, PASSWORD, add_user, random_bytes, temp_dir};
use rand::SeedableRng;

/// The only pack, and each chunk's (offset in the file, length, offset of its stored bytes in
/// the pack), from the entry headers (docs/storage-format.md: 48 bytes, "PCHK", plain length
/// at 8, stored length at 12, then the stored bytes). `data` holds one file of random bytes.
fn chunk_spans(data: &Path) -> (PathBuf, Vec<(u64, u64, u64)>) {
    let packs: Vec<PathBuf> = std::fs::read_dir(data.join("packs"))
        .expect("packs")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    let pack = std::fs::read(&packs[0]).expect("reading the pack");
    let mut at = pack
        .windows(4)
        .position(|w| w == b"PCHK")
        .expect("an entry");
    let (mut spans, mut file_at) = (Vec::new(), 0u64);
    while at + 48 <= pack.len() {
        assert_eq!(&pack[at..at + 4], b"PCHK", "entry at {at}");
        let field = |o: usize| {
            u64::from(u32::from_le_bytes([
                pack[at + o],
                pack[at + o + 1],
                pack[at + o + 2],
                pack[at + o + 3],
            ]))
        };
        let (plain, stored) = (field(8), field(12));
        spans.push((file_at, plain, at as u64 + 48));
        file_at += plain;
        at += 48 + stored as usize;
    }
    (packs[0].clone(), spans)
}

/// curl's exit code and what it wrote, for GET `url` with an optional range.
fn curl(url: &str, range: Option<&str>, out: &Path) -> (i32, Vec<u8>) {
    // curl creates the file at the first byte it receives.
    let _ = std::fs::remove_file(out);
    let mut command = Command::new("curl");
    command
        .args(["-sS", "--max-time", "60", "-u"])
        .arg(format!("integrity:{PASSWORD}"))
        .arg("-o")
        .arg(out)
        .arg(url);
    if let Some(range) = range {
        command.args(["-r", range]);
    }
    let status = command.status().expect("running curl");
    let body = std::fs::read(out).unwrap_or_default();
    (status.code().unwrap_or(-1), body)
}

#[test]
fn rot_cuts_a_download_short_and_ranges_of_it_get_nothing() {
    let dir = temp_dir("integrity");
    let data = dir.path().join("data");
    add_user(&data, "integrity", PASSWORD);
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let video = random_bytes(&mut rng, 12 << 20);
    let mut daemon = Daemon::start(&data);
    daemon
        .dav("integrity", PASSWORD)
        .put_ok("/video.bin", &video);
    daemon.stop();

    let (pack, spans) = chunk_spans(&data);
    assert!(spans.len() >= 4, "{spans:?}");
    assert_eq!(spans.iter().map(|s| s.1).sum::<u64>(), video.len() as u64);
    let (start, len, stored_at) = spans[2];
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&pack)
            .expect("opening the pack");
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, stored_at + len / 2)
            .expect("read");
        file.write_all_at(&[byte[0] ^ 0x10], stored_at + len / 2)
            .expect("write");
    }

    let mut daemon = Daemon::start(&data);
    let url = format!("http://{}/dav/video.bin", daemon.addr);
    let out = dir.path().join("out");
    // The whole file: curl 18, "transfer closed with outstanding read data remaining".
    let (code, got) = curl(&url, None, &out);
    assert_eq!(
        code,
        18,
        "curl must see a failed transfer ({} bytes)",
        got.len()
    );
    assert!(
        (got.len() as u64) >= start && (got.len() as u64) < start + len,
        "{} bytes received; the damaged chunk is {start}..{}",
        got.len(),
        start + len
    );
    assert!(
        got[..start as usize] == video[..start as usize],
        "sound chunks as stored"
    );

    // Ranges inside the damaged chunk, entered in the middle or ending in it: nothing of it.
    for range in [
        format!("{}-{}", start + 7, start + 70_000),
        format!("{}-{}", start, start + len - 2),
    ] {
        let (code, got) = curl(&url, Some(&range), &out);
        assert!(
            code != 0 && got.is_empty(),
            "range {range}: curl {code}, {} bytes",
            got.len()
        );
    }

    // Sound ranges of the same file still download, even across the chunks before it.
    let range = format!("100-{}", start - 1);
    let (code, got) = curl(&url, Some(&range), &out);
    assert_eq!(code, 0, "range {range}");
    assert!(got == video[100..start as usize], "range {range}");
    daemon.stop();
}
