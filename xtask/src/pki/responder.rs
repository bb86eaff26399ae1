//! The `openssl ocsp` responder command line: listening port from the OCSP URL, shell quoting.

use anyhow::{anyhow, bail, ensure};

/// The port `openssl ocsp -port` must listen on for `url` to reach it.
pub(super) fn ocsp_listen_port(url: &str) -> anyhow::Result<u16> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("ocsp url `{url}` must start with http:// (openssl ocsp serves plain HTTP only)");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_end = if authority.starts_with('[') {
        authority
            .find(']')
            .map(|i| i + 1)
            .ok_or_else(|| anyhow!("ocsp url `{url}` has an unclosed `[` in its host"))?
    } else {
        authority.find(':').unwrap_or(authority.len())
    };
    let (host, port) = authority.split_at(host_end);
    ensure!(!host.is_empty(), "ocsp url `{url}` has no host");
    match port.strip_prefix(':') {
        None if port.is_empty() => Ok(80),
        Some(port) => port
            .parse()
            .ok()
            .filter(|&port| port != 0)
            .ok_or_else(|| anyhow!("ocsp url `{url}` has an invalid port `{port}`")),
        None => bail!("ocsp url `{url}` has junk `{port}` after its host"),
    }
}

/// `arg` as one POSIX shell word.
pub(super) fn shell_quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_responder_port_in_the_ocsp_url() {
        assert_eq!(ocsp_listen_port("http://127.0.0.1:8888").unwrap(), 8888);
        assert_eq!(ocsp_listen_port("http://[::1]:9/ocsp").unwrap(), 9);
        assert_eq!(ocsp_listen_port("http://ocsp.test/x:1").unwrap(), 80);
        assert_eq!(ocsp_listen_port("http://[::1]").unwrap(), 80);
    }

    #[test]
    fn quotes_shell_metacharacters() {
        assert_eq!(shell_quote("certs/ca.pem"), "certs/ca.pem");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's $HOME"), r"'it'\''s $HOME'");
    }
}
