//! A minimal HTTP/1.1 client with keep-alive, over plain TCP or TLS.
//!
//! Small on purpose: the load generator must cost the machine as little as possible, stream
//! bodies without buffering them, and never hide a connection setup or a retry in a timing.
//! It speaks exactly what the workloads need: a request with an optional body sent with
//! `Content-Length`, and a response body delimited by `Content-Length`, chunked encoding or
//! the end of the connection.

use std::io::{self, Read};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Bytes read from a file and written to the socket at a time.
const BODY_BUF: usize = 1 << 20;

/// Where requests go: one server, a base path, optional Basic credentials and TLS.
pub struct Target {
    /// `host:port`
    pub addr: String,
    /// Path prefix ending in `/`, e.g. `/dav/`.
    pub base: String,
    authorization: Option<String>,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("addr", &self.addr)
            .field("base", &self.base)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Target {
    /// Parses `http://host:port/base/` or `https://…`; `cacert` is the CA to trust for https.
    pub fn new(
        url: &str,
        credentials: Option<(&str, &str)>,
        cacert: Option<PathBuf>,
    ) -> io::Result<Self> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(invalid(format!("not an http(s) URL: {url}")));
        };
        let (addr, base) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let mut base = base.to_string();
        if !base.ends_with('/') {
            base.push('/');
        }
        let authorization = credentials.map(|(user, password)| {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Basic {token}")
        });
        let tls = if tls {
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
            Some(tls_connector(host, cacert)?)
        } else {
            None
        };
        Ok(Target {
            addr: addr.to_string(),
            base,
            authorization,
            tls,
        })
    }

    /// Opens a new connection.
    pub async fn connect(&self) -> io::Result<Conn> {
        let tcp = TcpStream::connect(&self.addr).await?;
        tcp.set_nodelay(true)?;
        let stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(tcp),
            Some((connector, name)) => Box::new(connector.connect(name.clone(), tcp).await?),
        };
        Ok(Conn {
            io: BufReader::with_capacity(256 * 1024, stream),
            open: true,
        })
    }

    /// The request path for `name` under the base (names are plain ASCII in the workloads).
    pub fn path(&self, name: &str) -> String {
        format!("{}{}", self.base, name)
    }
}

fn tls_connector(
    host: &str,
    cacert: Option<PathBuf>,
) -> io::Result<(TlsConnector, ServerName<'static>)> {
    let path = cacert.ok_or_else(|| invalid("https needs --cacert".into()))?;
    let pem = std::fs::read(&path)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots
            .add(cert?)
            .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = match host.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(host.to_string()).map_err(|e| invalid(e.to_string()))?,
    };
    Ok((TlsConnector::from(Arc::new(config)), name))
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A request body.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A file streamed from disk; with `flip_middle`, the byte at `len / 2` is inverted on
    /// the way (a one-byte edit without a second copy on disk).
    File {
        path: &'a std::path::Path,
        flip_middle: bool,
    },
}

/// What the workloads need from a response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body_len: u64,
    /// The body, when the request asked to keep it.
    pub body: Vec<u8>,
}

/// One connection. After a response that closes it, `is_open` is false.
pub struct Conn {
    io: BufReader<Box<dyn Stream>>,
    open: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("open", &self.open).finish()
    }
}

impl Conn {
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Sends one request and reads the whole response (kept only with `keep_body`).
    pub async fn request(
        &mut self,
        target: &Target,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
        keep_body: bool,
    ) -> io::Result<Response> {
        let len = match body {
            Body::Empty => None,
            Body::Bytes(b) => Some(b.len() as u64),
            Body::File { path, .. } => Some(std::fs::metadata(path)?.len()),
        };
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", target.addr);
        if let Some(auth) = &target.authorization {
            head.push_str(&format!("Authorization: {auth}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(len) = len {
            head.push_str(&format!("Content-Length: {len}\r\n"));
        }
        head.push_str("\r\n");
        let stream = self.io.get_mut();
        match body {
            Body::Empty => stream.write_all(head.as_bytes()).await?,
            Body::Bytes(bytes) if bytes.len() <= 64 * 1024 => {
                let mut all = head.into_bytes();
                all.extend_from_slice(bytes);
                stream.write_all(&all).await?;
            }
            Body::Bytes(bytes) => {
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(bytes).await?;
            }
            Body::File { path, flip_middle } => {
                stream.write_all(head.as_bytes()).await?;
                send_file(stream, path, len.unwrap_or(0), flip_middle).await?;
            }
        }
        stream.flush().await?;
        self.read_response(method == "HEAD", keep_body).await
    }

    async fn read_response(&mut self, head_only: bool, keep: bool) -> io::Result<Response> {
        loop {
            let (status, framing, close) = self.read_head().await?;
            if (100..200).contains(&status) {
                continue;
            }
            if close {
                self.open = false;
            }
            let mut body = Vec::new();
            let no_body = head_only || status == 204 || status == 304;
            let body_len = match framing {
                _ if no_body => 0,
                Framing::Length(n) => self.read_exact_body(n, keep, &mut body).await?,
                Framing::Chunked => self.read_chunked(keep, &mut body).await?,
                Framing::UntilClose => {
                    self.open = false;
                    self.read_to_end(keep, &mut body).await?
                }
            };
            return Ok(Response {
                status,
                body_len,
                body,
            });
        }
    }

    async fn read_head(&mut self) -> io::Result<(u16, Framing, bool)> {
        let mut line = String::new();
        if self.io.read_line(&mut line).await? == 0 {
            self.open = false;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            ));
        }
        let mut parts = line.split_whitespace();
        let version = parts.next().unwrap_or_default().to_string();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line {line:?}")))?;
        let mut framing = Framing::UntilClose;
        let mut close = version == "HTTP/1.0";
        loop {
            line.clear();
            if self.io.read_line(&mut line).await? == 0 {
                return Err(invalid("connection closed in the response head".into()));
            }
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            let Some((name, value)) = trimmed.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                if !matches!(framing, Framing::Chunked) {
                    let n = value
                        .parse()
                        .map_err(|_| invalid(format!("bad Content-Length {value:?}")))?;
                    framing = Framing::Length(n);
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                if value.to_ascii_lowercase().contains("chunked") {
                    framing = Framing::Chunked;
                }
            } else if name.eq_ignore_ascii_case("connection") {
                let value = value.to_ascii_lowercase();
                if value.contains("close") {
                    close = true;
                } else if value.contains("keep-alive") {
                    close = false;
                }
            }
        }
        Ok((status, framing, close))
    }

