//! `http://` and `https://` URLs, parsed once (at start-up) into what a request needs: host,
//! port, origin-form target and an optional `Basic` credential from the userinfo.
//!
//! Accepted: `scheme://[user[:pass]@]host[:port][/path][?query][#fragment]`, the scheme in any
//! case; host a reg-name (`A–Z a–z 0–9 - . _ ~`, kept lowercase), an IPv4 literal or `[IPv6]`
//! (no zone id). The fragment is dropped (it is never sent). Refused: any other scheme, an empty
//! host, a port that is not 1–65535, spaces, control characters and non-ASCII bytes anywhere
//! (they cannot go on a request line), a malformed `%` escape in the userinfo. Parsing never
//! panics.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::base64;

/// Why a URL was refused. The URL itself is not part of the message (it may hold a password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlError {
    /// Not `http://` or `https://`.
    Scheme,
    /// A space, control character or non-ASCII byte.
    BadChar,
    EmptyHost,
    /// A host that is neither a reg-name, an IPv4 literal nor a bracketed IPv6 literal.
    BadHost,
    /// Not a decimal number in 1–65535.
    BadPort,
    /// A `%` not followed by two hex digits in the userinfo.
    BadEscape,
}

impl UrlError {
    pub fn message(self) -> &'static str {
        match self {
            UrlError::Scheme => "expected an http:// or https:// URL",
            UrlError::BadChar => "URL contains a space, control character or non-ASCII byte",
            UrlError::EmptyHost => "URL has no host",
            UrlError::BadHost => "URL host is not a host name, IPv4 address or [IPv6] address",
            UrlError::BadPort => "URL port is not a number in 1-65535",
            UrlError::BadEscape => "URL userinfo has a malformed %-escape",
        }
    }
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for UrlError {}

/// A parsed `http(s)://` URL. `Debug` shows [`Url::redacted`] only.
#[derive(Clone, PartialEq, Eq)]
pub struct Url {
    https: bool,
    /// Lowercase reg-name, or the IP literal's text (IPv6 without brackets).
    host: String,
    /// Set when the host is an IP literal: connect without a name lookup.
    ip: Option<IpAddr>,
    port: u16,
    /// The port was written and differs from the scheme's default.
    explicit_port: bool,
    /// Origin-form request target: starts with `/`, no fragment.
    path_and_query: String,
    /// `Basic <base64(user:pass)>`, from the userinfo (percent-decoded).
    basic_auth: Option<Vec<u8>>,
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No query and no credential: both may hold secrets.
        f.debug_struct("Url")
            .field("redacted", &self.redacted())
            .field("has_basic_auth", &self.basic_auth.is_some())
            .finish()
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s` onto `out`.
fn unescape_into(s: &[u8], out: &mut Vec<u8>) -> Result<(), UrlError> {
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if b == b'%' {
            let hi = s.get(i + 1).copied().and_then(hex);
            let lo = s.get(i + 2).copied().and_then(hex);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push((hi << 4) | lo),
                _ => return Err(UrlError::BadEscape),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(())
}

fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `None`, or `Some(port)`; an empty port (`host:`) is the default port (RFC 3986 §3.2.3).
fn parse_port(s: &str) -> Result<Option<u16>, UrlError> {
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UrlError::BadPort);
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(UrlError::BadPort),
        Ok(p) => Ok(Some(p)),
    }
}

/// Splits `host[:port]` / `[v6][:port]` into (host text, IP literal, port).
fn parse_host_port(hp: &str) -> Result<(String, Option<IpAddr>, Option<u16>), UrlError> {
    if let Some(rest) = hp.strip_prefix('[') {
        let (inner, after) = rest.split_once(']').ok_or(UrlError::BadHost)?;
        let ip: Ipv6Addr = inner.parse().map_err(|_| UrlError::BadHost)?;
        let port = match after {
            "" => None,
            _ => parse_port(after.strip_prefix(':').ok_or(UrlError::BadHost)?)?,
        };
        return Ok((ip.to_string(), Some(IpAddr::V6(ip)), port));
    }
    let (host, port) = match hp.split_once(':') {
        Some((h, p)) => (h, parse_port(p)?),
        None => (hp, None),
    };
    if host.is_empty() {
        return Err(UrlError::EmptyHost);
    }
    if !host.bytes().all(is_reg_name_byte) {
        return Err(UrlError::BadHost);
    }
    let ip = host.parse::<Ipv4Addr>().ok().map(IpAddr::V4);
    Ok((host.to_ascii_lowercase(), ip, port))
}

impl Url {
    pub fn parse(input: &str) -> Result<Url, UrlError> {
        let (https, rest) = [("http://", false), ("https://", true)]
            .iter()
            .find_map(|&(scheme, https)| {
                input
                    .get(..scheme.len())
                    .filter(|head| head.eq_ignore_ascii_case(scheme))
                    .and_then(|_| input.get(scheme.len()..))
                    .map(|rest| (https, rest))
            })
            .ok_or(UrlError::Scheme)?;
        if !rest.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(UrlError::BadChar);
        }
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(auth_end);
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((u, hp)) => (Some(u), hp),
            None => (None, authority),
        };
        if host_port.is_empty() {
            return Err(UrlError::EmptyHost);
        }
        let (host, ip, port) = parse_host_port(host_port)?;
        let default_port = if https { 443 } else { 80 };
        let port = port.unwrap_or(default_port);
        let basic_auth = match userinfo {
            None | Some("") => None,
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                let mut cred = Vec::with_capacity(u.len() + 1);
                unescape_into(user.as_bytes(), &mut cred)?;
                cred.push(b':');
                unescape_into(pass.as_bytes(), &mut cred)?;
                let mut value = b"Basic ".to_vec();
                base64::encode_into(&cred, &mut value);
                Some(value)
            }
        };
        let path_and_query = if target.starts_with('/') {
            target.to_owned()
        } else {
            // Empty, or only a query.
            format!("/{target}")
        };
        Ok(Url {
            https,
            host,
            ip,
            port,
            explicit_port: port != default_port,
            path_and_query,
            basic_auth,
        })
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The scheme, lowercase.
    pub fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }

    /// The host: a lowercase name, or an IP literal (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host's IP address when it is an IP literal (no name lookup needed).
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// The port, the scheme's default (80, 443) when none was written.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host[:port]` for the `Host` header: IPv6 in brackets, the default port omitted.
    pub fn authority(&self) -> String {
        let host = match self.ip {
            Some(IpAddr::V6(_)) => format!("[{}]", self.host),
            _ => self.host.clone(),
        };
        if self.explicit_port {
            format!("{host}:{}", self.port)
        } else {
            host
        }
    }

