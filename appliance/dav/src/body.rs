//! Response bodies: small in-memory ones, a channel fed by a blocking reader, and a stored
//! file's pieces from its reading threads; reading request bodies with a size limit.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::{Response, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty, Full};
use percloud_store::{Piece, Verifier};
use tokio::sync::mpsc;

use crate::status::DavError;

/// The body type of every response this crate produces.
pub type DavBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// An empty body.
pub fn empty_body() -> DavBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body holding `bytes`.
pub fn full_body(bytes: impl Into<Bytes>) -> DavBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A bodiless response with just `status`; handy for other crates' error paths.
pub fn status_response(status: StatusCode) -> Response<DavBody> {
    let mut response = Response::new(empty_body());
    *response.status_mut() = status;
    response
}

/// A short plain-text response (`message` plus a newline).
pub fn text_response(status: StatusCode, message: &str) -> Response<DavBody> {
    let mut response = Response::new(full_body(format!("{message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A body whose chunks come from a bounded channel, so a blocking reader can stream a file
/// without holding more than a few chunks in memory.
#[derive(Debug)]
pub struct ChannelBody {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
}

impl ChannelBody {
    /// A body yielding what arrives on `rx` until every sender is gone.
    pub fn new(rx: mpsc::Receiver<std::io::Result<Bytes>>) -> Self {
        ChannelBody { rx }
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|result| result.map(Frame::data)))
    }
}

/// A download's body: pieces from one or more reading threads, taken from each in turn (the
/// readers read alternate pieces) and released through the file's verifier, so what is sent
/// is in file order and never a damaged chunk's end. After an error it ends.
pub(crate) struct PiecesBody {
    readers: Vec<mpsc::Receiver<std::io::Result<Piece>>>,
    /// The reader whose piece comes next.
    turn: usize,
    verifier: Option<Verifier>,
    /// An error to yield first (a failed seek), then the end.
    failed: Option<std::io::Error>,
}

impl PiecesBody {
    pub(crate) fn new(
        readers: Vec<mpsc::Receiver<std::io::Result<Piece>>>,
        verifier: Verifier,
    ) -> Self {
        PiecesBody {
            readers,
            turn: 0,
            verifier: Some(verifier),
            failed: None,
        }
    }

    /// A body that yields `err` and ends.
    pub(crate) fn failed(err: std::io::Error) -> Self {
        PiecesBody {
            readers: Vec::new(),
            turn: 0,
            verifier: None,
            failed: Some(err),
        }
    }
}

impl Body for PiecesBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        if let Some(err) = this.failed.take() {
            this.verifier = None;
            return Poll::Ready(Some(Err(err)));
        }
        let (Some(verifier), Some(rx)) = (this.verifier.as_mut(), this.readers.get_mut(this.turn))
        else {
            return Poll::Ready(None);
        };
        // `None`: the reader whose turn it is has finished, and so has the body.
        let released =
            ready!(rx.poll_recv(cx)).map(|piece| piece.and_then(|p| verifier.release(p)));
        this.turn = (this.turn + 1) % this.readers.len();
        match released {
            None => {
                this.readers.clear();
                Poll::Ready(None)
            }
            Some(Ok(bytes)) => Poll::Ready(Some(Ok(Frame::data(Bytes::from(bytes))))),
            Some(Err(err)) => {
                tracing::error!(error = %err, "reading stored file failed");
                // Stops the readers: their channels close.
                this.readers.clear();
                this.verifier = None;
                Poll::Ready(Some(Err(err)))
            }
        }
    }
}

/// Reads a whole request body (an XML document) of at most `limit` bytes: larger is 413.
pub(crate) async fn read_limited<B>(
    mut body: B,
    content_length: Option<u64>,
    limit: usize,
) -> Result<Bytes, DavError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = || {
        DavError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {limit} bytes"),
        )
    };
    if content_length.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            DavError::bad_request(format!("reading request body: {}", err.into()))
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}
