#![no_main]
//! The agent's HTTP response head parser and chunked body decoder (src/net/), included by path:
//! both are pure and self-contained (the head parser needs src/net/head.rs, httparse underneath). Properties: no panic; the head result does not depend on
//! where the bytes were cut; a complete head stays within the buffer and `MAX_HEAD`; the chunked
//! decoder gives the same body, the same end and the same error whatever the piece sizes, and
//! always makes progress.

#[allow(dead_code)]
#[path = "../../src/net/chunked.rs"]
mod chunked;
#[allow(dead_code)]
#[path = "../../src/net/head.rs"]
mod head;
#[allow(dead_code)]
#[path = "../../src/net/response.rs"]
mod response;

use chunked::{ChunkedDecoder, ChunkedError};
use libfuzzer_sys::fuzz_target;
use response::{Framing, MAX_HEAD, Parsed, parse_head};

/// Decodes `data` fed in pieces whose sizes cycle through `sizes`: (body, consumed) or the error.
fn decode(data: &[u8], sizes: &[u8]) -> Result<(Vec<u8>, usize, bool), ChunkedError> {
    let mut d = ChunkedDecoder::new();
    let mut body = Vec::new();
    let mut pos = 0;
    let mut k = 0;
    while pos < data.len() && !d.is_done() {
        let size = usize::from(sizes.get(k % sizes.len().max(1)).copied().unwrap_or(0)).max(1);
        k += 1;
        let end = (pos + size).min(data.len());
        let mut part = &data[pos..end];
        while !part.is_empty() && !d.is_done() {
            let (used, run) = d.feed(part)?;
            assert!(used > 0, "no progress");
            assert!(run.start <= run.end && run.end <= used, "data run outside the consumed part");
            body.extend_from_slice(&part[run]);
            part = &part[used..];
            pos += used;
        }
    }
    Ok((body, pos, d.is_done()))
}

fuzz_target!(|input: &[u8]| {
    let Some((&ctl, data)) = input.split_first() else {
        return;
    };
    let head_request = ctl & 1 == 1;
    let whole = parse_head(data, head_request);
    // A few cut points: each prefix is Partial or the same as the whole.
    for cut in [data.len() / 3, data.len() / 2, data.len().saturating_sub(1), usize::from(ctl)] {
        let cut = cut.min(data.len());
        let r = parse_head(&data[..cut], head_request);
        if r != Ok(Parsed::Partial) {
            assert_eq!(r, whole, "prefix of {cut} bytes disagrees");
        }
    }
    match &whole {
        Ok(Parsed::Complete(h)) => {
            assert!(h.head_len <= data.len() && h.head_len <= MAX_HEAD);
            for r in [&h.date, &h.retry_after].into_iter().flatten() {
                assert!(r.start <= r.end && r.end <= h.head_len);
            }
            if head_request {
                assert_eq!(h.framing, Framing::Empty);
            }
        }
        Ok(Parsed::Partial) => assert!(data.len() < MAX_HEAD),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    // The chunked decoder on the same bytes (after the head when there is one), whole and in
    // pieces sized by the input itself.
    let body = match &whole {
        Ok(Parsed::Complete(h)) => &data[h.head_len..],
        _ => data,
    };
    let one = decode(body, &[u8::MAX]);
    let pieces = decode(body, &input[..input.len().min(8)]);
    let bytewise = decode(body, &[1]);
    assert_eq!(one, pieces, "piece sizes change the result");
    assert_eq!(one, bytewise, "byte-wise feeding changes the result");
});
