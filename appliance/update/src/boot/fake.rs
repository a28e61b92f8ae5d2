//! A file-backed bootloader for tests: a JSON file says which slot is the default, which
//! one is armed for a trial, which one this boot runs, and how many reboots were asked.
//! A test "reboots" by applying the firmware's rule itself ([`FakeState::boot_next`]) and
//! starting the daemon again.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::BootControl;
use crate::error::UpdateError;
use crate::slot::Slot;

const NAME: &str = "fake";

/// The fake bootloader's file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeState {
    pub default: Slot,
    /// Armed for the next boot only.
    pub trial: Option<Slot>,
    /// The slot this boot runs.
    pub booted: Slot,
    /// Whether `default`'s other slot may boot as a fallback.
    pub fallback: bool,
    pub reboots: u32,
}

impl Default for FakeState {
    fn default() -> Self {
        FakeState {
            default: Slot::A,
            trial: None,
            booted: Slot::A,
            fallback: true,
            reboots: 0,
        }
    }
}

impl FakeState {
    /// What a firmware does at power-on: the armed trial once, else the default.
    pub fn boot_next(&mut self) {
        self.booted = self.trial.take().unwrap_or(self.default);
    }
}

#[derive(Debug, Clone)]
pub struct FakeBoot {
    pub path: PathBuf,
}

impl FakeBoot {
    /// The state; a missing file is a fresh box running slot A.
    pub fn load(&self) -> Result<FakeState, UpdateError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| UpdateError::Boot {
                backend: NAME,
                reason: format!("{}: {e}", self.path.display()),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FakeState::default()),
            Err(e) => Err(UpdateError::read(&self.path)(e)),
        }
    }

    pub fn save(&self, state: &FakeState) -> Result<(), UpdateError> {
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| UpdateError::Boot {
            backend: NAME,
            reason: e.to_string(),
        })?;
        let temp = self.path.with_extension("tmp");
        std::fs::write(&temp, bytes)
            .and_then(|()| std::fs::rename(&temp, &self.path))
            .map_err(UpdateError::write(&self.path))
    }

    fn change(&self, edit: impl FnOnce(&mut FakeState)) -> Result<(), UpdateError> {
        let mut state = self.load()?;
        edit(&mut state);
        self.save(&state)
    }
}

impl BootControl for FakeBoot {
    fn name(&self) -> &'static str {
        NAME
    }

    fn running_slot(&self) -> Result<Slot, UpdateError> {
        Ok(self.load()?.booted)
    }

    fn check_capability(&self) -> Result<(), UpdateError> {
        self.load().map(|_| ())
    }

    fn arm_trial(&self, slot: Slot) -> Result<(), UpdateError> {
        self.change(|s| s.trial = Some(slot))
    }

    fn commit(&self, slot: Slot) -> Result<(), UpdateError> {
        let state = self.load()?;
        if state.default == slot && state.fallback && state.trial.is_none() {
            return Ok(());
        }
        self.change(|s| {
            s.default = slot;
            s.trial = None;
            s.fallback = true;
        })
    }

    fn disarm(&self, default: Slot) -> Result<(), UpdateError> {
        self.change(|s| {
            s.default = default;
            s.trial = None;
            s.fallback = false;
        })
    }

    fn reboot(&self) -> Result<(), UpdateError> {
        self.change(|s| s.reboots += 1)
    }
}
