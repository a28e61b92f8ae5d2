//! Raspberry Pi tryboot: `autoboot.txt` on the first FAT partition picks the boot partition
//! (`[all] boot_partition=`); after a reboot with the tryboot flag the firmware boots the
//! `[tryboot]` partition once. Slot A boots from partition 2, slot B from 3
//! (`board/raspberrypi/common/genimage.cfg`).
//!
//! The firmware reports its support in the device tree: a bootloader that understands
//! `tryboot_a_b` sets `chosen/bootloader/partition`. The tryboot flag travels in the reboot
//! call, `reboot(2)` with `"0 tryboot"`; Debian's kernel passes it on to the firmware only
//! with our module `percloud_tryboot` loaded (board/raspberrypi/common/tryboot-module), so
//! [`BootControl::reboot`] checks for the module first and refuses clearly without it
//! (docs/update.md, "Raspberry Pi").

use std::path::PathBuf;

use percloud_system::SystemError;

use super::{BootControl, SystemPaths, slot_from_cmdline_file};
use crate::error::UpdateError;
use crate::replace::replace_file;
use crate::slot::Slot;

const NAME: &str = "tryboot";
/// The firmware's node in the device tree.
pub const DEVICE_TREE_BOOTLOADER: &str = "/proc/device-tree/chosen/bootloader";
/// Present while the kernel module that sends the firmware's tryboot flag is loaded.
pub const TRYBOOT_MODULE: &str = "/sys/module/percloud_tryboot";
/// The reboot command string for a one-shot trial: partition 0 (autoboot.txt decides), tryboot.
pub const TRYBOOT_ARGUMENT: &str = "0 tryboot";

/// Restarts the machine with a reboot argument; only returns on failure.
pub type Restart = fn(&str) -> Result<(), SystemError>;

/// The boot partition of a slot.
pub fn partition(slot: Slot) -> u8 {
    match slot {
        Slot::A => 2,
        Slot::B => 3,
    }
}

/// An `autoboot.txt`: lines kept as they are, except the `boot_partition=` lines we set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autoboot {
    lines: Vec<String>,
}

impl Autoboot {
    pub fn parse(text: &str) -> Autoboot {
        Autoboot {
            lines: text.lines().map(str::to_owned).collect(),
        }
    }

    pub fn encode(&self) -> String {
        let mut text = self.lines.join("\n");
        text.push('\n');
        text
    }

    /// The value of `key` in `[section]` (`all` also covers lines before any section).
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        let mut current = "all".to_owned();
        let mut found = None;
        for line in &self.lines {
            let line = line.trim();
            if let Some(name) = section_name(line) {
                current = name;
            } else if current == section
                && let Some((k, v)) = line.split_once('=')
                && k.trim() == key
            {
                found = Some(v.trim());
            }
        }
        found
    }

    /// Sets `key` in `[section]`, adding the line (and the section) when missing.
    pub fn set(&mut self, section: &str, key: &str, value: &str) {
        let mut current = "all".to_owned();
        let mut last_in_section = None;
        for (i, line) in self.lines.iter_mut().enumerate() {
            let trimmed = line.trim().to_owned();
            if let Some(name) = section_name(&trimmed) {
                current = name;
                if current == section {
                    last_in_section = Some(i);
                }
                continue;
            }
            if current == section {
                last_in_section = Some(i);
                if let Some((k, _)) = trimmed.split_once('=')
                    && k.trim() == key
                {
                    *line = format!("{key}={value}");
                    return;
                }
            }
        }
        match last_in_section {
            Some(i) => self.lines.insert(i + 1, format!("{key}={value}")),
            None => {
                self.lines.push(format!("[{section}]"));
                self.lines.push(format!("{key}={value}"));
            }
        }
    }
}

fn section_name(line: &str) -> Option<String> {
    line.strip_prefix('[')
        .and_then(|l| l.strip_suffix(']'))
        .map(|n| n.trim().to_owned())
}

