//! PROPFIND (RFC 4918 §9.1): depth 0 and 1; depth infinity is refused with
//! `DAV:propfind-finite-depth`.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use percloud_store::{Entry, PropName, StorePath, UserId};
use tokio::sync::mpsc;

use crate::body::{ChannelBody, DavBody, read_limited};
use crate::handler::{DavHandler, Inner, MAX_XML_BODY, Req};
use crate::headers::{self, Depth};
use crate::locks::Lock;
use crate::ocprops;
use crate::props::{
    Live, LiveProp, MultiStatus, is_live, live_props, multistatus_response, prop_element,
};
use crate::status::DavError;
use crate::xml::{self, DAV};

/// What a PROPFIND body asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// `allprop` (also an empty body), with any `include`d names.
    AllProp(Vec<PropName>),
    PropName,
    Prop(Vec<PropName>),
}

/// Parses a PROPFIND body; an empty body means `allprop`.
pub(crate) fn parse_propfind(body: &[u8]) -> Result<Wanted, DavError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Wanted::AllProp(Vec::new()));
    }
    let root = xml::parse(body).map_err(|e| DavError::bad_request(e.to_string()))?;
    if !root.is(DAV, "propfind") {
        return Err(DavError::bad_request("expected DAV:propfind"));
    }
    let names = |e: &xml::Element| -> Vec<PropName> {
        e.elements()
            .map(|p| PropName {
                namespace: p.ns.clone(),
                name: p.name.clone(),
            })
            .collect()
    };
    // Unknown elements are ignored (RFC 4918 §17 extensibility).
    for child in root.elements().filter(|e| e.ns == DAV) {
        match child.name.as_str() {
            "allprop" => {
                let include = root.child(DAV, "include").map(names).unwrap_or_default();
                return Ok(Wanted::AllProp(include));
            }
            "propname" => return Ok(Wanted::PropName),
            "prop" => return Ok(Wanted::Prop(names(child))),
            _ => {}
        }
    }
    Err(DavError::bad_request(
        "propfind needs allprop, propname or prop",
    ))
}

/// Where the value of an asked-for property comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Computed from the entry (`oc:`/`nc:` properties, `ocprops`).
    Computed,
    Live(LiveProp),
    Dead,
}

/// A PROPFIND request with what each entry needs decided once: a listing describes thousands
/// of entries with the same names, and comparing every name against the property tables for
/// each of them was a tenth of the work.
#[derive(Debug)]
struct Asking {
    wanted: Wanted,
    /// One per name of `Wanted::Prop`, in order.
    sources: Vec<Source>,
    needs_dead: bool,
    /// `oc:size`: a folder's size is the size of its tree.
    wants_size: bool,
}

impl Asking {
    fn new(wanted: Wanted) -> Self {
        let (sources, needs_dead, wants_size) = match &wanted {
            Wanted::Prop(names) => {
                let sources: Vec<Source> = names
                    .iter()
                    .map(|n| {
                        if ocprops::is_computed(n) {
                            Source::Computed
                        } else {
                            LiveProp::of(n).map_or(Source::Dead, Source::Live)
                        }
                    })
                    .collect();
                let needs_dead = sources.contains(&Source::Dead);
                let wants_size = names
                    .iter()
                    .any(|n| n.namespace == ocprops::OC && n.name == "size");
                (sources, needs_dead, wants_size)
            }
            Wanted::AllProp(_) | Wanted::PropName => (Vec::new(), true, false),
        };
        Self {
            wanted,
            sources,
            needs_dead,
            wants_size,
        }
    }

    /// About how long one entry's response is without its href: the elements around it, and
    /// each property with its tags (the four the desktop clients ask for come to ~310 bytes;
    /// all of the live ones, with the lock types, to ~670).
    fn entry_bytes(&self) -> usize {
        match &self.wanted {
            Wanted::Prop(names) => 120 + 60 * names.len(),
            Wanted::AllProp(_) | Wanted::PropName => 800,
        }
    }

    /// About how long the body listing a folder and its `children` is, each child's href being
    /// the folder's (`folder_href` bytes) and its name: a listing of thousands that outgrows
    /// its buffer copies megabytes to grow it.
    fn body_bytes(&self, folder_href: usize, children: &[Entry]) -> usize {
        let names: usize = children.iter().map(|c| c.name.len()).sum();
        (children.len() + 1) * (self.entry_bytes() + folder_href) + names
    }
}

