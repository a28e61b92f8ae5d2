//! The box on the LAN, for its owner: what it announces and the devices it sees
//! (`GET /api/discovery`), its names (`PUT /api/admin/names`), and the "Connect a phone"
//! QR code (`GET /api/admin/phone-qr.svg`).

use std::net::IpAddr;

use http::{HeaderValue, Response, StatusCode, header};
use percloud_discovery::DiscoveryError;
use serde::Deserialize;
use serde_json::json;

use super::{Ctx, is_owner};
use crate::json::{ApiError, ApiResult, Query, ReqBody, blocking, ok, read_json};
use crate::responses;
use crate::router::AppInner;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Names {
    instance: String,
    hostname: String,
}

/// The host label the box answers to now.
pub(crate) fn hostname(app: &AppInner) -> String {
    app.discovery
        .as_ref()
        .map(|d| d.hostname())
        .unwrap_or_else(|| app.hostname.clone())
}

/// `GET /api/discovery` (owner only).
pub(crate) async fn get(app: &AppInner, ctx: &Ctx) -> ApiResult {
    if !is_owner(app, &ctx.user).await? {
        return Err(ApiError::forbidden("only the box's owner can do this"));
    }
    ok(&overview(app))
}

fn overview(app: &AppInner) -> serde_json::Value {
    let connect = json!({
        "urls": phone_urls(app),
        "fingerprint": app.tls.server_fingerprint,
    });
    match &app.discovery {
        Some(discovery) => {
            let status = discovery.status();
            json!({
                "enabled": status.enabled,
                "hostname": status.hostname,
                "instance": status.instance,
                "device_id": status.device_id,
                "addresses": status.addresses,
                "services": status.services,
                "devices": discovery.devices(),
                "connect": connect,
            })
        }
        None => json!({
            "enabled": false,
            "hostname": app.hostname,
            "instance": app.hostname,
            "device_id": null,
            "addresses": [],
            "services": [],
            "devices": [],
            "connect": connect,
        }),
    }
}

/// `PUT /api/admin/names`: validates, persists and re-announces; answers the new overview.
pub(crate) async fn set_names(app: &AppInner, body: ReqBody) -> ApiResult {
    let names: Names = read_json(body).await?;
    let Some(discovery) = app.discovery.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "names cannot be changed while discovery is not running",
        ));
    };
    blocking(move || {
        discovery
            .set_names(names.instance.trim(), names.hostname.trim())
            .map_err(|e| match e {
                DiscoveryError::InvalidHostname(_) | DiscoveryError::InvalidInstance(_) => {
                    ApiError::bad_request(e.to_string())
                }
                other => ApiError::internal("saving the names", other),
            })
    })
    .await?;
    tracing::info!("names changed from the admin page");
    ok(&overview(app))
}

/// `GET /api/admin/phone-qr.svg?url=N`: the N-th URL of [`phone_urls`] (default the first,
/// `https://<host>.local/`) as a QR code, with the certificate fingerprint in the fragment
/// so an app can pin it (browsers ignore it).
pub(crate) async fn phone_qr(app: &AppInner, ctx: &Ctx, query: &Query) -> ApiResult {
    if !is_owner(app, &ctx.user).await? {
        return Err(ApiError::forbidden("only the box's owner can do this"));
    }
    let urls = phone_urls(app);
    let index = match query.get("url") {
        None => 0,
        Some(n) => n
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request("url must be an index"))?,
    };
    let url = urls.get(index).ok_or_else(ApiError::not_found)?;
    let fingerprint: String = app
        .tls
        .server_fingerprint
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    let text = if fingerprint.is_empty() {
        url.clone()
    } else {
        format!("{url}#fp={fingerprint}")
    };
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| ApiError::internal("making the QR code", e))?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    let mut response = Response::new(responses::body(svg));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The box's HTTPS URLs for a phone: `https://<host>.local[:port]/`, then one per LAN
/// address (IPv4 first; link-local IPv6 left out, phones cannot use it in a URL).
pub(crate) fn phone_urls(app: &AppInner) -> Vec<String> {
    let port = match app.https_port {
        None | Some(443) => String::new(),
        Some(port) => format!(":{port}"),
    };
    let mut urls = vec![format!("https://{}.local{port}/", hostname(app))];
    let addresses: Vec<IpAddr> = match &app.discovery {
        Some(d) => d.status().addresses,
        None => Vec::new(),
    };
    let addresses = if addresses.is_empty() {
        percloud_discovery::lan_addresses()
    } else {
        addresses
    };
    for ip in addresses {
        match ip {
            IpAddr::V4(v4) => urls.push(format!("https://{v4}{port}/")),
            IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) != 0xfe80 => {
                urls.push(format!("https://[{v6}]{port}/"));
            }
            IpAddr::V6(_) => {}
        }
    }
    urls
}
