//! The bundle file (`.pcup`): its byte layout, making one (`pack`) and opening one on the
//! box (signature first, then the manifest, then the payload's digests).
//!
//! ```text
//! offset      size  field
//! 0           8     magic 89 'P' 'C' 'U' 'P' 0d 0a 1a
//! 8           4     M: manifest length, u32 little-endian, 2..=65536
//! 12          M     manifest, UTF-8 JSON (manifest.rs)
//! 12+M        8     key id: the first 8 bytes of BLAKE3 of the signer's public key
//! 20+M        64    Ed25519 signature over "percloud-update manifest\n" || manifest
//! 84+M        C1    first payload (the system slot): one zstd frame, C1 = its compressed_size
//! 84+M+C1     C2    the next payloads, in the manifest's order (the Pi's boot partitions)
//! 84+M+ΣC           end of file (trailing bytes are refused)
//! ```

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Refusal, UpdateError};
use crate::keys::{KEY_ID_LEN, KeyId, Keyring, SigningKey};
use crate::manifest::{MANIFEST_FORMAT, Manifest, Payload, Role};
use crate::slot::Slot;

pub const MAGIC: [u8; 8] = *b"\x89PCUP\r\n\x1a";
pub const MAX_MANIFEST: u32 = 64 * 1024;
/// Domain separation: a signature over a manifest cannot be replayed as anything else.
const SIGNATURE_CONTEXT: &[u8] = b"percloud-update manifest\n";
const SIGNATURE_LEN: usize = 64;
/// zstd level of `pack`: the payload is already xz squashfs, so a higher level buys little.
const ZSTD_LEVEL: i32 = 9;
const BLOCK: usize = 1 << 20;

/// What `pack` is asked to make.
#[derive(Debug, Clone)]
pub struct PackRequest {
    pub board: String,
    pub version: String,
    pub min_version: Option<String>,
    /// Unix seconds recorded as `created`.
    pub created: u64,
    /// The system slot image (squashfs).
    pub payload: PathBuf,
    /// The boot partition image made for each slot (the Pi), or none.
    pub boot: Option<BootImages>,
    pub out: PathBuf,
}

/// The two variants of a per-slot boot partition (they differ in the slot `cmdline.txt` names).
#[derive(Debug, Clone)]
pub struct BootImages {
    pub a: PathBuf,
    pub b: PathBuf,
}

/// Writes a signed bundle; the output appears whole (temporary file, then rename).
pub fn pack(key: &SigningKey, request: &PackRequest) -> Result<Manifest, UpdateError> {
    let out = &request.out;
    let temp = with_suffix(out, ".tmp");
    let mut sources = vec![(Role::System, None, request.payload.clone())];
    if let Some(boot) = &request.boot {
        sources.push((Role::Boot, Some(Slot::A), boot.a.clone()));
        sources.push((Role::Boot, Some(Slot::B), boot.b.clone()));
    }
    let compressed_paths: Vec<PathBuf> = (0..sources.len())
        .map(|i| with_suffix(out, &format!(".payload{i}.tmp")))
        .collect();
    let result = (|| {
        let mut payloads = Vec::new();
        for ((role, slot, source), compressed_path) in sources.iter().zip(&compressed_paths) {
            let (size, blake3) = compress(source, compressed_path)?;
            let (compressed_size, compressed_blake3) = hash_file(compressed_path)?;
            payloads.push(Payload {
                role: *role,
                slot: *slot,
                compression: "zstd".into(),
                size,
                blake3,
                compressed_size,
                compressed_blake3,
            });
        }
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            board: request.board.clone(),
            version: request.version.clone(),
            min_version: request.min_version.clone(),
            created: request.created,
            payloads,
        };
        // Check what we are about to sign exactly as a box will.
        let manifest_bytes = serde_json::to_vec(&manifest)
            .map_err(|e| UpdateError::Signing(format!("encoding the manifest: {e}")))?;
        Manifest::parse(&manifest_bytes)?;
        let length = u32::try_from(manifest_bytes.len())
            .ok()
            .filter(|l| *l <= MAX_MANIFEST)
            .ok_or_else(|| UpdateError::Signing("manifest too large".into()))?;
        let signature = key.sign(&signed_message(&manifest_bytes));
        let mut file = File::create(&temp).map_err(UpdateError::write(&temp))?;
        (|| {
            file.write_all(&MAGIC)?;
            file.write_all(&length.to_le_bytes())?;
            file.write_all(&manifest_bytes)?;
            file.write_all(&key.key_id().0)?;
            file.write_all(&signature)?;
            for compressed_path in &compressed_paths {
                std::io::copy(&mut File::open(compressed_path)?, &mut file)?;
            }
            file.sync_all()
        })()
        .map_err(UpdateError::write(&temp))?;
        std::fs::rename(&temp, out).map_err(UpdateError::write(out))?;
        Ok(manifest)
    })();
    for compressed_path in &compressed_paths {
        let _ = std::fs::remove_file(compressed_path);
    }
    let _ = std::fs::remove_file(&temp);
    result
}

