//! The line on the box's console that tells a person what to open in a browser.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::SystemError;

/// The welcome text for `hostname` reachable at `addresses` with HTTPS on `https_port`.
pub fn banner(version: &str, hostname: &str, addresses: &[IpAddr], https_port: u16) -> String {
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let mut urls = vec![format!("https://{hostname}.local{port}/")];
    for ip in addresses {
        urls.push(match ip {
            IpAddr::V4(v4) => format!("https://{v4}{port}/"),
            IpAddr::V6(v6) => format!("https://[{v6}]{port}/"),
        });
    }
    let waiting = if addresses.is_empty() {
        "\n  (no network address yet: plug in Ethernet; this line repeats once one is up)"
    } else {
        ""
    };
    format!(
        "\npercloud {version} is ready. Open in a browser:\n  {}{waiting}\n",
        urls.join("\n  ")
    )
}

/// The box's addresses a person can reach: IPv4 first, loopback and link-local left out.
pub fn lan_addresses() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|iface| iface.ip())
        .filter(|ip| match ip {
            IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
            IpAddr::V6(_) => false,
        })
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// Appends `text` to the console device (or any file) at `path`.
pub fn write(path: &Path, text: &str) -> Result<(), SystemError> {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut console| console.write_all(text.as_bytes()))
        .map_err(|source| SystemError::Console {
            path: path.to_owned(),
            source,
        })
}

/// Prints the banner on `console` now and again whenever the addresses change, until
/// `shutdown`.
pub async fn announce(
    console: PathBuf,
    version: String,
    hostname: String,
    https_port: u16,
    shutdown: CancellationToken,
) {
    let mut shown: Option<Vec<IpAddr>> = None;
    loop {
        let now = lan_addresses();
        if shown.as_ref() != Some(&now) {
            let text = banner(&version, &hostname, &now, https_port);
            if let Err(error) = write(&console, &text) {
                tracing::warn!(%error, "console");
            }
            shown = Some(now);
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_lists_the_name_and_each_address() {
        let text = banner(
            "0.1.0",
            "percloud",
            &["10.0.2.15".parse().expect("ip")],
            443,
        );
        assert!(text.contains("percloud 0.1.0 is ready"), "{text}");
        assert!(text.contains("https://percloud.local/"), "{text}");
        assert!(text.contains("https://10.0.2.15/"), "{text}");
        assert!(!text.contains("no network"), "{text}");
    }

    #[test]
    fn banner_without_address_says_so_and_keeps_odd_ports() {
        let text = banner("0.1.0", "box", &[], 8443);
        assert!(text.contains("https://box.local:8443/"), "{text}");
        assert!(text.contains("no network address yet"), "{text}");
    }

    #[test]
    fn write_appends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("console");
        std::fs::write(&path, "a").expect("create");
        write(&path, "b").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "ab");
    }
}
