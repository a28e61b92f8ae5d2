//! What system is running: `/etc/percloud/release` in the slot (written by the image build:
//! `VERSION=<semver>`, `BOARD=<board-id>`), else the version this binary was built as.
//! This is the one place the running version is decided.

use std::path::Path;

use semver::Version;

/// The image's release file.
pub const RELEASE_FILE: &str = "/etc/percloud/release";

/// The running system's version and, when the release file names it, its board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub version: Version,
    pub board: Option<String>,
}

impl Release {
    /// Reads `path`; falls back to `built_as` (the binary's `CARGO_PKG_VERSION`) for what
    /// the file does not say or when there is no file.
    pub fn read(path: &Path, built_as: &str) -> Release {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        Self::parse(&text, built_as)
    }

    pub fn parse(text: &str, built_as: &str) -> Release {
        let mut version = None;
        let mut board = None;
        for line in text.lines() {
            match line.trim().split_once('=') {
                Some(("VERSION", v)) => version = Version::parse(v.trim().trim_matches('"')).ok(),
                Some(("BOARD", b)) => board = Some(b.trim().trim_matches('"').to_owned()),
                _ => {}
            }
        }
        Release {
            version: version
                .or_else(|| Version::parse(built_as).ok())
                .unwrap_or_else(|| Version::new(0, 0, 0)),
            board: board.filter(|b| !b.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_file_wins_over_the_build() {
        let r = Release::parse("VERSION=0.1.1\nBOARD=x86-64\n", "0.1.0");
        assert_eq!(r.version, Version::new(0, 1, 1));
        assert_eq!(r.board.as_deref(), Some("x86-64"));
        let r = Release::parse("", "0.1.0");
        assert_eq!(r.version, Version::new(0, 1, 0));
        assert_eq!(r.board, None);
        let r = Release::parse("VERSION=junk\n", "0.1.0");
        assert_eq!(r.version, Version::new(0, 1, 0));
    }
}
