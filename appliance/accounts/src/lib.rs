//! Password hashing and sign-in throttling for percloud accounts.
//!
//! This crate owns how passwords are checked for strength, hashed (Argon2id, PHC strings)
//! and verified, and how repeated failed sign-ins from one client, or against one account, are slowed down.
//! It must never store, log or return a password, never compare secrets in variable
//! time, and never know about HTTP, sessions or where account records are kept.

mod error;
mod password;
mod throttle;

pub use error::AccountError;
pub use password::{
    check_new_password, dummy_verify, hash_password, needs_rehash, verify_password,
};
pub use throttle::{AccountThrottle, LoginThrottle, ThrottleConfig};
