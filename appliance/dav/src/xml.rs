//! XML in and out: a tiny namespace-resolved tree parsed from request bodies (no DTDs, no
//! external entities, bounded depth), and escaping and re-serialisation helpers for responses.

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

/// The DAV: namespace.
pub(crate) const DAV: &str = "DAV:";
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// Deepest element nesting accepted in a request body.
const MAX_NESTING: usize = 64;

/// Why a request body is not acceptable XML (all 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum XmlError {
    #[error("DOCTYPE declarations are not accepted")]
    Doctype,
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("XML nested deeper than {MAX_NESTING} elements")]
    TooDeep,
    #[error("empty XML document")]
    Empty,
}

/// An element with its namespace resolved (`""` for none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub ns: String,
    pub name: String,
    pub attrs: Vec<Attr>,
    pub children: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attr {
    pub ns: String,
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// Child elements, skipping text.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(ns, name))
    }
}

/// Parses a request body into its root element.
pub(crate) fn parse(body: &[u8]) -> Result<Element, XmlError> {
    let mut reader = NsReader::from_reader(body);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| XmlError::Malformed(e.to_string()))?;
        let ns = namespace(ns)?;
        match event {
            Event::Start(start) => {
                if stack.len() >= MAX_NESTING {
                    return Err(XmlError::TooDeep);
                }
                let element = element(&reader, ns, &start)?;
                stack.push(element);
            }
            Event::Empty(start) => {
                let element = element(&reader, ns, &start)?;
                attach(&mut stack, &mut root, element)?;
            }
            Event::End(_) => {
                let element = stack
                    .pop()
                    .ok_or_else(|| XmlError::Malformed("unbalanced end tag".into()))?;
                attach(&mut stack, &mut root, element)?;
            }
            Event::Text(text) => {
                let text = text
                    .unescape()
                    .map_err(|e| XmlError::Malformed(e.to_string()))?;
                push_text(&mut stack, &text)?;
            }
            Event::CData(data) => {
                let text = std::str::from_utf8(&data)
                    .map_err(|_| XmlError::Malformed("CDATA is not UTF-8".into()))?;
                push_text(&mut stack, text)?;
            }
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed("unclosed element".into()));
    }
    root.ok_or(XmlError::Empty)
}

fn namespace(ns: ResolveResult<'_>) -> Result<String, XmlError> {
    match ns {
        ResolveResult::Bound(ns) => std::str::from_utf8(ns.as_ref())
            .map(str::to_owned)
            .map_err(|_| XmlError::Malformed("namespace is not UTF-8".into())),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(prefix) => Err(XmlError::Malformed(format!(
            "unknown namespace prefix {:?}",
            String::from_utf8_lossy(&prefix)
        ))),
    }
}

fn element(
    reader: &NsReader<&[u8]>,
    ns: String,
    start: &BytesStart<'_>,
) -> Result<Element, XmlError> {
    let name = utf8(start.local_name().as_ref())?;
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| XmlError::Malformed(e.to_string()))?;
        let key = attr.key.as_ref();
        if key == b"xmlns" {
            continue;
        }
        if key.starts_with(b"xmlns:") {
            // Namespaces in XML 1.0 forbids binding a prefix to the empty name.
            if attr.value.is_empty() {
                return Err(XmlError::Malformed(
                    "prefix bound to an empty namespace".into(),
                ));
            }
            continue;
        }
        let (attr_ns, local) = reader.resolve_attribute(attr.key);
        let attr_ns = namespace(attr_ns)?;
        let value = attr
            .unescape_value()
            .map_err(|e| XmlError::Malformed(e.to_string()))?;
        attrs.push(Attr {
            ns: attr_ns,
            name: utf8(local.as_ref())?,
            value: value.into_owned(),
        });
    }
    Ok(Element {
        ns,
        name,
        attrs,
        children: Vec::new(),
    })
}

fn utf8(bytes: &[u8]) -> Result<String, XmlError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| XmlError::Malformed("name is not UTF-8".into()))
}

fn attach(
    stack: &mut [Element],
    root: &mut Option<Element>,
    element: Element,
) -> Result<(), XmlError> {
    if let Some(parent) = stack.last_mut() {
        parent.children.push(Node::Element(element));
    } else if root.is_some() {
        return Err(XmlError::Malformed("more than one root element".into()));
    } else {
        *root = Some(element);
    }
    Ok(())
}

