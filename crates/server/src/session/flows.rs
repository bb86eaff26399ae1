//! The vocabulary of the QoS 1/2 flows between a connection and its session: what an
//! in-flight message awaits, who may change stored state ([`Owner`]), and what each
//! acknowledgement did.

use std::sync::Arc;

use codec::PacketId;
use store::EntryState;

use crate::message::Delivery;
use crate::persist::Persist;

/// What an outgoing QoS 1/2 message waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // named for the packets awaited
pub(crate) enum Awaiting {
    /// QoS 1 sent, waiting for PUBACK.
    PubAck,
    /// QoS 2 sent, waiting for PUBREC.
    PubRec,
    /// PUBREL sent, waiting for PUBCOMP.
    PubComp,
}

impl Awaiting {
    /// The store's state of an entry waiting for this.
    pub fn stored(self) -> EntryState {
        match self {
            Awaiting::PubAck => EntryState::AwaitingPubAck,
            Awaiting::PubRec => EntryState::AwaitingPubRec,
            Awaiting::PubComp => EntryState::AwaitingPubComp,
        }
    }

    /// What a stored entry waits for; `None` for one still queued.
    pub fn from_stored(state: EntryState) -> Option<Self> {
        match state {
            EntryState::Queued => None,
            EntryState::AwaitingPubAck => Some(Awaiting::PubAck),
            EntryState::AwaitingPubRec => Some(Awaiting::PubRec),
            EntryState::AwaitingPubComp => Some(Awaiting::PubComp),
        }
    }
}

/// A QoS 1/2 message sent and not yet acknowledged.
#[derive(Debug)]
pub(crate) struct Outbound {
    pub packet_id: PacketId,
    pub delivery: Delivery,
    pub state: Awaiting,
}

/// The connection changing a session, and where stored changes go. A change reaches the store
/// only while the session is stored and `generation` is still the attached one: a connection
/// that was taken over must not write over its successor.
#[derive(Clone, Copy)]
pub(crate) struct Owner<'a> {
    /// The session's own allocation of its client id (the store matches an entry's ops by it).
    pub client_id: &'a Arc<str>,
    pub generation: u64,
    pub persist: &'a Persist,
}

/// An inbound QoS 2 PUBLISH, as the session sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InboundQos2 {
    /// A new packet id; its PUBREC waits for `ticket`.
    New { ticket: u64 },
    /// The id is already awaiting PUBREL: not delivered again [MQTT-4.3.3-9]; the PUBREC
    /// goes out no sooner than the first copy's.
    Duplicate { ticket: u64 },
}

/// The client has more QoS 2 ids awaiting PUBREL than the broker's Receive Maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReceiveMaximumExceeded;

/// What a PUBREC did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PubRecOutcome {
    /// The message now awaits PUBCOMP: send PUBREL once `ticket` is durable.
    Release { ticket: u64 },
    /// A failure reason code ended the flow (§4.3.3).
    Ended,
    /// The id is in flight but not awaiting PUBREC: nothing to do.
    Ignored,
    /// No message in flight has this id: answer PUBREL 0x92.
    Unknown,
}
