//! `remote.format` (which wire format the uploader speaks) and `remote.headers` (extra request
//! headers, for tenants and auth gateways), with their checks, and the hint `check-config`
//! gives when `remote.url`'s path does not fit the format.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// The body format of an upload request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UploadFormat {
    /// VictoriaMetrics JSON lines, gzip (`/api/v1/import`). VictoriaMetrics and vmagent only.
    #[default]
    VmImport,
    /// Prometheus remote_write 1.0: protobuf `WriteRequest`, snappy block compression
    /// (`/api/v1/write`, `/api/v1/push`, …). Prometheus, Mimir, Cortex, Thanos Receive, Grafana
    /// Cloud, VictoriaMetrics, vmagent.
    RemoteWrite,
}

impl UploadFormat {
    pub fn name(self) -> &'static str {
        match self {
            UploadFormat::VmImport => "vm-import",
            UploadFormat::RemoteWrite => "remote-write",
        }
    }
}

/// Most entries in `remote.headers`.
pub const MAX_REMOTE_HEADERS: usize = 8;
/// Longest header name, bytes.
pub const REMOTE_HEADER_NAME_MAX: usize = 64;
/// Longest header value, bytes.
pub const REMOTE_HEADER_VALUE_MAX: usize = 1024;

/// Header names (lowercase; a name ending in `-` is a prefix) the uploader or the HTTP client
/// sets itself: overriding them would break framing, routing or the format, or bypass
/// `remote.token_file` (use it, or the URL's userinfo, for `Authorization`).
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "proxy-authorization",
    "content-",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "expect",
    "te",
    "trailer",
    "upgrade",
    "x-prometheus-remote-write-version",
];

/// `remote.headers`: extra request headers sent with every upload (both formats), in name
/// order. Values may be credentials (an API key, a tenant secret): `Debug` shows the names only,
/// `check-config` prints the values as `***`, and the uploader never logs them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RemoteHeaders(Vec<(String, String)>);

impl RemoteHeaders {
    /// Checks every rule of `remote.headers`; the message never holds a value.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Result<RemoteHeaders, String> {
        let mut v: Vec<(String, String)> = Vec::new();
        for (name, value) in pairs {
            check_header(&name, &value)?;
            if v.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                return Err(format!(
                    "header {name:?} is given twice (names ignore case)"
                ));
            }
            if v.len() == MAX_REMOTE_HEADERS {
                return Err(format!("at most {MAX_REMOTE_HEADERS} headers"));
            }
            v.push((name, value));
        }
        v.sort();
        Ok(RemoteHeaders(v))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same names with every value replaced by `***` (what `check-config` prints).
    pub fn redacted(&self) -> RemoteHeaders {
        RemoteHeaders(
            self.0
                .iter()
                .map(|(n, _)| (n.clone(), super::redact::REDACTED.to_owned()))
                .collect(),
        )
    }
}

impl fmt::Debug for RemoteHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: a value may be a credential.
        f.debug_set()
            .entries(self.0.iter().map(|(n, _)| n))
            .finish()
    }
}

/// RFC 9110 `token` characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn check_header(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > REMOTE_HEADER_NAME_MAX || !name.bytes().all(is_tchar) {
        return Err(format!(
            "expected header names of 1 to {REMOTE_HEADER_NAME_MAX} token characters \
             (letters, digits, !#$%&'*+-.^_`|~), got {:?}",
            name.escape_debug().to_string()
        ));
    }
    let lower = name.to_ascii_lowercase();
    let reserved = RESERVED_HEADERS.iter().any(|r| match r.strip_suffix('-') {
        Some(_) => lower.starts_with(r),
        None => lower == *r,
    });
    if reserved {
        return Err(format!(
            "header {name:?} is set by the uploader and cannot be overridden (for \
             Authorization use remote.token_file or the URL's user:password)"
        ));
    }
    // Visible ASCII and inner spaces; no control bytes (header injection), no obs-text.
    let ok = !value.is_empty()
        && value.len() <= REMOTE_HEADER_VALUE_MAX
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ');
    if !ok {
        // The value is not shown: it may be a credential.
        return Err(format!(
            "the value of header {name:?} must be 1 to {REMOTE_HEADER_VALUE_MAX} bytes of \
             visible ASCII (inner spaces allowed)"
        ));
    }
    Ok(())
}

impl Serialize for RemoteHeaders {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (n, v) in &self.0 {
            m.serialize_entry(n, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for RemoteHeaders {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RemoteHeaders;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of header names to string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RemoteHeaders, A::Error> {
                let mut pairs = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    if pairs.len() > MAX_REMOTE_HEADERS {
                        break;
                    }
                    pairs.push((k, v));
                }
                RemoteHeaders::new(pairs).map_err(de::Error::custom)
            }
        }
        d.deserialize_map(V)
    }
}

