//! The log file: appended to, created 0600 in directories made 0700, and rotated as Harper's
//! `logging.rotation` says, so that one file cannot fill the disk.
//!
//! Before a line would take the file past `maxSize`, or once `interval` has passed since the
//! file was opened or last rotated, the file is renamed to `<name>-<UTC timestamp>.<ext>` (for
//! example `hdb-2025-01-31T12-00-00.123Z.log`) in `rotation.path` (default: the log's own
//! directory) and a fresh file is started. Rotated files are never deleted or compressed here.
//! A rotation that fails (a full or read-only disk) is reported on stderr (the log cannot
//! report on itself) and tried again a minute later; lines keep going to the current file.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use config::Rotation;

/// How long after a failed rotation the next is tried.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// An open log file and its rotation state.
pub(crate) struct LogFile {
    file: File,
    path: PathBuf,
    /// Bytes in the file: its length when opened, plus what was written since.
    size: u64,
    /// When the file was opened or last rotated, for `interval`.
    started: SystemTime,
    rotation: Rotation,
    /// No rotation is tried before this, after one failed.
    retry_at: Option<SystemTime>,
}

impl LogFile {
    /// Opens (or creates) `path` for appending, with `rotation`'s settings.
    pub(crate) fn open(path: &Path, rotation: &Rotation) -> io::Result<LogFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_dirs(dir)?;
        }
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile {
            file,
            path: path.to_path_buf(),
            size,
            started: SystemTime::now(),
            rotation: rotation.clone(),
            retry_at: None,
        })
    }

    /// Writes one line, rotating first when it is due.
    pub(crate) fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.write_line_at(line, SystemTime::now())
    }

    /// [`LogFile::write_line`] at a given time (tests set the clock).
    fn write_line_at(&mut self, line: &[u8], now: SystemTime) -> io::Result<()> {
        if self.due(line.len(), now) {
            match self.rotate(now) {
                Ok(_) => self.retry_at = None,
                Err(e) => {
                    self.retry_at = now.checked_add(RETRY_AFTER);
                    eprintln!(
                        "server: rotating the log file {} failed: {e}; writing on, next try in {}s",
                        self.path.display(),
                        RETRY_AFTER.as_secs()
                    );
                }
            }
        }
        self.file.write_all(line)?;
        self.size = self.size.saturating_add(line.len() as u64);
        Ok(())
    }

    /// Flushes the file.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    /// True when a line of `incoming` bytes should go to a fresh file.
    fn due(&self, incoming: usize, now: SystemTime) -> bool {
        let r = &self.rotation;
        if !r.enabled || self.retry_at.is_some_and(|at| now < at) {
            return false;
        }
        let too_big = r.max_size.is_some_and(|max| {
            self.size > 0 && self.size.saturating_add(incoming as u64) > max.get()
        });
        let too_old = r.interval.is_some_and(|every| {
            now.duration_since(self.started)
                .is_ok_and(|age| age >= every)
        });
        too_big || too_old
    }

    /// Moves the current file aside and starts a fresh one; the rotated file's path.
    fn rotate(&mut self, now: SystemTime) -> io::Result<PathBuf> {
        let dir = match &self.rotation.path {
            Some(dir) => dir.clone(),
            None => self
                .path
                .parent()
                .map_or_else(PathBuf::new, Path::to_path_buf),
        };
        if !dir.as_os_str().is_empty() {
            create_dirs(&dir)?;
        }
        let target = rotated_path(&self.path, &dir, now)?;
        self.file.flush()?;
        match std::fs::rename(&self.path, &target) {
            Ok(()) => self.file = open_append(&self.path)?,
            // `rotation.path` on another file system: copy, then empty the file in place.
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                std::fs::copy(&self.path, &target)?;
                self.file.set_len(0)?;
            }
            Err(e) => return Err(e),
        }
        self.size = 0;
        self.started = now;
        Ok(target)
    }
}

/// `<dir>/<stem>-<timestamp>.<ext>`, with `-1`, `-2`, … added if that exists already.
fn rotated_path(path: &Path, dir: &Path, now: SystemTime) -> io::Result<PathBuf> {
    let stem = path
        .file_stem()
        .map_or_else(|| "log".into(), |s| s.to_string_lossy());
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    // Colons are awkward in file names (and not allowed on some systems the files are copied to).
    let stamp = crate::logging::timestamp(now).replace(':', "-");
    for n in 0..1000 {
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("-{n}")
        };
        let candidate = dir.join(format!("{stem}-{stamp}{suffix}{ext}"));
        if !candidate.exists() {
            return Ok(candidate);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "a thousand rotated files share this timestamp",
    ))
}

