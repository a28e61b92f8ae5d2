//! One error type for the box's steps; each variant names the step and what it touched.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SystemError {
    #[error("cannot open the watchdog {path}: {source}")]
    WatchdogOpen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write to the watchdog {path}: {source}")]
    WatchdogWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("first boot: cannot {what} {path}: {source}")]
    FirstBoot {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set the host name to {name:?} through {path}: {source}")]
    Hostname {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write to the console {path}: {source}")]
    Console {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
