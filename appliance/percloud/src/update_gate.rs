//! The `update` worker: the health gate after every start (a trial boot is committed only
//! when it passes; a failed trial reboots into the previous slot; a normal boot gets its
//! slot's tries back), then the optional automatic install at the configured hour.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percloud_store::Store;
use percloud_update::gate::{self, STEPS};
use percloud_web::RecentLogs;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

use crate::update_worker::Updates;

/// Each failing step is tried again after this long, until the deadline.
const RETRY: Duration = Duration::from_secs(1);
/// One probe of the HTTPS listener.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the automatic install looks at the clock.
const AUTO_TICK: Duration = Duration::from_secs(60);

/// What the gate's checks look at.
#[derive(Debug, Clone)]
pub struct GateInputs {
    pub data: PathBuf,
    pub store: Store,
    /// The HTTPS listener (loopback is always served in full), else the plain one.
    pub https: Option<SocketAddr>,
    pub plain: Option<SocketAddr>,
    /// The box's CA, which the HTTPS probe trusts.
    pub ca_pem: String,
    pub discovery: Option<percloud_discovery::Discovery>,
    pub recent_logs: RecentLogs,
    /// Testing only: this step fails (`[update] gate_fail`).
    pub fail_step: Option<String>,
}

pub async fn run(updates: Updates, inputs: GateInputs, shutdown: CancellationToken) {
    let deadline = Duration::from_secs(updates.config().gate_deadline_secs);
    let kind = updates.kind().clone();
    let states = updates.states().clone();
    let checks = async {
        gate::run_gate(
            &STEPS,
            |step| {
                let inputs = &inputs;
                let kind = &kind;
                let states = &states;
                async move {
                    // Keep the trial's progress and last log lines on /data as it goes.
                    let logs = inputs.recent_logs.lines();
                    if let Err(error) = gate::record_progress(states, kind, step, false, &logs) {
                        tracing::warn!(%error, "recording the trial's progress failed");
                    }
                    check(inputs, step).await
                }
            },
            deadline,
            RETRY,
            &mut |step, passed| {
                if passed {
                    tracing::debug!(step, "health gate step passed");
                    let _ = gate::record_progress(&states, &kind, step, true, &[]);
                }
            },
        )
        .await
    };
    let outcome = tokio::select! {
        () = shutdown.cancelled() => return,
        outcome = checks => outcome,
    };
    let running = updates.running();
    match outcome {
        Ok(()) => match gate::passed(&states, updates.boot(), &kind, running) {
            Ok(Some(entry)) => tracing::info!(message = %entry.message, "update committed"),
            Ok(None) => tracing::info!(slot = %running, "health gate passed; slot kept"),
            Err(error) => tracing::error!(%error, "committing the slot failed"),
        },
        Err((step, reason)) => {
            tracing::error!(step, %reason, "health gate failed");
            let logs = inputs.recent_logs.lines();
            match gate::failed(&states, updates.boot(), &kind, step, &reason, &logs) {
                Ok(true) => {
                    tracing::error!("trial failed: restarting into the previous system");
                    if let Err(error) = updates.boot().reboot() {
                        tracing::error!(%error, "reboot failed");
                    }
                }
                Ok(false) => {}
                Err(error) => tracing::error!(%error, "recording the failed trial failed"),
            }
        }
    }
    auto_install(updates, shutdown).await;
}

/// One step of the gate.
async fn check(inputs: &GateInputs, step: &str) -> Result<(), String> {
    if inputs.fail_step.as_deref() == Some(step) {
        return Err("failing on purpose ([update] gate_fail, for tests)".into());
    }
    match step {
        "data mounted read-write" => data_writable(inputs.data.clone()).await,
        "store opened" => {
            let store = inputs.store.clone();
            tokio::task::spawn_blocking(move || store.users().map(|_| ()))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("the store does not answer: {e}"))
        }
        "HTTPS answering" => https_answers(inputs).await,
        "mDNS announced" => match &inputs.discovery {
            Some(discovery) => {
                let status = discovery.status();
                if !status.enabled || !status.addresses.is_empty() {
                    Ok(())
                } else {
                    Err("not announced on any LAN address yet".into())
                }
            }
            None => Ok(()),
        },
        other => Err(format!("unknown gate step {other}")),
    }
}

