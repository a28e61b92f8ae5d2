//! Previous versions of the signed-in user's files.

use http::HeaderMap;
use serde::Deserialize;
use serde_json::json;

use super::{Ctx, content};
use crate::json::{
    ApiError, ApiResult, Query, ReqBody, blocking, entry_json, ok, read_json, store_path, unix,
};
use crate::router::AppInner;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Restore {
    path: String,
    version: u64,
}

pub(crate) async fn list(app: &AppInner, ctx: &Ctx, query: &Query) -> ApiResult {
    let path = query.path("path")?;
    let (store, user) = (app.store.clone(), ctx.user.id);
    let versions = blocking(move || Ok(store.versions(user, &path)?)).await?;
    let versions: Vec<_> = versions
        .iter()
        .map(|v| {
            json!({
                "version": v.version,
                "size": v.size,
                "mtime": unix(v.mtime),
                "created": unix(v.created),
                "current": v.current,
            })
        })
        .collect();
    ok(&json!({ "versions": versions }))
}

pub(crate) async fn file(
    app: &AppInner,
    ctx: &Ctx,
    query: &Query,
    headers: &HeaderMap,
    head: bool,
) -> ApiResult {
    let path = query.path("path")?;
    let version: u64 = query
        .require("version")?
        .parse()
        .map_err(|_| ApiError::bad_request("version must be a number"))?;
    let (store, user) = (app.store.clone(), ctx.user.id);
    let reader = blocking(move || Ok(store.open_version(user, &path, version)?)).await?;
    Ok(content::file_answer(reader, headers, head, true))
}

pub(crate) async fn restore(app: &AppInner, ctx: &Ctx, body: ReqBody) -> ApiResult {
    let body: Restore = read_json(body).await?;
    let path = store_path(&body.path)?;
    let (store, user) = (app.store.clone(), ctx.user.id);
    let entry = blocking(move || {
        let entry = store.restore_version(user, &path, body.version)?;
        Ok(entry_json(&path, &entry))
    })
    .await?;
    ok(&entry)
}
