//! (being written)

pub(super) mod ocs_reply;

use http::Request;

use crate::json::{ReqBody, Resp};
use crate::router::{App, ConnInfo};

pub(super) fn claims(_path: &str) -> bool {
    false
}

pub(super) async fn handle(_app: &App, req: Request<ReqBody>, _conn: ConnInfo) -> Resp {
    super::unimplemented::handle(req).await
}
