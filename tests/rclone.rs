//! A real sync client: rclone copies a tree of awkward names, empty files, deep folders, a
//! folder of 400 files (whose listing streams) and one large file up over WebDAV and back
//! down; `rclone check` finds no difference on either side and the downloaded tree equals the
//! original byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use percloud_system_tests::{
    Daemon, PASSWORD, Ran, add_user, fsck_clean, pick, run_bounded, temp_dir, write_random_file,
};
use rand::{Rng, SeedableRng};

const RCLONE_TIMEOUT: Duration = Duration::from_secs(1800);

/// Names that trip up path handling: spaces, unicode, URL delimiters, percent signs.
const AWKWARD: [&str; 16] = [
    "plain.txt",
    "with space.txt",
    "été ☃.txt",
    "100% done",
    "a#hash",
    "what?.txt",
    "this&that",
    "one+one",
    "semi;colon",
    "equals=sign",
    "quote's",
    "日本語のファイル",
    "emoji 🎉",
    "brackets [1] (2) {3}",
    "tilde~and,comma",
    "dollar$at@",
];

/// Builds the tree under `root`; returns its files relative path → content hash.
fn build_tree(root: &Path, big_file_bytes: u64) -> BTreeMap<PathBuf, blake3::Hash> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut files = BTreeMap::new();
    let mut folders = vec![PathBuf::new()];
    for (i, name) in AWKWARD.iter().enumerate() {
        folders.push(PathBuf::from(format!("{name} dir {i}")));
    }
    let deep: PathBuf = (0..12).map(|level| format!("level {level} é#%")).collect();
    folders.push(deep);
    for folder in &folders {
        std::fs::create_dir_all(root.join(folder)).expect("creating a folder");
    }
    std::fs::create_dir_all(root.join("empty folder")).expect("creating a folder");

    let mut add = |rel: PathBuf, len: u64, rng: &mut rand::rngs::StdRng| {
        let hash = write_random_file(rng, &root.join(&rel), len);
        files.insert(rel, hash);
    };
    for (f, folder) in folders.iter().enumerate() {
        for (n, name) in AWKWARD.iter().enumerate() {
            let len = match (f + n) % 5 {
                0 => 0,
                1 => rng.gen_range(1..100),
                2 => rng.gen_range(100..10_000),
                3 => rng.gen_range(10_000..300_000),
                _ => rng.gen_range(1..4096),
            };
            add(folder.join(name), len, &mut rng);
        }
    }
    // More entries than the server lists in one piece: its PROPFIND answer streams.
    std::fs::create_dir_all(root.join("crowded folder")).expect("creating a folder");
    for n in 0..CROWDED {
        let name = format!("crowded folder/file {n} {}", AWKWARD[n % AWKWARD.len()]);
        let len = rng.gen_range(0..200);
        add(PathBuf::from(name), len, &mut rng);
    }
    add(PathBuf::from("big file.bin"), big_file_bytes, &mut rng);
    files
}

/// Files in the crowded folder: above the 256 entries past which a listing streams.
const CROWDED: usize = 400;

/// Every file and folder under `root`, relative, with file contents hashed.
fn scan(root: &Path) -> BTreeMap<PathBuf, Option<blake3::Hash>> {
    fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Option<blake3::Hash>>) {
        let entries = std::fs::read_dir(root.join(rel))
            .unwrap_or_else(|e| panic!("listing {}: {e}", root.join(rel).display()));
        for entry in entries {
            let entry = entry.expect("reading a folder entry");
            let child = rel.join(entry.file_name());
            if entry.file_type().expect("file type").is_dir() {
                out.insert(child.clone(), None);
                walk(root, &child, out);
            } else {
                let bytes = std::fs::read(root.join(&child)).expect("reading a file");
                out.insert(child, Some(blake3::hash(&bytes)));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

fn rclone(args: &[&str], env: &[(&str, String)]) -> Ran {
    let mut command = Command::new("rclone");
    command
        .args(args)
        .args(["--retries", "1", "--low-level-retries", "3", "--stats", "0"]);
    for (key, value) in env {
        command.env(key, value);
    }
    run_bounded(command, None, RCLONE_TIMEOUT)
}

#[test]
fn rclone_round_trip() {
    let version = Command::new("rclone").arg("version").output();
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "rclone is not installed: scripts/test installs it (apt-get install rclone)"
    );

    let dir = temp_dir("rclone");
    let data = dir.path().join("data");
    let up = dir.path().join("up");
    let down = dir.path().join("down");
    let big = pick(300u64 << 20, 30 << 20);
    let files = build_tree(&up, big);
    println!("tree: {} files, big file {} MiB", files.len(), big >> 20);

    add_user(&data, "rclone", PASSWORD);
    let daemon = Daemon::start(&data);
    let obscured = rclone(&["obscure", PASSWORD], &[]);
    obscured.expect_success("rclone obscure");
    let env = [
        (
            "RCLONE_CONFIG",
            dir.path().join("rclone.conf").display().to_string(),
        ),
        ("RCLONE_CONFIG_PC_TYPE", "webdav".to_owned()),
        (
            "RCLONE_CONFIG_PC_URL",
            format!("http://{}/dav/", daemon.addr),
        ),
        ("RCLONE_CONFIG_PC_VENDOR", "other".to_owned()),
        ("RCLONE_CONFIG_PC_USER", "rclone".to_owned()),
        ("RCLONE_CONFIG_PC_PASS", obscured.stdout.trim().to_owned()),
    ];
    let (up_s, down_s) = (up.to_str().expect("UTF-8"), down.to_str().expect("UTF-8"));
    let with_log = |ran: &Ran| format!("{ran}\n{}", daemon.log());

    let copy_up = rclone(&["copy", "--create-empty-src-dirs", up_s, "pc:tree"], &env);
    assert_eq!(
        copy_up.code,
        Some(0),
        "rclone copy up failed\n{}",
        with_log(&copy_up)
    );
    println!("copy up: {:.1?}", copy_up.elapsed);

    let copy_down = rclone(
        &["copy", "--create-empty-src-dirs", "pc:tree", down_s],
        &env,
    );
    assert_eq!(
        copy_down.code,
        Some(0),
        "rclone copy down failed\n{}",
        with_log(&copy_down)
    );
    println!("copy down: {:.1?}", copy_down.elapsed);

    // The server has no hashes rclone knows, so the up side compares contents (--download).
    let check_up = rclone(&["check", "--download", up_s, "pc:tree"], &env);
    assert_eq!(
        check_up.code,
        Some(0),
        "rclone check (up side) found differences\n{}",
        with_log(&check_up)
    );
    let check_down = rclone(&["check", down_s, "pc:tree"], &env);
    assert_eq!(
        check_down.code,
        Some(0),
        "rclone check (down side) found differences\n{}",
        with_log(&check_down)
    );

    let (original, downloaded) = (scan(&up), scan(&down));
    let missing: Vec<_> = original
        .keys()
        .filter(|k| !downloaded.contains_key(*k))
        .collect();
    let extra: Vec<_> = downloaded
        .keys()
        .filter(|k| !original.contains_key(*k))
        .collect();
    let differ: Vec<_> = original
        .iter()
        .filter(|(k, v)| downloaded.get(*k).is_some_and(|d| d != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "downloaded tree differs from the original:\nmissing {missing:?}\nextra {extra:?}\ndifferent content {differ:?}"
    );
    assert_eq!(
        original.values().filter(|v| v.is_some()).count(),
        files.len(),
        "the scan does not match the tree that was built"
    );
    fsck_clean(&data, "after the rclone round trip (through the daemon)");
}
