//! The checks the fuzz targets share: each target is one call into here.

use bytes::BytesMut;
use codec::{Packet, ProtocolVersion, TopicFilter, TopicName, decode};

/// Large enough that the limit never hides a decoding path; the limit itself has unit tests.
const MAX_PACKET_SIZE: u32 = 1 << 20;

/// Decodes packets off the front of `data` until it needs more bytes or fails. Every packet
/// decoded must re-encode, with `encoded_len` matching, to bytes that decode to the same packet.
pub fn decode_stream(data: &[u8], version: ProtocolVersion) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(packet)) = decode(&mut buf, version, MAX_PACKET_SIZE) {
        check_re_encode(&packet, version);
    }
}

fn check_re_encode(packet: &Packet, version: ProtocolVersion) {
    let mut out = BytesMut::new();
    if let Err(e) = packet.encode(version, &mut out) {
        panic!("decoded {packet:?} does not re-encode: {e}");
    }
    assert_eq!(packet.encoded_len(version), Ok(out.len()), "{packet:?}");
    let again = decode(&mut out, version, MAX_PACKET_SIZE);
    assert_eq!(again.as_ref(), Ok(&Some(packet.clone())));
    assert!(out.is_empty());
}

/// Splits `data` into a filter and a name at its first byte, parses both, and matches them.
pub fn topic(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (filter, name) = rest.split_at(usize::from(split).min(rest.len()));
    let (Ok(filter), Ok(name)) = (std::str::from_utf8(filter), std::str::from_utf8(name)) else {
        return;
    };
    // The raw matcher takes unvalidated strings without panicking.
    let raw = codec::matches(filter, name);
    let parsed_filter = TopicFilter::try_from(filter);
    let parsed_name = TopicName::try_from(name);
    if let Ok(f) = &parsed_filter {
        match f.share_group() {
            Some(group) => assert_eq!(f.as_str(), format!("$share/{group}/{}", f.filter())),
            None => assert_eq!(f.as_str(), f.filter()),
        }
    }
    if let (Ok(f), Ok(n)) = (parsed_filter, parsed_name) {
        let matched = f.matches(&n);
        if !f.is_shared() {
            assert_eq!(matched, raw);
            // Every valid name is also a valid filter, and matches itself.
            if f.as_str() == n.as_str() {
                assert!(matched, "{n:?} does not match itself");
            }
        }
        if f.filter() == "#" {
            assert_eq!(matched, !n.is_system());
        }
    }
}
