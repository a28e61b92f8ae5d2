//! The records stored as values in the metadata database.
//!
//! Every value is `[format version u8] ++ postcard(record)`. Each record type has its own
//! version ([`Record::VERSION`]). Decoding refuses a version this build does not know with
//! [`StoreError::UnsupportedFormat`]; when a record changes shape, its version is bumped and
//! [`Record::decode_older`] keeps reading the old shapes.
//!
//! History: version 2 of node and version records adds the client's checksum
//! (`FileHead::checksum`, `VersionRec::checksum`; the Nextcloud protocol's `OC-Checksum`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{NodeId, Result, StoreError, TrashId, UserId, VersionId};

/// The format version of records whose shape never changed.
pub(crate) const RECORD_VERSION: u8 = 1;

/// A BLAKE3 hash of a chunk's plaintext.
pub(crate) type ChunkHash = [u8; 32];

/// A type persisted as a versioned record.
pub(crate) trait Record: Serialize + DeserializeOwned {
    /// What the record is, for error messages.
    const WHAT: &'static str;
    /// The format version this build writes (and the newest it reads).
    const VERSION: u8 = RECORD_VERSION;

    /// Reads a record of an older format `version` (below [`Record::VERSION`]); `None` when
    /// this type never had that version.
    fn decode_older(_version: u8, _body: &[u8]) -> Option<Result<Self>> {
        None
    }

    fn encode(&self) -> Result<Vec<u8>> {
        // Room for the usual record: grown from one byte, the buffer was reallocated five
        // times for each, and a small upload writes half a dozen records.
        let mut buf = Vec::with_capacity(128);
        buf.push(Self::VERSION);
        postcard::to_extend(self, buf).map_err(|e| StoreError::Corrupt {
            what: Self::WHAT.to_owned(),
            detail: format!("cannot encode: {e}"),
        })
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let Some((&version, body)) = bytes.split_first() else {
            return Err(StoreError::Corrupt {
                what: Self::WHAT.to_owned(),
                detail: "empty record".to_owned(),
            });
        };
        if version != Self::VERSION {
            return Self::decode_older(version, body).unwrap_or(Err(
                StoreError::UnsupportedFormat {
                    what: Self::WHAT,
                    found: version,
                    supported: Self::VERSION,
                },
            ));
        }
        postcard_decode(Self::WHAT, body)
    }
}

fn postcard_decode<T: DeserializeOwned>(what: &str, body: &[u8]) -> Result<T> {
    postcard::from_bytes(body).map_err(|e| StoreError::Corrupt {
        what: what.to_owned(),
        detail: format!("cannot decode: {e}"),
    })
}

/// A bare id or counter (children table values, meta counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IdRec(pub u64);
impl Record for IdRec {
    const WHAT: &'static str = "id record";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum NodeKind {
    File,
    Dir,
}

/// The current content of a file node, copied from its current version so listings need no
/// second lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileHead {
    pub version: VersionId,
    pub size: u64,
    pub hash: [u8; 32],
    /// The checksum the client sent and we verified, e.g. `SHA1:<hex>` (record version 2).
    pub checksum: Option<String>,
}

/// A file or folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeRec {
    pub owner: UserId,
    /// 0 for a user's root and for the top of a trashed subtree.
    pub parent: NodeId,
    pub name: String,
    pub kind: NodeKind,
    /// Nanoseconds since the Unix epoch.
    pub created: u64,
    pub mtime: u64,
    /// Change sequence: set from the global counter whenever this node or anything beneath
    /// it changes; folder ETags derive from it.
    pub seq: u64,
    /// Set on the top node of a trashed subtree.
    pub trash: Option<TrashId>,
    /// Files only.
    pub file: Option<FileHead>,
}
impl Record for NodeRec {
    const WHAT: &'static str = "node record";
    const VERSION: u8 = 2;

    fn decode_older(version: u8, body: &[u8]) -> Option<Result<Self>> {
        (version == 1).then(|| postcard_decode::<v1::NodeRec>(Self::WHAT, body).map(Into::into))
    }
}

