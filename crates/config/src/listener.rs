//! Listener addresses: `mqtt.network.port`, `mqtt.network.securePort`, `http.port`, `http.securePort`.
//!
//! A port key takes an integer (bind that port on every interface, as Harper does), a `"host:port"`
//! string (bind one address), or `0`/`null` (the listener is off). The field type is
//! `Option<BindAddress>`, `None` meaning off.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU16;

use figment::value::Value;
use serde::{Serialize, Serializer};

use crate::read::{Node, Read, Reader, as_integer};

/// Where a listener binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindAddress {
    /// This port on every interface, IPv4 and IPv6, as Harper (Node.js `listen(port)`) does: the
    /// transport binds `[::]` accepting IPv4-mapped addresses, or `0.0.0.0` where IPv6 is not
    /// available. Written as a plain integer.
    AllInterfaces(NonZeroU16),
    /// One address, written `"host:port"` with an IP address (`127.0.0.1:1883`, `[::1]:1883`) or
    /// `localhost` (taken as `127.0.0.1`). Port 0 here asks the system for a free port.
    Addr(SocketAddr),
}

impl BindAddress {
    /// The port number (0 for an [`BindAddress::Addr`] that lets the system choose).
    pub fn port(&self) -> u16 {
        match self {
            BindAddress::AllInterfaces(port) => port.get(),
            BindAddress::Addr(addr) => addr.port(),
        }
    }

    /// The one IP address to bind, or `None` for every interface.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            BindAddress::AllInterfaces(_) => None,
            BindAddress::Addr(addr) => Some(addr.ip()),
        }
    }

    /// True when both would try to bind the same port on a shared interface.
    pub fn conflicts_with(&self, other: &BindAddress) -> bool {
        if self.port() == 0 || self.port() != other.port() {
            return false;
        }
        match (self.ip(), other.ip()) {
            (Some(a), Some(b)) => a == b || a.is_unspecified() || b.is_unspecified(),
            _ => true,
        }
    }

    /// Parses a `"host:port"` string; `None` if it is not one.
    fn parse_host_port(text: &str) -> Option<SocketAddr> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Some(addr);
        }
        let (host, port) = text.rsplit_once(':')?;
        if !host.eq_ignore_ascii_case("localhost") {
            return None;
        }
        Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            port.parse().ok()?,
        ))
    }
}

impl fmt::Display for BindAddress {
    /// `1883` for every interface, `127.0.0.1:1883` for one address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindAddress::AllInterfaces(port) => write!(f, "{port}"),
            BindAddress::Addr(addr) => write!(f, "{addr}"),
        }
    }
}

impl Serialize for BindAddress {
    /// As written in the file: an integer or a `"host:port"` string.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BindAddress::AllInterfaces(port) => s.serialize_u16(port.get()),
            BindAddress::Addr(addr) => s.collect_str(addr),
        }
    }
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerKind {
    /// Plain MQTT over TCP (`mqtt.network.port`).
    Tcp,
    /// MQTT over TLS (`mqtt.network.securePort`).
    Tls,
    /// MQTT over WebSocket on the HTTP port (`http.port`, when `mqtt.webSocket` is on).
    WebSocket,
    /// MQTT over WebSocket over TLS (`http.securePort`, when `mqtt.webSocket` is on).
    SecureWebSocket,
}

impl ListenerKind {
    /// True for the kinds that use the `tls` certificate.
    pub fn is_tls(self) -> bool {
        matches!(self, ListenerKind::Tls | ListenerKind::SecureWebSocket)
    }
}

impl fmt::Display for ListenerKind {
    /// The banner's names: `TCP`, `TLS`, `WS`, `WSS`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListenerKind::Tcp => "TCP",
            ListenerKind::Tls => "TLS",
            ListenerKind::WebSocket => "WS",
            ListenerKind::SecureWebSocket => "WSS",
        })
    }
}

/// One listener that is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// What it speaks.
    pub kind: ListenerKind,
    /// Where it binds.
    pub addr: BindAddress,
    /// The key that configures it, for messages.
    pub key: &'static str,
}

