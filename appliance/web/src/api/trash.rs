//! The signed-in user's trash.

use percloud_store::StorePath;
use serde_json::json;

use super::{Ctx, parse_id};
use crate::json::{ApiResult, blocking, entry_json, no_content, ok, unix};
use crate::router::AppInner;

pub(crate) async fn list(app: &AppInner, ctx: &Ctx) -> ApiResult {
    let (store, user) = (app.store.clone(), ctx.user.id);
    let items = blocking(move || Ok(store.trash(user)?)).await?;
    let items: Vec<_> = items
        .iter()
        .map(|item| {
            let path = StorePath::parse(&item.original_path).unwrap_or_default();
            json!({
                "id": item.id,
                "original_path": item.original_path,
                "deleted": unix(item.deleted),
                "entry": entry_json(&path, &item.entry),
            })
        })
        .collect();
    ok(&json!({ "items": items }))
}

pub(crate) async fn restore(app: &AppInner, ctx: &Ctx, id: &str) -> ApiResult {
    let id = parse_id(id)?;
    let (store, user) = (app.store.clone(), ctx.user.id);
    let entry = blocking(move || {
        let entry = store.restore_from_trash(user, id)?;
        let path = store.path_of(user, entry.id)?;
        Ok(entry_json(&path, &entry))
    })
    .await?;
    ok(&entry)
}

pub(crate) async fn purge(app: &AppInner, ctx: &Ctx, id: &str) -> ApiResult {
    let id = parse_id(id)?;
    let (store, user) = (app.store.clone(), ctx.user.id);
    blocking(move || Ok(store.purge_from_trash(user, id)?)).await?;
    Ok(no_content())
}

pub(crate) async fn empty(app: &AppInner, ctx: &Ctx) -> ApiResult {
    let (store, user) = (app.store.clone(), ctx.user.id);
    blocking(move || Ok(store.empty_trash(user)?)).await?;
    Ok(no_content())
}
