//! Where pack files live. [`PackBackend`] is the small seam that lets packs move to another
//! medium (S3) later; [`LocalDisk`] keeps them under `<data>/packs/`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{Result, StoreError};

/// A pack's id; its file is `<16 hex digits>.pack`.
pub type PackId = u64;

/// Storage of append-only pack files.
pub trait PackBackend: Send + Sync + std::fmt::Debug {
    /// Creates an empty pack; fails if it exists.
    fn create(&self, id: PackId) -> Result<()>;
    /// Appends bytes at the pack's end.
    fn append(&self, id: PackId, data: &[u8]) -> Result<()>;
    /// Makes everything appended so far durable.
    fn sync(&self, id: PackId) -> Result<()>;
    /// No more appends will come; releases what appending held.
    fn seal(&self, id: PackId);
    /// Fills `buf` from `offset`; a short pack is an error.
    fn read_at(&self, id: PackId, offset: u64, buf: &mut [u8]) -> Result<()>;
    /// Appends `len` bytes read from `offset` to `out`; a short pack is an error (`out` then
    /// keeps its length). This default zeroes the room first; [`LocalDisk`] reads into
    /// `out`'s spare capacity instead (downloads call this for every byte they send).
    fn read_append(&self, id: PackId, offset: u64, len: usize, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.resize(start + len, 0);
        let result = self.read_at(id, offset, &mut out[start..]);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
    fn delete(&self, id: PackId) -> Result<()>;
    /// Every pack and its length in bytes.
    fn list(&self) -> Result<Vec<(PackId, u64)>>;
}

/// How many read handles [`LocalDisk`] keeps open.
const READ_HANDLES: usize = 64;

/// Packs as files in one folder.
#[derive(Debug)]
pub struct LocalDisk {
    dir: PathBuf,
    appending: Mutex<HashMap<PackId, Arc<File>>>,
    reading: Mutex<HashMap<PackId, Arc<File>>>,
}

impl LocalDisk {
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io("creating", dir, e))?;
        Ok(LocalDisk {
            dir: dir.to_owned(),
            appending: Mutex::new(HashMap::new()),
            reading: Mutex::new(HashMap::new()),
        })
    }

    /// The file of pack `id`.
    pub fn path(&self, id: PackId) -> PathBuf {
        self.dir.join(format!("{id:016x}.pack"))
    }

    fn appending(&self) -> MutexGuard<'_, HashMap<PackId, Arc<File>>> {
        self.appending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reader(&self, id: PackId) -> Result<Arc<File>> {
        let mut reading = self.reading.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = reading.get(&id) {
            return Ok(f.clone());
        }
        let path = self.path(id);
        let file =
            Arc::new(File::open(&path).map_err(|e| StoreError::io("opening pack", &path, e))?);
        if reading.len() >= READ_HANDLES {
            reading.clear();
        }
        reading.insert(id, file.clone());
        Ok(file)
    }

    /// The append handle of a pack, opened on first use; used without holding the map lock
    /// so that one pack's fdatasync does not stall appends.
    fn append_handle(&self, id: PackId) -> Result<Arc<File>> {
        let mut appending = self.appending();
        if let Some(f) = appending.get(&id) {
            return Ok(f.clone());
        }
        let path = self.path(id);
        let file = Arc::new(
            OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| StoreError::io("opening pack for appending", &path, e))?,
        );
        appending.insert(id, file.clone());
        Ok(file)
    }
}

impl PackBackend for LocalDisk {
    fn create(&self, id: PackId) -> Result<()> {
        let path = self.path(id);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StoreError::io("creating pack", &path, e))?;
        self.appending().insert(id, Arc::new(file));
        // The new directory entry must be durable before anything points into the file.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::io("syncing pack folder", &self.dir, e))
    }

    fn append(&self, id: PackId, data: &[u8]) -> Result<()> {
        let file = self.append_handle(id)?;
        (&*file)
            .write_all(data)
            .map_err(|e| StoreError::io("appending to pack", self.path(id), e))
    }

    fn sync(&self, id: PackId) -> Result<()> {
        let file = self.append_handle(id)?;
        file.sync_data()
            .map_err(|e| StoreError::io("syncing pack", self.path(id), e))
    }

    fn seal(&self, id: PackId) {
        self.appending().remove(&id);
    }

    fn read_at(&self, id: PackId, offset: u64, buf: &mut [u8]) -> Result<()> {
        let file = self.reader(id)?;
        file.read_exact_at(buf, offset)
            .map_err(|e| StoreError::io("reading pack", self.path(id), e))
    }

    fn read_append(&self, id: PackId, offset: u64, len: usize, out: &mut Vec<u8>) -> Result<()> {
        let file = self.reader(id)?;
        let start = out.len();
        let fail = |out: &mut Vec<u8>, e: std::io::Error| {
            out.truncate(start);
            Err(StoreError::io("reading pack", self.path(id), e))
        };
        // `pread` fills all the spare capacity it is given; a little more than `len` is read
        // and cut off, much more would be waste.
        if out.capacity() - start > 2 * len + 4096 {
            let mut room = Vec::with_capacity(len);
            self.read_append(id, offset, len, &mut room)?;
            out.extend_from_slice(&room);
            return Ok(());
        }
        out.reserve(len);
        while out.len() - start < len {
            let at = offset + (out.len() - start) as u64;
            match rustix::io::pread(&*file, rustix::buffer::spare_capacity(out), at) {
                Ok(0) => return fail(out, std::io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return fail(out, e.into()),
            }
        }
        out.truncate(start + len);
        Ok(())
    }

    fn delete(&self, id: PackId) -> Result<()> {
        self.appending().remove(&id);
        self.reading
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("deleting pack", &path, e)),
        }
    }

    fn list(&self) -> Result<Vec<(PackId, u64)>> {
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| StoreError::io("listing", &self.dir, e))?;
        let mut packs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("listing", &self.dir, e))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".pack")) else {
                continue;
            };
            let Ok(id) = u64::from_str_radix(stem, 16) else {
                continue;
            };
            let len = entry
                .metadata()
                .map_err(|e| StoreError::io("reading size of", entry.path(), e))?
                .len();
            packs.push((id, len));
        }
        packs.sort_unstable();
        Ok(packs)
    }
}
