//! The OCS share API of the Nextcloud apps (`/ocs/v{1,2}.php/apps/files_sharing/api/v1/shares`)
//! on the box's own share links, the ones the web page makes: a link created here shows in the
//! web page's list and the other way round, and its `url` is our share page (`/s/<token>`).
//!
//! Only public links (`shareType=3`) exist here; sharing with users, groups or e-mail answers
//! a clean OCS 403. A link either shows its file or folder (permissions 1) or only accepts
//! uploads into its folder (permissions 4, "file drop"); any permissions asking to create, and
//! `publicUpload=true`, give the upload-only link, since the box has no link that both shows
//! and accepts files. `expireDate` (`YYYY-MM-DD`) ends the link at 00:00 UTC of that day, as
//! Nextcloud reports it back (`expiration: "YYYY-MM-DD 00:00:00"`). Changes need the
//! `OCS-APIREQUEST: true` header every client sends (a cross-site form cannot).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::request::Parts;
use http::{Method, Request, StatusCode};
use percloud_store::{Share, ShareMode, Store, User};
use serde_json::{Value, json};

use super::ocs::{Ocs, is_ocs_request, ocs_tail};
use crate::api::shares::{MAX_LINK_PASSWORD, create_link, hash_link_password};
use crate::json::{ApiError, ReqBody, Resp, blocking, is_json, read_form, read_json, store_path};
use crate::links::LinkKeys;
use crate::router::{App, ConnInfo};

const SHARES: &str = "apps/files_sharing/api/v1/shares";
/// The only share type the box has: a public link.
const PUBLIC_LINK: &str = "3";
/// Nextcloud's permission bits.
const READ: u32 = 1;
const CREATE: u32 = 4;
/// What `share_with` says for a link with a password: clients take any string for "has a
/// password"; the hash itself is never sent.
const PASSWORD_SET: &str = "***redacted***";

pub(super) fn claims(path: &str) -> bool {
    ocs_tail(path)
        .is_some_and(|tail| tail == SHARES || tail.starts_with("apps/files_sharing/api/v1/shares/"))
}

pub(super) async fn handle(app: &App, req: Request<ReqBody>, conn: ConnInfo) -> Resp {
    let app = &app.inner;
    let (parts, body) = req.into_parts();
    let ocs = Ocs::of(parts.uri.path(), parts.uri.query(), &parts.headers);
    if parts.method != Method::GET && !is_ocs_request(&parts.headers) {
        return ocs.error(
            StatusCode::PRECONDITION_FAILED,
            "the OCS-APIREQUEST: true header is required",
        );
    }
    let user = match app.auth.require_user(&parts.headers, conn.peer.ip()).await {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    let base = match super::login_flow::base_url(app, &parts.headers, conn) {
        Ok(base) => base,
        Err(error) => return ocs.error(error.status, &error.message),
    };
    let tail = ocs_tail(parts.uri.path()).unwrap_or_default();
    let id = tail
        .strip_prefix(SHARES)
        .and_then(|rest| rest.strip_prefix('/'))
        .map(str::to_owned);
    let ctx = Ctx {
        store: app.store.clone(),
        user,
        base,
        links: app.links.clone(),
    };
    let answer = match (&parts.method, id) {
        (&Method::GET, None) => list(&ctx, &params(&parts, None)).await,
        (&Method::POST, None) => match read_params(&parts, body).await {
            Ok(p) => create(&ctx, &p).await,
            Err(error) => Err(error),
        },
        (&Method::GET, Some(id)) => one(&ctx, &id).await,
        (&Method::PUT, Some(id)) => match read_params(&parts, body).await {
            Ok(p) => update(&ctx, &id, &p).await,
            Err(error) => Err(error),
        },
        (&Method::DELETE, Some(id)) => delete(&ctx, &id).await,
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        )),
    };
    match answer {
        Ok(data) => ocs.ok(data),
        Err(error) => {
            if error.status.is_server_error() {
                tracing::warn!(path = %parts.uri.path(), detail = %error.message, "OCS share request failed");
            }
            ocs.error(error.status, &error.message)
        }
    }
}

/// What every handler needs: the store, the signed-in user and how to write links.
#[derive(Clone)]
struct Ctx {
    store: Store,
    user: User,
    base: String,
    links: LinkKeys,
}

/// Request parameters: the query string, then (winning) the form or JSON body.
#[derive(Debug, Default)]
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
    }
}

