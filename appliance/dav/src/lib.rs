//! percloud-dav: WebDAV (RFC 4918 class 1 and 2) over the percloud store.
//!
//! [`DavHandler::handle`] serves one already-authenticated request against that user's tree.
//! This crate owns the WebDAV protocol: URL paths to store paths, XML bodies, properties,
//! conditional requests, the `If` header and the in-memory lock table. It never authenticates,
//! never listens on a socket and never touches disk except through `percloud-store`, whose
//! blocking calls it runs on tokio's blocking pool. Store errors become HTTP statuses in one
//! place, [`status_for`].

mod body;
mod conditional;
mod copymove;
mod dates;
mod get;
mod handler;
mod headers;
mod href;
mod if_header;
mod lock;
mod locks;
mod propfind;
mod proppatch;
mod props;
mod put;
mod range;
mod status;
mod xml;

pub use body::{DavBody, empty_body, full_body, status_response, text_response};
pub use handler::DavHandler;
pub use status::status_for;
