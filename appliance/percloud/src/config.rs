//! The optional TOML configuration file. Strict: an unknown key is an error, so a typo never
//! silently falls back to a default. Command-line flags override the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use percloud_store::Retention;
use serde::Deserialize;

/// Where the appliance keeps its configuration.
pub const APPLIANCE_CONFIG: &str = "/etc/percloud/config.toml";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Data folder.
    #[serde(default = "default_data")]
    pub data: PathBuf,
    /// Plain HTTP listeners.
    #[serde(default = "default_listen")]
    pub listen: Vec<SocketAddr>,
    /// HTTPS listeners.
    #[serde(default)]
    pub tls_listen: Vec<SocketAddr>,
    /// Host name, announced as `<hostname>.local`.
    #[serde(default = "default_hostname")]
    pub hostname: String,
    #[serde(default)]
    pub retention: RetentionConfig,
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    /// Only on the appliance image: the box's own duties (watchdog, console, first boot).
    #[serde(default)]
    pub appliance: Option<ApplianceConfig>,
    #[serde(default)]
    pub remote: RemoteConfig,
    /// Only on the appliance image: system updates (docs/update.md).
    #[serde(default)]
    pub update: Option<UpdateConfig>,
}

/// `[update]`: where the slots are, which bootloader picks them, whom to trust and where to
/// look for new versions (docs/update.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// The board id bundles must name; default: `BOARD=` of the release file.
    #[serde(default)]
    pub board: Option<String>,
    pub slot_a: PathBuf,
    pub slot_b: PathBuf,
    /// Each slot's own boot partition (the Pi's p2 and p3: kernel, initramfs, DTBs); give
    /// both or neither. Bundles must then carry a boot payload per slot.
    #[serde(default)]
    pub boot_a: Option<PathBuf>,
    #[serde(default)]
    pub boot_b: Option<PathBuf>,
    pub boot: BootBackend,
    /// `boot = "grub"`: the environment block on the ESP.
    #[serde(default)]
    pub grubenv: Option<PathBuf>,
    /// `boot = "tryboot"`: `autoboot.txt` on the Pi's first partition.
    #[serde(default)]
    pub autoboot: Option<PathBuf>,
    /// `boot = "fake"`: the fake bootloader's file (tests).
    #[serde(default)]
    pub fake_state: Option<PathBuf>,
    #[serde(default = "default_keyring")]
    pub keyring: PathBuf,
    /// The channel's `index.json`; empty: no channel (install from a file or URL only).
    #[serde(default)]
    pub channel: String,
    /// A PEM file of extra roots to trust for the channel (a private CA); empty: none.
    #[serde(default)]
    pub channel_ca_file: String,
    /// Install what the channel offers at this hour (0-23, local time is UTC on the box).
    #[serde(default)]
    pub auto_install_hour: Option<u8>,
    /// How long the health gate may take after a trial boot.
    #[serde(default = "default_gate_deadline_secs")]
    pub gate_deadline_secs: u64,
    /// The release file to read the running version from.
    #[serde(default = "default_release_file")]
    pub release_file: PathBuf,
    /// The kernel command line to read the running slot from.
    #[serde(default = "default_cmdline")]
    pub cmdline: PathBuf,
    /// How to restart the machine (GRUB backend; tryboot restarts through reboot(2) with
    /// "0 tryboot"); tests point it at a harmless command.
    #[serde(default = "default_reboot_command")]
    pub reboot_command: Vec<String>,
    /// Testing only: the health gate fails at this step (to exercise a rollback).
    #[serde(default)]
    pub gate_fail: Option<String>,
}

/// How the box picks the slot it boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootBackend {
    Grub,
    Tryboot,
    Fake,
}

fn default_keyring() -> PathBuf {
    PathBuf::from("/etc/percloud/update-keys")
}
fn default_reboot_command() -> Vec<String> {
    vec!["reboot".to_owned()]
}
fn default_gate_deadline_secs() -> u64 {
    300
}
fn default_release_file() -> PathBuf {
    PathBuf::from(percloud_update::release::RELEASE_FILE)
}
fn default_cmdline() -> PathBuf {
    PathBuf::from(percloud_update::boot::PROC_CMDLINE)
}

