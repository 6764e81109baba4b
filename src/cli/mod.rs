//! Command-line parsing (hand-rolled: the agent has few flags and no room for a parser crate).

mod check;
mod load;

pub use load::{INSTALLED_CONFIG, INSTALLED_CONFIG_ENV, default_to_installed, load_config};

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub const USAGE: &str = "\
belabox-metrics — system metrics agent for low-RAM boards

Usage:
  belabox-metrics run          [--config FILE] [--procfs DIR] [--sysfs DIR]
  belabox-metrics once         [--config FILE] [--procfs DIR] [--sysfs DIR] [--delay MS]
  belabox-metrics check-config [--config FILE]
  belabox-metrics status       [--config FILE] [--address HOST:PORT]
  belabox-metrics store stats  [--config FILE]
  belabox-metrics store export [--config FILE] [--since WHEN] [--session UUID]
  belabox-metrics store requeue [--config FILE] [--reason R] [--since WHEN]
  belabox-metrics store check  [--config FILE] [--file PATH]
  belabox-metrics --version
  belabox-metrics <command> --help

Commands:
  run           collect → store (→ upload when [remote] is configured) until SIGTERM/SIGINT
  once          read twice --delay ms apart (default 1000) and print the VictoriaMetrics JSONL
                lines of the second read to stdout
  check-config  validate the configuration and print the effective values
  status        ask the running agent's /health and print a readable summary
  store stats   file size, pending, dropped, quarantined, last checkpoint, sessions
  store export  every stored sample as JSONL (numeric and text), oldest first; --session
                keeps one agent run's or application session's
  store requeue put quarantined samples back in the upload queue
  store check   verify the store (or PATH, e.g. a moved-aside copy) without writing to it;
                exit 0 healthy, 1 damaged or unreadable

Options:
  --config FILE  TOML configuration (default: built-in defaults; status and check-config
                 read /etc/belabox-metrics/config.toml when it exists)
  --procfs DIR   procfs root (default /proc, or paths.procfs)
  --sysfs DIR    sysfs root (default /sys, or paths.sysfs)
";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Common {
    pub config: Option<PathBuf>,
    pub procfs: Option<PathBuf>,
    pub sysfs: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Common),
    Once {
        common: Common,
        delay_ms: u64,
    },
    CheckConfig(Common),
    Status {
        common: Common,
        address: Option<String>,
    },
    StoreStats(Common),
    /// `since`: as given (a duration like "1h" back from now, RFC 3339, or epoch ms).
    /// `session`: only that session's samples (`store export --session`).
    StoreExport {
        common: Common,
        since: Option<String>,
        session: Option<uuid::Uuid>,
    },
    /// `reason`: a quarantine reason, or its first word (`refused`, `too_old`, ...); `since`:
    /// quarantined at or after this (same forms as `store export --since`).
    StoreRequeue {
        common: Common,
        reason: Option<String>,
        since: Option<String>,
    },
    /// `file`: the file to check instead of `storage.path`.
    StoreCheck {
        common: Common,
        file: Option<PathBuf>,
    },
    Help(&'static str),
    Version,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n\nRun `belabox-metrics --help` for usage.", self.0)
    }
}

impl std::error::Error for UsageError {}