fn push_text(stack: &mut [Element], text: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => {
            if let Some(Node::Text(previous)) = parent.children.last_mut() {
                previous.push_str(text);
            } else {
                parent.children.push(Node::Text(text.to_owned()));
            }
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(XmlError::Malformed("text outside the root element".into())),
    }
}

/// Escapes text content.
pub(crate) fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// Appends `text` escaped as [`escape_text`] does; copies runs of plain bytes at once.
pub(crate) fn escape_into(out: &mut String, text: &str) {
    let mut rest = text;
    // A byte scan: the characters escaped are ASCII, so their positions are char boundaries,
    // and most names and hrefs have none (`str::find` with a char set decodes every char).
    while let Some(at) = rest
        .bytes()
        .position(|b| matches!(b, b'&' | b'<' | b'>' | b'\r'))
    {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            _ => "&#13;",
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

/// Escapes an attribute value (double-quoted).
pub(crate) fn escape_attr(text: &str) -> String {
    escape_text(text).replace('"', "&quot;")
}

/// Serialises `nodes` as a self-contained fragment: every element declares the namespace it
/// uses, so the fragment can be stored (dead properties, lock owners) and embedded anywhere.
pub(crate) fn write_fragment(out: &mut String, nodes: &[Node]) {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(&escape_text(text)),
            Node::Element(element) => write_element(out, element),
        }
    }
}

fn write_element(out: &mut String, element: &Element) {
    let tag = if element.ns.is_empty() {
        out.push_str(&format!("<{} xmlns=\"\"", element.name));
        element.name.clone()
    } else {
        out.push_str(&format!(
            "<x:{} xmlns:x=\"{}\"",
            element.name,
            escape_attr(&element.ns)
        ));
        format!("x:{}", element.name)
    };
    for (i, attr) in element.attrs.iter().enumerate() {
        let value = escape_attr(&attr.value);
        if attr.ns.is_empty() {
            out.push_str(&format!(" {}=\"{value}\"", attr.name));
        } else if attr.ns == XML_NS {
            out.push_str(&format!(" xml:{}=\"{value}\"", attr.name));
        } else {
            out.push_str(&format!(
                " xmlns:a{i}=\"{}\" a{i}:{}=\"{value}\"",
                escape_attr(&attr.ns),
                attr.name
            ));
        }
    }
    if element.children.is_empty() {
        out.push_str("/>");
    } else {
        out.push('>');
        write_fragment(out, &element.children);
        out.push_str(&format!("</{tag}>"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_namespaces() {
        let root = parse(
            br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><x:a xmlns:x="urn:x"/><b xmlns="">t&amp;</b></D:prop></D:propfind>"#,
        )
        .expect("parse");
        assert!(root.is(DAV, "propfind"));
        let prop = root.child(DAV, "prop").expect("prop");
        let names: Vec<_> = prop
            .elements()
            .map(|e| (e.ns.as_str(), e.name.as_str()))
            .collect();
        assert_eq!(names, [("urn:x", "a"), ("", "b")]);
        assert_eq!(
            prop.elements().nth(1).expect("b").children,
            [Node::Text("t&".into())]
        );
    }

    #[test]
    fn refuses_doctype_and_entities() {
        let xxe = br#"<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>"#;
        assert_eq!(parse(xxe), Err(XmlError::Doctype));
        let bomb =
            br#"<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><l>&lol2;</l>"#;
        assert_eq!(parse(bomb), Err(XmlError::Doctype));
        assert!(matches!(
            parse(b"<foo>&xxe;</foo>"),
            Err(XmlError::Malformed(_))
        ));
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            &b"<foo>"[..],
            b"<a></b>",
            b"<a/><b/>",
            b"text",
            b"<x:a/>",
            b"<D:propfind xmlns:D=\"DAV:\"><D:prop><bar:foo xmlns:bar=\"\"/></D:prop></D:propfind>",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse(b""), Err(XmlError::Empty));
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert_eq!(parse(deep.as_bytes()), Err(XmlError::TooDeep));
    }

    #[test]
    fn fragments_are_self_contained() {
        let root = parse(
            "<p xmlns:t='urn:t'><t:v xml:lang='en' t:k='1' plain='&quot;'>a<foo xmlns='http://bar'/>&#65536;</t:v></p>"
                .as_bytes(),
        )
        .expect("parse");
        let mut out = String::new();
        write_fragment(&mut out, &root.children);
        let again = parse(format!("<w>{out}</w>").as_bytes()).expect("reparse");
        assert_eq!(again.children, root.children);
        assert!(out.contains('\u{10000}'));
    }
}
