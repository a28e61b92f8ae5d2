//! A real TLS handshake, in memory, between the server configuration and a client that
//! trusts only the box's CA, as an enrolled device would.

use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use percloud_tls::{AeadPreference, ServerIdentity, Tls};
use rustls::pki_types::ServerName;
use rustls::{CipherSuite, ClientConfig, ClientConnection, RootCertStore, ServerConnection};

fn client_config(ca_pem: &str) -> Arc<ClientConfig> {
    client_config_with(
        ca_pem,
        rustls::crypto::ring::default_provider(),
        rustls::DEFAULT_VERSIONS,
    )
}

/// A client trusting `ca_pem` with `provider`'s suites in its order (ring's lists AES-GCM
/// first, as clients with AES hardware do) and `versions`.
fn client_config_with(
    ca_pem: &str,
    provider: rustls::crypto::CryptoProvider,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.expect("ca pem")).expect("add root");
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

fn handshake(tls: &Tls, name: ServerName<'static>) -> Result<ClientConnection, rustls::Error> {
    handshake_between(client_config(tls.ca_pem()), tls.server_config(), name)
}

/// Shuttles records between the two sides until both finish or one fails.
fn handshake_between(
    client: Arc<ClientConfig>,
    server: Arc<rustls::ServerConfig>,
    name: ServerName<'static>,
) -> Result<ClientConnection, rustls::Error> {
    let mut client = ClientConnection::new(client, name)?;
    let mut server = ServerConnection::new(server)?;
    for _ in 0..20 {
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(client);
        }
        transfer_client_to_server(&mut client, &mut server)?;
        transfer_server_to_client(&mut server, &mut client)?;
    }
    panic!("handshake did not finish");
}

fn transfer_client_to_server(
    client: &mut ClientConnection,
    server: &mut ServerConnection,
) -> Result<(), rustls::Error> {
    let mut buf = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut buf).expect("write to vec");
    }
    let mut reader = Cursor::new(buf);
    while (reader.position() as usize) < reader.get_ref().len() {
        server.read_tls(&mut reader).expect("read from vec");
        server.process_new_packets()?;
    }
    Ok(())
}

fn transfer_server_to_client(
    server: &mut ServerConnection,
    client: &mut ClientConnection,
) -> Result<(), rustls::Error> {
    let mut buf = Vec::new();
    while server.wants_write() {
        server.write_tls(&mut buf).expect("write to vec");
    }
    let mut reader = Cursor::new(buf);
    while (reader.position() as usize) < reader.get_ref().len() {
        client.read_tls(&mut reader).expect("read from vec");
        client.process_new_packets()?;
    }
    Ok(())
}

fn box_tls() -> (tempfile::TempDir, Tls) {
    let data = tempfile::tempdir().expect("tempdir");
    let mut identity = ServerIdentity::local_default("percloud");
    identity
        .ips
        .push(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)));
    let tls = Tls::load_or_create(data.path(), &identity).expect("create");
    (data, tls)
}

#[test]
fn handshake_succeeds_for_covered_names_and_negotiates_h2() {
    let (_data, tls) = box_tls();
    let client = handshake(&tls, ServerName::try_from("percloud.local").expect("name"))
        .expect("handshake for percloud.local");
    assert_eq!(client.alpn_protocol(), Some(&b"h2"[..]));

    for ip in [
        IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    ] {
        handshake(&tls, ServerName::IpAddress(ip.into())).expect("handshake for address");
    }
}

#[test]
fn handshake_fails_for_name_not_in_certificate() {
    let (_data, tls) = box_tls();
    let err = handshake(&tls, ServerName::try_from("example.com").expect("name"))
        .expect_err("name not covered");
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "unexpected error: {err}"
    );
}

#[test]
fn handshake_succeeds_after_reload() {
    let data = tempfile::tempdir().expect("tempdir");
    let identity = ServerIdentity::local_default("percloud");
    Tls::load_or_create(data.path(), &identity).expect("create");
    let reloaded = Tls::load_or_create(data.path(), &identity).expect("reload");
    handshake(
        &reloaded,
        ServerName::try_from("percloud.local").expect("name"),
    )
    .expect("handshake after reload");

    // And after a reissue signed with the CA rebuilt from its key.
    let mut wider = identity.clone();
    wider.names.push("cloud.home.arpa".into());
    let reissued = Tls::load_or_create(data.path(), &wider).expect("reissue");
    handshake(
        &reissued,
        ServerName::try_from("cloud.home.arpa").expect("name"),
    )
    .expect("handshake after reissue");
}

#[test]
fn handshake_fails_for_client_trusting_another_ca() {
    let (_data, tls) = box_tls();
    let (_other_data, other) = box_tls();
    let mut client = ClientConnection::new(
        client_config(other.ca_pem()),
        ServerName::try_from("percloud.local").expect("name"),
    )
    .expect("client");
    let mut server = ServerConnection::new(tls.server_config()).expect("server");
    transfer_client_to_server(&mut client, &mut server).expect("client hello");
    let err = transfer_server_to_client(&mut server, &mut client).expect_err("unknown issuer");
    assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "{err}");
}

#[test]
fn a_box_without_aes_instructions_negotiates_chacha20_whatever_the_client_prefers() {
    let (_data, tls) = box_tls();
    let ring = rustls::crypto::ring::default_provider;
    let aes_only = || {
        let mut provider = ring();
        provider.cipher_suites.retain(|s| {
            !matches!(
                s.suite(),
                CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
                    | CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                    | CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
            )
        });
        provider
    };
    let tls12: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    let cases = [
        (
            AeadPreference::ClientOrder,
            ring(),
            rustls::DEFAULT_VERSIONS,
            CipherSuite::TLS13_AES_256_GCM_SHA384,
        ),
        (
            AeadPreference::ChaCha20,
            ring(),
            rustls::DEFAULT_VERSIONS,
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        ),
        (
            AeadPreference::ChaCha20,
            ring(),
            tls12,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        // A client without ChaCha20 still gets in, with AES-GCM.
        (
            AeadPreference::ChaCha20,
            aes_only(),
            rustls::DEFAULT_VERSIONS,
            CipherSuite::TLS13_AES_256_GCM_SHA384,
        ),
    ];
    for (preference, provider, versions, expected) in cases {
        let client = client_config_with(tls.ca_pem(), provider, versions);
        let server = tls.server_config_for(preference).expect("server config");
        let name = ServerName::try_from("percloud.local").expect("name");
        let connection = handshake_between(client, server, name).expect("handshake");
        let suite = connection.negotiated_cipher_suite().map(|s| s.suite());
        assert_eq!(suite, Some(expected), "{preference:?}");
    }

    // The listener's own configuration is the one for this CPU.
    let expected = match AeadPreference::for_this_cpu() {
        AeadPreference::ClientOrder => CipherSuite::TLS13_AES_256_GCM_SHA384,
        AeadPreference::ChaCha20 => CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    };
    let connection =
        handshake(&tls, ServerName::try_from("percloud.local").expect("name")).expect("handshake");
    assert_eq!(
        connection.negotiated_cipher_suite().map(|s| s.suite()),
        Some(expected)
    );
}
