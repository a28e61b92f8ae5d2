//! The live list of services other devices announce, bounded in every dimension so a flood
//! of (hostile) announcements cannot grow memory without limit.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

/// At most this many entries; the one seen longest ago goes first.
pub const MAX_DEVICES: usize = 512;
/// At most this many TXT entries per device.
pub const MAX_TXT_ENTRIES: usize = 32;
/// TXT keys and values are cut to these lengths (bytes).
pub const MAX_TXT_KEY: usize = 64;
pub const MAX_TXT_VALUE: usize = 255;
/// Names (instance, host, type) are cut to this length (bytes).
pub const MAX_NAME: usize = 255;
/// At most this many addresses per device.
pub const MAX_ADDRESSES: usize = 16;
/// An entry not seen again for this long is dropped even without a goodbye.
pub const EXPIRY: Duration = Duration::from_secs(65 * 60);

/// One service instance seen on the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// The instance name (`Living Room TV`).
    pub name: String,
    /// The service type (`_googlecast._tcp`).
    #[serde(rename = "type")]
    pub service_type: String,
    /// The host name (`tv.local`).
    pub host: String,
    pub addresses: Vec<IpAddr>,
    pub port: u16,
    pub txt: BTreeMap<String, String>,
    /// Unix seconds.
    pub last_seen: u64,
}

/// What the resolver reported, before bounding.
#[derive(Debug, Clone)]
pub struct Sighting {
    /// The full instance name, the entry's key (`Living Room TV._googlecast._tcp.local.`).
    pub fullname: String,
    pub service_type: String,
    pub host: String,
    pub addresses: Vec<IpAddr>,
    pub port: u16,
    pub txt: Vec<(String, String)>,
}

/// The bounded list.
#[derive(Debug, Default)]
pub struct Devices {
    entries: HashMap<String, Device>,
}

impl Devices {
    /// Adds or refreshes an entry seen at `now` (Unix seconds), evicting the entry seen
    /// longest ago when the list is full.
    pub fn seen(&mut self, sighting: Sighting, now: u64) {
        let key = cut(&sighting.fullname, MAX_NAME).to_ascii_lowercase();
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_DEVICES {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, d)| d.last_seen)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        let name = instance_label(&sighting.fullname, &sighting.service_type);
        let mut txt = BTreeMap::new();
        for (k, v) in sighting.txt.iter().take(MAX_TXT_ENTRIES) {
            txt.insert(
                cut(k, MAX_TXT_KEY).to_owned(),
                cut(v, MAX_TXT_VALUE).to_owned(),
            );
        }
        let mut addresses = sighting.addresses;
        addresses.sort_by_key(|ip| (ip.is_ipv6(), *ip));
        addresses.dedup();
        addresses.truncate(MAX_ADDRESSES);
        let service_type = short_type(&sighting.service_type);
        self.entries.insert(
            key,
            Device {
                name: cut(name, MAX_NAME).to_owned(),
                service_type: cut(service_type, MAX_NAME).to_owned(),
                host: cut(sighting.host.trim_end_matches('.'), MAX_NAME).to_owned(),
                addresses,
                port: sighting.port,
                txt,
                last_seen: now,
            },
        );
    }

    /// Drops an entry whose owner said goodbye.
    pub fn removed(&mut self, fullname: &str) {
        self.entries
            .remove(&cut(fullname, MAX_NAME).to_ascii_lowercase());
    }

    /// Drops entries not seen since `now - EXPIRY`.
    pub fn expire(&mut self, now: u64) {
        let horizon = now.saturating_sub(EXPIRY.as_secs());
        self.entries.retain(|_, d| d.last_seen >= horizon);
    }

    /// The entries, by type then name.
    pub fn list(&self) -> Vec<Device> {
        let mut list: Vec<Device> = self.entries.values().cloned().collect();
        list.sort_by(|a, b| (&a.service_type, &a.name).cmp(&(&b.service_type, &b.name)));
        list
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `_googlecast._tcp.local.` → `_googlecast._tcp`.
fn short_type(ty: &str) -> &str {
    let ty = ty.trim_end_matches('.');
    ty.strip_suffix(".local").unwrap_or(ty)
}

/// The instance label of a full name (`TV._googlecast._tcp.local.` → `TV`).
fn instance_label<'a>(fullname: &'a str, service_type: &str) -> &'a str {
    let ty = service_type.trim_end_matches('.');
    let full = fullname.trim_end_matches('.');
    full.strip_suffix(ty)
        .map(|s| s.trim_end_matches('.'))
        .filter(|s| !s.is_empty())
        .unwrap_or(full)
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sighting(name: &str, ty: &str) -> Sighting {
        Sighting {
            fullname: format!("{name}.{ty}"),
            service_type: ty.to_owned(),
            host: "tv.local.".into(),
            addresses: vec!["192.168.1.9".parse().expect("ip")],
            port: 8009,
            txt: vec![("fn".into(), "Living Room".into())],
        }
    }

    #[test]
    fn keeps_a_live_entry_with_its_details() {
        let mut devices = Devices::default();
        devices.seen(sighting("TV", "_googlecast._tcp.local."), 100);
        let list = devices.list();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].name, "TV");
        assert_eq!(list[0].service_type, "_googlecast._tcp");
        assert_eq!(list[0].host, "tv.local");
        assert_eq!(list[0].port, 8009);
        assert_eq!(list[0].txt["fn"], "Living Room");
        devices.seen(sighting("TV", "_googlecast._tcp.local."), 200);
        assert_eq!(devices.len(), 1);
        assert_eq!(devices.list()[0].last_seen, 200);
        devices.removed("tv._googlecast._tcp.local.");
        assert!(devices.is_empty());
    }

    #[test]
    fn a_flood_is_bounded_and_evicts_the_oldest() {
        let mut devices = Devices::default();
        for i in 0..(MAX_DEVICES as u64 * 4) {
            devices.seen(sighting(&format!("d{i}"), "_airplay._tcp.local."), i);
        }
        assert_eq!(devices.len(), MAX_DEVICES);
        let oldest = devices.list().iter().map(|d| d.last_seen).min();
        assert_eq!(oldest, Some(MAX_DEVICES as u64 * 3));
    }

    #[test]
    fn txt_names_and_addresses_are_cut() {
        let mut devices = Devices::default();
        let mut s = sighting(&"n".repeat(1000), "_ipp._tcp.local.");
        s.txt = (0..100)
            .map(|i| (format!("{i}{}", "k".repeat(100)), "v".repeat(10_000)))
            .collect();
        s.addresses = (0..100u8).map(|i| IpAddr::from([10, 0, 0, i])).collect();
        devices.seen(s, 1);
        let d = &devices.list()[0];
        assert!(d.name.len() <= MAX_NAME);
        assert_eq!(d.txt.len(), MAX_TXT_ENTRIES);
        assert!(
            d.txt
                .iter()
                .all(|(k, v)| k.len() <= MAX_TXT_KEY && v.len() <= MAX_TXT_VALUE)
        );
        assert_eq!(d.addresses.len(), MAX_ADDRESSES);
    }

    #[test]
    fn entries_expire_without_goodbye() {
        let mut devices = Devices::default();
        devices.seen(sighting("old", "_smb._tcp.local."), 0);
        devices.seen(sighting("new", "_smb._tcp.local."), EXPIRY.as_secs());
        devices.expire(EXPIRY.as_secs() + 1);
        let names: Vec<String> = devices.list().into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["new"]);
    }

    #[test]
    fn cuts_on_character_boundaries() {
        assert_eq!(cut("ééé", 3), "é");
        assert_eq!(cut("abc", 10), "abc");
    }
}
