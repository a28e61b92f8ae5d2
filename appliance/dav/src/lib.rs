//! percloud-dav: WebDAV (RFC 4918 class 1 and 2) over the percloud store.
//!
//! [`DavHandler::handle`] serves one already-authenticated request against that user's tree.
//! This crate owns the WebDAV protocol: URL paths to store paths, XML bodies, properties,
//! conditional requests, the `If` header and the in-memory lock table. It never authenticates,
//! never listens on a socket and never touches disk except through `percloud-store`, whose
//! blocking calls it runs on tokio's blocking pool. Store errors become HTTP statuses in one
//! place, [`status_for`].
//!
//! Decisions worth knowing:
//! - `PROPFIND` with `Depth: infinity` (or no Depth) is refused with 403 and
//!   `DAV:propfind-finite-depth`, as RFC 4918 allows: one request must not walk a whole tree.
//! - Locks live in an in-process table (`locks.rs`), bounded per user and expiring (at most an
//!   hour). Persisting them was rejected: a restart dropping locks looks to clients like an
//!   expired lock, which they already handle.
//! - `PUT` streams the body through a small bounded channel into a store upload owned by a
//!   blocking thread; only a body received in full is committed.
//! - Request paths are decoded strictly (`%XX` only, never `+`), must be UTF-8 and pass
//!   `StorePath::from_segments`; hrefs are encoded per segment and always absolute paths.
//! - Request XML is parsed into a small namespace-resolved tree; DOCTYPE is refused outright,
//!   so no entity expansion or external fetch can happen.
//! - One [`DavHandler`] serves the same tree at several prefixes ([`DavHandler::mounted_at`]:
//!   `/dav`, and the Nextcloud client's `/remote.php/dav/files/<user>` and
//!   `/remote.php/webdav`) with one lock table, since locks belong to store paths.
//! - The `oc:`/`nc:` properties the Nextcloud clients ask for are computed (`ocprops.rs`),
//!   only when asked by name, and protected. `OC-Checksum: SHA1:…` is verified before a PUT
//!   commits and kept with the version (`checksum.rs`); downloads carry it back.

mod body;
mod checksum;
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
mod ocprops;
mod propfind;
mod proppatch;
mod props;
mod put;
mod range;
#[cfg(test)]
mod robustness;
mod status;
mod xml;

pub use body::{ChannelBody, DavBody, empty_body, full_body, status_response, text_response};
pub use checksum::{Announced, ChecksumError, Sha1};
pub use get::file_response;
pub use handler::DavHandler;
pub use headers::{oc_mtime, unix_mtime};
pub use href::destination_path;
pub use props::content_type;
pub use put::upload_reply;
pub use status::status_for;
