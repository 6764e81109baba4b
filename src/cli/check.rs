//! The checks that need the file system, run by `check-config`, `run` (before anything is opened
//! or written) and a reload (before anything is applied). [`Config::check`] finds every error
//! `run` would otherwise hit only after opening the store, and names its key, so that both
//! commands exit 2 (which the systemd unit does not restart on).
//!
//! Nothing here writes: the storage directory is checked for being creatable, not created.

use std::path::Path;

use crate::config::{Config, ConfigError};
use crate::upload::UploadError;

impl Config {
    /// The file-system checks: `remote.token_file` (exists, mode `& 0o077 == 0`, a non-empty
    /// token valid as a header value), `remote.ca_file` (readable PEM, at least one
    /// certificate), `storage.path` (its directory exists or can be created,
    /// and is writable), `paths.procfs` (every collector opens its files).
    ///
    /// # Errors
    /// The first failing check, as `Invalid` naming the key.
    pub fn check(&self) -> Result<(), ConfigError> {
        if let Some(path) = self.remote.as_ref().and_then(|r| r.token_file.as_deref()) {
            check_token_file(path).map_err(|message| invalid("remote.token_file", message))?;
        }
        if let Some(path) = self.remote.as_ref().and_then(|r| r.ca_file.as_deref()) {
            crate::net::check_ca_file(path).map_err(|m| invalid("remote.ca_file", m))?;
        }
        if let Some(path) = self
            .ingest
            .token_file
            .as_deref()
            .filter(|_| self.ingest.enabled)
        {
            check_token_file(path).map_err(|message| invalid("ingest.token_file", message))?;
        }
        check_storage_path(&self.storage.path).map_err(|m| invalid("storage.path", m))?;
        crate::collect::Collectors::open(self)
            .map_err(|e| invalid("paths.procfs", e.to_string()))?;
        Ok(())
    }
}

impl Config {
    /// Things that are valid but probably wrong, one line each (`check-config` prints them on
    /// stderr as `warning: …` and still exits 0; `run` logs them at start-up). A warning and
    /// not an error: a proxy (vmauth, nginx) may map any path to any backend.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(r) = &self.remote {
            out.extend(crate::config::url_format_warning(&r.url, r.format));
        }
        out
    }
}

fn invalid(key: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message,
    }
}

