//! A deliberately small HTTP/1.1 client over a raw `TcpStream`.
//!
//! System tests must control the exact bytes on the wire (`..` and `%2e%2e` in paths, invalid
//! UTF-8, oversized headers, bodies cut short), which general-purpose clients normalise or
//! refuse. One request per connection (`Connection: close`); every socket has timeouts.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// Connect, read and write timeout of every request.
pub const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// A response, body fully read and de-chunked.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        for (name, value) in &self.headers {
            write!(f, "\n{name}: {value}")?;
        }
        let text = self.text();
        let shown: String = text.chars().take(2000).collect();
        write!(f, "\n\n{shown}")?;
        if shown.len() < text.len() {
            write!(f, "… ({} bytes)", self.body.len())?;
        }
        Ok(())
    }
}

/// Sends `METHOD TARGET` with `headers` and `body` (a `Content-Length` is added when the
/// body is not empty or the method is PUT) and reads the whole response.
pub fn request_raw(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    send_raw(addr, &[head.as_bytes(), body], method == "HEAD")
}

/// Writes `parts` as they are, half-closes, and reads the response. A server may answer
/// before reading everything (413, 507, 431) and close: a failed write is then reported only
/// if no response can be read either.
pub fn send_raw(addr: SocketAddr, parts: &[&[u8]], head_only: bool) -> io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut write_error = None;
    for part in parts {
        for piece in part.chunks(256 * 1024) {
            if let Err(e) = stream.write_all(piece) {
                write_error = Some(e);
                break;
            }
        }
        if write_error.is_some() {
            break;
        }
    }
    let _ = stream.flush();
    let mut raw = Vec::new();
    let read = stream.read_to_end(&mut raw);
    let _ = stream.shutdown(Shutdown::Both);
    if raw.is_empty() {
        return Err(match (write_error, read) {
            (Some(e), _) | (None, Err(e)) => e,
            (None, Ok(_)) => io::Error::new(io::ErrorKind::UnexpectedEof, "no response"),
        });
    }
    parse_response(&raw, head_only)
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

fn parse_response(raw: &[u8], head_only: bool) -> io::Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            invalid(format!(
                "truncated response head: {:?}",
                String::from_utf8_lossy(raw)
            ))
        })?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &raw[end + 4..];
    if (100..200).contains(&status) {
        // An interim response (100 Continue): the final one follows.
        return parse_response(rest, head_only);
    }
    if head_only || status == 204 || status == 304 {
        return Ok(response);
    }
    let body = if response
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest)?
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| invalid(format!("bad Content-Length {length:?}")))?;
        if rest.len() < length {
            return Err(invalid(format!(
                "body cut short: {} of {length} bytes",
                rest.len()
            )));
        }
        rest[..length].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { body, ..response })
}

fn dechunk(mut raw: &[u8]) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| invalid("chunked body cut short"))?;
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| invalid(format!("bad chunk size {size_text:?}")))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if raw.len() < size + 2 {
            return Err(invalid("chunk cut short"));
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}