    /// The origin-form request target: `/path?query`, at least `/`.
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }

    /// The path alone (no query).
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(p, _)| p)
    }

    /// The `Authorization` value from the URL's userinfo (`Basic …`), if it had one.
    pub fn basic_auth(&self) -> Option<&[u8]> {
        self.basic_auth.as_deref()
    }

    /// `scheme://host[:port]/path`, without userinfo or query: safe to log.
    pub fn redacted(&self) -> String {
        format!("{}://{}{}", self.scheme(), self.authority(), self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_and_defaults() {
        let u = Url::parse("http://127.0.0.1:8428/api/v1/import").unwrap();
        assert!(!u.is_https());
        assert_eq!((u.host(), u.port()), ("127.0.0.1", 8428));
        assert_eq!(u.ip(), Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(u.authority(), "127.0.0.1:8428");
        assert_eq!(u.path_and_query(), "/api/v1/import");
        assert_eq!(u.basic_auth(), None);

        let u = Url::parse("HTTPS://VM.Example.org").unwrap();
        assert!(u.is_https());
        assert_eq!((u.host(), u.port()), ("vm.example.org", 443));
        assert_eq!(u.ip(), None);
        assert_eq!(u.authority(), "vm.example.org");
        assert_eq!(u.path_and_query(), "/");
        assert_eq!(u.redacted(), "https://vm.example.org/");

        let u = Url::parse("http://vm:80?x=1#frag").unwrap();
        assert_eq!((u.authority(), u.path_and_query()), ("vm".into(), "/?x=1"));
        let u = Url::parse("https://vm:80/a#b?c").unwrap();
        assert_eq!((u.authority(), u.path_and_query()), ("vm:80".into(), "/a"));
        let u = Url::parse("http://vm:/p").unwrap();
        assert_eq!(u.port(), 80);
    }

    #[test]
    fn ipv6_literals() {
        let u = Url::parse("http://[::1]:8428/x").unwrap();
        assert_eq!(u.host(), "::1");
        assert_eq!(u.ip(), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(u.authority(), "[::1]:8428");
        assert_eq!(u.redacted(), "http://[::1]:8428/x");
        let u = Url::parse("https://[2001:DB8::1]").unwrap();
        assert_eq!(u.authority(), "[2001:db8::1]");
        for bad in [
            "http://[::1/",
            "http://[::1]x/",
            "http://[fe80::1%eth0]/",
            "http://[zz]/",
            "http://::1/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn userinfo_becomes_basic_auth_and_is_never_shown() {
        let u = Url::parse("https://user:secret@vm.example:8443/api/v1/import?x=token").unwrap();
        assert_eq!(u.redacted(), "https://vm.example:8443/api/v1/import");
        assert_eq!(u.basic_auth(), Some(&b"Basic dXNlcjpzZWNyZXQ="[..]));
        let dbg = format!("{u:?}");
        assert!(!dbg.contains("secret") && !dbg.contains("token"), "{dbg}");
        // RFC 7617's example, percent-encoded space; a user alone has an empty password.
        let u = Url::parse("http://Aladdin:open%20sesame@h/").unwrap();
        assert_eq!(
            u.basic_auth(),
            Some(&b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="[..])
        );
        let u = Url::parse("http://me@h/").unwrap();
        assert_eq!(u.basic_auth(), Some(&b"Basic bWU6"[..]));
        // The last `@` ends the userinfo; an empty one is none.
        let u = Url::parse("http://a@b:c@h/").unwrap();
        assert_eq!(u.host(), "h");
        assert_eq!(Url::parse("http://@h/").unwrap().basic_auth(), None);
        assert_eq!(Url::parse("http://u:%4@h/"), Err(UrlError::BadEscape));
        assert_eq!(Url::parse("http://u:%zz@h/"), Err(UrlError::BadEscape));
    }

    #[test]
    fn refusals() {
        for (bad, want) in [
            ("", UrlError::Scheme),
            ("ftp://h/", UrlError::Scheme),
            ("http:/h/", UrlError::Scheme),
            ("127.0.0.1:8428", UrlError::Scheme),
            ("http://", UrlError::EmptyHost),
            ("http:///api", UrlError::EmptyHost),
            ("http://u:p@/x", UrlError::EmptyHost),
            ("http://:80/", UrlError::EmptyHost),
            ("http://a b/", UrlError::BadChar),
            ("http://h/a b", UrlError::BadChar),
            ("http://h/\r\nX: y", UrlError::BadChar),
            ("http://h/\0", UrlError::BadChar),
            ("http://h/é", UrlError::BadChar),
            ("http://h\t/", UrlError::BadChar),
            ("http://h:0/", UrlError::BadPort),
            ("http://h:65536/", UrlError::BadPort),
            ("http://h:+80/", UrlError::BadPort),
            ("http://h:123456/", UrlError::BadPort),
            ("http://h:8a/", UrlError::BadPort),
            ("http://h:80:81/", UrlError::BadPort),
            ("http://h%41/", UrlError::BadHost),
            ("http://h,i/", UrlError::BadHost),
            ("http://h[/", UrlError::BadHost),
        ] {
            assert_eq!(Url::parse(bad), Err(want), "{bad:?}");
        }
    }

    #[test]
    fn hostile_input_never_panics() {
        let pieces = [
            "http://", "https://", "HTTP://", "[", "]", "::", ":", "@", "%", "%4", "%41", "/", "?",
            "#", "0", "65535", "99999", "h", "\u{0}", "é", "[::1]", "1.2.3.4", " ", "..",
        ];
        // Every sequence of up to 4 pieces.
        let n = pieces.len();
        for i in 0..n.pow(4) {
            let mut s = String::new();
            let mut k = i;
            for _ in 0..4 {
                s.push_str(pieces[k % n]);
                k /= n;
            }
            if let Ok(u) = Url::parse(&s) {
                assert!(u.path_and_query().starts_with('/'), "{s:?}");
                assert!(!u.host().is_empty(), "{s:?}");
                assert!(u.port() > 0, "{s:?}");
                let _ = (u.redacted(), u.authority());
            }
        }
        let long = format!("http://{}:{}/", "a".repeat(100_000), "9".repeat(10_000));
        assert_eq!(Url::parse(&long), Err(UrlError::BadPort));
    }
}
