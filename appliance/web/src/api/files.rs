//! Browsing and changing the signed-in user's tree.

use http::{HeaderMap, StatusCode};
use percloud_store::{Precondition, StorePath};
use serde::Deserialize;
use serde_json::json;

use super::{Ctx, content, zip};
use crate::json::{
    ApiError, ApiResult, Query, ReqBody, blocking, entry_json, json, listing_json, no_content, ok,
    read_json, store_path,
};
use crate::router::AppInner;

/// Most search results returned.
const SEARCH_LIMIT: usize = 200;
/// Most paths one delete request may name.
const MAX_DELETE: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathBody {
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Transfer {
    from: String,
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Paths {
    paths: Vec<String>,
}

pub(crate) async fn list(app: &AppInner, ctx: &Ctx, query: &Query) -> ApiResult {
    let path = query.path("path")?;
    let (store, user) = (app.store.clone(), ctx.user.id);
    let listing = blocking(move || {
        let entry = store.stat(user, &path)?;
        let children = store.list(user, &path)?;
        Ok(listing_json(&path, &entry, &children))
    })
    .await?;
    ok(&listing)
}

pub(crate) async fn search(app: &AppInner, ctx: &Ctx, query: &Query) -> ApiResult {
    let text = query.require("q")?.trim().to_owned();
    if text.is_empty() {
        return ok(&json!({"results": []}));
    }
    let (store, user) = (app.store.clone(), ctx.user.id);
    let found = blocking(move || Ok(store.search(user, &text, SEARCH_LIMIT)?)).await?;
    let results: Vec<_> = found.iter().map(|(p, e)| entry_json(p, e)).collect();
    ok(&json!({ "results": results }))
}

pub(crate) async fn mkdir(app: &AppInner, ctx: &Ctx, body: ReqBody) -> ApiResult {
    let body: PathBody = read_json(body).await?;
    let path = store_path(&body.path)?;
    let (store, user) = (app.store.clone(), ctx.user.id);
    let entry = blocking(move || {
        let entry = store.mkdir(user, &path)?;
        Ok(entry_json(&path, &entry))
    })
    .await?;
    Ok(json(StatusCode::CREATED, &entry))
}

/// Move (rename) or copy; an existing destination is 409 and is never replaced.
pub(crate) async fn transfer(app: &AppInner, ctx: &Ctx, body: ReqBody, is_move: bool) -> ApiResult {
    let body: Transfer = read_json(body).await?;
    let (from, to) = (store_path(&body.from)?, store_path(&body.to)?);
    let (store, user) = (app.store.clone(), ctx.user.id);
    let entry = blocking(move || {
        let outcome = if is_move {
            store.rename(user, &from, &to, false)?
        } else {
            store.copy(user, &from, &to, false, true)?
        };
        Ok(entry_json(&to, &outcome.entry))
    })
    .await?;
    let status = if is_move {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json(status, &entry))
}

pub(crate) async fn delete(app: &AppInner, ctx: &Ctx, body: ReqBody) -> ApiResult {
    let body: Paths = read_json(body).await?;
    if body.paths.len() > MAX_DELETE {
        return Err(ApiError::bad_request("too many paths in one request"));
    }
    let paths = body
        .paths
        .iter()
        .map(|p| store_path(p))
        .collect::<ApiResult<Vec<StorePath>>>()?;
    let (store, user) = (app.store.clone(), ctx.user.id);
    blocking(move || {
        for path in &paths {
            store.delete(user, path, &Precondition::default())?;
        }
        Ok(())
    })
    .await?;
    Ok(no_content())
}

pub(crate) async fn file(
    app: &AppInner,
    ctx: &Ctx,
    query: &Query,
    headers: &HeaderMap,
    head: bool,
) -> ApiResult {
    let path = query.path("path")?;
    let reader = content::open(&app.store, ctx.user.id, path).await?;
    Ok(content::file_answer(
        reader,
        headers,
        head,
        query.flag("download"),
    ))
}

pub(crate) async fn zip(app: &AppInner, ctx: &Ctx, query: &Query) -> ApiResult {
    let path = query.path("path")?;
    zip::folder(&app.store, ctx.user.id, path).await
}

pub(crate) async fn thumb(app: &AppInner, ctx: &Ctx, query: &Query) -> ApiResult {
    let path = query.path("path")?;
    content::thumb(app, ctx.user.id, path, query.get("size")).await
}

pub(crate) fn usage(ctx: &Ctx) -> ApiResult {
    ok(&json!({"used": ctx.user.used, "quota": ctx.user.quota}))
}
