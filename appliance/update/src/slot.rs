//! The two system slots, which one runs, and writing the other one.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bundle::{HashingReader, VerifiedBundle, copy_with_progress};
use crate::error::{Refusal, UpdateError};

/// A system slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// `a`/`A` or `b`/`B`.
    pub fn parse(text: &str) -> Option<Slot> {
        match text {
            "a" | "A" => Some(Slot::A),
            "b" | "B" => Some(Slot::B),
            _ => None,
        }
    }

    /// The letter GRUB's environment uses.
    pub fn upper(self) -> &'static str {
        match self {
            Slot::A => "A",
            Slot::B => "B",
        }
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Slot::A => "a",
            Slot::B => "b",
        })
    }
}

/// The slot named by `percloud.slot=` on a kernel command line (the image's bootloaders
/// pass `A` or `B`).
pub fn slot_from_cmdline(cmdline: &str) -> Option<Slot> {
    cmdline
        .split_whitespace()
        .find_map(|arg| arg.strip_prefix("percloud.slot="))
        .and_then(Slot::parse)
}

/// Size of a block device or regular file standing in for one; `None` for a regular file
/// (it grows as needed).
fn capacity(file: &mut File, path: &Path) -> Result<Option<u64>, UpdateError> {
    use std::os::unix::fs::FileTypeExt as _;
    let meta = file.metadata().map_err(UpdateError::read(path))?;
    if meta.file_type().is_block_device() {
        let end = file
            .seek(SeekFrom::End(0))
            .map_err(UpdateError::read(path))?;
        file.seek(SeekFrom::Start(0))
            .map_err(UpdateError::read(path))?;
        Ok(Some(end))
    } else {
        Ok(None)
    }
}

/// Refuses a payload larger than the block device at `device` (a regular file fits
/// anything), so that every target is checked before the first one is written.
pub fn check_fits(device: &Path, size: u64) -> Result<(), UpdateError> {
    let mut file = File::open(device).map_err(UpdateError::read(device))?;
    match capacity(&mut file, device)? {
        Some(capacity) if size > capacity => Err(Refusal::TooLarge {
            payload: size,
            slot: capacity,
        }
        .into()),
        _ => Ok(()),
    }
}

/// Streams payload `index` of a verified bundle into `device` from its start, flushes it to
/// stable storage, then reads it back and compares the digest with the manifest's. A
/// regular file standing in for the partition is cut to the payload's size. `progress` gets
/// bytes written, then bytes read back.
pub fn write_payload(
    bundle: &VerifiedBundle,
    index: usize,
    device: &Path,
    progress: &mut dyn FnMut(SlotStep, u64),
) -> Result<(), UpdateError> {
    let payload = &bundle.manifest.payloads[index];
    let slot_err = |reason: String| UpdateError::Slot {
        path: device.to_owned(),
        reason,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .map_err(UpdateError::write(device))?;
    if let Some(capacity) = capacity(&mut file, device)?
        && payload.size > capacity
    {
        return Err(Refusal::TooLarge {
            payload: payload.size,
            slot: capacity,
        }
        .into());
    }
    let mut reader = bundle.payload_reader(index)?;
    let written = copy_with_progress(&mut reader, &mut file, &mut |n| {
        progress(SlotStep::Writing, n)
    })
    .map_err(|e| slot_err(format!("writing: {e}")))?;
    if written != payload.size {
        return Err(slot_err(format!(
            "the payload gave {written} bytes, the manifest says {}",
            payload.size
        )));
    }
    if !file
        .metadata()
        .map_err(UpdateError::read(device))?
        .file_type()
        .is_file()
    {
        // A block device keeps whatever lies beyond the image; squashfs and FAT ignore it.
    } else {
        file.set_len(payload.size)
            .map_err(|e| slot_err(format!("cutting to size: {e}")))?;
    }
    file.flush()
        .and_then(|()| file.sync_all())
        .map_err(|e| slot_err(format!("flushing: {e}")))?;
    drop(file);
    read_back(device, payload.size, &payload.blake3, progress)
}

/// Which part of writing the slot a progress figure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotStep {
    Writing,
    Verifying,
}

/// Reads `size` bytes from the device's start and compares their BLAKE3 with `expected`.
/// Goes through a fresh file descriptor after `sync_all`; on a block device the page cache
/// may still answer, which checks what the kernel will write, not the medium.
fn read_back(
    device: &Path,
    size: u64,
    expected: &str,
    progress: &mut dyn FnMut(SlotStep, u64),
) -> Result<(), UpdateError> {
    let file = File::open(device).map_err(UpdateError::read(device))?;
    let mut hashing = HashingReader::new(file.take(size));
    copy_with_progress(&mut hashing, &mut std::io::sink(), &mut |n| {
        progress(SlotStep::Verifying, n)
    })
    .map_err(UpdateError::read(device))?;
    if hashing.count != size || hashing.hasher.finalize().to_hex().as_str() != expected {
        return Err(UpdateError::Slot {
            path: device.to_owned(),
            reason: "what was read back differs from the payload".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_slot_from_the_command_line() {
        let grub = "BOOT_IMAGE=/boot/vmlinuz percloud.slot=B percloud.root=PARTLABEL=system-b";
        assert_eq!(slot_from_cmdline(grub), Some(Slot::B));
        assert_eq!(
            slot_from_cmdline("console=tty1 percloud.slot=a"),
            Some(Slot::A)
        );
        assert_eq!(slot_from_cmdline("percloud.slot=c"), None);
        assert_eq!(slot_from_cmdline("quiet"), None);
        assert_eq!(Slot::A.other(), Slot::B);
    }
}