impl UpdateConfig {
    fn validate(&self) -> Result<(), String> {
        if self.slot_a == self.slot_b {
            return Err("[update] slot_a and slot_b must differ".into());
        }
        match (&self.boot_a, &self.boot_b) {
            (None, None) => {}
            (Some(a), Some(b)) => {
                let all = [&self.slot_a, &self.slot_b, a, b];
                if (1..all.len()).any(|i| all[..i].contains(&all[i])) {
                    return Err("[update] slot_a, slot_b, boot_a and boot_b must all differ".into());
                }
            }
            _ => return Err("[update] boot_a and boot_b go together".into()),
        }
        if self.boot == BootBackend::Tryboot && self.boot_a.is_none() {
            return Err(
                "[update] boot = \"tryboot\" needs `boot_a` and `boot_b` (each slot's boot partition)"
                    .into(),
            );
        }
        let needed = match self.boot {
            BootBackend::Grub => ("grubenv", self.grubenv.is_none()),
            BootBackend::Tryboot => ("autoboot", self.autoboot.is_none()),
            BootBackend::Fake => ("fake_state", self.fake_state.is_none()),
        };
        if needed.1 {
            return Err(format!(
                "[update] boot = {:?} needs `{}`",
                self.boot, needed.0
            ));
        }
        if self.reboot_command.is_empty() {
            return Err("[update] reboot_command must name a program".into());
        }
        if self.auto_install_hour.is_some_and(|h| h > 23) {
            return Err("[update] auto_install_hour must be 0-23".into());
        }
        let web_url = self.channel.starts_with("https://") || self.channel.starts_with("http://");
        if !self.channel.is_empty() && !web_url {
            return Err("[update] channel must be an http(s):// URL of an index.json".into());
        }
        if !(2..=3600).contains(&self.gate_deadline_secs) {
            return Err("[update] gate_deadline_secs must be 2-3600".into());
        }
        if let Some(step) = &self.gate_fail
            && !percloud_update::gate::STEPS.contains(&step.as_str())
        {
            return Err(format!(
                "[update] gate_fail must name a gate step: {}",
                percloud_update::gate::STEPS.join(", ")
            ));
        }
        Ok(())
    }
}

/// `[remote]`: reaching the box from the internet (docs/remote-access.md). `enabled`,
/// `domain` and `allow_remote_admin` are the defaults until the owner changes them in Admin
/// (then `<data>/remote.json` wins).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    #[serde(default)]
    pub enabled: bool,
    /// External ports to map, in order of preference.
    #[serde(default = "default_external_ports")]
    pub external_ports: Vec<u16>,
    /// Lease of the mapping in seconds, renewed at half-life; 0 asks for a permanent one.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u32,
    /// The owner's domain for a publicly trusted certificate; empty for none.
    #[serde(default)]
    pub domain: String,
    #[serde(default = "default_acme_directory")]
    pub acme_directory: String,
    /// `mailto:` contact for the ACME account; empty for none.
    #[serde(default)]
    pub acme_contact: String,
    /// A PEM root to trust for the ACME server (test CAs); empty: the system's roots.
    #[serde(default)]
    pub acme_ca_file: String,
    /// Whether the claim and admin pages answer from outside the LAN.
    #[serde(default)]
    pub allow_remote_admin: bool,
    /// `http://ROUTER:PORT/rootDesc.xml`: ask this router only (tests); empty: SSDP search.
    #[serde(default)]
    pub igd_url: String,
}

/// `[appliance]`: present only in the image's config file (docs/image.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplianceConfig {
    /// The hardware watchdog to arm and feed while healthy, e.g. `/dev/watchdog`.
    #[serde(default)]
    pub watchdog: Option<PathBuf>,
    /// Where to print the address to open, e.g. `/dev/console`.
    #[serde(default)]
    pub console: Option<PathBuf>,
    /// NTP servers to set the clock from (`host` or `host:port`), asked in order; empty: none.
    #[serde(default = "default_ntp_servers")]
    pub ntp_servers: Vec<String>,
}

