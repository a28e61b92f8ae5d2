//! Creating, reloading and reissuing the CA and server certificate on disk.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use percloud_tls::{ServerIdentity, Tls, TlsError, TlsPaths};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn identity() -> ServerIdentity {
    ServerIdentity::local_default("percloud")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[test]
fn first_start_creates_all_files_with_key_permissions() {
    let data = tempfile::tempdir().expect("tempdir");
    let tls = Tls::load_or_create(data.path(), &identity()).expect("create");
    let paths = TlsPaths::new(data.path());
    assert_eq!(tls.paths(), &paths);
    for file in [paths.ca_cert(), paths.server_cert()] {
        assert_eq!(mode(file), 0o644, "{}", file.display());
    }
    for file in [paths.ca_key(), paths.server_key()] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(paths.dir()), 0o700);
    assert!(tls.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(
        fs::read_to_string(paths.ca_cert()).expect("read"),
        tls.ca_pem()
    );

    let fingerprint = tls.ca_fingerprint_sha256();
    assert_eq!(fingerprint.len(), 32 * 3 - 1);
    assert!(fingerprint.split(':').all(|pair| pair.len() == 2));
    assert_ne!(fingerprint, tls.server_fingerprint_sha256());

    let alpn = &tls.server_config().alpn_protocols;
    assert_eq!(
        alpn,
        &[b"h2".to_vec(), b"http/1.1".to_vec(), b"acme-tls/1".to_vec()]
    );
}

#[test]
fn reload_keeps_ca_and_server_certificate() {
    let data = tempfile::tempdir().expect("tempdir");
    let first = Tls::load_or_create(data.path(), &identity()).expect("create");
    let second = Tls::load_or_create(data.path(), &identity()).expect("reload");
    assert_eq!(
        first.ca_fingerprint_sha256(),
        second.ca_fingerprint_sha256()
    );
    assert_eq!(
        first.server_fingerprint_sha256(),
        second.server_fingerprint_sha256()
    );
    assert_eq!(first.ca_pem(), second.ca_pem());
}

#[test]
fn changed_identity_reissues_server_but_keeps_ca() {
    let data = tempfile::tempdir().expect("tempdir");
    let first = Tls::load_or_create(data.path(), &identity()).expect("create");

    let mut wider = identity();
    wider.ips.push(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)));
    let second = Tls::load_or_create(data.path(), &wider).expect("reissue");
    assert_eq!(
        first.ca_fingerprint_sha256(),
        second.ca_fingerprint_sha256()
    );
    assert_ne!(
        first.server_fingerprint_sha256(),
        second.server_fingerprint_sha256()
    );

    // A subset of the covered names needs no new certificate.
    let third = Tls::load_or_create(data.path(), &identity()).expect("subset");
    assert_eq!(
        second.server_fingerprint_sha256(),
        third.server_fingerprint_sha256()
    );
}

#[test]
fn server_certificate_renewed_thirty_days_before_expiry() {
    let data = tempfile::tempdir().expect("tempdir");
    let start = SystemTime::now();
    let first = Tls::load_or_create_at(data.path(), &identity(), start).expect("create");

    let later = start + 300 * DAY;
    let kept = Tls::load_or_create_at(data.path(), &identity(), later).expect("reload");
    assert_eq!(
        first.server_fingerprint_sha256(),
        kept.server_fingerprint_sha256()
    );

    let near_expiry = start + 380 * DAY;
    let renewed = Tls::load_or_create_at(data.path(), &identity(), near_expiry).expect("renew");
    assert_ne!(
        first.server_fingerprint_sha256(),
        renewed.server_fingerprint_sha256()
    );
    assert_eq!(
        first.ca_fingerprint_sha256(),
        renewed.ca_fingerprint_sha256()
    );
}

