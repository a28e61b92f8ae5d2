//! Exponential backoff between failed attempts.

use std::time::Duration;

/// Doubles from `first` up to `max`; reset after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max: max.max(first),
            failures: 0,
        }
    }

    /// Counts a failure and returns how long to wait before the next attempt.
    pub fn fail(&mut self) -> Duration {
        let wait = self
            .first
            .saturating_mul(1 << self.failures.min(20))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        wait
    }

    /// Forgets past failures.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let s = Duration::from_secs;
        let mut b = Backoff::new(s(5), s(60));
        let waits: Vec<_> = (0..6).map(|_| b.fail()).collect();
        assert_eq!(waits, [s(5), s(10), s(20), s(40), s(60), s(60)]);
        assert_eq!(b.failures(), 6);
        b.reset();
        assert_eq!(b.fail(), s(5));
    }
}