fn help_for(cmd: &str) -> &'static str {
    match cmd {
        "run" => {
            "Usage: belabox-metrics run [--config FILE] [--procfs DIR] [--sysfs DIR]\n\nCollect into the local store (and upload when [remote] is configured) until SIGTERM or SIGINT, then flush and exit 0.\n"
        }
        "once" => {
            "Usage: belabox-metrics once [--config FILE] [--procfs DIR] [--sysfs DIR] [--delay MS]\n\nRead every source twice, MS milliseconds apart (default 1000), and print to stdout the VictoriaMetrics JSONL lines of the second read, one line per series. A collector that fails is named on stderr; the others' series are still printed, and the exit code is 1.\n"
        }
        "check-config" => {
            "Usage: belabox-metrics check-config [--config FILE]\n\nValidate the configuration (exit 2 on error, naming the key) and print the effective configuration, secrets (a URL's password, credential query parameters) shown as ***. Without --config, reads /etc/belabox-metrics/config.toml when it exists.\n"
        }
        "status" => {
            "Usage: belabox-metrics status [--config FILE] [--address HOST:PORT]\n\nAsk the running agent's /health (health.address, or --address) and print a readable summary. Without --config, reads /etc/belabox-metrics/config.toml when it exists. Exit 0 when ok, 1 when degraded or error, 3 when the agent does not answer or something else (another exporter) answers there.\n"
        }
        "store" => {
            "Usage: belabox-metrics store stats [--config FILE]\n       belabox-metrics store export [--config FILE] [--since WHEN] [--session UUID]\n       belabox-metrics store requeue [--config FILE] [--reason R] [--since WHEN]\n       belabox-metrics store check [--config FILE] [--file PATH]\n\nLook at the store offline (the agent must be stopped: the store is locked while it runs). Only requeue writes to the store file.\nstats: file size, pending, dropped, quarantined, last checkpoint, sessions.\nexport: every stored sample as JSONL, oldest first (quarantined samples marked); WHEN is a duration back from now (\"1h\"), an RFC 3339 time or epoch milliseconds; --session UUID keeps the samples labelled session_id=UUID and, when UUID is an agent run, every sample from its start to the next run's.\nrequeue: put quarantined samples back in the upload queue: those whose reason is R or starts with \"R:\" (e.g. refused, too_old, non_finite; all without --reason), quarantined since WHEN (all without --since). The running agent uploads them once it runs again.\ncheck: verify every page's checksum and the store's invariants, and print the report; PATH checks another file (a moved-aside metrics.redb.corrupt-<secs>). Exit 0 healthy, 1 damaged or unreadable.\n"
        }
        _ => USAGE,
    }
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut args = args.into_iter().skip(1);
    let Some(cmd) = args.next() else {
        return Ok(Command::Help(USAGE));
    };
    let cmd = cmd
        .into_string()
        .map_err(|c| UsageError(format!("unknown command {c:?}")))?;
    match cmd.as_str() {
        "--version" | "-V" | "version" => return Ok(Command::Version),
        "--help" | "-h" | "help" => return Ok(Command::Help(USAGE)),
        "run" | "once" | "check-config" | "status" => {}
        "store" => {}
        other => return Err(UsageError(format!("unknown command `{other}`"))),
    }
    // `store` takes a sub-command.
    let cmd = if cmd == "store" {
        match args.next().and_then(|a| a.into_string().ok()).as_deref() {
            Some("stats") => "store stats".to_string(),
            Some("export") => "store export".to_string(),
            Some("requeue") => "store requeue".to_string(),
            Some("check") => "store check".to_string(),
            Some("--help" | "-h") | None => return Ok(Command::Help(help_for("store"))),
            Some(other) => {
                return Err(UsageError(format!(
                    "unknown store command `{other}` (stats, export, requeue, check)"
                )));
            }
        }
    } else {
        cmd
    };
    let mut common = Common::default();
    let mut delay_ms = 1000u64;
    let mut address = None;
    let mut since = None;
    let mut reason = None;
    let mut file = None;
    let mut session = None;
    while let Some(flag) = args.next() {
        let flag = flag
            .into_string()
            .map_err(|f| UsageError(format!("unknown option {f:?}")))?;
        if flag == "--help" || flag == "-h" {
            return Ok(Command::Help(help_for(cmd.split(' ').next().unwrap_or(""))));
        }
        // Both `--flag value` and `--flag=value`.
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(OsString::from(v))),
            None => (flag.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| UsageError(format!("{name} needs a value")))
        };
        match (cmd.as_str(), name.as_str()) {
            (_, "--config") => common.config = Some(PathBuf::from(value()?)),
            ("run" | "once", "--procfs") => common.procfs = Some(PathBuf::from(value()?)),
            ("run" | "once", "--sysfs") => common.sysfs = Some(PathBuf::from(value()?)),
            ("status", "--address") => address = Some(string(value()?, &name)?),
            ("store export" | "store requeue", "--since") => since = Some(string(value()?, &name)?),
            ("store requeue", "--reason") => reason = Some(string(value()?, &name)?),
            ("store check", "--file") => file = Some(PathBuf::from(value()?)),
            ("store export", "--session") => {
                let v = string(value()?, &name)?;
                session =
                    Some(uuid::Uuid::try_parse(&v).map_err(|_| {
                        UsageError(format!("--session: expected a UUID, got {v:?}"))
                    })?);
            }
            ("once", "--delay") => {
                let v = value()?;
                delay_ms = v
                    .to_str()
                    .and_then(|s| s.parse::<u64>().ok())
                    .filter(|&ms| ms <= 3_600_000)
                    .ok_or_else(|| {
                        UsageError(format!(
                            "--delay: expected milliseconds (0 to 3600000), got {v:?}"
                        ))
                    })?;
            }
            _ => return Err(UsageError(format!("`{cmd}` has no option `{name}`"))),
        }
    }
    Ok(match cmd.as_str() {
        "run" => Command::Run(common),
        "once" => Command::Once { common, delay_ms },
        "status" => Command::Status { common, address },
        "store stats" => Command::StoreStats(common),
        "store export" => Command::StoreExport {
            common,
            since,
            session,
        },
        "store requeue" => Command::StoreRequeue {
            common,
            reason,
            since,
        },
        "store check" => Command::StoreCheck { common, file },
        _ => Command::CheckConfig(common),
    })
}

