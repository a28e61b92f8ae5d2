//! The signed description of a bundle, and the checks of a bundle against the box.

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::error::Refusal;
use crate::slot::Slot;

/// The manifest format this code writes and reads. Format 1 (one payload, the system slot)
/// never shipped in a release and is refused as too old (`docs/update.md`).
pub const MANIFEST_FORMAT: u32 = 2;

/// What the bundle's signature covers (JSON inside the bundle, `docs/update.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// The board id the slot image is for (`x86-64`, `rpi4-64`).
    pub board: String,
    /// The version of the system in the payload (semver).
    pub version: String,
    /// The oldest running version this bundle may be installed over.
    #[serde(default)]
    pub min_version: Option<String>,
    /// Unix seconds the bundle was made (`SOURCE_DATE_EPOCH` when set).
    pub created: u64,
    /// In the order they follow the signature: one `system` payload, then either no `boot`
    /// payload or one for each slot.
    pub payloads: Vec<Payload>,
}

/// What a payload is written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The squashfs system slot (`[update] slot_a` / `slot_b`).
    System,
    /// The Raspberry Pi's per-slot FAT boot partition (`[update] boot_a` / `boot_b`).
    Boot,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Boot => "boot",
        }
    }
}

/// One image in the bundle and how it is stored there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    pub role: Role,
    /// A `boot` payload is made for one slot (its `cmdline.txt` names that slot's system
    /// partition) and is written only to that slot's boot partition; `None` for `system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<Slot>,
    /// Always `zstd`.
    pub compression: String,
    /// Bytes of the slot image once decompressed.
    pub size: u64,
    /// BLAKE3 of the slot image, hex.
    pub blake3: String,
    /// Bytes of the compressed payload in the bundle.
    pub compressed_size: u64,
    /// BLAKE3 of the compressed payload, hex.
    pub compressed_blake3: String,
}

/// What the box is: the facts a bundle is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxFacts {
    pub board: String,
    pub running: Version,
}

impl Manifest {
    /// Parses manifest bytes (already verified): the format first, so a newer format is
    /// refused as such rather than as unknown fields.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, Refusal> {
        #[derive(Deserialize)]
        struct Format {
            format: u32,
        }
        let format: Format = serde_json::from_slice(bytes)
            .map_err(|e| Refusal::BadManifest(format!("no format number: {e}")))?;
        if format.format > MANIFEST_FORMAT {
            return Err(Refusal::UnsupportedFormat(format.format));
        }
        if format.format < MANIFEST_FORMAT {
            return Err(Refusal::RetiredFormat(format.format));
        }
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| Refusal::BadManifest(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), Refusal> {
        let bad = |why: String| Err(Refusal::BadManifest(why));
        if self.board.is_empty() {
            return bad("empty board".into());
        }
        self.semver()?;
        self.min_semver()?;
        for payload in &self.payloads {
            if payload.compression != "zstd" {
                return bad(format!("unknown compression {:?}", payload.compression));
            }
            for digest in [&payload.blake3, &payload.compressed_blake3] {
                if crate::keys::hex_decode(digest).is_none_or(|d| d.len() != 32) {
                    return bad(format!("{digest:?} is not a BLAKE3 digest"));
                }
            }
            match (payload.role, payload.slot) {
                (Role::System, Some(_)) => return bad("a system payload names no slot".into()),
                (Role::Boot, None) => return bad("a boot payload names its slot".into()),
                _ => {}
            }
        }
        let kinds: Vec<(Role, Option<Slot>)> =
            self.payloads.iter().map(|p| (p.role, p.slot)).collect();
        let system = [(Role::System, None)];
        let with_boot = [
            (Role::System, None),
            (Role::Boot, Some(Slot::A)),
            (Role::Boot, Some(Slot::B)),
        ];
        if kinds != system && kinds != with_boot {
            return bad(format!(
                "payloads must be one system payload, then none or a boot payload for slot a and \
                 one for slot b; this one has {kinds:?}"
            ));
        }
        Ok(())
    }

    /// The system slot's payload: the first, in every manifest [`Manifest::parse`] accepts.
    pub fn system(&self) -> &Payload {
        &self.payloads[0]
    }

    /// The boot payload made for `slot`, when the bundle carries boot payloads.
    pub fn boot_for(&self, slot: Slot) -> Option<(usize, &Payload)> {
        self.payloads
            .iter()
            .enumerate()
            .find(|(_, p)| p.role == Role::Boot && p.slot == Some(slot))
    }

    /// Whether the bundle carries the per-slot boot partitions.
    pub fn has_boot(&self) -> bool {
        self.payloads.iter().any(|p| p.role == Role::Boot)
    }

    pub fn semver(&self) -> Result<Version, Refusal> {
        Version::parse(&self.version)
            .map_err(|e| Refusal::BadManifest(format!("version {:?}: {e}", self.version)))
    }

