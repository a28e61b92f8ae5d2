//! The last log lines, kept in memory for the admin page: a tracing layer the binary installs
//! next to its own output, with a bounded ring buffer.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Lines kept.
pub const RECENT_LOG_LINES: usize = 200;
/// Longest line kept, in bytes.
const MAX_LINE: usize = 1024;
/// Per-request access lines would push everything else out (the admin page polls), so they
/// are left to the daemon's own log.
const ACCESS_TARGET: &str = "percloud::access";

/// A shared ring of the most recent log lines; clone it into the subscriber and the app.
#[derive(Debug, Clone, Default)]
pub struct RecentLogs {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl RecentLogs {
    pub fn new() -> Self {
        Self::default()
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    fn push(&self, mut line: String) {
        if line.len() > MAX_LINE {
            let mut end = MAX_LINE;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
        }
        let mut lines = self.lock();
        if lines.len() >= RECENT_LOG_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<String>> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S: Subscriber> Layer<S> for RecentLogs {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if meta.target() == ACCESS_TARGET {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let now = time::OffsetDateTime::now_utc();
        let line = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z {} {}: {}{}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            meta.level(),
            meta.target(),
            fields.message,
            fields.rest
        );
        self.push(line);
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn keeps_the_last_lines_without_access_logs() {
        let logs = RecentLogs::new();
        let subscriber = tracing_subscriber::registry().with(logs.clone());
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..(RECENT_LOG_LINES + 10) {
                tracing::info!(n = i, who = "me", "line {i}");
            }
            tracing::info!(target: "percloud::access", "GET /");
        });
        let lines = logs.lines();
        assert_eq!(lines.len(), RECENT_LOG_LINES);
        assert!(lines[0].contains("line 10 n=10 who=me"), "{}", lines[0]);
        assert!(lines.last().is_some_and(|l| l.contains("INFO")));
        assert!(!lines.iter().any(|l| l.contains("GET /")));
    }
}
