//! The daemon over HTTPS: it makes its own CA on first start, its certificate is trusted by a
//! client that trusts that CA, and it keeps the same CA across restarts.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
    https: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percloud() -> Command {
    Command::new(env!("CARGO_BIN_EXE_percloud"))
}

fn add_user(data: &Path, name: &str, password: &str) {
    let mut child = percloud()
        .args(["user", "add", name, "--data"])
        .arg(data)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    assert!(child.wait().unwrap().success(), "user add failed");
}

fn start(data: &Path) -> Daemon {
    let mut child = percloud()
        .args(["serve", "--tls-listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("PERCLOUD_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("daemon did not start");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let port = url.rsplit(':').next().unwrap().to_owned();
    Daemon {
        child,
        https: format!("https://localhost:{port}"),
    }
}

fn client_trusting(data: &Path) -> reqwest::blocking::Client {
    let ca = std::fs::read(data.join("tls/ca.pem")).unwrap();
    reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn wait_healthy(client: &reqwest::blocking::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match client.get(format!("{base}/healthz")).send() {
            Ok(r) if r.status().is_success() => {
                assert_eq!(r.text().unwrap().trim(), "ok");
                return;
            }
            Ok(r) => panic!("healthz answered {}", r.status()),
            Err(e) if Instant::now() > deadline => panic!("healthz never answered: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn serves_dav_over_https_with_its_own_ca() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, "alice", "correct horse battery");
    let daemon = start(&data);
    let client = client_trusting(&data);
    wait_healthy(&client, &daemon.https);

    let url = format!("{}/dav/hello.txt", daemon.https);
    let put = client
        .put(&url)
        .basic_auth("alice", Some("correct horse battery"))
        .body("hello over TLS")
        .send()
        .unwrap();
    assert_eq!(put.status().as_u16(), 201);
    let got = client
        .get(&url)
        .basic_auth("alice", Some("correct horse battery"))
        .send()
        .unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.text().unwrap(), "hello over TLS");

    // A client that does not trust the box's CA refuses the connection.
    let stranger = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert!(
        stranger
            .get(format!("{}/healthz", daemon.https))
            .send()
            .is_err()
    );
}

#[test]
fn keeps_its_ca_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = start(&data);
    wait_healthy(&client_trusting(&data), &first.https);
    drop(first);
    let ca_before = std::fs::read(data.join("tls/ca.pem")).unwrap();
    let key_mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(data.join("tls/ca.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(key_mode, 0o600, "the CA key must be private");

    let second = start(&data);
    // The same CA still validates the (possibly reissued) server certificate.
    wait_healthy(&client_trusting(&data), &second.https);
    assert_eq!(std::fs::read(data.join("tls/ca.pem")).unwrap(), ca_before);
}
