//! Which handler answers which request, and the plain-HTTP policy.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body::Body;
use percloud_dav::{DavBody, DavHandler};
use percloud_store::Store;

use crate::auth::{AuthOutcome, Authenticator};
use crate::responses;
use crate::server::ListenerKind;

/// Where each user's WebDAV tree is mounted.
pub const DAV_PREFIX: &str = "/dav";

const LANDING_PAGE: &str = include_str!("landing.html");

/// What the server knows about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    pub kind: ListenerKind,
}

impl ConnInfo {
    /// Plain HTTP is trusted only between processes on this machine.
    fn is_private_channel(&self) -> bool {
        self.kind == ListenerKind::Tls || is_loopback(self.peer.ip())
    }
}

/// The application: everything a request can reach. Cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

#[derive(Debug)]
struct AppInner {
    dav: DavHandler,
    auth: Authenticator,
    https_port: Option<u16>,
}

impl App {
    /// `https_port` is where plain requests from the network are redirected (443 if `None`).
    pub fn new(store: Store, https_port: Option<u16>) -> Self {
        App {
            inner: Arc::new(AppInner {
                dav: DavHandler::new(store.clone(), DAV_PREFIX),
                auth: Authenticator::new(store),
                https_port,
            }),
        }
    }

    pub(crate) async fn handle<B>(&self, req: Request<B>, conn: ConnInfo) -> Response<DavBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = req.uri().path();
        if path == "/healthz" {
            return responses::text(StatusCode::OK, "ok");
        }
        if !conn.is_private_channel() {
            return self.redirect_to_https(&req);
        }
        if path == DAV_PREFIX || path.starts_with("/dav/") {
            return self.dav(req, conn).await;
        }
        match (req.method(), path) {
            (&Method::GET | &Method::HEAD, "/") => responses::html(LANDING_PAGE),
            _ => responses::text(StatusCode::NOT_FOUND, "not found"),
        }
    }

    async fn dav<B>(&self, req: Request<B>, conn: ConnInfo) -> Response<DavBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match self
            .inner
            .auth
            .authenticate(req.headers(), conn.peer.ip())
            .await
        {
            AuthOutcome::Authenticated(user) => self.inner.dav.handle(user.id, req).await,
            AuthOutcome::Missing | AuthOutcome::Denied => responses::unauthorized(),
            AuthOutcome::Throttled(wait) => responses::too_many_attempts(wait.as_secs()),
        }
    }

    fn redirect_to_https<B>(&self, req: &Request<B>) -> Response<DavBody> {
        let host = req.uri().host().map(str::to_owned).or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(strip_port)
        });
        let Some(host) = host else {
            return responses::text(StatusCode::BAD_REQUEST, "missing Host header");
        };
        let port = match self.inner.https_port {
            None | Some(443) => String::new(),
            Some(port) => format!(":{port}"),
        };
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        responses::redirect(&format!("https://{host}{port}{path}"))
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// `host:port` or `[v6]:port` → host (brackets kept for IPv6).
fn strip_port(host: &str) -> String {
    if let Some(end) = host.find(']') {
        return host[..=end].to_owned();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_owned(),
        _ => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    fn app(dir: &std::path::Path) -> App {
        let store = Store::open(dir, percloud_store::StoreOptions::default()).expect("store");
        App::new(store, Some(8443))
    }

    fn request(path: &str) -> Request<Full<Bytes>> {
        Request::builder()
            .uri(path)
            .header(header::HOST, "percloud.local:8080")
            .body(Full::new(Bytes::new()))
            .expect("request")
    }

    fn conn(peer: &str, kind: ListenerKind) -> ConnInfo {
        ConnInfo {
            peer: peer.parse().expect("addr"),
            kind,
        }
    }

    #[tokio::test]
    async fn plain_http_from_the_network_is_redirected_to_https() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = app(dir.path());
        let lan = conn("192.168.1.20:5000", ListenerKind::Plain);
        let response = app.handle(request("/dav/a%20b?x=1"), lan).await;
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            response.headers()[header::LOCATION],
            "https://percloud.local:8443/dav/a%20b?x=1"
        );
        // Health checks answer everywhere.
        let response = app.handle(request("/healthz"), lan).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn loopback_and_tls_are_served() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = app(dir.path());
        for c in [
            conn("127.0.0.1:5000", ListenerKind::Plain),
            conn("192.168.1.20:5000", ListenerKind::Tls),
        ] {
            let response = app.handle(request("/dav/"), c).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{c:?}");
            assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
            let page = app.handle(request("/"), c).await;
            assert_eq!(page.status(), StatusCode::OK);
            let body = page.into_body().collect().await.expect("body").to_bytes();
            assert!(String::from_utf8_lossy(&body).contains("percloud"));
        }
    }

    #[test]
    fn strips_ports_from_host_headers() {
        assert_eq!(strip_port("percloud.local:8080"), "percloud.local");
        assert_eq!(strip_port("percloud.local"), "percloud.local");
        assert_eq!(strip_port("[fe80::1]:80"), "[fe80::1]");
        assert_eq!(strip_port("192.168.1.4:80"), "192.168.1.4");
    }

    #[test]
    fn only_loopback_is_trusted_over_plain_http() {
        assert!(is_loopback("127.0.0.1".parse().expect("ip")));
        assert!(is_loopback("::1".parse().expect("ip")));
        assert!(is_loopback("::ffff:127.0.0.1".parse().expect("ip")));
        assert!(!is_loopback("192.168.1.4".parse().expect("ip")));
    }
}