fn params(parts: &Parts, body: Option<Vec<(String, String)>>) -> Params {
    let mut pairs: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    pairs.extend(body.unwrap_or_default());
    Params(pairs)
}

async fn read_params(parts: &Parts, body: ReqBody) -> Result<Params, ApiError> {
    let pairs = if is_json(&parts.headers) {
        json_pairs(read_json::<Value>(body).await?)?
    } else {
        read_form(body).await?
    };
    Ok(params(parts, Some(pairs)))
}

/// A flat JSON object as name/value pairs (numbers and booleans as their text).
fn json_pairs(value: Value) -> Result<Vec<(String, String)>, ApiError> {
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request("the JSON body must be an object"));
    };
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            Value::Number(n) => Some((k, n.to_string())),
            Value::Bool(b) => Some((k, b.to_string())),
            _ => None,
        })
        .collect())
}

/// `GET …/shares`: the user's links, all or those of `path` (or, with `subfiles=true`, of
/// the items directly in folder `path`). Shares with the user (`shared_with_me`) never exist.
async fn list(ctx: &Ctx, params: &Params) -> Result<Value, ApiError> {
    if params.flag("shared_with_me") {
        return Ok(json!([]));
    }
    let path = params
        .get("path")
        .filter(|p| !p.is_empty())
        .map(store_path)
        .transpose()?;
    let subfiles = params.flag("subfiles");
    let ctx = ctx.clone();
    blocking(move || {
        let wanted = match &path {
            Some(path) => match ctx.store.stat(ctx.user.id, path) {
                Ok(entry) => Some((path.clone(), entry)),
                Err(_) => return Err(no_path()),
            },
            None => None,
        };
        if subfiles && wanted.as_ref().is_some_and(|(_, e)| !e.is_dir()) {
            return Err(ApiError::bad_request("not a directory"));
        }
        let mut out = Vec::new();
        for share in ctx.store.shares(ctx.user.id)? {
            let Ok(share_path) = ctx.store.path_of(ctx.user.id, share.node) else {
                continue;
            };
            let keep = match &wanted {
                None => true,
                Some((folder, _)) if subfiles => share_path.parent().as_ref() == Some(folder),
                Some((_, entry)) => share.node == entry.id,
            };
            if keep && let Some(value) = share_json(&ctx, &share)? {
                out.push(value);
            }
        }
        Ok(Value::Array(out))
    })
    .await
}

/// `GET …/shares/<id>`: a list of that one link.
async fn one(ctx: &Ctx, id: &str) -> Result<Value, ApiError> {
    let id = share_id(id)?;
    let ctx = ctx.clone();
    blocking(move || {
        let share = find(&ctx.store, ctx.user.id, id)?;
        let value = share_json(&ctx, &share)?.ok_or_else(no_share)?;
        Ok(json!([value]))
    })
    .await
}

/// `POST …/shares`: a new public link.
async fn create(ctx: &Ctx, params: &Params) -> Result<Value, ApiError> {
    match params.get("shareType") {
        Some(PUBLIC_LINK) => {}
        Some(_) => {
            return Err(ApiError::forbidden(
                "this box shares only through public links (shareType 3)",
            ));
        }
        None => return Err(ApiError::bad_request("missing shareType")),
    }
    let path = store_path(
        params
            .get("path")
            .ok_or_else(|| ApiError::bad_request("missing path"))?,
    )?;
    if path.is_root() {
        return Err(ApiError::forbidden("the whole cloud cannot be shared"));
    }
    let mode = requested_mode(params)?.unwrap_or(ShareMode::Read);
    let password = match params.get("password") {
        Some(p) if !p.is_empty() => Some(checked_password(p)?),
        _ => None,
    };
    let expires = match params.get("expireDate") {
        Some(d) if !d.is_empty() => Some(parse_expiry(d, SystemTime::now())?),
        _ => None,
    };
    let ctx = ctx.clone();
    blocking(move || {
        let entry = ctx.store.stat(ctx.user.id, &path).map_err(|_| no_path())?;
        if mode == ShareMode::Upload && !entry.is_dir() {
            return Err(ApiError::bad_request("upload-only links need a folder"));
        }
        let share = create_link(
            &ctx.store,
            &ctx.links,
            ctx.user.id,
            &path,
            mode,
            password,
            expires,
        )?;
        share_json(&ctx, &share)?.ok_or_else(no_share)
    })
    .await
}

