//! A `percloud serve` process on a free loopback port.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::dav::Dav;
use crate::http::request_raw;

/// How long the daemon may take to print its listening line and answer `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERMed daemon may take to exit (its own drain deadline is 15 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running daemon; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    /// The plain HTTP address it listens on.
    pub addr: SocketAddr,
    /// The HTTPS address, once printed (with `--tls-listen`).
    tls_addr: Arc<Mutex<Option<SocketAddr>>>,
    data: PathBuf,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Daemon {
    /// `percloud serve --data DATA --listen 127.0.0.1:0`, waiting until `/healthz` answers.
    pub fn start(data: &Path) -> Daemon {
        Self::start_with(data, &[])
    }

    /// Like [`Daemon::start`], with extra arguments (e.g. `--config FILE`).
    pub fn start_with(data: &Path, extra: &[&str]) -> Daemon {
        let log_dir = crate::temp_dir("log");
        let log = log_dir.path().join("daemon.log");
        let log_file = std::fs::File::create(&log).expect("creating the daemon log");
        let mut command = Command::new(crate::bin());
        command
            .arg("serve")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("PERCLOUD_DATA")
            .env_remove("PERCLOUD_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        let mut child = command.spawn().expect("starting percloud serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines, listening) = mpsc::channel();
        let tls_addr = Arc::new(Mutex::new(None));
        let tls_seen = tls_addr.clone();
        // Reads stdout for the listening lines, then keeps draining it until the child exits.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on http://") {
                    let _ = lines.send(addr.trim().to_owned());
                } else if let Some(addr) = line.strip_prefix("listening on https://") {
                    let addr = addr.trim().parse().ok();
                    *tls_seen.lock().unwrap_or_else(|p| p.into_inner()) = addr;
                }
            }
        });
        let mut daemon = Daemon {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls_addr,
            data: data.to_owned(),
            log,
            _log_dir: log_dir,
        };
        let started = Instant::now();
        let addr = loop {
            if let Ok(addr) = listening.recv_timeout(Duration::from_millis(100)) {
                break addr;
            }
            if let Some(status) = daemon.exited() {
                panic!(
                    "percloud serve exited ({status}) before listening\n{}",
                    daemon.log()
                );
            }
            if started.elapsed() > START_TIMEOUT {
                panic!(
                    "percloud serve printed no `listening on http://` line within {START_TIMEOUT:?}\n{}",
                    daemon.log()
                );
            }
        };
        daemon.addr = addr
            .parse()
            .unwrap_or_else(|e| panic!("bad listening address {addr:?}: {e}"));
        let healthy = crate::wait_until(START_TIMEOUT.saturating_sub(started.elapsed()), || {
            request_raw(daemon.addr, "GET", "/healthz", &[], b"")
                .is_ok_and(|r| r.status == 200 && r.text().trim() == "ok")
        });
        assert!(
            healthy,
            "GET /healthz never answered 200 ok\n{}",
            daemon.log()
        );
        daemon
    }

    /// The HTTPS address (started with `--tls-listen`); waits up to 10 s for its line.
    pub fn tls_addr(&self) -> SocketAddr {
        let mut found = None;
        crate::wait_until(Duration::from_secs(10), || {
            found = *self.tls_addr.lock().unwrap_or_else(|p| p.into_inner());
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no `listening on https://` line\n{}", self.log()))
    }

    /// The box's own CA certificate (PEM), which clients trust for HTTPS.
    pub fn ca_cert(&self) -> PathBuf {
        self.data.join("tls").join("ca.pem")
    }

    /// A WebDAV client for `user`.
    pub fn dav(&self, user: &str, password: &str) -> Dav {
        Dav::new(self.addr, user, password)
    }

    /// The data folder it serves.
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit (status 0); panics if it does not stop in time.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let term = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("running kill -TERM");
        assert!(term.success(), "kill -TERM failed");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait().expect("waiting for the daemon") {
                Some(status) => {
                    assert!(
                        status.success(),
                        "percloud serve exited with {status} on SIGTERM\n{}",
                        self.log()
                    );
                    return;
                }
                None if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "percloud serve did not stop within {STOP_TIMEOUT:?} of SIGTERM\n{}",
                        self.log()
                    );
                }
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// The daemon's stderr so far.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!(
            "--- daemon log ({}) ---\n{}",
            self.log.display(),
            text.trim_end()
        )
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "daemon log tail:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        self.kill();
    }
}
