//! State, claim, sign-in and sign-out, the session list and password change.

use std::time::SystemTime;

use http::{HeaderMap, StatusCode, header};
use percloud_accounts::{check_new_password, hash_password};
use percloud_sessions::{IDLE_EXPIRY, NewSession, Session};
use percloud_store::User;
use serde::Deserialize;
use serde_json::json;

use super::{Ctx, current_session, parse_id};
use crate::auth::AuthOutcome;
use crate::cookies::{self, SESSION_COOKIE};
use crate::json::{
    ApiError, ApiResult, ReqBody, blocking, is_json, json, no_content, ok, read_json,
};
use crate::net::is_local_network;
use crate::router::{AppInner, ConnInfo};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    name: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current: String,
    new: String,
}

pub(crate) async fn state(app: &AppInner, headers: &HeaderMap, conn: ConnInfo) -> ApiResult {
    let signed_in = current_session(app, headers).await?;
    let store = app.store.clone();
    let owner = blocking(move || Ok(store.owner()?)).await?;
    ok(&state_json(app, conn, owner.as_ref(), signed_in.as_ref()))
}

fn state_json(
    app: &AppInner,
    conn: ConnInfo,
    owner: Option<&User>,
    signed_in: Option<&(Session, User)>,
) -> serde_json::Value {
    let claimed = owner.is_some();
    let user = signed_in.map(
        |(_, user)| json!({"name": user.name, "owner": owner.is_some_and(|o| o.id == user.id)}),
    );
    json!({
        "claimed": claimed,
        "user": user,
        "csrf": signed_in.map(|(session, _)| session.csrf.clone()),
        "version": env!("CARGO_PKG_VERSION"),
        "ca_fingerprint": app.tls.ca_fingerprint,
        "server_fingerprint": app.tls.server_fingerprint,
        "claim_allowed": !claimed && is_local_network(conn.peer.ip()),
    })
}

pub(crate) async fn claim(
    app: &AppInner,
    headers: &HeaderMap,
    body: ReqBody,
    conn: ConnInfo,
) -> ApiResult {
    if !is_json(headers) {
        return Err(json_required());
    }
    if !is_local_network(conn.peer.ip()) {
        return Err(ApiError::forbidden(
            "the box can be claimed only from its local network",
        ));
    }
    let credentials: Credentials = read_json(body).await?;
    check_new_password(&credentials.password).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let _one_at_a_time = app.claim_lock.lock().await;
    let store = app.store.clone();
    let user = blocking(move || {
        if store.owner()?.is_some() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "the box is already claimed",
            ));
        }
        let hash = hash_password(&credentials.password)
            .map_err(|e| ApiError::internal("hashing the password", e))?;
        Ok(store.create_user(&credentials.name, &hash, None)?)
    })
    .await?;
    tracing::info!(user = %user.name, peer = %conn.peer, "box claimed");
    signed_in(app, user, headers, conn).await
}

pub(crate) async fn login(
    app: &AppInner,
    headers: &HeaderMap,
    body: ReqBody,
    conn: ConnInfo,
) -> ApiResult {
    if !is_json(headers) {
        return Err(json_required());
    }
    let credentials: Credentials = read_json(body).await?;
    match app
        .auth
        .sign_in(&credentials.name, &credentials.password, conn.peer.ip())
        .await
    {
        AuthOutcome::Authenticated(user) => signed_in(app, user, headers, conn).await,
        AuthOutcome::Throttled(wait) => Err(ApiError::too_many(wait.as_secs())),
        AuthOutcome::Missing | AuthOutcome::Denied => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong name or password",
        )),
    }
}

/// Starts a session for `user`: the state object plus the session cookie.
async fn signed_in(app: &AppInner, user: User, headers: &HeaderMap, conn: ConnInfo) -> ApiResult {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let (sessions, store) = (app.sessions.clone(), app.store.clone());
    let (token, session, user, owner) = blocking(move || {
        let (token, session) = sessions.create(
            NewSession {
                user_id: user.id,
                user_name: &user.name,
                address: &conn.peer.ip().to_string(),
                user_agent: &user_agent,
            },
            SystemTime::now(),
        )?;
        let owner = store.owner()?;
        Ok((token, session, user, owner))
    })
    .await?;
    let body = state_json(app, conn, owner.as_ref(), Some(&(session, user)));
    let mut response = json(StatusCode::OK, &body);
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookies::set(
            SESSION_COOKIE,
            &token,
            Some(IDLE_EXPIRY.as_secs()),
            conn.is_tls(),
        ),
    );
    Ok(response)
}

pub(crate) async fn logout(app: &AppInner, ctx: &Ctx, headers: &HeaderMap) -> ApiResult {
    if let Some(token) = cookies::get(headers, SESSION_COOKIE).map(str::to_owned) {
        let sessions = app.sessions.clone();
        blocking(move || Ok(sessions.revoke_token(&token)?)).await?;
    }
    let mut response = no_content();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookies::set(SESSION_COOKIE, "", Some(0), ctx.conn.is_tls()),
    );
    Ok(response)
}

pub(crate) async fn sessions(app: &AppInner, ctx: &Ctx) -> ApiResult {
    let sessions = app.sessions.clone();
    let user_id = ctx.user.id;
    let list = blocking(move || Ok(sessions.list(user_id)?)).await?;
    let current = ctx.session.id;
    let items: Vec<_> = list
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "created": s.created,
                "last_seen": s.last_seen,
                "address": s.address,
                "user_agent": s.user_agent,
                "current": s.id == current,
            })
        })
        .collect();
    ok(&items)
}

pub(crate) async fn revoke(app: &AppInner, ctx: &Ctx, id: &str) -> ApiResult {
    let id = parse_id(id)?;
    let sessions = app.sessions.clone();
    let user_id = ctx.user.id;
    if blocking(move || Ok(sessions.revoke(user_id, id)?)).await? {
        Ok(no_content())
    } else {
        Err(ApiError::not_found())
    }
}

pub(crate) async fn revoke_all(app: &AppInner, ctx: &Ctx) -> ApiResult {
    let sessions = app.sessions.clone();
    let (user_id, keep) = (ctx.user.id, ctx.session.id);
    blocking(move || Ok(sessions.revoke_all_except(user_id, keep)?)).await?;
    Ok(no_content())
}

/// Changes the signed-in user's password; the user's other sessions end (this one stays).
pub(crate) async fn password(app: &AppInner, ctx: &Ctx, body: ReqBody) -> ApiResult {
    let change: PasswordChange = read_json(body).await?;
    match app
        .auth
        .sign_in(&ctx.user.name, &change.current, ctx.conn.peer.ip())
        .await
    {
        AuthOutcome::Authenticated(_) => {}
        AuthOutcome::Throttled(wait) => return Err(ApiError::too_many(wait.as_secs())),
        AuthOutcome::Missing | AuthOutcome::Denied => {
            return Err(ApiError::forbidden("the current password is wrong"));
        }
    }
    check_new_password(&change.new).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let (store, sessions) = (app.store.clone(), app.sessions.clone());
    let (name, user_id, keep) = (ctx.user.name.clone(), ctx.user.id, ctx.session.id);
    blocking(move || {
        let hash = hash_password(&change.new)
            .map_err(|e| ApiError::internal("hashing the password", e))?;
        store.set_password_hash(&name, &hash)?;
        sessions.revoke_all_except(user_id, keep)?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}

fn json_required() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "the body must be JSON (Content-Type: application/json)",
    )
}
