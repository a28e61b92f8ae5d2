//! Errors of account operations.

/// A password that cannot be accepted, or a failure to hash one.
/// The messages are meant to be shown to the user as they are.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// Fewer than `min` characters.
    #[error("the password must be at least {min} characters long")]
    PasswordTooShort { min: usize },

    /// More than `max` bytes of UTF-8.
    #[error("the password must be at most {max} bytes long")]
    PasswordTooLong { max: usize },

    /// Contains a NUL character, which some clients and tools truncate at.
    #[error("the password must not contain a NUL character")]
    PasswordContainsNul,

    /// Argon2 failed (parameters or random salt); not the user's fault.
    #[error("hashing the password: {source}")]
    Hash {
        source: argon2::password_hash::Error,
    },
}
