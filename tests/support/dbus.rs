//! A private `dbus-daemon` (Debian's, `apt-get install dbus-daemon`) on a unix socket in a temp
//! dir, and the ModemManager stand-in `mm_mock.py` on it (python3-dbusmock, run by
//! /usr/bin/python3: pyenv's python has no dbusmock). Both are killed on drop.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A running bus; `restart` brings it back on the same address.
pub struct Bus {
    child: Option<Child>,
    config: PathBuf,
    socket: PathBuf,
}

impl Bus {
    /// Starts a bus whose socket is `dir/bus`; `activatable`: it lists ModemManager as
    /// activatable (a service file whose program is never run: the agent's calls carry
    /// NO_AUTO_START), as on a board where ModemManager is installed but not started yet.
    pub fn start(dir: &Path, activatable: bool) -> Bus {
        let socket = dir.join("bus");
        let services = dir.join("services");
        std::fs::create_dir_all(&services).unwrap();
        if activatable {
            std::fs::write(
                services.join("org.freedesktop.ModemManager1.service"),
                "[D-BUS Service]\nName=org.freedesktop.ModemManager1\nExec=/bin/false\n",
            )
            .unwrap();
        }
        let config = dir.join("bus.conf");
        std::fs::write(
            &config,
            include_str!("dbus-bus.conf")
                .replace("@SOCKET@", &socket.display().to_string())
                .replace("@SERVICES@", &services.display().to_string()),
        )
        .unwrap();
        let mut bus = Bus {
            child: None,
            config,
            socket,
        };
        bus.start_again();
        bus
    }

    pub fn address(&self) -> String {
        format!("unix:path={}", self.socket.display())
    }

    /// Kills the daemon (every connection on it ends).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Starts the daemon (again) and waits for its socket.
    pub fn start_again(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", self.config.display()))
            .args(["--nofork", "--nopidfile"])
            .stdout(Stdio::null())
            .spawn()
            .expect("dbus-daemon (apt-get install dbus-daemon; tests/run-all.sh installs it)");
        self.child = Some(child);
        let t = Instant::now();
        while !self.socket.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "dbus-daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The ModemManager stand-in, driven line by line.
pub struct MmMock {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl MmMock {
    pub fn start(bus: &Bus) -> MmMock {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/mm_mock.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(bus.address())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("/usr/bin/python3");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut mock = MmMock {
            child,
            stdin,
            stdout,
        };
        let line = mock.line();
        assert_eq!(
            line, "ready",
            "mm_mock.py did not start (apt-get install python3-dbusmock)"
        );
        mock
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    /// One command of mm_mock.py (see its docstring); panics unless it answers "ok".
    pub fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
        let answer = self.line();
        assert_eq!(answer, "ok", "mm_mock.py: {command}");
    }
}

impl Drop for MmMock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