impl DavHandler {
    pub(crate) async fn propfind<B>(&self, req: Req, body: B) -> Result<Response<DavBody>, DavError>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let depth = headers::depth(&req.headers)?.unwrap_or(Depth::Infinity);
        if depth == Depth::Infinity {
            return Err(DavError::new(
                StatusCode::FORBIDDEN,
                "PROPFIND with Depth: infinity is not supported",
            )
            .with_condition("<D:propfind-finite-depth/>"));
        }
        let content = read_limited(body, req.content_length(), MAX_XML_BODY).await?;
        let asking = Asking::new(parse_propfind(&content)?);
        let (user, path) = (req.user, req.path.clone());
        let answer = self
            .blocking(move |inner| {
                let entry = inner.store.stat(user, &path)?;
                let children = if depth == Depth::One && entry.is_dir() {
                    inner.store.list(user, &path)?
                } else {
                    Vec::new()
                };
                let listed = Listing {
                    user,
                    path,
                    entry,
                    children,
                    asking,
                };
                if listed.children.len() > STREAM_AFTER {
                    return Ok(Answer::Long(listed));
                }
                let folder_href = inner.mount.href(&listed.path, true).len();
                let bytes = listed.asking.body_bytes(folder_href, &listed.children);
                let mut ms = MultiStatus::with_capacity(bytes);
                listed.write(inner, &mut ms, |_| Ok::<(), DavError>(()))?;
                Ok(Answer::Whole(ms.into_response()))
            })
            .await?;
        let listed = match answer {
            Answer::Whole(response) => return Ok(response),
            Answer::Long(listed) => listed,
        };
        // A long listing streams: the client reads the first responses while the rest are
        // written, and the body in memory stays a few chunks however large the folder.
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut ms = MultiStatus::with_capacity(STREAM_CHUNK + listed.asking.entry_bytes());
            let written = listed.write(&inner, &mut ms, |ms| {
                if ms.len() < STREAM_CHUNK {
                    return Ok(());
                }
                let chunk = Bytes::from(ms.take_written());
                tx.blocking_send(Ok(chunk)).map_err(|_| ClientGone)?;
                Ok(())
            });
            let last = match written {
                Ok(()) => Ok(Bytes::from(ms.finish())),
                // The 207 is on its way: all that is left is to cut the body short, which
                // the client sees as a failed request.
                Err(Stop::Failed(error)) => {
                    tracing::warn!(status = %error.status, detail = %error.detail,
                        path = %listed.path, "a streamed listing failed");
                    Err(std::io::Error::other(error.detail))
                }
                Err(Stop::ClientGone) => return,
            };
            let _ = tx.blocking_send(last);
        });
        Ok(multistatus_response(ChannelBody::new(rx).boxed_unsync()))
    }
}

/// Folders with more entries than this answer with a streamed body (chunked), smaller ones
/// with a whole one (and a Content-Length).
const STREAM_AFTER: usize = 256;
/// About how much of a streamed listing is sent at a time.
const STREAM_CHUNK: usize = 64 * 1024;
/// Chunks written ahead of the client.
const STREAM_QUEUE: usize = 4;

/// A PROPFIND's answer as its first blocking step leaves it.
enum Answer {
    /// Written whole.
    Whole(Response<DavBody>),
    /// Listed, to be written as a stream.
    Long(Listing),
}

/// Why writing a listing stopped before its end.
enum Stop {
    Failed(DavError),
    ClientGone,
}

impl From<DavError> for Stop {
    fn from(error: DavError) -> Self {
        Stop::Failed(error)
    }
}

/// The receiving end of a streamed listing went away.
struct ClientGone;

impl From<ClientGone> for Stop {
    fn from(_: ClientGone) -> Self {
        Stop::ClientGone
    }
}

/// A resource and, for `Depth: 1` on a folder, its children: what a PROPFIND answers about.
struct Listing {
    user: UserId,
    path: StorePath,
    entry: Entry,
    children: Vec<Entry>,
    asking: Asking,
}

