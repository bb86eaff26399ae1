//! The log: a tracing subscriber writing Harper-style lines to the configured file (and to
//! stdout/stderr with `stdStreams`), whose level, file, tag, streams and rotation can change
//! while running. The file itself, and its rotation, is `log_file.rs`.
//!
//! Line format, close to Harper's: `2025-01-31T12:00:00.123Z [mqtt] [warn]: message key=value`
//! (UTC timestamp; the `[tag]` only when a tag is set; span context before the message).
//!
//! Harper's levels map onto tracing's like this:
//!
//! | configured | tracing events written                                    |
//! |------------|-----------------------------------------------------------|
//! | `trace`    | TRACE and above                                           |
//! | `debug`    | DEBUG and above                                           |
//! | `info`     | INFO and above                                            |
//! | `warn`     | WARN and above (the default)                              |
//! | `error`    | ERROR                                                     |
//! | `fatal`    | ERROR (tracing has no level above ERROR)                  |
//! | `notify`   | none but notices                                          |
//!
//! Notices are events with target [`NOTIFY`] (start-up banner, reloads, shutdown). As in Harper,
//! they are written at every level, shown as `[notify]`.

use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use config::{Level, Logging};

use crate::log_file::LogFile;
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Registry, reload};

/// The target of notices: events written whatever the level, e.g.
/// `tracing::info!(target: NOTIFY, "MQTT: TCP: 1883")`.
pub const NOTIFY: &str = "notify";

/// Changes the running log: see [`LogHandle::reload`].
#[derive(Clone)]
pub struct LogHandle {
    filter: reload::Handle<Targets, Registry>,
    outputs: Arc<RwLock<Outputs>>,
}

/// Where lines go, and their tag; swapped whole on reload.
struct Outputs {
    file: Arc<Mutex<LogFile>>,
    tag: Option<String>,
    std_streams: bool,
}

/// The events `level` lets through (see the table in the module docs).
pub fn filter_for(level: Level) -> Targets {
    let default = match level {
        Level::Trace => LevelFilter::TRACE,
        Level::Debug => LevelFilter::DEBUG,
        Level::Info => LevelFilter::INFO,
        Level::Warn => LevelFilter::WARN,
        Level::Error | Level::Fatal => LevelFilter::ERROR,
        Level::Notify => LevelFilter::OFF,
    };
    Targets::new()
        .with_default(default)
        .with_target(NOTIFY, LevelFilter::TRACE)
}

/// Builds the subscriber for `settings` without installing it (tests scope it with
/// `tracing::subscriber::with_default`). Fails if the log file cannot be opened.
pub fn build(
    settings: &Logging,
) -> io::Result<(impl Subscriber + Send + Sync + 'static, LogHandle)> {
    let outputs = Arc::new(RwLock::new(open_outputs(settings)?));
    let (filter, filter_handle) = reload::Layer::new(filter_for(settings.level));
    let lines = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .event_format(HarperFormat {
            outputs: Arc::clone(&outputs),
        })
        .with_writer(Sinks {
            outputs: Arc::clone(&outputs),
        });
    let subscriber = Registry::default().with(filter).with(lines);
    Ok((
        subscriber,
        LogHandle {
            filter: filter_handle,
            outputs,
        },
    ))
}

/// Builds the subscriber for `settings` and makes it the process's global one.
pub fn install(settings: &Logging) -> anyhow::Result<LogHandle> {
    let (subscriber, handle) = build(settings).map_err(|e| open_error(&settings.path, e))?;
    tracing::subscriber::set_global_default(subscriber)?;
    Ok(handle)
}

impl LogHandle {
    /// Applies new settings (level, file, tag, streams) to the running log. If the new file cannot
    /// be opened, nothing changes.
    pub fn reload(&self, settings: &Logging) -> anyhow::Result<()> {
        let fresh = open_outputs(settings).map_err(|e| open_error(&settings.path, e))?;
        *self.outputs.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        self.filter.reload(filter_for(settings.level))?;
        Ok(())
    }
}

fn open_error(path: &Path, e: io::Error) -> anyhow::Error {
    anyhow::anyhow!("cannot open the log file {}: {e}", path.display())
}

fn open_outputs(settings: &Logging) -> io::Result<Outputs> {
    let file = LogFile::open(&settings.path, &settings.rotation)?;
    Ok(Outputs {
        file: Arc::new(Mutex::new(file)),
        tag: settings.tag.clone(),
        std_streams: settings.std_streams,
    })
}

/// Formats one event as a Harper-style line.
struct HarperFormat {
    outputs: Arc<RwLock<Outputs>>,
}

