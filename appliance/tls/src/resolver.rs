//! The certificate the HTTPS listener presents, swappable while it runs: the box's own
//! (LAN) certificate, a publicly trusted (ACME) certificate for the owner's domain, and the
//! short-lived TLS-ALPN-01 challenge certificates (RFC 8737).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::x509::{CertFacts, cert_facts};
use crate::{TlsError, config};

/// The ALPN protocol of TLS-ALPN-01 validation.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

#[derive(Debug)]
struct Public {
    domain: String,
    key: Arc<CertifiedKey>,
    facts: CertFacts,
}

/// Picks the certificate per connection: a challenge certificate when the client asks for
/// `acme-tls/1`, the public certificate when SNI names the owner's domain, else the LAN one.
#[derive(Debug)]
pub struct CertResolver {
    lan: RwLock<Arc<CertifiedKey>>,
    public: RwLock<Option<Public>>,
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl CertResolver {
    pub(crate) fn new(lan: Arc<CertifiedKey>) -> CertResolver {
        CertResolver {
            lan: RwLock::new(lan),
            public: RwLock::new(None),
            challenges: RwLock::new(HashMap::new()),
        }
    }

    /// Replaces the LAN certificate; new handshakes present it at once.
    pub(crate) fn set_lan(&self, key: Arc<CertifiedKey>) {
        *self.lan.write().unwrap_or_else(PoisonError::into_inner) = key;
    }

    /// Serves `chain_pem` with `key_pem` to clients that ask for `domain`; returns its facts.
    pub fn set_public(
        &self,
        domain: &str,
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<CertFacts, TlsError> {
        let bad = |reason: String| TlsError::PublicCert {
            domain: domain.to_owned(),
            reason,
        };
        let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| bad(e.to_string()))?;
        let leaf = chain.first().ok_or_else(|| bad("no certificate".into()))?;
        let facts = cert_facts(leaf).ok_or_else(|| bad("unreadable certificate".into()))?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .map_err(|e| bad(e.to_string()))?
            .ok_or_else(|| bad("no private key".into()))?;
        let certified = CertifiedKey::from_der(chain, key, &config::provider())
            .map_err(|e| bad(e.to_string()))?;
        *self.public.write().unwrap_or_else(PoisonError::into_inner) = Some(Public {
            domain: domain.to_ascii_lowercase(),
            key: Arc::new(certified),
            facts: facts.clone(),
        });
        Ok(facts)
    }

    /// Stops serving the public certificate (domain removed, or it expired).
    pub fn clear_public(&self) {
        *self.public.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The domain and facts of the public certificate in use, if any.
    pub fn public(&self) -> Option<(String, CertFacts)> {
        self.public
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|p| (p.domain.clone(), p.facts.clone()))
    }

    /// Presents a TLS-ALPN-01 certificate for `domain` carrying `digest` (SHA-256 of the key
    /// authorization) to validators that connect with ALPN `acme-tls/1`.
    pub fn set_challenge(&self, domain: &str, digest: &[u8]) -> Result<(), TlsError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|source| {
            TlsError::GenerateKey {
                what: "challenge",
                source,
            }
        })?;
        let sign = |source| TlsError::Sign {
            what: "challenge",
            source,
        };
        let mut params = CertificateParams::new(vec![domain.to_owned()]).map_err(sign)?;
        params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest)];
        let cert = params.self_signed(&key).map_err(sign)?;
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        // Not `from_der`: webpki rejects the critical acmeIdentifier extension, by design.
        let signer = config::provider()
            .key_provider
            .load_private_key(private)
            .map_err(|source| TlsError::ServerConfig { source })?;
        let certified = CertifiedKey::new(vec![cert.der().clone()], signer);
        self.challenges
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(domain.to_ascii_lowercase(), Arc::new(certified));
        Ok(())
    }

    /// Forgets the challenge certificate of `domain`.
    pub fn clear_challenge(&self, domain: &str) {
        self.challenges
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&domain.to_ascii_lowercase());
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name().map(str::to_ascii_lowercase);
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            let challenges = self
                .challenges
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            return sni.and_then(|name| challenges.get(&name).cloned());
        }
        if let Some(name) = sni {
            let public = self.public.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(public) = public.as_ref().filter(|p| p.domain == name) {
                return Some(public.key.clone());
            }
        }
        Some(
            self.lan
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(name: &str) -> (String, String) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let cert = CertificateParams::new(vec![name.to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    fn certified(name: &str) -> Arc<CertifiedKey> {
        let (cert, key) = self_signed(name);
        let cert = rustls_pemfile::certs(&mut cert.as_bytes())
            .next()
            .expect("cert")
            .expect("pem");
        let key = rustls_pemfile::private_key(&mut key.as_bytes())
            .expect("pem")
            .expect("key");
        config::certified_key(cert, key).expect("certified")
    }

    #[test]
    fn public_certificate_and_challenges_are_swapped_in_and_out() {
        let lan = certified("percloud.local");
        let resolver = CertResolver::new(lan.clone());
        assert!(resolver.public().is_none());
        let (chain, key) = self_signed("box.example");
        let facts = resolver
            .set_public("Box.Example", &chain, &key)
            .expect("public");
        assert_eq!(
            resolver.public().map(|(d, _)| d).as_deref(),
            Some("box.example")
        );
        assert!(facts.not_after > std::time::SystemTime::now());
        resolver
            .set_challenge("box.example", &[7; 32])
            .expect("challenge");
        assert_eq!(resolver.challenges.read().expect("lock").len(), 1);
        resolver.clear_challenge("box.example");
        assert!(resolver.challenges.read().expect("lock").is_empty());
        resolver.clear_public();
        assert!(resolver.public().is_none());
        let other = certified("other.local");
        resolver.set_lan(other.clone());
        assert!(Arc::ptr_eq(&resolver.lan.read().expect("lock"), &other));
        assert!(resolver.set_public("x.example", "junk", &key).is_err());
    }
}
