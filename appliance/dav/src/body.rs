//! Response bodies: small in-memory ones and a channel fed by a blocking reader; reading
//! request bodies with a size limit.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{Response, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty, Full};
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
