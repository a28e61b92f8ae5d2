//! A real store in a temporary folder behind a `DavHandler`, and a request helper.

#![allow(dead_code)]

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use percloud_dav::DavHandler;
use percloud_store::{Store, StoreOptions, UserId};

pub struct Dav {
    pub handler: DavHandler,
    pub store: Store,
    pub user: UserId,
    _dir: tempfile::TempDir,
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Dav {
    pub fn new() -> Dav {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreOptions::default()).expect("open store");
        let user = store
            .create_user("alice", "$argon2id$unused", None)
            .expect("user")
            .id;
        Dav {
            handler: DavHandler::new(store.clone(), "/dav"),
            store,
            user,
            _dir: dir,
        }
    }

    /// Sends a request with a `Full` body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let req = builder.body(Full::new(body.into())).expect("request");
        self.finish(self.handler.handle(self.user, req).await).await
    }

    pub async fn finish(&self, response: http::Response<percloud_dav::DavBody>) -> Reply {
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn put(&self, path: &str, content: &str) -> Reply {
        self.send("PUT", path, &[], content.to_owned()).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], Bytes::new()).await
    }

    pub async fn mkcol(&self, path: &str) -> Reply {
        self.send("MKCOL", path, &[], Bytes::new()).await
    }

    pub async fn propfind(&self, path: &str, depth: &str, body: &str) -> Reply {
        self.send("PROPFIND", path, &[("depth", depth)], body.to_owned())
            .await
    }
}
