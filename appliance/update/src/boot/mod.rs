//! Boot selection: which slot the bootloader starts next, behind one small trait with three
//! implementations — the GRUB environment block ([`grub`]), Raspberry Pi tryboot
//! ([`tryboot`]) and a file-backed fake for tests ([`fake`]).

pub mod fake;
pub mod grub;
pub mod tryboot;

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use crate::error::UpdateError;
use crate::slot::{Slot, slot_from_cmdline};

/// What an update needs from the bootloader.
pub trait BootControl: Send + Sync + Debug {
    /// The backend's name, for messages.
    fn name(&self) -> &'static str;
    /// The slot this boot runs from.
    fn running_slot(&self) -> Result<Slot, UpdateError>;
    /// Whether this box can boot a slot on trial; `Err` says why not (old EEPROM…).
    fn check_capability(&self) -> Result<(), UpdateError>;
    /// The next boot, and only that one, starts `slot`; any later boot starts the other.
    fn arm_trial(&self, slot: Slot) -> Result<(), UpdateError>;
    /// `slot` becomes the default with all its tries (a healthy trial, or any healthy boot).
    fn commit(&self, slot: Slot) -> Result<(), UpdateError>;
    /// Only `default` may boot: any armed trial is dropped and the other slot is not a
    /// fallback (it is about to be written, or it just failed).
    fn disarm(&self, default: Slot) -> Result<(), UpdateError>;
    /// Restarts the machine so that an armed trial happens. The fake only counts.
    fn reboot(&self) -> Result<(), UpdateError>;
}

/// Reads the running slot from a kernel command line file (`/proc/cmdline`).
pub fn slot_from_cmdline_file(path: &Path, backend: &'static str) -> Result<Slot, UpdateError> {
    let text = std::fs::read_to_string(path).map_err(UpdateError::read(path))?;
    slot_from_cmdline(&text).ok_or_else(|| UpdateError::Boot {
        backend,
        reason: format!("no percloud.slot=A|B in {}", path.display()),
    })
}

/// Restarts the machine the ordinary way: busybox `reboot` asks init to stop everything
/// (percloud gets SIGTERM and stops cleanly), unmount and restart.
pub fn reboot_with(command: &[String], backend: &'static str) -> Result<(), UpdateError> {
    let (program, args) = command.split_first().ok_or(UpdateError::Boot {
        backend,
        reason: "no reboot command".into(),
    })?;
    let status = std::process::Command::new(program)
        .args(args)
        .status()
        .map_err(|e| UpdateError::Boot {
            backend,
            reason: format!("running {program}: {e}"),
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(UpdateError::Boot {
            backend,
            reason: format!("{program} failed: {status}"),
        })
    }
}

/// The kernel command line.
pub const PROC_CMDLINE: &str = "/proc/cmdline";

/// Files of the real backends that tests point elsewhere.
#[derive(Debug, Clone)]
pub struct SystemPaths {
    pub cmdline: PathBuf,
    pub reboot_command: Vec<String>,
}

impl Default for SystemPaths {
    fn default() -> Self {
        SystemPaths {
            cmdline: PathBuf::from(PROC_CMDLINE),
            reboot_command: vec!["reboot".to_owned()],
        }
    }
}
