//! Deduplication and space reclaim: a second copy of a large file costs (almost) nothing in
//! `DATA/packs`; deleting both copies and running `percloud gc` gives the space back, both with
//! the daemon stopped (the CLI opens the store) and while it serves (through the control
//! socket). fsck stays clean throughout.

use std::path::Path;

use percloud_system_tests::{
    Daemon, PASSWORD, add_user, dir_bytes, fsck_clean, percloud, pick, random_bytes, temp_dir,
};
use rand::SeedableRng;

/// Retention that expires trash and old versions at once, so gc can reclaim what was deleted.
const NO_RETENTION: &str = "[retention]\nkeep_versions = 0\nkeep_days = 0\ntrash_days = 0\n";

fn pack_bytes(data: &Path) -> u64 {
    dir_bytes(&data.join("packs"))
}

/// Uploads `content` as `first` then `second`; checks the second copy is deduplicated.
fn upload_twice(daemon: &Daemon, content: &[u8], first: &str, second: &str) {
    let dav = daemon.dav("dedup", PASSWORD);
    let data = daemon.data();
    let before = pack_bytes(data);
    dav.put_ok(first, content);
    let after_first = pack_bytes(data);
    dav.put_ok(second, content);
    let after_second = pack_bytes(data);
    let size = content.len() as u64;
    println!(
        "packs: {before} before, {after_first} after the first copy, {after_second} after the second (file {size} bytes); data folder {} bytes",
        dir_bytes(data)
    );
    assert!(
        after_first >= before + size * 9 / 10,
        "the first copy of {size} random bytes grew packs only from {before} to {after_first}: are packs under {}?",
        data.join("packs").display()
    );
    let growth = after_second.saturating_sub(after_first);
    assert!(
        growth < size / 100,
        "the second copy grew packs by {growth} bytes, not less than 1% of {size}"
    );
    for path in [first, second] {
        let body = dav.get_ok(path);
        assert!(
            body == content,
            "GET {path} does not return what was uploaded"
        );
    }
}

/// Deletes `paths` over WebDAV.
fn delete_both(daemon: &Daemon, paths: [&str; 2]) {
    let dav = daemon.dav("dedup", PASSWORD);
    for path in paths {
        let response = dav.delete(path).expect("DELETE");
        assert!(
            matches!(response.status, 200 | 204),
            "DELETE {path}: expected 204\n{response}"
        );
    }
}

/// Runs `percloud gc` (`mode` says whether a daemon serves `data`); checks packs shrink by
/// most of the `size` bytes deleted and fsck is clean.
fn gc_reclaims(data: &Path, config: &Path, size: u64, mode: &str) {
    let before = pack_bytes(data);
    let gc = percloud(
        &[
            "gc",
            "--data",
            data.to_str().expect("UTF-8"),
            "--config",
            config.to_str().expect("UTF-8"),
        ],
        None,
    );
    gc.expect_success(&format!("percloud gc {mode}"));
    let after = pack_bytes(data);
    println!(
        "gc {mode}: packs {before} -> {after} bytes; {}",
        gc.stdout.trim()
    );
    assert!(
        after + size * 9 / 10 <= before,
        "gc {mode} reclaimed only {} of the {size} bytes deleted (packs {before} -> {after})\n{gc}",
        before.saturating_sub(after)
    );
    fsck_clean(data, &format!("after gc {mode}"));
}

#[test]
fn identical_files_are_stored_once_and_reclaimed() {
    let size = pick(100usize << 20, 20 << 20);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let dir = temp_dir("dedup");
    let data = dir.path().join("data");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, NO_RETENTION).expect("writing the config");
    let config_arg = ["--config", config.to_str().expect("UTF-8")];
    add_user(&data, "dedup", PASSWORD);

    // Round 1: gc with the daemon stopped.
    let content = random_bytes(&mut rng, size);
    let mut daemon = Daemon::start_with(&data, &config_arg);
    upload_twice(&daemon, &content, "original.bin", "copy of original.bin");
    delete_both(&daemon, ["original.bin", "copy of original.bin"]);
    daemon.stop();
    gc_reclaims(&data, &config, size as u64, "with the daemon stopped");

    // Round 2: gc while the daemon serves.
    let content = random_bytes(&mut rng, size);
    let daemon = Daemon::start_with(&data, &config_arg);
    upload_twice(&daemon, &content, "folder a.bin", "another name.bin");
    delete_both(&daemon, ["folder a.bin", "another name.bin"]);
    gc_reclaims(&data, &config, size as u64, "through the control socket");
    drop(daemon);
}
