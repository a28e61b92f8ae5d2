//! The local control socket: how `percloud user …` and `percloud fsck` reach a running daemon,
//! which holds the store open (redb allows one process per database).
//!
//! The socket lives in the data folder, which is created `0700`, and the socket itself is
//! `0600`: only the daemon's user and root can connect. One JSON request per connection, one
//! JSON reply.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use percloud_store::Store;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Reply, Request};

const SOCKET_NAME: &str = "control.sock";
/// Requests are small; anything longer is not ours.
const MAX_REQUEST_BYTES: u64 = 64 * 1024;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Ok(Reply),
    Error(String),
}

pub fn socket_path(data: &Path) -> PathBuf {
    data.join(SOCKET_NAME)
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no daemon is listening on {0}")]
    NoDaemon(PathBuf),
    #[error("talking to the daemon on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the daemon's reply could not be read: {0}")]
    BadReply(String),
    #[error("{0}")]
    Refused(String),
    #[error("cannot open the control socket {path}: {source}")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Sends `request` to the daemon serving `data`. [`ControlError::NoDaemon`] when none is.
pub fn send(data: &Path, request: &Request) -> Result<Reply, ControlError> {
    let path = socket_path(data);
    let mut stream = match UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ControlError::NoDaemon(path));
        }
        Err(source) => return Err(ControlError::Io { path, source }),
    };
    let io = |source| ControlError::Io {
        path: path.clone(),
        source,
    };
    let mut line =
        serde_json::to_string(request).map_err(|e| ControlError::BadReply(e.to_string()))?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply).map_err(io)?;
    match serde_json::from_str::<Answer>(&reply) {
        Ok(Answer::Ok(reply)) => Ok(reply),
        Ok(Answer::Error(message)) => Err(ControlError::Refused(message)),
        Err(e) => Err(ControlError::BadReply(e.to_string())),
    }
}

/// Binds the control socket. Call only while holding the store open: that proves no other
/// daemon owns this data folder, so a leftover socket file is stale and can go.
pub fn bind(data: &Path) -> Result<UnixListener, ControlError> {
    let path = socket_path(data);
    let bind_error = |source| ControlError::Bind {
        path: path.clone(),
        source,
    };
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_error(e)),
    }
    let listener = UnixListener::bind(&path).map_err(bind_error)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(bind_error)?;
    Ok(listener)
}

/// Answers control requests until `shutdown`; update requests go to `updates`.
pub async fn serve(
    listener: UnixListener,
    store: Store,
    updates: Option<crate::update_worker::Updates>,
    shutdown: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "control socket accept failed");
                    continue;
                }
            },
        };
        let store = store.clone();
        let updates = updates.clone();
        tokio::spawn(async move {
            if let Err(error) = answer(stream, store, updates).await {
                tracing::warn!(%error, "control request failed");
            }
        });
    }
}

async fn answer(
    stream: tokio::net::UnixStream,
    store: Store,
    updates: Option<crate::update_worker::Updates>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    tokio::io::AsyncReadExt::take(tokio::io::BufReader::new(read), MAX_REQUEST_BYTES)
        .read_line(&mut line)
        .await?;
    let answer = match serde_json::from_str::<Request>(&line) {
        Err(e) => Answer::Error(format!("malformed control request: {e}")),
        Ok(request) if request.is_update() => {
            tracing::info!(op = request.op(), "control request");
            match updates {
                Some(updates) => match crate::update::answer(&updates, request).await {
                    Ok(reply) => Answer::Ok(reply),
                    Err(message) => Answer::Error(message),
                },
                None => Answer::Error("updates are not set up on this box (no [update])".into()),
            }
        }
        Ok(request) => {
            tracing::info!(op = request.op(), "control request");
            match tokio::task::spawn_blocking(move || admin::execute(&store, request)).await {
                Ok(Ok(reply)) => Answer::Ok(reply),
                Ok(Err(e)) => Answer::Error(e.to_string()),
                Err(e) => Answer::Error(format!("internal error: {e}")),
            }
        }
    };
    let mut out = serde_json::to_string(&answer).map_err(std::io::Error::other)?;
    out.push('\n');
    write.write_all(out.as_bytes()).await?;
    write.shutdown().await
}
