//! One SNTP exchange: resolve a server, send one request over UDP, wait for its reply.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::clock::Clock;
use super::packet::{self, Measurement, Reply, unix_nanos};
use crate::SystemError;

/// The NTP port.
pub const NTP_PORT: u16 = 123;

/// A server as configured: a host name or address, and a port (123 unless given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    host: String,
    port: u16,
}

impl FromStr for Server {
    type Err = SystemError;

    /// `pool.ntp.org`, `pool.ntp.org:123`, `192.0.2.1`, `192.0.2.1:1123`, `2001:db8::1`,
    /// `[2001:db8::1]:123`.
    fn from_str(text: &str) -> Result<Server, SystemError> {
        let bad = |reason: &'static str| SystemError::NtpServer {
            value: text.to_owned(),
            reason,
        };
        if text.parse::<Ipv6Addr>().is_ok() {
            return Ok(Server {
                host: text.to_owned(),
                port: NTP_PORT,
            });
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or(bad("the port must be 1-65535"))?;
                (host.trim_start_matches('[').trim_end_matches(']'), port)
            }
            None => (text, NTP_PORT),
        };
        let name_ok = if host.contains(':') {
            host.parse::<Ipv6Addr>().is_ok()
        } else {
            !host.is_empty()
                && host.len() <= 253
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        };
        if !name_ok {
            return Err(bad("not a host name or address"));
        }
        Ok(Server {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Server {
    /// The server's addresses (DNS for a name), bounded by `timeout`.
    pub async fn resolve(&self, timeout: Duration) -> Result<Vec<SocketAddr>, SystemError> {
        let lookup = tokio::net::lookup_host((self.host.as_str(), self.port));
        let addrs = tokio::time::timeout(timeout, lookup)
            .await
            .map_err(|_| SystemError::NtpResolve {
                server: self.to_string(),
                source: std::io::ErrorKind::TimedOut.into(),
            })?
            .map_err(|source| SystemError::NtpResolve {
                server: self.to_string(),
                source,
            })?;
        Ok(addrs.collect())
    }
}

/// What a server said about our clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub server: SocketAddr,
    pub stratum: u8,
    pub measurement: Measurement,
}

/// Sends one request to `addr` and waits at most `timeout` for a reply that passes the
/// checks. Datagrams that do not answer this request (another source, another nonce) are
/// dropped; a reply to it that fails a check ends the exchange with that reason.
pub async fn query(
    addr: SocketAddr,
    clock: &impl Clock,
    timeout: Duration,
) -> Result<Sample, SystemError> {
    let io = |source| SystemError::NtpExchange {
        server: addr,
        source,
    };
    let local = if addr.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    };
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    // A connected socket receives only from the server's address.
    socket.connect(addr).await.map_err(io)?;
    let nonce: u64 = rand::random();
    let t1 = unix_nanos(clock.now());
    socket.send(&packet::request(nonce)).await.map_err(io)?;
    let answer = async {
        let mut buf = [0u8; 1024];
        loop {
            let len = socket.recv(&mut buf).await.map_err(io)?;
            let t4 = unix_nanos(clock.now());
            let Ok(reply) = Reply::parse(&buf[..len]) else {
                continue;
            };
            if reply.originate != packet::Timestamp(nonce) {
                continue; // late reply to an earlier request, or a forgery
            }
            reply.check(nonce).map_err(|source| SystemError::NtpReply {
                server: addr,
                source,
            })?;
            return Ok(Sample {
                server: addr,
                stratum: reply.stratum,
                measurement: Measurement::new(t1, &reply, t4),
            });
        }
    };
    tokio::time::timeout(timeout, answer)
        .await
        .map_err(|_| SystemError::NtpTimeout { server: addr })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_names_and_addresses() {
        let parse = |s: &str| s.parse::<Server>().map(|s| s.to_string());
        assert_eq!(parse("pool.ntp.org").expect("name"), "pool.ntp.org:123");
        assert_eq!(
            parse("time.example:1123").expect("port"),
            "time.example:1123"
        );
        assert_eq!(parse("192.0.2.1").expect("v4"), "192.0.2.1:123");
        assert_eq!(parse("2001:db8::1").expect("v6"), "[2001:db8::1]:123");
        assert_eq!(
            parse("[2001:db8::1]:9").expect("v6 port"),
            "[2001:db8::1]:9"
        );
        for bad in [
            "",
            "pool.ntp.org:0",
            "pool.ntp.org:x",
            "a b",
            "host:70000",
            ":123",
            "a:b:1",
        ] {
            let err = bad.parse::<Server>().expect_err(bad);
            assert!(err.to_string().contains("NTP server"), "{err}");
        }
    }
}
