//! Every refusal leaves the slot and the bootloader untouched; a good bundle lands in the
//! inactive slot and arms a trial.

use std::path::{Path, PathBuf};

use semver::Version;

use super::*;
use crate::boot::fake::{FakeBoot, FakeState};
use crate::bundle::{BootImages, MAGIC, PackRequest, pack};
use crate::keys::{SigningKey, generate, public_path};

struct Bench {
    dir: tempfile::TempDir,
    key: SigningKey,
    keyring: Keyring,
    facts: BoxFacts,
    boot: FakeBoot,
    slots: SlotDevices,
    /// The Pi's boot partitions, on a bench made by [`Bench::pi`].
    boot_partitions: Option<SlotDevices>,
    states: StateDir,
    payload: Vec<u8>,
}

const OLD_SLOT: &[u8] = b"the old contents of slot b";
const OLD_BOOT_A: &[u8] = b"running kernel of slot a";
const OLD_BOOT_B: &[u8] = b"the old kernel of slot b";

/// The boot partition image a bundle carries for `slot`.
fn boot_image(slot: Slot) -> Vec<u8> {
    format!("FAT boot partition: cmdline.txt percloud.slot={slot} ")
        .repeat(40_000)
        .into_bytes()
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().expect("tempdir");
        let key_path = dir.path().join("dev.key");
        generate(&key_path).expect("keygen");
        let key = SigningKey::load(&key_path).expect("key");
        let mut keyring = Keyring::default();
        keyring
            .add_entries(&std::fs::read_to_string(public_path(&key_path)).expect("pub"))
            .expect("keyring");
        let slots = SlotDevices {
            a: dir.path().join("slot-a"),
            b: dir.path().join("slot-b"),
        };
        std::fs::write(&slots.a, b"running system").expect("a");
        std::fs::write(&slots.b, OLD_SLOT).expect("b");
        // Compressible and not: both paths of zstd.
        let mut payload: Vec<u8> = (0..2_500_000u32).map(|i| (i / 1000 % 256) as u8).collect();
        payload.extend((0..500_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        Bench {
            boot: FakeBoot {
                path: dir.path().join("fake-boot.json"),
            },
            states: StateDir::new(&dir.path().join("data")),
            facts: BoxFacts {
                board: "x86-64".into(),
                running: Version::new(0, 1, 0),
            },
            dir,
            key,
            keyring,
            slots,
            boot_partitions: None,
            payload,
        }
    }

    /// A Raspberry Pi: a boot partition per slot besides the system slots.
    fn pi() -> Bench {
        let mut bench = Bench::new();
        let boot = SlotDevices {
            a: bench.path("boot-a"),
            b: bench.path("boot-b"),
        };
        std::fs::write(&boot.a, OLD_BOOT_A).expect("boot a");
        std::fs::write(&boot.b, OLD_BOOT_B).expect("boot b");
        bench.boot_partitions = Some(boot);
        bench.facts.board = "rpi4-64".into();
        bench
    }

    /// A bundle carrying the boot partition of each slot too.
    fn pack_pi(&self, version: &str) -> PathBuf {
        let images = BootImages {
            a: self.path("boot-a.vfat"),
            b: self.path("boot-b.vfat"),
        };
        std::fs::write(&images.a, boot_image(Slot::A)).expect("a");
        std::fs::write(&images.b, boot_image(Slot::B)).expect("b");
        self.pack_with("rpi4-64", version, None, Some(images))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn pack(&self, board: &str, version: &str, min: Option<&str>) -> PathBuf {
        self.pack_with(board, version, min, None)
    }

    fn pack_with(
        &self,
        board: &str,
        version: &str,
        min: Option<&str>,
        boot: Option<BootImages>,
    ) -> PathBuf {
        let payload = self.path("system.squashfs");
        std::fs::write(&payload, &self.payload).expect("payload");
        let out = self.path(&format!("{board}-{version}.pcup"));
        pack(
            &self.key,
            &PackRequest {
                board: board.into(),
                version: version.into(),
                min_version: min.map(Into::into),
                created: 1,
                payload,
                boot,
                out: out.clone(),
            },
        )
        .expect("pack");
        out
    }

    fn installer(&self) -> Installer<'_> {
        Installer {
            keyring: &self.keyring,
            facts: &self.facts,
            boot: &self.boot,
            slots: &self.slots,
            boot_partitions: self.boot_partitions.as_ref(),
            states: &self.states,
            mounts: self.path("mounts"),
        }
    }

    fn install(&self, bundle: &Path, force: bool) -> Result<Pending, UpdateError> {
        self.installer().install(bundle, force, &mut |_, _, _| {})
    }

    /// The refusal, after checking that nothing was written.
    fn refused(&self, bundle: &Path, force: bool) -> Refusal {
        let error = self.install(bundle, force).expect_err("must be refused");
        assert_eq!(
            std::fs::read(&self.slots.b).expect("b"),
            OLD_SLOT,
            "slot untouched"
        );
        if let Some(boot) = &self.boot_partitions {
            assert_eq!(std::fs::read(&boot.a).expect("a"), OLD_BOOT_A);
            assert_eq!(std::fs::read(&boot.b).expect("b"), OLD_BOOT_B);
        }
        assert_eq!(
            self.boot.load().expect("fake"),
            FakeState::default(),
            "boot untouched"
        );
        let state = self.states.load().expect("state");
        assert_eq!(state.pending, None);
        let last = state.history.last().expect("history");
        assert_eq!(last.outcome, "refused", "{last:?}");
        error.refusal().cloned().expect("a refusal")
    }
}

#[test]
fn a_good_bundle_is_written_to_the_inactive_slot_and_armed() {
    let bench = Bench::new();
    let bundle = bench.pack("x86-64", "0.2.0", Some("0.1.0"));
    let mut steps = Vec::new();
    let pending = bench
        .installer()
        .install(&bundle, false, &mut |step, _, _| {
            if steps.last() != Some(&step) {
                steps.push(step);
            }
        })
        .expect("installed");
    assert_eq!(
        steps,
        [Step::Verify, Step::Write, Step::ReadBack, Step::Arm]
    );
    assert_eq!(std::fs::read(&bench.slots.b).expect("b"), bench.payload);
    assert_eq!(std::fs::read(&bench.slots.a).expect("a"), b"running system");
    let fake = bench.boot.load().expect("fake");
    assert_eq!((fake.default, fake.trial), (Slot::A, Some(Slot::B)));
    assert_eq!((pending.from_slot, pending.to_slot), (Slot::A, Slot::B));
    let state = bench.states.load().expect("state");
    assert_eq!(state.pending, Some(pending));
    assert_eq!(state.history.last().expect("entry").outcome, "installed");
}

#[test]
fn refuses_an_unknown_key() {
    let bench = Bench::new();
    let bundle = bench.pack("x86-64", "0.2.0", None);
    let other = bench.path("other.key");
    generate(&other).expect("keygen");
    let mut keyring = Keyring::default();
    keyring
        .add_entries(&std::fs::read_to_string(public_path(&other)).expect("pub"))
        .expect("keyring");
    let bench = Bench { keyring, ..bench };
    assert!(matches!(
        bench.refused(&bundle, false),
        Refusal::UnknownKey { .. }
    ));
    let empty = Bench {
        keyring: Keyring::default(),
        ..bench
    };
    assert!(matches!(
        empty.refused(&bundle, false),
        Refusal::UnknownKey { .. }
    ));
}

#[test]
fn refuses_a_bad_signature() {
    let bench = Bench::new();
    let bundle = bench.pack("x86-64", "0.2.0", None);
    let mut bytes = std::fs::read(&bundle).expect("read");
    // Change the manifest's version from 0.2.0 to 0.9.0 without re-signing.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let at = text.find("\"version\":\"0.2.0\"").expect("version") + 13;
    bytes[at] = b'9';
    std::fs::write(&bundle, &bytes).expect("write");
    assert!(matches!(
        bench.refused(&bundle, false),
        Refusal::BadSignature { .. }
    ));
    // A flipped signature byte.
    let bundle = bench.pack("x86-64", "0.2.0", None);
    let mut bytes = std::fs::read(&bundle).expect("read");
    let length = u32::from_le_bytes(bytes[8..12].try_into().expect("4")) as usize;
    bytes[12 + length + 8 + 10] ^= 1;
    std::fs::write(&bundle, &bytes).expect("write");
    assert!(matches!(
        bench.refused(&bundle, false),
        Refusal::BadSignature { .. }
    ));
}

#[test]
fn refuses_a_tampered_payload() {
    let bench = Bench::new();
    let bundle = bench.pack("x86-64", "0.2.0", None);
    let mut bytes = std::fs::read(&bundle).expect("read");
    let last = bytes.len() - 100;
    bytes[last] ^= 0x40;
    std::fs::write(&bundle, &bytes).expect("write");
    assert!(matches!(
        bench.refused(&bundle, false),
        Refusal::Tampered(_)
    ));
    // Cut short, or with bytes appended.
    std::fs::write(&bundle, &bytes[..bytes.len() - 1]).expect("write");
    assert!(matches!(
        bench.refused(&bundle, false),
        Refusal::Tampered(_)
    ));
    let mut longer = std::fs::read(bench.pack("x86-64", "0.2.0", None)).expect("read");
    longer.extend_from_slice(b"extra");
    std::fs::write(&bundle, &longer).expect("write");
    assert!(matches!(
        bench.refused(&bundle, false),
        Refusal::Tampered(_)
    ));
}

#[test]
fn refuses_other_boards_downgrades_and_versions_below_the_minimum() {
    let bench = Bench::new();
    let other_board = bench.pack("rpi4-64", "0.2.0", None);
    assert!(matches!(
        bench.refused(&other_board, true),
        Refusal::OtherBoard { .. }
    ));
    let old = bench.pack("x86-64", "0.0.9", None);
    assert!(matches!(
        bench.refused(&old, false),
        Refusal::Downgrade { .. }
    ));
    let same = bench.pack("x86-64", "0.1.0", None);
    assert!(matches!(
        bench.refused(&same, false),
        Refusal::Downgrade { .. }
    ));
    let needs_newer = bench.pack("x86-64", "2.0.0", Some("1.0.0"));
    assert!(matches!(
        bench.refused(&needs_newer, true),
        Refusal::BelowMinimum { .. }
    ));
    // The owner may force a downgrade.
    bench.install(&old, true).expect("forced downgrade");
    assert_eq!(std::fs::read(&bench.slots.b).expect("b"), bench.payload);
}

#[test]
fn refuses_junk_and_a_mounted_slot() {
    let bench = Bench::new();
    let junk = bench.path("junk.pcup");
    std::fs::write(&junk, b"hello, I am not a bundle").expect("write");
    assert!(matches!(
        bench.refused(&junk, false),
        Refusal::NotABundle(_)
    ));
    let mut framed = MAGIC.to_vec();
    framed.extend_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&junk, &framed).expect("write");
    assert!(matches!(
        bench.refused(&junk, false),
        Refusal::NotABundle(_)
    ));
    let bundle = bench.pack("x86-64", "0.2.0", None);
    std::fs::write(
        bench.path("mounts"),
        format!("{} / squashfs ro 0 0\n", bench.slots.b.display()),
    )
    .expect("mounts");
    assert_eq!(bench.refused(&bundle, false), Refusal::RunningSlot(Slot::B));
}

