//! A channel: a static folder of bundles with `index.json` listing them. Any static web
//! server can host it; bundle URLs in the index are relative to the index.

use std::path::{Component, Path};

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::bundle;
use crate::error::UpdateError;
use crate::manifest::BoxFacts;

pub const INDEX_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub format: u32,
    pub bundles: Vec<Entry>,
}

/// One bundle of the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub board: String,
    pub version: String,
    #[serde(default)]
    pub min_version: Option<String>,
    /// Relative to the index's URL.
    pub url: String,
    /// Bytes of the bundle file.
    pub size: u64,
    /// BLAKE3 of the bundle file, hex.
    pub blake3: String,
    pub key_id: String,
}

/// Builds the index of `bundles`, which must lie in the index's folder or below it.
pub fn build(index_path: &Path, bundles: &[&Path]) -> Result<Index, UpdateError> {
    let base = index_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::fs::canonicalize(base).map_err(UpdateError::read(base))?;
    let mut entries = Vec::new();
    for path in bundles {
        let (manifest, key_id) = bundle::inspect(path)?;
        let (size, blake3) = bundle::file_digest(path)?;
        let full = std::fs::canonicalize(path).map_err(UpdateError::read(*path))?;
        let relative = full.strip_prefix(&base).map_err(|_| UpdateError::Channel {
            url: index_path.display().to_string(),
            reason: format!("{} is not in the index's folder", path.display()),
        })?;
        let url = relative
            .components()
            .map(|c| match c {
                Component::Normal(name) => Ok(name.to_string_lossy().into_owned()),
                _ => Err(UpdateError::Channel {
                    url: index_path.display().to_string(),
                    reason: format!("unusable path {}", relative.display()),
                }),
            })
            .collect::<Result<Vec<_>, _>>()?
            .join("/");
        entries.push(Entry {
            board: manifest.board,
            version: manifest.version,
            min_version: manifest.min_version,
            url,
            size,
            blake3,
            key_id: key_id.to_string(),
        });
    }
    entries.sort_by(|a, b| {
        (a.board.as_str(), Version::parse(&a.version).ok())
            .cmp(&(b.board.as_str(), Version::parse(&b.version).ok()))
    });
    Ok(Index {
        format: INDEX_FORMAT,
        bundles: entries,
    })
}

impl Index {
    pub fn parse(url: &str, bytes: &[u8]) -> Result<Index, UpdateError> {
        let index: Index = serde_json::from_slice(bytes).map_err(|e| UpdateError::Channel {
            url: url.to_owned(),
            reason: format!("index is not valid JSON: {e}"),
        })?;
        if index.format != INDEX_FORMAT {
            return Err(UpdateError::Channel {
                url: url.to_owned(),
                reason: format!("index format {} is not understood", index.format),
            });
        }
        Ok(index)
    }

    /// The newest bundle for this box that is newer than what runs and may be installed
    /// over it. (The bundle's own manifest is checked again after download: the index is
    /// not signed.)
    pub fn best_for(&self, facts: &BoxFacts) -> Option<&Entry> {
        self.bundles
            .iter()
            .filter(|e| e.board == facts.board)
            .filter_map(|e| Some((Version::parse(&e.version).ok()?, e)))
            .filter(|(v, _)| *v > facts.running)
            .filter(|(_, e)| {
                e.min_version
                    .as_deref()
                    .is_none_or(|m| Version::parse(m).is_ok_and(|m| m <= facts.running))
            })
            .max_by(|(a, _), (b, _)| a.cmp(b))
            .map(|(_, e)| e)
    }
}

/// The absolute URL of an entry's `url`, relative to the index's URL.
pub fn resolve(index_url: &str, relative: &str) -> Result<String, UpdateError> {
    let base = url::Url::parse(index_url).map_err(|e| UpdateError::Channel {
        url: index_url.to_owned(),
        reason: e.to_string(),
    })?;
    base.join(relative)
        .map(String::from)
        .map_err(|e| UpdateError::Channel {
            url: index_url.to_owned(),
            reason: format!("bundle URL {relative:?}: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(board: &str, version: &str, min: Option<&str>) -> Entry {
        Entry {
            board: board.into(),
            version: version.into(),
            min_version: min.map(Into::into),
            url: format!("percloud-{board}-{version}.pcup"),
            size: 1,
            blake3: String::new(),
            key_id: String::new(),
        }
    }

    #[test]
    fn picks_the_newest_installable_bundle_for_the_board() {
        let index = Index {
            format: 1,
            bundles: vec![
                entry("x86-64", "0.1.0", None),
                entry("x86-64", "0.3.0", Some("0.2.0")),
                entry("x86-64", "0.2.0", None),
                entry("rpi4-64", "0.9.0", None),
            ],
        };
        let facts = |v: &str| BoxFacts {
            board: "x86-64".into(),
            running: Version::parse(v).expect("semver"),
        };
        assert_eq!(
            index.best_for(&facts("0.1.0")).map(|e| e.version.as_str()),
            Some("0.2.0")
        );
        assert_eq!(
            index.best_for(&facts("0.2.0")).map(|e| e.version.as_str()),
            Some("0.3.0")
        );
        assert_eq!(index.best_for(&facts("0.3.0")), None);
    }

    #[test]
    fn resolves_relative_urls() {
        assert_eq!(
            resolve("https://example.org/ch/stable/index.json", "b/x.pcup").expect("url"),
            "https://example.org/ch/stable/b/x.pcup"
        );
        assert!(Index::parse("u", b"{\"format\":9,\"bundles\":[]}").is_err());
    }
}
