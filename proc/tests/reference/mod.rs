//! The straightforward parsers that the byte-level ones in `src/` replaced, kept as an
//! oracle: each line is validated as UTF-8 whole, split with `split_ascii_whitespace`
//! and its numbers parsed with checked arithmetic, one digit at a time. They build the
//! crate's public types, so their output can be compared with the crate's `==`.
//!
//! The only rules added since are the documented shortcuts of the new API, written
//! here the obvious way: `meminfo` stops at the seventh known key (then only checks
//! the last byte), and the `_where` forms skip a line whose name (parsed on its own)
//! the filter rejects.
//!
//! Shared by `tests/differential.rs` and the fuzz targets (`#[path]` module).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use belabox_proc::ParseError;
use belabox_proc::diskstats::{DiscardStats, DiskStats, FlushStats};
use belabox_proc::loadavg::LoadAvg;
use belabox_proc::meminfo::MemInfo;
use belabox_proc::netdev::NetDev;
use belabox_proc::stat::{CpuId, CpuLine, CpuTimes};
use belabox_proc::uptime::Uptime;

fn malformed(line: usize, what: &'static str) -> ParseError {
    ParseError::Malformed { line, what }
}

enum Line<'a> {
    Complete(usize, &'a [u8]),
    Partial(&'a [u8]),
}

fn lines(buf: &[u8]) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut rest = buf;
    let mut number = 0;
    while !rest.is_empty() {
        number += 1;
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                out.push(Line::Complete(number, &rest[..i]));
                rest = &rest[i + 1..];
            }
            None => {
                out.push(Line::Partial(rest));
                break;
            }
        }
    }
    out
}

fn text(bytes: &[u8], line: usize) -> Result<&str, ParseError> {
    std::str::from_utf8(bytes).map_err(|_| malformed(line, "UTF-8"))
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_control() || c.is_whitespace())
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

