//! The open-files limit: every client connection is a file descriptor, and the usual soft limit
//! of 1024 would cap the broker at about a thousand clients. At start-up the soft limit is raised
//! to the hard limit, as Go programs do by default and nginx's `worker_rlimit_nofile` does.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// The open-files limit before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    /// The soft limit found; `None` is unlimited.
    pub before: Option<u64>,
    /// The soft limit in force now.
    pub now: Option<u64>,
}

/// Raises the soft limit to the hard one. Linux refuses a soft limit above `fs.nr_open` even when
/// the hard limit is unlimited, so that is the ceiling then. Never fails: with no way up, the
/// limit stays as it was.
pub fn raise() -> Raised {
    let found = getrlimit(Resource::Nofile);
    let before = found.current;
    let target = match found.maximum {
        Some(hard) => Some(hard),
        None => std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok()),
    };
    let Some(target) = target else {
        return Raised {
            before,
            now: before,
        };
    };
    if before.is_none_or(|soft| soft >= target) {
        return Raised {
            before,
            now: before,
        };
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: found.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => Raised {
            before,
            now: Some(target),
        },
        Err(_) => Raised {
            before,
            now: before,
        },
    }
}
