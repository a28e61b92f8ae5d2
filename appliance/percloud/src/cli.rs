//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// percloud: your own cloud for photos, videos and documents.
#[derive(Debug, Parser)]
#[command(name = "percloud", version, about, propagate_version = true)]
pub struct Cli {
    /// Data folder (store, keys, config state). Default: the config file's `data`, else ./percloud-data
    #[arg(long, global = true, env = "PERCLOUD_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// TOML configuration file. Default: /etc/percloud/config.toml when it exists
    #[arg(long, global = true, env = "PERCLOUD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: serve files over HTTP(S) and WebDAV
    Serve(ServeArgs),
    /// Manage accounts
    #[command(subcommand)]
    User(UserCommand),
    /// Check every chunk, hash and reference of the store
    Fsck {
        /// Quarantine what is damaged (what is sound is never touched)
        #[arg(long)]
        repair: bool,
    },
    /// Expire old versions and trash, then reclaim unreferenced space
    Gc,
    /// System updates: install signed bundles into the other slot (docs/update.md)
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Internal: the daemon's thumbnail helper. Reads an image from stdin, writes a JPEG
    /// thumbnail to stdout, under tight resource limits
    #[command(hide = true)]
    Thumbnail {
        /// Longest side of the thumbnail, in pixels
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
        size: u32,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Plain HTTP listener (full service on loopback, redirect to HTTPS elsewhere); repeatable
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Vec<SocketAddr>,

    /// HTTPS listener; repeatable
    #[arg(long, value_name = "ADDR:PORT")]
    pub tls_listen: Vec<SocketAddr>,

    /// Host name announced and put in the certificate (as NAME.local)
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// Do not announce the box on the LAN (mDNS / DNS-SD) nor list devices nearby
    #[arg(long)]
    pub no_discovery: bool,
}

#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    /// Build host: make a signing key (PKCS#8, 0600) and its keyring entry `<FILE>.pub`
    Keygen {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Build host: make a signed bundle of a slot image
    #[command(disable_version_flag = true)]
    Pack {
        /// Private key made by `keygen`
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Board id the image is for (x86-64, rpi4-64)
        #[arg(long)]
        board: String,
        /// Version of the system in the image (semver)
        #[arg(long)]
        version: String,
        /// Oldest version the bundle may be installed over
        #[arg(long, value_name = "VERSION")]
        min_version: Option<String>,
        /// The slot image (squashfs)
        #[arg(long, value_name = "FILE")]
        payload: PathBuf,
        /// The Pi: the boot partition image (FAT) made for slot a, and for slot b; give both
        #[arg(long, value_name = "a=FILE|b=FILE")]
        boot_payload: Vec<String>,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Build host: write a channel's index of bundles (URLs relative to the index)
    Channel {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(required = true, value_name = "BUNDLE")]
        bundles: Vec<PathBuf>,
    },
    /// Ask the channel whether a newer system exists
    Check,
    /// Install a bundle from a file or URL into the other slot, then reboot into it once
    Install {
        #[arg(value_name = "FILE|URL")]
        source: String,
        /// Allow the same or an older version
        #[arg(long)]
        force: bool,
    },
    /// What runs, what is being installed, and the update history
    Status,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account (the password is read from stdin when it is not a terminal)
    Add {
        name: String,
        /// Storage quota, e.g. 500M, 20G, 1T; unlimited when absent
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        quota: Option<u64>,
    },
    /// List accounts with their usage
    List,
    /// Change an account's password (read like `add`)
    Passwd { name: String },
    /// Set or clear (`none`) an account's quota
    Quota {
        name: String,
        #[arg(value_name = "SIZE|none", value_parser = parse_quota)]
        quota: Quota,
    },
    /// Delete an account and all its files
    Remove { name: String },
}

/// A quota argument: a size or `none`.
#[derive(Debug, Clone, Copy)]
pub struct Quota(pub Option<u64>);

fn parse_quota(text: &str) -> Result<Quota, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(Quota(None));
    }
    parse_size(text).map(|bytes| Quota(Some(bytes)))
}

/// Parses `1234`, `500K`, `20M`, `3G`, `1T` (binary units).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 500M or 20G"))?;
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("unknown unit in {text:?}: use K, M, G or T")),
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("20GiB"), Ok(20 << 30));
        assert_eq!(parse_size("1t"), Ok(1 << 40));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
