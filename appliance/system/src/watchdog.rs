//! The hardware watchdog: opened (which arms it) once the daemon serves, fed only while the
//! daemon is healthy, disarmed ("magic close") only on a clean stop. A hung or crashed
//! daemon therefore stops feeding it and the hardware resets the box; init restarts a
//! crashed daemon in time to feed it again.
//!
//! Only the write protocol of Linux's watchdog API is used: any write feeds, writing `V`
//! before closing disarms (drivers without `nowayout`). No ioctl, so no unsafe code.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::SystemError;
use crate::health::HealthProbe;

/// How often the watchdog is fed while healthy. Drivers default to 15–60 s timeouts
/// (bcm2835_wdt 15 s, i6300esb 30 s); a feed every 5 s leaves room for a slow probe.
pub const FEED_INTERVAL: Duration = Duration::from_secs(5);

/// A watchdog device.
pub trait WatchdogDevice: Send {
    /// Tells the hardware the system is alive.
    fn feed(&mut self) -> Result<(), SystemError>;
    /// Stops the hardware timer (clean shutdown).
    fn disarm(&mut self) -> Result<(), SystemError>;
}

/// `/dev/watchdog`.
#[derive(Debug)]
pub struct DevWatchdog {
    path: PathBuf,
    file: File,
}

impl DevWatchdog {
    /// Opens, and so arms, the watchdog at `path`.
    pub fn open(path: &Path) -> Result<DevWatchdog, SystemError> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|source| SystemError::WatchdogOpen {
                path: path.to_owned(),
                source,
            })?;
        Ok(DevWatchdog {
            path: path.to_owned(),
            file,
        })
    }

    fn write(&mut self, byte: u8) -> Result<(), SystemError> {
        self.file
            .write_all(&[byte])
            .and_then(|()| self.file.flush())
            .map_err(|source| SystemError::WatchdogWrite {
                path: self.path.clone(),
                source,
            })
    }
}

impl WatchdogDevice for DevWatchdog {
    fn feed(&mut self) -> Result<(), SystemError> {
        self.write(b'\0')
    }

    fn disarm(&mut self) -> Result<(), SystemError> {
        self.write(b'V')
    }
}

/// A watchdog shared between the feeding worker and whoever disarms it at a clean stop.
pub type Shared<D> = Arc<Mutex<D>>;

/// Feeds `device` every `interval` while `probe` reports healthy, until `shutdown`.
/// Transitions between healthy and unhealthy are logged once each.
pub async fn feed_while_healthy<D: WatchdogDevice, P: HealthProbe>(
    device: Shared<D>,
    probe: P,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut healthy = true;
    loop {
        match probe.check().await {
            Ok(()) => {
                if !healthy {
                    tracing::info!("healthy again: feeding the watchdog");
                    healthy = true;
                }
                let fed = match device.lock() {
                    Ok(mut device) => device.feed(),
                    Err(_) => return, // a feeder panicked elsewhere: stop feeding
                };
                if let Err(error) = fed {
                    tracing::error!(%error, "watchdog");
                }
            }
            Err(reason) => {
                if healthy {
                    tracing::error!(%reason, "unhealthy: not feeding the watchdog");
                    healthy = false;
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Disarms a shared watchdog (clean stop).
pub fn disarm<D: WatchdogDevice>(device: &Shared<D>) -> Result<(), SystemError> {
    match device.lock() {
        Ok(mut device) => device.disarm(),
        Err(poisoned) => poisoned.into_inner().disarm(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Debug, Default)]
    struct FakeDevice {
        writes: Vec<u8>,
    }

    impl WatchdogDevice for FakeDevice {
        fn feed(&mut self) -> Result<(), SystemError> {
            self.writes.push(0);
            Ok(())
        }
        fn disarm(&mut self) -> Result<(), SystemError> {
            self.writes.push(b'V');
            Ok(())
        }
    }

    #[derive(Debug, Clone)]
    struct FakeProbe(Arc<AtomicBool>);

    impl HealthProbe for FakeProbe {
        async fn check(&self) -> Result<(), String> {
            if self.0.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("hung".into())
            }
        }
    }

    fn feeds(device: &Shared<FakeDevice>) -> usize {
        device.lock().expect("lock").writes.len()
    }

    #[tokio::test(start_paused = true)]
    async fn feeds_only_while_healthy() {
        let device: Shared<FakeDevice> = Arc::default();
        let health = Arc::new(AtomicBool::new(true));
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(feed_while_healthy(
            device.clone(),
            FakeProbe(health.clone()),
            Duration::from_secs(5),
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(12)).await;
        assert_eq!(feeds(&device), 3, "fed at 0, 5 and 10 s");
        health.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(feeds(&device), 3, "no feed while unhealthy");
        health.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(feeds(&device), 4, "fed again once healthy");
        shutdown.cancel();
        worker.await.expect("worker");
        assert!(
            !device.lock().expect("lock").writes.contains(&b'V'),
            "stopping the feeder never disarms"
        );
        disarm(&device).expect("disarm");
        assert_eq!(device.lock().expect("lock").writes.last(), Some(&b'V'));
    }

    #[test]
    fn dev_watchdog_writes_feed_and_magic_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("watchdog");
        std::fs::write(&path, "").expect("create");
        let mut dog = DevWatchdog::open(&path).expect("open");
        dog.feed().expect("feed");
        dog.disarm().expect("disarm");
        assert_eq!(std::fs::read(&path).expect("read"), b"\0V");
        let err = DevWatchdog::open(&dir.path().join("missing")).expect_err("missing");
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
