//! How the Nextcloud apps sign in: Login Flow v2 and the app-password endpoints of OCS.
//!
//! - `POST /index.php/login/v2` starts a flow: the device gets a poll token and the URL of a
//!   page (`/index.php/login/v2/flow/<login token>`) that it opens in a browser. That page is
//!   the web app (it signs the user in with the usual session, then asks "Grant access to
//!   <device>?" and grants through `POST /api/login-flow/<token>/grant`, CSRF-checked).
//! - `POST /index.php/login/v2/poll` with `token=<poll token>` answers 404 until the grant,
//!   then once `{"server", "loginName", "appPassword"}` with a new app password for the device.
//! - `GET /ocs/v{1,2}.php/core/getapppassword` trades the account password (Basic, with
//!   `OCS-APIREQUEST: true`) for an app password, as the desktop client does when it upgrades.
//! - `DELETE /ocs/v{1,2}.php/core/apppassword` revokes the app password the request carries
//!   (the device signs out).
//!
//! Flows themselves live in `percloud_sessions::LoginFlows`; app passwords in the session
//! database.

use std::time::{Instant, SystemTime};

use http::request::Parts;
use http::{HeaderMap, Method, Request, StatusCode, header};
use percloud_sessions::NewAppPassword;
use serde_json::json;

use super::ocs::{Ocs, is_ocs_request, ocs_tail};
use crate::json::{ApiError, ReqBody, Resp, blocking, json, read_form};
use crate::router::{App, AppInner, ConnInfo, strip_port};
use crate::{pages, responses};

const FLOW: &str = "/index.php/login/v2";
const POLL: &str = "/index.php/login/v2/poll";
const PAGE: &str = "/index.php/login/v2/flow/";

pub(super) fn claims(path: &str) -> bool {
    path.starts_with(FLOW)
        || matches!(
            ocs_tail(path),
            Some("core/getapppassword" | "core/apppassword")
        )
}

pub(super) async fn handle(app: &App, req: Request<ReqBody>, conn: ConnInfo) -> Resp {
    let app = &app.inner;
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    // Only the body moves into handlers; the head is shared by reference (the body type is
    // not `Sync`).
    let (parts, body) = req.into_parts();
    let result = match (&method, path.as_str(), ocs_tail(&path)) {
        (&Method::POST, FLOW, _) => start(app, &parts.headers, conn),
        (&Method::POST, POLL, _) => poll(app, &parts.headers, body, conn).await,
        (&Method::GET | &Method::HEAD, page, _) if page.starts_with(PAGE) => {
            Ok(grant_page(app, &page[PAGE.len()..], &parts.headers))
        }
        (&Method::GET, _, Some("core/getapppassword")) => return exchange(app, &parts, conn).await,
        (&Method::DELETE, _, Some("core/apppassword")) => {
            return sign_out(app, &parts, conn).await;
        }
        _ => return super::unimplemented::handle(Request::from_parts(parts, body)).await,
    };
    result.unwrap_or_else(|error| {
        if error.status.is_server_error() {
            tracing::warn!(%method, %path, detail = %error.message, "login flow request failed");
        }
        error.into_response()
    })
}

/// `POST /index.php/login/v2`: a new flow for the device named by its User-Agent.
fn start(app: &AppInner, headers: &HeaderMap, conn: ConnInfo) -> Result<Resp, ApiError> {
    let base = base_url(app, headers, conn)?;
    let device = device_name(user_agent(headers));
    let flow = app
        .flows
        .start(&device, &conn.peer.ip().to_string(), Instant::now())?;
    tracing::info!(%device, peer = %conn.peer, "device sign-in started");
    Ok(json(
        StatusCode::OK,
        &json!({
            "poll": {"token": flow.poll_token, "endpoint": format!("{base}{POLL}")},
            "login": format!("{base}{PAGE}{}", flow.login_token),
        }),
    ))
}

/// `POST /index.php/login/v2/poll`: 404 until granted, then the app password, once.
async fn poll(
    app: &AppInner,
    headers: &HeaderMap,
    body: ReqBody,
    conn: ConnInfo,
) -> Result<Resp, ApiError> {
    let base = base_url(app, headers, conn)?;
    let form = read_form(body).await?;
    let token = form
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let Some(granted) = app.flows.poll(token, Instant::now()) else {
        return Ok(json(StatusCode::NOT_FOUND, &json!([])));
    };
    let (sessions, store) = (app.sessions.clone(), app.store.clone());
    let (user_name, password) = blocking(move || {
        // The account may have gone between the grant and the poll.
        let user = store
            .user(&granted.user_name)?
            .filter(|u| u.id == granted.user_id)
            .ok_or_else(ApiError::not_found)?;
        let (password, _) = sessions.create_app_password(
            NewAppPassword {
                user_id: user.id,
                user_name: &user.name,
                name: &granted.device,
            },
            SystemTime::now(),
        )?;
        Ok((user.name, password))
    })
    .await?;
    tracing::info!(user = %user_name, peer = %conn.peer, "device signed in with a new app password");
    Ok(json(
        StatusCode::OK,
        &json!({"server": base, "loginName": user_name, "appPassword": password}),
    ))
}

/// The page the device opens: the web app, which shows sign-in and then the grant question
/// (for anything but a well-formed token, 404; whether the flow exists the page asks later).
fn grant_page(app: &AppInner, token: &str, headers: &HeaderMap) -> Resp {
    let well_formed = token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed
        .then(|| pages::serve(app, "/", headers))
        .flatten()
        .unwrap_or_else(|| responses::text(StatusCode::NOT_FOUND, "not found"))
}

