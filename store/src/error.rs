//! One small error enum per operation (redb `src/error.rs` style). Every variant that comes
//! from the file names its path.

use crate::codec::InvalidSample;
use std::fmt;
use std::path::PathBuf;

/// Internal failure inside a transaction, before the operation adds its path.
#[derive(Debug)]
pub(crate) enum Fault {
    Db(redb::Error),
    /// Bytes on disk that do not decode; the string says what and where.
    Corrupt(String),
    Invalid {
        index: usize,
        reason: InvalidSample,
    },
    UnknownSeries(u32),
    /// A write on a store opened with [`Store::open_read_only`](crate::Store::open_read_only).
    ReadOnly,
}

macro_rules! fault_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Fault {
            fn from(e: $t) -> Self {
                Fault::Db(e.into())
            }
        }
    )*};
}
fault_from!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError,
    redb::SetDurabilityError,
    redb::CompactionError
);

pub(crate) fn corrupt(what: impl fmt::Display) -> Fault {
    Fault::Corrupt(what.to_string())
}

/// Failure of [`Store::open`](crate::Store::open).
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// Creating or reading the store file, its directory or its lock file.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another process (or another `Store` in this one) holds the lock.
    Locked { pid: Option<u32>, path: PathBuf },
    /// The file was written by a newer (or unknown) schema. The file is left untouched.
    UnknownSchemaVersion {
        found: u64,
        supported: u32,
        path: PathBuf,
    },
    /// Not a store, or damaged. The file is left untouched.
    Corrupt { path: PathBuf, detail: String },
    /// Any other redb failure.
    Storage { path: PathBuf, source: redb::Error },
}

/// Failure of [`Store::check`](crate::Store::check): the file could not be checked at all.
/// A file that was checked and found damaged is `Ok` with
/// [`CheckReport::problems`](crate::CheckReport::problems) set.
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckError {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The agent (or another `Store`) has the file open.
    Locked {
        pid: Option<u32>,
        path: PathBuf,
    },
    UnknownSchemaVersion {
        found: u64,
        supported: u32,
        path: PathBuf,
    },
    Storage {
        path: PathBuf,
        source: redb::Error,
    },
}

/// Failure of [`Store::insert`](crate::Store::insert) and
/// [`Store::record_session`](crate::Store::record_session). Nothing of the batch was written.
#[derive(Debug)]
#[non_exhaustive]
pub enum InsertError {
    /// The store was opened with [`Store::open_read_only`](crate::Store::open_read_only).
    ReadOnly {
        path: PathBuf,
    },
    /// Sample `index` of the batch is malformed.
    InvalidSample {
        index: usize,
        reason: InvalidSample,
    },
    Corrupt {
        path: PathBuf,
        detail: String,
    },
    Storage {
        path: PathBuf,
        source: redb::Error,
    },
}

/// Failure of a read-only query.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    UnknownSeries { id: u32 },
    Corrupt { path: PathBuf, detail: String },
    Storage { path: PathBuf, source: redb::Error },
}

/// Failure of [`Store::mark_uploaded`](crate::Store::mark_uploaded) or
/// [`Store::quarantine`](crate::Store::quarantine). Nothing was changed.
#[derive(Debug)]
#[non_exhaustive]
pub enum MarkError {
    /// The store was opened with [`Store::open_read_only`](crate::Store::open_read_only).
    ReadOnly {
        path: PathBuf,
    },
    Corrupt {
        path: PathBuf,
        detail: String,
    },
    Storage {
        path: PathBuf,
        source: redb::Error,
    },
}

/// Failure of [`Store::requeue_quarantined`](crate::Store::requeue_quarantined). Nothing was
/// changed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RequeueError {
    ReadOnly { path: PathBuf },
    Corrupt { path: PathBuf, detail: String },
    Storage { path: PathBuf, source: redb::Error },
}

impl Fault {
    pub(crate) fn into_requeue(self, path: &std::path::Path) -> RequeueError {
        match self.into_mark(path) {
            MarkError::ReadOnly { path } => RequeueError::ReadOnly { path },
            MarkError::Corrupt { path, detail } => RequeueError::Corrupt { path, detail },
            MarkError::Storage { path, source } => RequeueError::Storage { path, source },
        }
    }
}

