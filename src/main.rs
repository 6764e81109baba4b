use std::process::ExitCode;

use belabox_metrics::cli::{self, Command};
use belabox_metrics::config::{Config, LogFormat};
use belabox_metrics::logging::{Format, Logger};
use belabox_metrics::once;

/// Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.
fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("belabox-metrics: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Version => {
            println!("belabox-metrics {}", cli::VERSION);
            ExitCode::SUCCESS
        }
        Command::Help(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Command::CheckConfig(common) => match once::load_config(&common) {
            Ok(config) => {
                print!("{}", config.to_toml());
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Command::Once { common, delay_ms } => {
            let config = match once::load_config(&common) {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            install_logger(&config);
            match once::run(&config, delay_ms) {
                Ok(()) => ExitCode::SUCCESS,
                Err(msg) => {
                    eprintln!("belabox-metrics: {msg}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run(common) => {
            let config = match once::load_config(&common) {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            install_logger(&config);
            match run_agent(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!(error = e.to_string().as_str(); "agent stopped");
                    eprintln!("belabox-metrics: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn config_error(e: &dyn std::error::Error) -> ExitCode {
    eprintln!("belabox-metrics: configuration error: {e}");
    ExitCode::from(2)
}

fn install_logger(config: &Config) {
    let format = match config.logging.format {
        LogFormat::Json => Format::Json,
        LogFormat::Console => Format::Console,
    };
    Logger::new(format, config.logging.level).install();
}

// Until the store lands the run loop is not built.
fn run_agent(_config: Config) -> Result<(), String> {
    Err("`run` is not available in this build yet".to_string())
}
