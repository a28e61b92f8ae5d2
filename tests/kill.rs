//! Crash consistency: clients upload (new files and overwrites, and batches of new files by
//! the Nextcloud bulk upload) while the daemon is SIGKILLed at random moments. After every kill: fsck with no daemon is clean, and after a restart
//! every acknowledged upload reads back byte for byte; an overwritten file holds its last
//! acknowledged content or the write that was in flight at the kill (never a mix, never
//! truncated); fsck through the serving daemon is clean.
//!
//! The seed is printed; set `PERCLOUD_SEED` to replay a run's sizes and timings.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use percloud_system_tests::{
    Daemon, Dav, PASSWORD, add_user, encode_path, fsck_clean, pick, random_bytes, temp_dir,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CLIENTS: usize = 3;
/// Paths each client overwrites again and again (each path belongs to one client, so its
/// writes are ordered).
const OWNED_PER_CLIENT: usize = 2;

/// What a stored file must be: its BLAKE3 and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Content {
    hash: blake3::Hash,
    len: usize,
}

impl Content {
    fn of(bytes: &[u8]) -> Content {
        Content {
            hash: blake3::hash(bytes),
            len: bytes.len(),
        }
    }
}

impl std::fmt::Display for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes, blake3 {}",
            self.len,
            &self.hash.to_hex()[..16]
        )
    }
}

/// What one client did during one round.
#[derive(Debug, Default)]
struct ClientLog {
    /// New paths acknowledged with 201/204.
    acked: Vec<(String, Content)>,
    /// The write that got no answer (the kill), if any: `(path, content, is_overwrite)`.
    in_flight: Option<(String, Content, bool)>,
    /// The new files of a bulk upload that got no answer: each is absent or whole.
    in_flight_batch: Vec<(String, Content)>,
    /// The last acknowledged content of each owned path this round.
    overwritten: BTreeMap<String, Content>,
    /// Answers that are neither 201/204 nor a dropped connection.
    anomalies: Vec<String>,
}

fn owned_path(client: usize, i: usize) -> String {
    format!("shared/client {client} file {i}.bin")
}

fn random_len(rng: &mut StdRng) -> usize {
    match rng.gen_range(0..10) {
        0 => 0,
        1..=4 => rng.gen_range(1..64 << 10),
        5..=8 => rng.gen_range(64 << 10..1 << 20),
        _ => rng.gen_range(1 << 20..4 << 20),
    }
}

/// Uploads until the daemon dies (a request fails) or `stop` is set.
fn client(dav: Dav, round: usize, id: usize, seed: u64, stop: Arc<AtomicBool>) -> ClientLog {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = ClientLog::default();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        if rng.gen_bool(0.2) {
            let files: Vec<(String, Vec<u8>)> = (0..rng.gen_range(2..12))
                .map(|_| {
                    n += 1;
                    let len = rng.gen_range(0..64 << 10);
                    let path = format!("round {round:02}/client {id} file {n:04} é.bin");
                    (path, random_bytes(&mut rng, len))
                })
                .collect();
            match bulk_upload(&dav, &files) {
                Ok(Ok(())) => log.acked.extend(
                    files
                        .iter()
                        .map(|(path, bytes)| (path.clone(), Content::of(bytes))),
                ),
                Ok(Err(anomaly)) => log.anomalies.push(anomaly),
                Err(_) => {
                    log.in_flight_batch = files
                        .iter()
                        .map(|(path, bytes)| (path.clone(), Content::of(bytes)))
                        .collect();
                    break;
                }
            }
            continue;
        }
        let overwrite = rng.gen_bool(0.35);
        let path = if overwrite {
            owned_path(id, rng.gen_range(0..OWNED_PER_CLIENT))
        } else {
            n += 1;
            format!("round {round:02}/client {id} file {n:04} é.bin")
        };
        let len = random_len(&mut rng);
        let bytes = random_bytes(&mut rng, len);
        let content = Content::of(&bytes);
        match dav.put(&path, &bytes) {
            Ok(response) if matches!(response.status, 201 | 204) => {
                if overwrite {
                    log.overwritten.insert(path, content);
                } else {
                    log.acked.push((path, content));
                }
            }
            Ok(response) => log.anomalies.push(format!(
                "PUT {} ({len} bytes) while the daemon ran: {response}",
                encode_path(&path)
            )),
            Err(_) => {
                log.in_flight = Some((path, content, overwrite));
                break;
            }
        }
    }
    log
}

