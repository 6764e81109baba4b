//! Why a collector could not start ([`OpenError`], [`SetupError`]) or failed a collection
//! ([`CollectError`]). Errors carry `Arc<Path>` so that a collection that fails allocates nothing.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use belabox_proc::ParseError;

use super::SourceError;

#[derive(Debug, Clone)]
pub enum CollectError {
    Source(Arc<SourceError>),
    Parse { path: Arc<Path>, error: ParseError },
    Missing { path: Arc<Path>, what: &'static str },
    AllFailed { what: &'static str },
}

impl From<SourceError> for CollectError {
    fn from(e: SourceError) -> Self {
        CollectError::Source(Arc::new(e))
    }
}

impl fmt::Display for CollectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CollectError::Source(e) => e.fmt(f),
            CollectError::Parse { path, error } => write!(f, "{}: {error}", path.display()),
            CollectError::Missing { path, what } => write!(f, "{}: no {what}", path.display()),
            CollectError::AllFailed { what } => write!(f, "every one of the {what} failed"),
        }
    }
}

impl std::error::Error for CollectError {}

impl CollectError {
    /// A short machine-readable class for logs and health.
    pub fn kind(&self) -> &'static str {
        match self {
            CollectError::Source(e) => match **e {
                SourceError::Open { .. } => "open",
                SourceError::Read { .. } => "read",
                SourceError::TooLarge { .. } => "too_large",
            },
            CollectError::Parse { .. } => "parse",
            CollectError::Missing { .. } => "missing",
            CollectError::AllFailed { .. } => "all_failed",
        }
    }
}

impl CollectError {
    /// The file did not fit the read buffer (the caller may grow it and collect again).
    pub(super) fn is_too_large(&self) -> bool {
        matches!(self, CollectError::Source(e) if matches!(**e, SourceError::TooLarge { .. }))
    }
}

/// Why one collector could not be built.
#[derive(Debug)]
pub enum OpenError {
    /// A /proc file that must exist could not be opened (wrong procfs root).
    Source(SourceError),
    /// What the collector reads is absent on this board (no devfreq GPU, no mountinfo), or this
    /// process may not read it (debugfs without root): reported as `unavailable: <why>` in
    /// /health and `once`, not a failure — unless `[collect] required` names the collector.
    Unavailable(String),
    /// An include/exclude pattern did not compile (the config loader validates them first).
    Filter(regex_lite::Error),
    /// `paths.procfs` or `paths.sysfs` (`key`) is not a directory: a wrong root, not a board
    /// without some source, so no collector is opened.
    NoRoot { key: &'static str, path: PathBuf },
}

impl From<SourceError> for OpenError {
    /// A file that does not exist, or that this process may not read, makes the collector
    /// unavailable (its hardware or kernel driver is absent, or it needs root); any other open
    /// error is a failure.
    fn from(e: SourceError) -> Self {
        match &e {
            SourceError::Open { path, errno } if *errno == rustix::io::Errno::NOENT => {
                OpenError::Unavailable(format!("no {}", path.display()))
            }
            SourceError::Open { path, errno }
                if *errno == rustix::io::Errno::ACCESS || *errno == rustix::io::Errno::PERM =>
            {
                OpenError::Unavailable(format!(
                    "needs read access to {} (root, or the drop-in of docs/install.md, Root-only sources)",
                    path.display()
                ))
            }
            _ => OpenError::Source(e),
        }
    }
}

impl From<regex_lite::Error> for OpenError {
    fn from(e: regex_lite::Error) -> Self {
        OpenError::Filter(e)
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Source(e) => e.fmt(f),
            OpenError::Filter(e) => e.fmt(f),
            OpenError::Unavailable(why) => write!(f, "unavailable: {why}"),
            OpenError::NoRoot { key, path } => {
                write!(f, "{key} {} is not a directory", path.display())
            }
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Source(e) => Some(e),
            OpenError::Filter(e) => Some(e),
            OpenError::Unavailable(_) | OpenError::NoRoot { .. } => None,
        }
    }
}

/// A collector that could not start (bad procfs path, invalid filter).
#[derive(Debug)]
pub struct SetupError {
    /// [`CollectorKind::name`] of the collector.
    pub collector: &'static str,
    pub error: OpenError,
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "collector {}: {}", self.collector, self.error)
    }
}

impl std::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}