/// `GET /ocs/…/core/getapppassword`: the account password (never an app password) buys one.
async fn exchange(app: &AppInner, req: &Parts, conn: ConnInfo) -> Resp {
    let ocs = Ocs::of(req.uri.path(), req.uri.query(), &req.headers);
    if !is_ocs_request(&req.headers) {
        return ocs.error(
            StatusCode::PRECONDITION_FAILED,
            "the OCS-APIREQUEST: true header is required",
        );
    }
    let user = match app.auth.require_user(&req.headers, conn.peer.ip()).await {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    if app.auth.app_password_of(&req.headers).await.is_some() {
        return ocs.error(
            StatusCode::FORBIDDEN,
            "this device already signs in with an app password",
        );
    }
    let sessions = app.sessions.clone();
    let device = device_name(user_agent(&req.headers));
    let created = blocking(move || {
        let (password, _) = sessions.create_app_password(
            NewAppPassword {
                user_id: user.id,
                user_name: &user.name,
                name: &device,
            },
            SystemTime::now(),
        )?;
        Ok(password)
    })
    .await;
    match created {
        Ok(password) => ocs.ok(json!({"apppassword": password})),
        Err(error) => ocs.error(error.status, &error.message),
    }
}

/// `DELETE /ocs/…/core/apppassword`: the device signs out; its app password stops working.
async fn sign_out(app: &AppInner, req: &Parts, conn: ConnInfo) -> Resp {
    let ocs = Ocs::of(req.uri.path(), req.uri.query(), &req.headers);
    let user = match app.auth.require_user(&req.headers, conn.peer.ip()).await {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    let Some(current) = app.auth.app_password_of(&req.headers).await else {
        return ocs.error(
            StatusCode::FORBIDDEN,
            "this request signs in with the account password, not an app password",
        );
    };
    let sessions = app.sessions.clone();
    let revoked = blocking(move || Ok(sessions.revoke_app_password(user.id, current.id)?)).await;
    match revoked {
        Ok(_) => ocs.ok(json!([])),
        Err(error) => ocs.error(error.status, &error.message),
    }
}

fn user_agent(headers: &HeaderMap) -> &str {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A name people recognise for the device, from its User-Agent: the Nextcloud apps by name,
/// anything else by the start of its User-Agent.
pub(crate) fn device_name(user_agent: &str) -> String {
    let ua = user_agent.trim();
    let platform = || {
        let lower = ua.to_ascii_lowercase();
        [
            ("windows", "Windows"),
            ("macos", "macOS"),
            ("mac os", "macOS"),
            ("linux", "Linux"),
        ]
        .into_iter()
        .find(|(needle, _)| lower.contains(needle))
        .map(|(_, name)| name)
    };
    let app = if ua.contains("Nextcloud-android") {
        Some("Nextcloud Android app")
    } else if ua.contains("Nextcloud-iOS") {
        Some("Nextcloud iOS app")
    } else if ua.contains("mirall/") && ua.contains("Nextcloud") {
        Some("Nextcloud desktop client")
    } else if ua.contains("mirall/") {
        Some("Desktop sync client")
    } else {
        None
    };
    match (app, platform()) {
        (Some(app), Some(os)) if !app.contains("Android") && !app.contains("iOS") => {
            format!("{app} ({os})")
        }
        (Some(app), _) => app.to_owned(),
        (None, _) if ua.is_empty() => "Unknown device".to_owned(),
        (None, _) => ua.chars().take(80).collect(),
    }
}

/// Where the device should reach the box from now on: the address it used, over HTTPS.
/// A request over TLS names the box as the device sees it (also through a router's mapped
/// port); a plain request (loopback only) is pointed at the box's HTTPS port when there is
/// one.
pub(super) fn base_url(
    app: &AppInner,
    headers: &HeaderMap,
    conn: ConnInfo,
) -> Result<String, ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| valid_authority(h))
        .ok_or_else(|| ApiError::bad_request("missing or invalid Host header"))?;
    Ok(match (conn.is_tls(), app.https_port) {
        (true, _) | (false, None) => {
            let scheme = if conn.is_tls() { "https" } else { "http" };
            format!("{scheme}://{host}")
        }
        (false, Some(443)) => format!("https://{}", strip_port(host)),
        (false, Some(port)) => format!("https://{}:{port}", strip_port(host)),
    })
}

fn valid_authority(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_named_from_their_user_agent() {
        assert_eq!(
            device_name(
                "Mozilla/5.0 (Linux) mirall/3.7.3 (Nextcloud, debian-6.1.0 ClientArchitecture: x86_64 OsArchitecture: x86_64)"
            ),
            "Nextcloud desktop client (Linux)"
        );
        assert_eq!(
            device_name("Mozilla/5.0 (Android) Nextcloud-android/3.26.0"),
            "Nextcloud Android app"
        );
        assert_eq!(device_name(""), "Unknown device");
        assert_eq!(device_name(&"x".repeat(300)).len(), 80);
    }

    #[test]
    fn host_headers_are_checked() {
        assert!(valid_authority("percloud.local:8443"));
        assert!(valid_authority("[fe80::1]:443"));
        assert!(!valid_authority("evil\"/><script>"));
        assert!(!valid_authority("a b"));
        assert!(!valid_authority(""));
    }
}