/// Sends `files` (new, in the user's root) as one Nextcloud bulk upload. `Err` when the
/// connection failed (the kill); `Ok(Err)` when the daemon answered but did not store them all.
fn bulk_upload(dav: &Dav, files: &[(String, Vec<u8>)]) -> std::io::Result<Result<(), String>> {
    const BOUNDARY: &str = "kill-test-boundary";
    let mut body = Vec::new();
    for (path, bytes) in files {
        let md5: String = md5_hex(bytes);
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Length: {}\r\nX-File-MD5: {md5}\r\nX-File-Mtime: 1700000000\r\nX-File-Path: /{path}\r\n\r\n",
                bytes.len()
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    let content_type = format!("multipart/related; boundary={BOUNDARY}");
    let response = dav.raw(
        "POST",
        "/remote.php/dav/bulk",
        &[("Content-Type", content_type.as_str())],
        &body,
    )?;
    let answer: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
    let stored = files
        .iter()
        .filter(|(path, _)| answer[format!("/{path}").as_str()]["error"] == false)
        .count();
    Ok(if response.status == 200 && stored == files.len() {
        Ok(())
    } else {
        Err(format!(
            "bulk upload of {} files while the daemon ran: {response}, {stored} stored",
            files.len()
        ))
    })
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the store must hold, across rounds.
#[derive(Debug, Default)]
struct Model {
    /// Acknowledged new files.
    files: BTreeMap<String, Content>,
    /// Owned paths: their current content (read back after the last restart).
    owned: BTreeMap<String, Content>,
}

/// Reads `path`; `None` for 404, panics on transport errors.
fn read(dav: &Dav, path: &str) -> Result<Option<Content>, String> {
    let response = dav
        .get(path)
        .map_err(|e| format!("GET {}: {e}", encode_path(path)))?;
    match response.status {
        200 => Ok(Some(Content::of(&response.body))),
        404 => Ok(None),
        _ => Err(format!("GET {}: {response}", encode_path(path))),
    }
}

/// Checks the restarted store against the model and this round's logs; updates the model.
fn verify(dav: &Dav, model: &mut Model, logs: Vec<ClientLog>, round: usize) -> Vec<String> {
    let mut failures = Vec::new();
    let mut owned_candidates: BTreeMap<String, Vec<Content>> = BTreeMap::new();
    // New files without an answer: each must be absent or whole.
    let mut batch_in_flight: Vec<(String, Content)> = Vec::new();
    for log in logs {
        failures.extend(
            log.anomalies
                .into_iter()
                .map(|a| format!("round {round}: {a}")),
        );
        model.files.extend(log.acked);
        for (path, content) in log.overwritten {
            model.owned.insert(path, content);
        }
        match log.in_flight {
            Some((path, content, true)) => owned_candidates.entry(path).or_default().push(content),
            Some((path, content, false)) => batch_in_flight.push((path, content)),
            None => {}
        }
        batch_in_flight.extend(log.in_flight_batch);
    }
    for (path, content) in batch_in_flight {
        match read(dav, &path) {
                Ok(None) => {}
                Ok(Some(found)) if found == content => {
                    model.files.insert(path, content);
                }
                Ok(Some(found)) => failures.push(format!(
                    "round {round}: {} (in flight at the kill) holds {found}; expected nothing or {content}",
                    encode_path(&path)
                )),
                Err(e) => failures.push(format!("round {round}: {e}")),
        }
    }
    for (path, expected) in &model.files {
        match read(dav, path) {
            Ok(Some(found)) if found == *expected => {}
            Ok(Some(found)) => failures.push(format!(
                "round {round}: acknowledged {} holds {found}; expected {expected}",
                encode_path(path)
            )),
            Ok(None) => failures.push(format!(
                "round {round}: acknowledged {} is gone (404); expected {expected}",
                encode_path(path)
            )),
            Err(e) => failures.push(format!("round {round}: {e}")),
        }
    }
    for (path, last) in model.owned.iter_mut() {
        let mut allowed = vec![*last];
        allowed.extend(owned_candidates.remove(path).unwrap_or_default());
        match read(dav, path) {
            Ok(Some(found)) if allowed.contains(&found) => *last = found,
            Ok(found) => failures.push(format!(
                "round {round}: overwritten {} holds {}; expected one of: {}",
                encode_path(path),
                found.map_or("nothing (404)".to_owned(), |f| f.to_string()),
                allowed
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" | ")
            )),
            Err(e) => failures.push(format!("round {round}: {e}")),
        }
    }
    failures
}

#[test]
fn acknowledged_uploads_survive_sigkill() {
    let rounds = pick(20, 5);
    let seed = std::env::var("PERCLOUD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("seed {seed} (set PERCLOUD_SEED to replay)");
    let mut rng = StdRng::seed_from_u64(seed);

    let dir = temp_dir("kill");
    let data = dir.path().join("data");
    add_user(&data, "crash", PASSWORD);
    let mut daemon = Daemon::start(&data);
    let dav = daemon.dav("crash", PASSWORD);
    dav.mkcol_ok("shared");
    let mut model = Model::default();
    for client in 0..CLIENTS {
        for i in 0..OWNED_PER_CLIENT {
            let len = random_len(&mut rng);
            let bytes = random_bytes(&mut rng, len);
            dav.put_ok(&owned_path(client, i), &bytes);
            model
                .owned
                .insert(owned_path(client, i), Content::of(&bytes));
        }
    }

    let (mut uploads, mut in_flight) = (0, 0);
    for round in 0..rounds {
        let started = Instant::now();
        let dav = daemon.dav("crash", PASSWORD);
        dav.mkcol_ok(&format!("round {round:02}"));
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| {
                let (dav, stop, seed) = (dav.clone(), stop.clone(), rng.r#gen::<u64>());
                std::thread::spawn(move || client(dav, round, id, seed, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.gen_range(200..2500)));
        daemon.kill();
        stop.store(true, Ordering::SeqCst);
        let logs: Vec<ClientLog> = clients
            .into_iter()
            .map(|c| c.join().expect("a client thread panicked"))
            .collect();
        let acked: usize = logs
            .iter()
            .map(|l| l.acked.len() + l.overwritten.len())
            .sum();
        let cut: usize = logs
            .iter()
            .filter(|l| l.in_flight.is_some() || !l.in_flight_batch.is_empty())
            .count();
        in_flight += cut;
        uploads += logs.iter().map(|l| l.acked.len()).sum::<usize>();

        fsck_clean(&data, &format!("after kill {round} (no daemon)"));
        daemon = Daemon::start(&data);
        let dav = daemon.dav("crash", PASSWORD);
        let failures = verify(&dav, &mut model, logs, round);
        assert!(
            failures.is_empty(),
            "seed {seed}: {} problems after kill {round}:\n{}\n{}",
            failures.len(),
            failures.join("\n"),
            daemon.log()
        );
        fsck_clean(&data, &format!("after kill {round} (daemon serving)"));
        println!(
            "round {round}: {acked} uploads acknowledged, {cut} cut by the kill, {} files verified, {:.1?}",
            model.files.len() + model.owned.len(),
            started.elapsed()
        );
    }
    assert!(
        uploads > rounds,
        "too few uploads were acknowledged ({uploads}) to test anything"
    );
    assert!(
        in_flight > 0,
        "no kill ever cut an upload short: nothing was tested"
    );
}
