//! A real vmauth (Debian package `victoria-metrics`, `/usr/bin/vmauth`) in front of one or more
//! backends: one bearer token per board, each routed to a backend URL prefix. Tokens can be
//! revoked and restored while it runs (the config file is rewritten, then SIGHUP). Killed on
//! drop. Never skips: a missing binary is a panic that says what to install.
//!
//! Note: this vmauth answers a bearer token it does not know with 400 and the text
//! `cannot find the provided auth token "Bearer <token>" in config` (the token echoed), a missing
//! `Authorization` header with 401.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::vm::{free_port, http_get};

pub const VMAUTH_BIN: &str = "/usr/bin/vmauth";

pub struct VmAuth {
    child: Option<Child>,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    /// (token, backend URL prefix), in config order.
    users: Vec<(String, String)>,
}

impl VmAuth {
    /// vmauth on a free loopback port routing each `(token, url_prefix)`.
    pub fn start(users: Vec<(String, String)>) -> VmAuth {
        assert!(
            std::path::Path::new(VMAUTH_BIN).exists(),
            "{VMAUTH_BIN} not found: install the Debian package `victoria-metrics`"
        );
        let dir = tempfile::tempdir().unwrap();
        let mut a = VmAuth {
            child: None,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            users,
        };
        a.write_config();
        for _ in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(a.dir.path().join("vmauth.log")).unwrap();
            let child = Command::new(VMAUTH_BIN)
                .arg(format!("-auth.config={}", a.config_path().display()))
                .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                // Many boards: keep backend connections for them (this vmauth has no
                // concurrency limit flag).
                .arg("-maxIdleConnsPerBackend=400")
                .arg("-loggerLevel=WARN")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {VMAUTH_BIN}: {e}"));
            a.child = Some(child);
            a.addr = SocketAddr::from(([127, 0, 0, 1], port));
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(10) {
                if let Ok((200, _)) = http_get(a.addr, "/health") {
                    return a;
                }
                if let Some(Ok(Some(_))) = a.child.as_mut().map(Child::try_wait) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            a.kill();
        }
        panic!("vmauth did not start: {}", a.log_text());
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The URL a board posts to (vmauth forwards the path to the token's backend).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("auth.yml")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("vmauth.log")).unwrap_or_default()
    }

    fn write_config(&self) {
        let mut y = String::from("users:\n");
        for (token, prefix) in &self.users {
            y.push_str(&format!(
                "- bearer_token: \"{token}\"\n  url_prefix: \"{prefix}\"\n"
            ));
        }
        if self.users.is_empty() {
            y = "users: []\n".into();
        }
        let tmp = self.dir.path().join("auth.yml.tmp");
        std::fs::write(&tmp, y).unwrap();
        std::fs::rename(&tmp, self.config_path()).unwrap();
    }

    /// Rewrites the users and makes vmauth reload them (SIGHUP), then waits until a request
    /// with the first changed token answers as the new config says.
    pub fn set_users(&mut self, users: Vec<(String, String)>) {
        self.users = users;
        self.write_config();
        if let Some(c) = &self.child {
            rustix::process::kill_process(
                rustix::process::Pid::from_child(c),
                rustix::process::Signal::HUP,
            )
            .unwrap();
        }
        // vmauth logs the reload; give it a moment (it applies the file within milliseconds).
        std::thread::sleep(Duration::from_millis(500));
    }

    /// Removes `token` (a revoked board token).
    pub fn revoke(&mut self, token: &str) {
        let users = self
            .users
            .iter()
            .filter(|(t, _)| t != token)
            .cloned()
            .collect();
        self.set_users(users);
    }

    /// Adds `token` routed to `prefix`.
    pub fn grant(&mut self, token: &str, prefix: &str) {
        let mut users = self.users.clone();
        users.push((token.to_owned(), prefix.to_owned()));
        self.set_users(users);
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for VmAuth {
    fn drop(&mut self) {
        self.kill();
    }
}
