//! A router in memory, for tests of the state machine: its table, other hosts' ports,
//! permanent-only leases, outages and forgetting can be set at will.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use crate::RouterError;
use crate::router::{Discovery, Mapping, Router};

/// The router's state, shared by the test and the mapper.
#[derive(Debug)]
pub struct FakeState {
    /// Whether discovery finds the router.
    pub present: bool,
    /// Whether the router answers control requests.
    pub answering: bool,
    pub external_ip: IpAddr,
    /// Refuse every AddPortMapping with this UPnP code (501 for double NAT).
    pub refuse_add: Option<u16>,
    /// Refuse GetExternalIPAddress with 501 (miniupnpd with a reserved WAN address).
    pub refuse_external: bool,
    /// Accept only lease 0 (725 otherwise).
    pub permanent_only: bool,
    /// External ports mapped to other hosts.
    pub taken: BTreeSet<u16>,
    /// The box's LAN address.
    pub local_ip: IpAddr,
    pub table: BTreeMap<u16, Mapping>,
    pub adds: u32,
    pub removes: u32,
}

/// A handle on a fake router and its discovery.
#[derive(Debug, Clone)]
pub struct Fake(pub Arc<Mutex<FakeState>>);

impl Fake {
    pub fn new() -> Fake {
        Fake(Arc::new(Mutex::new(FakeState {
            present: true,
            answering: true,
            external_ip: "203.0.114.7".parse().expect("ip"),
            refuse_add: None,
            refuse_external: false,
            permanent_only: false,
            taken: BTreeSet::new(),
            local_ip: "192.168.1.20".parse().expect("ip"),
            table: BTreeMap::new(),
            adds: 0,
            removes: 0,
        })))
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn answering(&self, action: &'static str) -> Result<(), RouterError> {
        if self.with(|s| s.answering) {
            Ok(())
        } else {
            Err(RouterError::Transport {
                action,
                detail: "connection refused".into(),
            })
        }
    }
}

impl Discovery for Fake {
    type Router = Fake;

    async fn discover(&self) -> Result<Fake, RouterError> {
        if self.with(|s| s.present && s.answering) {
            Ok(self.clone())
        } else {
            Err(RouterError::NoGateway {
                detail: "no response within timeout".into(),
            })
        }
    }

    fn local_ip_towards(&self, _gateway: SocketAddr) -> Result<IpAddr, RouterError> {
        Ok(self.with(|s| s.local_ip))
    }
}

impl Router for Fake {
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([192, 168, 1, 1], 5000))
    }

    async fn external_ip(&self) -> Result<IpAddr, RouterError> {
        self.answering("GetExternalIPAddress")?;
        if self.with(|s| s.refuse_external) {
            return Err(RouterError::Refused {
                action: "GetExternalIPAddress",
                code: 501,
            });
        }
        Ok(self.with(|s| s.external_ip))
    }

    async fn add_port(
        &self,
        external: u16,
        internal: SocketAddr,
        lease_secs: u32,
        _description: &str,
    ) -> Result<(), RouterError> {
        self.answering("AddPortMapping")?;
        self.with(|s| {
            let refused = |code| RouterError::Refused {
                action: "AddPortMapping",
                code,
            };
            if let Some(code) = s.refuse_add {
                return Err(refused(code));
            }
            if s.permanent_only && lease_secs != 0 {
                return Err(refused(725));
            }
            let other_host = s
                .table
                .get(&external)
                .is_some_and(|m| m.internal.ip() != internal.ip());
            if s.taken.contains(&external) || other_host {
                return Err(refused(718));
            }
            s.adds += 1;
            s.table.insert(
                external,
                Mapping {
                    external_port: external,
                    internal,
                    lease_secs,
                },
            );
            Ok(())
        })
    }

    async fn remove_port(&self, external: u16) -> Result<(), RouterError> {
        self.answering("DeletePortMapping")?;
        self.with(|s| {
            s.removes += 1;
            match s.table.remove(&external) {
                Some(_) => Ok(()),
                None => Err(RouterError::Refused {
                    action: "DeletePortMapping",
                    code: 714,
                }),
            }
        })
    }

    async fn mappings(&self) -> Result<Vec<Mapping>, RouterError> {
        self.answering("GetGenericPortMappingEntry")?;
        Ok(self.with(|s| s.table.values().cloned().collect()))
    }
}
