//! (being written)

use http::Request;
use percloud_store::User;

use crate::json::{ReqBody, Resp};
use crate::router::App;

pub(super) async fn handle(
    _app: &App,
    _user: &User,
    _files_prefix: &str,
    _rest: &str,
    req: Request<ReqBody>,
) -> Resp {
    super::unimplemented::handle(req).await
}
