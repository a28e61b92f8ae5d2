//! The box's names on the LAN and what is persisted about them in `<data>/discovery.json`:
//! a stable device id, the names chosen on the Admin page, and the host name actually
//! claimed after a conflict (`percloud-2`), so the box keeps it across reboots.

use std::path::{Path, PathBuf};

use rand::RngCore as _;
use serde::{Deserialize, Serialize};

use crate::error::DiscoveryError;

/// The file name of the persisted state in the data folder.
pub const STATE_FILE: &str = "discovery.json";
/// The version written; older versions stay readable.
const STATE_VERSION: u32 = 1;

/// What survives a reboot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    /// 128 random bits in hex, made once; the `id` of `_percloud._tcp`.
    pub device_id: String,
    /// Host name set on the Admin page; overrides the config file.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Instance name set on the Admin page; overrides the config file.
    #[serde(default)]
    pub instance: Option<String>,
    /// The host name claimed on the network for a wanted one after a conflict.
    #[serde(default)]
    pub claimed: Option<Claimed>,
}

/// `wanted` was taken on the network, so the box answers as `actual`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claimed {
    pub wanted: String,
    pub actual: String,
}

impl State {
    fn fresh() -> State {
        let mut id = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut id);
        State {
            version: STATE_VERSION,
            device_id: id.iter().map(|b| format!("{b:02x}")).collect(),
            hostname: None,
            instance: None,
            claimed: None,
        }
    }

    /// Reads `<data>/discovery.json`, or makes (and writes) a fresh state when there is none.
    pub fn load_or_create(data: &Path) -> Result<State, DiscoveryError> {
        let path = state_path(data);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let state: State =
                    serde_json::from_slice(&bytes).map_err(|e| DiscoveryError::ParseState {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                if state.version > STATE_VERSION {
                    return Err(DiscoveryError::StateVersion {
                        path,
                        version: state.version,
                    });
                }
                Ok(state)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let state = State::fresh();
                state.save(data)?;
                Ok(state)
            }
            Err(source) => Err(DiscoveryError::ReadState { path, source }),
        }
    }

    /// Writes the state atomically (temporary file, fsync, rename).
    pub fn save(&self, data: &Path) -> Result<(), DiscoveryError> {
        use std::io::Write as _;
        let path = state_path(data);
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|source| DiscoveryError::WriteState {
            path: path.clone(),
            source,
        })
    }

    /// The host name to ask for: the Admin page's, else the config file's.
    pub fn wanted_hostname<'a>(&'a self, configured: &'a str) -> &'a str {
        self.hostname.as_deref().unwrap_or(configured)
    }

    /// The host name to announce: the one claimed earlier for the wanted name, else the
    /// wanted name itself.
    pub fn hostname(&self, configured: &str) -> String {
        let wanted = self.wanted_hostname(configured);
        match &self.claimed {
            Some(c) if c.wanted.eq_ignore_ascii_case(wanted) => c.actual.clone(),
            _ => wanted.to_owned(),
        }
    }

    /// The instance name: the Admin page's, else the config file's, else the host name.
    pub fn instance(&self, configured: Option<&str>, hostname: &str) -> String {
        self.instance
            .as_deref()
            .or(configured)
            .unwrap_or(hostname)
            .to_owned()
    }

    /// Remembers that the network gave us `actual` when we asked for `wanted`.
    pub fn record_claim(&mut self, wanted: &str, actual: &str) {
        self.claimed = (!wanted.eq_ignore_ascii_case(actual)).then(|| Claimed {
            wanted: wanted.to_owned(),
            actual: actual.to_owned(),
        });
    }
}

/// Where the state lives.
pub fn state_path(data: &Path) -> PathBuf {
    data.join(STATE_FILE)
}

/// A DNS label: 1–63 letters, digits and hyphens, not starting or ending with a hyphen.
pub fn validate_hostname(name: &str) -> Result<(), DiscoveryError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(DiscoveryError::InvalidHostname(name.to_owned()))
    }
}

/// A DNS-SD instance name: 1–63 bytes of UTF-8 without control characters.
pub fn validate_instance(name: &str) -> Result<(), DiscoveryError> {
    let ok = !name.trim().is_empty() && name.len() <= 63 && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(DiscoveryError::InvalidInstance(name.to_owned()))
    }
}

/// The label of a host name as mDNS reports it (`percloud-2.local.` → `percloud-2`).
pub fn host_label(fqdn: &str) -> &str {
    let name = fqdn.trim_end_matches('.');
    name.strip_suffix(".local").unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_state_is_persisted_with_a_stable_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = State::load_or_create(dir.path()).expect("create");
        assert_eq!(first.device_id.len(), 32);
        let again = State::load_or_create(dir.path()).expect("load");
        assert_eq!(first, again);
    }

    #[test]
    fn a_claimed_suffix_survives_a_reboot_for_the_same_wanted_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut state = State::load_or_create(dir.path()).expect("create");
        assert_eq!(state.hostname("percloud"), "percloud");
        state.record_claim("percloud", "percloud-2");
        state.save(dir.path()).expect("save");
        let state = State::load_or_create(dir.path()).expect("load");
        assert_eq!(state.hostname("percloud"), "percloud-2");
        // Another configured name starts over from that name.
        assert_eq!(state.hostname("attic"), "attic");
    }

    #[test]
    fn admin_names_override_the_config_file() {
        let mut state = State::fresh();
        state.hostname = Some("attic".into());
        state.instance = Some("Attic box".into());
        assert_eq!(state.hostname("percloud"), "attic");
        assert_eq!(state.instance(Some("config"), "attic"), "Attic box");
        state.instance = None;
        assert_eq!(state.instance(Some("config"), "attic"), "config");
        assert_eq!(state.instance(None, "attic"), "attic");
        state.record_claim("attic", "attic");
        assert_eq!(state.claimed, None);
    }

    #[test]
    fn damaged_or_newer_state_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(state_path(dir.path()), b"{nope").expect("write");
        assert!(matches!(
            State::load_or_create(dir.path()),
            Err(DiscoveryError::ParseState { .. })
        ));
        std::fs::write(
            state_path(dir.path()),
            br#"{"version": 9, "device_id": "x"}"#,
        )
        .expect("write");
        assert!(matches!(
            State::load_or_create(dir.path()),
            Err(DiscoveryError::StateVersion { version: 9, .. })
        ));
    }

    #[test]
    fn validates_names() {
        for good in ["percloud", "percloud-2", "a", "Box9"] {
            assert!(validate_hostname(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "a.b", "a b", &"x".repeat(64)] {
            assert!(validate_hostname(bad).is_err(), "{bad}");
        }
        assert!(validate_instance("Living room box (2)").is_ok());
        assert!(validate_instance(" ").is_err());
        assert!(validate_instance("a\nb").is_err());
        assert!(validate_instance(&"x".repeat(64)).is_err());
    }

    #[test]
    fn host_labels() {
        assert_eq!(host_label("percloud-2.local."), "percloud-2");
        assert_eq!(host_label("percloud.local"), "percloud");
        assert_eq!(host_label("odd"), "odd");
    }
}
