//! The OCS envelope in JSON or XML, for every OCS endpoint of the `nextcloud` module
//! (capabilities and user, app passwords, shares).
//!
//! v1 (`/ocs/v1.php`) always answers HTTP 200 with `statuscode` 100 on success and the error's
//! code otherwise; v2 (`/ocs/v2.php`) uses 200 and mirrors errors in the HTTP status. JSON when
//! asked by `format=json` or `Accept: application/json`, XML otherwise (lists as `<element>`).

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use super::multistatus::escape_into;
use crate::json::Resp;

/// What follows `/ocs/v1.php/` or `/ocs/v2.php/` in `path` (`cloud/capabilities`), if either.
pub(in crate::nextcloud) fn ocs_tail(path: &str) -> Option<&str> {
    path.strip_prefix("/ocs/v2.php/")
        .or_else(|| path.strip_prefix("/ocs/v1.php/"))
}

/// Whether the request carries `OCS-APIREQUEST: true`, as every Nextcloud client sends it. A
/// cross-site form cannot set it, so requests that change something demand it even with
/// Basic credentials (which a browser may have cached and would send along).
pub(in crate::nextcloud) fn is_ocs_request(headers: &HeaderMap) -> bool {
    headers
        .get("ocs-apirequest")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// How the client wants its OCS answers.
#[derive(Debug, Clone, Copy)]
pub(in crate::nextcloud) struct Ocs {
    v2: bool,
    json: bool,
}

impl Ocs {
    /// From the request's path (`/ocs/v1.php/…` or `/ocs/v2.php/…`), query and headers.
    pub fn of(path: &str, query: Option<&str>, headers: &HeaderMap) -> Ocs {
        let format = query.and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "format")
                .map(|(_, v)| v.into_owned())
        });
        let json = match format.as_deref() {
            Some(f) => f.eq_ignore_ascii_case("json"),
            None => headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("application/json")),
        };
        Ocs {
            v2: path.starts_with("/ocs/v2.php/"),
            json,
        }
    }

    /// Success with `data`.
    pub fn ok(&self, data: Value) -> Resp {
        let code = if self.v2 { 200 } else { 100 };
        self.envelope(StatusCode::OK, "ok", code, "OK", data)
    }

    /// A refusal with an OCS status code (400, 403, 404…) and a sentence for people.
    pub fn error(&self, status: StatusCode, message: &str) -> Resp {
        let http = if self.v2 { status } else { StatusCode::OK };
        self.envelope(http, "failure", status.as_u16(), message, json!([]))
    }

    fn envelope(
        &self,
        http: StatusCode,
        status: &str,
        code: u16,
        message: &str,
        data: Value,
    ) -> Resp {
        let meta = json!({
            "status": status,
            "statuscode": code,
            "message": message,
            "totalitems": "",
            "itemsperpage": "",
        });
        let (bytes, content_type) = if self.json {
            let body = json!({"ocs": {"meta": meta, "data": data}});
            (
                serde_json::to_vec(&body).unwrap_or_default(),
                "application/json; charset=utf-8",
            )
        } else {
            let mut xml = String::from("<?xml version=\"1.0\"?>\n<ocs>");
            xml_element(&mut xml, "meta", &meta);
            xml_element(&mut xml, "data", &data);
            xml.push_str("</ocs>\n");
            (xml.into_bytes(), "text/xml; charset=UTF-8")
        };
        let mut response = Response::new(percloud_dav::full_body(bytes));
        *response.status_mut() = http;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// `<name>value</name>`: objects become child elements, arrays `<element>`s, `true` 1 and
/// `false`/`null` empty, as Nextcloud writes them.
fn xml_element(out: &mut String, name: &str, value: &Value) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                xml_element(out, key, child);
            }
        }
        Value::Array(items) => {
            for item in items {
                xml_element(out, "element", item);
            }
        }
        Value::String(text) => escape_into(out, text),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Bool(true) => out.push('1'),
        Value::Bool(false) | Value::Null => {}
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_lists_are_elements_and_text_is_escaped() {
        let mut out = String::new();
        xml_element(
            &mut out,
            "data",
            &json!([{"id": "1", "path": "/a<&>b", "ok": true, "none": null}]),
        );
        assert_eq!(
            out,
            "<data><element><id>1</id><none></none><ok>1</ok><path>/a&lt;&amp;&gt;b</path></element></data>"
        );
    }

    #[test]
    fn format_and_version_come_from_the_request() {
        let empty = HeaderMap::new();
        let ocs = Ocs::of("/ocs/v1.php/x", Some("format=json"), &empty);
        assert!(ocs.json && !ocs.v2);
        let ocs = Ocs::of("/ocs/v2.php/x", None, &empty);
        assert!(!ocs.json && ocs.v2);
        let response = ocs.error(StatusCode::NOT_FOUND, "no");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let v1 = Ocs::of("/ocs/v1.php/x", None, &empty);
        assert_eq!(
            v1.error(StatusCode::NOT_FOUND, "no").status(),
            StatusCode::OK
        );
    }
}
