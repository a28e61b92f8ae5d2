//! The web pages of percloud, embedded in the binary: the app shell (`index.html`, which
//! shows the claim page, the sign-in page, *My cloud*, *Admin* and the settings), the public
//! share page (`share.html`), and their scripts, stylesheet and icon.
//!
//! The pages are plain HTML, CSS and JavaScript modules, with no build step and nothing
//! fetched from the internet; they talk to the daemon only through the JSON API of
//! `docs/api.md`. This crate owns the bytes and their content types and nothing else: it
//! must never do I/O, know about HTTP routing, sessions or storage. The web crate serves
//! [`asset`] at `/assets/{name}`, `index.html` at the app's routes and `share.html` at
//! `/s/{token}`.

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The file's content.
    pub bytes: &'static [u8],
    /// Its `Content-Type`, with a charset for text.
    pub content_type: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

macro_rules! assets {
    ($($name:literal => $type:expr),* $(,)?) => {
        /// Every embedded file, by name.
        const ASSETS: &[(&str, Asset)] = &[
            $(($name, Asset { bytes: include_bytes!(concat!("../assets/", $name)), content_type: $type }),)*
        ];
    };
}

assets! {
    "index.html" => HTML,
    "share.html" => HTML,
    "app.css" => CSS,
    "icon.svg" => SVG,
    "app.js" => JS,
    "api.js" => JS,
    "ui.js" => JS,
    "tus.js" => JS,
    "uploads.js" => JS,
    "files.js" => JS,
    "gallery.js" => JS,
    "shares.js" => JS,
    "admin.js" => JS,
    "network.js" => JS,
    "remote.js" => JS,
    "updates.js" => JS,
    "settings.js" => JS,
    "devices.js" => JS,
    "share.js" => JS,
}

/// The embedded file called `name` (`"app.js"`, not `"/assets/app.js"`), if there is one.
pub fn asset(name: &str) -> Option<Asset> {
    ASSETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, asset)| *asset)
}

/// The names of every embedded file.
pub fn names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names a page or script refers to: `/assets/NAME` and module imports `'./NAME'`.
    fn references(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        for (marker, quote_end) in [
            ("/assets/", &['"', '\'', ')', '`'][..]),
            ("from './", &['\''][..]),
        ] {
            for (i, _) in text.match_indices(marker) {
                let rest = &text[i + marker.len()..];
                let end = rest.find(quote_end).unwrap_or(rest.len());
                found.push(rest[..end].to_owned());
            }
        }
        found
    }

    #[test]
    fn every_referenced_asset_exists() {
        let mut checked = 0;
        for (name, file) in ASSETS {
            let text = std::str::from_utf8(file.bytes).expect("assets are UTF-8 text");
            for reference in references(text) {
                assert!(
                    asset(&reference).is_some(),
                    "{name} refers to {reference}, which is not embedded"
                );
                checked += 1;
            }
        }
        assert!(checked > 10, "only {checked} references found");
    }

    #[test]
    fn every_file_in_the_folder_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        for entry in std::fs::read_dir(&dir).expect("reading assets/") {
            let name = entry.expect("entry").file_name();
            let name = name.to_str().expect("UTF-8 name");
            assert!(
                asset(name).is_some(),
                "assets/{name} is not in the assets! list"
            );
        }
    }

    #[test]
    fn entry_points_and_types() {
        for (name, prefix) in [
            ("index.html", "text/html"),
            ("share.html", "text/html"),
            ("app.js", "text/javascript"),
            ("share.js", "text/javascript"),
            ("app.css", "text/css"),
        ] {
            let asset = asset(name).expect(name);
            assert!(asset.content_type.starts_with(prefix), "{name}");
            assert!(!asset.bytes.is_empty(), "{name}");
        }
        assert!(asset("../Cargo.toml").is_none());
        assert!(asset("").is_none());
    }

    #[test]
    fn pages_stay_small() {
        let total: usize = ASSETS.iter().map(|(_, a)| a.bytes.len()).sum();
        assert!(total < 300 * 1024, "assets weigh {total} bytes");
    }
}
