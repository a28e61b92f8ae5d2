//! What a chunked upload records in its staged upload's label: the transfer id and every
//! chunk received, with where its bytes are.

use percloud_store::{StagedId, StagedInfo, Store, UserId};
use serde::{Deserialize, Serialize};

use crate::json::{ApiError, ApiResult};

/// The label of an upload's own staged upload (its "run").
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Label {
    /// The client's transfer id: the upload folder's name.
    pub nextcloud_upload: String,
    /// The file's length when the client announced it (`OC-Total-Length`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// In arrival order.
    pub chunks: Vec<Chunk>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Chunk {
    pub name: String,
    pub len: u64,
    /// `None`: the bytes are in the run, in arrival order. Otherwise the staged upload that
    /// holds this chunk alone (it arrived after a chunk named later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked: Option<StagedId>,
    /// Deleted by the client: its bytes stay in the run and are skipped at assembly.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dropped: bool,
}

impl Chunk {
    /// In the run and not dropped, or parked.
    pub fn is_live(&self) -> bool {
        !self.dropped
    }
    pub fn in_run(&self) -> bool {
        self.parked.is_none()
    }
}

/// The label of a parked chunk's staged upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ParkedLabel {
    pub nextcloud_chunk_of: String,
    pub name: String,
}

impl Label {
    pub fn new(tid: String, total: Option<u64>) -> Self {
        Label {
            nextcloud_upload: tid,
            total,
            chunks: Vec::new(),
        }
    }

    /// The live chunk named `name`.
    pub fn live(&self, name: &str) -> Option<&Chunk> {
        self.chunks.iter().find(|c| c.is_live() && c.name == name)
    }

    /// Whether a chunk named `name` goes at the end of the run: it comes after every chunk
    /// already there (dropped ones included, whose bytes are there too).
    pub fn appends(&self, name: &str) -> bool {
        self.chunks
            .iter()
            .filter(|c| c.in_run())
            .all(|c| comes_after(name, &c.name))
    }

    /// Whether assembling needs more than committing the run as it is.
    pub fn needs_merge(&self) -> bool {
        self.chunks.iter().any(|c| !c.in_run() || c.dropped)
    }

    /// Live chunks in the order of the file.
    pub fn in_file_order(&self) -> Vec<&Chunk> {
        let mut live: Vec<&Chunk> = self.chunks.iter().filter(|c| c.is_live()).collect();
        live.sort_by(|a, b| order(&a.name, &b.name));
        live
    }

    pub fn to_text(&self) -> ApiResult<String> {
        serde_json::to_string(self).map_err(|e| ApiError::internal("writing an upload label", e))
    }
}

pub(super) fn to_text<T: Serialize>(value: &T) -> ApiResult<String> {
    serde_json::to_string(value).map_err(|e| ApiError::internal("writing an upload label", e))
}

/// Chunk names compare numerically when both are numbers (any width), else by bytes.
pub(super) fn order(a: &str, b: &str) -> std::cmp::Ordering {
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if numeric(a) && numeric(b) {
        let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
        (a.len(), a).cmp(&(b.len(), b))
    } else {
        a.cmp(b)
    }
}

/// Whether chunk `a` comes after chunk `b`.
pub(super) fn comes_after(a: &str, b: &str) -> bool {
    order(a, b) == std::cmp::Ordering::Greater
}

/// `user`'s upload with transfer id `tid`, with its label.
pub(super) fn find(
    store: &Store,
    user: UserId,
    tid: &str,
) -> ApiResult<Option<(StagedInfo, Label)>> {
    Ok(store
        .staged_uploads(user)?
        .into_iter()
        .filter_map(|info| {
            let label: Label = serde_json::from_str(&info.label).ok()?;
            Some((info, label))
        })
        .find(|(_, label)| label.nextcloud_upload == tid))
}

/// The label of staged upload `id` as it is now.
pub(super) fn current(store: &Store, user: UserId, id: StagedId) -> ApiResult<(StagedInfo, Label)> {
    let info = store.staged(user, id)?;
    let label = serde_json::from_str(&info.label)
        .map_err(|e| ApiError::internal("reading an upload label", e))?;
    Ok((info, label))
}

/// Rewrites the run's label with `change` applied to the label as it is now (the writer
/// holds the upload, so nothing changes it meanwhile).
pub(super) fn relabel(
    store: &Store,
    user: UserId,
    id: StagedId,
    change: impl FnOnce(&mut Label),
) -> ApiResult<()> {
    let (info, mut label) = current(store, user, id)?;
    let mut writer = store.append_staged(user, id, info.offset)?;
    change(&mut label);
    writer.set_label(label.to_text()?);
    writer.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(name: &str, parked: Option<StagedId>, dropped: bool) -> Chunk {
        Chunk {
            name: name.into(),
            len: 1,
            parked,
            dropped,
        }
    }

    #[test]
    fn orders_chunk_names() {
        assert!(comes_after("0000000000000002", "0000000000000001"));
        assert!(comes_after("10", "9"));
        assert!(!comes_after("0000000000000001", "0000000000000001"));
        assert!(!comes_after("0000000000000001", "0000000000000010"));
        assert!(comes_after("b", "a"));
    }

    #[test]
    fn appends_merges_and_file_order() {
        let mut label = Label::new("t".into(), None);
        label.chunks.push(chunk("1", None, false));
        label.chunks.push(chunk("3", None, false));
        assert!(label.appends("4") && !label.appends("2") && !label.needs_merge());
        label.chunks.push(chunk("2", Some(9), false));
        label.chunks.push(chunk("0", None, true));
        assert!(label.needs_merge());
        let order: Vec<&str> = label
            .in_file_order()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(order, ["1", "2", "3"]);
        assert!(label.live("0").is_none() && label.live("2").is_some());
        let text = label.to_text().unwrap_or_default();
        let back: Label = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back.chunks, label.chunks);
    }
}