fn default_ntp_servers() -> Vec<String> {
    percloud_system::ntp::DEFAULT_SERVERS
        .map(str::to_owned)
        .to_vec()
}

impl ApplianceConfig {
    fn validate(&self) -> Result<(), String> {
        for server in &self.ntp_servers {
            server
                .parse::<percloud_system::ntp::Server>()
                .map_err(|e| format!("[appliance] ntp_servers: {e}"))?;
        }
        Ok(())
    }
}

/// `[discovery]`: the box's names and services on the LAN (mDNS / DNS-SD).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// `None`: on whenever a listener is beyond loopback.
    #[serde(default = "default_discovery_enabled")]
    pub enabled: Option<bool>,
    /// Host name announced as `<hostname>.local`; overrides the top-level `hostname`.
    #[serde(default)]
    pub hostname: Option<String>,
    /// DNS-SD instance name (what browsers list); default: the host name.
    #[serde(default)]
    pub instance_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    #[serde(default = "default_keep_versions")]
    pub keep_versions: u32,
    #[serde(default = "default_keep_days")]
    pub keep_days: u32,
    #[serde(default = "default_trash_days")]
    pub trash_days: u32,
}

fn default_data() -> PathBuf {
    PathBuf::from("percloud-data")
}
fn default_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 8080))]
}
fn default_hostname() -> String {
    "percloud".to_owned()
}
fn default_external_ports() -> Vec<u16> {
    vec![443, 8443]
}
fn default_lease_secs() -> u32 {
    3600
}
fn default_acme_directory() -> String {
    "https://acme-v02.api.letsencrypt.org/directory".to_owned()
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            enabled: false,
            external_ports: default_external_ports(),
            lease_secs: default_lease_secs(),
            domain: String::new(),
            acme_directory: default_acme_directory(),
            acme_contact: String::new(),
            acme_ca_file: String::new(),
            allow_remote_admin: false,
            igd_url: String::new(),
        }
    }
}

impl RemoteConfig {
    fn validate(&self) -> Result<(), String> {
        if self.external_ports.is_empty() || self.external_ports.contains(&0) {
            return Err("[remote] external_ports must list ports 1-65535".into());
        }
        if self.lease_secs != 0 && self.lease_secs < 10 {
            return Err("[remote] lease_secs must be 0 (permanent) or at least 10".into());
        }
        if !self.domain.is_empty() {
            validate_domain(&self.domain)?;
        }
        if !self.igd_url.is_empty() && !self.igd_url.starts_with("http://") {
            return Err("[remote] igd_url must be an http:// URL".into());
        }
        Ok(())
    }
}

/// A DNS name of two or more labels, each 1-63 letters, digits or hyphens.
pub fn validate_domain(domain: &str) -> Result<(), String> {
    let labels: Vec<&str> = domain.split('.').collect();
    let ok = domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| validate_hostname(l).is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "domain {domain:?} is not a DNS name such as box.example.org"
        ))
    }
}

fn default_discovery_enabled() -> Option<bool> {
    None
}
fn default_keep_versions() -> u32 {
    Retention::default().keep_versions
}
fn default_keep_days() -> u32 {
    Retention::default().keep_days
}
fn default_trash_days() -> u32 {
    Retention::default().trash_days
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            keep_versions: default_keep_versions(),
            keep_days: default_keep_days(),
            trash_days: default_trash_days(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data: default_data(),
            listen: default_listen(),
            tls_listen: Vec::new(),
            hostname: default_hostname(),
            retention: RetentionConfig::default(),
            discovery: DiscoveryConfig::default(),
            appliance: None,
            remote: RemoteConfig::default(),
            update: None,
        }
    }
}

