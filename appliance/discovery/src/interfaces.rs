//! Which network interfaces the box announces itself on: every interface that is up and
//! not loopback, except the bridges of containers and virtual machines on the box itself
//! (`docker0`, `br-…`, `virbr…`), whose peers are not the people's devices.

use std::net::IpAddr;

/// Name prefixes of host-internal bridges.
const VIRTUAL_PREFIXES: [&str; 3] = ["docker", "br-", "virbr"];

/// True for the bridge of a container runtime or hypervisor.
pub fn is_virtual_bridge(name: &str) -> bool {
    VIRTUAL_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// True for an interface the box should be found on.
pub fn is_lan_interface(name: &str, loopback: bool, up: bool) -> bool {
    up && !loopback && !is_virtual_bridge(name)
}

/// The LAN addresses of the box now, IPv4 first, each once.
pub fn lan_addresses() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| is_lan_interface(&i.name, i.is_loopback(), i.is_oper_up()))
        .map(|i| i.ip())
        .collect();
    ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    ips.dedup();
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_loopback_down_and_host_bridges() {
        assert!(is_lan_interface("eth0", false, true));
        assert!(is_lan_interface("wlan0", false, true));
        // In the system tests the box's interface is a veth in a namespace.
        assert!(is_lan_interface("veth-pc1", false, true));
        assert!(!is_lan_interface("lo", true, true));
        assert!(!is_lan_interface("eth0", false, false));
        assert!(!is_lan_interface("docker0", false, true));
        assert!(!is_lan_interface("br-1a2b3c", false, true));
        assert!(!is_lan_interface("virbr0", false, true));
    }
}