impl<S, N> FormatEvent<S, N> for HarperFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        write!(writer, "{} ", timestamp(SystemTime::now()))?;
        let tag = self
            .outputs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .tag
            .clone();
        if let Some(tag) = tag {
            write!(writer, "[{tag}] ")?;
        }
        // Revocation checks carry Harper's `ocsp` tag as well.
        if meta.target() == server::OCSP_TARGET {
            write!(writer, "[{}] ", server::OCSP_TARGET)?;
        }
        let level = if meta.target() == NOTIFY {
            "notify"
        } else {
            harper_level(*meta.level())
        };
        write!(writer, "[{level}]: ")?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                write!(writer, "{}", span.name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions
                    .get::<FormattedFields<N>>()
                    .filter(|f| !f.is_empty())
                {
                    write!(writer, "{{{fields}}}")?;
                }
                write!(writer, ": ")?;
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

fn harper_level(level: tracing::Level) -> &'static str {
    match level {
        tracing::Level::TRACE => "trace",
        tracing::Level::DEBUG => "debug",
        tracing::Level::INFO => "info",
        tracing::Level::WARN => "warn",
        tracing::Level::ERROR => "error",
    }
}

/// Hands each formatted line to the file and, with `stdStreams`, to stdout (stderr for warnings
/// and errors).
struct Sinks {
    outputs: Arc<RwLock<Outputs>>,
}

impl<'a> MakeWriter<'a> for Sinks {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            outputs: Arc::clone(&self.outputs),
            to_stderr: false,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> LineWriter {
        let to_stderr = *meta.level() <= tracing::Level::WARN && meta.target() != NOTIFY;
        LineWriter {
            outputs: Arc::clone(&self.outputs),
            to_stderr,
        }
    }
}

/// Writes one formatted event (the fmt layer hands over each line in one `write`).
struct LineWriter {
    outputs: Arc<RwLock<Outputs>>,
    to_stderr: bool,
}

impl Write for LineWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let outputs = self.outputs.read().unwrap_or_else(PoisonError::into_inner);
        // A failed log write has nowhere to be reported; the stream copies below still go out.
        let _ = outputs
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_line(line);
        if outputs.std_streams {
            if self.to_stderr {
                let _ = io::stderr().lock().write_all(line);
            } else {
                let _ = io::stdout().lock().write_all(line);
            }
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let outputs = self.outputs.read().unwrap_or_else(PoisonError::into_inner);
        outputs
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
    }
}

