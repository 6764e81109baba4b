#![no_main]
//! belabox-sys's /proc/self/smaps scan (`text::SmapsScan`, used by the agent's text release)
//! against a model: the same text, split into pieces anywhere (as read(2) may return it), must
//! give what a plain line-by-line reading of the whole text gives, and never panic. What it
//! finds is what the agent madvises away, so a wrong answer here could drop private pages.
//!
//! Input: 8 bytes of the address looked for (little-endian, reduced so that it often falls in
//! a range of the text), 1 byte choosing the piece size, then the smaps text.

use belabox_sys::text::{MAX_MAPPINGS, ReleaseError, SmapsScan};
use libfuzzer_sys::fuzz_target;

/// The scan keeps this many bytes of a line (belabox-sys's `PREFIX`).
const PREFIX: usize = 160;

#[derive(Clone, Copy)]
struct Mapping {
    start: usize,
    end: usize,
    file: (usize, usize, u64),
    read_only: bool,
    executable: bool,
    anonymous_kb: Option<u64>,
}

impl Mapping {
    fn clean(&self) -> bool {
        self.read_only && self.anonymous_kb == Some(0) && self.file.2 != 0
    }
}

/// Hex digits only (no sign, unlike `from_str_radix`), 1 to 16, no overflow.
fn hex(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 16 || !s.iter().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    usize::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
}

fn decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.iter().all(|c| c.is_ascii_digit()) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn fields(line: &[u8]) -> Vec<&[u8]> {
    line.split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .collect()
}

fn header(line: &[u8]) -> Option<Mapping> {
    let f = fields(line);
    if f.len() < 5 {
        return None;
    }
    let dash = f[0].iter().position(|&b| b == b'-')?;
    let (start, end) = (hex(&f[0][..dash])?, hex(&f[0][dash + 1..])?);
    let colon = f[3].iter().position(|&b| b == b':')?;
    let file = (
        hex(&f[3][..colon])?,
        hex(&f[3][colon + 1..])?,
        decimal(f[4])?,
    );
    if end <= start || f[1].len() != 4 {
        return None;
    }
    Some(Mapping {
        start,
        end,
        file,
        read_only: f[1][1] == b'-' && f[1][3] == b'p',
        executable: f[1][2] == b'x',
        anonymous_kb: None,
    })
}

/// (the ranges to drop, left_out), or the error.
fn model(text: &[u8], addr: usize) -> Result<(Vec<(usize, usize)>, usize), ReleaseError> {
    let complete = match text.iter().rposition(|&b| b == b'\n') {
        Some(last) => &text[..last],
        None => &[][..],
    };
    let mut all: Vec<Mapping> = Vec::new();
    if !text.is_empty() && text.contains(&b'\n') {
        for line in complete.split(|&b| b == b'\n') {
            let line = &line[..line.len().min(PREFIX)];
            if let Some(rest) = line.strip_prefix(b"Anonymous:") {
                if let Some(m) = all.last_mut() {
                    let f = fields(rest);
                    m.anonymous_kb = match f.as_slice() {
                        [n, unit] if *unit == b"kB" => decimal(n),
                        _ => None,
                    };
                }
            } else if let Some(m) = header(line) {
                all.push(m);
            }
        }
    }
    let at = all.iter().position(|m| m.start <= addr && addr < m.end);
    let here = match at.map(|i| (i, all[i])) {
        Some((i, m)) if m.executable && m.clean() => {
            // Kept only if fewer than MAX_MAPPINGS clean mappings came before it.
            if all[..i].iter().filter(|m| m.clean()).count() >= MAX_MAPPINGS {
                return Err(ReleaseError::TextMappingLeftOut);
            }
            m
        }
        _ => return Err(ReleaseError::NoTextMapping),
    };
    let clean: Vec<Mapping> = all.iter().filter(|m| m.clean()).copied().collect();
    let left_out = clean.len().saturating_sub(MAX_MAPPINGS);
    let ranges = clean
        .iter()
        .take(MAX_MAPPINGS)
        .filter(|m| m.file == here.file)
        .map(|m| (m.start, m.end))
        .collect();
    Ok((ranges, left_out))
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
    let mut scan = SmapsScan::new(addr);
    for chunk in text.chunks(piece) {
        scan.feed(chunk);
    }
    let got = scan
        .finish()
        .map(|d| (d.ranges().collect::<Vec<_>>(), d.left_out));
    if let Ok((ranges, _)) = &got {
        assert!(
            ranges.iter().any(|&(s, e)| s <= addr && addr < e),
            "the code's own mapping is among the ranges"
        );
    }
    assert_eq!(got, model(text, addr), "pieces of {piece}");
});