fn parse_f64(s: &str) -> Option<f64> {
    let (int, frac) = match s.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (s, None),
    };
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || !frac.is_none_or(all_digits) {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn u64_field(tok: Option<&str>, line: usize, what: &'static str) -> Result<u64, ParseError> {
    tok.and_then(|t| parse_u64(t.as_bytes()))
        .ok_or(malformed(line, what))
}

fn u32_field(tok: Option<&str>, line: usize, what: &'static str) -> Result<u32, ParseError> {
    tok.and_then(|t| parse_u64(t.as_bytes()))
        .and_then(|v| u32::try_from(v).ok())
        .ok_or(malformed(line, what))
}

fn f64_field(tok: Option<&str>, line: usize, what: &'static str) -> Result<f64, ParseError> {
    tok.and_then(parse_f64).ok_or(malformed(line, what))
}

fn counters<'a>(
    toks: &mut impl Iterator<Item = &'a str>,
    names: &[&'static str],
    line: usize,
) -> Result<(Vec<u64>, usize), ParseError> {
    let mut values = vec![0u64; names.len()];
    let mut filled = 0;
    for ((slot, what), tok) in values.iter_mut().zip(names).zip(toks) {
        *slot = u64_field(Some(tok), line, what)?;
        filled += 1;
    }
    Ok((values, filled))
}

fn single_line(buf: &[u8]) -> Result<&str, ParseError> {
    let all = lines(buf);
    let line = match all.first() {
        Some(Line::Complete(_, bytes)) => *bytes,
        _ => return Err(ParseError::Incomplete),
    };
    if all.len() > 1 {
        return Err(malformed(2, "trailing data"));
    }
    text(line, 1)
}

// ---- /proc/stat ----

// The names errors use are the crate's own table: the oracle checks values and rules.
const CPU_COUNTERS: [&str; 10] = belabox_proc::stat::COUNTERS;

fn cpu_line(bytes: &[u8], line: usize) -> Result<CpuLine, ParseError> {
    let text = text(bytes, line)?;
    let mut toks = text.split_ascii_whitespace();
    let cpu = match toks.next().and_then(|label| label.strip_prefix("cpu")) {
        Some("") => CpuId::All,
        Some(n) => CpuId::Core(
            parse_u64(n.as_bytes())
                .and_then(|v| u16::try_from(v).ok())
                .ok_or(malformed(line, "cpu id"))?,
        ),
        None => return Err(malformed(line, "cpu id")),
    };
    let (v, filled) = counters(&mut toks, &CPU_COUNTERS, line)?;
    if filled < 4 {
        return Err(malformed(line, "counter count"));
    }
    Ok(CpuLine {
        cpu,
        times: CpuTimes {
            user: v[0],
            nice: v[1],
            system: v[2],
            idle: v[3],
            iowait: v[4],
            irq: v[5],
            softirq: v[6],
            steal: v[7],
            guest: v[8],
            guest_nice: v[9],
        },
    })
}

fn may_be_cpu_line(bytes: &[u8], complete: bool) -> bool {
    let start = bytes.trim_ascii_start();
    let label = start
        .split(u8::is_ascii_whitespace)
        .next()
        .unwrap_or_default();
    let label_cut = !complete && label.len() == start.len();
    label.starts_with(b"cpu") || (label_cut && b"cpu".starts_with(label))
}

pub fn cpu_lines(buf: &[u8]) -> Vec<Result<CpuLine, ParseError>> {
    let mut out = Vec::new();
    for line in lines(buf) {
        match line {
            Line::Complete(number, bytes) if may_be_cpu_line(bytes, true) => {
                out.push(cpu_line(bytes, number));
            }
            Line::Partial(bytes) if may_be_cpu_line(bytes, false) => {
                out.push(Err(ParseError::Incomplete));
            }
            _ => break,
        }
    }
    out
}

// ---- /proc/meminfo ----

pub fn meminfo(buf: &[u8]) -> Result<MemInfo, ParseError> {
    if buf.is_empty() {
        return Err(ParseError::Incomplete);
    }
    let mut info = MemInfo::default();
    for line in lines(buf) {
        let Line::Complete(number, bytes) = line else {
            return Err(ParseError::Incomplete);
        };
        let Some(colon) = bytes.iter().position(|&b| b == b':') else {
            return Err(malformed(number, "key"));
        };
        let (key, value) = (&bytes[..colon], &bytes[colon + 1..]);
        let (slot, what) = match key {
            b"MemTotal" => (&mut info.mem_total, "MemTotal"),
            b"MemFree" => (&mut info.mem_free, "MemFree"),
            b"MemAvailable" => (&mut info.mem_available, "MemAvailable"),
            b"Buffers" => (&mut info.buffers, "Buffers"),
            b"Cached" => (&mut info.cached, "Cached"),
            b"SwapTotal" => (&mut info.swap_total, "SwapTotal"),
            b"SwapFree" => (&mut info.swap_free, "SwapFree"),
            _ => continue,
        };
        if slot.is_some() {
            return Err(malformed(number, "duplicate key"));
        }
        let value = text(value, number)?;
        let mut toks = value.split_ascii_whitespace();
        let bytes = match (toks.next(), toks.next(), toks.next()) {
            (Some(n), Some("kB"), None) => {
                parse_u64(n.as_bytes()).and_then(|n| n.checked_mul(1024))
            }
            _ => None,
        };
        *slot = Some(bytes.ok_or(malformed(number, what))?);
        let all = [
            info.mem_total,
            info.mem_free,
            info.mem_available,
            info.buffers,
            info.cached,
            info.swap_total,
            info.swap_free,
        ];
        if all.iter().all(Option::is_some) {
            // The documented shortcut: nothing after the seventh key is read but the
            // last byte.
            return if buf.ends_with(b"\n") {
                Ok(info)
            } else {
                Err(ParseError::Incomplete)
            };
        }
    }
    Ok(info)
}

// ---- /proc/diskstats ----

// The names errors use are the crate's own table: the oracle checks values and rules.
const DISK_COUNTERS: [&str; 17] = belabox_proc::diskstats::COUNTERS;

fn disk_line(bytes: &[u8], line: usize) -> Result<DiskStats<'_>, ParseError> {
    let text = text(bytes, line)?;
    let mut toks = text.split_ascii_whitespace();
    let major = u32_field(toks.next(), line, "major")?;
    let minor = u32_field(toks.next(), line, "minor")?;
    let name = toks
        .next()
        .filter(|n| is_name(n))
        .ok_or(malformed(line, "name"))?;
    let (v, filled) = counters(&mut toks, &DISK_COUNTERS, line)?;
    let discard = DiscardStats {
        discards_completed: v[11],
        discards_merged: v[12],
        sectors_discarded: v[13],
        discard_time_ms: v[14],
    };
    let flush = FlushStats {
        flushes_completed: v[15],
        flush_time_ms: v[16],
    };
    let (discard, flush) = match (filled, toks.next().is_some()) {
        (11, false) => (None, None),
        (15, false) => (Some(discard), None),
        (17, _) => (Some(discard), Some(flush)),
        _ => return Err(malformed(line, "field count")),
    };
    Ok(DiskStats {
        major,
        minor,
        name,
        reads_completed: v[0],
        reads_merged: v[1],
        sectors_read: v[2],
        read_time_ms: v[3],
        writes_completed: v[4],
        writes_merged: v[5],
        sectors_written: v[6],
        write_time_ms: v[7],
        io_in_progress: v[8],
        io_time_ms: v[9],
        weighted_io_time_ms: v[10],
        discard,
        flush,
    })
}

/// The name of a line whose first three fields are a valid `major minor name`.
fn disk_head(bytes: &[u8]) -> Option<&str> {
    let mut toks = bytes
        .split(u8::is_ascii_whitespace)
        .filter(|t| !t.is_empty());
    let major = parse_u64(toks.next()?)?;
    let minor = parse_u64(toks.next()?)?;
    u32::try_from(major).ok()?;
    u32::try_from(minor).ok()?;
    std::str::from_utf8(toks.next()?)
        .ok()
        .filter(|n| is_name(n))
}