/// Compresses `input` into `output`; returns the input's size and BLAKE3.
fn compress(input: &Path, output: &Path) -> Result<(u64, String), UpdateError> {
    let source = File::open(input).map_err(UpdateError::read(input))?;
    let mut hashing = HashingReader::new(BufReader::with_capacity(BLOCK, source));
    let file = File::create(output).map_err(UpdateError::write(output))?;
    let mut encoder = zstd::Encoder::new(file, ZSTD_LEVEL).map_err(UpdateError::write(output))?;
    // The frame records the content size, so a box can bound what it decompresses.
    encoder
        .set_pledged_src_size(Some(
            std::fs::metadata(input)
                .map_err(UpdateError::read(input))?
                .len(),
        ))
        .map_err(UpdateError::write(output))?;
    std::io::copy(&mut hashing, &mut encoder).map_err(|e| match e.kind() {
        std::io::ErrorKind::Other => UpdateError::write(output)(e),
        _ => UpdateError::read(input)(e),
    })?;
    encoder
        .finish()
        .and_then(|f| f.sync_all())
        .map_err(UpdateError::write(output))?;
    Ok((
        hashing.count,
        hashing.hasher.finalize().to_hex().to_string(),
    ))
}

fn hash_file(path: &Path) -> Result<(u64, String), UpdateError> {
    let file = File::open(path).map_err(UpdateError::read(path))?;
    let mut hashing = HashingReader::new(BufReader::with_capacity(BLOCK, file));
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(UpdateError::read(path))?;
    Ok((
        hashing.count,
        hashing.hasher.finalize().to_hex().to_string(),
    ))
}

fn signed_message(manifest: &[u8]) -> Vec<u8> {
    [SIGNATURE_CONTEXT, manifest].concat()
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A bundle's framing, read but not yet trusted.
#[derive(Debug, Clone)]
pub struct Framing {
    pub manifest_bytes: Vec<u8>,
    pub key_id: KeyId,
    pub signature: [u8; SIGNATURE_LEN],
    pub payload_offset: u64,
    pub file_len: u64,
}

/// Reads the framing of the bundle at `path` (no trust implied).
pub fn read_framing(path: &Path) -> Result<Framing, UpdateError> {
    let mut file = File::open(path).map_err(UpdateError::read(path))?;
    let file_len = file.metadata().map_err(UpdateError::read(path))?.len();
    let not = |why: &str| UpdateError::Refused(Refusal::NotABundle(why.to_owned()));
    let mut head = [0u8; 12];
    read_exact_or(&mut file, &mut head, path, || {
        not("shorter than its header")
    })?;
    if head[..8] != MAGIC {
        return Err(not("wrong magic bytes"));
    }
    let length = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if !(2..=MAX_MANIFEST).contains(&length) {
        return Err(not("manifest length out of range"));
    }
    let mut manifest_bytes = vec![0u8; length as usize];
    read_exact_or(&mut file, &mut manifest_bytes, path, || {
        not("truncated manifest")
    })?;
    let mut key_id = [0u8; KEY_ID_LEN];
    read_exact_or(&mut file, &mut key_id, path, || not("truncated key id"))?;
    let mut signature = [0u8; SIGNATURE_LEN];
    read_exact_or(&mut file, &mut signature, path, || {
        not("truncated signature")
    })?;
    Ok(Framing {
        manifest_bytes,
        key_id: KeyId(key_id),
        signature,
        payload_offset: 12 + u64::from(length) + (KEY_ID_LEN + SIGNATURE_LEN) as u64,
        file_len,
    })
}

fn read_exact_or(
    file: &mut File,
    buf: &mut [u8],
    path: &Path,
    short: impl FnOnce() -> UpdateError,
) -> Result<(), UpdateError> {
    match file.read_exact(buf) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(short()),
        Err(e) => Err(UpdateError::read(path)(e)),
    }
}

/// Reads a bundle's manifest without checking its signature: for building a channel index
/// on the build host, never for installing.
pub fn inspect(path: &Path) -> Result<(Manifest, KeyId), UpdateError> {
    let framing = read_framing(path)?;
    let manifest = Manifest::parse(&framing.manifest_bytes)?;
    check_length(&framing, &manifest)?;
    Ok((manifest, framing.key_id))
}

fn check_length(framing: &Framing, manifest: &Manifest) -> Result<(), Refusal> {
    let expected = manifest
        .payloads
        .iter()
        .try_fold(framing.payload_offset, |end, p| {
            end.checked_add(p.compressed_size)
        });
    if expected != Some(framing.file_len) {
        return Err(Refusal::Tampered(format!(
            "the file has {} bytes, the manifest accounts for {}",
            framing.file_len,
            expected.map_or_else(|| "too many".to_owned(), |n| n.to_string())
        )));
    }
    Ok(())
}