#[test]
fn a_pi_bundle_writes_the_inactive_slot_and_its_own_boot_partition() {
    let bench = Bench::pi();
    let bundle = bench.pack_pi("0.2.0");
    let mut steps = Vec::new();
    bench
        .installer()
        .install(&bundle, false, &mut |step, _, _| {
            if steps.last() != Some(&step) {
                steps.push(step);
            }
        })
        .expect("installed");
    assert_eq!(
        steps,
        [
            Step::Verify,
            Step::Write,
            Step::ReadBack,
            Step::Write,
            Step::ReadBack,
            Step::Arm
        ]
    );
    let boot = bench.boot_partitions.as_ref().expect("pi");
    assert_eq!(std::fs::read(&bench.slots.b).expect("b"), bench.payload);
    assert_eq!(std::fs::read(&boot.b).expect("boot b"), boot_image(Slot::B));
    assert_eq!(
        std::fs::read(&boot.a).expect("boot a"),
        OLD_BOOT_A,
        "running boot partition"
    );
    assert_eq!(std::fs::read(&bench.slots.a).expect("a"), b"running system");

    // Running B now: A and its boot partition get A's variant.
    let mut fake = bench.boot.load().expect("fake");
    fake.boot_next();
    std::fs::write(&bench.boot.path, serde_json::to_vec(&fake).expect("json")).expect("fake");
    let again = bench.pack_pi("0.3.0");
    bench.install(&again, false).expect("installed into a");
    assert_eq!(std::fs::read(&bench.slots.a).expect("a"), bench.payload);
    assert_eq!(std::fs::read(&boot.a).expect("boot a"), boot_image(Slot::A));
    assert_eq!(std::fs::read(&boot.b).expect("boot b"), boot_image(Slot::B));
}

