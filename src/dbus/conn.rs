//! One connection to a bus: connect (`unix:path=` or `unix:abstract=` addresses, the first that
//! answers of a `;`-separated list), EXTERNAL authentication as this process's uid, `Hello`, then
//! method calls one at a time on smol's reactor. Messages that are not the awaited reply (the
//! bus's NameAcquired signal, other signals) are read and dropped, at most
//! [`MAX_SKIPPED_MESSAGES`] per call. A message over [`wire::MAX_MESSAGE`] or malformed ends the
//! connection (its framing can no longer be trusted): the caller reconnects.

use std::fmt;
use std::io;
use std::os::unix::net::UnixStream as StdUnixStream;

use smol::Async;
use smol::io::{AsyncReadExt, AsyncWriteExt};

use super::wire::{self, Arg, Call, Message, Prefix, Value, WireError};

/// The system bus when `DBUS_SYSTEM_BUS_ADDRESS` is not set (the specification's default).
pub const DEFAULT_SYSTEM_BUS: &str = "unix:path=/var/run/dbus/system_bus_socket";
/// Messages dropped while waiting for one reply before the connection is given up.
pub const MAX_SKIPPED_MESSAGES: usize = 1024;
/// Capacity of the message buffer kept between messages (ModemManager's replies for a few
/// modems are a few KiB).
const KEEP_BUFFER: usize = 64 << 10;
/// Longest line of the authentication exchange.
const MAX_AUTH_LINE: usize = 512;

/// `DBUS_SYSTEM_BUS_ADDRESS`, else [`DEFAULT_SYSTEM_BUS`].
pub fn system_bus_address() -> String {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| DEFAULT_SYSTEM_BUS.to_owned())
}

#[derive(Debug)]
pub enum DbusError {
    /// No address of the list could be parsed or connected to (the last reason).
    Connect(String),
    /// The bus refused our EXTERNAL authentication, or answered nonsense.
    Auth(String),
    Io(io::Error),
    Wire(WireError),
    /// The bus closed the connection.
    Closed,
    /// More than [`MAX_SKIPPED_MESSAGES`] other messages came before the reply.
    NoReply,
}

impl fmt::Display for DbusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbusError::Connect(why) => write!(f, "cannot connect to the bus: {why}"),
            DbusError::Auth(why) => write!(f, "the bus refused authentication: {why}"),
            DbusError::Io(e) => write!(f, "bus connection: {e}"),
            DbusError::Wire(e) => write!(f, "bad message from the bus: {e}"),
            DbusError::Closed => f.write_str("the bus closed the connection"),
            DbusError::NoReply => write!(
                f,
                "no reply among {MAX_SKIPPED_MESSAGES} messages from the bus"
            ),
        }
    }
}

impl std::error::Error for DbusError {}

impl From<io::Error> for DbusError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            DbusError::Closed
        } else {
            DbusError::Io(e)
        }
    }
}

impl From<WireError> for DbusError {
    fn from(e: WireError) -> Self {
        DbusError::Wire(e)
    }
}

/// The answer to a call: its body, or the error the peer replied (name, first string argument).
pub type Reply = Result<Vec<Value>, (String, String)>;

/// An authenticated connection (after `Hello`).
#[derive(Debug)]
pub struct Connection {
    stream: Async<StdUnixStream>,
    serial: u32,
    /// The message being written or read (kept between calls: its capacity is reused).
    buf: Vec<u8>,
}

/// `%xx` escapes of a D-Bus address value decoded (an invalid escape is kept as it is).
fn unescape(v: &str) -> Vec<u8> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Connects to one `unix:` address.
fn connect_one(address: &str) -> Result<StdUnixStream, String> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::SocketAddr;

    let rest = address
        .strip_prefix("unix:")
        .ok_or_else(|| format!("{address}: only unix: addresses are supported"))?;
    for kv in rest.split(',') {
        let Some((key, value)) = kv.split_once('=') else {
            continue;
        };
        let value = unescape(value);
        let addr = match key {
            "path" => SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(&value)),
            "abstract" => SocketAddr::from_abstract_name(&value),
            _ => continue,
        };
        let addr = addr.map_err(|e| format!("{address}: {e}"))?;
        return StdUnixStream::connect_addr(&addr).map_err(|e| format!("{address}: {e}"));
    }
    Err(format!("{address}: no path= or abstract="))
}

