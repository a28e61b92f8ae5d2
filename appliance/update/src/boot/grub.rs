//! GRUB's environment block (`EFI/BOOT/grubenv` on the ESP), as `board/pc/common/grub.cfg`
//! reads it: `ORDER` ("A B" or "B A"), `A_TRIES`, `B_TRIES` (0-3). Every boot attempt takes
//! one try from the slot GRUB picks; a slot without tries is skipped.
//!
//! The block is a fixed-size file (1024 bytes): `# GRUB Environment Block`, then
//! `NAME=value` lines, padded with `#`. GRUB's `save_env` writes into the file's existing
//! sectors, so this code rewrites it in place with the same size — never a new file by
//! rename, whose sectors could be fragmented and make `save_env` fail.

use std::fs::OpenOptions;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use super::{BootControl, SystemPaths, reboot_with, slot_from_cmdline_file};
use crate::error::UpdateError;
use crate::slot::Slot;

const HEADER: &str = "# GRUB Environment Block\n";
/// A slot's tries when it is known good.
pub const FULL_TRIES: u8 = 3;
const NAME: &str = "grub";

/// Variables of a GRUB environment block, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrubEnv {
    pub vars: Vec<(String, String)>,
}

impl GrubEnv {
    pub fn parse(bytes: &[u8]) -> Result<GrubEnv, String> {
        if !bytes.starts_with(HEADER.as_bytes()) {
            return Err("not a GRUB environment block (header missing)".into());
        }
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
        let mut vars = Vec::new();
        let mut rest = &text[HEADER.len()..];
        while !rest.is_empty() {
            let (line, next) = split_line(rest);
            rest = next;
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            if let Some((name, value)) = line.split_once('=') {
                vars.push((name.to_owned(), unescape(value)));
            }
        }
        Ok(GrubEnv { vars })
    }

    /// The block of exactly `size` bytes.
    pub fn encode(&self, size: usize) -> Result<Vec<u8>, String> {
        let mut out = String::from(HEADER);
        for (name, value) in &self.vars {
            out.push_str(name);
            out.push('=');
            out.push_str(&escape(value));
            out.push('\n');
        }
        if out.len() > size {
            return Err(format!(
                "variables need {} bytes, the block has {size}",
                out.len()
            ));
        }
        let mut bytes = out.into_bytes();
        bytes.resize(size, b'#');
        Ok(bytes)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some(var) => var.1 = value,
            None => self.vars.push((name.to_owned(), value)),
        }
    }
}

/// One line (without its newline); GRUB escapes newlines in values as `\` + newline.
fn split_line(text: &str) -> (&str, &str) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\n' => return (&text[..i], &text[i + 1..]),
            _ => i += 1,
        }
    }
    (text, "")
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | '\n') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Boot selection through GRUB's environment block.
#[derive(Debug, Clone)]
pub struct GrubBoot {
    pub grubenv: PathBuf,
    pub system: SystemPaths,
}

impl GrubBoot {
    pub fn read(&self) -> Result<GrubEnv, UpdateError> {
        let bytes = std::fs::read(&self.grubenv).map_err(UpdateError::read(&self.grubenv))?;
        GrubEnv::parse(&bytes).map_err(|reason| self.error(reason))
    }

    /// Changes the block in place (same size), then flushes it.
    fn change(&self, edit: impl FnOnce(&mut GrubEnv)) -> Result<(), UpdateError> {
        let path = &self.grubenv;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(UpdateError::write(path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(UpdateError::read(path))?;
        let mut env = GrubEnv::parse(&bytes).map_err(|reason| self.error(reason))?;
        edit(&mut env);
        let new = env
            .encode(bytes.len())
            .map_err(|reason| self.error(reason))?;
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(&new))
            .and_then(|()| file.sync_all())
            .map_err(UpdateError::write(path))
    }

    fn error(&self, reason: String) -> UpdateError {
        UpdateError::Boot {
            backend: NAME,
            reason: format!("{}: {reason}", self.grubenv.display()),
        }
    }
}

fn tries(slot: Slot) -> String {
    format!("{}_TRIES", slot.upper())
}

fn order(first: Slot) -> String {
    format!("{} {}", first.upper(), first.other().upper())
}

impl BootControl for GrubBoot {
    fn name(&self) -> &'static str {
        NAME
    }

    fn running_slot(&self) -> Result<Slot, UpdateError> {
        slot_from_cmdline_file(&self.system.cmdline, NAME)
    }

    fn check_capability(&self) -> Result<(), UpdateError> {
        self.read().map(|_| ())
    }

    /// The trial slot goes first with one try: GRUB takes it on the next boot, and if that
    /// system never commits, the boot after finds no tries and starts the other slot.
    fn arm_trial(&self, slot: Slot) -> Result<(), UpdateError> {
        self.change(|env| {
            env.set("ORDER", order(slot));
            env.set(&tries(slot), "1");
            env.set(&tries(slot.other()), FULL_TRIES.to_string());
        })
    }

