//! Errors of this crate and the one place store errors become HTTP statuses.

use http::{Response, StatusCode, header};
use percloud_store::StoreError;

use crate::body::{DavBody, full_body};

/// Maps a store error to the status a WebDAV client should see, whatever the method.
///
/// A few errors mean something different depending on the method (an existing destination is
/// 405 for MKCOL but 412 for COPY with `Overwrite: F`); [`status_in`] refines those.
pub fn status_for(err: &StoreError) -> StatusCode {
    match err {
        StoreError::InvalidPath(_) | StoreError::InvalidUserName { .. } => StatusCode::BAD_REQUEST,
        StoreError::NotFound { .. }
        | StoreError::VersionNotFound { .. }
        | StoreError::TrashItemNotFound { .. }
        | StoreError::ShareNotFound { .. }
        | StoreError::StagedNotFound { .. }
        | StoreError::UnknownUser { .. } => StatusCode::NOT_FOUND,
        StoreError::AlreadyExists { .. } => StatusCode::METHOD_NOT_ALLOWED,
        StoreError::ParentMissing { .. }
        | StoreError::NotADirectory { .. }
        | StoreError::IsADirectory { .. }
        | StoreError::UserExists { .. }
        | StoreError::OffsetMismatch { .. }
        | StoreError::StagedBusy { .. }
        | StoreError::OwnerRequired => StatusCode::CONFLICT,
        StoreError::IntoItself { .. } | StoreError::RootNotAllowed { .. } => StatusCode::FORBIDDEN,
        StoreError::BeyondLength { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        StoreError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
        StoreError::QuotaExceeded { .. } | StoreError::StorageFull { .. } => {
            StatusCode::INSUFFICIENT_STORAGE
        }
        StoreError::InUse { .. }
        | StoreError::Corrupt { .. }
        | StoreError::UnsupportedFormat { .. }
        | StoreError::Io { .. }
        | StoreError::Database { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The kind of operation a store error came from, for the statuses that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// PUT: an existing folder at the target is 405, a lost `If-None-Match: *` race 412.
    Put,
    /// COPY and MOVE: an existing destination (Overwrite: F) is 412.
    Transfer,
    Other,
}

/// [`status_for`], refined by the operation.
pub(crate) fn status_in(op: Op, err: &StoreError) -> StatusCode {
    match (op, err) {
        (Op::Put, StoreError::IsADirectory { .. }) => StatusCode::METHOD_NOT_ALLOWED,
        (Op::Put | Op::Transfer, StoreError::AlreadyExists { .. }) => {
            StatusCode::PRECONDITION_FAILED
        }
        _ => status_for(err),
    }
}

/// A request that failed: the status, an optional RFC 4918 precondition element for the body
/// (`<D:error>`), and a detail for the log and the plain-text body.
#[derive(Debug)]
pub(crate) struct DavError {
    pub status: StatusCode,
    /// Inner XML of a `DAV:error` body, e.g. `<D:propfind-finite-depth/>`.
    pub condition: Option<String>,
    pub detail: String,
}

impl DavError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        DavError {
            status,
            condition: None,
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn with_condition(mut self, condition: impl Into<String>) -> Self {
        self.condition = Some(condition.into());
        self
    }

    /// A store error seen during `op`; server-side failures are logged here.
    pub fn store(op: Op, err: StoreError) -> Self {
        let status = status_in(op, &err);
        if status.is_server_error() && status != StatusCode::INSUFFICIENT_STORAGE {
            tracing::error!(error = %err, "store operation failed");
        } else {
            tracing::debug!(error = %err, %status, "store refused the operation");
        }
        Self::new(status, err.to_string())
    }

    /// A failure of our own machinery (a blocking task that died): logged, 500.
    pub fn internal(what: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{what} failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{what} failed"))
    }

    pub fn into_response(self) -> Response<DavBody> {
        let builder = Response::builder().status(self.status);
        let built = match self.condition {
            Some(condition) => builder
                .header(header::CONTENT_TYPE, "application/xml; charset=utf-8")
                .body(full_body(format!(
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
                     <D:error xmlns:D=\"DAV:\">{condition}</D:error>\n"
                ))),
            None => builder
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(full_body(format!("{}\n", self.detail))),
        };
        built.unwrap_or_else(|_| crate::body::status_response(StatusCode::INTERNAL_SERVER_ERROR))
    }
}

impl From<StoreError> for DavError {
    fn from(err: StoreError) -> Self {
        DavError::store(Op::Other, err)
    }
}

/// `HTTP/1.1 207 Multi-Status` style status line for multistatus bodies.
pub(crate) fn status_line(status: StatusCode) -> String {
    format!(
        "HTTP/1.1 {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use percloud_store::{PathError, StorePath};

    #[test]
    fn maps_store_errors() {
        let path = StorePath::root();
        let nf = StoreError::NotFound { path: path.clone() };
        assert_eq!(status_for(&nf), StatusCode::NOT_FOUND);
        let exists = StoreError::AlreadyExists { path: path.clone() };
        assert_eq!(status_for(&exists), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            status_in(Op::Transfer, &exists),
            StatusCode::PRECONDITION_FAILED
        );
        let dir = StoreError::IsADirectory { path: path.clone() };
        assert_eq!(status_in(Op::Put, &dir), StatusCode::METHOD_NOT_ALLOWED);
        let quota = StoreError::QuotaExceeded {
            user: "a".into(),
            needed: 1,
            available: 0,
        };
        assert_eq!(status_for(&quota), StatusCode::INSUFFICIENT_STORAGE);
        let invalid = StoreError::InvalidPath(PathError::EmptyName);
        assert_eq!(status_for(&invalid), StatusCode::BAD_REQUEST);
        let db = StoreError::Database {
            op: "x",
            detail: "y".into(),
        };
        assert_eq!(status_for(&db), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(status_line(StatusCode::OK), "HTTP/1.1 200 OK");
    }
}
