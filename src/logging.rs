//! The process logger: `log` facade → stderr, as JSON lines or console lines.
//!
//! JSON: one object per line, `{"ts":"…","level":"INFO","msg":"…",<key-values>}`; key-values come
//! from `log`'s structured form (`log::info!(batch_id = id, attempt = 2; "upload failed")`), numbers
//! and booleans stay JSON numbers and booleans. Console: `ts LEVEL target: msg key=value …`.
//! Lines are assembled in one reused buffer and written with a single write(2), so concurrent
//! lines never interleave.
//!
//! Level and format can change while the process runs ([`reconfigure`], on a configuration
//! reload): both are atomics read per record.

use std::io::Write;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use log::kv::{Key, Value, VisitSource};
use log::{LevelFilter, Log, Metadata, Record};

use crate::model::time::{now_ms, rfc3339};
use crate::text::json::write_str;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Console,
}

#[derive(Debug)]
pub struct Logger {
    /// A [`Format`] as `format_code`.
    format: AtomicU8,
    /// A `LevelFilter` as `usize` (Off = 0 … Trace = 5).
    level: AtomicUsize,
    buf: Mutex<Vec<u8>>,
    sink: Sink,
}

#[derive(Debug)]
enum Sink {
    Stderr,
    /// Tests capture lines here.
    #[cfg(test)]
    Memory(Mutex<Vec<u8>>),
}

impl Logger {
    pub fn new(format: Format, level: LevelFilter) -> Logger {
        Logger {
            format: AtomicU8::new(format_code(format)),
            level: AtomicUsize::new(level as usize),
            buf: Mutex::new(Vec::with_capacity(1024)),
            sink: Sink::Stderr,
        }
    }

    /// Installs the logger for the process; a second call is ignored.
    pub fn install(self) {
        let level = self.level();
        if INSTALLED.get().is_some() {
            return;
        }
        let logger: &'static Logger = Box::leak(Box::new(self));
        if log::set_logger(logger).is_ok() {
            let _ = INSTALLED.set(logger);
            log::set_max_level(level);
        }
    }

    fn level(&self) -> LevelFilter {
        level_from(self.level.load(Ordering::Relaxed))
    }

    fn format(&self) -> Format {
        if self.format.load(Ordering::Relaxed) == format_code(Format::Json) {
            Format::Json
        } else {
            Format::Console
        }
    }

    /// Changes level and format from the next record on.
    pub fn set(&self, format: Format, level: LevelFilter) {
        self.format.store(format_code(format), Ordering::Relaxed);
        self.level.store(level as usize, Ordering::Relaxed);
    }

    /// Formats one record into `out` (with its trailing newline).
    pub fn format_record(&self, record: &Record<'_>, out: &mut Vec<u8>) {
        let ts = rfc3339(now_ms());
        match self.format() {
            Format::Json => {
                out.extend_from_slice(b"{\"ts\":\"");
                out.extend_from_slice(ts.as_bytes());
                out.extend_from_slice(b"\",\"level\":\"");
                out.extend_from_slice(record.level().as_str().as_bytes());
                out.extend_from_slice(b"\",\"target\":");
                write_str(out, record.target());
                out.extend_from_slice(b",\"msg\":");
                let msg = record.args().as_str().map(str::to_owned);
                match msg {
                    Some(m) => write_str(out, &m),
                    None => write_str(out, &record.args().to_string()),
                }
                let _ = record.key_values().visit(&mut JsonKv(out));
                out.extend_from_slice(b"}\n");
            }
            Format::Console => {
                let _ = write!(
                    out,
                    "{ts} {:<5} {}: {}",
                    record.level(),
                    record.target(),
                    record.args()
                );
                let _ = record.key_values().visit(&mut ConsoleKv(out));
                out.push(b'\n');
            }
        }
    }

