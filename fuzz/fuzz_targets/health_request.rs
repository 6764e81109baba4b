#![no_main]
//! The health endpoint's request-head parser (src/health/http.rs on httparse through
//! src/net/head.rs), included by path. Properties: no panic; the incremental parser fed in pieces
//! sized by the input gives the one-shot result; a prefix gives `Partial` or the whole input's
//! result; a complete head stays within the buffer and `MAX_HEAD`, its path is a piece of the
//! head that is `*` or starts with `/` and holds no query or fragment, its method is the head's
//! first token; a refusal maps to 400, 431 or 505. A valid request built from the input parses
//! to what was built, and every proper prefix of it is `Partial`, one-shot and byte by byte.

// The same module paths as in the agent (`crate::net::head` is used by `health::http`).
#[path = "../../src/net"]
mod net {
    #[allow(dead_code)]
    pub mod head;
}
#[path = "../../src/health"]
mod health {
    #[allow(dead_code)]
    pub mod http;
}

use health::http::{HeadError, HeadParser, MAX_HEAD, Method, Parsed, Request, parse_head};
use libfuzzer_sys::fuzz_target;

/// Feeds `data` in pieces whose sizes cycle through `sizes`; the first non-Partial result.
fn pieces<'a>(data: &'a [u8], sizes: &[u8]) -> Result<Parsed<'a>, HeadError> {
    let mut p = HeadParser::new();
    let mut n = 0;
    let mut k = 0;
    loop {
        let size = usize::from(sizes.get(k % sizes.len().max(1)).copied().unwrap_or(1)).max(1);
        k += 1;
        n = (n + size).min(data.len());
        let r = p.advance(&data[..n]);
        if r != Ok(Parsed::Partial) || n == data.len() {
            return r;
        }
    }
}

fn check_complete(data: &[u8], r: &Request<'_>) {
    assert!(r.head_len <= data.len() && r.head_len <= MAX_HEAD);
    assert!(!r.path.is_empty());
    assert!(r.path == b"*" || r.path[0] == b'/', "path {:?}", r.path);
    assert!(!r.path.iter().any(|&b| b == b'?' || b == b'#'));
    assert!(r.path.iter().all(|&b| (0x21..=0x7e).contains(&b)));
    let (start, end) = (data.as_ptr() as usize, data.as_ptr() as usize + r.head_len);
    let p = r.path.as_ptr() as usize;
    // `/` for an absolute form without a path is a constant, not a piece of the head.
    if r.path != b"/" {
        assert!(p >= start && p + r.path.len() <= end, "path outside the head");
    }
    let line = &data[data.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(0)..];
    if let Some(m) = r.method {
        assert!(line.starts_with(m.as_str().as_bytes()) && line[m.as_str().len()] == b' ');
    }
}

/// A valid request from the fuzz input: method, path, fields, line ends chosen by its bytes.
fn build(input: &[u8]) -> (Vec<u8>, Option<Method>, Vec<u8>) {
    let pick = |i: usize| input.get(i).copied().unwrap_or(0);
    let methods: [&[u8]; 5] = [b"GET", b"HEAD", b"POST", b"OPTIONS", b"BREW"];
    let method = methods[usize::from(pick(0)) % methods.len()];
    let crlf: &[u8] = if pick(1) & 1 == 0 { b"\r\n" } else { b"\n" };
    let mut path = b"/".to_vec();
    path.extend(
        input
            .iter()
            .skip(2)
            .take(usize::from(pick(2)) % 64)
            .map(|&b| 0x21 + b % 94)
            .filter(|&b| b != b'?' && b != b'#'),
    );
    let mut req = Vec::new();
    if pick(1) & 2 != 0 {
        req.extend_from_slice(crlf);
    }
    req.extend_from_slice(method);
    req.push(b' ');
    req.extend_from_slice(&path);
    if pick(1) & 4 != 0 {
        req.extend_from_slice(b"?q=1#f");
    }
    req.extend_from_slice(b" HTTP/1.1");
    req.extend_from_slice(crlf);
    req.extend_from_slice(b"Host: t");
    req.extend_from_slice(crlf);
    const TCHAR: &[u8] = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for (i, chunk) in input.chunks(9).skip(8).take(40).enumerate() {
        let mut name: Vec<u8> = chunk
            .iter()
            .take(4)
            .map(|&b| TCHAR[usize::from(b) % TCHAR.len()])
            .collect();
        name.push(b'a' + (i % 26) as u8);
        if name.eq_ignore_ascii_case(b"host") {
            continue;
        }
        req.extend_from_slice(&name);
        req.extend_from_slice(b": ");
        // VCHAR, SP, HTAB and obs-text, not starting or ending with whitespace.
        let value = chunk.iter().skip(4).map(|&b| match b {
            0..=0x1f | 0x7f => b'v',
            b => b,
        });
        req.extend(value);
        req.extend_from_slice(crlf);
    }
    req.extend_from_slice(crlf);
    (req, Method::from_token(method), path)
}

fuzz_target!(|input: &[u8]| {
    // Arbitrary bytes.
    let whole = parse_head(input);
    let sizes = &input[..input.len().min(8)];
    assert_eq!(pieces(input, sizes), whole, "pieces change the result");
    assert_eq!(pieces(input, &[1]), whole, "byte-wise feeding changes the result");
    for cut in [input.len() / 3, input.len() / 2, input.len().saturating_sub(1)] {
        let r = parse_head(&input[..cut]);
        if r != Ok(Parsed::Partial) {
            assert_eq!(r, whole, "prefix of {cut} bytes disagrees");
        }
    }
    match &whole {
        Ok(Parsed::Complete(r)) => check_complete(input, r),
        Ok(Parsed::Partial) => assert!(input.len() < MAX_HEAD),
        Err(e) => {
            assert!(matches!(e.status(), 400 | 431 | 505));
            assert!(!e.to_string().is_empty());
        }
    }

    // A valid request built from the same bytes.
    let (req, method, path) = build(input);
    if req.len() > MAX_HEAD {
        return;
    }
    match parse_head(&req) {
        Ok(Parsed::Complete(r)) => {
            check_complete(&req, &r);
            assert_eq!(r.head_len, req.len());
            assert_eq!(r.method, method);
            assert_eq!(r.path, &path[..]);
        }
        other => panic!("valid request refused: {other:?}\n{:?}", String::from_utf8_lossy(&req)),
    }
    let mut p = HeadParser::new();
    for n in 0..req.len() {
        assert_eq!(parse_head(&req[..n]), Ok(Parsed::Partial), "prefix {n}");
        assert_eq!(p.advance(&req[..n]), Ok(Parsed::Partial), "byte-wise prefix {n}");
    }
    assert!(matches!(p.advance(&req), Ok(Parsed::Complete(_))));
});
