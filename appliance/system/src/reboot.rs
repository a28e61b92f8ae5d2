//! Restarting the machine with an argument for the firmware: `reboot(2)` with
//! `LINUX_REBOOT_CMD_RESTART2` and a command string such as `"0 tryboot"` (the Raspberry Pi's
//! one-shot trial boot, docs/update.md). rustix's `reboot` takes no argument, so this is the
//! one place of the workspace that calls the system call itself.

use std::ffi::CString;

use crate::error::SystemError;

/// Writes everything cached to disk, then restarts the machine at once, handing `argument`
/// to the kernel's reboot notifiers (and to the firmware, through them). Only returns on
/// failure: the kernel refuses (no `CAP_SYS_BOOT`) or the argument holds a NUL byte.
///
/// Nothing is stopped first (no init, no unmount): the caller has already made durable what
/// must survive, and /data is a journalled filesystem whose writers are crash-safe.
pub fn restart_with_argument(argument: &str) -> Result<(), SystemError> {
    let failed = |source| SystemError::Reboot {
        argument: argument.to_owned(),
        source,
    };
    let argument_c = CString::new(argument).map_err(|_| {
        failed(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the argument holds a NUL byte",
        ))
    })?;
    rustix::fs::sync();
    restart2(&argument_c).map_err(failed)
}

/// `reboot(LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_RESTART2, argument)`.
#[allow(unsafe_code)]
fn restart2(argument: &std::ffi::CStr) -> std::io::Result<()> {
    // SAFETY: the four arguments are what reboot(2) documents for RESTART2: two magic
    // numbers, the command, and a pointer to a NUL-terminated string that the kernel copies
    // (at most 256 bytes, strncpy_from_user) before acting; `argument` outlives the call and
    // no Rust memory is written by the kernel.
    let result = unsafe {
        libc::syscall(
            libc::SYS_reboot,
            libc::LINUX_REBOOT_MAGIC1,
            libc::LINUX_REBOOT_MAGIC2,
            libc::LINUX_REBOOT_CMD_RESTART2,
            argument.as_ptr(),
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_byte_is_refused_before_anything_happens() {
        let error = restart_with_argument("0 try\0boot").expect_err("NUL");
        assert!(error.to_string().contains("NUL"), "{error}");
    }
}
