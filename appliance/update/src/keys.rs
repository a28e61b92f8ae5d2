//! Ed25519 signing keys (ring) and the box's keyring.
//!
//! A private key file is PKCS#8 v2 in PEM (`-----BEGIN PRIVATE KEY-----`), mode 0600; DER is
//! read too. A keyring entry is one line `<key-id> <base64 public key>`; the key id is the
//! first 8 bytes of BLAKE3 of the 32-byte public key, in hex. A keyring is a folder of
//! `*.pub` files, so adding and retiring keys (rotation) is adding and removing files.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

use crate::error::UpdateError;

/// Raw bytes of a key id.
pub const KEY_ID_LEN: usize = 8;
const PEM_LABEL: &str = "PRIVATE KEY";

/// A key id: the first [`KEY_ID_LEN`] bytes of BLAKE3 of the public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl KeyId {
    pub fn of(public_key: &[u8]) -> KeyId {
        let hash = blake3::hash(public_key);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&hash.as_bytes()[..KEY_ID_LEN]);
        KeyId(id)
    }

    pub fn parse(text: &str) -> Option<KeyId> {
        let bytes = hex_decode(text)?;
        Some(KeyId(bytes.try_into().ok()?))
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

/// A private key that signs bundles.
#[derive(Debug)]
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// Reads a key written by [`generate`] (PEM) or its DER form.
    pub fn load(path: &Path) -> Result<SigningKey, UpdateError> {
        let bytes = std::fs::read(path).map_err(UpdateError::read(path))?;
        let bad = |reason: String| UpdateError::KeyFile {
            path: path.to_owned(),
            reason,
        };
        let der = if bytes.starts_with(b"-----BEGIN") {
            match rustls_pemfile::read_one_from_slice(&bytes) {
                Ok(Some((rustls_pemfile::Item::Pkcs8Key(key), _))) => {
                    key.secret_pkcs8_der().to_vec()
                }
                Ok(_) => return Err(bad("no PKCS#8 PRIVATE KEY block".into())),
                Err(e) => return Err(bad(format!("bad PEM: {e:?}"))),
            }
        } else {
            bytes
        };
        let pair = Ed25519KeyPair::from_pkcs8(&der)
            .map_err(|e| bad(format!("not an Ed25519 PKCS#8 v2 key: {e}")))?;
        Ok(SigningKey { pair })
    }

    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    pub fn key_id(&self) -> KeyId {
        KeyId::of(self.public_key())
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut signature = [0u8; 64];
        signature.copy_from_slice(self.pair.sign(message).as_ref());
        signature
    }

    /// The keyring line for this key.
    pub fn keyring_entry(&self) -> String {
        format!("{} {}\n", self.key_id(), STANDARD.encode(self.public_key()))
    }
}

/// Writes a new private key to `out` (0600, refusing to overwrite) and its keyring entry to
/// `<out>.pub`. Returns the key id.
pub fn generate(out: &Path) -> Result<KeyId, UpdateError> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|e| UpdateError::Signing(format!("generating a key: {e}")))?;
    let key = SigningKey {
        pair: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|e| UpdateError::Signing(format!("reading the new key: {e}")))?,
    };
    let pem = format!(
        "-----BEGIN {PEM_LABEL}-----\n{}\n-----END {PEM_LABEL}-----\n",
        STANDARD
            .encode(pkcs8.as_ref())
            .as_bytes()
            .chunks(64)
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(UpdateError::write(out))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(UpdateError::write(out))?;
    let public = public_path(out);
    std::fs::write(&public, key.keyring_entry()).map_err(UpdateError::write(&public))?;
    Ok(key.key_id())
}

/// `<key-file>.pub`.
pub fn public_path(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// The public keys a box trusts.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<(KeyId, Vec<u8>)>,
}

impl Keyring {
    /// Reads every `*.pub` file of `dir`. A missing folder is an empty keyring (every bundle
    /// is then refused as signed by an unknown key); a malformed line is an error.
    pub fn load(dir: &Path) -> Result<Keyring, UpdateError> {
        let mut keyring = Keyring::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(keyring),
            Err(e) => return Err(UpdateError::read(dir)(e)),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pub"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(UpdateError::read(&file))?;
            keyring
                .add_entries(&text)
                .map_err(|reason| UpdateError::Keyring {
                    path: file.clone(),
                    reason,
                })?;
        }
        Ok(keyring)
    }

    /// Adds the keys of keyring lines (`#` comments and blank lines ignored).
    pub fn add_entries(&mut self, text: &str) -> Result<(), String> {
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}", number + 1);
            let (id, key) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad("expected `<key-id> <base64 public key>`"))?;
            let id = KeyId::parse(id).ok_or_else(|| bad("key id is not 16 hex digits"))?;
            let key = STANDARD
                .decode(key.trim())
                .map_err(|_| bad("public key is not base64"))?;
            if key.len() != 32 {
                return Err(bad("an Ed25519 public key has 32 bytes"));
            }
            if KeyId::of(&key) != id {
                return Err(bad("key id does not match the public key"));
            }
            if !self.keys.iter().any(|(k, _)| *k == id) {
                self.keys.push((id, key));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|(id, _)| *id).collect()
    }

    /// Verifies `signature` over `message` with key `id`: `None` when the key is unknown,
    /// `Some(valid)` otherwise.
    pub fn verify(&self, id: KeyId, message: &[u8], signature: &[u8]) -> Option<bool> {
        let (_, key) = self.keys.iter().find(|(k, _)| *k == id)?;
        Some(
            UnparsedPublicKey::new(&ED25519, key)
                .verify(message, signature)
                .is_ok(),
        )
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn generated_key_signs_and_its_entry_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dev.key");
        let id = generate(&path).expect("keygen");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(generate(&path).is_err(), "never overwrites a key");
        let key = SigningKey::load(&path).expect("load");
        assert_eq!(key.key_id(), id);
        let entry = std::fs::read_to_string(public_path(&path)).expect("pub");
        assert!(entry.starts_with(&id.to_string()), "{entry}");
        let keyring = Keyring::load(dir.path()).expect("keyring");
        assert_eq!(keyring.ids(), vec![id]);
        let signature = key.sign(b"hello");
        assert_eq!(keyring.verify(id, b"hello", &signature), Some(true));
        assert_eq!(keyring.verify(id, b"hellO", &signature), Some(false));
        assert_eq!(keyring.verify(KeyId([0; 8]), b"hello", &signature), None);
    }

    #[test]
    fn malformed_keyring_lines_are_errors() {
        let mut keyring = Keyring::default();
        assert!(keyring.add_entries("# comment\n\n").is_ok());
        assert!(keyring.add_entries("nothex AAAA\n").is_err());
        let key = STANDARD.encode([7u8; 32]);
        assert!(
            keyring
                .add_entries(&format!("0011223344556677 {key}\n"))
                .is_err(),
            "id must match the key"
        );
        let id = KeyId::of(&[7u8; 32]);
        assert!(keyring.add_entries(&format!("{id} {key}\n")).is_ok());
        assert!(keyring.add_entries(&format!("{id} AAAA\n")).is_err());
        assert!(
            Keyring::load(Path::new("/nonexistent/keys"))
                .expect("empty")
                .is_empty()
        );
    }
}