/// A version of a file, without its chunk list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VersionRec {
    pub size: u64,
    pub mtime: u64,
    pub created: u64,
    pub hash: [u8; 32],
    pub chunk_count: u64,
    /// See [`FileHead::checksum`] (record version 2).
    pub checksum: Option<String>,
}
impl Record for VersionRec {
    const WHAT: &'static str = "version record";
    const VERSION: u8 = 2;

    fn decode_older(version: u8, body: &[u8]) -> Option<Result<Self>> {
        (version == 1).then(|| postcard_decode::<v1::VersionRec>(Self::WHAT, body).map(Into::into))
    }
}

/// Record shapes of format version 1, read and upgraded on the fly.
mod v1 {
    use serde::Deserialize;

    use crate::{NodeId, TrashId, UserId, VersionId};

    #[derive(Deserialize)]
    pub struct FileHead {
        pub version: VersionId,
        pub size: u64,
        pub hash: [u8; 32],
    }

    #[derive(Deserialize)]
    pub struct NodeRec {
        pub owner: UserId,
        pub parent: NodeId,
        pub name: String,
        pub kind: super::NodeKind,
        pub created: u64,
        pub mtime: u64,
        pub seq: u64,
        pub trash: Option<TrashId>,
        pub file: Option<FileHead>,
    }

    #[derive(Deserialize)]
    pub struct VersionRec {
        pub size: u64,
        pub mtime: u64,
        pub created: u64,
        pub hash: [u8; 32],
        pub chunk_count: u64,
    }

    impl From<NodeRec> for super::NodeRec {
        fn from(n: NodeRec) -> Self {
            super::NodeRec {
                owner: n.owner,
                parent: n.parent,
                name: n.name,
                kind: n.kind,
                created: n.created,
                mtime: n.mtime,
                seq: n.seq,
                trash: n.trash,
                file: n.file.map(|f| super::FileHead {
                    version: f.version,
                    size: f.size,
                    hash: f.hash,
                    checksum: None,
                }),
            }
        }
    }

    impl From<VersionRec> for super::VersionRec {
        fn from(v: VersionRec) -> Self {
            super::VersionRec {
                size: v.size,
                mtime: v.mtime,
                created: v.created,
                hash: v.hash,
                chunk_count: v.chunk_count,
                checksum: None,
            }
        }
    }
}

/// One chunk of a version: its hash and plaintext length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChunkRef {
    pub hash: ChunkHash,
    pub len: u32,
}

/// The chunk list of a version, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChunkListRec(pub Vec<ChunkRef>);
impl Record for ChunkListRec {
    const WHAT: &'static str = "chunk list record";
}

/// Where a chunk lives and how many version chunk-list entries reference it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChunkRec {
    pub pack: u64,
    /// Offset of the entry header in the pack.
    pub offset: u64,
    pub stored_len: u32,
    pub plain_len: u32,
    pub compression: u8,
    pub refcount: u64,
    /// Quarantined by fsck: the stored bytes are bad. A later upload of the same content
    /// replaces the location and clears the flag.
    pub damaged: bool,
}
impl Record for ChunkRec {
    const WHAT: &'static str = "chunk record";
}

/// Bookkeeping of one pack file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PackRec {
    /// Bytes of entries the chunk index points at (headers included).
    pub live_bytes: u64,
    pub live_entries: u64,
}
impl Record for PackRec {
    const WHAT: &'static str = "pack record";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UserRec {
    pub name: String,
    pub password_hash: String,
    pub quota: Option<u64>,
    pub used: u64,
    pub root: NodeId,
    pub created: u64,
}
impl Record for UserRec {
    const WHAT: &'static str = "user record";
}