/// A bundle whose signature checked out against the keyring.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub key_id: KeyId,
    /// Where each payload of the manifest starts in the file.
    offsets: Vec<u64>,
}

impl VerifiedBundle {
    /// Checks the signature (unknown key and bad signature are refusals), then parses the
    /// manifest and checks the file's length against it.
    pub fn open(path: &Path, keyring: &Keyring) -> Result<VerifiedBundle, UpdateError> {
        let framing = read_framing(path)?;
        let key_id = framing.key_id.to_string();
        match keyring.verify(
            framing.key_id,
            &signed_message(&framing.manifest_bytes),
            &framing.signature,
        ) {
            None => return Err(Refusal::UnknownKey { key_id }.into()),
            Some(false) => return Err(Refusal::BadSignature { key_id }.into()),
            Some(true) => {}
        }
        let manifest = Manifest::parse(&framing.manifest_bytes)?;
        check_length(&framing, &manifest)?;
        let offsets = manifest
            .payloads
            .iter()
            .scan(framing.payload_offset, |at, p| {
                let start = *at;
                *at += p.compressed_size;
                Some(start)
            })
            .collect();
        Ok(VerifiedBundle {
            path: path.to_owned(),
            manifest,
            key_id: framing.key_id,
            offsets,
        })
    }

    /// Checks every payload ([`VerifiedBundle::verify_payload`]); `progress` gets the
    /// compressed bytes checked so far, across all payloads.
    pub fn verify_payloads(&self, progress: &mut dyn FnMut(u64)) -> Result<(), UpdateError> {
        let mut before = 0;
        for (index, payload) in self.manifest.payloads.iter().enumerate() {
            self.verify_payload(index, &mut |n| progress(before + n))?;
            before += payload.compressed_size;
        }
        Ok(())
    }

    /// Checks payload `index`'s compressed digest, then decompresses it once into nothing
    /// to check the image's size and digest: after this, writing it can only fail for
    /// reasons of the target itself. `progress` gets the bytes checked so far.
    pub fn verify_payload(
        &self,
        index: usize,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), UpdateError> {
        let payload = &self.manifest.payloads[index];
        let role = payload.role.as_str();
        let mut hashing = HashingReader::new(self.compressed(index)?);
        copy_with_progress(&mut hashing, &mut std::io::sink(), progress)
            .map_err(UpdateError::read(&self.path))?;
        if hashing.hasher.finalize().to_hex().as_str() != payload.compressed_blake3 {
            return Err(
                Refusal::Tampered(format!("compressed {role} payload digest differs")).into(),
            );
        }
        let mut hashing = HashingReader::new(self.payload_reader(index)?);
        let copied = copy_with_progress(&mut hashing, &mut std::io::sink(), &mut |_| {});
        match copied {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(
                    Refusal::Tampered(format!("{role} payload does not decompress: {e}")).into(),
                );
            }
            Err(e) => return Err(UpdateError::read(&self.path)(e)),
        }
        if hashing.count != payload.size {
            return Err(Refusal::Tampered(format!(
                "{role} payload has {} bytes, the manifest says {}",
                hashing.count, payload.size
            ))
            .into());
        }
        if hashing.hasher.finalize().to_hex().as_str() != payload.blake3 {
            return Err(Refusal::Tampered(format!("{role} payload digest differs")).into());
        }
        Ok(())
    }

    fn compressed(&self, index: usize) -> Result<std::io::Take<BufReader<File>>, UpdateError> {
        let mut file = File::open(&self.path).map_err(UpdateError::read(&self.path))?;
        file.seek(SeekFrom::Start(self.offsets[index]))
            .map_err(UpdateError::read(&self.path))?;
        Ok(BufReader::with_capacity(BLOCK, file)
            .take(self.manifest.payloads[index].compressed_size))
    }

    /// Payload `index`'s decompressed image, at most the manifest's size plus one byte (so
    /// a longer stream is noticed, not silently cut).
    pub fn payload_reader(&self, index: usize) -> Result<Box<dyn Read + Send>, UpdateError> {
        let decoder = zstd::Decoder::with_buffer(self.compressed(index)?)
            .map_err(UpdateError::read(&self.path))?;
        Ok(Box::new(
            decoder.take(self.manifest.payloads[index].size + 1),
        ))
    }
}

/// Copies in 1 MiB blocks, calling `progress` with the running total.
pub(crate) fn copy_with_progress(
    from: &mut dyn Read,
    to: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; BLOCK];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
        progress(total);
    }
}

/// Counts and hashes what passes through.
pub(crate) struct HashingReader<R> {
    inner: R,
    pub hasher: blake3::Hasher,
    pub count: u64,
}