/// `time` as UTC `YYYY-MM-DDTHH:MM:SS.mmmZ`, Harper's timestamp format.
pub(crate) fn timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;

    /// A log file path in a fresh directory under the system temp dir.
    fn log_path(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("server-logging-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("log").join("mqtt.log")
    }

    fn settings(path: &Path, level: Level, tag: Option<&str>) -> Logging {
        Logging {
            path: path.to_path_buf(),
            level,
            tag: tag.map(str::to_owned),
            std_streams: false,
            rotation: config::Rotation::default(),
        }
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .expect("log file")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn writes_tagged_lines_at_the_configured_level_and_nothing_below() {
        let path = log_path("level");
        let (subscriber, _handle) =
            build(&settings(&path, Level::Warn, Some("mqtt"))).expect("log opens");
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!("trace line");
            tracing::debug!("debug line");
            tracing::info!("info line");
            tracing::warn!(client_id = "c1", "auth failed");
            tracing::error!("store broken");
            tracing::info!(target: NOTIFY, "MQTT: TCP: 1883");
        });
        let got = lines(&path);
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(
            got[0].ends_with(" [mqtt] [warn]: auth failed client_id=\"c1\""),
            "{}",
            got[0]
        );
        assert!(
            got[1].ends_with(" [mqtt] [error]: store broken"),
            "{}",
            got[1]
        );
        assert!(
            got[2].ends_with(" [mqtt] [notify]: MQTT: TCP: 1883"),
            "{}",
            got[2]
        );
        assert!(
            !got.iter()
                .any(|l| l.contains("info line") || l.contains("debug") || l.contains("trace"))
        );
    }

    #[test]
    fn lines_start_with_a_utc_timestamp_and_carry_span_context() {
        let path = log_path("format");
        let (subscriber, _handle) = build(&settings(&path, Level::Debug, None)).expect("log opens");
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("connection", peer = "127.0.0.1:5000");
            let _entered = span.enter();
            tracing::debug!("CONNECT received");
        });
        let got = lines(&path);
        assert_eq!(got.len(), 1, "{got:#?}");
        let (stamp, rest) = got[0].split_once(' ').expect("a timestamp");
        assert_eq!(stamp.len(), "2025-01-31T12:00:00.123Z".len(), "{stamp}");
        assert!(
            stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "{stamp}"
        );
        assert_eq!(
            rest,
            "[debug]: connection{peer=\"127.0.0.1:5000\"}: CONNECT received"
        );
    }

    #[test]
    fn notify_level_writes_notices_only() {
        let path = log_path("notify");
        let (subscriber, _handle) =
            build(&settings(&path, Level::Notify, Some("mqtt"))).expect("log opens");
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!("an error");
            tracing::info!(target: NOTIFY, "started");
        });
        let got = lines(&path);
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(got[0].ends_with("[mqtt] [notify]: started"));
    }

    #[test]
    fn reload_changes_level_tag_and_file_without_a_restart() {
        let first = log_path("reload-a");
        let second = log_path("reload-b");
        let (subscriber, handle) =
            build(&settings(&first, Level::Warn, Some("mqtt"))).expect("log opens");
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("before reload");
            handle
                .reload(&settings(&first, Level::Info, Some("broker")))
                .expect("reloads");
            tracing::info!("after reload");
            handle
                .reload(&settings(&second, Level::Error, None))
                .expect("reloads");
            tracing::warn!("filtered out");
            tracing::error!("in the new file");
        });
        let got = lines(&first);
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(
            got[0].ends_with("[broker] [info]: after reload"),
            "{}",
            got[0]
        );
        let got = lines(&second);
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(got[0].ends_with(" [error]: in the new file"), "{}", got[0]);
    }

    #[test]
    fn a_log_past_max_size_is_rotated_and_lines_go_on_in_a_fresh_file() {
        let path = log_path("rotation");
        let settings = Logging {
            rotation: config::Rotation {
                max_size: std::num::NonZeroU64::new(1024),
                ..config::Rotation::default()
            },
            ..settings(&path, Level::Info, Some("mqtt"))
        };
        let (subscriber, _handle) = build(&settings).expect("log opens");
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..40 {
                tracing::info!(line = i, "{}", "x".repeat(60));
            }
        });
        let dir = path.parent().expect("a directory");
        let rotated: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("the log directory")
            .map(|e| e.expect("an entry").path())
            .filter(|p| p != &path)
            .collect();
        assert!(rotated.len() >= 2, "{rotated:?}");
        let mut total = 0;
        for file in rotated.iter().chain([&path]) {
            let len = std::fs::metadata(file).expect("exists").len();
            assert!(len <= 1024, "{} is {len} bytes", file.display());
            total += lines(file).len();
        }
        assert_eq!(total, 40);
        // The fresh file has the latest lines.
        let current = lines(&path);
        assert!(
            current.last().is_some_and(|l| l.ends_with("line=39")),
            "{current:#?}"
        );
    }

    #[test]
    fn a_log_file_that_cannot_be_opened_is_an_error() {
        let path = log_path("dir");
        std::fs::create_dir_all(&path).expect("a directory where the file should be");
        assert!(build(&settings(&path, Level::Warn, None)).is_err());
    }

    #[test]
    fn maps_every_level() {
        let enabled = |level: Level, event: tracing::Level| {
            let filter = filter_for(level);
            filter.would_enable("server::broker", &event)
        };
        assert!(enabled(Level::Trace, tracing::Level::TRACE));
        assert!(
            !enabled(Level::Debug, tracing::Level::TRACE)
                && enabled(Level::Debug, tracing::Level::DEBUG)
        );
        assert!(
            !enabled(Level::Info, tracing::Level::DEBUG)
                && enabled(Level::Info, tracing::Level::INFO)
        );
        assert!(
            !enabled(Level::Warn, tracing::Level::INFO)
                && enabled(Level::Warn, tracing::Level::WARN)
        );
        assert!(
            !enabled(Level::Error, tracing::Level::WARN)
                && enabled(Level::Error, tracing::Level::ERROR)
        );
        assert!(
            !enabled(Level::Fatal, tracing::Level::WARN)
                && enabled(Level::Fatal, tracing::Level::ERROR)
        );
        assert!(!enabled(Level::Notify, tracing::Level::ERROR));
        assert!(filter_for(Level::Notify).would_enable(NOTIFY, &tracing::Level::INFO));
    }

    #[test]
    fn formats_timestamps_in_utc() {
        let at = |secs: u64, ms: u64| {
            timestamp(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_738_324_800, 123), "2025-01-31T12:00:00.123Z");
    }
}
