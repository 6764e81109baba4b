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
    redb::CursorError,
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

/// What went wrong with the store's file, shared by every operation's error (which adds the
/// path). Display: the cause alone, without the path.
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure {
    /// A write on a store opened with
    /// [`Store::open_read_only`](crate::Store::open_read_only).
    ReadOnly,
    /// Bytes on disk that do not decode (or a damaged file refused at open); what and where.
    Corrupt(String),
    /// Any other redb failure.
    Storage(redb::Error),
    /// The file system, outside redb: the store file, its directory, its lock or journal.
    Io(std::io::Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::ReadOnly => f.write_str("store opened read-only"),
            Failure::Corrupt(detail) => write!(f, "corrupt store: {detail}"),
            Failure::Storage(source) => source.fmt(f),
            Failure::Io(source) => source.fmt(f),
        }
    }
}

impl Failure {
    /// The redb or I/O error underneath, as each operation's `Error::source`.
    fn cause(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Storage(source) => Some(source),
            Failure::Io(source) => Some(source),
            Failure::ReadOnly | Failure::Corrupt(_) => None,
        }
    }

    /// The disk (or quota) is full (redb's failures only, as the write methods report it).
    fn storage_no_space(&self) -> bool {
        matches!(self, Failure::Storage(source) if classify_redb(source).0)
    }

    /// redb refuses further transactions on this handle after an I/O error.
    fn storage_io(&self) -> bool {
        matches!(self, Failure::Storage(source) if classify_redb(source).1)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause()
    }
}

/// Failure of [`Store::open`](crate::Store::open).
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// Another process (or another `Store` in this one) holds the lock.
    Locked { pid: Option<u32>, path: PathBuf },
    /// The file was written by a newer (or unknown) schema. The file is left untouched.
    UnknownSchemaVersion {
        found: u64,
        supported: u32,
        path: PathBuf,
    },
    /// Creating or reading the store file, its directory or its lock file
    /// ([`Failure::Io`]); not a store, or damaged ([`Failure::Corrupt`]: the file is left
    /// untouched); any other redb failure ([`Failure::Storage`]).
    Failed { path: PathBuf, failure: Failure },
}

/// Failure of [`Store::check`](crate::Store::check): the file could not be checked at all.
/// A file that was checked and found damaged is `Ok` with
/// [`CheckReport::problems`](crate::CheckReport::problems) set.
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckError {
    /// The agent (or another `Store`) has the file open.
    Locked { pid: Option<u32>, path: PathBuf },
    UnknownSchemaVersion {
        found: u64,
        supported: u32,
        path: PathBuf,
    },
    /// [`Failure::Io`] or [`Failure::Storage`].
    Failed { path: PathBuf, failure: Failure },
}

/// Failure of [`Store::insert`](crate::Store::insert) and
/// [`Store::record_session`](crate::Store::record_session). Nothing of the batch was written.
#[derive(Debug)]
#[non_exhaustive]
pub enum InsertError {
    /// Sample `index` of the batch is malformed.
    InvalidSample {
        index: usize,
        reason: InvalidSample,
    },
    Failed {
        path: PathBuf,
        failure: Failure,
    },
}

/// Failure of a read-only query.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    UnknownSeries { id: u32 },
    Failed { path: PathBuf, failure: Failure },
}

/// Failure of [`Store::mark_uploaded`](crate::Store::mark_uploaded) or
/// [`Store::quarantine`](crate::Store::quarantine). Nothing was changed.
#[derive(Debug)]
#[non_exhaustive]
pub enum MarkError {
    Failed { path: PathBuf, failure: Failure },
}

/// Failure of [`Store::requeue_quarantined`](crate::Store::requeue_quarantined). Nothing was
/// changed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RequeueError {
    Failed { path: PathBuf, failure: Failure },
}

/// Failure of retention, the size cap, compaction or [`Store::sync`](crate::Store::sync).
#[derive(Debug)]
#[non_exhaustive]
pub enum MaintenanceError {
    Failed { path: PathBuf, failure: Failure },
}

/// `Fault::ReadOnly` where the operation has no read-only case (it cannot happen there): an
/// I/O error, as before `Failure` existed.
fn read_only_io() -> Failure {
    Failure::Storage(redb::Error::Io(std::io::Error::new(
        std::io::ErrorKind::ReadOnlyFilesystem,
        "store opened read-only",
    )))
}

impl Fault {
    /// The shared failure; a stored sample that does not decode, or that names an unknown
    /// series, is corruption.
    fn into_failure(self) -> Failure {
        match self {
            Fault::Db(source) => Failure::Storage(source),
            Fault::Corrupt(detail) => Failure::Corrupt(detail),
            Fault::UnknownSeries(id) => Failure::Corrupt(format!("unknown series {id}")),
            Fault::Invalid { index, reason } => {
                Failure::Corrupt(format!("sample {index}: {reason}"))
            }
            Fault::ReadOnly => Failure::ReadOnly,
        }
    }