/// The text naming what a port key accepts.
const PORT_ALLOWED: &str = "expected a port from 1 to 65535, a \"host:port\" string with an IP address \
                            or localhost, or 0 or null to turn the listener off";

impl Reader<'_> {
    /// A port key; `Value(None)` is "off".
    pub(crate) fn port(&mut self, node: &Node<'_>) -> Read<Option<BindAddress>> {
        let value = match node.value {
            None => return Read::Absent,
            Some(Value::Empty(..)) => return Read::Null,
            Some(v) => v,
        };
        if let Some(n) = as_integer(value) {
            return match u16::try_from(n) {
                Ok(port) => Read::Value(NonZeroU16::new(port).map(BindAddress::AllInterfaces)),
                Err(_) => {
                    self.error(node, PORT_ALLOWED);
                    Read::Invalid
                }
            };
        }
        match value
            .as_str()
            .and_then(|s| BindAddress::parse_host_port(s.trim()))
        {
            Some(addr) => Read::Value(Some(BindAddress::Addr(addr))),
            None => {
                self.error(node, PORT_ALLOWED);
                Read::Invalid
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;

    fn read(value: Value) -> (Read<Option<BindAddress>>, usize) {
        let origins = BTreeMap::new();
        let mut r = Reader::new(Path::new("/r"), None, &origins);
        let node = Node {
            path: "mqtt.network.port".into(),
            value: Some(&value),
        };
        let got = r.port(&node);
        (got, r.problems.len())
    }

    fn all(port: u16) -> Option<BindAddress> {
        NonZeroU16::new(port).map(BindAddress::AllInterfaces)
    }

    #[test]
    fn integer_binds_every_interface() {
        assert_eq!(read(Value::from(1884)), (Read::Value(all(1884)), 0));
        assert_eq!(read(Value::from("1884")), (Read::Value(all(1884)), 0));
    }

    #[test]
    fn zero_turns_the_listener_off() {
        assert_eq!(read(Value::from(0)), (Read::Value(None), 0));
        assert_eq!(read(Value::from("0")), (Read::Value(None), 0));
    }

    #[test]
    fn host_port_binds_one_address() {
        let v4: SocketAddr = "127.0.0.1:1883".parse().unwrap();
        let v6: SocketAddr = "[::1]:8883".parse().unwrap();
        assert_eq!(
            read(Value::from("127.0.0.1:1883")),
            (Read::Value(Some(BindAddress::Addr(v4))), 0)
        );
        assert_eq!(
            read(Value::from("[::1]:8883")),
            (Read::Value(Some(BindAddress::Addr(v6))), 0)
        );
        assert_eq!(
            read(Value::from("localhost:1883")),
            (Read::Value(Some(BindAddress::Addr(v4))), 0)
        );
    }

    #[test]
    fn rejects_out_of_range_and_garbage() {
        assert_eq!(read(Value::from(65536)), (Read::Invalid, 1));
        assert_eq!(read(Value::from(-1)), (Read::Invalid, 1));
        assert_eq!(read(Value::from("example.com:1883")), (Read::Invalid, 1));
        assert_eq!(read(Value::from("127.0.0.1:99999")), (Read::Invalid, 1));
        assert_eq!(read(Value::from(true)), (Read::Invalid, 1));
    }

    #[test]
    fn conflicts_when_ports_match_on_a_shared_interface() {
        let any = BindAddress::AllInterfaces(NonZeroU16::MIN.saturating_add(1882));
        let lo = BindAddress::Addr("127.0.0.1:1883".parse().unwrap());
        let other = BindAddress::Addr("10.0.0.1:1883".parse().unwrap());
        let ephemeral = BindAddress::Addr("127.0.0.1:0".parse().unwrap());
        assert!(any.conflicts_with(&lo));
        assert!(lo.conflicts_with(&lo));
        assert!(!lo.conflicts_with(&other));
        assert!(!ephemeral.conflicts_with(&ephemeral));
    }

    #[test]
    fn displays_like_the_banner() {
        assert_eq!(all(1883).map(|a| a.to_string()), Some("1883".to_owned()));
        let lo = BindAddress::Addr("127.0.0.1:1883".parse().unwrap());
        assert_eq!(lo.to_string(), "127.0.0.1:1883");
    }
}
