//! PROPPATCH (RFC 4918 §9.2): dead properties set and removed in document order, all or
//! nothing; our live properties are protected.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{Response, StatusCode};
use percloud_store::PropName;

use crate::body::{DavBody, read_limited};
use crate::conditional;
use crate::handler::{DavHandler, LockNeed, MAX_XML_BODY, Req};
use crate::ocprops;
use crate::props::{MultiStatus, is_live, prop_element};
use crate::status::DavError;
use crate::xml::{self, DAV};

/// One instruction: set to a value (an XML fragment) or remove (`None`).
pub(crate) type Patch = (PropName, Option<String>);

/// Parses a `DAV:propertyupdate` body into instructions in document order.
pub(crate) fn parse_proppatch(body: &[u8]) -> Result<Vec<Patch>, DavError> {
    let root = xml::parse(body).map_err(|e| DavError::bad_request(e.to_string()))?;
    if !root.is(DAV, "propertyupdate") {
        return Err(DavError::bad_request("expected DAV:propertyupdate"));
    }
    let mut patches = Vec::new();
    for op in root.elements().filter(|e| e.ns == DAV) {
        let set = match op.name.as_str() {
            "set" => true,
            "remove" => false,
            _ => continue,
        };
        for prop in op.elements().filter(|e| e.is(DAV, "prop")) {
            for item in prop.elements() {
                let name = PropName {
                    namespace: item.ns.clone(),
                    name: item.name.clone(),
                };
                let value = set.then(|| {
                    let mut value = String::new();
                    xml::write_fragment(&mut value, &item.children);
                    value
                });
                patches.push((name, value));
            }
        }
    }
    if patches.is_empty() {
        return Err(DavError::bad_request("propertyupdate without properties"));
    }
    Ok(patches)
}

impl DavHandler {
    pub(crate) async fn proppatch<B>(
        &self,
        req: Req,
        body: B,
    ) -> Result<Response<DavBody>, DavError>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let content = read_limited(body, req.content_length(), MAX_XML_BODY).await?;
        let patches = parse_proppatch(&content)?;
        self.blocking(move |inner| {
            let entry = inner.store.stat(req.user, &req.path)?;
            conditional::require(&req.headers, Some(&entry))?;
            inner.check_locks(
                &req,
                &[LockNeed {
                    path: req.path.clone(),
                    tree: false,
                    membership: false,
                }],
            )?;
            let href = inner.mount.href(&req.path, entry.is_dir());
            let mut ms = MultiStatus::new();
            let (protected, free): (Vec<&Patch>, Vec<&Patch>) = patches
                .iter()
                .partition(|(name, _)| is_live(name) || ocprops::is_computed(name));
            if !protected.is_empty() {
                let element = |p: &&Patch| prop_element(&p.0, None);
                ms.propstats(
                    &href,
                    &[
                        (
                            StatusCode::FORBIDDEN,
                            protected.iter().map(element).collect(),
                        ),
                        (
                            StatusCode::FAILED_DEPENDENCY,
                            free.iter().map(element).collect(),
                        ),
                    ],
                );
                return Ok(ms.into_response());
            }
            // Later instructions on the same name win (document order).
            let mut last: BTreeMap<&PropName, Option<&String>> = BTreeMap::new();
            for (name, value) in &patches {
                last.insert(name, value.as_ref());
            }
            let set: Vec<(PropName, Vec<u8>)> = last
                .iter()
                .filter_map(|(n, v)| v.map(|v| ((*n).clone(), v.clone().into_bytes())))
                .collect();
            let remove: Vec<PropName> = last
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(n, _)| (*n).clone())
                .collect();
            inner
                .store
                .patch_props(req.user, &req.path, &set, &remove)?;
            let names = last.keys().map(|n| prop_element(n, None)).collect();
            ms.propstats(&href, &[(StatusCode::OK, names)]);
            Ok(ms.into_response())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_in_document_order() {
        let body = br#"<?xml version="1.0"?><propertyupdate xmlns="DAV:">
            <remove><prop><removeset xmlns="urn:n"/></prop></remove>
            <set><prop><removeset xmlns="urn:n">x</removeset></prop></set>
            <set><prop><t:v xmlns:t="urn:t"><foo xmlns="http://bar"/></t:v><nonamespace xmlns="">r</nonamespace></prop></set>
            </propertyupdate>"#;
        let patches = parse_proppatch(body).expect("parse");
        assert_eq!(patches.len(), 4);
        assert_eq!(patches[0].1, None);
        assert_eq!(patches[1].1.as_deref(), Some("x"));
        assert_eq!(patches[2].0.namespace, "urn:t");
        assert_eq!(
            patches[2].1.as_deref(),
            Some("<x:foo xmlns:x=\"http://bar\"/>")
        );
        assert_eq!(patches[3].0.namespace, "");
    }

    #[test]
    fn refuses_bad_bodies() {
        for bad in [
            &b""[..],
            b"<propertyupdate xmlns='DAV:'/>",
            b"<propfind xmlns='DAV:'><allprop/></propfind>",
            b"<!DOCTYPE p [<!ENTITY x 'y'>]><propertyupdate xmlns='DAV:'/>",
            b"<propertyupdate xmlns='DAV:'><set><prop><a xmlns='urn:a'>&x;</a></prop></set></propertyupdate>",
        ] {
            assert!(parse_proppatch(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
