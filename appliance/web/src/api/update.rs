//! System updates for the owner (docs/update.md): `GET /api/admin/update` (status, progress,
//! history), `POST /api/admin/update/check`, `POST /api/admin/update/install` (a URL as JSON,
//! or the bundle itself as an `application/octet-stream` body) and
//! `POST /api/admin/update/reboot`. The work is the binary's, behind [`UpdateControl`].

use std::fmt::Debug;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use http::{HeaderMap, Method, StatusCode, header};
use http_body_util::BodyExt as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;

use super::{Ctx, is_owner};
use crate::json::{ApiError, ApiResult, Query, ReqBody, json, ok, read_json};
use crate::router::AppInner;

/// Largest bundle accepted as an upload (a slot is far smaller).
pub const MAX_BUNDLE_BYTES: u64 = 2 << 30;

/// Why an update request was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateRefused {
    /// Another check or install is running (409).
    Busy(String),
    /// The request itself is wrong (400).
    Invalid(String),
    /// It was tried and failed (502 for the channel, else 500).
    Failed(String),
}

/// A future the control's methods return.
pub type UpdateFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, UpdateRefused>> + Send + 'a>>;

/// What the binary provides.
pub trait UpdateControl: Send + Sync + Debug {
    /// Status, progress and history (a JSON object).
    fn status(&self) -> serde_json::Value;
    /// Asks the channel for a newer version; answers with what it found.
    fn check(&self) -> UpdateFuture<'_, serde_json::Value>;
    /// Starts downloading and installing the bundle at `url`; progress shows in the status.
    fn install_url(&self, url: String, force: bool) -> Result<(), UpdateRefused>;
    /// Reserves the staging file an uploaded bundle is written to, and says how many bytes
    /// it may take (the install is then started with [`UpdateControl::install_uploaded`]).
    fn upload_target(&self) -> Result<(PathBuf, u64), UpdateRefused>;
    /// Starts installing the uploaded bundle; the reservation passes to the install.
    fn install_uploaded(&self, force: bool) -> Result<(), UpdateRefused>;
    /// Gives up a reservation after a failed upload.
    fn upload_failed(&self, reason: String);
    /// Reboots into an armed trial (when the install's own reboot failed).
    fn reboot(&self) -> Result<(), UpdateRefused>;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstallBody {
    url: String,
    #[serde(default)]
    force: bool,
}

fn updates(app: &AppInner) -> ApiResult<&dyn UpdateControl> {
    app.updates
        .as_deref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "updates are not set up on this box"))
}

fn refused(error: UpdateRefused) -> ApiError {
    match error {
        UpdateRefused::Busy(m) => ApiError::new(StatusCode::CONFLICT, m),
        UpdateRefused::Invalid(m) => ApiError::bad_request(m),
        UpdateRefused::Failed(m) => ApiError::new(StatusCode::BAD_GATEWAY, m),
    }
}

pub(crate) async fn route(
    app: &AppInner,
    ctx: &Ctx,
    method: &Method,
    headers: &HeaderMap,
    query: &Query,
    body: ReqBody,
    rest: &[&str],
) -> ApiResult {
    if !is_owner(app, &ctx.user).await? {
        return Err(ApiError::forbidden("only the box's owner can do this"));
    }
    let control = updates(app)?;
    match (method, rest) {
        (&Method::GET, []) => ok(&control.status()),
        (&Method::POST, ["check"]) => ok(&control.check().await.map_err(refused)?),
        (&Method::POST, ["install"]) => install(control, headers, query, body).await,
        (&Method::POST, ["reboot"]) => {
            control.reboot().map_err(refused)?;
            Ok(json(
                StatusCode::ACCEPTED,
                &serde_json::json!({"rebooting": true}),
            ))
        }
        _ => Err(ApiError::not_found()),
    }
}

async fn install(
    control: &dyn UpdateControl,
    headers: &HeaderMap,
    query: &Query,
    body: ReqBody,
) -> ApiResult {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") {
        let request: InstallBody = read_json(body).await?;
        control
            .install_url(request.url, request.force)
            .map_err(refused)?;
    } else if content_type.starts_with("application/octet-stream") {
        let force = matches!(query.get("force"), Some("1" | "true"));
        let (target, room) = control.upload_target().map_err(refused)?;
        // Until the install takes over, the reservation is given back however this ends,
        // also when the client goes away and this future is dropped mid-upload.
        let mut reservation = Reservation {
            control,
            reason: "the upload was cancelled".into(),
            held: true,
        };
        if let Err(error) = receive(body, &target, room.min(MAX_BUNDLE_BYTES)).await {
            reservation.reason = error.message.clone();
            return Err(error);
        }
        reservation.held = false;
        control.install_uploaded(force).map_err(refused)?;
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send {\"url\": …} as application/json, or the bundle as application/octet-stream",
        ));
    }
    Ok(json(StatusCode::ACCEPTED, &control.status()))
}

/// An upload's hold on the one install at a time.
struct Reservation<'a> {
    control: &'a dyn UpdateControl,
    reason: String,
    held: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.held {
            self.control.upload_failed(std::mem::take(&mut self.reason));
        }
    }
}

/// Streams the request body into `target`, at most `max` bytes, flushed to disk.
async fn receive(mut body: ReqBody, target: &std::path::Path, max: u64) -> ApiResult<()> {
    let io = |e: std::io::Error| ApiError::internal("writing the uploaded bundle", e);
    let mut file = tokio::fs::File::create(target).await.map_err(io)?;
    let mut received: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("upload broke off: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received += data.len() as u64;
        if received > max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("larger than any update bundle or the room on the data disk ({max} bytes)"),
            ));
        }
        file.write_all(&data).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    file.sync_all().await.map_err(io)?;
    Ok(())
}
