//! Store-wide settings kept in the `meta` table (retention) and facts about the data disk.

use redb::ReadableTable;

use crate::inner::Inner;
use crate::records::{Record, RetentionRec};
use crate::tables::{self, Bytes, DbResult, get_rec};
use crate::{Result, Retention, StoreError};

/// The retention in force: the persisted one if the admin set one, else the options'.
pub(crate) fn retention_in(
    meta: &impl ReadableTable<&'static str, Bytes>,
    inner: &Inner,
) -> Result<Retention> {
    let rec = get_rec::<RetentionRec, &str>(meta, tables::META_RETENTION, "reading retention")?;
    Ok(rec.map_or(inner.options.retention, |r| Retention {
        keep_versions: r.keep_versions,
        keep_days: r.keep_days,
        trash_days: r.trash_days,
    }))
}

pub(crate) fn retention(inner: &Inner) -> Result<Retention> {
    inner.read("reading retention", |t| retention_in(&t.meta, inner))
}

pub(crate) fn set_retention(inner: &Inner, retention: Retention) -> Result<()> {
    let rec = RetentionRec {
        keep_versions: retention.keep_versions,
        keep_days: retention.keep_days,
        trash_days: retention.trash_days,
    };
    inner.write("writing retention", |t| {
        t.meta
            .insert(tables::META_RETENTION, rec.encode()?.as_slice())
            .db("writing retention")?;
        Ok(())
    })
}

/// (total, available to unprivileged users) bytes of the file system holding the data folder.
pub(crate) fn disk_space(inner: &Inner) -> Result<(u64, u64)> {
    let st = rustix::fs::statvfs(&inner.dir).map_err(|e| {
        StoreError::io(
            "measuring the disk of",
            inner.dir.clone(),
            std::io::Error::from(e),
        )
    })?;
    let unit = if st.f_frsize > 0 {
        st.f_frsize
    } else {
        st.f_bsize
    };
    Ok((
        st.f_blocks.saturating_mul(unit),
        st.f_bavail.saturating_mul(unit),
    ))
}