/// `PUT …/shares/<id>`: change the password (`""` removes it), the expiry (`""` removes it)
/// or the permissions; anything else asked for (label, note, hideDownload) is left alone.
async fn update(ctx: &Ctx, id: &str, params: &Params) -> Result<Value, ApiError> {
    let id = share_id(id)?;
    let mode = requested_mode(params)?;
    let password = match params.get("password") {
        None => None,
        Some("") => Some(None),
        Some(p) => Some(Some(checked_password(p)?)),
    };
    let expires = match params.get("expireDate") {
        None => None,
        Some("") => Some(None),
        Some(d) => Some(Some(parse_expiry(d, SystemTime::now())?)),
    };
    let ctx = ctx.clone();
    blocking(move || {
        let share = find(&ctx.store, ctx.user.id, id)?;
        let password_hash = match password {
            None => share.password_hash.clone(),
            Some(None) => None,
            Some(Some(p)) => Some(hash_link_password(&p)?),
        };
        let updated = ctx
            .store
            .update_share(
                ctx.user.id,
                id,
                mode.unwrap_or(share.mode),
                password_hash,
                expires.unwrap_or(share.expires),
            )
            .map_err(|e| match e {
                percloud_store::StoreError::NotADirectory { .. } => {
                    ApiError::bad_request("upload-only links need a folder")
                }
                e => e.into(),
            })?;
        share_json(&ctx, &updated)?.ok_or_else(no_share)
    })
    .await
}

/// `DELETE …/shares/<id>`: the link stops working.
async fn delete(ctx: &Ctx, id: &str) -> Result<Value, ApiError> {
    let id = share_id(id)?;
    let (store, user) = (ctx.store.clone(), ctx.user.id);
    blocking(move || {
        store.revoke_share(user, id).map_err(|_| no_share())?;
        Ok(json!([]))
    })
    .await
}

fn share_id(id: &str) -> Result<u64, ApiError> {
    id.parse().map_err(|_| no_share())
}

fn no_share() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "wrong share ID, share does not exist",
    )
}

fn no_path() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "wrong path, file/folder does not exist",
    )
}

fn find(store: &Store, user: u64, id: u64) -> Result<Share, ApiError> {
    store
        .shares(user)?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(no_share)
}

/// The link mode `permissions` / `publicUpload` ask for, if they ask.
fn requested_mode(params: &Params) -> Result<Option<ShareMode>, ApiError> {
    if let Some(p) = params.get("permissions").filter(|p| !p.is_empty()) {
        let bits: u32 = p
            .parse()
            .map_err(|_| ApiError::bad_request("permissions must be a number"))?;
        return match bits {
            b if b & CREATE != 0 => Ok(Some(ShareMode::Upload)),
            b if b & READ != 0 => Ok(Some(ShareMode::Read)),
            _ => Err(ApiError::bad_request(
                "a link must at least show its content (1) or accept uploads (4)",
            )),
        };
    }
    match params.get("publicUpload") {
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(ShareMode::Upload)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(ShareMode::Read)),
        _ => Ok(None),
    }
}

fn checked_password(password: &str) -> Result<String, ApiError> {
    if password.len() > MAX_LINK_PASSWORD {
        return Err(ApiError::bad_request("the link password is too long"));
    }
    Ok(password.to_owned())
}

/// `YYYY-MM-DD` (anything after the date, like ` 00:00:00` or `T…`, is ignored) → 00:00 UTC
/// of that day, which must be later than `now`.
fn parse_expiry(text: &str, now: SystemTime) -> Result<SystemTime, ApiError> {
    let invalid = || ApiError::bad_request("invalid expireDate (expected YYYY-MM-DD)");
    let date = text.trim().get(..10).ok_or_else(invalid)?;
    let mut fields = date.split('-');
    let mut next = || -> Result<i64, ApiError> {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or_else(invalid)
    };
    let (year, month, day) = (next()?, next()?, next()?);
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(invalid)?;
    let date = i32::try_from(year)
        .ok()
        .zip(u8::try_from(day).ok())
        .and_then(|(y, d)| time::Date::from_calendar_date(y, month, d).ok())
        .ok_or_else(invalid)?;
    let secs = date.midnight().assume_utc().unix_timestamp();
    let at = u64::try_from(secs)
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
        .map_err(|_| invalid())?;
    if at <= now {
        return Err(ApiError::bad_request("the expiration date is in the past"));
    }
    Ok(at)
}

