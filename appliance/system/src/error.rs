//! One error type for the box's steps; each variant names the step and what it touched.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::ntp::{Offset, PacketError};

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
    #[error("NTP server {value:?}: {reason}")]
    NtpServer { value: String, reason: &'static str },
    #[error("cannot resolve the NTP server {server}: {source}")]
    NtpResolve {
        server: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the NTP server {server} has no address")]
    NtpNoAddress { server: String },
    #[error("NTP exchange with {server}: {source}")]
    NtpExchange {
        server: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no NTP reply from {server} in time")]
    NtpTimeout { server: SocketAddr },
    #[error("NTP reply from {server} not believed: {source}")]
    NtpReply {
        server: SocketAddr,
        #[source]
        source: PacketError,
    },
    #[error("cannot step the clock by {offset}: {source}")]
    SetClock {
        offset: Offset,
        #[source]
        source: std::io::Error,
    },
    #[error("stepping the clock by {offset} gives no representable time")]
    ClockOutOfRange { offset: Offset },
    #[error("cannot restart with the argument {argument:?}: {source}")]
    Reboot {
        argument: String,
        #[source]
        source: std::io::Error,
    },
}
