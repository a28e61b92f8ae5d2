//! The kernel's host name, set through procfs (no system call wrapper needed).

use std::path::Path;

use crate::SystemError;

/// Where Linux exposes the host name.
pub const KERNEL_HOSTNAME: &str = "/proc/sys/kernel/hostname";

/// Sets the host name by writing `name` to `path` (normally [`KERNEL_HOSTNAME`]) unless it
/// already holds it. Returns whether it changed.
pub fn set(path: &Path, name: &str) -> Result<bool, SystemError> {
    let current = std::fs::read_to_string(path).unwrap_or_default();
    if current.trim_end() == name {
        return Ok(false);
    }
    std::fs::write(path, name).map_err(|source| SystemError::Hostname {
        name: name.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_when_different() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hostname");
        std::fs::write(&path, "localhost\n").expect("write");
        assert!(set(&path, "percloud").expect("set"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "percloud");
        assert!(!set(&path, "percloud").expect("set again"));
    }
}
