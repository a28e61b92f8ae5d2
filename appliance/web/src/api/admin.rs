//! The owner's admin routes: users, storage, fsck, retention, system.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use http::{Method, StatusCode};
use percloud_accounts::{check_new_password, hash_password};
use percloud_store::{Retention, Store};
use serde::Deserialize;
use serde_json::json;

use super::{Ctx, is_owner};
use crate::json::{ApiError, ApiResult, ReqBody, blocking, json, no_content, ok, read_json, unix};
use crate::router::AppInner;
use crate::server::ListenerKind;

/// The last fsck the admin page started, kept in memory.
#[derive(Debug, Clone)]
pub(crate) struct FsckState {
    running: bool,
    started: u64,
    finished: Option<u64>,
    clean: bool,
    problems: Vec<String>,
    chunks_checked: u64,
    bytes_checked: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    password: String,
    #[serde(default)]
    quota: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Password {
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Quota {
    quota: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionBody {
    keep_versions: u32,
    keep_days: u32,
    trash_days: u32,
}

pub(crate) async fn route(
    app: &AppInner,
    ctx: &Ctx,
    method: &Method,
    body: ReqBody,
    rest: &[&str],
) -> ApiResult {
    if !is_owner(app, &ctx.user).await? {
        return Err(ApiError::forbidden("only the box's owner can do this"));
    }
    match (method, rest) {
        (&Method::GET, ["users"]) => users(app).await,
        (&Method::POST, ["users"]) => create_user(app, body).await,
        (&Method::DELETE, ["users", name]) => remove_user(app, name).await,
        (&Method::POST, ["users", name, "password"]) => reset_password(app, name, body).await,
        (&Method::POST, ["users", name, "quota"]) => set_quota(app, name, body).await,
        (&Method::GET, ["storage"]) => storage(app).await,
        (&Method::POST, ["fsck"]) => start_fsck(app),
        (&Method::PUT, ["retention"]) => retention(app, body).await,
        (&Method::GET, ["system"]) => system(app),
        (&Method::PUT, ["names"]) => super::discovery::set_names(app, body).await,
        (&Method::PUT, ["remote"]) => super::remote::update(app, body).await,
        (&Method::POST, ["remote", "renew"]) => super::remote::renew(app),
        _ => Err(ApiError::not_found()),
    }
}

async fn users(app: &AppInner) -> ApiResult {
    let store = app.store.clone();
    let users = blocking(move || {
        let owner = store.owner()?.map(|o| o.id);
        Ok(store
            .users()?
            .iter()
            .map(|u| json!({"name": u.name, "owner": Some(u.id) == owner, "used": u.used, "quota": u.quota}))
            .collect::<Vec<_>>())
    })
    .await?;
    ok(&json!({ "users": users }))
}

async fn create_user(app: &AppInner, body: ReqBody) -> ApiResult {
    let body: NewUser = read_json(body).await?;
    check_new_password(&body.password).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let store = app.store.clone();
    let user = blocking(move || {
        percloud_store::validate_user_name(&body.name)?;
        let hash = hash_password(&body.password)
            .map_err(|e| ApiError::internal("hashing the password", e))?;
        Ok(store.create_user(&body.name, &hash, body.quota)?)
    })
    .await
    .map_err(|e| match e.status {
        StatusCode::CONFLICT => ApiError::new(StatusCode::CONFLICT, e.message),
        _ => e,
    })?;
    Ok(json(
        StatusCode::CREATED,
        &json!({"name": user.name, "owner": false, "used": user.used, "quota": user.quota}),
    ))
}

async fn remove_user(app: &AppInner, name: &str) -> ApiResult {
    let name = decode(name)?;
    let (store, sessions) = (app.store.clone(), app.sessions.clone());
    blocking(move || {
        let user = store
            .user(&name)?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no user named {name}")))?;
        if store.owner()?.is_some_and(|o| o.id == user.id) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "the owner's account cannot be removed",
            ));
        }
        store.remove_user(&name)?;
        sessions.revoke_user(user.id)?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}

async fn reset_password(app: &AppInner, name: &str, body: ReqBody) -> ApiResult {
    let name = decode(name)?;
    let body: Password = read_json(body).await?;
    check_new_password(&body.password).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let (store, sessions) = (app.store.clone(), app.sessions.clone());
    blocking(move || {
        let user = store
            .user(&name)?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no user named {name}")))?;
        let hash = hash_password(&body.password)
            .map_err(|e| ApiError::internal("hashing the password", e))?;
        store.set_password_hash(&name, &hash)?;
        sessions.revoke_user(user.id)?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}

async fn set_quota(app: &AppInner, name: &str, body: ReqBody) -> ApiResult {
    let name = decode(name)?;
    let body: Quota = read_json(body).await?;
    let store = app.store.clone();
    blocking(move || Ok(store.set_quota(&name, body.quota)?)).await?;
    Ok(no_content())
}

async fn storage(app: &AppInner) -> ApiResult {
    let store = app.store.clone();
    let (stats, (disk_total, disk_free), retention) =
        blocking(move || Ok((store.stats()?, store.disk_space()?, store.retention()?))).await?;
    let fsck = lock(&app.fsck).clone().map(|f| {
        json!({
            "running": f.running,
            "started": f.started,
            "finished": f.finished,
            "clean": f.clean,
            "problems": f.problems,
            "chunks_checked": f.chunks_checked,
            "bytes_checked": f.bytes_checked,
        })
    });
    ok(&json!({
        "disk_total": disk_total,
        "disk_free": disk_free,
        "logical_bytes": stats.logical_bytes,
        "unique_bytes": stats.unique_bytes,
        "stored_bytes": stats.stored_bytes,
        "pack_bytes": stats.pack_bytes,
        "saved_by_dedup": stats.logical_bytes.saturating_sub(stats.unique_bytes),
        "saved_by_compression": stats.unique_bytes.saturating_sub(stats.stored_bytes),
        "retention": {
            "keep_versions": retention.keep_versions,
            "keep_days": retention.keep_days,
            "trash_days": retention.trash_days,
        },
        "fsck": fsck,
    }))
}

/// Starts a read-only fsck on a blocking thread; one at a time.
fn start_fsck(app: &AppInner) -> ApiResult {
    {
        let mut state = lock(&app.fsck);
        if state.as_ref().is_some_and(|s| s.running) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "a check is already running",
            ));
        }
        *state = Some(FsckState {
            running: true,
            started: unix(SystemTime::now()),
            finished: None,
            clean: false,
            problems: Vec::new(),
            chunks_checked: 0,
            bytes_checked: 0,
        });
    }
    let (store, slot): (Store, Arc<Mutex<Option<FsckState>>>) =
        (app.store.clone(), app.fsck.clone());
    tokio::task::spawn_blocking(move || {
        let report = store.fsck(false);
        let mut state = lock(&slot);
        let Some(state) = state.as_mut() else {
            return;
        };
        state.running = false;
        state.finished = Some(unix(SystemTime::now()));
        match report {
            Ok(report) => {
                tracing::info!(
                    problems = report.problems.len(),
                    "fsck from the admin page done"
                );
                state.clean = report.is_clean();
                state.problems = report
                    .problems
                    .iter()
                    .map(|p| format!("{}: {}", p.object, p.detail))
                    .collect();
                state.chunks_checked = report.chunks_checked;
                state.bytes_checked = report.bytes_checked;
            }
            Err(error) => {
                tracing::error!(%error, "fsck from the admin page failed");
                state.problems = vec![error.to_string()];
            }
        }
    });
    Ok(json(StatusCode::ACCEPTED, &json!({"running": true})))
}

async fn retention(app: &AppInner, body: ReqBody) -> ApiResult {
    let body: RetentionBody = read_json(body).await?;
    let store = app.store.clone();
    blocking(move || {
        Ok(store.set_retention(Retention {
            keep_versions: body.keep_versions,
            keep_days: body.keep_days,
            trash_days: body.trash_days,
        })?)
    })
    .await?;
    Ok(no_content())
}

fn system(app: &AppInner) -> ApiResult {
    let lan: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|iface| !iface.is_loopback())
        .map(|iface| iface.ip())
        .collect();
    let hostname = super::discovery::hostname(app);
    let mut addresses: Vec<String> = Vec::new();
    let mut urls: Vec<String> = Vec::new();
    for (kind, addr) in &app.listeners {
        addresses.push(addr.to_string());
        let scheme = match kind {
            ListenerKind::Plain => "http",
            ListenerKind::Tls => "https",
        };
        let ips: Vec<IpAddr> = if addr.ip().is_unspecified() {
            lan.clone()
        } else {
            vec![addr.ip()]
        };
        if *kind == ListenerKind::Tls {
            urls.push(format!("{scheme}://{}.local:{}/", hostname, addr.port()));
        }
        for ip in ips {
            let host = match ip {
                IpAddr::V6(v6) => format!("[{v6}]"),
                IpAddr::V4(v4) => v4.to_string(),
            };
            urls.push(format!("{scheme}://{host}:{}/", addr.port()));
        }
    }
    for ip in &lan {
        let ip = ip.to_string();
        if !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }
    urls.dedup();
    ok(&json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": app.started.elapsed().as_secs(),
        "hostname": hostname,
        "addresses": addresses,
        "urls": urls,
        "logs": app.recent_logs.lines(),
    }))
}

/// A user name from a URL segment (percent-decoded).
fn decode(segment: &str) -> ApiResult<String> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::bad_request("user name is not UTF-8"))
}

fn lock(slot: &Mutex<Option<FsckState>>) -> std::sync::MutexGuard<'_, Option<FsckState>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}
