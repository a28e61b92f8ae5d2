//! The ownCloud/Nextcloud properties the sync clients and phone apps ask for by name
//! (`oc:id`, `oc:permissions`, `oc:size`, `oc:checksums`…), computed from store entries.
//! They are never part of `allprop` (Nextcloud does not list them there either) and are
//! protected: PROPPATCH cannot set them.

use std::fmt::Write as _;

use percloud_store::{Entry, PropName};

use crate::handler::oc_id;
use crate::xml::escape_into;

pub(crate) const OC: &str = "http://owncloud.org/ns";
pub(crate) const NC: &str = "http://nextcloud.org/ns";

/// Every resource may be read, shared-flagged (R), gotten (G), deleted (D), renamed (N),
/// moved (V); files written (W); folders get new files (C) and folders (K).
const FILE_PERMISSIONS: &str = "RGDNVW";
const DIR_PERMISSIONS: &str = "RGDNVCK";

/// Whether `name` is one of the properties computed here.
pub(crate) fn is_computed(name: &PropName) -> bool {
    match name.namespace.as_str() {
        OC => matches!(
            name.name.as_str(),
            "id" | "fileid"
                | "permissions"
                | "size"
                | "checksums"
                | "data-fingerprint"
                | "share-types"
                | "favorite"
                | "comments-unread"
        ),
        NC => matches!(
            name.name.as_str(),
            "has-preview" | "is-encrypted" | "mount-type" | "lock" | "rich-workspace"
        ),
        _ => false,
    }
}

/// What a computed property needs besides the entry.
pub(crate) struct Context<'a> {
    pub entry: &'a Entry,
    pub instance: &'a str,
    /// For folders: the total size beneath (asked for only when `oc:size` is wanted).
    pub tree_size: Option<u64>,
}

/// Appends the element of `name` (prefix `oc:` or `nc:`, declared on the multistatus root);
/// `false`, writing nothing, when it has no value for this resource.
pub(crate) fn write(out: &mut String, name: &PropName, ctx: &Context<'_>) -> bool {
    let entry = ctx.entry;
    let prefix = if name.namespace == OC { "oc" } else { "nc" };
    let mut value = String::new();
    let known = match (prefix, name.name.as_str()) {
        ("oc", "id") => {
            value = oc_id(entry.id, ctx.instance);
            true
        }
        ("oc", "fileid") => {
            let _ = write!(value, "{}", entry.id);
            true
        }
        ("oc", "permissions") => {
            value.push_str(if entry.is_dir() {
                DIR_PERMISSIONS
            } else {
                FILE_PERMISSIONS
            });
            true
        }
        ("oc", "size") => match (entry.is_dir(), ctx.tree_size) {
            (false, _) => {
                let _ = write!(value, "{}", entry.size);
                true
            }
            (true, Some(size)) => {
                let _ = write!(value, "{size}");
                true
            }
            (true, None) => false,
        },
        ("oc", "checksums") => match &entry.checksum {
            Some(sum) => {
                value.push_str("<oc:checksum>");
                escape_into(&mut value, sum);
                value.push_str("</oc:checksum>");
                true
            }
            None => false,
        },
        // Empty: no data fingerprint (it would tell clients a backup was restored) and no
        // shares from other users.
        ("oc", "data-fingerprint" | "share-types") => true,
        ("oc", "favorite" | "comments-unread") => {
            value.push('0');
            true
        }
        ("nc", "has-preview") => {
            value.push_str(if has_preview(entry) { "true" } else { "false" });
            true
        }
        ("nc", "is-encrypted" | "lock") => {
            value.push('0');
            true
        }
        ("nc", "mount-type" | "rich-workspace") => true,
        _ => false,
    };
    if !known {
        return false;
    }
    let _ = write!(out, "<{prefix}:{}", name.name);
    if value.is_empty() {
        out.push_str("/>");
    } else {
        let _ = write!(out, ">{value}</{prefix}:{}>", name.name);
    }
    true
}

/// Files the thumbnailer can render (JPEG, PNG, WebP, GIF).
fn has_preview(entry: &Entry) -> bool {
    !entry.is_dir()
        && matches!(
            crate::props::content_type(&entry.name),
            "image/jpeg" | "image/png" | "image/webp" | "image/gif"
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use percloud_store::EntryKind;
    use std::time::UNIX_EPOCH;

    fn entry(kind: EntryKind) -> Entry {
        Entry {
            id: 42,
            name: "a.jpg".into(),
            kind,
            size: 7,
            mtime: UNIX_EPOCH,
            created: UNIX_EPOCH,
            etag: "e".into(),
            content_hash: None,
            version: None,
            checksum: Some("SHA1:ab".into()),
        }
    }

    fn render(name: (&str, &str), e: &Entry, tree: Option<u64>) -> Option<String> {
        let name = PropName {
            namespace: name.0.into(),
            name: name.1.into(),
        };
        assert!(is_computed(&name));
        let mut out = String::new();
        let ctx = Context {
            entry: e,
            instance: "oc0123456789",
            tree_size: tree,
        };
        write(&mut out, &name, &ctx).then_some(out)
    }

    #[test]
    fn renders_what_the_clients_need() {
        let file = entry(EntryKind::File);
        let dir = entry(EntryKind::Dir);
        assert_eq!(
            render((OC, "id"), &file, None).as_deref(),
            Some("<oc:id>00000042oc0123456789</oc:id>")
        );
        assert_eq!(
            render((OC, "permissions"), &file, None).as_deref(),
            Some("<oc:permissions>RGDNVW</oc:permissions>")
        );
        assert_eq!(
            render((OC, "permissions"), &dir, None).as_deref(),
            Some("<oc:permissions>RGDNVCK</oc:permissions>")
        );
        assert_eq!(
            render((OC, "size"), &dir, Some(99)).as_deref(),
            Some("<oc:size>99</oc:size>")
        );
        assert_eq!(render((OC, "size"), &dir, None), None);
        assert_eq!(
            render((OC, "checksums"), &file, None).as_deref(),
            Some("<oc:checksums><oc:checksum>SHA1:ab</oc:checksum></oc:checksums>")
        );
        assert_eq!(
            render((NC, "has-preview"), &file, None).as_deref(),
            Some("<nc:has-preview>true</nc:has-preview>")
        );
        assert_eq!(
            render((OC, "share-types"), &file, None).as_deref(),
            Some("<oc:share-types/>")
        );
    }
}
