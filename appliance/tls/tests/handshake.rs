//! A real TLS handshake, in memory, between the server configuration and a client that
//! trusts only the box's CA, as an enrolled device would.

use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use percloud_tls::{ServerIdentity, Tls};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConnection};

fn client_config(ca_pem: &str) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.expect("ca pem")).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// Shuttles records between the two sides until both finish or one fails.
fn handshake(tls: &Tls, name: ServerName<'static>) -> Result<ClientConnection, rustls::Error> {
    let mut client = ClientConnection::new(client_config(tls.ca_pem()), name)?;
    let mut server = ServerConnection::new(tls.server_config())?;
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
