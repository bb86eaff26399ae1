//! RLIMIT_NOFILE: raised so one loadgen can hold 100,000 connections.

use anyhow::bail;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Makes room for at least `wanted` open files: the soft limit goes up to `wanted`, and the hard
/// limit with it when the process may raise it (root, CAP_SYS_RESOURCE). Fails only when neither
/// gets there.
pub fn ensure(wanted: u64) -> anyhow::Result<()> {
    let now = getrlimit(Resource::Nofile);
    let soft = now.current.unwrap_or(u64::MAX);
    if soft >= wanted {
        return Ok(());
    }
    let hard = now.maximum.unwrap_or(u64::MAX);
    let raised = Rlimit {
        current: Some(wanted),
        maximum: Some(hard.max(wanted)),
    };
    if setrlimit(Resource::Nofile, raised).is_ok() {
        return Ok(());
    }
    if hard >= wanted {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(wanted),
                maximum: now.maximum,
            },
        )?;
        return Ok(());
    }
    bail!(
        "{wanted} open files needed, but the limit is {soft} (hard {hard}) and cannot be raised; \
         run as root or raise it with `ulimit -n` / `prlimit`"
    )
}
