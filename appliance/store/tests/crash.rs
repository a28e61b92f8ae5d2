//! Crash consistency: a child process uploads while the parent SIGKILLs it at random moments;
//! everything the child acknowledged must be intact after reopening, and fsck must be clean.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use percloud_store::{Store, StoreOptions};

const CHILD_ENV: &str = "PERCLOUD_STORE_CRASH_CHILD";

fn content(i: u64) -> Vec<u8> {
    let len = match i % 4 {
        0 => 4096,
        1 => 700_000,
        2 => 2_500_000,
        _ => 10,
    };
    random_bytes(1000 + i, len)
}

/// Not a test on its own: the body the parent runs in a child process.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let options = StoreOptions {
        pack_target_bytes: 4 * 1024 * 1024,
        ..StoreOptions::default()
    };
    let s = Store::open(std::path::Path::new(&dir), options).unwrap();
    let u = match s.user("alice").unwrap() {
        Some(u) => u.id,
        None => user(&s, "alice").id,
    };
    let start: u64 = std::env::var("START").unwrap().parse().unwrap();
    let mut out = std::io::stdout();
    for i in start.. {
        let data = content(i);
        put(&s, u, &format!("/f{i}"), &data);
        put(&s, u, "/over", &data);
        writeln!(out, "ack {i}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn killed_writer_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut next = 0u64;
    for round in 0..4u64 {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env("START", next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let wait = Duration::from_millis(150 + 170 * round);
        let started = Instant::now();
        let mut acked = None;
        while started.elapsed() < wait {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(i) = line.strip_prefix("ack ") {
                        acked = Some(i.parse::<u64>().unwrap());
                    }
                }
                _ => break,
            }
        }
        child.kill().unwrap();
        // Drain what the child printed before it died.
        for line in lines.map_while(Result::ok) {
            if let Some(i) = line.strip_prefix("ack ") {
                acked = Some(i.parse::<u64>().unwrap());
            }
        }
        child.wait().unwrap();

        let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let u = s.user("alice").unwrap().unwrap().id;
        if let Some(last) = acked {
            for i in 0..=last {
                assert!(
                    get(&s, u, &format!("/f{i}")) == content(i),
                    "round {round}: /f{i}"
                );
            }
            let over = get(&s, u, "/over");
            assert!(
                over == content(last) || over == content(last + 1),
                "round {round}: /over"
            );
            next = last + 1;
        }
        let report = s.fsck(false).unwrap();
        assert!(report.is_clean(), "round {round}: {:?}", report.problems);
        eprintln!(
            "round {round}: {acked:?} acknowledged, {} reclaimable bytes",
            report.reclaimable_bytes
        );
        // The file the child was writing when killed may exist (committed, not acknowledged);
        // start the next round after it.
        if s.stat(u, &p(&format!("/f{next}"))).is_ok() {
            next += 1;
        }
    }
    assert!(next > 0, "the child never acknowledged anything");
}
