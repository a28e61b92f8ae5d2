//! The WebDAV `If` header (RFC 4918 §10.4): parsing and evaluation.
//!
//! ```text
//! If = ( 1*No-tag-list | 1*Tagged-list )
//! Tagged-list = Resource-Tag 1*List        Resource-Tag = "<" Simple-ref ">"
//! List = "(" 1*Condition ")"               Condition = ["Not"] ( State-token | "[" entity-tag "]" )
//! ```

use crate::headers::EntityTag;

/// A parsed `If` header: lists, each optionally tagged with the resource it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IfHeader {
    pub lists: Vec<IfList>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IfList {
    /// The tag URL (absolute URL or path) or `None` for the request URI.
    pub resource: Option<String>,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Condition {
    pub not: bool,
    pub test: Test,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Test {
    /// A state token: a lock token such as `opaquelocktoken:…`, or any other URI (`DAV:no-lock`).
    Token(String),
    ETag(EntityTag),
}

/// Why an `If` header could not be parsed (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed If header at byte {at}: {why}")]
pub(crate) struct IfError {
    pub at: usize,
    pub why: &'static str,
}

/// What the evaluation needs to know about one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ResourceState {
    /// Current strong etag (unquoted), `None` when the resource does not exist.
    pub etag: Option<String>,
    /// Tokens of the locks that cover the resource.
    pub lock_tokens: Vec<String>,
}

impl IfHeader {
    pub fn parse(text: &str) -> Result<IfHeader, IfError> {
        Parser { text, at: 0 }.header()
    }

    /// True when at least one list holds. `state` describes the resource a tag names
    /// (`None`: the request URI).
    pub fn evaluate(&self, mut state: impl FnMut(Option<&str>) -> ResourceState) -> bool {
        self.lists.iter().any(|list| {
            let resource = state(list.resource.as_deref());
            list.conditions.iter().all(|c| c.holds(&resource))
        })
    }

    /// The lock tokens the client submits: every state token not under `Not`.
    pub fn submitted_tokens(&self) -> Vec<String> {
        self.lists
            .iter()
            .flat_map(|l| &l.conditions)
            .filter(|c| !c.not)
            .filter_map(|c| match &c.test {
                Test::Token(token) => Some(token.clone()),
                Test::ETag(_) => None,
            })
            .collect()
    }

    /// Whether any condition tests an entity tag (so evaluation needs the resource's etag).
    pub fn mentions_etags(&self) -> bool {
        self.lists
            .iter()
            .flat_map(|l| &l.conditions)
            .any(|c| matches!(c.test, Test::ETag(_)))
    }
}

impl Condition {
    fn holds(&self, resource: &ResourceState) -> bool {
        let result = match &self.test {
            Test::Token(token) => resource.lock_tokens.iter().any(|t| t == token),
            Test::ETag(tag) => resource
                .etag
                .as_deref()
                .is_some_and(|etag| tag.strong_eq(etag)),
        };
        result != self.not
    }
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn fail<T>(&self, why: &'static str) -> Result<T, IfError> {
        Err(IfError { at: self.at, why })
    }

    fn skip_ws(&mut self) {
        let rest = &self.text[self.at..];
        self.at += rest.len() - rest.trim_start().len();
    }

    fn peek(&self) -> Option<char> {
        self.text[self.at..].chars().next()
    }

    /// Reads up to (not including) `end`, then skips it.
    fn until(&mut self, end: char) -> Result<&str, IfError> {
        let rest = &self.text[self.at..];
        let Some(len) = rest.find(end) else {
            return self.fail("unterminated token");
        };
        self.at += len + end.len_utf8();
        Ok(&rest[..len])
    }

    fn header(mut self) -> Result<IfHeader, IfError> {
        let mut lists = Vec::new();
        let mut tagged: Option<bool> = None;
        let mut resource: Option<String> = None;
        let mut tag_has_list = true;
        loop {
            self.skip_ws();
            match self.peek() {
                None => break,
                Some('<') => {
                    if tagged == Some(false) || !tag_has_list {
                        return self.fail("tagged and untagged lists mixed, or tag without list");
                    }
                    tagged = Some(true);
                    self.at += 1;
                    let url = self.until('>')?.trim();
                    if url.is_empty() {
                        return self.fail("empty resource tag");
                    }
                    resource = Some(url.to_owned());
                    tag_has_list = false;
                }
                Some('(') => {
                    if tagged.is_none() {
                        tagged = Some(false);
                    }
                    self.at += 1;
                    let conditions = self.conditions()?;
                    lists.push(IfList {
                        resource: resource.clone(),
                        conditions,
                    });
                    tag_has_list = true;
                }
                Some(_) => return self.fail("expected '<' or '('"),
            }
        }
        if lists.is_empty() || !tag_has_list {
            return self.fail("no condition list");
        }
        Ok(IfHeader { lists })
    }

    fn conditions(&mut self) -> Result<Vec<Condition>, IfError> {
        let mut conditions = Vec::new();
        loop {
            self.skip_ws();
            let mut not = false;
            let rest = &self.text[self.at..];
            if rest.len() >= 3 && rest.as_bytes()[..3].eq_ignore_ascii_case(b"not") {
                not = true;
                self.at += 3;
                self.skip_ws();
            }
            let test = match self.peek() {
                Some(')') if !not => {
                    self.at += 1;
                    if conditions.is_empty() {
                        return self.fail("empty list");
                    }
                    return Ok(conditions);
                }
                Some('<') => {
                    self.at += 1;
                    let token = self.until('>')?.trim();
                    if token.is_empty() {
                        return self.fail("empty state token");
                    }
                    Test::Token(token.to_owned())
                }
                Some('[') => {
                    self.at += 1;
                    let tag = self.until(']')?;
                    match EntityTag::parse(tag) {
                        Some(tag) => Test::ETag(tag),
                        None => return self.fail("bad entity tag"),
                    }
                }
                _ => return self.fail("expected a state token or an entity tag"),
            };
            conditions.push(Condition { not, test });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(etag: &str, tokens: &[&str]) -> ResourceState {
        ResourceState {
            etag: Some(etag.into()),
            lock_tokens: tokens.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn parses_untagged_lists() {
        let h =
            IfHeader::parse("(<opaquelocktoken:a> [\"e1\"]) (Not <DAV:no-lock>)").expect("parse");
        assert_eq!(h.lists.len(), 2);
        assert_eq!(h.lists[0].resource, None);
        assert_eq!(h.lists[0].conditions.len(), 2);
        assert!(h.lists[1].conditions[0].not);
        assert_eq!(h.submitted_tokens(), ["opaquelocktoken:a"]);
        assert!(h.mentions_etags());
    }

    #[test]
    fn parses_tagged_lists() {
        let h = IfHeader::parse(
            "<http://h/dav/a> (<opaquelocktoken:x>) ([W/\"w\"]) </dav/b> (not <urn:y>)",
        )
        .expect("parse");
        assert_eq!(h.lists.len(), 3);
        assert_eq!(h.lists[1].resource.as_deref(), Some("http://h/dav/a"));
        assert_eq!(h.lists[2].resource.as_deref(), Some("/dav/b"));
        assert!(h.lists[2].conditions[0].not);
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "()",
            "(",
            "(<a>",
            "<http://x>",
            "(<a>) <http://x> (<b>)",
            "<http://x> (<a>) <http://y>",
            "(Not)",
            "([\"unterminated)",
            "(<>)",
            "x",
            "(foo)",
        ] {
            assert!(IfHeader::parse(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn evaluates_like_litmus_expects() {
        let current = state("e1", &["opaquelocktoken:t"]);
        let eval = |text: &str| {
            IfHeader::parse(text)
                .expect("parse")
                .evaluate(|_| current.clone())
        };
        assert!(eval("(<opaquelocktoken:t> [\"e1\"])"));
        assert!(!eval("(<DAV:no-lock> [\"e1\"])"));
        assert!(!eval("(<DAV:no-lock>)"));
        assert!(eval("(<opaquelocktoken:t>) (Not <DAV:no-lock>)"));
        assert!(eval("(<opaquelocktoken:tx>) (Not <DAV:no-lock>)"));
        assert!(eval(
            "(<opaquelocktoken:t> [\"e1\"]) (Not <DAV:no-lock> [\"e1\"])"
        ));
        assert!(!eval(
            "(<opaquelocktoken:t> [\"e2\"]) (Not <DAV:no-lock> [\"e2\"])"
        ));
        assert!(!eval("([W/\"e1\"])"));
    }

    #[test]
    fn missing_resources_match_no_etag() {
        let h = IfHeader::parse("([\"e1\"])").expect("parse");
        assert!(!h.evaluate(|_| ResourceState::default()));
        let h = IfHeader::parse("(Not [\"e1\"])").expect("parse");
        assert!(h.evaluate(|_| ResourceState::default()));
    }
}