impl Connection {
    /// Connects, authenticates and says `Hello` (the unix connect is immediate; the exchange
    /// runs on the reactor: the caller bounds it with a timeout).
    pub async fn connect(address: &str) -> Result<Connection, DbusError> {
        let mut last = format!("{address}: empty address");
        let mut stream = None;
        for a in address.split(';').filter(|a| !a.is_empty()) {
            match connect_one(a) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or(DbusError::Connect(last))?;
        let mut conn = Connection {
            stream: Async::new(stream)?,
            serial: 0,
            buf: Vec::new(),
        };
        conn.authenticate().await?;
        match conn
            .call(
                &Call {
                    destination: "org.freedesktop.DBus",
                    path: "/org/freedesktop/DBus",
                    interface: "org.freedesktop.DBus",
                    member: "Hello",
                },
                &[],
            )
            .await?
        {
            Ok(_) => Ok(conn),
            Err((name, _)) => Err(DbusError::Auth(format!("Hello refused: {name}"))),
        }
    }

    async fn authenticate(&mut self) -> Result<(), DbusError> {
        let uid = rustix::process::getuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        let hello = format!("\0AUTH EXTERNAL {hex}\r\n");
        self.stream.write_all(hello.as_bytes()).await?;
        let line = self.auth_line().await?;
        if !line.starts_with("OK ") {
            return Err(DbusError::Auth(line));
        }
        self.stream.write_all(b"BEGIN\r\n").await?;
        Ok(())
    }

    /// One `\r\n`-terminated line of the authentication exchange, byte by byte (nothing after
    /// it may be consumed: the binary protocol follows BEGIN).
    async fn auth_line(&mut self) -> Result<String, DbusError> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if line.len() >= MAX_AUTH_LINE {
                return Err(DbusError::Auth("authentication line too long".into()));
            }
            self.stream.read_exact(&mut byte).await?;
            line.push(byte[0]);
        }
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// Sends `call(args)` and waits for its reply, dropping other messages.
    pub async fn call(&mut self, call: &Call<'_>, args: &[Arg<'_>]) -> Result<Reply, DbusError> {
        self.serial = self.serial.wrapping_add(1).max(1);
        let serial = self.serial;
        wire::encode_call(&mut self.buf, serial, call, args);
        self.stream.write_all(&self.buf).await?;
        for _ in 0..MAX_SKIPPED_MESSAGES {
            let msg = self.read_message().await?;
            if msg.reply_serial != Some(serial) {
                continue;
            }
            match msg.kind {
                wire::METHOD_RETURN => return Ok(Ok(msg.body)),
                wire::ERROR => {
                    let text = msg
                        .body
                        .first()
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    return Ok(Err((msg.error_name.unwrap_or_default(), text)));
                }
                _ => continue,
            }
        }
        Err(DbusError::NoReply)
    }

    async fn read_message(&mut self) -> Result<Message, DbusError> {
        let mut head = [0u8; Prefix::LEN];
        self.stream.read_exact(&mut head).await?;
        let prefix = Prefix::parse(&head)?;
        let total = prefix.total().ok_or(WireError::TooLarge)?;
        self.buf.clear();
        self.buf.extend_from_slice(&head);
        self.buf.resize(total, 0);
        self.stream.read_exact(&mut self.buf[Prefix::LEN..]).await?;
        let msg = wire::parse_message(&self.buf);
        if self.buf.capacity() > KEEP_BUFFER {
            // One large message (up to MAX_MESSAGE) does not stay resident.
            self.buf = Vec::new();
        }
        Ok(msg?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_unescaped() {
        assert_eq!(unescape("/tmp/a%20b"), b"/tmp/a b");
        assert_eq!(unescape("%zz%4"), b"%zz%4");
        assert!(connect_one("tcp:host=x").is_err());
        assert!(connect_one("unix:guid=1").is_err());
    }
}
