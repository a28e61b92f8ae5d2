//! Is the daemon healthy? Asked by the watchdog before every feed.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Something that can tell whether the daemon is healthy; `Err` says why not.
pub trait HealthProbe: Send + Sync {
    fn check(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// The real probe: `GET /healthz` on the plain listener over loopback must answer `ok`
/// (the same runtime, router and store-facing code serve HTTPS), and the HTTPS listener
/// must accept a connection. Each step is bounded by `timeout`.
#[derive(Debug, Clone)]
pub struct HttpProbe {
    pub plain: SocketAddr,
    pub tls: Option<SocketAddr>,
    pub timeout: Duration,
}

impl HealthProbe for HttpProbe {
    async fn check(&self) -> Result<(), String> {
        tokio::time::timeout(self.timeout, healthz(self.plain))
            .await
            .map_err(|_| format!("GET /healthz on {} timed out", self.plain))??;
        if let Some(tls) = self.tls {
            tokio::time::timeout(self.timeout, TcpStream::connect(tls))
                .await
                .map_err(|_| format!("connecting to HTTPS {tls} timed out"))?
                .map_err(|e| format!("connecting to HTTPS {tls}: {e}"))?;
        }
        Ok(())
    }
}

async fn healthz(addr: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("writing to {addr}: {e}"))?;
    let mut answer = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut answer)
        .await
        .map_err(|e| format!("reading from {addr}: {e}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let status_ok = answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200");
    if status_ok && answer.trim_end().ends_with("ok") {
        Ok(())
    } else {
        let first = answer.lines().next().unwrap_or("no answer");
        Err(format!("GET /healthz on {addr}: {first}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn server(answer: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        addr
    }

    fn probe(plain: SocketAddr, tls: Option<SocketAddr>) -> HttpProbe {
        HttpProbe {
            plain,
            tls,
            timeout: Duration::from_secs(2),
        }
    }

    #[tokio::test]
    async fn healthy_when_healthz_says_ok_and_https_accepts() {
        let plain = server("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        let tls = server("").await;
        assert_eq!(probe(plain, Some(tls)).check().await, Ok(()));
    }

    #[tokio::test]
    async fn unhealthy_on_error_status_or_closed_port() {
        let bad = server("HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        let err = probe(bad, None).check().await.expect_err("503");
        assert!(err.contains("503"), "{err}");
        let plain = server("HTTP/1.1 200 OK\r\n\r\nok").await;
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            l.local_addr().expect("addr")
        };
        let err = probe(plain, Some(closed))
            .check()
            .await
            .expect_err("closed");
        assert!(err.contains("HTTPS"), "{err}");
    }

    #[tokio::test]
    async fn unhealthy_when_nothing_answers_in_time() {
        let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = silent.local_addr().expect("addr");
        let mut p = probe(addr, None);
        p.timeout = Duration::from_millis(200);
        let err = p.check().await.expect_err("silent");
        assert!(err.contains("timed out"), "{err}");
        drop(silent);
    }
}
