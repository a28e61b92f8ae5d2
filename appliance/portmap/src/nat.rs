//! Classifying the router's external address: can a mapping on this router make the box
//! reachable from the internet?

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

/// What the external address the router reports says about the path to the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NatKind {
    /// A public address: a mapping on this router reaches the internet.
    Public,
    /// RFC 1918 private, link-local, or another reserved range: this router sits behind
    /// another router (double NAT).
    DoubleNat,
    /// 100.64.0.0/10: the provider's carrier-grade NAT.
    Cgnat,
    /// 0.0.0.0 / :: — the router has no usable external address (often the same double NAT,
    /// or the WAN link is down).
    NoAddress,
}

impl NatKind {
    /// One or two sentences for the owner: what it means and what they can do.
    pub fn advice(self) -> &'static str {
        match self {
            NatKind::Public => {
                "The router has a public address: a port mapping makes the box reachable."
            }
            NatKind::DoubleNat => {
                "Double NAT: the router's own internet address is private or reserved, so \
                 another router (often the provider's modem) sits in front of it. A mapping on \
                 this router cannot make the box reachable. Put the modem in bridge mode, or \
                 forward the port on the modem to this router, or use a VPN or tunnel."
            }
            NatKind::Cgnat => {
                "Carrier-grade NAT: the provider shares one public address among many \
                 customers (100.64.0.0/10). No mapping at home can make the box reachable. \
                 Ask the provider for a public IPv4 address, use IPv6, or use a VPN or tunnel."
            }
            NatKind::NoAddress => {
                "The router reports no external address: its internet link is down, or it \
                 is behind another router (double NAT) and does not say so."
            }
        }
    }
}

/// Classifies `ip` as the external address a router reported.
pub fn classify(ip: IpAddr) -> NatKind {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> NatKind {
    let [a, b, c, _] = ip.octets();
    if ip.is_unspecified() {
        return NatKind::NoAddress;
    }
    if a == 100 && (64..128).contains(&b) {
        return NatKind::Cgnat;
    }
    let reserved = ip.is_private()            // 10/8, 172.16/12, 192.168/16
        || ip.is_loopback()                  // 127/8
        || ip.is_link_local()                // 169.254/16
        || a == 0                            // 0/8 "this network"
        || (a == 192 && b == 0 && c == 0)    // 192.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)    // TEST-NET-1
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113)  // TEST-NET-3
        || (a == 198 && (b & 0xfe) == 18)    // 198.18/15 benchmarking
        || a >= 224; // multicast 224/4, reserved 240/4, broadcast
    if reserved {
        NatKind::DoubleNat
    } else {
        NatKind::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> NatKind {
    if ip.is_unspecified() {
        return NatKind::NoAddress;
    }
    let first = ip.segments()[0];
    let reserved = ip.is_loopback()
        || (first & 0xfe00) == 0xfc00 // ULA fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8); // documentation
    if reserved {
        NatKind::DoubleNat
    } else {
        NatKind::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> NatKind {
        classify(s.parse().expect("ip"))
    }

    #[test]
    fn public_addresses() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "198.20.0.1",
            "223.255.255.254",
            "2a00:1450::1",
            "::ffff:8.8.4.4",
        ] {
            assert_eq!(kind(ip), NatKind::Public, "{ip}");
        }
    }

    #[test]
    fn reserved_addresses_are_double_nat() {
        for ip in [
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.1",
            "192.168.1.1",
            "169.254.7.7",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "255.255.255.255",
            "127.0.0.1",
            "fd00::1",
            "fc12::1",
            "fe80::1",
            "2001:db8::1",
            "::ffff:192.168.0.1",
        ] {
            assert_eq!(kind(ip), NatKind::DoubleNat, "{ip}");
        }
    }

    #[test]
    fn carrier_grade_nat() {
        for ip in ["100.64.0.1", "100.100.100.100", "100.127.255.254"] {
            assert_eq!(kind(ip), NatKind::Cgnat, "{ip}");
        }
    }

    #[test]
    fn no_address() {
        assert_eq!(kind("0.0.0.0"), NatKind::NoAddress);
        assert_eq!(kind("::"), NatKind::NoAddress);
        assert!(NatKind::Cgnat.advice().contains("100.64.0.0/10"));
    }
}
