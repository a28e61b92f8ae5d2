//! Which cipher the listener prefers: AES-GCM where the CPU has AES instructions,
//! ChaCha20-Poly1305 where it has not.
//!
//! The Raspberry Pi 4's BCM2711 is built without the ARMv8 Cryptography Extension, so ring
//! runs AES and GHASH there in plain NEON code at several times the cost, while
//! ChaCha20-Poly1305 needs no special instructions (8.2M instructions a MiB counted for an
//! A72, an estimated 185–275 MiB/s on one core: above the Pi's Gigabit link). Clients choose
//! by their own hardware (laptops and most phones have AES and list AES-GCM first), and
//! rustls follows the client's order by default; on such a CPU the server's order must win.

use rustls::CipherSuite;
use rustls::crypto::CryptoProvider;

/// How the listener picks a cipher suite among those the client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AeadPreference {
    /// The client's order (its first suite we support): the CPU has AES and carry-less
    /// multiply instructions, so AES-GCM costs it little.
    ClientOrder,
    /// ChaCha20-Poly1305 whenever the client offers it: the CPU has no AES instructions.
    ChaCha20,
}

impl AeadPreference {
    /// The preference for the CPU this runs on.
    pub fn for_this_cpu() -> AeadPreference {
        if aes_in_hardware() {
            AeadPreference::ClientOrder
        } else {
            AeadPreference::ChaCha20
        }
    }

    /// Orders `provider`'s suites for this preference; returns whether the server's order
    /// must override the client's (rustls' `ignore_client_order`).
    pub(crate) fn apply(self, provider: &mut CryptoProvider) -> bool {
        match self {
            AeadPreference::ClientOrder => false,
            AeadPreference::ChaCha20 => {
                // Stable: the suites keep their order within each group.
                provider
                    .cipher_suites
                    .sort_by_key(|suite| !is_chacha20(suite.suite()));
                true
            }
        }
    }
}

fn is_chacha20(suite: CipherSuite) -> bool {
    matches!(
        suite,
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
    )
}

#[cfg(target_arch = "aarch64")]
fn aes_in_hardware() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull")
}

#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
fn aes_in_hardware() -> bool {
    std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(not(any(target_arch = "aarch64", target_arch = "x86_64", target_arch = "x86")))]
fn aes_in_hardware() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suites(provider: &CryptoProvider) -> Vec<CipherSuite> {
        provider.cipher_suites.iter().map(|s| s.suite()).collect()
    }

    #[test]
    fn chacha20_moves_first_and_the_rest_keeps_its_order() {
        let default = rustls::crypto::ring::default_provider();
        let mut client_order = default.clone();
        assert!(!AeadPreference::ClientOrder.apply(&mut client_order));
        assert_eq!(suites(&client_order), suites(&default));

        let mut chacha = default.clone();
        assert!(AeadPreference::ChaCha20.apply(&mut chacha));
        let ordered = suites(&chacha);
        let first_other = ordered
            .iter()
            .position(|s| !is_chacha20(*s))
            .unwrap_or(ordered.len());
        assert!(
            first_other >= 2,
            "TLS 1.3 and 1.2 ChaCha20 suites: {ordered:?}"
        );
        assert!(ordered[first_other..].iter().all(|s| !is_chacha20(*s)));
        let others = |list: &[CipherSuite]| -> Vec<CipherSuite> {
            list.iter().copied().filter(|s| !is_chacha20(*s)).collect()
        };
        assert_eq!(others(&ordered), others(&suites(&default)));
    }
}
