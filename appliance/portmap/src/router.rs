//! The router behind a small trait, and its real implementation on igd-next (UPnP IGD).

use std::future::Future;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use igd_next::aio::Gateway;
use igd_next::aio::tokio::Tokio;
use igd_next::{
    AddPortError, GetExternalIpError, GetGenericPortMappingEntryError, PortMappingProtocol,
    RemovePortError, RequestError, SearchOptions,
};

use crate::RouterError;

/// Most mapping entries read when looking for ours; routers rarely hold more.
const MAX_ENTRIES: u32 = 128;

/// One TCP mapping the router holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub external_port: u16,
    pub internal: SocketAddr,
    pub lease_secs: u32,
}

/// A gateway that maps TCP ports.
pub trait Router: Send + Sync {
    /// Where the gateway answers (for finding our LAN address towards it).
    fn addr(&self) -> SocketAddr;
    /// The router's own internet-side address.
    fn external_ip(&self) -> impl Future<Output = Result<IpAddr, RouterError>> + Send;
    /// Adds or refreshes the TCP mapping `external` → `internal` for `lease_secs` (0: permanent).
    fn add_port(
        &self,
        external: u16,
        internal: SocketAddr,
        lease_secs: u32,
        description: &str,
    ) -> impl Future<Output = Result<(), RouterError>> + Send;
    /// Removes the TCP mapping of `external`.
    fn remove_port(&self, external: u16) -> impl Future<Output = Result<(), RouterError>> + Send;
    /// The TCP mappings the router lists.
    fn mappings(&self) -> impl Future<Output = Result<Vec<Mapping>, RouterError>> + Send;
}

/// Finds the gateway and this box's address towards it.
pub trait Discovery: Send + Sync {
    type Router: Router;
    fn discover(&self) -> impl Future<Output = Result<Self::Router, RouterError>> + Send;
    /// The local address the box uses to reach `gateway` (changes when the LAN address does).
    fn local_ip_towards(&self, gateway: SocketAddr) -> Result<IpAddr, RouterError>;
}

/// UPnP IGD discovery by SSDP (multicast, or unicast to a configured router).
#[derive(Debug, Clone)]
pub struct IgdDiscovery {
    /// `http://ROUTER:PORT/rootDesc.xml`: search that host only (tests, odd networks).
    pub igd_url: Option<String>,
    pub timeout: Duration,
}

impl IgdDiscovery {
    fn options(&self) -> Result<SearchOptions, RouterError> {
        let mut options = SearchOptions::default();
        options.timeout = Some(self.timeout);
        options.single_search_timeout = Some(self.timeout);
        if let Some(url) = &self.igd_url {
            let host = url_host(url).ok_or_else(|| RouterError::NoGateway {
                detail: format!("igd_url {url:?} has no IP address host"),
            })?;
            // SSDP answers a unicast M-SEARCH to port 1900 the way it answers multicast.
            options.broadcast_address = SocketAddr::new(host, 1900);
            options.allowed_gateway_ips = vec![host];
        }
        Ok(options)
    }
}

/// The IP address in `http://HOST:PORT/...`.
fn url_host(url: &str) -> Option<IpAddr> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    if let Ok(addr) = authority.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    authority.trim_matches(['[', ']']).parse().ok()
}

impl Discovery for IgdDiscovery {
    type Router = IgdRouter;

    async fn discover(&self) -> Result<IgdRouter, RouterError> {
        let options = self.options()?;
        let gateway = igd_next::aio::tokio::search_gateway(options)
            .await
            .map_err(|e| RouterError::NoGateway {
                detail: e.to_string(),
            })?;
        tracing::info!(addr = %gateway.addr, root = %gateway.root_url, "found UPnP gateway");
        Ok(IgdRouter { gateway })
    }

    fn local_ip_towards(&self, gateway: SocketAddr) -> Result<IpAddr, RouterError> {
        let transport = |detail: std::io::Error| RouterError::Transport {
            action: "finding the LAN address",
            detail: detail.to_string(),
        };
        let bind = match gateway {
            SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
            SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
        };
        // A connected UDP socket sends nothing; the kernel picks the source address.
        let socket = UdpSocket::bind(bind).map_err(transport)?;
        socket.connect(gateway).map_err(transport)?;
        Ok(socket.local_addr().map_err(transport)?.ip())
    }
}