impl Listing {
    /// Writes every response into `ms`, calling `flushed` after each one (a streamed body
    /// sends what has been written from there).
    fn write<E>(
        &self,
        inner: &Inner,
        ms: &mut MultiStatus,
        mut flushed: impl FnMut(&mut MultiStatus) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<DavError>,
    {
        let (user, path, asking) = (self.user, &self.path, &self.asking);
        // Locks that may cover the folder or a child, looked up once: usually none.
        let mut locks = inner.locks.covering(user, path);
        if !self.children.is_empty() {
            locks.extend(inner.locks.beneath(user, path));
        }
        describe(inner, ms, user, path, &self.entry, asking, &locks)?;
        flushed(ms)?;
        for child in &self.children {
            let Ok(child_path) = path.join(&child.name) else {
                tracing::warn!(name = %child.name, "store listed an invalid name");
                continue;
            };
            describe(inner, ms, user, &child_path, child, asking, &locks)?;
            flushed(ms)?;
        }
        Ok(())
    }
}

/// Adds one resource's `DAV:response`, written straight into the body. `candidates` holds at
/// least every lock covering `path`.
fn describe(
    inner: &Inner,
    ms: &mut MultiStatus,
    user: UserId,
    path: &StorePath,
    entry: &Entry,
    asking: &Asking,
    candidates: &[Lock],
) -> Result<(), DavError> {
    let dead = if asking.needs_dead {
        inner.store.props(user, path)?
    } else {
        Vec::new()
    };
    let locks: Vec<Lock> = candidates
        .iter()
        .filter(|l| l.covers(path))
        .cloned()
        .collect();
    let live = Live {
        path,
        entry,
        locks: &locks,
        mount: &inner.mount,
    };
    let dead_value = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let mut missing: Vec<&PropName> = Vec::new();
    let href = inner.mount.href(path, entry.is_dir());
    let out = ms.begin_response(&href);
    match &asking.wanted {
        Wanted::AllProp(include) => {
            for prop in live_props(entry) {
                live.write(out, prop);
            }
            for (name, value) in &dead {
                out.push_str(&prop_element(name, Some(&dead_value(value))));
            }
            for name in include.iter().filter(|n| !is_live(n)) {
                if !dead.iter().any(|(d, _)| d == name) {
                    missing.push(name);
                }
            }
        }
        Wanted::PropName => {
            for prop in live_props(entry) {
                out.push_str("<D:");
                out.push_str(prop.name());
                out.push_str("/>");
            }
            for (name, _) in &dead {
                out.push_str(&prop_element(name, None));
            }
        }
        Wanted::Prop(names) => {
            let tree_size = if asking.wants_size && entry.is_dir() {
                Some(inner.store.tree_size(user, path)?)
            } else {
                None
            };
            let oc = ocprops::Context {
                entry,
                instance: &inner.instance,
                tree_size,
            };
            for (name, source) in names.iter().zip(&asking.sources) {
                let found = match source {
                    Source::Computed => ocprops::write(out, name, &oc),
                    Source::Live(prop) => live.write(out, *prop),
                    Source::Dead => match dead.iter().find(|(d, _)| d == name) {
                        Some((_, v)) => {
                            out.push_str(&prop_element(name, Some(&dead_value(v))));
                            true
                        }
                        None => false,
                    },
                };
                if !found {
                    missing.push(name);
                }
            }
        }
    }
    ms.end_found();
    if !missing.is_empty() {
        let missing: Vec<String> = missing.iter().map(|n| prop_element(n, None)).collect();
        ms.propstat(StatusCode::NOT_FOUND, &missing);
    }
    ms.end_response();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::props::dav;

    #[test]
    fn parses_requests() {
        assert_eq!(parse_propfind(b"").expect("empty"), Wanted::AllProp(vec![]));
        assert_eq!(
            parse_propfind(b" \n").expect("blank"),
            Wanted::AllProp(vec![])
        );
        let body = br#"<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getetag/><x:a xmlns:x="urn:x"/></prop></propfind>"#;
        let Wanted::Prop(names) = parse_propfind(body).expect("prop") else {
            panic!("expected prop");
        };
        assert_eq!(
            names,
            [
                dav("getetag"),
                PropName {
                    namespace: "urn:x".into(),
                    name: "a".into()
                }
            ]
        );
        let body = br#"<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>"#;
        assert_eq!(parse_propfind(body).expect("propname"), Wanted::PropName);
        let body = br#"<propfind xmlns="DAV:"><foobar/><allprop/></propfind>"#;
        assert_eq!(
            parse_propfind(body).expect("extended"),
            Wanted::AllProp(vec![])
        );
    }

    #[test]
    fn refuses_bad_requests() {
        for bad in [
            &b"<foo>"[..],
            b"<propfind xmlns='DAV:'/>",
            b"<propfind><prop/></propfind>",
            b"<D:propfind xmlns:D=\"DAV:\"><D:prop><bar:foo xmlns:bar=\"\"/></D:prop></D:propfind>",
            b"<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><propfind xmlns='DAV:'><allprop/></propfind>",
        ] {
            let err = parse_propfind(bad).expect_err("must fail");
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(bad));
        }
    }
}
