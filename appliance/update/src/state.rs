//! The update's record on the data partition (`<data>/update/`), which both the old and the
//! new system read: `state.json` (the pending trial and the history) and `trial.json` (how
//! far the trial boot got, with its last log lines, written as it goes).
//!
//! Both are JSON with a `version` field; unknown fields are ignored and missing ones take
//! defaults, so an older release reads what a newer one wrote and the other way round.
//! Every write is atomic (temporary file, fsync, rename, fsync of the folder).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::UpdateError;
use crate::replace::replace_file;
use crate::slot::Slot;

pub const STATE_VERSION: u32 = 1;
/// History entries kept (oldest dropped).
pub const HISTORY_LIMIT: usize = 50;
/// Space a staged bundle must leave free on the data partition, for the store.
pub const DATA_RESERVE: u64 = 256 << 20;
/// Log lines kept with a trial report.
pub const TRIAL_LOG_LINES: usize = 40;

/// An update installed and armed, waiting for its trial boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Distinguishes attempts (a retried update gets a fresh one).
    pub attempt: String,
    pub from_version: String,
    pub to_version: String,
    pub from_slot: Slot,
    pub to_slot: Slot,
    pub armed_at: u64,
}

/// One finished attempt, newest last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: u64,
    pub from_version: String,
    pub to_version: String,
    /// `installed` (written and armed), `committed`, `failed`, `refused`.
    pub outcome: String,
    /// The step that failed, for `failed` and `refused`.
    #[serde(default)]
    pub step: Option<String>,
    /// One sentence for people.
    pub message: String,
    #[serde(default)]
    pub logs: Vec<String>,
    /// True for the outcome of a trial boot (committed, or failed and rolled back).
    #[serde(default)]
    pub trial: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    #[serde(default = "state_version")]
    pub version: u32,
    #[serde(default)]
    pub pending: Option<Pending>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

fn state_version() -> u32 {
    STATE_VERSION
}

impl Default for State {
    fn default() -> Self {
        State {
            version: STATE_VERSION,
            pending: None,
            history: Vec::new(),
        }
    }
}

impl State {
    pub fn record(&mut self, entry: HistoryEntry) {
        self.history.push(entry);
        let excess = self.history.len().saturating_sub(HISTORY_LIMIT);
        self.history.drain(..excess);
    }
}

/// How far a trial boot got, written by the trial system itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialReport {
    #[serde(default)]
    pub attempt: String,
    #[serde(default)]
    pub version: String,
    /// Gate steps passed, in order.
    #[serde(default)]
    pub passed: Vec<String>,
    /// The step being checked (or failed) last.
    #[serde(default)]
    pub current: Option<String>,
    /// Why the gate failed, when it did.
    #[serde(default)]
    pub failure: Option<String>,
    #[serde(default)]
    pub logs: Vec<String>,
    #[serde(default)]
    pub updated_at: u64,
}

/// `<data>/update/`.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub fn new(data: &Path) -> StateDir {
        StateDir {
            dir: data.join("update"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where downloads and uploads are staged.
    pub fn staging(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Bytes a staged bundle may take: the data partition's free space less
    /// [`DATA_RESERVE`], so a download never fills the disk the store lives on.
    pub fn room(&self) -> Result<u64, UpdateError> {
        let st = rustix::fs::statvfs(&self.dir).map_err(|e| UpdateError::Read {
            path: self.dir.clone(),
            source: e.into(),
        })?;
        Ok((st.f_bavail.saturating_mul(st.f_frsize)).saturating_sub(DATA_RESERVE))
    }

    pub fn create(&self) -> Result<(), UpdateError> {
        std::fs::create_dir_all(&self.dir).map_err(UpdateError::write(&self.dir))
    }

    pub fn load(&self) -> Result<State, UpdateError> {
        Ok(read_json(&self.dir.join("state.json"))?.unwrap_or_default())
    }

    pub fn save(&self, state: &State) -> Result<(), UpdateError> {
        write_json(&self.dir.join("state.json"), state)
    }

    pub fn change<T>(&self, edit: impl FnOnce(&mut State) -> T) -> Result<T, UpdateError> {
        let mut state = self.load()?;
        let out = edit(&mut state);
        self.save(&state)?;
        Ok(out)
    }

    pub fn trial(&self) -> Result<Option<TrialReport>, UpdateError> {
        read_json(&self.dir.join("trial.json"))
    }

    pub fn save_trial(&self, report: &TrialReport) -> Result<(), UpdateError> {
        write_json(&self.dir.join("trial.json"), report)
    }

    pub fn clear_trial(&self) -> Result<(), UpdateError> {
        let path = self.dir.join("trial.json");
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(UpdateError::write(path)(e)),
        }
    }
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, UpdateError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| UpdateError::State {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(UpdateError::read(path)(e)),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), UpdateError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| UpdateError::State {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(UpdateError::write(dir))?;
    }
    replace_file(path, &path.with_extension("json.tmp"), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_of_older_and_newer_releases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let states = StateDir::new(dir.path());
        assert_eq!(states.load().expect("empty"), State::default());
        // A newer release's file, with a field this one does not know.
        std::fs::create_dir_all(states.dir()).expect("dir");
        std::fs::write(
            states.dir().join("state.json"),
            r#"{"version":2,"history":[{"at":1,"from_version":"0.1.0","to_version":"0.2.0","outcome":"committed","message":"ok","delta_bytes":5}],"channel_etag":"x"}"#,
        )
        .expect("write");
        let state = states.load().expect("newer file readable");
        assert_eq!(state.history.len(), 1);
        assert_eq!(state.history[0].step, None);
        // An older release's trial report without logs.
        std::fs::write(states.dir().join("trial.json"), r#"{"attempt":"x"}"#).expect("write");
        assert_eq!(states.trial().expect("read").expect("some").attempt, "x");
    }

    #[test]
    fn history_is_bounded() {
        let mut state = State::default();
        for i in 0..(HISTORY_LIMIT as u64 + 5) {
            state.record(HistoryEntry {
                at: i,
                from_version: String::new(),
                to_version: String::new(),
                outcome: "refused".into(),
                step: None,
                message: String::new(),
                logs: Vec::new(),
                trial: false,
            });
        }
        assert_eq!(state.history.len(), HISTORY_LIMIT);
        assert_eq!(state.history[0].at, 5);
    }
}