#[test]
fn a_pi_refuses_a_tampered_boot_payload_and_bundles_without_boot_partitions() {
    let bench = Bench::pi();
    let bundle = bench.pack_pi("0.2.0");
    let mut bytes = std::fs::read(&bundle).expect("read");
    // The last payload is slot B's boot partition: flip a byte near its end.
    let last = bytes.len() - 50;
    bytes[last] ^= 0x04;
    std::fs::write(&bundle, &bytes).expect("write");
    match bench.refused(&bundle, false) {
        Refusal::Tampered(why) => assert!(why.contains("boot payload"), "{why}"),
        other => panic!("{other:?}"),
    }
    let no_boot = bench.pack("rpi4-64", "0.2.0", None);
    assert_eq!(bench.refused(&no_boot, false), Refusal::MissingBootPayload);
    let other_key = Bench {
        keyring: Keyring::default(),
        ..Bench::pi()
    };
    let signed = other_key.pack_pi("0.2.0");
    assert!(matches!(
        other_key.refused(&signed, false),
        Refusal::UnknownKey { .. }
    ));
    let downgrade = bench.pack_pi("0.0.1");
    assert!(matches!(
        bench.refused(&downgrade, false),
        Refusal::Downgrade { .. }
    ));
    // A mounted boot partition is never written either.
    let good = bench.pack_pi("0.2.0");
    let boot_b = &bench.boot_partitions.as_ref().expect("pi").b;
    std::fs::write(
        bench.path("mounts"),
        format!("{} /boot vfat rw 0 0\n", boot_b.display()),
    )
    .expect("mounts");
    assert_eq!(
        bench.refused(&good, false),
        Refusal::MountedBootPartition(Slot::B)
    );
}

#[test]
fn a_box_without_boot_partitions_refuses_a_bundle_with_them() {
    let mut bench = Bench::pi();
    let bundle = bench.pack_pi("0.2.0");
    bench.boot_partitions = None;
    assert_eq!(
        bench.refused(&bundle, false),
        Refusal::UnexpectedBootPayload
    );
}