    pub fn min_semver(&self) -> Result<Option<Version>, Refusal> {
        self.min_version
            .as_deref()
            .map(|v| {
                Version::parse(v)
                    .map_err(|e| Refusal::BadManifest(format!("min_version {v:?}: {e}")))
            })
            .transpose()
    }

    /// May this bundle go on this box? Board, minimum version, and no downgrade (nor the
    /// same version again) unless `force`.
    pub fn check(&self, facts: &BoxFacts, force: bool) -> Result<(), Refusal> {
        if self.board != facts.board {
            return Err(Refusal::OtherBoard {
                bundle: self.board.clone(),
                this: facts.board.clone(),
            });
        }
        if let Some(min) = self.min_semver()?
            && facts.running < min
        {
            return Err(Refusal::BelowMinimum {
                bundle: self.version.clone(),
                min: min.to_string(),
                running: facts.running.to_string(),
            });
        }
        if !force && self.semver()? <= facts.running {
            return Err(Refusal::Downgrade {
                bundle: self.version.clone(),
                running: facts.running.to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(board: &str, version: &str, min: Option<&str>) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            board: board.into(),
            version: version.into(),
            min_version: min.map(Into::into),
            created: 0,
            payloads: vec![payload(Role::System, None)],
        }
    }

    fn payload(role: Role, slot: Option<Slot>) -> Payload {
        Payload {
            role,
            slot,
            compression: "zstd".into(),
            size: 1,
            blake3: "00".repeat(32),
            compressed_size: 1,
            compressed_blake3: "00".repeat(32),
        }
    }

    fn facts(running: &str) -> BoxFacts {
        BoxFacts {
            board: "x86-64".into(),
            running: Version::parse(running).expect("semver"),
        }
    }

    #[test]
    fn checks_board_versions_and_force() {
        let m = manifest("x86-64", "0.2.0", Some("0.1.0"));
        assert_eq!(m.check(&facts("0.1.0"), false), Ok(()));
        assert!(matches!(
            manifest("rpi4-64", "0.2.0", None).check(&facts("0.1.0"), true),
            Err(Refusal::OtherBoard { .. })
        ));
        assert!(matches!(
            m.check(&facts("0.3.0"), false),
            Err(Refusal::Downgrade { .. })
        ));
        assert!(matches!(
            m.check(&facts("0.2.0"), false),
            Err(Refusal::Downgrade { .. })
        ));
        assert_eq!(m.check(&facts("0.3.0"), true), Ok(()));
        let m = manifest("x86-64", "2.0.0", Some("1.5.0"));
        assert!(matches!(
            m.check(&facts("1.4.9"), true),
            Err(Refusal::BelowMinimum { .. })
        ));
    }

    #[test]
    fn parse_refuses_newer_formats_and_junk() {
        let mut m = manifest("x86-64", "0.2.0", None);
        let bytes = serde_json::to_vec(&m).expect("json");
        assert_eq!(Manifest::parse(&bytes), Ok(m.clone()));
        m.format = 3;
        let bytes = serde_json::to_vec(&m).expect("json");
        assert_eq!(Manifest::parse(&bytes), Err(Refusal::UnsupportedFormat(3)));
        m.format = 1;
        let bytes = serde_json::to_vec(&m).expect("json");
        assert_eq!(Manifest::parse(&bytes), Err(Refusal::RetiredFormat(1)));
        assert!(Manifest::parse(b"{\"format\":2}").is_err());
        let mut m = manifest("x86-64", "two", None);
        assert!(Manifest::parse(&serde_json::to_vec(&m).expect("json")).is_err());
        m.version = "1.0.0".into();
        m.payloads[0].blake3 = "zz".into();
        assert!(Manifest::parse(&serde_json::to_vec(&m).expect("json")).is_err());
    }

    #[test]
    fn payloads_are_one_system_then_a_boot_for_each_slot_or_none() {
        let mut m = manifest("rpi4-64", "0.2.0", None);
        let parses = |m: &Manifest| Manifest::parse(&serde_json::to_vec(m).expect("json"));
        let boot = |slot| payload(Role::Boot, Some(slot));
        m.payloads = vec![payload(Role::System, None), boot(Slot::A), boot(Slot::B)];
        let parsed = parses(&m).expect("system and both boots");
        assert!(parsed.has_boot());
        assert_eq!(parsed.boot_for(Slot::B).map(|(i, _)| i), Some(2));
        for wrong in [
            vec![],
            vec![boot(Slot::A)],
            vec![payload(Role::System, None), boot(Slot::A)],
            vec![payload(Role::System, None), boot(Slot::B), boot(Slot::A)],
            vec![payload(Role::System, None), payload(Role::System, None)],
            vec![payload(Role::System, Some(Slot::A))],
            vec![payload(Role::System, None), boot(Slot::A), boot(Slot::A)],
        ] {
            m.payloads = wrong;
            assert!(
                matches!(parses(&m), Err(Refusal::BadManifest(_))),
                "{:?}",
                m.payloads
            );
        }
    }
}