impl UserRec {
    /// Refuses an announced length that does not fit the free quota (checked before any
    /// byte is written; the commit checks the real size again).
    pub fn check_room(&self, len: Option<u64>) -> Result<()> {
        if let (Some(quota), Some(len)) = (self.quota, len) {
            let available = quota.saturating_sub(self.used);
            if len > available {
                return Err(StoreError::QuotaExceeded {
                    user: self.name.clone(),
                    needed: len,
                    available,
                });
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TrashRec {
    pub node: NodeId,
    /// Where it was, relative to the user's root, `/`-separated.
    pub original_path: String,
    pub deleted: u64,
}
impl Record for TrashRec {
    const WHAT: &'static str = "trash record";
}

/// A dead property value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PropRec(pub Vec<u8>);
impl Record for PropRec {
    const WHAT: &'static str = "property record";
}

/// Why fsck quarantined a chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QuarantineRec {
    pub pack: u64,
    pub offset: u64,
    pub detail: String,
    pub when: u64,
    /// Versions (node, version) that referenced the chunk when it was quarantined.
    pub versions: Vec<(NodeId, VersionId)>,
}
impl Record for QuarantineRec {
    const WHAT: &'static str = "quarantine record";
}

/// Retention settings chosen by the admin; win over `StoreOptions::retention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RetentionRec {
    pub keep_versions: u32,
    pub keep_days: u32,
    pub trash_days: u32,
}
impl Record for RetentionRec {
    const WHAT: &'static str = "retention record";
}

/// A share link. `mode`: 0 read, 1 upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShareRec {
    pub user: UserId,
    pub node: NodeId,
    pub mode: u8,
    pub password_hash: Option<String>,
    pub expires: Option<u64>,
    pub created: u64,
    pub nonce: [u8; 32],
    pub token_hash: [u8; 32],
}
impl Record for ShareRec {
    const WHAT: &'static str = "share record";
}

/// A resumable upload: the chunks cut so far (each holding one reference, like a version's
/// chunk list) and the length of the un-cut tail kept in `staging/<id>-<offset>.tail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StagedRec {
    pub user: UserId,
    pub length: Option<u64>,
    /// Bytes durably received: the chunks' lengths plus `tail_len`.
    pub offset: u64,
    pub created: u64,
    pub updated: u64,
    pub label: String,
    pub chunks: Vec<ChunkRef>,
    pub tail_len: u64,
}
impl Record for StagedRec {
    const WHAT: &'static str = "staged upload record";
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip_and_version_check() {
        let rec = PackRec {
            live_bytes: 7,
            live_entries: 1,
        };
        let bytes = rec.encode().unwrap();
        assert_eq!(bytes[0], RECORD_VERSION);
        assert_eq!(PackRec::decode(&bytes).unwrap(), rec);
        let mut future = bytes.clone();
        future[0] = 99;
        assert!(matches!(
            PackRec::decode(&future),
            Err(StoreError::UnsupportedFormat { found: 99, .. })
        ));
        assert!(matches!(
            PackRec::decode(&[]),
            Err(StoreError::Corrupt { .. })
        ));
    }