#[test]
fn mismatched_or_corrupt_server_files_are_replaced() {
    let data = tempfile::tempdir().expect("tempdir");
    let paths = TlsPaths::new(data.path());
    let first = Tls::load_or_create(data.path(), &identity()).expect("create");

    // A key from another box: the pair no longer matches.
    let other = tempfile::tempdir().expect("tempdir");
    Tls::load_or_create(other.path(), &identity()).expect("other box");
    let other_key = fs::read(TlsPaths::new(other.path()).server_key()).expect("read");
    fs::write(paths.server_key(), other_key).expect("write");
    let second = Tls::load_or_create(data.path(), &identity()).expect("mismatch");
    assert_ne!(
        first.server_fingerprint_sha256(),
        second.server_fingerprint_sha256()
    );

    fs::write(paths.server_cert(), "garbage").expect("write");
    let third = Tls::load_or_create(data.path(), &identity()).expect("corrupt");
    assert_ne!(
        second.server_fingerprint_sha256(),
        third.server_fingerprint_sha256()
    );
    assert_eq!(first.ca_fingerprint_sha256(), third.ca_fingerprint_sha256());
}

#[test]
fn missing_ca_certificate_is_rebuilt_from_key() {
    let data = tempfile::tempdir().expect("tempdir");
    let paths = TlsPaths::new(data.path());
    let first = Tls::load_or_create(data.path(), &identity()).expect("create");
    let old_ca = first.ca_pem().to_owned();
    fs::remove_file(paths.ca_cert()).expect("remove");

    let second = Tls::load_or_create(data.path(), &identity()).expect("rebuild");
    assert!(paths.ca_cert().exists());
    // The old server certificate still chains to the rebuilt CA (same name and key).
    assert_eq!(
        first.server_fingerprint_sha256(),
        second.server_fingerprint_sha256()
    );
    assert_ne!(old_ca, second.ca_pem());
}

#[test]
fn missing_ca_key_is_an_error_not_a_new_ca() {
    let data = tempfile::tempdir().expect("tempdir");
    let paths = TlsPaths::new(data.path());
    Tls::load_or_create(data.path(), &identity()).expect("create");
    fs::remove_file(paths.ca_key()).expect("remove");
    let err = Tls::load_or_create(data.path(), &identity()).expect_err("must refuse");
    assert!(matches!(err, TlsError::CaKeyMissing { .. }), "{err}");
    assert!(!paths.ca_key().exists());
}

#[test]
fn ca_key_from_another_box_is_rejected() {
    let data = tempfile::tempdir().expect("tempdir");
    let other = tempfile::tempdir().expect("tempdir");
    Tls::load_or_create(data.path(), &identity()).expect("create");
    Tls::load_or_create(other.path(), &identity()).expect("other");
    let paths = TlsPaths::new(data.path());
    fs::copy(TlsPaths::new(other.path()).ca_key(), paths.ca_key()).expect("copy");
    let err = Tls::load_or_create(data.path(), &identity()).expect_err("mismatch");
    assert!(matches!(err, TlsError::CaKeyMismatch { .. }), "{err}");
}

#[test]
fn loose_key_permissions_are_tightened() {
    let data = tempfile::tempdir().expect("tempdir");
    let paths = TlsPaths::new(data.path());
    Tls::load_or_create(data.path(), &identity()).expect("create");
    fs::set_permissions(paths.ca_key(), fs::Permissions::from_mode(0o644)).expect("chmod");
    Tls::load_or_create(data.path(), &identity()).expect("reload");
    assert_eq!(mode(paths.ca_key()), 0o600);
}

#[test]
fn invalid_identity_is_rejected_before_touching_disk() {
    let data = tempfile::tempdir().expect("tempdir");
    let bad = ServerIdentity {
        names: vec!["not a name".into()],
        ips: vec![],
    };
    let err = Tls::load_or_create(data.path(), &bad).expect_err("invalid");
    assert!(matches!(err, TlsError::InvalidName { .. }), "{err}");
    assert!(!data.path().join("tls").exists());
}
