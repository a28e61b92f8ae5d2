//! The system-test harness: runs the real `percloud` binary on a free loopback port in a
//! temporary data folder and talks to it as clients do (raw HTTP, WebDAV, the CLI).
//!
//! Everything here is bounded in time: processes are waited for with deadlines and killed
//! when they overrun, sockets have timeouts, and a [`Daemon`] is killed when dropped (also
//! when a test panics). Temporary folders are [`tempfile::TempDir`]s, removed on drop.
//!
//! The binary is `PERCLOUD_BIN`, else `<workspace>/target/debug/percloud`. Run the suite with
//! `scripts/test` (which installs litmus and rclone), or by hand:
//! `cargo build -p percloud && cargo test -p percloud-system-tests -- --test-threads=1`;
//! `PERCLOUD_QUICK=1` shrinks sizes and rounds.

mod command;
mod daemon;
mod dav;
mod http;
mod tree;

pub use command::{Ran, run_bounded};
pub use daemon::Daemon;
pub use dav::{Dav, encode_path, hrefs};
pub use http::{Response, request_raw};
pub use tree::{dir_bytes, random_bytes, write_random_file};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long an admin command (`user`, `fsck`, `gc`) may take before the test fails.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(300);

/// A password long enough for any sane policy.
pub const PASSWORD: &str = "correct-horse-battery-staple-42";

/// True when `PERCLOUD_QUICK` is set (scripts/test --quick): smaller sizes, fewer rounds.
pub fn quick() -> bool {
    std::env::var_os("PERCLOUD_QUICK").is_some_and(|v| !v.is_empty() && v != "0")
}

/// `full` normally, `quick` under `PERCLOUD_QUICK`.
pub fn pick<T>(full: T, quick_value: T) -> T {
    if quick() { quick_value } else { full }
}

/// The percloud binary under test.
pub fn bin() -> PathBuf {
    let path = match std::env::var_os("PERCLOUD_BIN") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join("debug")
            .join("percloud"),
    };
    assert!(
        path.is_file(),
        "no percloud binary at {}: build it first: cargo build -p percloud",
        path.display()
    );
    path
}

/// A fresh temporary folder, removed when dropped.
pub fn temp_dir(label: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("percloud-{label}-"))
        .tempdir()
        .expect("creating a temporary folder")
}

/// Runs `percloud ARGS` with `stdin` (closed when `None`), bounded by [`CLI_TIMEOUT`].
pub fn percloud(args: &[&str], stdin: Option<&str>) -> Ran {
    let mut command = Command::new(bin());
    command
        .args(args)
        .env_remove("PERCLOUD_DATA")
        .env_remove("PERCLOUD_CONFIG");
    run_bounded(command, stdin.map(str::as_bytes), CLI_TIMEOUT)
}

/// `percloud user add NAME --data DATA` with `password` on stdin; panics unless it succeeds.
pub fn add_user(data: &Path, name: &str, password: &str) {
    let data = data.to_str().expect("UTF-8 temp path");
    percloud(
        &["user", "add", name, "--data", data],
        Some(&format!("{password}\n")),
    )
    .expect_success(&format!("percloud user add {name}"));
}

/// `percloud fsck --data DATA` (through the daemon when one serves DATA); panics unless it
/// exits 0 and says `clean`. Returns its output.
pub fn fsck_clean(data: &Path, when: &str) -> Ran {
    let data = data.to_str().expect("UTF-8 temp path");
    let ran = percloud(&["fsck", "--data", data], None);
    assert!(
        ran.code == Some(0) && ran.stdout.contains("clean"),
        "fsck {when}: expected exit 0 and \"clean\"\n{ran}"
    );
    ran
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
