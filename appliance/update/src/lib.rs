//! percloud-update: signed A/B system updates, the box's side and the build host's.
//!
//! It owns the bundle format ([`bundle`]: manifest, Ed25519 signature, zstd payload), keys
//! and keyrings ([`keys`]), channel indexes ([`channel`]), resumable downloads
//! ([`download`]), writing and verifying the inactive slot ([`slot`]), boot selection behind
//! one trait ([`boot`]: GRUB environment, Raspberry Pi tryboot, a file-backed fake), and the
//! update's record on the data partition ([`state`]: the pending trial, its progress, the
//! history). `docs/update.md` describes the design.
//!
//! It must never know about HTTP serving, storage or accounts, and never write the running
//! slot: the binary wires it to the daemon, decides when to reboot and runs the health
//! checks whose results it records here.

pub mod boot;
pub mod bundle;
pub mod channel;
pub mod download;
pub mod error;
pub mod gate;
pub mod install;
pub mod keys;
pub mod manifest;
pub mod release;
mod replace;
pub mod slot;
pub mod state;

pub use error::{Refusal, UpdateError};
pub use slot::Slot;
