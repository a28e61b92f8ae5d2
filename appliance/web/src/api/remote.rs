//! Remote access: `GET /api/remote` (owner) and `PUT /api/admin/remote`,
//! `POST /api/admin/remote/renew` (owner, through the admin routes).

use http::StatusCode;

use super::{Ctx, is_owner};
use crate::json::{ApiError, ApiResult, ReqBody, json, no_content, ok, read_json};
use crate::remote::{RemoteAccess, RemoteSettings};
use crate::router::AppInner;

fn remote(app: &AppInner) -> ApiResult<&dyn RemoteAccess> {
    app.remote
        .as_deref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "remote access is not available"))
}

/// The mapping, NAT diagnosis, certificate and settings.
pub(crate) async fn status(app: &AppInner, ctx: &Ctx) -> ApiResult {
    if !is_owner(app, &ctx.user).await? {
        return Err(ApiError::forbidden("only the box's owner can do this"));
    }
    ok(&remote(app)?.status())
}

/// Replaces the settings; answers with the new status.
pub(crate) async fn update(app: &AppInner, body: ReqBody) -> ApiResult {
    let settings: RemoteSettings = read_json(body).await?;
    let remote = remote(app)?;
    remote.update(settings).map_err(ApiError::bad_request)?;
    Ok(json(StatusCode::OK, &remote.status()))
}

/// Asks for a certificate renewal now (202; the status shows the outcome).
pub(crate) fn renew(app: &AppInner) -> ApiResult {
    let remote = remote(app)?;
    if remote.settings().domain.is_empty() {
        return Err(ApiError::new(StatusCode::CONFLICT, "no domain is set"));
    }
    remote.renew_certificate();
    Ok(no_content())
}