impl From<RetentionConfig> for Retention {
    fn from(r: RetentionConfig) -> Self {
        Retention {
            keep_versions: r.keep_versions,
            keep_days: r.keep_days,
            trash_days: r.trash_days,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Loads `explicit` if given (it must exist), else the appliance file if present, else defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let path = match explicit {
            Some(path) => path.to_owned(),
            None if Path::new(APPLIANCE_CONFIG).exists() => PathBuf::from(APPLIANCE_CONFIG),
            None => return Ok(Config::default()),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text, &path)
    }

    fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        validate_hostname(&self.hostname)?;
        self.remote.validate()?;
        if let Some(update) = &self.update {
            update.validate()?;
        }
        if let Some(appliance) = &self.appliance {
            appliance.validate()?;
        }
        if let Some(name) = &self.discovery.hostname {
            validate_hostname(name)?;
        }
        if let Some(name) = &self.discovery.instance_name {
            percloud_discovery::validate_instance(name).map_err(|e| e.to_string())?;
        }
        if self.listen.is_empty() && self.tls_listen.is_empty() {
            return Err("no listener: set `listen` or `tls_listen`".into());
        }
        Ok(())
    }
}

/// A host name label; the rule lives with discovery, which announces it.
pub fn validate_hostname(name: &str) -> Result<(), String> {
    percloud_discovery::validate_hostname(name).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse("").expect("valid"), Config::default());
    }

    #[test]
    fn reads_appliance_settings() {
        let config = parse(
            "data = \"/data\"\nlisten = [\"0.0.0.0:80\"]\ntls_listen = [\"0.0.0.0:443\"]\nhostname = \"box\"\n[retention]\nkeep_versions = 3\n",
        )
        .expect("valid");
        assert_eq!(config.data, PathBuf::from("/data"));
        assert_eq!(config.tls_listen.len(), 1);
        assert_eq!(config.retention.keep_versions, 3);
        assert_eq!(config.retention.keep_days, 30);
    }

    #[test]
    fn reads_the_appliance_section() {
        let config =
            parse("[appliance]\nwatchdog = \"/dev/watchdog\"\nconsole = \"/dev/console\"\n")
                .expect("valid");
        let appliance = config.appliance.expect("section");
        assert_eq!(appliance.watchdog, Some(PathBuf::from("/dev/watchdog")));
        assert_eq!(appliance.console, Some(PathBuf::from("/dev/console")));
        assert!(parse("[appliance]\nwatchdg = \"x\"\n").is_err());
        assert_eq!(
            appliance.ntp_servers[0], "0.pool.ntp.org",
            "the NTP Pool by default"
        );
        let ntp = parse("[appliance]\nntp_servers = [\"192.0.2.1:1123\", \"time.example\"]\n")
            .expect("valid");
        assert_eq!(ntp.appliance.expect("section").ntp_servers.len(), 2);
        let err = parse("[appliance]\nntp_servers = [\"time.example:0\"]\n").expect_err("port 0");
        assert!(err.to_string().contains("ntp_servers"), "{err}");
        let image = include_str!("../../../rootfs-overlay/etc/percloud/config.toml");
        let image = parse(image).expect("the image's config file is valid");
        assert!(image.appliance.is_some());
        assert_eq!(image.data, PathBuf::from("/data"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = parse("dta = \"/data\"\n").expect_err("typo must fail");
        assert!(err.to_string().contains("unknown field"), "{err}");
        let err = parse("[retention]\nkeep = 1\n").expect_err("typo must fail");
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn reads_discovery_settings() {
        let config = parse(
            "[discovery]\nenabled = false\nhostname = \"attic\"\ninstance_name = \"Attic box\"\n",
        )
        .expect("valid");
        assert_eq!(config.discovery.enabled, Some(false));
        assert_eq!(config.discovery.hostname.as_deref(), Some("attic"));
        assert_eq!(config.discovery.instance_name.as_deref(), Some("Attic box"));
        assert_eq!(parse("").expect("valid").discovery.enabled, None);
        let err = parse("[discovery]\nenable = true\n").expect_err("typo must fail");
        assert!(err.to_string().contains("unknown field"), "{err}");
        assert!(parse("[discovery]\nhostname = \"a.b\"\n").is_err());
        assert!(parse("[discovery]\ninstance_name = \"\"\n").is_err());
    }

    #[test]
    fn remote_section() {
        let config = parse("[remote]\nenabled = true\nexternal_ports = [8443]\nlease_secs = 20\ndomain = \"box.example.org\"\n").expect("valid");
        assert!(config.remote.enabled);
        assert_eq!(config.remote.external_ports, [8443]);
        assert_eq!(config.remote.lease_secs, 20);
        assert_eq!(parse("").expect("valid").remote, RemoteConfig::default());
        assert_eq!(RemoteConfig::default().external_ports, [443, 8443]);
        assert!(parse("[remote]\nenable = true\n").is_err());
        assert!(parse("[remote]\nexternal_ports = []\n").is_err());
        assert!(parse("[remote]\nlease_secs = 5\n").is_err());
        assert!(parse("[remote]\ndomain = \"nodots\"\n").is_err());
        assert!(parse("[remote]\nigd_url = \"ftp://x\"\n").is_err());
    }

    #[test]
    fn update_section() {
        let config = parse("[update]\nslot_a = \"/dev/sda2\"\nslot_b = \"/dev/sda3\"\nboot = \"grub\"\ngrubenv = \"/boot/efi/EFI/BOOT/grubenv\"\nauto_install_hour = 3\n").expect("valid");
        let update = config.update.expect("section");
        assert_eq!(update.boot, BootBackend::Grub);
        assert_eq!(update.keyring, PathBuf::from("/etc/percloud/update-keys"));
        assert_eq!(update.gate_deadline_secs, 300);
        assert_eq!(parse("").expect("valid").update, None);
        let base = "[update]\nslot_a = \"/a\"\nslot_b = \"/b\"\n";
        assert!(
            parse(&format!("{base}boot = \"grub\"\n")).is_err(),
            "grubenv needed"
        );
        assert!(parse(&format!("{base}boot = \"uboot\"\n")).is_err());
        assert_eq!(update.reboot_command, ["reboot"]);
        assert!(
            parse(&format!(
                "{base}boot = \"fake\"\nfake_state = \"/f\"\nreboot_command = []\n"
            ))
            .is_err()
        );
        assert!(
            parse(&format!(
                "{base}boot = \"fake\"\nfake_state = \"/f\"\nauto_install_hour = 24\n"
            ))
            .is_err()
        );
        assert!(
            parse(&format!(
                "{base}boot = \"fake\"\nfake_state = \"/f\"\nchanel = \"x\"\n"
            ))
            .is_err()
        );
        assert!(
            parse(
                "[update]\nslot_a = \"/a\"\nslot_b = \"/a\"\nboot = \"fake\"\nfake_state = \"/f\"\n"
            )
            .is_err()
        );
        let fake = format!("{base}boot = \"fake\"\nfake_state = \"/f\"\n");
        let both = parse(&format!("{fake}boot_a = \"/ba\"\nboot_b = \"/bb\"\n")).expect("valid");
        assert_eq!(
            both.update.expect("section").boot_b,
            Some(PathBuf::from("/bb"))
        );
        assert!(
            parse(&format!("{fake}boot_a = \"/ba\"\n")).is_err(),
            "both or neither"
        );
        assert!(parse(&format!("{fake}boot_a = \"/b\"\nboot_b = \"/bb\"\n")).is_err());
        let tryboot = format!("{base}boot = \"tryboot\"\nautoboot = \"/p1/autoboot.txt\"\n");
        assert!(parse(&tryboot).is_err(), "tryboot needs boot partitions");
        assert!(parse(&format!("{tryboot}boot_a = \"/ba\"\nboot_b = \"/bb\"\n")).is_ok());
    }

    #[test]
    fn invalid_values_are_errors() {
        assert!(parse("hostname = \"-bad\"\n").is_err());
        assert!(parse("hostname = \"a.b\"\n").is_err());
        assert!(parse("listen = []\n").is_err());
        assert!(parse("listen = [\"nonsense\"]\n").is_err());
    }
}
