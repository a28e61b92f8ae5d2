//! Paths of the Nextcloud protocol we do not implement: a clean 404 (an OCS envelope under
//! `/ocs/`, so the apps read it as "not available"), logged at info level so gaps show in
//! the log.

use http::{Request, StatusCode};

use super::ocs::Ocs;
use crate::json::{ReqBody, Resp};
use crate::responses;

pub(super) async fn handle(req: Request<ReqBody>) -> Resp {
    let path = req.uri().path();
    tracing::info!(method = %req.method(), %path, "nextcloud endpoint not implemented");
    if path.starts_with("/ocs/") {
        let ocs = Ocs::of(path, req.uri().query(), req.headers());
        return ocs.error(StatusCode::NOT_FOUND, "not implemented");
    }
    responses::text(StatusCode::NOT_FOUND, "not implemented")
}
