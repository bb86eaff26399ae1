//! A running `openssl ocsp` responder, for tests: started from its arguments, known to be
//! listening once it prints its `ACCEPT` line, killed on drop.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// `openssl ocsp` in responder mode.
#[derive(Debug)]
pub struct OcspResponder {
    child: Child,
    stderr_path: PathBuf,
}

impl OcspResponder {
    /// Runs `openssl` with `args` (from [`super::Pki::ocsp_responder_args`]) and waits, at most
    /// `timeout`, for the `ACCEPT` line openssl 3 prints once it listens. Readiness is not
    /// probed on the port: a connection that closes without a request wedges the openssl 3.0
    /// responder. Its stderr goes to `stderr_path`.
    pub fn start<I, S>(args: I, stderr_path: PathBuf, timeout: Duration) -> anyhow::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let stderr = std::fs::File::create(&stderr_path)
            .with_context(|| format!("creating {}", stderr_path.display()))?;
        let mut child = Command::new("openssl")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .context("starting openssl ocsp")?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let (lines_tx, lines_rx) = mpsc::channel();
        // Drains stdout (`-text` prints every request) so the responder never blocks on the pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let responder = Self { child, stderr_path };
        let deadline = Instant::now() + timeout;
        loop {
            match lines_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.starts_with("ACCEPT") => return Ok(responder),
                Ok(_) => continue,
                Err(e) => bail!(
                    "openssl ocsp did not start listening ({e}); stderr:\n{}",
                    responder.stderr()
                ),
            }
        }
    }

    /// What the responder wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Kills the responder.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OcspResponder {
    fn drop(&mut self) {
        self.stop();
    }
}
