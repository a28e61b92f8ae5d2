//! The SNTP client against a real NTP server: chronyd (Debian package `chrony`) serving its
//! host's time on a loopback port, without touching the host's clock (`-x`). The client's
//! clock is a fake set an hour behind, so the test sees the server's time arrive and the
//! step that follows, while the host's clock is never set.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use percloud_system::ntp::{self, FakeClock, Server, Settings};
use tokio_util::sync::CancellationToken;

/// chronyd in the foreground, serving on 127.0.0.1:`port`; killed when dropped.
struct Chronyd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Chronyd {
    fn start() -> Chronyd {
        let chronyd = ["/usr/sbin/chronyd", "/sbin/chronyd"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("chronyd is missing: install the Debian package chrony");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = {
            let probe = UdpSocket::bind("127.0.0.1:0").expect("bind");
            probe.local_addr().expect("addr").port()
        };
        let conf = dir.path().join("chrony.conf");
        std::fs::write(&conf, config(port, dir.path())).expect("config");
        // -d: foreground, log to stderr; -x: never touch the host's clock.
        let child = Command::new(chronyd)
            .args(["-d", "-x", "-f"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chronyd");
        Chronyd {
            child,
            port,
            _dir: dir,
        }
    }

    fn server(&self) -> Server {
        format!("127.0.0.1:{}", self.port).parse().expect("server")
    }
}

impl Drop for Chronyd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server that answers from its own clock ("local") to loopback only, no control port.
fn config(port: u16, dir: &Path) -> String {
    format!(
        "port {port}\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 7\ncmdport 0\npidfile {}\n",
        dir.join("chronyd.pid").display()
    )
}

/// Asks until chronyd answers (it starts in well under a second), for at most 10 s.
async fn first_sample(server: &Server, clock: &Arc<FakeClock>) -> ntp::Sample {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ntp::sync_once(
            std::slice::from_ref(server),
            clock,
            Duration::from_millis(500),
        )
        .await
        {
            Ok(sample) => return sample,
            Err(error) if Instant::now() > deadline => panic!("chronyd never answered: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test]
async fn gets_the_time_of_a_real_ntp_server() {
    let chronyd = Chronyd::start();
    let clock = FakeClock::off_by(-3600.0);
    let sample = first_sample(&chronyd.server(), &clock).await;
    assert_eq!(
        sample.stratum, 7,
        "the stratum of chronyd's `local stratum 7`"
    );
    let offset = sample.measurement.offset.0 as f64 / 1e9;
    assert!(
        (offset - 3600.0).abs() < 0.5,
        "the server's time is an hour ahead of the fake clock, not {offset} s"
    );
    assert!(sample.measurement.delay.0 >= 0, "{:?}", sample.measurement);
    assert!(clock.steps().is_empty(), "asking never steps");
}

#[tokio::test]
async fn the_time_keeper_steps_the_clock_to_the_servers_time() {
    let chronyd = Chronyd::start();
    let clock = FakeClock::off_by(-3600.0);
    // Wait until chronyd serves, with a clock of its own, so the worker's first round counts.
    let _ = first_sample(&chronyd.server(), &FakeClock::off_by(-3600.0)).await;
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(ntp::keep_time(
        Settings::new(vec![chronyd.server()]),
        clock.clone(),
        shutdown.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while clock.steps().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(clock.steps().len(), 1, "one step");
    assert!(
        clock.error_secs().abs() < 0.5,
        "after the step the clock is off by {} s",
        clock.error_secs()
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), worker)
        .await
        .expect("stops on shutdown")
        .expect("no panic");
}
