//! Byte scans behind string and topic validation, eight bytes at a time in a `u64` (SWAR).
//!
//! MQTT strings are mostly a few dozen bytes: too short for the compiler's vector loops to pay
//! for their set-up, and byte-at-a-time loops cost several instructions per byte. These scans
//! answer "is there any byte (or pair of neighbouring bytes) like this?" with a handful of
//! integer operations per eight bytes. The tests check each against a plain reference.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;
const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;

/// Fills the lanes past the end of a short input: ASCII, not NUL, not a wildcard, not `/`.
const PAD: u8 = b'a';

/// Bit 7 set in each byte of `w` that equals `c`, and in no other. Exact per byte: the addition
/// is confined to the low seven bits, so no carry crosses into the next byte.
#[inline]
const fn eq(w: u64, c: u8) -> u64 {
    let t = w ^ (LO * c as u64);
    !(((t & LOW7) + LOW7) | t) & HI
}

/// Bit 7 set in each byte that is `+` (0x2B) or `#` (0x23): they differ only in bit 3, so
/// setting bit 3 maps both, and only them, to 0x2B.
#[inline]
const fn wildcards(w: u64) -> u64 {
    eq(w | (LO * 0x08), b'+')
}

/// Non-zero when some byte of `w` is zero. Exact about "some", not about which byte: a borrow
/// can also mark the byte after a zero byte.
#[inline]
const fn any_zero(w: u64) -> u64 {
    w.wrapping_sub(LO) & !w & HI
}

/// Whether every byte of `bytes` is in 0x01..=0x7F (ASCII without NUL, so valid UTF-8 without
/// U+0000), and whether any is `+` or `#`. Every byte is read: the words cover the input, the
/// last one overlapping the one before when the length is not a multiple of eight.
/// `MqttString::as_str` relies on the first answer.
#[inline]
pub(crate) fn classify(bytes: &[u8]) -> (bool, bool) {
    // Per word: bit 7 set somewhere if a byte is NUL or not ASCII, or is a wildcard.
    let odd = |w: u64| any_zero(w) | (w & HI);
    let wild = |w: u64| any_zero((w | (LO * 0x08)) ^ (LO * u64::from(b'+')));
    let (mut bad, mut wildcard) = (0, 0);
    if let Some(last) = bytes.last_chunk::<8>() {
        let (words, _) = bytes.as_chunks::<8>();
        for w in words.iter().chain([last]) {
            let w = u64::from_le_bytes(*w);
            bad |= odd(w);
            wildcard |= wild(w);
        }
    } else {
        let w = padded(bytes);
        bad = odd(w);
        wildcard = wild(w);
    }
    (bad == 0, wildcard != 0)
}

/// The eight bytes at `at`; callers only ask for words inside `s`.
#[inline]
fn word(s: &[u8], at: usize) -> u64 {
    let w = s
        .get(at..)
        .and_then(<[u8]>::first_chunk::<8>)
        .expect("scan words lie inside the input");
    u64::from_le_bytes(*w)
}

/// A word holding all of `s` (shorter than eight bytes), padded with [`PAD`].
#[inline]
fn padded(s: &[u8]) -> u64 {
    let mut w = [PAD; 8];
    for (lane, &b) in w.iter_mut().zip(s) {
        *lane = b;
    }
    u64::from_le_bytes(w)
}

/// True when a wildcard in the topic filter `bytes` is not a whole level or `#` is not last
/// (§4.7.1). Looks at every pair of neighbouring bytes: a wildcard next to anything but `/`, or
/// anything after `#`, breaks the rule; a wildcard at either end has no neighbour there.
pub(crate) fn has_misplaced_wildcard(bytes: &[u8]) -> bool {
    let n = bytes.len();
    if n < 2 {
        return false;
    }
    if n < 8 {
        // Padding after the end neither is nor needs a `/`, so only the real pairs count.
        return misplaced_pairs(padded(bytes), n - 1);
    }
    // Words step by seven bytes so that consecutive words share a byte: every pair lies inside
    // one word. The last word ends at the last byte and may overlap the one before.
    let mut at = 0;
    while at + 8 <= n {
        if misplaced_pairs(word(bytes, at), 7) {
            return true;
        }
        at += 7;
    }
    at + 1 < n && misplaced_pairs(word(bytes, n - 8), 7)
}