/// Writes, syncs and removes a probe file in the data folder.
async fn data_writable(data: PathBuf) -> Result<(), String> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let probe = data.join("update").join(".gate-probe");
        let mut file = std::fs::File::create(&probe)?;
        file.write_all(b"ok")?;
        file.sync_all()?;
        std::fs::remove_file(&probe)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot write to the data folder: {e}"))
}

/// `GET /healthz` over TLS (trusting the box's own CA) must answer `ok`; without an HTTPS
/// listener, over plain HTTP on loopback.
async fn https_answers(inputs: &GateInputs) -> Result<(), String> {
    let (addr, tls) = match (inputs.https, inputs.plain) {
        (Some(https), _) => (loopback(https), true),
        (None, Some(plain)) => (loopback(plain), false),
        (None, None) => return Err("no listener".into()),
    };
    let answer = tokio::time::timeout(PROBE_TIMEOUT, async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        if tls {
            let stream = tls_connector(&inputs.ca_pem)?
                .connect(
                    ServerName::try_from("localhost").map_err(|e| e.to_string())?,
                    tcp,
                )
                .await
                .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
            healthz(stream, addr).await
        } else {
            healthz(tcp, addr).await
        }
    })
    .await
    .map_err(|_| format!("no answer from {addr} within {} s", PROBE_TIMEOUT.as_secs()))??;
    if answer.starts_with("HTTP/1.1 200") && answer.trim_end().ends_with("ok") {
        Ok(())
    } else {
        Err(format!(
            "GET /healthz answered {:?}",
            answer.lines().next().unwrap_or("nothing")
        ))
    }
}

fn loopback(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

fn tls_connector(ca_pem: &str) -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn healthz<S>(mut stream: S, addr: SocketAddr) -> Result<String, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("writing to {addr}: {e}"))?;
    let mut answer = Vec::new();
    // A TLS peer may close without close_notify after `Connection: close`; what arrived counts.
    let _ = (&mut stream).take(64 * 1024).read_to_end(&mut answer).await;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// The day number when `now` (Unix seconds) falls in `hour` (UTC) of a day other than
/// `last_day`: the automatic install runs once per day, at the first tick in that hour.
fn due(now: u64, hour: u8, last_day: Option<u64>) -> Option<u64> {
    let (day, now_hour) = (now / 86_400, now % 86_400 / 3600);
    (now_hour == u64::from(hour) && last_day != Some(day)).then_some(day)
}

/// Installs what the channel offers once a day at `auto_install_hour` (UTC), if set.
async fn auto_install(updates: Updates, shutdown: CancellationToken) {
    let Some(hour) = updates.config().auto_install_hour else {
        shutdown.cancelled().await;
        return;
    };
    let mut last_day = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(AUTO_TICK) => {}
        }
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let Some(day) = due(secs, hour, last_day) else {
            continue;
        };
        if updates.kind().is_trial() {
            continue;
        }
        last_day = Some(day);
        match updates.check().await {
            Ok(checked) => {
                if let Some(entry) = checked.available() {
                    tracing::info!(version = %entry.version, "automatic update");
                    if let Err(error) = updates.install_now(entry.url.clone(), false).await {
                        tracing::error!(%error, "automatic update failed");
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "automatic update check failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::due;

    #[test]
    fn automatic_installs_run_once_in_their_hour() {
        let day = 20_000u64;
        let at = |hour: u64, minute: u64| day * 86_400 + hour * 3600 + minute * 60;
        assert_eq!(due(at(3, 0), 3, None), Some(day));
        assert_eq!(due(at(3, 59), 3, None), Some(day));
        assert_eq!(due(at(3, 30), 3, Some(day)), None, "once a day");
        assert_eq!(due(at(4, 0), 3, None), None);
        assert_eq!(due(at(2, 59), 3, None), None);
        assert_eq!(due(at(3, 1) + 86_400, 3, Some(day)), Some(day + 1));
    }
}
