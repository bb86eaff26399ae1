//! The database file: its tables, the format record, and opening it through our backend.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;

use redb::{
    Builder, Database, ReadableTable, TableDefinition, TableError, TableHandle, WriteTransaction,
};

use crate::backend::{Backend, Control};
use crate::error::StoreError;

/// The file name inside the data directory.
pub const FILE_NAME: &str = "mqtt.redb";

/// `format` -> [`MAGIC`] followed by the format version (`u16`, big-endian).
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Message id -> message ([`crate::format`]).
pub(crate) const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
/// Client id -> session.
pub(crate) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// (client id, seq) -> queue entry.
pub(crate) const QUEUE: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("queue");
/// (client id, packet id) -> (): inbound QoS 2 ids awaiting PUBREL.
pub(crate) const INBOUND: TableDefinition<(&str, u16), ()> = TableDefinition::new("inbound");
/// (client id, filter) -> subscription options and identifier ([`crate::format`]).
pub(crate) const SUBSCRIPTIONS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("subscriptions");
/// Topic -> retained message.
pub(crate) const RETAINED: TableDefinition<&str, &[u8]> = TableDefinition::new("retained");

/// redb's page cache. Its default (1 GiB) is far more than a write-mostly store needs: reads
/// happen at start-up and for the B-tree pages a batch touches.
const CACHE_SIZE: usize = 64 << 20;

/// Says the file is this broker's store.
const MAGIC: &[u8] = b"harper-mqtt store";
/// The key of the format record in [`META`].
const FORMAT_KEY: &str = "format";
/// The layout of tables and keys; values carry their own version byte. Format 2 added the
/// `subscriptions` table; a format 1 file is upgraded when opened (its sessions keep their
/// subscriptions inline, which recovery reads as before).
const FORMAT_VERSION: u16 = 2;
/// Formats this build opens and upgrades.
const UPGRADABLE: &[u16] = &[1];

/// Opens or creates the database file (a new one 0600). redb checks its own header and
/// checksums here: a file that is not a redb database, or a truncated one, is an error.
pub(crate) fn open_database(path: &Path, control: &Arc<Control>) -> Result<Database, String> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    // It holds messages and user names: a new file is the broker's user's alone (0600). An
    // existing file keeps the mode its owner gave it.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(|e| e.to_string())?;
    let backend = Backend::new(file, Arc::clone(control)).map_err(|e| e.to_string())?;
    Builder::new()
        .set_cache_size(CACHE_SIZE)
        .create_with_backend(backend)
        .map_err(|e| e.to_string())
}

/// Checks the format record, writing it into a new file. A file holding tables but no format
/// record, or another magic or version, is not ours.
pub(crate) fn check_format(txn: &WriteTransaction, path: &Path) -> Result<(), StoreError> {
    let wrong = |reason: String| StoreError::WrongFormat {
        path: path.to_owned(),
        reason,
    };
    let open_err = |e: redb::Error| StoreError::Open {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let names: Vec<String> = txn
        .list_tables()
        .map_err(|e| open_err(e.into()))?
        .map(|t| t.name().to_owned())
        .collect();
    let mut meta = txn
        .open_table(META)
        .map_err(|e| table_error(e, "meta", path))?;
    let mut expected = MAGIC.to_vec();
    expected.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    let found = meta
        .get(FORMAT_KEY)
        .map_err(|e| open_err(e.into()))?
        .map(|v| v.value().to_vec());
    let upgradable = |found: &[u8]| {
        found
            .strip_prefix(MAGIC)
            .and_then(|v| <[u8; 2]>::try_from(v).ok())
            .is_some_and(|v| UPGRADABLE.contains(&u16::from_be_bytes(v)))
    };
    match found {
        Some(found) if found == expected => Ok(()),
        Some(found) if upgradable(&found) => {
            meta.insert(FORMAT_KEY, expected.as_slice())
                .map_err(|e| open_err(e.into()))?;
            Ok(())
        }
        Some(found) => match found.strip_prefix(MAGIC) {
            Some(version) => Err(wrong(format!(
                "format version {version:02x?}, expected {FORMAT_VERSION}"
            ))),
            None => Err(wrong("unknown format record".to_owned())),
        },
        None if names.is_empty() => {
            meta.insert(FORMAT_KEY, expected.as_slice())
                .map_err(|e| open_err(e.into()))?;
            Ok(())
        }
        None => Err(wrong(format!("no format record; tables {names:?}"))),
    }
}

/// Maps an error opening a table at start-up: a table of other key or value types means the
/// file is not ours; anything else is a storage error.
pub(crate) fn table_error(e: TableError, table: &str, path: &Path) -> StoreError {
    match e {
        TableError::Storage(e) => StoreError::Open {
            path: path.to_owned(),
            reason: e.to_string(),
        },
        other => StoreError::WrongFormat {
            path: path.to_owned(),
            reason: format!("table {table}: {other}"),
        },
    }
}
