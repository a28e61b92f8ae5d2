use std::net::SocketAddr;

/// Errors of the front door; each names the step and the address.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTPS listener {addr} requested but no TLS configuration was given")]
    MissingTlsConfig { addr: SocketAddr },
}