/// Creates `dir` and its missing parents, each 0700: logs hold client ids and user names.
fn create_dirs(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Opens `path` for appending, creating it 0600 (an existing file keeps its mode).
fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU64;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A fresh directory under the system temp dir.
    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("server-log-file-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn rotation(max_size: Option<u64>, interval: Option<Duration>) -> Rotation {
        Rotation {
            max_size: max_size.and_then(NonZeroU64::new),
            interval,
            ..Rotation::default()
        }
    }

    /// The files in `dir` other than `current`, sorted by name.
    fn rotated(dir: &Path, current: &Path) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("the directory exists")
            .map(|e| e.expect("an entry").path())
            .filter(|p| p != current && p.is_file())
            .collect();
        found.sort();
        found
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn rotates_before_passing_max_size_and_writes_on_to_a_fresh_file() {
        let dir = dir("size");
        let path = dir.join("log").join("mqtt.log");
        let mut log = LogFile::open(&path, &rotation(Some(1024), None)).expect("opens");
        let line = |i: usize| format!("{i:04} {}\n", "x".repeat(94));
        for i in 0..30 {
            log.write_line(line(i).as_bytes()).expect("written");
        }
        log.flush().expect("flushed");
        let log_dir = path.parent().expect("a parent");
        let old = rotated(log_dir, &path);
        assert_eq!(old.len(), 2, "{old:?}");
        let mut texts = Vec::new();
        for file in old.iter().chain([&path]) {
            let text = std::fs::read_to_string(file).expect("readable");
            assert!(
                text.len() <= 1024,
                "{} is {} bytes",
                file.display(),
                text.len()
            );
            assert_eq!(mode(file), 0o600, "{}", file.display());
            texts.push(text);
        }
        // Two rotations in one millisecond get `-1` names, which sort apart from the time order:
        // the lines' numbers give the order.
        texts.sort();
        let all: String = texts.concat();
        // Every line once, in order, none split between files.
        let expected: String = (0..30).map(line).collect();
        assert_eq!(all, expected);
        let name = old[0]
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with("mqtt-20")
                && name.ends_with(".log")
                && name.contains("Z")
                && !name.contains(':'),
            "{name}"
        );
        assert_eq!(mode(log_dir), 0o700);
    }

    #[test]
    fn rotates_after_the_interval_into_the_rotation_path() {
        let dir = dir("interval");
        let path = dir.join("hdb.log");
        let old_dir = dir.join("old").join("logs");
        let r = Rotation {
            path: Some(old_dir.clone()),
            ..rotation(None, Some(Duration::from_secs(3600)))
        };
        let mut log = LogFile::open(&path, &r).expect("opens");
        let t0 = log.started;
        log.write_line_at(b"first\n", t0).expect("written");
        log.write_line_at(b"second\n", t0 + Duration::from_secs(3599))
            .expect("written");
        log.write_line_at(b"third\n", t0 + Duration::from_secs(3600))
            .expect("written");
        let old = rotated(&old_dir, &path);
        assert_eq!(old.len(), 1, "{old:?}");
        assert_eq!(
            std::fs::read_to_string(&old[0]).expect("readable"),
            "first\nsecond\n"
        );
        assert_eq!(std::fs::read_to_string(&path).expect("readable"), "third\n");
        assert_eq!(mode(&old_dir), 0o700);
        // The interval counts again from the rotation.
        log.write_line_at(b"fourth\n", t0 + Duration::from_secs(7000))
            .expect("written");
        assert_eq!(rotated(&old_dir, &path).len(), 1);
    }

    #[test]
    fn a_line_longer_than_max_size_is_written_whole() {
        let dir = dir("long");
        let path = dir.join("hdb.log");
        let mut log = LogFile::open(&path, &rotation(Some(1024), None)).expect("opens");
        let long = "y".repeat(3000);
        log.write_line(long.as_bytes()).expect("written");
        assert_eq!(std::fs::read_to_string(&path).expect("readable"), long);
        log.write_line(b"next\n").expect("written");
        assert_eq!(std::fs::read_to_string(&path).expect("readable"), "next\n");
    }

    #[test]
    fn disabled_rotation_never_rotates() {
        let dir = dir("off");
        let path = dir.join("hdb.log");
        let off = Rotation {
            enabled: false,
            ..rotation(Some(1024), Some(Duration::from_secs(1)))
        };
        let mut log = LogFile::open(&path, &off).expect("opens");
        let t0 = log.started;
        for i in 0..50u64 {
            log.write_line_at(&[b'z'; 100], t0 + Duration::from_secs(i))
                .expect("written");
        }
        assert!(rotated(&dir, &path).is_empty());
        assert_eq!(std::fs::metadata(&path).expect("exists").len(), 5000);
    }

    #[test]
    fn an_existing_file_counts_towards_max_size() {
        let dir = dir("existing");
        std::fs::create_dir_all(&dir).expect("created");
        let path = dir.join("hdb.log");
        std::fs::write(&path, "z".repeat(1000)).expect("written");
        let mut log = LogFile::open(&path, &rotation(Some(1024), None)).expect("opens");
        log.write_line(&[b'a'; 100]).expect("written");
        assert_eq!(rotated(&dir, &path).len(), 1);
    }
}
