//! The names and addresses the server certificate must cover.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rustls::pki_types::{DnsName, ServerName};

use crate::TlsError;

/// Subject alternative names wanted in the server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    /// DNS names, such as `percloud.local`.
    pub names: Vec<String>,
    /// IP addresses clients may connect to directly.
    pub ips: Vec<IpAddr>,
}

impl ServerIdentity {
    /// `<hostname>.local` and `localhost`, plus the loopback addresses; the binary adds LAN addresses.
    pub fn local_default(hostname: &str) -> ServerIdentity {
        ServerIdentity {
            names: vec![format!("{hostname}.local"), "localhost".to_owned()],
            ips: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
        }
    }

    /// Checks every name, lowercases names and drops duplicates, keeping the first order.
    pub(crate) fn validated(&self) -> Result<ServerIdentity, TlsError> {
        let mut names: Vec<String> = Vec::with_capacity(self.names.len());
        for name in &self.names {
            let name = name.to_ascii_lowercase();
            DnsName::try_from(name.as_str()).map_err(|err| TlsError::InvalidName {
                name: name.clone(),
                reason: err.to_string(),
            })?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let mut ips: Vec<IpAddr> = Vec::with_capacity(self.ips.len());
        for ip in &self.ips {
            if !ips.contains(ip) {
                ips.push(*ip);
            }
        }
        if names.is_empty() && ips.is_empty() {
            return Err(TlsError::EmptyIdentity);
        }
        Ok(ServerIdentity { names, ips })
    }

    /// Every name and address as a rustls server name, for checking a certificate covers them.
    /// Call on a validated identity: invalid names are skipped here.
    pub(crate) fn server_names(&self) -> Vec<ServerName<'static>> {
        let names = self
            .names
            .iter()
            .filter_map(|name| ServerName::try_from(name.clone()).ok());
        let ips = self
            .ips
            .iter()
            .map(|ip| ServerName::IpAddress((*ip).into()));
        names.chain(ips).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_default_names_and_loopbacks() {
        let id = ServerIdentity::local_default("percloud");
        assert_eq!(id.names, ["percloud.local", "localhost"]);
        assert_eq!(id.ips.len(), 2);
    }

    #[test]
    fn validation_lowercases_dedups_and_rejects_bad_names() {
        let id = ServerIdentity {
            names: vec!["PerCloud.local".into(), "percloud.local".into()],
            ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST); 2],
        };
        let valid = id.validated().expect("valid identity");
        assert_eq!(valid.names, ["percloud.local"]);
        assert_eq!(valid.ips.len(), 1);

        let bad = ServerIdentity {
            names: vec!["bad name".into()],
            ips: vec![],
        };
        assert!(matches!(bad.validated(), Err(TlsError::InvalidName { .. })));

        let empty = ServerIdentity {
            names: vec![],
            ips: vec![],
        };
        assert!(matches!(empty.validated(), Err(TlsError::EmptyIdentity)));
    }
}
