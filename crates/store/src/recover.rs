//! Start-up: read everything back, drop what expired or lost its owner (queue entries, inbound
//! ids and subscriptions of no session), and rebuild the
//! message reference counts, in one write transaction.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use codec::PacketId;
use redb::{Database, ReadableTable};
use tracing::{info, warn};

use crate::error::StoreError;
use crate::fast_hash::FastMap;
use crate::format::{self, FormatError};
use crate::record::{EntryState, MessageRecord, Recovered, RecoveredSession};
use crate::tables::{self, INBOUND, MESSAGES, QUEUE, RETAINED, SESSIONS, SUBSCRIPTIONS};

/// What the writer needs besides the records.
pub(crate) struct State {
    /// The records for the broker.
    pub(crate) recovered: Recovered,
    /// Message id -> number of queue entries referring to it.
    pub(crate) refcounts: FastMap<u64, u32>,
    /// One above the highest message id stored.
    pub(crate) next_message_id: u64,
}

/// Counts of what was dropped, for one log line.
#[derive(Default)]
struct Dropped {
    sessions: usize,
    entries: usize,
    messages: usize,
    retained: usize,
    inbound: usize,
    subscriptions: usize,
}

/// Reads the store, removing expired sessions (with their entries and inbound ids), entries of
/// no session or whose message expired or is missing, messages no entry refers to, inbound ids
/// of no session and expired retained messages.
pub(crate) fn recover(db: &Database, path: &Path, now: SystemTime) -> Result<State, StoreError> {
    let storage = |e: redb::Error| StoreError::Open {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let corrupt = |table: &'static str, key: String, e: FormatError| StoreError::Corrupt {
        path: path.to_owned(),
        table,
        key,
        reason: e.to_string(),
    };
    let txn = db.begin_write().map_err(|e| storage(e.into()))?;
    tables::check_format(&txn, path)?;
    let open_err = |name| move |e| tables::table_error(e, name, path);
    let mut dropped = Dropped::default();
    let mut sessions = BTreeMap::new();
    let mut next_message_id = 1;
    let mut refcounts: FastMap<u64, u32> = FastMap::default();
    let mut retained = Vec::new();
    {
        let mut table = txn.open_table(SESSIONS).map_err(open_err("sessions"))?;
        let mut expired = Vec::new();
        for row in table.iter().map_err(|e| storage(e.into()))? {
            let (key, value) = row.map_err(|e| storage(e.into()))?;
            let client_id = key.value();
            let record = format::decode_session(client_id, value.value())
                .map_err(|e| corrupt("sessions", format!("{client_id:?}"), e))?;
            if record.is_expired(now) {
                expired.push(client_id.to_owned());
            } else {
                sessions.insert(
                    client_id.to_owned(),
                    RecoveredSession {
                        record,
                        queue: Vec::new(),
                        inbound_qos2: Vec::new(),
                        subscriptions: Vec::new(),
                    },
                );
            }
        }
        for client_id in &expired {
            table
                .remove(client_id.as_str())
                .map_err(|e| storage(e.into()))?;
        }
        dropped.sessions = expired.len();
    }
    {
        let mut table = txn.open_table(MESSAGES).map_err(open_err("messages"))?;
        let mut messages: FastMap<u64, Arc<MessageRecord>> = FastMap::default();
        for row in table.iter().map_err(|e| storage(e.into()))? {
            let (key, value) = row.map_err(|e| storage(e.into()))?;
            let id = key.value();
            let message = format::decode_message(value.value())
                .map_err(|e| corrupt("messages", id.to_string(), e))?;
            next_message_id = next_message_id.max(id.saturating_add(1));
            // Expired messages are kept for entries already in flight (below).
            messages.insert(id, Arc::new(message));
        }
        let mut queue = txn.open_table(QUEUE).map_err(open_err("queue"))?;
        let mut gone = Vec::new();
        for row in queue.iter().map_err(|e| storage(e.into()))? {
            let (key, value) = row.map_err(|e| storage(e.into()))?;
            let (client_id, seq) = key.value();
            let entry = format::decode_entry(value.value())
                .map_err(|e| corrupt("queue", format!("({client_id:?}, {seq})"), e))?;
            next_message_id = next_message_id.max(entry.message_id.saturating_add(1));
            let session = sessions.get_mut(client_id);
            // An expired message is not sent any more, but one already sent keeps its packet
            // id in use until the client finishes the flow: its entry stays.
            let message = messages
                .get(&entry.message_id)
                .filter(|m| !(m.is_expired(now) && entry.state == EntryState::Queued));
            match (session, message) {
                (Some(session), Some(message)) => {
                    *refcounts.entry(entry.message_id).or_default() += 1;
                    session.queue.push((seq, entry, Arc::clone(message)));
                }
                (session, _) => {
                    if session.is_some() && !table_has(&table, entry.message_id, &storage)? {
                        warn!(
                            client_id,
                            seq,
                            message_id = entry.message_id,
                            "store: queue entry refers to a missing message; dropped"
                        );
                    }
                    gone.push((client_id.to_owned(), seq));
                }
            }
        }
        for (client_id, seq) in &gone {
            queue
                .remove((client_id.as_str(), *seq))
                .map_err(|e| storage(e.into()))?;
        }
        dropped.entries = gone.len();
        // Messages no remaining entry refers to: expired, orphaned, or left by a crash.
        let unused: Vec<u64> = table
            .iter()
            .map_err(|e| storage(e.into()))?
            .map(|row| row.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()
            .map_err(|e| storage(e.into()))?;
        for id in unused.into_iter().filter(|id| !refcounts.contains_key(id)) {
            table.remove(id).map_err(|e| storage(e.into()))?;
            dropped.messages += 1;
        }
    }
    {
        let mut table = txn.open_table(INBOUND).map_err(open_err("inbound"))?;
        let mut gone = Vec::new();
        for row in table.iter().map_err(|e| storage(e.into()))? {
            let (key, _) = row.map_err(|e| storage(e.into()))?;
            let (client_id, id) = key.value();
            match (sessions.get_mut(client_id), PacketId::new(id)) {
                (Some(session), Some(id)) => session.inbound_qos2.push(id),
                _ => gone.push((client_id.to_owned(), id)),
            }
        }
        for (client_id, id) in &gone {
            table
                .remove((client_id.as_str(), *id))
                .map_err(|e| storage(e.into()))?;
        }
        dropped.inbound = gone.len();
    }
    {
        let mut table = txn
            .open_table(SUBSCRIPTIONS)
            .map_err(open_err("subscriptions"))?;
        let mut gone = Vec::new();
        for row in table.iter().map_err(|e| storage(e.into()))? {
            let (key, value) = row.map_err(|e| storage(e.into()))?;
            let (client_id, filter) = key.value();
            match sessions.get_mut(client_id) {
                Some(session) => session.subscriptions.push(
                    format::decode_subscription(filter, value.value()).map_err(|e| {
                        corrupt("subscriptions", format!("({client_id:?}, {filter:?})"), e)
                    })?,
                ),
                None => gone.push((client_id.to_owned(), filter.to_owned())),
            }
        }
        for (client_id, filter) in &gone {
            table
                .remove((client_id.as_str(), filter.as_str()))
                .map_err(|e| storage(e.into()))?;
        }
        dropped.subscriptions = gone.len();
    }
    {
        let mut table = txn.open_table(RETAINED).map_err(open_err("retained"))?;
        let mut expired = Vec::new();
        for row in table.iter().map_err(|e| storage(e.into()))? {
            let (key, value) = row.map_err(|e| storage(e.into()))?;
            let topic = key.value();
            let message = format::decode_message(value.value())
                .map_err(|e| corrupt("retained", format!("{topic:?}"), e))?;
            if message.is_expired(now) {
                expired.push(topic.to_owned());
            } else {
                retained.push(message);
            }
        }
        for topic in &expired {
            table
                .remove(topic.as_str())
                .map_err(|e| storage(e.into()))?;
        }
        dropped.retained = expired.len();
    }
    txn.commit().map_err(|e| storage(e.into()))?;
    let Dropped {
        sessions: s,
        entries,
        messages,
        retained: r,
        inbound,
        subscriptions,
    } = dropped;
    if s + entries + messages + r + inbound + subscriptions > 0 {
        info!(
            sessions = s,
            queue_entries = entries,
            messages,
            retained = r,
            inbound_ids = inbound,
            subscriptions,
            "store: dropped expired or orphaned records at start-up"
        );
    }
    Ok(State {
        recovered: Recovered {
            sessions: sessions.into_values().collect(),
            retained,
        },
        refcounts,
        next_message_id,
    })
}

/// True when the messages table holds `id` (an expired message does; a missing one does not).
fn table_has(
    table: &redb::Table<'_, u64, &[u8]>,
    id: u64,
    storage: &impl Fn(redb::Error) -> StoreError,
) -> Result<bool, StoreError> {
    Ok(table.get(id).map_err(|e| storage(e.into()))?.is_some())
}