pub fn disk_lines_where(
    buf: &[u8],
    mut filter: impl FnMut(&str) -> bool,
) -> Vec<Result<DiskStats<'_>, ParseError>> {
    let mut out = Vec::new();
    for line in lines(buf) {
        match line {
            Line::Complete(number, bytes) => {
                if disk_head(bytes).is_some_and(|name| !filter(name)) {
                    continue;
                }
                out.push(disk_line(bytes, number));
            }
            Line::Partial(_) => out.push(Err(ParseError::Incomplete)),
        }
    }
    out
}

pub fn disk_lines(buf: &[u8]) -> Vec<Result<DiskStats<'_>, ParseError>> {
    disk_lines_where(buf, |_| true)
}

// ---- /proc/net/dev ----

// The names errors use are the crate's own table: the oracle checks values and rules.
const NET_COUNTERS: [&str; 16] = belabox_proc::netdev::COUNTERS;

fn net_line(bytes: &[u8], line: usize) -> Result<NetDev<'_>, ParseError> {
    let text = text(bytes, line)?;
    let (name, counters_text) = text.split_once(':').ok_or(malformed(line, "name"))?;
    let name = name.trim_start_matches(' ');
    if !is_name(name) {
        return Err(malformed(line, "name"));
    }
    let mut toks = counters_text.split_ascii_whitespace();
    let (v, filled) = counters(&mut toks, &NET_COUNTERS, line)?;
    if filled != 16 || toks.next().is_some() {
        return Err(malformed(line, "field count"));
    }
    Ok(NetDev {
        name,
        rx_bytes: v[0],
        rx_packets: v[1],
        rx_errs: v[2],
        rx_drop: v[3],
        rx_fifo: v[4],
        rx_frame: v[5],
        rx_compressed: v[6],
        rx_multicast: v[7],
        tx_bytes: v[8],
        tx_packets: v[9],
        tx_errs: v[10],
        tx_drop: v[11],
        tx_fifo: v[12],
        tx_colls: v[13],
        tx_carrier: v[14],
        tx_compressed: v[15],
    })
}

fn net_head(bytes: &[u8]) -> Option<&str> {
    let colon = bytes.iter().position(|&b| b == b':')?;
    let name = &bytes[..colon];
    let start = name.iter().position(|&b| b != b' ').unwrap_or(name.len());
    std::str::from_utf8(&name[start..])
        .ok()
        .filter(|n| is_name(n))
}

pub fn interfaces_where(
    buf: &[u8],
    mut filter: impl FnMut(&str) -> bool,
) -> Vec<Result<NetDev<'_>, ParseError>> {
    let all = lines(buf);
    let header_complete = all
        .iter()
        .take(2)
        .filter(|l| matches!(l, Line::Complete(..)))
        .count();
    if header_complete < 2 {
        return vec![Err(ParseError::Incomplete)];
    }
    let mut out = Vec::new();
    for line in all.into_iter().skip(2) {
        match line {
            Line::Complete(number, bytes) => {
                if net_head(bytes).is_some_and(|name| !filter(name)) {
                    continue;
                }
                out.push(net_line(bytes, number));
            }
            Line::Partial(_) => out.push(Err(ParseError::Incomplete)),
        }
    }
    out
}

pub fn interfaces(buf: &[u8]) -> Vec<Result<NetDev<'_>, ParseError>> {
    interfaces_where(buf, |_| true)
}

// ---- /proc/loadavg, /proc/uptime ----

pub fn loadavg(buf: &[u8]) -> Result<LoadAvg, ParseError> {
    let text = single_line(buf)?;
    let mut toks = text.split_ascii_whitespace();
    let load1 = f64_field(toks.next(), 1, "load1")?;
    let load5 = f64_field(toks.next(), 1, "load5")?;
    let load15 = f64_field(toks.next(), 1, "load15")?;
    let (running, total) = toks
        .next()
        .and_then(|t| t.split_once('/'))
        .ok_or(malformed(1, "running/total"))?;
    let running = u32_field(Some(running), 1, "running")?;
    let total = u32_field(Some(total), 1, "total")?;
    let last_pid = u32_field(toks.next(), 1, "last_pid")?;
    if toks.next().is_some() {
        return Err(malformed(1, "field count"));
    }
    Ok(LoadAvg {
        load1,
        load5,
        load15,
        running,
        total,
        last_pid,
    })
}

pub fn uptime(buf: &[u8]) -> Result<Uptime, ParseError> {
    let text = single_line(buf)?;
    let mut toks = text.split_ascii_whitespace();
    let uptime_seconds = f64_field(toks.next(), 1, "uptime")?;
    let idle_seconds = f64_field(toks.next(), 1, "idle")?;
    if toks.next().is_some() {
        return Err(malformed(1, "field count"));
    }
    Ok(Uptime {
        uptime_seconds,
        idle_seconds,
    })
}
