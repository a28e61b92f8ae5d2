//! rustls configuration: the server side for the listener, and a verifier used to check
//! that a server certificate chains to our CA and covers the wanted names.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

use crate::aead::AeadPreference;
use crate::resolver::CertResolver;

/// ALPN protocols offered by the listener, most preferred first; `acme-tls/1` only answers
/// TLS-ALPN-01 validators (the resolver then presents the challenge certificate).
const ALPN: [&[u8]; 3] = [b"h2", b"http/1.1", crate::resolver::ACME_TLS_ALPN];

/// The ring provider, passed explicitly so no process-wide default is needed.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The LAN certificate and key as rustls signs with them.
pub(crate) fn certified_key(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, rustls::Error> {
    CertifiedKey::from_der(vec![cert], key, &provider()).map(Arc::new)
}

/// A server configuration presenting what `resolver` picks; TLS 1.2 and 1.3, cipher suites
/// chosen as `preference` says.
pub(crate) fn server_config(
    resolver: Arc<CertResolver>,
    preference: AeadPreference,
) -> Result<ServerConfig, rustls::Error> {
    let mut provider = Arc::unwrap_or_clone(provider());
    let server_order = preference.apply(&mut provider);
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|proto| proto.to_vec()).collect();
    config.ignore_client_order = server_order;
    Ok(config)
}

/// A verifier that trusts only `ca`, as a device that installed our CA would.
pub(crate) fn verifier_for(
    ca: CertificateDer<'static>,
) -> Result<Arc<WebPkiServerVerifier>, rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.add(ca)?;
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|err| rustls::Error::General(err.to_string()))
}
