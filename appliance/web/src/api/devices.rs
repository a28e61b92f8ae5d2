//! Devices signed in with app passwords: the list, adding one by hand (for apps without Login
//! Flow, like rclone), revoking one; and the grant step of a device's Login Flow v2, which the
//! page at `/index.php/login/v2/flow/<token>` calls once its user is signed in.

use std::time::{Instant, SystemTime};

use http::StatusCode;
use percloud_sessions::{AppPassword, NewAppPassword};
use serde::Deserialize;
use serde_json::json;

use super::{Ctx, parse_id};
use crate::json::{ApiError, ApiResult, ReqBody, blocking, json, no_content, ok, read_json};
use crate::router::AppInner;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDevice {
    name: String,
}

fn device_json(app: &AppPassword) -> serde_json::Value {
    json!({
        "id": app.id,
        "name": app.name,
        "created": app.created,
        "last_used": app.last_used,
    })
}

/// `GET /api/app-passwords`: the signed-in user's devices, newest first.
pub(crate) async fn list(app: &AppInner, ctx: &Ctx) -> ApiResult {
    let (sessions, user) = (app.sessions.clone(), ctx.user.id);
    let list = blocking(move || Ok(sessions.app_passwords(user)?)).await?;
    ok(&list.iter().map(device_json).collect::<Vec<_>>())
}

/// `POST /api/app-passwords`: a new app password, shown in this answer only.
pub(crate) async fn create(app: &AppInner, ctx: &Ctx, body: ReqBody) -> ApiResult {
    let body: NewDevice = read_json(body).await?;
    if body.name.trim().is_empty() {
        return Err(ApiError::bad_request("name the device"));
    }
    let (sessions, user) = (app.sessions.clone(), ctx.user.clone());
    let (password, created) = blocking(move || {
        Ok(sessions.create_app_password(
            NewAppPassword {
                user_id: user.id,
                user_name: &user.name,
                name: &body.name,
            },
            SystemTime::now(),
        )?)
    })
    .await?;
    let mut answer = device_json(&created);
    answer["password"] = json!(password);
    answer["login"] = json!(ctx.user.name);
    Ok(json(StatusCode::CREATED, &answer))
}

/// `DELETE /api/app-passwords/<id>`: the device's next request is refused.
pub(crate) async fn revoke(app: &AppInner, ctx: &Ctx, id: &str) -> ApiResult {
    let id = parse_id(id)?;
    let (sessions, user) = (app.sessions.clone(), ctx.user.id);
    if blocking(move || Ok(sessions.revoke_app_password(user, id)?)).await? {
        Ok(no_content())
    } else {
        Err(ApiError::not_found())
    }
}

/// `GET /api/login-flow/<token>`: what the grant page asks about.
pub(crate) fn flow(app: &AppInner, token: &str) -> ApiResult {
    let pending = app
        .flows
        .pending(token, Instant::now())
        .ok_or_else(flow_gone)?;
    ok(&json!({
        "device": pending.device,
        "address": pending.address,
        "granted": pending.granted,
        "expires_in": pending.expires_in.as_secs(),
    }))
}

/// `POST /api/login-flow/<token>/grant`: the signed-in user lets the device in.
pub(crate) fn grant(app: &AppInner, ctx: &Ctx, token: &str) -> ApiResult {
    if !app
        .flows
        .grant(token, ctx.user.id, &ctx.user.name, Instant::now())
    {
        return Err(flow_gone());
    }
    tracing::info!(user = %ctx.user.name, peer = %ctx.conn.peer, "device sign-in granted");
    Ok(no_content())
}

/// `DELETE /api/login-flow/<token>`: the user says no; the device's polls stay 404.
pub(crate) fn deny(app: &AppInner, token: &str) -> ApiResult {
    if app.flows.cancel(token, Instant::now()) {
        Ok(no_content())
    } else {
        Err(flow_gone())
    }
}

fn flow_gone() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "this sign-in request is unknown or has expired; start again on the device",
    )
}