    #[cfg(test)]
    fn in_memory(format: Format, level: LevelFilter) -> Logger {
        Logger {
            sink: Sink::Memory(Mutex::new(Vec::new())),
            ..Logger::new(format, level)
        }
    }
}

/// Installs a panic hook that writes one JSON line to stderr before the process aborts
/// (release builds are `panic = "abort"`, so no unwinding output follows):
/// `{"ts":…,"level":"ERROR","target":"panic","msg":"panic","error_type":"panic","panic":…,
/// "location":"file:line:column","thread":…}`. Always JSON, whatever `logging.format`: it is
/// the last line of a dying process and must be machine-readable. Written with one write(2)
/// straight to stderr, not through the logger, whose buffer lock the panicking thread may hold.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let mut out = Vec::with_capacity(256);
        panic_line(info, &mut out);
        let _ = std::io::stderr().lock().write_all(&out);
    }));
}

/// The JSON line of [`install_panic_hook`].
fn panic_line(info: &std::panic::PanicHookInfo<'_>, out: &mut Vec<u8>) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)");
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_default();
    let thread = std::thread::current();
    out.extend_from_slice(b"{\"ts\":\"");
    out.extend_from_slice(rfc3339(now_ms()).as_bytes());
    out.extend_from_slice(
        b"\",\"level\":\"ERROR\",\"target\":\"panic\",\"msg\":\"panic\",\"error_type\":\"panic\",\"panic\":",
    );
    write_str(out, message);
    out.extend_from_slice(b",\"location\":");
    write_str(out, &location);
    out.extend_from_slice(b",\"thread\":");
    write_str(out, thread.name().unwrap_or("unnamed"));
    out.extend_from_slice(b"}\n");
}

/// The process logger once [`Logger::install`] ran.
static INSTALLED: OnceLock<&'static Logger> = OnceLock::new();

/// Changes the installed logger's level and format (a configuration reload); a no-op when no
/// logger is installed.
pub fn reconfigure(format: Format, level: LevelFilter) {
    if let Some(logger) = INSTALLED.get() {
        logger.set(format, level);
        log::set_max_level(level);
    }
}

fn format_code(f: Format) -> u8 {
    match f {
        Format::Json => 0,
        Format::Console => 1,
    }
}

fn level_from(n: usize) -> LevelFilter {
    [
        LevelFilter::Off,
        LevelFilter::Error,
        LevelFilter::Warn,
        LevelFilter::Info,
        LevelFilter::Debug,
        LevelFilter::Trace,
    ]
    .get(n)
    .copied()
    .unwrap_or(LevelFilter::Trace)
}

struct JsonKv<'a>(&'a mut Vec<u8>);

impl<'kvs> VisitSource<'kvs> for JsonKv<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let out = &mut *self.0;
        out.push(b',');
        write_str(out, key.as_str());
        out.push(b':');
        if let Some(b) = value.to_bool() {
            out.extend_from_slice(if b { b"true" } else { b"false" });
        } else if let Some(n) = value.to_i64() {
            let _ = write!(out, "{n}");
        } else if let Some(n) = value.to_u64() {
            let _ = write!(out, "{n}");
        } else if let Some(f) = value.to_f64().filter(|f| f.is_finite()) {
            let _ = write!(out, "{f}");
        } else {
            write_str(out, &value.to_string());
        }
        Ok(())
    }
}

struct ConsoleKv<'a>(&'a mut Vec<u8>);

