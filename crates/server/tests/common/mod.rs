//! What the binary's tests share: starting it on a data root of their own.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

/// A running broker binary, after its banner.
pub struct Started {
    pub child: Child,
    /// The first line it printed: `MQTT: TCP: 127.0.0.1:41234, TLS: …`.
    pub banner: String,
    /// The rest of its standard output.
    pub lines: Lines<BufReader<ChildStdout>>,
}

/// Starts the broker binary with `--root root` and nothing in its environment but `HOME=root` and
/// `env`, its standard error going to `stderr`, and waits for the banner.
pub fn start(root: &Path, env: &[(&str, &str)], stderr: Stdio) -> Started {
    spawn(
        Command::new(env!("CARGO_BIN_EXE_server")),
        root,
        env,
        stderr,
    )
}

/// [`start`] with the open-files soft limit lowered to `soft` first (by `sh`'s `ulimit`).
pub fn start_with_open_files(
    root: &Path,
    env: &[(&str, &str)],
    stderr: Stdio,
    soft: u64,
) -> Started {
    let mut command = Command::new("sh");
    command.args([
        "-c",
        &format!("ulimit -Sn {soft} && exec \"$0\" \"$@\""),
        env!("CARGO_BIN_EXE_server"),
    ]);
    spawn(command, root, env, stderr)
}

fn spawn(mut command: Command, root: &Path, env: &[(&str, &str)], stderr: Stdio) -> Started {
    command
        .env_clear()
        .env("HOME", root)
        .args(["--root", root.to_str().expect("utf-8 root")])
        .stdout(Stdio::piped())
        .stderr(stderr);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let banner = lines.next().expect("a banner line").expect("utf-8");
    Started {
        child,
        banner,
        lines,
    }
}

/// A started binary that is killed when dropped (also when a test fails halfway, so no
/// broker is left listening).
pub struct Running(pub Started);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.child.kill();
        let _ = self.0.child.wait();
    }
}

impl Started {
    /// The address of the only listener, a plain TCP one.
    pub fn only_tcp_address(&self) -> String {
        self.banner
            .strip_prefix("MQTT: TCP: ")
            .filter(|rest| !rest.contains(','))
            .unwrap_or_else(|| panic!("unexpected banner {:?}", self.banner))
            .to_owned()
    }

    /// The port of the listener of `kind` (`TCP`, `TLS`, …) the banner names.
    pub fn port_of(&self, kind: &str) -> String {
        let at = self
            .banner
            .find(&format!("{kind}: "))
            .unwrap_or_else(|| panic!("no {kind} in {:?}", self.banner));
        let addr = self.banner[at + kind.len() + 2..]
            .split([',', ' '])
            .next()
            .expect("an address");
        addr.rsplit(':').next().expect("a port").to_owned()
    }
}
