//! Handshake slots: how many TLS and WebSocket handshakes may be in progress at once, over every
//! listener given the same [`HandshakeLimit`] and from one client address.
//!
//! A slot is taken in the accept loop, before any TLS or HTTP parsing, and given back when the
//! handshakes end (or time out). The per-address cap keeps idle sockets from a few addresses
//! from taking every slot: without it, 1024 idle sockets would lock every TLS and WebSocket
//! client out for the whole handshake timeout. "One address" is an IPv4 address, or an IPv6 /64
//! (what one host or site is usually given); IPv4-mapped IPv6 addresses count as IPv4.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// At most this many TLS and WebSocket handshakes at once, shared by the listeners given it,
/// and optionally at most so many from one address: a connection arriving when its address's
/// slots or all slots are taken is closed at once, before any TLS or HTTP parsing, so a
/// connection flood costs little and served clients are unaffected.
#[derive(Debug, Clone)]
pub struct HandshakeLimit(Arc<Slots>);

#[derive(Debug)]
struct Slots {
    max: usize,
    per_address: usize,
    taken: Mutex<Taken>,
}

/// Slots in use: in all, and by address (addresses with none are removed, so the map holds at
/// most one entry per handshake in progress).
#[derive(Debug, Default)]
struct Taken {
    all: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Why a connection got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Every slot is taken.
    AllTaken,
    /// Its address holds its share already.
    AddressFull,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::AllTaken => "too many handshakes in progress",
            Refusal::AddressFull => "too many handshakes in progress from this address",
        })
    }
}

/// One handshake's slot, given back on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
    address: IpAddr,
}

impl HandshakeLimit {
    /// Room for `max` concurrent handshakes, with no cap per address.
    pub fn new(max: usize) -> Self {
        Self::per_address(max, usize::MAX)
    }

    /// Room for `max` concurrent handshakes, at most `per_address` of them from one address
    /// (an IPv4 address or an IPv6 /64). `usize::MAX` for either is no limit.
    pub fn per_address(max: usize, per_address: usize) -> Self {
        Self(Arc::new(Slots {
            max,
            per_address,
            taken: Mutex::default(),
        }))
    }

    /// Handshakes in progress now.
    pub fn in_progress(&self) -> usize {
        self.0.lock().all
    }

    /// Takes a slot for a connection from `remote`.
    pub(crate) fn try_take(&self, remote: IpAddr) -> Result<Slot, Refusal> {
        let address = address_key(remote);
        let mut taken = self.0.lock();
        if taken.all >= self.0.max {
            return Err(Refusal::AllTaken);
        }
        if taken.by_address.get(&address).copied().unwrap_or(0) >= self.0.per_address {
            return Err(Refusal::AddressFull);
        }
        *taken.by_address.entry(address).or_insert(0) += 1;
        taken.all += 1;
        Ok(Slot {
            slots: self.0.clone(),
            address,
        })
    }
}

impl Slots {
    fn lock(&self) -> std::sync::MutexGuard<'_, Taken> {
        // The counts stay consistent whatever panicked: each change is one step under the lock.
        self.taken.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut taken = self.slots.lock();
        taken.all = taken.all.saturating_sub(1);
        if let Some(mine) = taken.by_address.get_mut(&self.address) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                taken.by_address.remove(&self.address);
            }
        }
    }
}

/// The address a slot counts against: IPv4 as is (also when mapped into IPv6), IPv6 by its /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::from(segments)
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("a valid address literal")
    }

    #[test]
    fn caps_each_address_and_leaves_room_for_others() {
        let limit = HandshakeLimit::per_address(10, 3);
        let flood: Vec<Slot> = (0..3)
            .map(|_| limit.try_take(ip("192.0.2.1")).expect("room"))
            .collect();
        assert_eq!(
            limit.try_take(ip("192.0.2.1")).err(),
            Some(Refusal::AddressFull)
        );
        // The same address mapped into IPv6 is the same address.
        assert_eq!(
            limit.try_take(ip("::ffff:192.0.2.1")).err(),
            Some(Refusal::AddressFull)
        );
        let other = limit
            .try_take(ip("192.0.2.2"))
            .expect("another address has room");
        assert_eq!(limit.in_progress(), 4);
        drop(flood);
        drop(other);
        assert_eq!(limit.in_progress(), 0);
        assert!(limit.0.lock().by_address.is_empty(), "no address is kept");
        assert!(limit.try_take(ip("192.0.2.1")).is_ok());
    }

    #[test]
    fn caps_all_addresses_together() {
        let limit = HandshakeLimit::per_address(2, 5);
        let _a = limit.try_take(ip("192.0.2.1")).expect("room");
        let b = limit.try_take(ip("192.0.2.2")).expect("room");
        assert_eq!(
            limit.try_take(ip("192.0.2.3")).err(),
            Some(Refusal::AllTaken)
        );
        drop(b);
        assert!(limit.try_take(ip("192.0.2.3")).is_ok());
    }

    #[test]
    fn counts_an_ipv6_64_as_one_address() {
        let limit = HandshakeLimit::per_address(10, 2);
        let _a = limit.try_take(ip("2001:db8:1:2::1")).expect("room");
        let _b = limit.try_take(ip("2001:db8:1:2:ffff::9")).expect("room");
        assert_eq!(
            limit.try_take(ip("2001:db8:1:2:abcd::1")).err(),
            Some(Refusal::AddressFull)
        );
        assert!(limit.try_take(ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn new_has_no_cap_per_address() {
        let limit = HandshakeLimit::new(3);
        let _slots: Vec<Slot> = (0..3)
            .map(|_| limit.try_take(ip("192.0.2.1")).expect("room"))
            .collect();
        assert_eq!(
            limit.try_take(ip("192.0.2.1")).err(),
            Some(Refusal::AllTaken)
        );
    }
}
