//! `cargo xtask`: project automation. Run `cargo xtask help` for the list of tasks.

use std::path::PathBuf;

use anyhow::{Context, bail};
use xtask::pki;

mod bench;

const HELP: &str = "\
usage: cargo xtask <task> [options]

tasks:
  gen-certs [--out DIR] [--ocsp-url URL]
            write the test PKI (root and intermediate CA, server, clients alice/bob/carol,
            expired, revoked, a second CA with its client, OCSP responder, index.txt) into DIR
            (default ./certs); client certificates name URL as their OCSP responder
            (default http://127.0.0.1:8888)
  bench [--rounds N] [--only NAME,...] [--quick] [--cores 1|2] [--idle-clients N] [--out DIR]
            build the broker and the load generator in release mode, run the same scenarios
            against our broker and mosquitto (Debian's, on PATH) on loopback, alternating, and
            print a table of medians over N rounds (default 3) with the ratio ours / mosquitto;
            write results.md, throughput.svg and latency.svg to DIR (default docs/bench, or
            docs/bench/two-cores with --cores 2; a --quick run writes under the target dir).
            --only runs a subset (names: fanin-qos0 fanin-qos1 fanin-qos2 fanout-qos0
            fanout-qos1 fanout-qos2 fanin-qos1-4k fanout-qos0-4k fanin-qos1-tls fanin-qos1-ws
            persist-qos1 persist-qos1-mem latency idle); --quick uses small counts and 1 round (a smoke test, not a figure);
            --cores 2 leaves the broker unpinned (loadgen then shares both cores);
            --idle-clients sets the idle scenario's connections (default 10000; 100000 raises
            the open-files limit of the brokers and loadgen with prlimit)
  help      this text
";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        None | Some("help" | "--help" | "-h") => {
            print!("{HELP}");
            Ok(())
        }
        Some("gen-certs") => match GenCerts::parse(args)? {
            Some(task) => task.run(),
            None => {
                print!("{HELP}");
                Ok(())
            }
        },
        Some("bench") => bench::run(&bench::Options::parse(args)?),
        Some(other) => bail!("unknown task `{other}`; run `cargo xtask help`"),
    }
}

/// `gen-certs` and its options.
#[derive(Debug, PartialEq, Eq)]
struct GenCerts {
    out: PathBuf,
    ocsp_url: String,
}

impl GenCerts {
    /// `None` when help was asked for.
    fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Option<Self>> {
        let mut task = Self {
            out: PathBuf::from("certs"),
            ocsp_url: pki::DEFAULT_OCSP_URL.to_owned(),
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (arg, None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .with_context(|| format!("gen-certs: {flag} needs a value"))
            };
            match flag.as_str() {
                "--out" => task.out = PathBuf::from(value()?),
                "--ocsp-url" => task.ocsp_url = value()?,
                "-h" | "--help" => return Ok(None),
                _ => bail!("gen-certs: unknown option `{flag}`; run `cargo xtask help`"),
            }
        }
        Ok(Some(task))
    }

    fn run(self) -> anyhow::Result<()> {
        let pki = pki::generate(&pki::PkiOptions {
            ocsp_url: self.ocsp_url,
            ..pki::PkiOptions::default()
        })?;
        pki.write_to(&self.out)?;
        let names: Vec<&str> = pki.files().iter().map(|file| file.name).collect();
        println!("wrote {} to {}", names.join(" "), self.out.display());
        println!(
            "\nserve OCSP for the root CA's certificates (alice, bob, expired: good; revoked: revoked) \
             at {} with:\n\n  {}\n",
            pki.ocsp_url,
            pki.ocsp_responder_command(&self.out)?
        );
        println!(
            "it answers for one issuer, ca.pem: carol (intermediate) and stranger (other CA) \
             are `unknown` to it"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Option<GenCerts>> {
        GenCerts::parse(args.iter().map(|arg| (*arg).to_owned()))
    }

    #[test]
    fn defaults_to_certs_dir_and_local_responder() {
        let task = parse(&[]).unwrap().unwrap();
        assert_eq!(task.out, PathBuf::from("certs"));
        assert_eq!(task.ocsp_url, "http://127.0.0.1:8888");
    }

    #[test]
    fn takes_values_separate_or_after_equals() {
        let expected = GenCerts {
            out: PathBuf::from("/tmp/x"),
            ocsp_url: "http://h:1".to_owned(),
        };
        let separate = parse(&["--out", "/tmp/x", "--ocsp-url", "http://h:1"]);
        assert_eq!(separate.unwrap().unwrap(), expected);
        let joined = parse(&["--ocsp-url=http://h:1", "--out=/tmp/x"]);
        assert_eq!(joined.unwrap().unwrap(), expected);
    }

    #[test]
    fn rejects_missing_value_and_unknown_option() {
        let err = parse(&["--out"]).unwrap_err();
        assert_eq!(err.to_string(), "gen-certs: --out needs a value");
        let err = parse(&["--force"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "gen-certs: unknown option `--force`; run `cargo xtask help`"
        );
    }

    #[test]
    fn help_flag_asks_for_help() {
        assert!(parse(&["--out", "x", "--help"]).unwrap().is_none());
    }
}