    async fn read_exact_body(
        &mut self,
        mut n: u64,
        keep: bool,
        out: &mut Vec<u8>,
    ) -> io::Result<u64> {
        let total = n;
        while n > 0 {
            let buf = self.io.fill_buf().await?;
            if buf.is_empty() {
                self.open = false;
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "body cut short",
                ));
            }
            let take = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            if keep {
                out.extend_from_slice(&buf[..take]);
            }
            self.io.consume(take);
            n -= take as u64;
        }
        Ok(total)
    }

    async fn read_chunked(&mut self, keep: bool, out: &mut Vec<u8>) -> io::Result<u64> {
        let mut total = 0;
        let mut line = String::new();
        loop {
            line.clear();
            self.io.read_line(&mut line).await?;
            let size = line.trim_end().split(';').next().unwrap_or_default();
            let size = u64::from_str_radix(size.trim(), 16)
                .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // trailers, then the empty line
                loop {
                    line.clear();
                    if self.io.read_line(&mut line).await? == 0 || line.trim_end().is_empty() {
                        return Ok(total);
                    }
                }
            }
            total += self.read_exact_body(size, keep, out).await?;
            line.clear();
            self.io.read_line(&mut line).await?;
        }
    }

    async fn read_to_end(&mut self, keep: bool, out: &mut Vec<u8>) -> io::Result<u64> {
        let mut total = 0;
        loop {
            let buf = self.io.fill_buf().await?;
            if buf.is_empty() {
                return Ok(total);
            }
            let n = buf.len();
            if keep {
                out.extend_from_slice(buf);
            }
            self.io.consume(n);
            total += n as u64;
        }
    }
}

enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

async fn send_file(
    stream: &mut Box<dyn Stream>,
    path: &std::path::Path,
    len: u64,
    flip_middle: bool,
) -> io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; BODY_BUF];
    let middle = len / 2;
    let mut offset = 0u64;
    loop {
        // Page-cache reads of 1 MiB take well under a millisecond: not worth a thread hop.
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        if flip_middle && (offset..offset + n as u64).contains(&middle) {
            let i = usize::try_from(middle - offset).unwrap_or(0);
            buf[i] = !buf[i];
        }
        stream.write_all(&buf[..n]).await?;
        offset += n as u64;
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Keeps one connection open across requests and reopens it after the server closed it.
#[derive(Debug)]
pub struct Client {
    target: Arc<Target>,
    conn: Option<Conn>,
}

impl Client {
    pub fn new(target: Arc<Target>) -> Self {
        Client { target, conn: None }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// One request; a reused connection that the server closed meanwhile is reopened once.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
        keep_body: bool,
    ) -> io::Result<Response> {
        let reused = self.conn.as_ref().is_some_and(Conn::is_open);
        if !reused {
            self.conn = Some(self.target.connect().await?);
        }
        let result = self.send(method, path, headers, body, keep_body).await;
        match result {
            Err(_) if reused => {
                self.conn = Some(self.target.connect().await?);
                self.send(method, path, headers, body, keep_body).await
            }
            other => other,
        }
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
        keep_body: bool,
    ) -> io::Result<Response> {
        let target = Arc::clone(&self.target);
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| invalid("no connection".into()))?;
        let result = conn
            .request(&target, method, path, headers, body, keep_body)
            .await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }
}
