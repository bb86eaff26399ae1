//! Packets held for the durable store: an acknowledgement (CONNACK, SUBACK, PUBACK, PUBREC,
//! PUBCOMP, a QoS 2 PUBLISH or PUBREL) goes out only once the change it acknowledges is durable,
//! and every packet after it waits behind it, so the client sees them in order.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use codec::{Disconnect, Packet, ReasonCode};
use tokio::sync::watch;
use tracing::warn;

use super::Connection;
use crate::persist::Persist;

/// Waits for the durable store's ticket to advance. The wait is boxed and exists only while a
/// connection holds packets for the store, so an idle connection stores no future for it.
pub(super) enum DurableWait {
    /// No store, or its sender is gone: nothing more becomes durable.
    Never,
    Idle(watch::Receiver<u64>),
    Waiting(Pin<Box<dyn Future<Output = Option<watch::Receiver<u64>>> + Send>>),
}

impl DurableWait {
    pub fn new(persist: &Persist) -> Self {
        persist
            .watch()
            .map_or(DurableWait::Never, DurableWait::Idle)
    }

    /// Drops a wait in progress (its receiver with it) for a fresh receiver.
    pub fn stop_waiting(&mut self, persist: &Persist) {
        if let DurableWait::Waiting(_) = self {
            *self = Self::new(persist);
        }
    }

    pub fn poll_advanced(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match std::mem::replace(self, DurableWait::Never) {
                DurableWait::Never => return Poll::Pending,
                DurableWait::Idle(mut rx) => {
                    *self = DurableWait::Waiting(Box::pin(async move {
                        rx.changed().await.ok().map(|()| rx)
                    }));
                }
                DurableWait::Waiting(mut wait) => match wait.as_mut().poll(cx) {
                    Poll::Ready(Some(rx)) => {
                        *self = DurableWait::Idle(rx);
                        return Poll::Ready(());
                    }
                    Poll::Ready(None) => return Poll::Pending,
                    Poll::Pending => {
                        *self = DurableWait::Waiting(wait);
                        return Poll::Pending;
                    }
                },
            }
        }
    }
}

impl Connection {
    /// Sends a packet after those held (see [`Connection::send_when`]).
    pub(super) fn send(&mut self, packet: Packet) {
        self.send_when(0, packet);
    }

    /// Sends a packet once `ticket` is durable in the store, and after every packet sent before
    /// it: acknowledgements go out only for changes on disk, and in order.
    pub(super) fn send_when(&mut self, ticket: u64, packet: Packet) {
        if self.held.is_empty() && (ticket == 0 || ticket <= self.shared.durable()) {
            self.encode(&packet);
        } else {
            self.held.push_back((ticket, packet));
        }
    }

    /// Moves held packets whose tickets are durable into the write buffer.
    pub(super) fn release_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let durable = self.shared.durable();
        while let Some((ticket, _)) = self.held.front() {
            if *ticket > durable {
                break;
            }
            if let Some((_, packet)) = self.held.pop_front() {
                self.encode(&packet);
            }
        }
    }

    pub(super) fn encode(&mut self, packet: &Packet) {
        if let Err(e) = packet.encode(self.version, &mut self.wbuf) {
            warn!(error = %e, packet = ?packet.packet_type(), "could not encode a packet");
        }
    }

    /// A DISCONNECT from the server goes out at once, after what is durable: packets still held
    /// are acknowledgements of changes not on disk and are never sent.
    pub(super) fn send_disconnect(&mut self, reason: ReasonCode) {
        self.release_held();
        // MQTT 3 has no server DISCONNECT: the connection is just closed.
        if self.version.is_v5() {
            self.encode(&Packet::Disconnect(Disconnect::new(reason)));
        }
    }
}
