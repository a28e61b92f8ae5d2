//! Which handler answers which request, and the plain-HTTP policy.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::BodyExt;
use percloud_accounts::{LoginThrottle, ThrottleConfig};
use percloud_dav::{DavBody, DavHandler};
use percloud_sessions::Sessions;
use percloud_store::Store;

use crate::api::admin::FsckState;
use crate::auth::Authenticator;
use crate::config::{AppConfig, TlsInfo};
use crate::links::LinkKeys;
use crate::net::{is_local_network, is_loopback};
use crate::recent_logs::RecentLogs;
use crate::server::ListenerKind;
use crate::{api, headers, nextcloud, pages, remote, responses};

/// Where each user's WebDAV tree is mounted.
pub const DAV_PREFIX: &str = "/dav";

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

    /// Cookies get `Secure` when the connection is TLS.
    pub fn is_tls(&self) -> bool {
        self.kind == ListenerKind::Tls
    }
}

/// The application: everything a request can reach. Cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    pub(crate) inner: Arc<AppInner>,
}

#[derive(Debug)]
pub(crate) struct AppInner {
    pub dav: DavHandler,
    pub auth: Authenticator,
    pub store: Store,
    pub sessions: Arc<Sessions>,
    /// Pending device sign-ins (Nextcloud Login Flow v2).
    pub flows: percloud_sessions::LoginFlows,
    pub links: LinkKeys,
    /// Failed share-link passwords, per address.
    pub share_throttle: LoginThrottle,
    /// Claiming is one at a time, so two first visitors cannot both become the owner.
    pub claim_lock: tokio::sync::Mutex<()>,
    pub fsck: Arc<Mutex<Option<FsckState>>>,
    pub https_port: Option<u16>,
    pub tls: TlsInfo,
    pub recent_logs: RecentLogs,
    pub hostname: String,
    pub listeners: Vec<(ListenerKind, SocketAddr)>,
    pub started: Instant,
    pub thumbnailer: Option<percloud_thumbs::Thumbnailer>,
    pub discovery: Option<percloud_discovery::Discovery>,
    pub remote: Option<Arc<dyn crate::RemoteAccess>>,
    pub updates: Option<Arc<dyn crate::UpdateControl>>,
}

impl App {
    pub fn new(config: AppConfig) -> Self {
        App {
            inner: Arc::new(AppInner {
                dav: DavHandler::new(config.store.clone(), DAV_PREFIX),
                auth: Authenticator::new(config.store.clone(), config.sessions.clone()),
                flows: percloud_sessions::LoginFlows::new(),
                store: config.store,
                sessions: config.sessions,
                links: LinkKeys::new(config.link_key),
                share_throttle: LoginThrottle::new(ThrottleConfig::default()),
                claim_lock: tokio::sync::Mutex::new(()),
                fsck: Arc::default(),
                https_port: config.https_port,
                tls: config.tls.unwrap_or_default(),
                recent_logs: config.recent_logs,
                hostname: config.hostname,
                listeners: config.listeners,
                started: Instant::now(),
                thumbnailer: config.thumbnailer,
                discovery: config.discovery,
                remote: config.remote,
                updates: config.updates,
            }),
        }
    }

    /// Answers one request as if it came from `peer` on a listener of `kind`: the entry the
    /// server uses, public for in-memory tests.
    pub async fn respond<B>(
        &self,
        req: Request<B>,
        peer: SocketAddr,
        kind: ListenerKind,
    ) -> Response<DavBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.handle(req, ConnInfo { peer, kind }).await
    }

    /// Routes the request, then adds the security headers every response carries.
    pub(crate) async fn handle<B>(&self, req: Request<B>, conn: ConnInfo) -> Response<DavBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let hsts = conn.is_tls() && self.trusted_host(&req);
        let mut response = self.route(req, conn).await;
        headers::apply(response.headers_mut(), hsts);
        response
    }

    async fn route<B>(&self, req: Request<B>, conn: ConnInfo) -> Response<DavBody>
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
        if remote::is_lan_only(path) && !is_local_network(conn.peer.ip()) && !self.remote_admin() {
            return responses::text(
                StatusCode::FORBIDDEN,
                "this page answers only on the box's local network",
            );
        }
        if path == DAV_PREFIX || path.starts_with("/dav/") {
            return self.dav(req, conn).await;
        }
        if nextcloud::claims(path) {
            let req = req.map(|body| body.map_err(Into::into).boxed_unsync());
            return nextcloud::handle(self, req, conn).await;
        }
        if path.starts_with("/api/") {
            let req = req.map(|body| body.map_err(Into::into).boxed_unsync());
            return api::handle(self, req, conn).await;
        }
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return responses::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        pages::serve(&self.inner, req.uri().path(), req.headers())
            .unwrap_or_else(|| responses::text(StatusCode::NOT_FOUND, "not found"))
    }

    async fn dav<B>(&self, req: Request<B>, conn: ConnInfo) -> Response<DavBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match self
            .inner
            .auth
            .require_user(req.headers(), conn.peer.ip())
            .await
        {
            Ok(user) => self.inner.dav.handle(user.id, req).await,
            Err(refusal) => refusal,
        }
    }

    /// Whether the owner allows the claim and admin pages from outside the LAN.
    fn remote_admin(&self) -> bool {
        self.inner
            .remote
            .as_ref()
            .is_some_and(|r| r.settings().allow_remote_admin)
    }

    /// Whether the request names the domain a publicly trusted certificate is served for
    /// (HSTS is sent only then: the box's own CA is not trusted by every browser).
    fn trusted_host<B>(&self, req: &Request<B>) -> bool {
        let Some(domain) = self.inner.remote.as_ref().and_then(|r| r.trusted_domain()) else {
            return false;
        };
        let host = req.uri().host().map(str::to_owned).or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(strip_port)
        });
        host.is_some_and(|h| h.eq_ignore_ascii_case(&domain))
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

/// `host:port` or `[v6]:port` → host (brackets kept for IPv6).
pub(crate) fn strip_port(host: &str) -> String {
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
        let sessions = Sessions::open(&dir.join("sessions.redb")).expect("sessions");
        let mut config = AppConfig::new(store, Arc::new(sessions), [1; 32]);
        config.https_port = Some(8443);
        App::new(config)
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

    #[tokio::test]
    async fn admin_and_claim_answer_only_to_the_lan_and_every_response_has_headers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = app(dir.path());
        let outside = conn("203.0.114.9:5000", ListenerKind::Tls);
        let lan = conn("192.168.1.20:5000", ListenerKind::Tls);
        for path in ["/admin", "/claim", "/api/admin/users", "/api/claim"] {
            let response = app.handle(request(path), outside).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
            assert_eq!(
                response.headers()[header::X_CONTENT_TYPE_OPTIONS],
                "nosniff"
            );
        }
        let response = app.handle(request("/admin"), lan).await;
        assert_eq!(response.status(), StatusCode::OK);
        let response = app.handle(request("/"), outside).await;
        assert_eq!(response.status(), StatusCode::OK);
        let response = app.handle(request("/dav/"), outside).await;
        let headers = response.headers();
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            "frame-ancestors 'none'"
        );
        assert!(!headers.contains_key(header::STRICT_TRANSPORT_SECURITY));
    }

    #[test]
    fn strips_ports_from_host_headers() {
        assert_eq!(strip_port("percloud.local:8080"), "percloud.local");
        assert_eq!(strip_port("percloud.local"), "percloud.local");
        assert_eq!(strip_port("[fe80::1]:80"), "[fe80::1]");
        assert_eq!(strip_port("192.168.1.4:80"), "192.168.1.4");
    }
}