fn string(v: OsString, name: &str) -> Result<String, UsageError> {
    v.into_string()
        .map_err(|v| UsageError(format!("{name}: not valid UTF-8: {v:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, UsageError> {
        parse(
            std::iter::once("belabox-metrics")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    #[test]
    fn parses_commands_and_flags() {
        assert_eq!(p(&["--version"]), Ok(Command::Version));
        assert_eq!(p(&[]), Ok(Command::Help(USAGE)));
        assert_eq!(
            p(&[
                "once",
                "--procfs",
                "/x/proc",
                "--sysfs=/x/sys",
                "--delay",
                "5"
            ]),
            Ok(Command::Once {
                common: Common {
                    config: None,
                    procfs: Some("/x/proc".into()),
                    sysfs: Some("/x/sys".into())
                },
                delay_ms: 5
            })
        );
        assert!(matches!(p(&["run", "--help"]), Ok(Command::Help(h)) if h.contains("SIGTERM")));
    }

    #[test]
    fn store_and_status_commands() {
        assert_eq!(
            p(&["store", "stats"]),
            Ok(Command::StoreStats(Common::default()))
        );
        assert_eq!(
            p(&["store", "export", "--since", "1h"]),
            Ok(Command::StoreExport {
                common: Common::default(),
                since: Some("1h".into()),
                session: None,
            })
        );
        assert_eq!(
            p(&[
                "store",
                "export",
                "--session=0F6C3B9E-2D4A-4C1B-9A57-3E2F1D0C8B7A"
            ]),
            Ok(Command::StoreExport {
                common: Common::default(),
                since: None,
                session: Some(uuid::Uuid::from_u128(
                    0x0f6c3b9e_2d4a_4c1b_9a57_3e2f1d0c8b7a
                )),
            })
        );
        assert!(
            p(&["store", "export", "--session", "run-7"])
                .unwrap_err()
                .0
                .contains("--session: expected a UUID")
        );
        assert_eq!(
            p(&["status", "--address", "127.0.0.1:9100"]),
            Ok(Command::Status {
                common: Common::default(),
                address: Some("127.0.0.1:9100".into())
            })
        );
        assert!(p(&["store", "frob"]).unwrap_err().0.contains("frob"));
        assert!(matches!(p(&["store"]), Ok(Command::Help(h)) if h.contains("export")));
        assert!(
            matches!(p(&["store", "export", "--help"]), Ok(Command::Help(h)) if h.contains("--since"))
        );
        assert!(p(&["store", "stats", "--since", "1h"]).is_err());
        assert_eq!(
            p(&["store", "requeue", "--reason=refused", "--since", "2h"]),
            Ok(Command::StoreRequeue {
                common: Common::default(),
                reason: Some("refused".into()),
                since: Some("2h".into())
            })
        );
        assert_eq!(
            p(&["store", "requeue"]),
            Ok(Command::StoreRequeue {
                common: Common::default(),
                reason: None,
                since: None
            })
        );
        assert!(p(&["store", "export", "--reason", "x"]).is_err());
        assert!(
            matches!(p(&["store", "requeue", "--help"]), Ok(Command::Help(h)) if h.contains("--reason"))
        );
        assert_eq!(
            p(&["store", "check", "--file", "/x/m.redb.corrupt-1"]),
            Ok(Command::StoreCheck {
                common: Common::default(),
                file: Some("/x/m.redb.corrupt-1".into())
            })
        );
        assert_eq!(
            p(&["store", "check"]),
            Ok(Command::StoreCheck {
                common: Common::default(),
                file: None
            })
        );
        assert!(p(&["store", "check", "--since", "1h"]).is_err());
        assert!(
            matches!(p(&["store", "check", "--help"]), Ok(Command::Help(h)) if h.contains("--file"))
        );
    }

    #[test]
    fn rejects_bad_input_clearly() {
        assert!(p(&["frobnicate"]).unwrap_err().0.contains("frobnicate"));
        assert!(
            p(&["once", "--delay", "soon"])
                .unwrap_err()
                .0
                .contains("--delay")
        );
        assert!(
            p(&["once", "--delay"])
                .unwrap_err()
                .0
                .contains("needs a value")
        );
        assert!(
            p(&["check-config", "--procfs", "/p"])
                .unwrap_err()
                .0
                .contains("--procfs")
        );
        assert!(p(&["once", "--bogus"]).unwrap_err().0.contains("--bogus"));
    }
}