    /// A data folder whose file was written by the release before checksums (its node and
    /// version records rewritten here in the version-1 shape) opens and serves the file.
    #[test]
    fn a_store_with_version_1_records_opens() {
        use crate::tables::DbResult;
        use crate::{CommitOptions, Store, StoreOptions, StorePath};
        use redb::ReadableTable;
        use std::io::Read;

        #[derive(Serialize)]
        struct V1Head {
            version: u64,
            size: u64,
            hash: [u8; 32],
        }
        #[derive(Serialize)]
        struct V1Node {
            owner: u64,
            parent: u64,
            name: String,
            kind: NodeKind,
            created: u64,
            mtime: u64,
            seq: u64,
            trash: Option<u64>,
            file: Option<V1Head>,
        }
        #[derive(Serialize)]
        struct V1Version {
            size: u64,
            mtime: u64,
            created: u64,
            hash: [u8; 32],
            chunk_count: u64,
        }
        fn v1<T: Serialize>(value: &T) -> Vec<u8> {
            postcard::to_extend(value, vec![1]).unwrap()
        }

        let dir = tempfile::tempdir().unwrap();
        let path = StorePath::parse("/old.txt").unwrap();
        let (id, etag) = {
            let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
            let user = store.create_user("u", "$argon2id$x", None).unwrap().id;
            let mut up = store.begin_upload(user, None).unwrap();
            up.write(b"written by an older release").unwrap();
            let options = CommitOptions {
                checksum: Some("SHA1:ignored".into()),
                ..CommitOptions::default()
            };
            let entry = up.commit(&path, &options).unwrap().entry;
            store
                .inner
                .write("rewriting as version 1", |t| {
                    let node = crate::tables::need_node(&t.nodes, entry.id)?;
                    let head = node.file.clone().unwrap();
                    let old = V1Node {
                        owner: node.owner,
                        parent: node.parent,
                        name: node.name.clone(),
                        kind: node.kind,
                        created: node.created,
                        mtime: node.mtime,
                        seq: node.seq,
                        trash: node.trash,
                        file: Some(V1Head {
                            version: head.version,
                            size: head.size,
                            hash: head.hash,
                        }),
                    };
                    t.nodes.insert(entry.id, v1(&old).as_slice()).db("node")?;
                    let rec = t
                        .versions
                        .get((entry.id, head.version))
                        .db("version")?
                        .map(|g| VersionRec::decode(g.value()))
                        .unwrap()?;
                    let old = V1Version {
                        size: rec.size,
                        mtime: rec.mtime,
                        created: rec.created,
                        hash: rec.hash,
                        chunk_count: rec.chunk_count,
                    };
                    t.versions
                        .insert((entry.id, head.version), v1(&old).as_slice())
                        .db("version")?;
                    Ok(())
                })
                .unwrap();
            (entry.id, entry.etag)
        };
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let user = store.user("u").unwrap().unwrap().id;
        let entry = store.stat(user, &path).unwrap();
        assert_eq!((entry.id, entry.etag, entry.checksum), (id, etag, None));
        assert_eq!(store.versions(user, &path).unwrap()[0].checksum, None);
        let mut text = String::new();
        store
            .open_file(user, &path)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "written by an older release");
        assert!(store.fsck(false).unwrap().is_clean());
    }

    /// Version 1 node and version records, as the release before checksums wrote them
    /// (bytes fixed here, not produced by today's code), still open.
    #[test]
    fn opens_version_1_node_and_version_records() {
        // owner 1, parent 2, name "a", File, created 3, mtime 4, seq 5, no trash,
        // file {version 6, size 7, hash [9; 32]}.
        let mut node = vec![1, 1, 2, 1, b'a', 0, 3, 4, 5, 0, 1, 6, 7];
        node.extend([9; 32]);
        let rec = NodeRec::decode(&node).unwrap();
        assert_eq!(rec.name, "a");
        assert_eq!(rec.kind, NodeKind::File);
        assert_eq!((rec.owner, rec.parent, rec.seq, rec.trash), (1, 2, 5, None));
        let head = rec.file.unwrap();
        assert_eq!((head.version, head.size, head.hash), (6, 7, [9; 32]));
        assert_eq!(head.checksum, None);

        // size 7, mtime 4, created 3, hash [9; 32], chunk_count 1.
        let mut version = vec![1, 7, 4, 3];
        version.extend([9; 32]);
        version.push(1);
        let rec = VersionRec::decode(&version).unwrap();
        assert_eq!((rec.size, rec.chunk_count, &rec.checksum), (7, 1, &None));

        // Written today: version 2, the checksum kept.
        let mut rec = rec;
        rec.checksum = Some("SHA1:00".into());
        let bytes = rec.encode().unwrap();
        assert_eq!(bytes[0], 2);
        assert_eq!(VersionRec::decode(&bytes).unwrap(), rec);
        let mut future = bytes;
        future[0] = 3;
        assert!(matches!(
            VersionRec::decode(&future),
            Err(StoreError::UnsupportedFormat { found: 3, .. })
        ));
    }
}