impl<R> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: blake3::Hasher::new(),
            count: 0,
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Hex BLAKE3 of a whole file (the channel index lists bundles by it).
pub fn file_digest(path: &Path) -> Result<(u64, String), UpdateError> {
    hash_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate;

    fn bundle(dir: &Path) -> (PathBuf, Keyring) {
        bundle_with(dir, false)
    }

    /// A bundle of a made-up slot image, with the two boot images when `boot`.
    fn bundle_with(dir: &Path, boot: bool) -> (PathBuf, Keyring) {
        let key_path = dir.join("k.key");
        generate(&key_path).expect("keygen");
        let key = SigningKey::load(&key_path).expect("key");
        let mut keyring = Keyring::default();
        keyring.add_entries(&key.keyring_entry()).expect("entry");
        let payload = dir.join("slot.img");
        let content: Vec<u8> = (0..200_000u32).map(|i| (i * 7 / 13) as u8).collect();
        std::fs::write(&payload, content).expect("payload");
        let boot = boot.then(|| {
            let images = BootImages {
                a: dir.join("boot-a.vfat"),
                b: dir.join("boot-b.vfat"),
            };
            std::fs::write(&images.a, b"boot partition of slot A".repeat(5000)).expect("a");
            std::fs::write(&images.b, b"boot partition of slot B".repeat(5000)).expect("b");
            images
        });
        let out = dir.join("b.pcup");
        pack(
            &key,
            &PackRequest {
                board: "x86-64".into(),
                version: "1.0.0".into(),
                min_version: None,
                created: 0,
                payload,
                boot,
                out: out.clone(),
            },
        )
        .expect("pack");
        (out, keyring)
    }

    fn accepted(path: &Path, keyring: &Keyring) -> bool {
        VerifiedBundle::open(path, keyring).is_ok_and(|b| b.verify_payloads(&mut |_| {}).is_ok())
    }

    /// Every single-bit change anywhere in the header, and a sample across the payload, is
    /// refused; so is every truncation tried. None of it panics.
    #[test]
    fn any_altered_byte_or_length_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, keyring) = bundle_with(dir.path(), true);
        assert!(accepted(&path, &keyring));
        let original = std::fs::read(&path).expect("read");
        let framing = read_framing(&path).expect("framing");
        let header = framing.payload_offset as usize;
        let altered = dir.path().join("altered.pcup");
        let payload_sample = (header..original.len()).step_by(997);
        for at in (0..header).chain(payload_sample) {
            for bit in [0x01u8, 0x80] {
                let mut bytes = original.clone();
                bytes[at] ^= bit;
                std::fs::write(&altered, &bytes).expect("write");
                assert!(
                    !accepted(&altered, &keyring),
                    "bit {bit:#x} of byte {at} accepted"
                );
            }
        }
        for len in (0..original.len())
            .step_by(4099)
            .chain([original.len() - 1])
        {
            std::fs::write(&altered, &original[..len]).expect("write");
            assert!(
                !accepted(&altered, &keyring),
                "truncation to {len} accepted"
            );
        }
    }

    #[test]
    fn payload_bytes_survive_the_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, keyring) = bundle(dir.path());
        let verified = VerifiedBundle::open(&path, &keyring).expect("open");
        let mut out = Vec::new();
        verified
            .payload_reader(0)
            .expect("reader")
            .read_to_end(&mut out)
            .expect("read");
        assert_eq!(
            out,
            std::fs::read(dir.path().join("slot.img")).expect("payload")
        );
        let (manifest, key_id) = inspect(&path).expect("inspect");
        assert_eq!((manifest, key_id), (verified.manifest, verified.key_id));
    }

    #[test]
    fn three_payloads_survive_the_round_trip_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, keyring) = bundle_with(dir.path(), true);
        let verified = VerifiedBundle::open(&path, &keyring).expect("open");
        verified.verify_payloads(&mut |_| {}).expect("verified");
        let roles: Vec<_> = verified
            .manifest
            .payloads
            .iter()
            .map(|p| (p.role, p.slot))
            .collect();
        assert_eq!(
            roles,
            [
                (Role::System, None),
                (Role::Boot, Some(Slot::A)),
                (Role::Boot, Some(Slot::B))
            ]
        );
        for (index, file) in ["slot.img", "boot-a.vfat", "boot-b.vfat"]
            .iter()
            .enumerate()
        {
            let mut out = Vec::new();
            verified
                .payload_reader(index)
                .expect("reader")
                .read_to_end(&mut out)
                .expect("read");
            assert_eq!(
                out,
                std::fs::read(dir.path().join(file)).expect("file"),
                "{file}"
            );
        }
        assert_eq!(verified.manifest.boot_for(Slot::B).map(|(i, _)| i), Some(2));
    }
}