/// Boot selection through `autoboot.txt`.
#[derive(Debug, Clone)]
pub struct TrybootBoot {
    pub autoboot: PathBuf,
    /// `chosen/bootloader` of the device tree (tests point it at a folder).
    pub device_tree: PathBuf,
    /// [`TRYBOOT_MODULE`] (tests point it at a folder).
    pub module: PathBuf,
    /// [`percloud_system::reboot::restart_with_argument`] (tests record the argument).
    pub restart: Restart,
    pub system: SystemPaths,
}

impl TrybootBoot {
    pub fn read(&self) -> Result<Autoboot, UpdateError> {
        let text =
            std::fs::read_to_string(&self.autoboot).map_err(UpdateError::read(&self.autoboot))?;
        let autoboot = Autoboot::parse(&text);
        if autoboot.get("all", "tryboot_a_b") != Some("1") {
            return Err(UpdateError::Boot {
                backend: NAME,
                reason: format!("{} does not set tryboot_a_b=1", self.autoboot.display()),
            });
        }
        Ok(autoboot)
    }

    /// Rewrites the file: temporary file, fsync, rename, fsync of the folder (FAT has no
    /// journal; the rename is the one moment the name points at the new content).
    fn change(&self, edit: impl FnOnce(&mut Autoboot)) -> Result<(), UpdateError> {
        let mut autoboot = self.read()?;
        edit(&mut autoboot);
        let path = &self.autoboot;
        replace_file(
            path,
            &path.with_extension("txt.new"),
            autoboot.encode().as_bytes(),
        )
    }
}

