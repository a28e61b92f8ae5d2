//! Paths of the Nextcloud protocol we do not implement: a clean 404, logged so that gaps show.

use http::{Request, StatusCode};

use crate::json::{ReqBody, Resp};
use crate::responses;

pub(super) async fn handle(req: Request<ReqBody>) -> Resp {
    tracing::info!(method = %req.method(), path = %req.uri().path(), "nextcloud endpoint not implemented");
    responses::text(StatusCode::NOT_FOUND, "not implemented")
}
