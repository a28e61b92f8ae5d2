//! What the web crate's integration tests share: an `App` over a real store and sessions
//! database in a temporary folder, and a request body that can break off.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use percloud_sessions::Sessions;
use percloud_store::{Store, StoreOptions};
use percloud_web::{App, AppConfig};

/// The password the tests give every account.
pub const PASSWORD: &str = "correct-horse-battery";

/// A request body in pieces, optionally ending in an error (a connection that broke).
pub struct Pieces {
    pub pieces: VecDeque<Bytes>,
    pub breaks: bool,
}

impl Pieces {
    /// The whole body in one piece.
    pub fn whole(bytes: impl Into<Bytes>) -> Pieces {
        Pieces {
            pieces: VecDeque::from([bytes.into()]),
            breaks: false,
        }
    }
}

impl Body for Pieces {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(piece) = self.pieces.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(piece))));
        }
        if self.breaks {
            self.breaks = false;
            return Poll::Ready(Some(Err(std::io::Error::other("connection reset"))));
        }
        Poll::Ready(None)
    }
}

/// An `App` over a fresh store (no accounts yet) and sessions database; the temporary folder
/// lives as long as the box.
pub struct TestBox {
    pub app: App,
    pub store: Store,
    _dir: tempfile::TempDir,
}

impl TestBox {
    pub fn new() -> TestBox {
        TestBox::configured(|_, _| {})
    }

    /// A box whose configuration `set` adjusts first; it is given the temporary folder.
    pub fn configured(set: impl FnOnce(&mut AppConfig, &Path)) -> TestBox {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("data"), StoreOptions::default()).expect("store");
        let sessions = Sessions::open(&dir.path().join("sessions.redb")).expect("sessions");
        let mut config = AppConfig::new(store.clone(), Arc::new(sessions), [9; 32]);
        set(&mut config, dir.path());
        TestBox {
            app: App::new(config),
            store,
            _dir: dir,
        }
    }
}
