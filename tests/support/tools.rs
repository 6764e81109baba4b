//! The rule checkers the fleet-file tests run (Debian `prometheus` and `victoria-metrics`).
//! A missing tool is a failure that says what to install, never a skip.

use std::path::Path;
use std::process::{Command, Output};

pub const PROMTOOL: &str = "/usr/bin/promtool";
pub const VMALERT: &str = "/usr/bin/vmalert";

/// Panics, naming the Debian package, when `bin` is missing.
pub fn need(bin: &str, package: &str) {
    assert!(
        Path::new(bin).exists(),
        "{bin} not found: install the Debian package `{package}` (apt-get install {package})"
    );
}

/// Runs `cmd` to the end; its output and stdout + stderr as one text (for messages and checks).
pub fn run(cmd: &mut Command) -> (Output, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}