/// Reads the token as the uploader will; the message never holds the token.
fn check_token_file(path: &Path) -> Result<(), String> {
    match crate::upload::read_token(path) {
        Ok(_) => Ok(()),
        Err(UploadError::TokenRead { source, .. }) => {
            Err(format!("cannot read {}: {source}", path.display()))
        }
        Err(UploadError::TokenInvalid { .. }) => Err(format!(
            "{}: the token is empty or contains characters not allowed in an HTTP header",
            path.display()
        )),
        Err(UploadError::TokenPermissions { mode, .. }) => Err(format!(
            "{} is readable by group or others (mode {:04o}); run: chmod 600 {}",
            path.display(),
            mode & 0o7777,
            path.display()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The store file (if it exists) must be a readable, writable file; its directory (the lock file
/// lives there too) must be writable, or, when missing, creatable: its nearest existing ancestor
/// is a writable directory.
fn check_storage_path(path: &Path) -> Result<(), String> {
    use rustix::fs::{Access, access};
    let access_msg =
        |p: &Path, e: rustix::io::Errno| format!("{}: {}", p.display(), std::io::Error::from(e));
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => return Err(format!("{} is a directory", path.display())),
        Ok(_) => {
            access(path, Access::READ_OK | Access::WRITE_OK).map_err(|e| access_msg(path, e))?
        }
        Err(_) => {}
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut existing = dir;
    loop {
        match std::fs::metadata(existing) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => return Err(format!("{} is not a directory", existing.display())),
            Err(_) => match existing.parent() {
                Some(p) if !p.as_os_str().is_empty() => existing = p,
                _ => {
                    existing = Path::new(".");
                    break;
                }
            },
        }
    }
    pseudo_fs(existing)?;
    access(existing, Access::WRITE_OK | Access::EXEC_OK).map_err(|e| {
        if existing == dir {
            format!("directory {}", access_msg(existing, e))
        } else {
            format!(
                "cannot create directory {}: {}",
                dir.display(),
                access_msg(existing, e)
            )
        }
    })
}

/// Kernel interfaces that look writable (to root) but cannot hold a store: `run` would fail on
/// the lock file. `statfs` magic numbers of `linux/magic.h`.
const PSEUDO_FILE_SYSTEMS: &[(i128, &str)] = &[
    (0x9fa0, "procfs"),
    (0x6265_6572, "sysfs"),
    (0x6367_7270, "cgroup2"),
    (0x0027_e0eb, "cgroup"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0x7363_6673, "securityfs"),
    (0x6265_6570, "configfs"),
    (0xcafe_4a11, "bpffs"),
    (0x1cd1, "devpts"),
];

/// Refuses a directory `dir` on one of [`PSEUDO_FILE_SYSTEMS`]; anything `statfs` cannot read
/// is left to the access check.
fn pseudo_fs(dir: &Path) -> Result<(), String> {
    let Ok(st) = rustix::fs::statfs(dir) else {
        return Ok(());
    };
    // `f_type`'s integer type differs between targets; every one fits an i128.
    #[allow(clippy::useless_conversion)]
    let magic = i128::from(st.f_type);
    match PSEUDO_FILE_SYSTEMS.iter().find(|(m, _)| *m == magic) {
        Some((_, name)) => Err(format!(
            "{} is on {name}, a kernel interface that cannot hold files; choose a directory on \
             a disk, e.g. /var/lib/belabox-metrics/metrics.redb",
            dir.display()
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn storage_on_procfs_or_sysfs_is_refused() {
        for path in ["/proc/x", "/proc/sys/metrics.redb", "/sys/x/y/metrics.redb"] {
            let e = check_storage_path(Path::new(path)).unwrap_err();
            assert!(e.contains("procfs") || e.contains("sysfs"), "{path}: {e}");
            assert!(e.contains("kernel interface"), "{e}");
        }
        let c = Config {
            storage: crate::config::StorageConfig {
                path: "/proc/x".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        match c.check() {
            Err(ConfigError::Invalid { key, message }) => {
                assert_eq!(key, "storage.path");
                assert!(message.starts_with("/proc is on procfs"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn storage_directory_must_be_creatable() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_storage_path(&dir.path().join("a/b/metrics.redb")).is_ok());
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let e = check_storage_path(&file.join("metrics.redb")).unwrap_err();
        assert!(e.contains("not a directory"), "{e}");
        let e = check_storage_path(dir.path()).unwrap_err();
        assert!(e.contains("is a directory"), "{e}");
    }

    #[test]
    fn token_file_errors_name_the_path_never_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let e = check_token_file(&path).unwrap_err();
        assert!(e.starts_with("cannot read ") && e.contains("token"), "{e}");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = check_token_file(&path).unwrap_err();
        assert!(e.contains("mode 0640") && !e.contains("s3cret"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(check_token_file(&path).is_ok());
        std::fs::write(&path, "\n").unwrap();
        let e = check_token_file(&path).unwrap_err();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn ca_file_must_hold_a_certificate_and_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        let config = |p: &Path| Config {
            remote: Some(crate::config::RemoteConfig {
                ca_file: Some(p.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let key_of = |e: ConfigError| match e {
            ConfigError::Invalid { key, message } => (key, message),
            other => panic!("{other:?}"),
        };
        let (key, m) = key_of(config(&path).check().unwrap_err());
        assert_eq!(key, "remote.ca_file");
        assert!(m.starts_with("cannot read ") && m.contains("ca.pem"), "{m}");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let (key, m) = key_of(config(&path).check().unwrap_err());
        assert_eq!(key, "remote.ca_file");
        assert!(m.contains("no certificate"), "{m}");
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".to_owned()]).unwrap();
        std::fs::write(&path, ca.cert.pem()).unwrap();
        assert_eq!(crate::net::check_ca_file(&path), Ok(1));
    }
}
