//! percloud-system owns "the box": what the appliance image needs from `percloud` beyond
//! serving files. It arms and feeds the hardware watchdog while the daemon is healthy
//! ([`watchdog`]), runs the first-boot steps that belong on `/data` ([`first_boot`]), sets
//! the host name ([`hostname`]), prints the address to open on the console ([`console`]) and
//! keeps the clock right from NTP ([`ntp`]). [`reboot`] restarts the machine with an argument
//! for the firmware (the Raspberry Pi's tryboot): the workspace's one `unsafe` system call.
//!
//! It must never know about storage, HTTP routing or TLS: the daemon hands it a health
//! probe and the addresses it listens on. Hardware sits behind small traits
//! ([`watchdog::WatchdogDevice`], [`health::HealthProbe`], [`ntp::Clock`]) with fakes in the
//! tests.
//! Growing the data partition happens earlier, in the image's initramfs (docs/image.md).

pub mod console;
pub mod error;
pub mod first_boot;
pub mod health;
pub mod hostname;
pub mod ntp;
pub mod reboot;
pub mod watchdog;

pub use error::SystemError;