impl BootControl for TrybootBoot {
    fn name(&self) -> &'static str {
        NAME
    }

    fn running_slot(&self) -> Result<Slot, UpdateError> {
        slot_from_cmdline_file(&self.system.cmdline, NAME)
    }

    fn check_capability(&self) -> Result<(), UpdateError> {
        if !self.device_tree.join("partition").exists() {
            return Err(UpdateError::Boot {
                backend: NAME,
                reason: format!(
                    "the bootloader does not support tryboot A/B ({} has no `partition`): \
                     the EEPROM is too old; update it (rpi-eeprom, a release from 2022 or later)",
                    self.device_tree.display()
                ),
            });
        }
        self.read().map(|_| ())
    }

    fn arm_trial(&self, slot: Slot) -> Result<(), UpdateError> {
        self.check_capability()?;
        self.change(|a| a.set("tryboot", "boot_partition", &partition(slot).to_string()))
    }

    fn commit(&self, slot: Slot) -> Result<(), UpdateError> {
        let autoboot = self.read()?;
        let want = partition(slot).to_string();
        if autoboot.get("all", "boot_partition") == Some(want.as_str()) {
            return Ok(());
        }
        self.change(|a| {
            a.set("all", "boot_partition", &want);
            a.set(
                "tryboot",
                "boot_partition",
                &partition(slot.other()).to_string(),
            );
        })
    }

    fn disarm(&self, default: Slot) -> Result<(), UpdateError> {
        let part = partition(default).to_string();
        self.change(|a| {
            a.set("all", "boot_partition", &part);
            a.set("tryboot", "boot_partition", &part);
        })
    }

    /// `reboot(2)` with `"0 tryboot"`, at once (not through init: busybox's `reboot` takes
    /// no argument). Refused, with nothing done, when the module that passes the flag on to
    /// the firmware is not loaded or the bootloader cannot tryboot.
    fn reboot(&self) -> Result<(), UpdateError> {
        if !self.module.exists() {
            return Err(UpdateError::Boot {
                backend: NAME,
                reason: format!(
                    "this kernel cannot ask the firmware for a one-shot tryboot: the module \
                     percloud_tryboot is not loaded ({} is missing); the slot is written but \
                     not booted",
                    self.module.display()
                ),
            });
        }
        self.check_capability()?;
        (self.restart)(TRYBOOT_ARGUMENT).map_err(|e| UpdateError::Boot {
            backend: NAME,
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The image's own file (board/raspberrypi/common/autoboot.txt).
    const IMAGE: &str = include_str!("../../../../board/raspberrypi/common/autoboot.txt");
    /// The form Raspberry Pi's documentation shows, without comments.
    const DOCS: &str = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n";

    /// Never restarts: fails with the argument in the message, so a test sees what was asked.
    fn recording_restart(argument: &str) -> Result<(), SystemError> {
        Err(SystemError::Reboot {
            argument: argument.to_owned(),
            source: std::io::Error::other("test: restart asked"),
        })
    }

    fn boot(text: &str, capable: bool) -> (tempfile::TempDir, TrybootBoot) {
        let dir = tempfile::tempdir().expect("tempdir");
        let autoboot = dir.path().join("autoboot.txt");
        std::fs::write(&autoboot, text).expect("write");
        let device_tree = dir.path().join("bootloader");
        std::fs::create_dir(&device_tree).expect("dt");
        if capable {
            std::fs::write(device_tree.join("partition"), [0, 0, 0, 2]).expect("dt");
        }
        let module = dir.path().join("percloud_tryboot");
        std::fs::create_dir(&module).expect("module");
        let cmdline = dir.path().join("cmdline");
        std::fs::write(&cmdline, "console=tty1 percloud.slot=A rootwait").expect("cmdline");
        let system = SystemPaths {
            cmdline,
            reboot_command: vec!["true".into()],
        };
        (
            dir,
            TrybootBoot {
                autoboot,
                device_tree,
                module,
                restart: recording_restart,
                system,
            },
        )
    }

    #[test]
    fn arms_commits_and_disarms_the_samples() {
        for sample in [IMAGE, DOCS] {
            let (_dir, boot) = boot(sample, true);
            assert_eq!(boot.running_slot().expect("slot"), Slot::A);
            boot.arm_trial(Slot::B).expect("arm");
            let a = boot.read().expect("read");
            assert_eq!(a.get("all", "boot_partition"), Some("2"));
            assert_eq!(a.get("tryboot", "boot_partition"), Some("3"));
            boot.commit(Slot::B).expect("commit");
            let a = boot.read().expect("read");
            assert_eq!(a.get("all", "boot_partition"), Some("3"));
            assert_eq!(a.get("tryboot", "boot_partition"), Some("2"));
            assert_eq!(a.get("all", "tryboot_a_b"), Some("1"));
            boot.disarm(Slot::B).expect("disarm");
            let a = boot.read().expect("read");
            assert_eq!(a.get("tryboot", "boot_partition"), Some("3"));
            if sample == IMAGE {
                let text = std::fs::read_to_string(&boot.autoboot).expect("read");
                assert!(text.starts_with("# percloud"), "comments kept: {text}");
            }
        }
    }

    #[test]
    fn an_old_eeprom_is_named_and_nothing_is_written() {
        let (_dir, boot) = boot(DOCS, false);
        let error = boot.arm_trial(Slot::B).expect_err("no capability");
        assert!(error.to_string().contains("EEPROM is too old"), "{error}");
        assert_eq!(std::fs::read_to_string(&boot.autoboot).expect("read"), DOCS);
        let error = boot.reboot().expect_err("old EEPROM");
        assert!(error.to_string().contains("EEPROM is too old"), "{error}");
        assert!(!error.to_string().contains("restart asked"), "{error}");
    }

    #[test]
    fn reboot_asks_for_tryboot_only_with_the_module_loaded() {
        let (_dir, boot) = boot(DOCS, true);
        let error = boot.reboot().expect_err("the test's restart fails");
        assert!(
            error.to_string().contains(r#""0 tryboot""#)
                && error.to_string().contains("restart asked"),
            "{error}"
        );
        std::fs::remove_dir(&boot.module).expect("unload");
        let error = boot.reboot().expect_err("no module");
        assert!(
            error.to_string().contains("percloud_tryboot is not loaded"),
            "{error}"
        );
        assert!(!error.to_string().contains("restart asked"), "{error}");
    }

    #[test]
    fn missing_sections_are_added_and_a_file_without_tryboot_is_refused() {
        let mut a = Autoboot::parse("tryboot_a_b=1\nboot_partition=2\n");
        assert_eq!(a.get("all", "boot_partition"), Some("2"));
        a.set("tryboot", "boot_partition", "3");
        assert_eq!(
            a.encode(),
            "tryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"
        );
        let (_dir, boot) = boot("[all]\nboot_partition=2\n", true);
        assert!(boot.arm_trial(Slot::B).is_err());
    }
}
