//! Throws pseudo-random and mutated input at every parser of client data: none may panic.
//! (A stand-in for cargo-fuzz targets, which need a nightly toolchain.)

use http::{HeaderMap, HeaderValue};

use crate::href::{Mount, decode_segment};
use crate::if_header::IfHeader;
use crate::{headers, lock, propfind, proppatch, range, xml};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A string built from pieces that matter to the parsers, plus random bytes.
    fn input(&mut self, alphabet: &[&str]) -> String {
        let len = self.below(24);
        let mut out = String::new();
        for _ in 0..len {
            if self.below(8) == 0 {
                out.push(char::from_u32(self.below(0x3000) as u32).unwrap_or('?'));
            } else {
                out.push_str(alphabet[self.below(alphabet.len())]);
            }
        }
        out
    }
}

const IF_ALPHABET: &[&str] = &[
    "(",
    ")",
    "<",
    ">",
    "[",
    "]",
    "Not",
    " ",
    "\"",
    "W/",
    "opaquelocktoken:",
    "DAV:no-lock",
    "http://h/dav/a",
    "/",
    "e",
];
const XML_ALPHABET: &[&str] = &[
    "<",
    ">",
    "/",
    "D:",
    "xmlns",
    "=",
    "\"",
    "'",
    "DAV:",
    "propfind",
    "prop",
    "allprop",
    "propertyupdate",
    "set",
    "remove",
    "lockinfo",
    "lockscope",
    "exclusive",
    "locktype",
    "write",
    "owner",
    "&amp;",
    "&#65536;",
    "&x;",
    "<!DOCTYPE",
    "<![CDATA[",
    "]]>",
    "<?",
    "?>",
    " ",
    "x:",
];

#[test]
fn parsers_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mount = Mount::new("/dav");
    for _ in 0..20_000 {
        let text = rng.input(IF_ALPHABET);
        if let Ok(parsed) = IfHeader::parse(&text) {
            let _ = parsed.evaluate(|_| Default::default());
            let _ = parsed.submitted_tokens();
        }

        let text = rng.input(&[
            "bytes=",
            "-",
            ",",
            "0",
            "9",
            "18446744073709551616",
            " ",
            "x",
        ]);
        let _ = range::parse(Some(&text), rng.next() % 100);

        let text = rng.input(&[
            "%", "2F", "2e", "C3", "A9", "zz", "/", "..", "dav", "+", "\\",
        ]);
        let _ = decode_segment(&text);
        let _ = mount.resolve(&text);
        let _ = mount.resolve_url(&text);

        let mut map = HeaderMap::new();
        let value = rng.input(&[
            "Second-", "Infinite", ",", "1", "0", "infinity", "T", "F", "\"", "W/", "*",
        ]);
        if let Ok(value) = HeaderValue::from_str(&value) {
            for name in ["timeout", "depth", "overwrite", "if-match", "x-oc-mtime"] {
                map.insert(name, value.clone());
            }
            let _ = headers::timeout(&map);
            let _ = headers::depth(&map);
            let _ = headers::overwrite(&map);
            let _ = headers::etag_list(&map, "if-match");
            let _ = headers::oc_mtime(&map);
        }

        let body = rng.input(XML_ALPHABET);
        let _ = xml::parse(body.as_bytes());
        let _ = propfind::parse_propfind(body.as_bytes());
        let _ = proppatch::parse_proppatch(body.as_bytes());
        let _ = lock::parse_lockinfo(body.as_bytes());
    }
}

#[test]
fn mutated_valid_bodies_never_panic() {
    let seeds: [&[u8]; 3] = [
        br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><x:a xmlns:x="urn:x"/></D:prop></D:propfind>"#,
        br#"<propertyupdate xmlns="DAV:"><set><prop><t:v xmlns:t="urn:t">a<b xml:lang="en"/></t:v></prop></set></propertyupdate>"#,
        br#"<lockinfo xmlns="DAV:"><lockscope><shared/></lockscope><locktype><write/></locktype><owner><href>x</href></owner></lockinfo>"#,
    ];
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let mut body = seeds[rng.below(seeds.len())].to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(body.len());
            match rng.below(3) {
                0 => body[at] = rng.next() as u8,
                1 => {
                    body.remove(at);
                }
                _ => body.insert(at, b"<>&/\"'"[rng.below(6)]),
            }
        }
        let _ = propfind::parse_propfind(&body);
        let _ = proppatch::parse_proppatch(&body);
        let _ = lock::parse_lockinfo(&body);
    }
}