    fn commit(&self, slot: Slot) -> Result<(), UpdateError> {
        let env = self.read()?;
        if env.get("ORDER") == Some(order(slot).as_str())
            && env.get(&tries(slot)) == Some(FULL_TRIES.to_string().as_str())
        {
            return Ok(()); // the usual healthy boot: nothing to write
        }
        self.change(|env| {
            env.set("ORDER", order(slot));
            env.set(&tries(slot), FULL_TRIES.to_string());
        })
    }

    fn disarm(&self, default: Slot) -> Result<(), UpdateError> {
        self.change(|env| {
            env.set("ORDER", order(default));
            env.set(&tries(default.other()), "0");
        })
    }

    fn reboot(&self) -> Result<(), UpdateError> {
        reboot_with(&self.system.reboot_command, NAME)
    }
}

/// Reads and writes the block with `grub-editenv` semantics: for tests and tools.
pub fn read_env(path: &Path) -> Result<GrubEnv, UpdateError> {
    let bytes = std::fs::read(path).map_err(UpdateError::read(path))?;
    GrubEnv::parse(&bytes).map_err(|reason| UpdateError::Boot {
        backend: NAME,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The real tool from grub-common; these tests need it (scripts/test installs it).
    fn editenv(path: &Path, args: &[&str]) -> String {
        let out = Command::new("grub-editenv")
            .arg(path)
            .args(args)
            .output()
            .expect("grub-editenv (apt grub-common) must be installed");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    }

    fn fresh() -> (tempfile::TempDir, GrubBoot) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("grubenv");
        editenv(&path, &["create"]);
        editenv(&path, &["set", "ORDER=A B", "A_TRIES=3", "B_TRIES=3"]);
        let cmdline = dir.path().join("cmdline");
        std::fs::write(&cmdline, "quiet percloud.slot=A\n").expect("cmdline");
        let boot = GrubBoot {
            grubenv: path,
            system: SystemPaths {
                cmdline,
                reboot_command: vec!["true".into()],
            },
        };
        (dir, boot)
    }

    #[test]
    fn grub_editenv_reads_what_we_write_and_we_read_what_it_writes() {
        let (_dir, boot) = fresh();
        assert_eq!(
            editenv(&boot.grubenv, &["list"]),
            "ORDER=A B\nA_TRIES=3\nB_TRIES=3\n"
        );
        boot.disarm(Slot::A).expect("disarm");
        assert_eq!(
            editenv(&boot.grubenv, &["list"]),
            "ORDER=A B\nA_TRIES=3\nB_TRIES=0\n"
        );
        boot.arm_trial(Slot::B).expect("arm");
        assert_eq!(
            editenv(&boot.grubenv, &["list"]),
            "ORDER=B A\nA_TRIES=3\nB_TRIES=1\n"
        );
        assert_eq!(std::fs::metadata(&boot.grubenv).expect("meta").len(), 1024);
        // What GRUB does on the trial boot: take B's try.
        editenv(&boot.grubenv, &["set", "B_TRIES=0"]);
        let env = boot.read().expect("read");
        assert_eq!(env.get("B_TRIES"), Some("0"));
        boot.commit(Slot::B).expect("commit");
        assert_eq!(
            editenv(&boot.grubenv, &["list"]),
            "ORDER=B A\nA_TRIES=3\nB_TRIES=3\n"
        );
        // Values with a newline and a backslash survive both ways.
        editenv(&boot.grubenv, &["set", "NOTE=x\\y\nz"]);
        assert_eq!(boot.read().expect("read").get("NOTE"), Some("x\\y\nz"));
        boot.commit(Slot::A).expect("commit");
        assert!(editenv(&boot.grubenv, &["list"]).contains("NOTE=x\\y\nz\n"));
    }

    #[test]
    fn normal_boot_restores_the_running_slots_tries() {
        let (_dir, boot) = fresh();
        editenv(&boot.grubenv, &["set", "A_TRIES=1"]);
        assert_eq!(boot.running_slot().expect("slot"), Slot::A);
        boot.commit(Slot::A).expect("commit");
        assert_eq!(boot.read().expect("read").get("A_TRIES"), Some("3"));
    }

    #[test]
    fn refuses_what_is_not_a_grubenv() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("grubenv");
        std::fs::write(&path, "hello").expect("write");
        let boot = GrubBoot {
            grubenv: path,
            system: SystemPaths::default(),
        };
        assert!(boot.check_capability().is_err());
        assert!(boot.arm_trial(Slot::B).is_err());
        assert_eq!(std::fs::read(&boot.grubenv).expect("read"), b"hello");
    }
}
