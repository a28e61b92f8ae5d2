//! Installing a bundle that is already on the data partition: verify everything, then write
//! the inactive slot, read it back, and arm a one-shot trial boot of it. Downloading comes
//! before (the binary uses [`crate::download`]); rebooting comes after (the caller decides).
//!
//! Order of the steps, and why:
//! 1. signature (keyring), manifest against the box (board, minimum version, downgrade),
//!    the compressed payload's digest, then a full decompression to check the image's size
//!    and digest. A refusal here has written nothing anywhere but the history.
//! 2. the bootloader stops considering the inactive slot (it is about to hold half an
//!    image), then the slot is written, flushed and read back; on a box with a boot
//!    partition per slot (the Pi), so is the inactive slot's boot partition, with the boot
//!    payload made for that slot. The running slot's partitions are never written.
//! 3. the trial is armed and recorded as pending on the data partition.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::boot::BootControl;
use crate::bundle::VerifiedBundle;
use crate::error::{Refusal, UpdateError};
use crate::keys::Keyring;
use crate::manifest::BoxFacts;
use crate::slot::{Slot, SlotStep, check_fits, write_payload};
use crate::state::{HistoryEntry, Pending, StateDir};

/// Where each slot lives (block devices on the box, files in tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotDevices {
    pub a: PathBuf,
    pub b: PathBuf,
}

impl SlotDevices {
    pub fn get(&self, slot: Slot) -> &Path {
        match slot {
            Slot::A => &self.a,
            Slot::B => &self.b,
        }
    }
}

/// A step of an install, as progress reports and failures name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Download,
    Verify,
    Write,
    ReadBack,
    Arm,
    Reboot,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Download => "download",
            Step::Verify => "verify",
            Step::Write => "write",
            Step::ReadBack => "read back",
            Step::Arm => "arm",
            Step::Reboot => "reboot",
        }
    }
}

/// What an install works with.
#[derive(Debug)]
pub struct Installer<'a> {
    pub keyring: &'a Keyring,
    pub facts: &'a BoxFacts,
    pub boot: &'a dyn BootControl,
    pub slots: &'a SlotDevices,
    /// Each slot's own boot partition (the Pi: kernel, initramfs, DTBs), when the board
    /// has them; bundles for such a board carry a boot payload per slot.
    pub boot_partitions: Option<&'a SlotDevices>,
    pub states: &'a StateDir,
    /// `/proc/self/mounts`: a slot mounted anywhere is never written.
    pub mounts: PathBuf,
}

impl Installer<'_> {
    /// Verifies and installs the bundle at `bundle`; on success the trial is armed and
    /// pending, and the caller reboots. Every outcome lands in the history.
    pub fn install(
        &self,
        bundle: &Path,
        force: bool,
        progress: &mut dyn FnMut(Step, u64, Option<u64>),
    ) -> Result<Pending, UpdateError> {
        let mut step = Step::Verify;
        let result = self.run(bundle, force, &mut step, progress);
        let (to_version, entry) = match &result {
            Ok(pending) => (
                pending.to_version.clone(),
                HistoryEntry {
                    at: now(),
                    from_version: pending.from_version.clone(),
                    to_version: pending.to_version.clone(),
                    outcome: "installed".into(),
                    step: None,
                    message: format!(
                        "{} written to slot {} and armed for one trial boot",
                        pending.to_version, pending.to_slot
                    ),
                    logs: Vec::new(),
                    trial: false,
                },
            ),
            Err(error) => {
                let to = crate::bundle::inspect(bundle)
                    .map(|(m, _)| m.version)
                    .unwrap_or_default();
                let outcome = if error.refusal().is_some() {
                    "refused"
                } else {
                    "failed"
                };
                (
                    to.clone(),
                    HistoryEntry {
                        at: now(),
                        from_version: self.facts.running.to_string(),
                        to_version: to,
                        outcome: outcome.into(),
                        step: Some(step.as_str().into()),
                        message: error.to_string(),
                        logs: Vec::new(),
                        trial: false,
                    },
                )
            }
        };
        tracing::info!(to = %to_version, outcome = %entry.outcome, message = %entry.message, "update install");
        let pending = result.as_ref().ok().cloned();
        self.states.change(|state| {
            if let Some(pending) = pending {
                state.pending = Some(pending);
            }
            state.record(entry);
        })?;
        result
    }

    fn run(
        &self,
        bundle: &Path,
        force: bool,
        step: &mut Step,
        progress: &mut dyn FnMut(Step, u64, Option<u64>),
    ) -> Result<Pending, UpdateError> {
        let running = self.boot.running_slot()?;
        let target = running.other();
        let device = self.slots.get(target);
        if self.is_mounted(device)? {
            return Err(Refusal::RunningSlot(target).into());
        }
        if let Some(boot) = self.boot_partitions
            && self.is_mounted(boot.get(target))?
        {
            return Err(Refusal::MountedBootPartition(target).into());
        }
        self.boot.check_capability()?;

        let verified = VerifiedBundle::open(bundle, self.keyring)?;
        let manifest = verified.manifest.clone();
        manifest.check(self.facts, force)?;
        // What goes where: the system payload to the slot, the target's boot payload to its
        // boot partition; a bundle and a box must agree on having boot partitions.
        let mut writes = vec![(0, device)];
        match (self.boot_partitions, manifest.boot_for(target)) {
            (Some(boot), Some((index, _))) => writes.push((index, boot.get(target))),
            (None, None) => {}
            (Some(_), None) => return Err(Refusal::MissingBootPayload.into()),
            (None, Some(_)) => return Err(Refusal::UnexpectedBootPayload.into()),
        }
        let compressed = manifest.payloads.iter().map(|p| p.compressed_size).sum();
        verified.verify_payloads(&mut |n| progress(Step::Verify, n, Some(compressed)))?;
        for (index, device) in &writes {
            check_fits(device, manifest.payloads[*index].size)?;
        }

        *step = Step::Write;
        self.boot.disarm(running)?;
        let total: u64 = writes.iter().map(|(i, _)| manifest.payloads[*i].size).sum();
        let mut before = 0;
        for (index, device) in writes {
            write_payload(&verified, index, device, &mut |part, n| {
                let s = match part {
                    SlotStep::Writing => Step::Write,
                    SlotStep::Verifying => Step::ReadBack,
                };
                *step = s;
                progress(s, before + n, Some(total));
            })?;
            before += manifest.payloads[index].size;
        }

        *step = Step::Arm;
        self.boot.arm_trial(target)?;
        progress(Step::Arm, 1, Some(1));
        Ok(Pending {
            attempt: format!(
                "{}-{}",
                now(),
                manifest.system().blake3.get(..12).unwrap_or("")
            ),
            from_version: self.facts.running.to_string(),
            to_version: manifest.version,
            from_slot: running,
            to_slot: target,
            armed_at: now(),
        })
    }

    /// Whether a target is mounted anywhere (it would be the running system, or in use);
    /// a target that does not exist is an error.
    fn is_mounted(&self, device: &Path) -> Result<bool, UpdateError> {
        let Ok(canonical) = std::fs::canonicalize(device) else {
            return Err(UpdateError::Slot {
                path: device.to_owned(),
                reason: "does not exist".into(),
            });
        };
        let mounts = std::fs::read_to_string(&self.mounts).unwrap_or_default();
        let mounted = mounts
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .filter(|source| source.starts_with('/'))
            .any(|source| std::fs::canonicalize(source).is_ok_and(|s| s == canonical));
        Ok(mounted)
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests;