/// Whether any of the first `pairs` pairs of neighbouring lanes of `w` (lane `i` and `i + 1`,
/// lane 0 being the first byte) breaks the wildcard rule.
#[inline]
fn misplaced_pairs(w: u64, pairs: usize) -> bool {
    // Lanes 0..=pairs take part in the pairs; most words of most filters hold no wildcard.
    let used = if pairs >= 7 {
        u64::MAX
    } else {
        (1u64 << (8 * (pairs + 1))) - 1
    };
    let wild = wildcards(w) & used;
    if wild == 0 {
        return false;
    }
    let slash = eq(w, b'/');
    // Little-endian: shifting right by a byte moves lane `i + 1` into lane `i`.
    let (next_wild, next_slash) = (wild >> 8, slash >> 8);
    let bad = eq(w, b'#') | (next_wild & !slash) | (wild & !next_slash);
    bad & (used >> 8) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule as the spec words it, level by level.
    fn misplaced_by_levels(s: &[u8]) -> bool {
        let levels: Vec<&[u8]> = s.split(|&b| b == b'/').collect();
        levels.iter().enumerate().any(|(i, level)| match *level {
            b"#" => i + 1 != levels.len(),
            b"+" => false,
            other => other.iter().any(|&b| b == b'+' || b == b'#'),
        })
    }

    /// Every string over `alphabet` up to `max_len` bytes.
    fn all_strings(alphabet: &[u8], max_len: usize) -> Vec<Vec<u8>> {
        let mut out = vec![Vec::new()];
        let mut last = vec![Vec::new()];
        for _ in 0..max_len {
            last = last
                .iter()
                .flat_map(|s: &Vec<u8>| {
                    alphabet.iter().map(move |&c| {
                        let mut t = s.clone();
                        t.push(c);
                        t
                    })
                })
                .collect();
            out.extend(last.iter().cloned());
        }
        out
    }

    #[test]
    fn classify_sees_every_byte() {
        for len in 0..=40 {
            for at in 0..len {
                for (b, plain, wild) in [
                    (0x00, false, false),
                    (0x01, true, false),
                    (0x7F, true, false),
                    (0x80, false, false),
                    (0xFF, false, false),
                    (b'+', true, true),
                    (b'#', true, true),
                    (b'*', true, false),
                    (b'+' | 0x80, false, false),
                    (b'/', true, false),
                ] {
                    let mut s = vec![b'x'; len];
                    s[at] = b;
                    assert_eq!(classify(&s), (plain, wild), "{b:#04x} at {at} of {len}");
                }
            }
            assert_eq!(classify(&vec![b'x'; len]), (true, false));
        }
    }

    #[test]
    fn misplaced_wildcards_match_the_level_rule_exhaustively() {
        // Up to nine bytes covers the short-input padding, one full word and one overlapping.
        for s in all_strings(b"a/+#", 9) {
            assert_eq!(
                has_misplaced_wildcard(&s),
                misplaced_by_levels(&s),
                "{:?}",
                String::from_utf8_lossy(&s)
            );
        }
    }

    #[test]
    fn misplaced_wildcards_in_longer_filters() {
        // Deterministic pseudo-random filters of 10 to 40 bytes, mostly valid-looking levels.
        let mut seed = 0x2545_F491_4F6C_DD1D_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = 10 + (seed % 31) as usize;
            let s: Vec<u8> = (0..len)
                .map(|i| b"abc//+#"[((seed >> (i % 60)) % 7) as usize])
                .collect();
            assert_eq!(has_misplaced_wildcard(&s), misplaced_by_levels(&s), "{s:?}");
        }
        assert!(!has_misplaced_wildcard(
            b"sensors/+/temperature/with/a/long/tail/#"
        ));
        assert!(has_misplaced_wildcard(
            b"sensors/+/temperature/with/a/long/tail#"
        ));
        assert!(has_misplaced_wildcard(
            b"sensors/+/temperature/with/a/long/ta+l/x"
        ));
    }
}
