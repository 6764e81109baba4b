#![deny(unsafe_code)]

use std::error::Error;
use std::process::ExitCode;

use belabox_metrics::agent;
use belabox_metrics::cli::{self, Command, Common};
use belabox_metrics::commands::{once, status, store};
use belabox_metrics::config::{Config, ConfigError, LogFormat};
use belabox_metrics::logging::{Format, Logger};

/// Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error (`status`: 1 degraded or
/// error, 3 unreachable or not this agent; `once`: 1 when a collector failed, after printing the
/// others' series). Usage errors go to stderr; a closed stdout pipe ends a command quietly.
fn main() -> ExitCode {
    // First: a panic anywhere (any thread) leaves one JSON line on stderr before the abort.
    belabox_metrics::logging::install_panic_hook();
    let command = match cli::parse(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("belabox-metrics: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Version => print_or_fail(&format!("belabox-metrics {}\n", cli::VERSION)),
        Command::Help(text) => print_or_fail(text),
        Command::CheckConfig(mut common) => {
            installed_default(&mut common);
            with_checked_config(&common, Logs::Off, |config| {
                for w in config.warnings() {
                    eprintln!("belabox-metrics: warning: {w}");
                }
                write_stdout(config.to_toml_redacted().as_bytes())?;
                Ok::<_, std::io::Error>(ExitCode::SUCCESS)
            })
        }
        Command::Once { common, delay_ms } => with_config(&common, Logs::Configured, |config| {
            once::run(&config, delay_ms).map(|()| ExitCode::SUCCESS)
        }),
        Command::Run(common) => with_checked_config(&common, Logs::Configured, |config| {
            let reload = common.config.is_some().then(|| {
                let common = common.clone();
                Box::new(move || load_checked(&common)) as agent::ConfigLoader
            });
            agent::run(config, reload).inspect_err(|e| {
                let chain = error_chain(e);
                log::error!(error = chain.as_str(), error_type = "fatal"; "agent stopped");
            })?;
            Ok::<_, agent::RunError>(ExitCode::SUCCESS)
        }),
        Command::Status {
            mut common,
            address,
        } => {
            installed_default(&mut common);
            with_config(&common, Logs::Off, |config| {
                status::status(&config, address.as_deref()).map(ExitCode::from)
            })
        }
        Command::StoreStats(common) => with_config(&common, Logs::Warnings, |config| {
            store::store_stats(&config).map(|()| ExitCode::SUCCESS)
        }),
        Command::StoreExport {
            common,
            since,
            session,
        } => with_config(&common, Logs::Warnings, |config| {
            store::store_export(&config, since.as_deref(), session).map(|()| ExitCode::SUCCESS)
        }),
        Command::StoreRequeue {
            common,
            reason,
            since,
        } => with_config(&common, Logs::Warnings, |config| {
            store::store_requeue(&config, reason.as_deref(), since.as_deref())
                .map(|()| ExitCode::SUCCESS)
        }),
        Command::StoreCheck { common, file } => with_config(&common, Logs::Warnings, |config| {
            store::store_check(&config, file.as_deref()).map(|healthy| {
                if healthy {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            })
        }),
    }
}

/// Without `--config`, `status` and `check-config` read the installed agent's configuration
/// ([`belabox_metrics::cli::INSTALLED_CONFIG`]) when it exists, and say so on stderr.
fn installed_default(common: &mut Common) {
    if let Some(path) = belabox_metrics::cli::default_to_installed(common) {
        eprintln!(
            "belabox-metrics: using {} (no --config given)",
            path.display()
        );
    }
}

/// Writes `bytes` to stdout; a reader that closed the pipe early (`check-config | head`) is not
/// an error.
fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// [`write_stdout`] for the commands that print one text: exit 0, or 1 when stdout fails.
fn print_or_fail(text: &str) -> ExitCode {
    match write_stdout(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("belabox-metrics: writing to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration plus its file-system checks ([`Config::check`]: token file, storage
/// directory, procfs), as `check-config`, `run` and a reload see it.
fn load_checked(common: &Common) -> Result<Config, ConfigError> {
    let config = belabox_metrics::cli::load_config(common)?;
    config.check()?;
    Ok(config)
}

/// Which log lines a command writes to stderr.
#[derive(Clone, Copy)]
enum Logs {
    /// None: the command's own output says it all (check-config, status).
    Off,
    /// `logging.level` (the agent, `once`).
    Configured,
    /// Warnings and errors only, below `logging.level` at most: the store commands, so that
    /// what opening the store reports (a damaged or torn journal record whose samples the
    /// command then does not see) reaches the user, without info lines around its output.
    Warnings,
}

/// [`with_config`] for the commands that must fail (exit 2) on every configuration error `run`
/// would hit, before anything is opened or written.
fn with_checked_config<E: Error>(
    common: &Common,
    logs: Logs,
    f: impl FnOnce(Config) -> Result<ExitCode, E>,
) -> ExitCode {
    run_with(common, load_checked(common), logs, f)
}

/// Loads the configuration (exit 2 on error, before any file is opened or written), optionally
/// installs the logger, runs `f`; an `Err` goes to stderr (with its source chain) with exit 1.
fn with_config<E: Error>(
    common: &Common,
    logs: Logs,
    f: impl FnOnce(Config) -> Result<ExitCode, E>,
) -> ExitCode {
    run_with(common, belabox_metrics::cli::load_config(common), logs, f)
}

fn run_with<E: Error>(
    common: &Common,
    loaded: Result<Config, ConfigError>,
    logs: Logs,
    f: impl FnOnce(Config) -> Result<ExitCode, E>,
) -> ExitCode {
    let config = match loaded {
        Ok(c) => c,
        Err(e) => return config_error(common, &e),
    };
    let level = match logs {
        Logs::Off => None,
        Logs::Configured => Some(config.logging.level),
        Logs::Warnings => Some(config.logging.level.min(log::LevelFilter::Warn)),
    };
    if let Some(level) = level {
        let format = match config.logging.format {
            LogFormat::Json => Format::Json,
            LogFormat::Console => Format::Console,
        };
        Logger::new(format, level).install();
    }
    match f(config) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("belabox-metrics: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// `e: source: source of source …`. A cause whose text the message already holds is skipped:
/// some errors (the store's, `io::Error::new` wrappers) repeat their source in their own
/// `Display`, and the line must not say it twice.
fn error_chain(e: &dyn Error) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cause = c.source();
    }
    msg
}

fn config_error(common: &Common, e: &ConfigError) -> ExitCode {
    match (&common.config, e) {
        (
            Some(path),
            ConfigError::Syntax { .. }
            | ConfigError::UnknownKey { .. }
            | ConfigError::Invalid { .. },
        ) => {
            eprintln!(
                "belabox-metrics: configuration error in {}: {e}",
                path.display()
            );
        }
        _ => eprintln!("belabox-metrics: configuration error: {e}"),
    }
    ExitCode::from(2)
}
