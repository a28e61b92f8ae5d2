//! The signed-in user's share links.

use http::StatusCode;
use percloud_accounts::hash_password;
use std::time::SystemTime;

use percloud_store::{NewShare, Share, ShareMode, Store, StorePath, UserId};
use serde::Deserialize;
use serde_json::json;

use super::{Ctx, parse_id};
use crate::json::{
    ApiError, ApiResult, ReqBody, blocking, from_unix, json, no_content, ok, read_json, store_path,
    unix,
};
use crate::links::LinkKeys;
use crate::router::AppInner;

/// Longest link password accepted (bounds hashing work).
pub(crate) const MAX_LINK_PASSWORD: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    path: String,
    mode: Mode,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    expires: Option<u64>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Read,
    Upload,
}

pub(crate) fn mode_name(mode: ShareMode) -> &'static str {
    match mode {
        ShareMode::Read => "read",
        ShareMode::Upload => "upload",
    }
}

fn share_json(
    links: &LinkKeys,
    share: &Share,
    path: &StorePath,
    is_dir: bool,
) -> serde_json::Value {
    json!({
        "id": share.id,
        "url": format!("/s/{}", links.token(&share.nonce)),
        "path": path.to_string(),
        "kind": if is_dir { "dir" } else { "file" },
        "mode": mode_name(share.mode),
        "has_password": share.password_hash.is_some(),
        "expires": share.expires.map(unix),
        "created": unix(share.created),
    })
}

pub(crate) async fn list(app: &AppInner, ctx: &Ctx) -> ApiResult {
    let (store, user, links) = (app.store.clone(), ctx.user.id, app.links.clone());
    let shares = blocking(move || {
        let mut out = Vec::new();
        for share in store.shares(user)? {
            // Links whose file is gone (deleted, in the trash) lead nowhere: not listed.
            let Ok(path) = store.path_of(user, share.node) else {
                continue;
            };
            let Ok(entry) = store.stat(user, &path) else {
                continue;
            };
            out.push(share_json(&links, &share, &path, entry.is_dir()));
        }
        Ok(out)
    })
    .await?;
    ok(&json!({ "shares": shares }))
}

pub(crate) async fn create(app: &AppInner, ctx: &Ctx, body: ReqBody) -> ApiResult {
    let body: Create = read_json(body).await?;
    let path = store_path(&body.path)?;
    let password = body.password.filter(|p| !p.is_empty());
    if password
        .as_ref()
        .is_some_and(|p| p.len() > MAX_LINK_PASSWORD)
    {
        return Err(ApiError::bad_request("the link password is too long"));
    }
    let mode = match body.mode {
        Mode::Read => ShareMode::Read,
        Mode::Upload => ShareMode::Upload,
    };
    let (store, user, links) = (app.store.clone(), ctx.user.id, app.links.clone());
    let share = blocking(move || {
        let entry = store.stat(user, &path)?;
        if mode == ShareMode::Upload && !entry.is_dir() {
            return Err(ApiError::bad_request("upload links need a folder"));
        }
        let expires = body.expires.map(from_unix);
        let share = create_link(&store, &links, user, &path, mode, password, expires)?;
        Ok(share_json(&links, &share, &path, entry.is_dir()))
    })
    .await?;
    Ok(json(StatusCode::CREATED, &share))
}

/// A new link on `path` (whose kind suits `mode`), with a freshly minted token; the web
/// pages' API and the Nextcloud OCS API both make their links here.
pub(crate) fn create_link(
    store: &Store,
    links: &LinkKeys,
    user: UserId,
    path: &StorePath,
    mode: ShareMode,
    password: Option<String>,
    expires: Option<SystemTime>,
) -> Result<Share, ApiError> {
    let password_hash = password.map(|p| hash_link_password(&p)).transpose()?;
    let (nonce, token_hash) = links.mint();
    Ok(store.create_share(
        user,
        path,
        NewShare {
            mode,
            password_hash,
            expires,
            nonce,
            token_hash,
        },
    )?)
}

/// The argon2id hash a link keeps of its password.
pub(crate) fn hash_link_password(password: &str) -> Result<String, ApiError> {
    hash_password(password).map_err(|e| ApiError::internal("hashing the link password", e))
}

pub(crate) async fn revoke(app: &AppInner, ctx: &Ctx, id: &str) -> ApiResult {
    let id = parse_id(id)?;
    let (store, user) = (app.store.clone(), ctx.user.id);
    blocking(move || Ok(store.revoke_share(user, id)?)).await?;
    Ok(no_content())
}
