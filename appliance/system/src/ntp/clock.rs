//! The clock NTP reads and sets, behind a trait so tests never touch the host's clock.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::packet::{Offset, unix_nanos};
use crate::SystemError;

/// The system's wall clock, as the time keeper sees it.
pub trait Clock: Send + Sync {
    /// The time now.
    fn now(&self) -> SystemTime;
    /// Moves the clock by `offset` at once; returns the time it was set to.
    fn step(&self, offset: Offset) -> Result<SystemTime, SystemError>;
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
    fn step(&self, offset: Offset) -> Result<SystemTime, SystemError> {
        (**self).step(offset)
    }
}

/// `CLOCK_REALTIME`; setting it needs `CAP_SYS_TIME` (the appliance runs as root).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn step(&self, offset: Offset) -> Result<SystemTime, SystemError> {
        let to = offset
            .apply(SystemTime::now())
            .ok_or(SystemError::ClockOutOfRange { offset })?;
        let nanos = unix_nanos(to);
        let timespec = rustix::time::Timespec {
            tv_sec: i64::try_from(nanos.div_euclid(1_000_000_000))
                .map_err(|_| SystemError::ClockOutOfRange { offset })?,
            tv_nsec: nanos.rem_euclid(1_000_000_000) as _,
        };
        rustix::time::clock_settime(rustix::time::ClockId::Realtime, timespec).map_err(
            |errno| SystemError::SetClock {
                offset,
                source: errno.into(),
            },
        )?;
        Ok(to)
    }
}

/// A clock off from the host's by a set amount and stepped in memory, for tests of the time
/// keeper (which must never move the host's clock).
#[derive(Debug, Default)]
pub struct FakeClock {
    /// Nanoseconds ahead of the host's clock (negative: behind).
    ahead: Mutex<i128>,
    steps: Mutex<Vec<Offset>>,
}

impl FakeClock {
    /// A clock `seconds` ahead of the host's (negative: behind).
    pub fn off_by(seconds: f64) -> Arc<FakeClock> {
        let clock = FakeClock::default();
        *clock.ahead.lock().expect("lock") = (seconds * 1e9) as i128;
        Arc::new(clock)
    }

    /// How far it is off now, in seconds.
    pub fn error_secs(&self) -> f64 {
        *self.ahead.lock().expect("lock") as f64 / 1e9
    }

    /// The steps made so far.
    pub fn steps(&self) -> Vec<Offset> {
        self.steps.lock().expect("lock").clone()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        let ahead = *self.ahead.lock().expect("lock");
        Offset(ahead).apply(SystemTime::now()).expect("time")
    }

    fn step(&self, offset: Offset) -> Result<SystemTime, SystemError> {
        *self.ahead.lock().expect("lock") += offset.0;
        self.steps.lock().expect("lock").push(offset);
        Ok(self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::thread::{CapabilitySet, capabilities, set_capabilities};

    /// The real `clock_settime` path, without touching the host's clock: a thread that gave
    /// up CAP_SYS_TIME (capabilities are per thread) is refused, and the error says so. The
    /// offset is zero, so even a wrongly allowed call would move the clock by microseconds.
    #[test]
    fn stepping_without_cap_sys_time_is_refused_with_a_named_error() {
        std::thread::spawn(|| {
            let mut sets = capabilities(None).expect("capget");
            sets.effective.remove(CapabilitySet::SYS_TIME);
            set_capabilities(None, sets).expect("drop CAP_SYS_TIME in this thread");
            let now = capabilities(None).expect("capget");
            assert!(!now.effective.contains(CapabilitySet::SYS_TIME));
            let err = SystemClock.step(Offset(0)).expect_err("refused");
            assert!(matches!(err, SystemError::SetClock { .. }), "{err}");
            let text = err.to_string();
            assert!(text.contains("cannot step the clock by +0.000 s"), "{text}");
            assert!(text.contains("not permitted"), "{text}");
        })
        .join()
        .expect("test thread");
    }
}