impl fmt::Display for RequeueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequeueError::ReadOnly { path } => {
                write!(f, "{}: store opened read-only", path.display())
            }
            RequeueError::Corrupt { path, detail } => {
                write!(f, "{}: corrupt store: {detail}", path.display())
            }
            RequeueError::Storage { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for RequeueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RequeueError::Storage { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Failure of retention, the size cap, compaction or [`Store::sync`](crate::Store::sync).
#[derive(Debug)]
#[non_exhaustive]
pub enum MaintenanceError {
    /// The store was opened with [`Store::open_read_only`](crate::Store::open_read_only).
    ReadOnly {
        path: PathBuf,
    },
    Corrupt {
        path: PathBuf,
        detail: String,
    },
    Storage {
        path: PathBuf,
        source: redb::Error,
    },
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Fault {
    pub(crate) fn into_open(self, path: &std::path::Path) -> OpenError {
        let path = path.to_owned();
        match self {
            Fault::Db(source) => OpenError::Storage { path, source },
            Fault::Corrupt(detail) => OpenError::Corrupt { path, detail },
            Fault::Invalid { index, reason } => OpenError::Corrupt {
                path,
                detail: format!("stored sample {index}: {reason}"),
            },
            Fault::UnknownSeries(id) => OpenError::Corrupt {
                path,
                detail: format!("sample refers to unknown series {id}"),
            },
            Fault::ReadOnly => OpenError::Storage {
                path,
                source: redb::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::ReadOnlyFilesystem,
                    "store opened read-only",
                )),
            },
        }
    }

    pub(crate) fn into_insert(self, path: &std::path::Path) -> InsertError {
        let path = path.to_owned();
        match self {
            Fault::Db(source) => InsertError::Storage { path, source },
            Fault::Corrupt(detail) => InsertError::Corrupt { path, detail },
            Fault::Invalid { index, reason } => InsertError::InvalidSample { index, reason },
            Fault::ReadOnly => InsertError::ReadOnly { path },
            Fault::UnknownSeries(id) => InsertError::Corrupt {
                path,
                detail: format!("unknown series {id}"),
            },
        }
    }

    pub(crate) fn into_read(self, path: &std::path::Path) -> ReadError {
        let path = path.to_owned();
        match self {
            Fault::Db(source) => ReadError::Storage { path, source },
            Fault::Corrupt(detail) => ReadError::Corrupt { path, detail },
            Fault::UnknownSeries(id) => ReadError::UnknownSeries { id },
            Fault::ReadOnly => ReadError::Storage {
                path,
                source: redb::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::ReadOnlyFilesystem,
                    "store opened read-only",
                )),
            },
            Fault::Invalid { index, reason } => ReadError::Corrupt {
                path,
                detail: format!("sample {index}: {reason}"),
            },
        }
    }

    pub(crate) fn into_mark(self, path: &std::path::Path) -> MarkError {
        let path = path.to_owned();
        match self {
            Fault::Db(source) => MarkError::Storage { path, source },
            Fault::Corrupt(detail) => MarkError::Corrupt { path, detail },
            Fault::UnknownSeries(id) => MarkError::Corrupt {
                path,
                detail: format!("unknown series {id}"),
            },
            Fault::Invalid { index, reason } => MarkError::Corrupt {
                path,
                detail: format!("sample {index}: {reason}"),
            },
            Fault::ReadOnly => MarkError::ReadOnly { path },
        }
    }

    pub(crate) fn into_maintenance(self, path: &std::path::Path) -> MaintenanceError {
        let path = path.to_owned();
        match self {
            Fault::Db(source) => MaintenanceError::Storage { path, source },
            Fault::Corrupt(detail) => MaintenanceError::Corrupt { path, detail },
            Fault::UnknownSeries(id) => MaintenanceError::Corrupt {
                path,
                detail: format!("unknown series {id}"),
            },
            Fault::Invalid { index, reason } => MaintenanceError::Corrupt {
                path,
                detail: format!("sample {index}: {reason}"),
            },
            Fault::ReadOnly => MaintenanceError::ReadOnly { path },
        }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            OpenError::Locked {
                pid: Some(pid),
                path,
            } => write!(
                f,
                "{}: store is in use by another belabox-metrics process (pid {pid})",
                path.display()
            ),
            OpenError::Locked { pid: None, path } => write!(
                f,
                "{}: store is in use by another belabox-metrics process (pid unknown)",
                path.display()
            ),
            OpenError::UnknownSchemaVersion {
                found,
                supported,
                path,
            } => write!(
                f,
                "{}: schema version {found} is not supported (this build reads up to {supported}); \
                 the file was left untouched",
                path.display()
            ),
            OpenError::Corrupt { path, detail } => write!(
                f,
                "{}: not a readable store ({detail}); the file was left untouched",
                path.display()
            ),
            OpenError::Storage { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl fmt::Display for InsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InsertError::ReadOnly { path } => {
                write!(f, "{}: store opened read-only", path.display())
            }
            InsertError::InvalidSample { index, reason } => {
                write!(f, "sample {index} of the batch is invalid: {reason}")
            }
            InsertError::Corrupt { path, detail } => {
                write!(f, "{}: corrupt store: {detail}", path.display())
            }
            InsertError::Storage { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::UnknownSeries { id } => write!(f, "no series with id {id}"),
            ReadError::Corrupt { path, detail } => {
                write!(f, "{}: corrupt store: {detail}", path.display())
            }
            ReadError::Storage { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl fmt::Display for MarkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MarkError::ReadOnly { path } => {
                write!(f, "{}: store opened read-only", path.display())
            }
            MarkError::Corrupt { path, detail } => {
                write!(f, "{}: corrupt store: {detail}", path.display())
            }
            MarkError::Storage { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl fmt::Display for MaintenanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaintenanceError::ReadOnly { path } => {
                write!(f, "{}: store opened read-only", path.display())
            }
            MaintenanceError::Corrupt { path, detail } => {
                write!(f, "{}: corrupt store: {detail}", path.display())
            }
            MaintenanceError::Storage { path, source } => {
                write!(f, "{}: {source}", path.display())
            }
            MaintenanceError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            CheckError::Locked { pid, path } => match pid {
                Some(pid) => write!(f, "{}: store is in use (pid {pid})", path.display()),
                None => write!(f, "{}: store is in use", path.display()),
            },
            CheckError::UnknownSchemaVersion {
                found,
                supported,
                path,
            } => write!(
                f,
                "{}: schema version {found} is not supported (this build reads up to {supported})",
                path.display()
            ),
            CheckError::Storage { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for CheckError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckError::Io { source, .. } => Some(source),
            CheckError::Storage { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Io { source, .. } => Some(source),
            OpenError::Storage { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl std::error::Error for InsertError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InsertError::Storage { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Storage { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl std::error::Error for MarkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MarkError::Storage { source, .. } => Some(source),
            MarkError::Corrupt { .. } | MarkError::ReadOnly { .. } => None,
        }
    }
}

impl std::error::Error for MaintenanceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MaintenanceError::Storage { source, .. } => Some(source),
            MaintenanceError::Io { source, .. } => Some(source),
            MaintenanceError::Corrupt { .. } | MaintenanceError::ReadOnly { .. } => None,
        }
    }
}

impl std::error::Error for InvalidSample {}

/// ENOSPC or EDQUOT.
fn no_space(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error())
        || e.raw_os_error() == Some(rustix::io::Errno::DQUOT.raw_os_error())
}

impl OpenError {
    /// The file system failed the open (reading, growing or syncing the store, its journal or
    /// its directory): it may open once that passes (a full disk frees up). Not a lock held
    /// elsewhere, an unknown schema or a damaged file.
    pub fn is_io(&self) -> bool {
        match self {
            OpenError::Io { .. } => true,
            OpenError::Storage { source, .. } => classify_redb(source).1,
            _ => false,
        }
    }

    /// The disk (or quota) is full.
    pub fn is_no_space(&self) -> bool {
        match self {
            OpenError::Io { source, .. } => no_space(source),
            OpenError::Storage { source, .. } => classify_redb(source).0,
            _ => false,
        }
    }
}

/// How a write failed, for the caller's recovery: see [`Store::reopen`](crate::Store::reopen).
fn classify_redb(e: &redb::Error) -> (bool, bool) {
    match e {
        redb::Error::Io(io) => (no_space(io), true),
        redb::Error::PreviousIo => (false, true),
        _ => (false, false),
    }
}

macro_rules! classify {
    ($($t:ident),*) => {$(
        impl $t {
            /// The disk (or quota) is full. The write was not applied; the handle is now
            /// poisoned too ([`Self::is_io_poisoned`]).
            pub fn is_no_space(&self) -> bool {
                matches!(self, $t::Storage { source, .. } if classify_redb(source).0)
            }
            /// An I/O error happened in this write or an earlier one: redb refuses every
            /// further transaction on this handle ("Previous I/O error occurred") until the
            /// store is reopened ([`Store::reopen`](crate::Store::reopen)). Committed data is
            /// not affected.
            pub fn is_io_poisoned(&self) -> bool {
                matches!(self, $t::Storage { source, .. } if classify_redb(source).1)
            }
        }
    )*};
}
classify!(
    InsertError,
    MarkError,
    MaintenanceError,
    ReadError,
    RequeueError
);
