//! The file under redb: redb's own file backend, with a switch that turns `fsync` into a no-op.
//!
//! redb has no commit level that writes to the file without syncing it: `Durability::None`
//! keeps a commit in the process's memory, so a process crash loses it. The `never` policy wants
//! every commit in the file (surviving a process crash) but leaves syncing to the operating
//! system, so it commits durably through this backend with syncing switched off.

use std::fs::File;
use std::io;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::backends::FileBackend;
use redb::{BackendError, DatabaseError, StorageBackend};

/// Switches shared between the writer and every backend it opens.
#[derive(Debug, Default)]
pub(crate) struct Control {
    /// `sync_data` returns at once without syncing.
    skip_sync: AtomicBool,
    /// Every write fails with an I/O error, as on a full disk (tests only).
    #[cfg(test)]
    pub(crate) fail_writes: AtomicBool,
}

impl Control {
    /// Turns syncing off (`true`) or on.
    pub(crate) fn set_skip_sync(&self, skip: bool) {
        self.skip_sync.store(skip, Ordering::Relaxed);
    }

    #[cfg(test)]
    fn failing(&self) -> io::Result<()> {
        if self.fail_writes.load(Ordering::Relaxed) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "injected write failure",
            ));
        }
        Ok(())
    }

    #[cfg(not(test))]
    fn failing(&self) -> io::Result<()> {
        Ok(())
    }
}

/// redb's file backend with [`Control`] applied.
#[derive(Debug)]
pub(crate) struct Backend {
    file: FileBackend,
    control: Arc<Control>,
}

impl Backend {
    /// Wraps an open file.
    pub(crate) fn new(file: File, control: Arc<Control>) -> Result<Self, DatabaseError> {
        Ok(Self {
            file: FileBackend::new(file)?,
            control,
        })
    }
}

impl StorageBackend for Backend {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.file.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.control.failing()?;
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.control.failing()?;
        if self.control.skip_sync.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.control.failing()?;
        self.file.write(offset, data)
    }

    fn close(&self) -> io::Result<()> {
        self.file.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}