impl<'kvs> VisitSource<'kvs> for ConsoleKv<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let _ = write!(self.0, " {key}={value}");
        Ok(())
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let Ok(mut buf) = self.buf.lock() else { return };
        buf.clear();
        self.format_record(record, &mut buf);
        match &self.sink {
            // A failed stderr write has nowhere to be reported.
            Sink::Stderr => {
                let _ = std::io::stderr().lock().write_all(&buf);
            }
            #[cfg(test)]
            Sink::Memory(m) => {
                if let Ok(mut m) = m.lock() {
                    m.extend_from_slice(&buf);
                }
            }
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured(logger: &Logger) -> String {
        match &logger.sink {
            Sink::Memory(m) => String::from_utf8(m.lock().unwrap().clone()).unwrap(),
            Sink::Stderr => unreachable!(),
        }
    }

    #[test]
    fn json_lines_carry_context_fields() {
        let logger = Logger::in_memory(Format::Json, LevelFilter::Info);
        let kvs: [(&str, Value<'_>); 4] = [
            ("batch_id", Value::from("6f1c")),
            ("attempt", Value::from(2u32)),
            ("duration_ms", Value::from(12.5f64)),
            ("ok", Value::from(false)),
        ];
        let args = format_args!("upload \"failed\"");
        let record = Record::builder()
            .level(log::Level::Warn)
            .target("upload")
            .args(args)
            .key_values(&kvs)
            .build();
        logger.log(&record);
        let dbg = Record::builder()
            .level(log::Level::Debug)
            .args(format_args!("hidden"))
            .build();
        logger.log(&dbg);
        let out = captured(&logger);
        assert_eq!(out.lines().count(), 1, "{out}");
        let line = out.lines().next().unwrap();
        assert!(line.starts_with("{\"ts\":\""), "{line}");
        assert!(line.contains("\"level\":\"WARN\""), "{line}");
        assert!(line.contains("\"msg\":\"upload \\\"failed\\\"\""), "{line}");
        assert!(line.contains("\"batch_id\":\"6f1c\""), "{line}");
        assert!(line.contains("\"attempt\":2"), "{line}");
        assert!(line.contains("\"duration_ms\":12.5"), "{line}");
        assert!(line.contains("\"ok\":false"), "{line}");
        assert!(line.ends_with('}'), "{line}");
    }

    #[test]
    fn panic_line_is_one_json_object() {
        let line = std::sync::Arc::new(Mutex::new(Vec::new()));
        let captured = line.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Ok(mut out) = captured.lock() {
                panic_line(info, &mut out);
            }
        }));
        let r = std::thread::Builder::new()
            .name("bbm-test".into())
            .spawn(|| panic!("boom \"{}\"", 42))
            .unwrap()
            .join();
        std::panic::set_hook(previous);
        assert!(r.is_err());
        let out = String::from_utf8(line.lock().unwrap().clone()).unwrap();
        assert_eq!(out.matches('\n').count(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["panic"], "boom \"42\"");
        assert_eq!(v["error_type"], "panic");
        assert_eq!(v["level"], "ERROR");
        assert_eq!(v["thread"], "bbm-test");
        let loc = v["location"].as_str().unwrap();
        assert!(loc.starts_with("src/logging.rs:"), "{loc}");
    }

    #[test]
    fn console_lines_are_readable() {
        let logger = Logger::in_memory(Format::Console, LevelFilter::Debug);
        let kvs: [(&str, Value<'_>); 1] = [("collector", Value::from("cpu"))];
        let record = Record::builder()
            .level(log::Level::Info)
            .target("collect")
            .args(format_args!("collected"))
            .key_values(&kvs)
            .build();
        logger.log(&record);
        let out = captured(&logger);
        assert!(
            out.contains(" INFO  collect: collected collector=cpu\n"),
            "{out}"
        );
    }

    #[test]
    fn level_and_format_change_at_run_time() {
        let logger = Logger::in_memory(Format::Console, LevelFilter::Info);
        let line = |l: &Logger, level| {
            l.log(
                &Record::builder()
                    .level(level)
                    .target("t")
                    .args(format_args!("m"))
                    .build(),
            )
        };
        line(&logger, log::Level::Debug);
        assert!(captured(&logger).is_empty());
        logger.set(Format::Json, LevelFilter::Debug);
        line(&logger, log::Level::Debug);
        let out = captured(&logger);
        assert!(
            out.starts_with("{\"ts\":") && out.contains("\"DEBUG\""),
            "{out}"
        );
    }
}
