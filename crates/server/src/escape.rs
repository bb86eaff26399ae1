//! [`Escaped`]: how a client-supplied string (client id, user name, topic, filter) appears in a
//! log line: control characters escaped, so a topic with a newline cannot forge a line, and cut
//! to [`Escaped::MAX_CHARS`] characters, so a client cannot make one line huge.

use std::fmt::{self, Write};

/// A client-supplied string, for a log field (`%Escaped(&topic)`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Escaped<'a>(pub &'a str);

impl Escaped<'_> {
    /// Characters shown at most; a longer string ends with `…` and its length.
    pub const MAX_CHARS: usize = 64;
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shown, c) in self.0.chars().enumerate() {
            if shown == Self::MAX_CHARS {
                return write!(f, "…({} chars)", self.0.chars().count());
            }
            if c.is_control() || c == '\\' {
                for e in c.escape_default() {
                    f.write_char(e)?;
                }
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// An optional user name for a log field: the name escaped, or `-` for none (anonymous).
#[derive(Debug, Clone, Copy)]
pub(crate) struct User<'a>(pub Option<&'a str>);

impl fmt::Display for User<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => Escaped(name).fmt(f),
            None => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_strings_cut() {
        assert_eq!(Escaped("a/b").to_string(), "a/b");
        assert_eq!(
            Escaped("x\nINFO forged line\r\u{1b}[31m\\").to_string(),
            "x\\nINFO forged line\\r\\u{1b}[31m\\\\"
        );
        assert_eq!(Escaped("é/ü").to_string(), "é/ü");
        let long = "t".repeat(1000);
        let shown = Escaped(&long).to_string();
        assert_eq!(shown, format!("{}…(1000 chars)", "t".repeat(64)));
        assert_eq!(User(None).to_string(), "-");
        assert_eq!(User(Some("bob\n")).to_string(), "bob\\n");
    }
}
