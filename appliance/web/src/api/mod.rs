//! The web pages' JSON API (`docs/api.md`): routing, session authentication and CSRF.
//!
//! Every route but state, claim, login and the public share routes needs a session cookie;
//! every one of those that changes state (any method but GET, HEAD and OPTIONS) must also
//! echo the session's CSRF token in `X-CSRF-Token`, compared in constant time.

pub(crate) mod account;
pub(crate) mod admin;
pub(crate) mod content;
mod devices;
pub(crate) mod discovery;
mod files;
mod public;
mod remote;
pub(crate) mod shares;
mod trash;
mod tus;
pub(crate) mod update;
mod versions;
mod zip;

use std::time::SystemTime;

use http::{HeaderMap, Method, Request};
use percloud_sessions::Session;
use percloud_store::User;
use subtle::ConstantTimeEq;

use crate::cookies::{self, SESSION_COOKIE};
use crate::json::{ApiError, ApiResult, Query, ReqBody, Resp, blocking};
use crate::router::{App, AppInner, ConnInfo};

/// A request with a live session.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub user: User,
    pub session: Session,
    pub conn: ConnInfo,
}

pub(crate) async fn handle(app: &App, req: Request<ReqBody>, conn: ConnInfo) -> Resp {
    let method = req.method().clone();
    match route(&app.inner, req, conn).await {
        Ok(response) => response,
        Err(error) => {
            if error.status.is_server_error() {
                tracing::warn!(%method, status = %error.status, detail = %error.message, "api request failed");
            }
            error.into_response()
        }
    }
}

async fn route(app: &AppInner, req: Request<ReqBody>, conn: ConnInfo) -> ApiResult {
    // Only the body is moved into handlers; the head is shared by reference (the body type
    // is not `Sync`).
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let path = parts.uri.path().to_owned();
    let rest = path.strip_prefix("/api/").unwrap_or_default();
    let segments: Vec<&str> = rest.split('/').collect();
    let method = parts.method.clone();
    let query = Query::parse(parts.uri.query())?;

    // Routes without a session.
    match (&method, segments.as_slice()) {
        (&Method::GET, ["state"]) => return account::state(app, headers, conn).await,
        (&Method::POST, ["claim"]) => return account::claim(app, headers, body, conn).await,
        (&Method::POST, ["login"]) => return account::login(app, headers, body, conn).await,
        (_, ["public", token, rest @ ..]) => {
            return public::route(app, &parts, body, conn, token, rest, &query).await;
        }
        (&Method::OPTIONS, ["tus"] | ["tus", ""]) => return Ok(tus::options()),
        _ => {}
    }

    let ctx = authenticate(app, headers, conn).await?;
    if !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
        check_csrf(headers, &ctx.session)?;
    }
    let head = method == Method::HEAD;
    match (&method, segments.as_slice()) {
        (&Method::POST, ["logout"]) => account::logout(app, &ctx, headers).await,
        (&Method::GET, ["sessions"]) => account::sessions(app, &ctx).await,
        (&Method::DELETE, ["sessions", id]) => account::revoke(app, &ctx, id).await,
        (&Method::POST, ["sessions", "revoke-all"]) => account::revoke_all(app, &ctx).await,
        (&Method::POST, ["password"]) => account::password(app, &ctx, body).await,
        (&Method::GET, ["app-passwords"]) => devices::list(app, &ctx).await,
        (&Method::POST, ["app-passwords"]) => devices::create(app, &ctx, body).await,
        (&Method::DELETE, ["app-passwords", id]) => devices::revoke(app, &ctx, id).await,
        (&Method::GET, ["login-flow", token]) => devices::flow(app, token),
        (&Method::POST, ["login-flow", token, "grant"]) => devices::grant(app, &ctx, token),
        (&Method::DELETE, ["login-flow", token]) => devices::deny(app, token),

        (&Method::GET, ["list"]) => files::list(app, &ctx, &query).await,
        (&Method::GET, ["search"]) => files::search(app, &ctx, &query).await,
        (&Method::POST, ["mkdir"]) => files::mkdir(app, &ctx, body).await,
        (&Method::POST, ["move"]) => files::transfer(app, &ctx, body, true).await,
        (&Method::POST, ["copy"]) => files::transfer(app, &ctx, body, false).await,
        (&Method::POST, ["delete"]) => files::delete(app, &ctx, body).await,
        (&Method::GET | &Method::HEAD, ["file"]) => {
            files::file(app, &ctx, &query, headers, head).await
        }
        (&Method::GET, ["zip"]) => files::zip(app, &ctx, &query).await,
        (&Method::GET, ["thumb"]) => files::thumb(app, &ctx, &query).await,
        (&Method::GET, ["usage"]) => files::usage(&ctx),

        (&Method::GET, ["trash"]) => trash::list(app, &ctx).await,
        (&Method::POST, ["trash", "empty"]) => trash::empty(app, &ctx).await,
        (&Method::POST, ["trash", id, "restore"]) => trash::restore(app, &ctx, id).await,
        (&Method::DELETE, ["trash", id]) => trash::purge(app, &ctx, id).await,

        (&Method::GET, ["versions"]) => versions::list(app, &ctx, &query).await,
        (&Method::GET | &Method::HEAD, ["versions", "file"]) => {
            versions::file(app, &ctx, &query, headers, head).await
        }
        (&Method::POST, ["versions", "restore"]) => versions::restore(app, &ctx, body).await,

        (&Method::GET, ["shares"]) => shares::list(app, &ctx).await,
        (&Method::POST, ["shares"]) => shares::create(app, &ctx, body).await,
        (&Method::DELETE, ["shares", id]) => shares::revoke(app, &ctx, id).await,

        (&Method::POST, ["tus"] | ["tus", ""]) => tus::create(app, &ctx, headers).await,
        (&Method::HEAD, ["tus", id]) => tus::head(app, &ctx, headers, id).await,
        (&Method::PATCH, ["tus", id]) => tus::patch(app, &ctx, headers, body, id).await,
        (&Method::DELETE, ["tus", id]) => tus::delete(app, &ctx, headers, id).await,

        (&Method::GET, ["discovery"]) => discovery::get(app, &ctx).await,
        (&Method::GET, ["remote"]) => remote::status(app, &ctx).await,
        (&Method::GET, ["admin", "phone-qr.svg"]) => discovery::phone_qr(app, &ctx, &query).await,
        (_, ["admin", "update", rest @ ..]) => {
            update::route(app, &ctx, &method, headers, &query, body, rest).await
        }
        (_, ["admin", rest @ ..]) => admin::route(app, &ctx, &method, body, rest).await,
        _ => Err(ApiError::not_found()),
    }
}

