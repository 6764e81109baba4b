//! `https://` through isahc (libcurl + rustls), only with the `tls` feature.
//!
//! The isahc client is built by [`super::Client`] on the first request that needs it, so an
//! agent that only talks plain http never starts curl or its agent thread. The answer is mapped
//! onto the same [`Response`] as the plain client's; `sent_at` is the start plus curl's name
//! lookup, connect and TLS handshake times (so a slow handshake does not count as round trip).

use std::time::{Duration, Instant};

use isahc::config::{Configurable, RedirectPolicy};
use isahc::http::HeaderValue;
use isahc::{HttpClient, ResponseExt};
use smol::io::AsyncReadExt as _;

use super::client::{BodySink, MAX_IDLE_CONNECTIONS, Request, Response, USER_AGENT};
use super::error::HttpError;

/// The isahc client: connection reuse, no `Expect: 100-continue` (an extra round trip on LTE),
/// no redirects, timing metrics on. Timeouts are per request.
pub(super) fn build() -> Result<HttpClient, isahc::Error> {
    HttpClient::builder()
        .connection_cache_size(MAX_IDLE_CONNECTIONS)
        .expect_continue(false)
        .redirect_policy(RedirectPolicy::None)
        .metrics(true)
        .build()
}

fn header_value(value: &[u8], sensitive: bool) -> Result<HeaderValue, HttpError> {
    let mut v = HeaderValue::from_bytes(value)
        .map_err(|_| HttpError::Malformed("invalid request header"))?;
    v.set_sensitive(sensitive);
    Ok(v)
}

pub(super) async fn send(client: &HttpClient, req: &Request<'_>) -> Result<Response, HttpError> {
    let url = req.url;
    let uri = format!(
        "{}://{}{}",
        url.scheme(),
        url.authority(),
        url.path_and_query()
    );
    let mut builder = isahc::Request::builder()
        .method(req.method.as_str())
        .uri(uri)
        .timeout(req.timeout)
        .header("user-agent", USER_AGENT);
    let mut has_auth = false;
    for (name, value) in req.headers {
        let auth = name.eq_ignore_ascii_case("authorization");
        has_auth |= auth;
        builder = builder.header(*name, header_value(value, auth)?);
    }
    if let Some(basic) = url.basic_auth().filter(|_| !has_auth) {
        builder = builder.header("authorization", header_value(basic, true)?);
    }
    // isahc takes ownership of the body: one copy per request.
    let request = builder
        .body(req.body.to_vec())
        .map_err(|e| HttpError::from(isahc::Error::from(e)))?;
    let start = Instant::now();
    let mut response = client.send_async(request).await.map_err(HttpError::from)?;
    let head_at = Instant::now();
    let setup = response.metrics().map_or(Duration::ZERO, |m| {
        m.name_lookup_time() + m.connect_time() + m.secure_connect_time()
    });
    // Clamped: odd timings fall back to the whole exchange.
    let sent_at = start.checked_add(setup).unwrap_or(start).min(head_at);
    let headers = response.headers();
    let date = headers
        .get("date")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let retry_after = headers.get("retry-after").map(|v| v.as_bytes().to_vec());
    let status = response.status().as_u16();
    let mut sink = BodySink::default();
    let mut buf = [0u8; 1024];
    loop {
        let n = response
            .body_mut()
            .read(&mut buf)
            .await
            .map_err(HttpError::Io)?;
        if n == 0 {
            break;
        }
        sink.push(buf.get(..n).unwrap_or_default());
    }
    Ok(Response {
        status,
        date,
        retry_after,
        body_snippet: sink.snippet,
        body_bytes: sink.bytes,
        sent_at,
        head_at,
    })
}
