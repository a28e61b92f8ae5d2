//! percloud-acme: a publicly trusted certificate for the owner's domain.
//!
//! Owns `<data>/acme/` (the ACME account, and per domain the certificate chain and its key,
//! keys 0600) and the `acme` worker: it loads a stored certificate, obtains one by ACME
//! (instant-acme, TLS-ALPN-01 answered through `percloud-tls`'s resolver on the HTTPS port
//! the router forwards) when there is none or it has less than 30 days left, hands it to the
//! resolver, and when renewal fails keeps serving the current certificate while it is
//! valid, then falls back to the box's own CA with a visible warning.
//!
//! It must never ask for a certificate while the port is not mapped (every attempt counts
//! against the CA's rate limits), never log key material, and never open a listener: the
//! challenge is answered by the existing HTTPS listener.

mod error;
mod issue;
mod store;
mod worker;

pub use error::AcmeError;
pub use issue::{AcmeConfig, Issued, obtain};
pub use store::AcmeFiles;
pub use worker::{AcmeStatus, AcmeWorker};