/// The live session the request's cookie names, with its (still existing) user; 401 otherwise.
async fn authenticate(app: &AppInner, headers: &HeaderMap, conn: ConnInfo) -> ApiResult<Ctx> {
    let (session, user) = current_session(app, headers)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    Ok(Ctx {
        user,
        session,
        conn,
    })
}

/// The session and user behind the request's cookie, if any and still valid.
pub(crate) async fn current_session(
    app: &AppInner,
    headers: &HeaderMap,
) -> ApiResult<Option<(Session, User)>> {
    let Some(token) = cookies::get(headers, SESSION_COOKIE).map(str::to_owned) else {
        return Ok(None);
    };
    let (sessions, store) = (app.sessions.clone(), app.store.clone());
    blocking(move || {
        let Some(session) = sessions.lookup(&token, SystemTime::now())? else {
            return Ok(None);
        };
        // The account may have been removed or recreated from the command line.
        match store.user(&session.user_name)? {
            Some(user) if user.id == session.user_id => Ok(Some((session, user))),
            _ => {
                sessions.revoke_token(&token)?;
                Ok(None)
            }
        }
    })
    .await
}

fn check_csrf(headers: &HeaderMap, session: &Session) -> ApiResult<()> {
    let presented = headers
        .get("x-csrf-token")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if bool::from(presented.ct_eq(session.csrf.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::forbidden("missing or wrong X-CSRF-Token"))
    }
}

/// The owner check of the admin routes.
pub(crate) async fn is_owner(app: &AppInner, user: &User) -> ApiResult<bool> {
    let store = app.store.clone();
    let id = user.id;
    blocking(move || Ok(store.owner()?.is_some_and(|o| o.id == id))).await
}

/// A numeric id from a URL segment.
pub(crate) fn parse_id(segment: &str) -> ApiResult<u64> {
    segment.parse().map_err(|_| ApiError::not_found())
}