/// A gateway found by [`IgdDiscovery`].
#[derive(Debug, Clone)]
pub struct IgdRouter {
    gateway: Gateway<Tokio>,
}

fn request_error(action: &'static str, err: RequestError) -> RouterError {
    match err {
        RequestError::ErrorCode(code, _) => RouterError::Refused { action, code },
        other => RouterError::Transport {
            action,
            detail: other.to_string(),
        },
    }
}

impl Router for IgdRouter {
    fn addr(&self) -> SocketAddr {
        self.gateway.addr
    }

    async fn external_ip(&self) -> Result<IpAddr, RouterError> {
        const ACTION: &str = "GetExternalIPAddress";
        self.gateway.get_external_ip().await.map_err(|e| match e {
            GetExternalIpError::ActionNotAuthorized => RouterError::Refused {
                action: ACTION,
                code: 606,
            },
            GetExternalIpError::RequestError(e) => request_error(ACTION, e),
        })
    }

    async fn add_port(
        &self,
        external: u16,
        internal: SocketAddr,
        lease_secs: u32,
        description: &str,
    ) -> Result<(), RouterError> {
        const ACTION: &str = "AddPortMapping";
        let refused = |code| RouterError::Refused {
            action: ACTION,
            code,
        };
        self.gateway
            .add_port(
                PortMappingProtocol::TCP,
                external,
                internal,
                lease_secs,
                description,
            )
            .await
            .map_err(|e| match e {
                AddPortError::ActionNotAuthorized => refused(606),
                AddPortError::PortInUse => refused(718),
                AddPortError::SamePortValuesRequired => refused(724),
                AddPortError::OnlyPermanentLeasesSupported => refused(725),
                AddPortError::DescriptionTooLong => refused(605),
                AddPortError::RequestError(e) => request_error(ACTION, e),
                other => RouterError::Transport {
                    action: ACTION,
                    detail: other.to_string(),
                },
            })
    }

    async fn remove_port(&self, external: u16) -> Result<(), RouterError> {
        const ACTION: &str = "DeletePortMapping";
        self.gateway
            .remove_port(PortMappingProtocol::TCP, external)
            .await
            .map_err(|e| match e {
                RemovePortError::ActionNotAuthorized => RouterError::Refused {
                    action: ACTION,
                    code: 606,
                },
                RemovePortError::NoSuchPortMapping => RouterError::Refused {
                    action: ACTION,
                    code: 714,
                },
                RemovePortError::RequestError(e) => request_error(ACTION, e),
            })
    }

    async fn mappings(&self) -> Result<Vec<Mapping>, RouterError> {
        const ACTION: &str = "GetGenericPortMappingEntry";
        let mut found = Vec::new();
        for index in 0..MAX_ENTRIES {
            match self.gateway.get_generic_port_mapping_entry(index).await {
                Ok(entry) => {
                    if entry.protocol != PortMappingProtocol::TCP {
                        continue;
                    }
                    let Ok(ip) = entry.internal_client.parse::<IpAddr>() else {
                        continue;
                    };
                    found.push(Mapping {
                        external_port: entry.external_port,
                        internal: SocketAddr::new(ip, entry.internal_port),
                        lease_secs: entry.lease_duration,
                    });
                }
                Err(GetGenericPortMappingEntryError::SpecifiedArrayIndexInvalid) => break,
                // Some routers answer 714 or 402 past the end of the table.
                Err(GetGenericPortMappingEntryError::RequestError(RequestError::ErrorCode(
                    714 | 402,
                    _,
                ))) => break,
                Err(GetGenericPortMappingEntryError::ActionNotAuthorized) => {
                    return Err(RouterError::Refused {
                        action: ACTION,
                        code: 606,
                    });
                }
                Err(GetGenericPortMappingEntryError::RequestError(e)) => {
                    return Err(request_error(ACTION, e));
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn igd_url_host() {
        assert_eq!(
            url_host("http://10.9.0.1:5000/rootDesc.xml"),
            Some("10.9.0.1".parse().expect("ip"))
        );
        assert_eq!(
            url_host("http://[fd00::1]:5000/rootDesc.xml"),
            Some("fd00::1".parse().expect("ip"))
        );
        assert_eq!(url_host("http://router.lan:5000/x"), None);
        assert_eq!(url_host("ftp://1.2.3.4/"), None);
    }
}
