//! The data representations of §1.5: integers, variable byte integers, length-prefixed strings
//! and binary data. [`Reader`] reads them from a packet body it cannot read past; the `put_*`
//! functions write them.

use bytes::{Buf, BufMut, Bytes};

use crate::error::{DecodeError, EncodeError};
use crate::types::MqttString;

/// The largest value a variable byte integer holds (§1.5.5).
pub const VARINT_MAX: u32 = 268_435_455;

/// Outcome of reading a variable byte integer from a buffer that may be incomplete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarInt {
    /// The value and the number of bytes it took.
    Complete(u32, usize),
    /// The buffer ends inside the integer.
    Incomplete,
}

/// Reads a variable byte integer from the start of `bytes`, rejecting a fifth byte and
/// non-minimal encodings [MQTT-1.5.5-1].
pub(crate) fn read_varint(bytes: &[u8]) -> Result<VarInt, DecodeError> {
    let mut value: u32 = 0;
    for (i, &b) in bytes.iter().enumerate().take(4) {
        value |= u32::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            // A final byte of zero after the first means a shorter form existed.
            if i > 0 && b == 0 {
                return Err(DecodeError::VarIntNotMinimal);
            }
            return Ok(VarInt::Complete(value, i + 1));
        }
    }
    if bytes.len() >= 4 {
        Err(DecodeError::VarIntTooLong)
    } else {
        Ok(VarInt::Incomplete)
    }
}

/// Number of bytes the variable byte integer encoding of `value` takes.
pub(crate) const fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes a variable byte integer; the caller has checked `value <= VARINT_MAX`.
pub(crate) fn put_varint(buf: &mut impl BufMut, value: usize) {
    debug_assert!(
        value <= VARINT_MAX as usize,
        "varint range checked by caller"
    );
    let mut v = value;
    loop {
        let mut byte = (v & 0x7F) as u8;
        v >>= 7;
        if v > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if v == 0 {
            break;
        }
    }
}

/// Checks that a length-prefixed field fits its two-byte length.
pub(crate) fn check_field_len(len: usize) -> Result<(), EncodeError> {
    if len > usize::from(u16::MAX) {
        Err(EncodeError::FieldTooLong(len))
    } else {
        Ok(())
    }
}

/// Writes binary data with its two-byte length; the length was checked while sizing the packet.
pub(crate) fn put_binary(buf: &mut impl BufMut, data: &[u8]) {
    debug_assert!(
        data.len() <= usize::from(u16::MAX),
        "field length checked by caller"
    );
    buf.put_u16(data.len() as u16);
    buf.put_slice(data);
}

/// Writes a UTF-8 string with its two-byte length.
pub(crate) fn put_str(buf: &mut impl BufMut, s: &MqttString) {
    put_binary(buf, s.as_bytes());
}

/// A reader over one packet body (or a part of it, such as a property block). It cannot read
/// past its end: every read checks the remaining length first.
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Self { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.buf.len() < n {
            Err(DecodeError::UnexpectedEnd)
        } else {
            Ok(())
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }

    pub(crate) fn varint(&mut self) -> Result<u32, DecodeError> {
        match read_varint(&self.buf)? {
            VarInt::Complete(value, len) => {
                self.buf.advance(len);
                Ok(value)
            }
            VarInt::Incomplete => Err(DecodeError::UnexpectedEnd),
        }
    }

    /// Consumes the next byte if it is `value`.
    pub(crate) fn skip_if(&mut self, value: u8) -> bool {
        let hit = self.buf.first() == Some(&value);
        if hit {
            self.buf.advance(1);
        }
        hit
    }

    /// The next `n` bytes, shared with the packet buffer.
    pub(crate) fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }

    /// A reader over the next `n` bytes, which this reader skips.
    pub(crate) fn sub(&mut self, n: usize) -> Result<Reader, DecodeError> {
        Ok(Reader::new(self.take(n)?))
    }

    /// Binary data: a two-byte length and that many bytes.
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// A UTF-8 string, validated.
    pub(crate) fn string(&mut self) -> Result<MqttString, DecodeError> {
        MqttString::from_bytes(self.binary()?)
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Fails unless every byte was read.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.buf.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_boundaries_from_the_spec_table() {
        // §1.5.5: the first and last value of each encoded length.
        let cases: &[(u32, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for &(value, bytes) in cases {
            assert_eq!(read_varint(bytes), Ok(VarInt::Complete(value, bytes.len())));
            let mut out = Vec::new();
            put_varint(&mut out, value as usize);
            assert_eq!(out, bytes);
            assert_eq!(varint_len(value as usize), bytes.len());
        }
    }

    #[test]
    fn rejects_fifth_varint_byte() {
        assert_eq!(
            read_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            Err(DecodeError::VarIntTooLong)
        );
    }

    #[test]
    fn rejects_non_minimal_varint() {
        // 0 encoded in two bytes.
        assert_eq!(
            read_varint(&[0x80, 0x00]),
            Err(DecodeError::VarIntNotMinimal)
        );
        // 127 encoded in two bytes.
        assert_eq!(
            read_varint(&[0xFF, 0x00]),
            Err(DecodeError::VarIntNotMinimal)
        );
    }

    #[test]
    fn incomplete_varint_needs_more() {
        assert_eq!(read_varint(&[0x80]), Ok(VarInt::Incomplete));
        assert_eq!(read_varint(&[]), Ok(VarInt::Incomplete));
    }

    #[test]
    fn reader_stops_at_its_end() {
        let mut r = Reader::new(Bytes::from_static(&[0x00, 0x05, b'a']));
        assert_eq!(r.string(), Err(DecodeError::UnexpectedEnd));
    }
}
