//! One ACME order: account (created once, then loaded), TLS-ALPN-01 for the domain, CSR with
//! a fresh key, certificate chain. The challenge certificate is presented by the listener's
//! resolver, so no other port is needed than the HTTPS one the router forwards.

use std::path::PathBuf;
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use percloud_tls::CertResolver;
use rcgen::{CertificateParams, DistinguishedName, KeyPair};

use crate::{AcmeError, AcmeFiles};

/// Where to ask and as whom.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The ACME directory URL (Let's Encrypt's by default).
    pub directory_url: String,
    /// `mailto:` contact for the account; empty for none.
    pub contact: String,
    /// A PEM root to trust for the ACME server's HTTPS (test CAs such as Pebble); `None`
    /// uses the system's roots.
    pub ca_file: Option<PathBuf>,
}

/// A certificate chain and its key, both PEM.
#[derive(Debug)]
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

/// How long polling the order may take.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(500))
    .backoff(1.5)
    .timeout(Duration::from_secs(90));

/// Obtains a certificate for `domain`, answering TLS-ALPN-01 through `resolver`.
pub async fn obtain(
    config: &AcmeConfig,
    files: &AcmeFiles,
    resolver: &CertResolver,
    domain: &str,
) -> Result<Issued, AcmeError> {
    let account = account(config, files).await?;
    let identifiers = [Identifier::Dns(domain.to_owned())];
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(AcmeError::protocol("new order"))?;

    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.map_err(AcmeError::protocol("authorization"))?;
        match authorization.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                return Err(AcmeError::Authorization {
                    domain: domain.to_owned(),
                    status: format!("{other:?}"),
                });
            }
        }
        let mut challenge = authorization
            .challenge(ChallengeType::TlsAlpn01)
            .ok_or_else(|| AcmeError::NoTlsAlpnChallenge {
                domain: domain.to_owned(),
            })?;
        let digest = challenge.key_authorization().digest();
        resolver
            .set_challenge(domain, digest.as_ref())
            .map_err(|source| AcmeError::Tls {
                step: "challenge certificate",
                source,
            })?;
        challenge
            .set_ready()
            .await
            .map_err(AcmeError::protocol("challenge ready"))?;
    }

    let status = order.poll_ready(&POLL).await;
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            resolver.clear_challenge(domain);
            return Err(AcmeError::protocol("waiting for validation")(e));
        }
    };
    resolver.clear_challenge(domain);
    if status != OrderStatus::Ready {
        return Err(AcmeError::Order {
            domain: domain.to_owned(),
            status: format!("{status:?}"),
        });
    }

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(AcmeError::Csr)?;
    let mut params = CertificateParams::new(vec![domain.to_owned()]).map_err(AcmeError::Csr)?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(AcmeError::Csr)?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(AcmeError::protocol("finalize"))?;
    let chain_pem = order
        .poll_certificate(&POLL)
        .await
        .map_err(AcmeError::protocol("certificate download"))?;
    Ok(Issued {
        chain_pem,
        key_pem: key.serialize_pem(),
    })
}

/// The account from `<data>/acme/account.json`, created on the server the first time.
async fn account(config: &AcmeConfig, files: &AcmeFiles) -> Result<Account, AcmeError> {
    // instant-acme's HTTP client uses rustls' process default provider: ours is ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = || match &config.ca_file {
        Some(path) => Account::builder_with_root(path).map_err(AcmeError::protocol("HTTP client")),
        None => Account::builder().map_err(AcmeError::protocol("HTTP client")),
    };
    let path = files.account();
    if let Some(text) = files.read(&path)? {
        let stored: StoredAccount =
            serde_json::from_str(&text).map_err(|e| AcmeError::AccountFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if stored.directory_url == config.directory_url {
            return builder()?
                .from_credentials(stored.credentials)
                .await
                .map_err(AcmeError::protocol("loading the account"));
        }
        tracing::info!("ACME directory changed; creating a new account");
    }
    let contact: Vec<&str> = if config.contact.is_empty() {
        Vec::new()
    } else {
        vec![config.contact.as_str()]
    };
    let (account, credentials) = builder()?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            config.directory_url.clone(),
            None,
        )
        .await
        .map_err(AcmeError::protocol("creating the account"))?;
    let stored = StoredAccount {
        version: 1,
        directory_url: config.directory_url.clone(),
        credentials,
    };
    let json = serde_json::to_vec_pretty(&stored).map_err(|e| AcmeError::AccountFile {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    files.write_private(&path, &json)?;
    tracing::info!(id = account.id(), "ACME account created");
    Ok(account)
}

/// `account.json`, versioned.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredAccount {
    version: u32,
    directory_url: String,
    credentials: AccountCredentials,
}