fn format_expiry(at: SystemTime) -> Option<String> {
    let secs = at.duration_since(UNIX_EPOCH).ok()?.as_secs();
    let date = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?)
        .ok()?
        .date();
    Some(format!(
        "{:04}-{:02}-{:02} 00:00:00",
        date.year(),
        u8::from(date.month()),
        date.day()
    ))
}

/// The share as Nextcloud describes a link; `None` when its file is gone (in the trash).
fn share_json(ctx: &Ctx, share: &Share) -> Result<Option<Value>, ApiError> {
    let Ctx {
        store,
        user,
        base,
        links,
    } = ctx;
    let Ok(path) = store.path_of(user.id, share.node) else {
        return Ok(None);
    };
    let Ok(entry) = store.stat(user.id, &path) else {
        return Ok(None);
    };
    let parent_id = path
        .parent()
        .and_then(|p| store.stat(user.id, &p).ok())
        .map(|e| e.id);
    let token = links.token(&share.nonce);
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let has_password = share.password_hash.is_some();
    Ok(Some(json!({
        "id": share.id.to_string(),
        "share_type": 3,
        "uid_owner": user.name,
        "displayname_owner": user.name,
        "uid_file_owner": user.name,
        "displayname_file_owner": user.name,
        "permissions": match share.mode { ShareMode::Read => READ, ShareMode::Upload => CREATE },
        "can_edit": true,
        "can_delete": true,
        "stime": secs(share.created),
        "parent": null,
        "expiration": share.expires.and_then(format_expiry),
        "token": token,
        "note": "",
        "label": "",
        "path": path.to_string(),
        "item_type": if entry.is_dir() { "folder" } else { "file" },
        "mimetype": if entry.is_dir() { "httpd/unix-directory" } else { percloud_dav::content_type(&entry.name) },
        "has_preview": !entry.is_dir() && percloud_thumbs::is_thumbnailable(&entry.name),
        "storage_id": format!("home::{}", user.name),
        "storage": 1,
        "item_source": entry.id,
        "file_source": entry.id,
        "file_parent": parent_id,
        "file_target": format!("/{}", entry.name),
        "item_size": entry.size,
        "item_mtime": secs(entry.mtime),
        "share_with": if has_password { Some(PASSWORD_SET) } else { None },
        "share_with_displayname": if has_password { Some("(Shared link)") } else { None },
        "password": if has_password { Some(PASSWORD_SET) } else { None },
        "send_password_by_talk": false,
        "url": format!("{base}/s/{token}"),
        "mail_send": 0,
        "hide_download": 0,
        "attributes": null,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn permissions_map_to_the_two_link_modes() {
        let mode = |pairs: &[(&str, &str)]| requested_mode(&params(pairs)).map_err(|e| e.status);
        assert_eq!(mode(&[]), Ok(None));
        assert_eq!(mode(&[("permissions", "1")]), Ok(Some(ShareMode::Read)));
        assert_eq!(mode(&[("permissions", "17")]), Ok(Some(ShareMode::Read)));
        assert_eq!(mode(&[("permissions", "4")]), Ok(Some(ShareMode::Upload)));
        assert_eq!(mode(&[("permissions", "15")]), Ok(Some(ShareMode::Upload)));
        assert_eq!(
            mode(&[("publicUpload", "true")]),
            Ok(Some(ShareMode::Upload))
        );
        assert_eq!(mode(&[("permissions", "0")]), Err(StatusCode::BAD_REQUEST));
        assert_eq!(mode(&[("permissions", "x")]), Err(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn expiry_dates_round_trip_and_must_be_ahead() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000); // 2023-11-14
        let at = parse_expiry("2030-02-28", now).expect("date");
        assert_eq!(format_expiry(at).as_deref(), Some("2030-02-28 00:00:00"));
        assert_eq!(
            parse_expiry("2030-02-28 00:00:00", now).expect("with time"),
            at
        );
        for bad in ["2030-02-30", "2030-13-01", "soon", "20-1-1", ""] {
            assert!(parse_expiry(bad, now).is_err(), "{bad}");
        }
        assert!(parse_expiry("2023-11-14", now).is_err(), "today has begun");
        assert!(parse_expiry("2001-01-01", now).is_err());
    }
}
