#![no_main]
//! belabox-sys's /proc/self/maps scan (`text::MapsScan`, used by the agent's text release)
//! against a model: the same text, split into pieces anywhere (as read(2) may return it), must
//! give what a plain line-by-line reading of the whole text gives, and never panic.
//!
//! Input: 8 bytes of the address looked for (little-endian, reduced so that it often falls in
//! a range of the text), 1 byte choosing the piece size, then the maps text.

use belabox_sys::text::{MapsScan, ReleaseError};
use libfuzzer_sys::fuzz_target;

/// The scan keeps this many bytes of a line (belabox-sys's `PREFIX`).
const PREFIX: usize = 160;

/// The model: whole lines, the first `PREFIX` bytes of each, fields split on spaces.
fn model(text: &[u8], addr: usize) -> Option<Result<(usize, usize), ReleaseError>> {
    let complete = match text.iter().rposition(|&b| b == b'\n') {
        Some(last) => &text[..last],
        None => return None,
    };
    for line in complete.split(|&b| b == b'\n') {
        let line = &line[..line.len().min(PREFIX)];
        let fields: Vec<&[u8]> = line
            .split(|&b| b == b' ')
            .filter(|f| !f.is_empty())
            .collect();
        if fields.len() < 5 {
            continue;
        }
        let range = std::str::from_utf8(fields[0]).unwrap_or("");
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Some(start), Some(end)) = (hex(a), hex(b)) else {
            continue;
        };
        if end <= start {
            continue;
        }
        if start <= addr && addr < end {
            let perms = fields[1];
            let ok =
                perms.len() == 4 && &perms[1..] == b"-xp" && fields[4].iter().any(|&c| c != b'0');
            return Some(if ok {
                Ok((start, end))
            } else {
                Err(ReleaseError::NoTextMapping)
            });
        }
    }
    None
}

/// Hex digits only (no sign, unlike `from_str_radix`), at most 16, no overflow.
fn hex(s: &str) -> Option<usize> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    usize::from_str_radix(s, 16).ok()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let raw = u64::from_le_bytes(data[..8].try_into().unwrap());
    // Small addresses land in the small ranges hand-made inputs use.
    let addr = if raw >> 63 == 0 {
        (raw % 0x1_0000) as usize
    } else {
        raw as usize
    };
    let piece = usize::from(data[8]).max(1);
    let text = &data[9..];
    let mut scan = MapsScan::default();
    let mut got = None;
    for chunk in text.chunks(piece) {
        if let Some(r) = scan.feed(chunk, addr) {
            got = Some(r);
            break;
        }
    }
    if let Some(Ok((start, end))) = got {
        assert!(
            start <= addr && addr < end,
            "{start:#x}-{end:#x} lacks {addr:#x}"
        );
    }
    assert_eq!(got, model(text, addr), "pieces of {piece}");
});
