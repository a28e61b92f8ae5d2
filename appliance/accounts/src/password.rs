//! Argon2id password hashes in PHC string form.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;

use crate::AccountError;

/// Argon2id memory cost in KiB: 19 MiB.
///
/// These are the OWASP minimum parameters for Argon2id (m=19 MiB, t=2, p=1). On a Raspberry
/// Pi 4 one hash takes on the order of 100 ms and 19 MiB of RAM, which keeps a sign-in
/// responsive and bounds memory when several people sign in at once on a 1-2 GiB board,
/// while still costing an attacker with a stolen database real memory per guess.
/// One lane: the other cores are serving files. Raising these later is safe:
/// [`needs_rehash`] tells the caller to rehash at the next successful sign-in.
const M_COST_KIB: u32 = 19 * 1024;
/// Argon2id passes over memory.
const T_COST: u32 = 2;
/// Argon2id lanes.
const P_COST: u32 = 1;

/// Largest memory cost accepted when verifying a stored hash (256 MiB): a corrupt or
/// hostile record must not make the box allocate gigabytes.
const MAX_VERIFY_M_COST_KIB: u32 = 256 * 1024;
/// Largest pass count accepted when verifying a stored hash.
const MAX_VERIFY_T_COST: u32 = 16;

/// Fewest characters (Unicode scalar values) of a new password.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Most bytes of a new password, bounding work before hashing.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A hash of an unguessable password with the current parameters, for [`dummy_verify`].
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$Z6n/06i7c7D5tIKQ6Xt+0A$q3pUSD7ebwdu2Y8rPCaQvlPc6pTeE4idXsBL9JNPuZw";

fn hasher() -> Result<Argon2<'static>, AccountError> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None)
        .map_err(|err| AccountError::Hash { source: err.into() })?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `password` with Argon2id and a fresh random salt, as a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|source| AccountError::Hash { source })?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `phc`. The comparison is constant time
/// (argon2's verifier); a malformed, non-Argon2 or oversized hash yields `false`.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    if params.m_cost() > MAX_VERIFY_M_COST_KIB || params.t_cost() > MAX_VERIFY_T_COST {
        return false;
    }
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok()
}

/// Whether `phc` was made with another algorithm or other parameters than
/// [`hash_password`] uses now; the caller then rehashes after a successful sign-in.
/// A malformed hash also needs rehashing.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return true;
    };
    let Ok(params) = Params::try_from(&hash) else {
        return true;
    };
    hash.algorithm != Algorithm::Argon2id.ident()
        || hash.version != Some(Version::V0x13.into())
        || params.m_cost() != M_COST_KIB
        || params.t_cost() != T_COST
        || params.p_cost() != P_COST
}

/// Checks a password a user chose: at least [`MIN_PASSWORD_CHARS`] characters,
/// at most [`MAX_PASSWORD_BYTES`] bytes, no NUL.
pub fn check_new_password(password: &str) -> Result<(), AccountError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AccountError::PasswordTooLong {
            max: MAX_PASSWORD_BYTES,
        });
    }
    if password.contains('\0') {
        return Err(AccountError::PasswordContainsNul);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::PasswordTooShort {
            min: MIN_PASSWORD_CHARS,
        });
    }
    Ok(())
}

/// Spends the time of a real [`verify_password`] against a hash with the current
/// parameters, and discards the result: call it for unknown users so that response time
/// does not reveal which accounts exist.
pub fn dummy_verify(password: &str) {
    let _ = std::hint::black_box(verify_password(password, DUMMY_PHC));
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn round_trip() {
        let phc = hash_password("correct horse battery").expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse battery", &phc));
        assert!(!verify_password("correct horse batterY", &phc));
        assert!(!verify_password("", &phc));
        assert!(!needs_rehash(&phc));
    }

    #[test]
    fn same_password_different_salt() {
        let a = hash_password("same password").expect("hash");
        let b = hash_password("same password").expect("hash");
        assert_ne!(a, b);
        assert!(verify_password("same password", &a));
        assert!(verify_password("same password", &b));
    }

    #[test]
    fn malformed_hashes_are_false() {
        for phc in [
            "",
            "not a hash",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$!!!",
            "$2b$12$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
        ] {
            assert!(!verify_password("password", phc), "{phc:?}");
            assert!(needs_rehash(phc), "{phc:?}");
        }
    }

    #[test]
    fn oversized_parameters_are_refused_without_hashing() {
        let huge = "$argon2id$v=19$m=4194304,t=2,p=1$Z6n/06i7c7D5tIKQ6Xt+0A$q3pUSD7ebwdu2Y8rPCaQvlPc6pTeE4idXsBL9JNPuZw";
        assert!(!verify_password("x", huge));
    }

    #[test]
    fn older_parameters_need_rehash_but_still_verify() {
        let salt = SaltString::generate(&mut OsRng);
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).expect("params"),
        )
        .hash_password(b"old password", &salt)
        .expect("hash")
        .to_string();
        assert!(verify_password("old password", &weak));
        assert!(needs_rehash(&weak));
    }

    #[test]
    fn dummy_hash_uses_current_parameters() {
        assert!(!needs_rehash(DUMMY_PHC));
        assert!(!verify_password("", DUMMY_PHC));
    }

    #[test]
    fn dummy_verify_costs_about_a_real_verify() {
        let phc = hash_password("some password").expect("hash");
        let start = Instant::now();
        verify_password("wrong guess", &phc);
        let real = start.elapsed();
        let start = Instant::now();
        dummy_verify("wrong guess");
        let dummy = start.elapsed();
        // Loose bounds: only catch a dummy that skips the work.
        assert!(dummy * 3 > real, "dummy {dummy:?} vs real {real:?}");
        assert!(dummy > Duration::from_millis(1));
    }

    #[test]
    fn new_password_rules() {
        assert!(check_new_password("12345678").is_ok());
        assert!(check_new_password("ünïcödé!").is_ok(), "counts characters");
        assert!(matches!(
            check_new_password("1234567"),
            Err(AccountError::PasswordTooShort { min: 8 })
        ));
        assert!(matches!(
            check_new_password("ab\0cdefghi"),
            Err(AccountError::PasswordContainsNul)
        ));
        assert!(check_new_password(&"a".repeat(1024)).is_ok());
        assert!(matches!(
            check_new_password(&"a".repeat(1025)),
            Err(AccountError::PasswordTooLong { max: 1024 })
        ));
        let message = check_new_password("short").expect_err("short").to_string();
        assert_eq!(message, "the password must be at least 8 characters long");
    }
}