/// Which format a URL path is known to serve, from its last segments: `/api/v1/import`
/// (VictoriaMetrics single or `/insert/<id>/prometheus/api/v1/import` of a cluster) for
/// vm-import; `/api/v1/write` (VictoriaMetrics, vmagent, Prometheus), `/api/v1/push` (Mimir,
/// Cortex), `/api/prom/push` (Grafana Cloud, older Cortex), `/api/v1/receive` (Thanos Receive)
/// for remote-write. `None`: not known (a proxy may map any path).
pub fn format_of_path(path: &str) -> Option<UploadFormat> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let path = path.trim_end_matches('/');
    if path.ends_with("/api/v1/import") {
        Some(UploadFormat::VmImport)
    } else if [
        "/api/v1/write",
        "/api/v1/push",
        "/api/prom/push",
        "/api/v1/receive",
    ]
    .iter()
    .any(|s| path.ends_with(s))
    {
        Some(UploadFormat::RemoteWrite)
    } else {
        None
    }
}

/// The path of an http(s) URL (`""` when it has none).
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find(['/', '?', '#'])
        .and_then(|i| rest.get(i..))
        .filter(|p| p.starts_with('/'))
        .unwrap_or("")
}

/// A warning when `url`'s path is known to serve the other format (the server would answer
/// 400 to every request: the uploader then keeps everything pending, see docs/upload.md).
/// `url` is printed redacted.
pub fn url_format_warning(url: &str, format: UploadFormat) -> Option<String> {
    let served = format_of_path(url_path(url))?;
    if served == format {
        return None;
    }
    let want = match format {
        UploadFormat::VmImport => "/api/v1/import",
        UploadFormat::RemoteWrite => {
            "/api/v1/write (Prometheus, VictoriaMetrics), /api/v1/push (Mimir, Cortex)"
        }
    };
    Some(format!(
        "remote.url {:?} looks like a {} endpoint but remote.format = \"{}\": the server will \
         likely refuse every upload; use a URL ending in {want}, or remote.format = \"{}\"",
        super::redact::redact_url(url),
        served.name(),
        format.name(),
        served.name(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Result<RemoteHeaders, String> {
        RemoteHeaders::new(pairs.iter().map(|(n, v)| ((*n).into(), (*v).into())))
    }

    #[test]
    fn headers_are_validated_and_never_shown() {
        let ok = h(&[("X-Scope-OrgID", "tenant-1"), ("X-Api-Key", "s3cr3t key")]).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok.iter().next(), Some(("X-Api-Key", "s3cr3t key")));
        let dbg = format!("{ok:?}");
        assert!(
            dbg.contains("X-Scope-OrgID") && !dbg.contains("s3cr3t"),
            "{dbg}"
        );
        assert!(ok.redacted().iter().all(|(_, v)| v == "***"));
        for bad in [
            ("Host", "x"),
            ("authorization", "Bearer x"),
            ("Content-Type", "text/plain"),
            ("content-encoding", "gzip"),
            ("Transfer-Encoding", "chunked"),
            ("X-Prometheus-Remote-Write-Version", "2.0"),
            ("Bad Name", "x"),
            ("", "x"),
            ("X-Ok", "line\r\nInjected: 1"),
            ("X-Ok", ""),
            ("X-Ok", " padded"),
            ("X-Ok", "caf\u{e9}"),
        ] {
            let e = h(&[bad]).unwrap_err();
            assert!(!e.contains("Injected") && !e.contains("padded"), "{e}");
        }
        assert!(h(&[("X-A", "1"), ("x-a", "2")]).is_err());
        let many: Vec<(String, String)> = (0..=MAX_REMOTE_HEADERS)
            .map(|i| (format!("X-H{i}"), "v".to_owned()))
            .collect();
        assert!(RemoteHeaders::new(many).is_err());
    }

    #[test]
    fn url_paths_are_matched_to_formats() {
        use UploadFormat::*;
        for (url, fmt) in [
            ("http://vm:8428/api/v1/import", Some(VmImport)),
            (
                "http://vminsert:8480/insert/42/prometheus/api/v1/import",
                Some(VmImport),
            ),
            ("http://vm:8428/api/v1/write", Some(RemoteWrite)),
            (
                "http://vminsert:8480/insert/0/prometheus/api/v1/write",
                Some(RemoteWrite),
            ),
            ("https://mimir/api/v1/push", Some(RemoteWrite)),
            ("https://x.grafana.net/api/prom/push", Some(RemoteWrite)),
            ("http://thanos:19291/api/v1/receive", Some(RemoteWrite)),
            ("http://proxy/ingest", None),
            ("http://vm:8428", None),
        ] {
            assert_eq!(format_of_path(url_path(url)), fmt, "{url}");
        }
        let w = url_format_warning("http://u:pw@vm/api/v1/import", RemoteWrite).unwrap();
        assert!(
            w.contains("remote.format = \"vm-import\"") && !w.contains("pw"),
            "{w}"
        );
        assert!(url_format_warning("http://vm/api/v1/write", VmImport).is_some());
        assert!(url_format_warning("http://mimir/api/v1/push", VmImport).is_some());
        assert!(url_format_warning("http://vm/api/v1/write", RemoteWrite).is_none());
        assert!(url_format_warning("http://proxy/x", RemoteWrite).is_none());
    }
}
