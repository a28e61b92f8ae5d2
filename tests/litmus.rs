//! WebDAV compliance: Debian's `litmus` against the daemon, suite by suite. Every suite must
//! run and report 0 failed; warnings are allowed.

use std::process::Command;
use std::time::Duration;

use percloud_system_tests::{Daemon, PASSWORD, add_user, run_bounded, temp_dir};

const SUITES: [&str; 5] = ["basic", "copymove", "props", "locks", "http"];
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);

/// The `(run, passed, failed)` counts of litmus's summary line for `suite`:
/// "<- summary for `basic': of 16 tests run: 16 passed, 0 failed. 100.0%".
fn summary(output: &str, suite: &str) -> Option<(u32, u32, u32)> {
    let marker = format!("summary for `{suite}':");
    let line = output.lines().find(|l| l.contains(&marker))?;
    let numbers: Vec<u32> = line[line.find(&marker)? + marker.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    match numbers.as_slice() {
        [run, passed, failed, ..] => Some((*run, *passed, *failed)),
        _ => None,
    }
}

#[test]
fn litmus_suites_pass() {
    let litmus_found = Command::new("litmus").arg("--version").output().is_ok();
    assert!(
        litmus_found,
        "litmus is not installed: scripts/test installs it (apt-get install litmus)"
    );

    let dir = temp_dir("litmus");
    let data = dir.path().join("data");
    add_user(&data, "litmus", PASSWORD);
    let daemon = Daemon::start(&data);
    let url = format!("http://{}/dav/", daemon.addr);

    let mut failures = Vec::new();
    for suite in SUITES {
        let mut command = Command::new("litmus");
        command
            .env("TESTS", suite)
            .env("HOME", dir.path())
            .current_dir(dir.path())
            .args([&url, "litmus", PASSWORD]);
        let ran = run_bounded(command, None, SUITE_TIMEOUT);
        let output = format!("{}{}", ran.stdout, ran.stderr);
        println!("litmus {suite}: {:.1?}", ran.elapsed);
        match summary(&output, suite) {
            Some((run, _, 0)) if run > 0 => {}
            Some((run, passed, failed)) => failures.push(format!(
                "suite {suite}: {failed} failed ({passed}/{run} passed)\n{ran}"
            )),
            None => failures.push(format!("suite {suite}: no summary line\n{ran}")),
        }
    }
    assert!(
        failures.is_empty(),
        "litmus failures:\n\n{}\n{}",
        failures.join("\n\n"),
        daemon.log()
    );
}

#[test]
fn summary_lines_are_read() {
    let out = "<- summary for `basic': of 16 tests run: 15 passed, 1 failed. 93.8%\n";
    assert_eq!(summary(out, "basic"), Some((16, 15, 1)));
    assert_eq!(summary(out, "props"), None);
}