    pub(crate) fn into_open(self, path: &std::path::Path) -> OpenError {
        let failure = match self {
            Fault::Invalid { index, reason } => {
                Failure::Corrupt(format!("stored sample {index}: {reason}"))
            }
            Fault::UnknownSeries(id) => {
                Failure::Corrupt(format!("sample refers to unknown series {id}"))
            }
            Fault::ReadOnly => read_only_io(),
            other => other.into_failure(),
        };
        OpenError::Failed {
            path: path.to_owned(),
            failure,
        }
    }

    pub(crate) fn into_insert(self, path: &std::path::Path) -> InsertError {
        match self {
            Fault::Invalid { index, reason } => InsertError::InvalidSample { index, reason },
            other => InsertError::Failed {
                path: path.to_owned(),
                failure: other.into_failure(),
            },
        }
    }

    pub(crate) fn into_read(self, path: &std::path::Path) -> ReadError {
        let failure = match self {
            Fault::UnknownSeries(id) => return ReadError::UnknownSeries { id },
            Fault::ReadOnly => read_only_io(),
            other => other.into_failure(),
        };
        ReadError::Failed {
            path: path.to_owned(),
            failure,
        }
    }

    pub(crate) fn into_mark(self, path: &std::path::Path) -> MarkError {
        MarkError::Failed {
            path: path.to_owned(),
            failure: self.into_failure(),
        }
    }

    pub(crate) fn into_requeue(self, path: &std::path::Path) -> RequeueError {
        RequeueError::Failed {
            path: path.to_owned(),
            failure: self.into_failure(),
        }
    }

    pub(crate) fn into_maintenance(self, path: &std::path::Path) -> MaintenanceError {
        MaintenanceError::Failed {
            path: path.to_owned(),
            failure: self.into_failure(),
        }
    }
}

impl OpenError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> OpenError {
        OpenError::Failed {
            path: path.into(),
            failure: Failure::Io(source),
        }
    }

    /// The file is not a store or is damaged (it was left untouched): its detail.
    pub fn corrupt_detail(&self) -> Option<&str> {
        match self {
            OpenError::Failed {
                failure: Failure::Corrupt(detail),
                ..
            } => Some(detail),
            _ => None,
        }
    }
}

impl CheckError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> CheckError {
        CheckError::Failed {
            path: path.into(),
            failure: Failure::Io(source),
        }
    }
}

impl MaintenanceError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> MaintenanceError {
        MaintenanceError::Failed {
            path: path.into(),
            failure: Failure::Io(source),
        }
    }
}

/// `<path>: <failure>`, the wording every operation's `Failed` shares.
fn failed(f: &mut fmt::Formatter<'_>, path: &std::path::Path, failure: &Failure) -> fmt::Result {
    write!(f, "{}: {failure}", path.display())
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
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
            OpenError::Failed {
                path,
                failure: Failure::Corrupt(detail),
            } => write!(
                f,
                "{}: not a readable store ({detail}); the file was left untouched",
                path.display()
            ),
            OpenError::Failed { path, failure } => failed(f, path, failure),
        }
    }
}

impl fmt::Display for InsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InsertError::InvalidSample { index, reason } => {
                write!(f, "sample {index} of the batch is invalid: {reason}")
            }
            InsertError::Failed { path, failure } => failed(f, path, failure),
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::UnknownSeries { id } => write!(f, "no series with id {id}"),
            ReadError::Failed { path, failure } => failed(f, path, failure),
        }
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
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
            CheckError::Failed { path, failure } => failed(f, path, failure),
        }
    }
}

/// Display and `Error` for the operations whose only variant is `Failed`, and for the `Failed`
/// variant of the others.
macro_rules! failed_only {
    ($($t:ident),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $t::Failed { path, failure } => failed(f, path, failure),
                }
            }
        }
    )*};
}
failed_only!(MarkError, RequeueError, MaintenanceError);

macro_rules! error_source {
    ($($t:ident),*) => {$(
        impl std::error::Error for $t {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    $t::Failed { failure, .. } => failure.cause(),
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        }
    )*};
}
error_source!(
    OpenError,
    CheckError,
    InsertError,
    ReadError,
    MarkError,
    RequeueError,
    MaintenanceError
);

impl std::error::Error for InvalidSample {}

/// ENOSPC or EDQUOT.
pub(crate) fn no_space(e: &std::io::Error) -> bool {
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
            OpenError::Failed {
                failure: Failure::Io(_),
                ..
            } => true,
            OpenError::Failed { failure, .. } => failure.storage_io(),
            _ => false,
        }
    }

    /// The disk (or quota) is full.
    pub fn is_no_space(&self) -> bool {
        match self {
            OpenError::Failed {
                failure: Failure::Io(source),
                ..
            } => no_space(source),
            OpenError::Failed { failure, .. } => failure.storage_no_space(),
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
                matches!(self, $t::Failed { failure, .. } if failure.storage_no_space())
            }
            /// An I/O error happened in this write or an earlier one: redb refuses every
            /// further transaction on this handle ("Previous I/O error occurred") until the
            /// store is reopened ([`Store::reopen`](crate::Store::reopen)). Committed data is
            /// not affected.
            pub fn is_io_poisoned(&self) -> bool {
                matches!(self, $t::Failed { failure, .. } if failure.storage_io())
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
