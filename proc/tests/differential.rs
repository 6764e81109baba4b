//! The byte-level parsers return exactly what the straightforward str-based ones they
//! replaced return (`reference/`: UTF-8 check of the whole line, `split_ascii_whitespace`,
//! checked digit-by-digit numbers), values and errors alike, down to the line number
//! and the field named:
//! - on every fixture, every cut of every fixture, and hand-picked hostile lines;
//! - on 6 000 seeded random mutations of the fixtures (bytes replaced, inserted,
//!   deleted; lines duplicated; digit runs stretched past u64) per parser;
//! - for the `_where` forms, with filters that accept all, none, or some names.
//!
//! The fuzz targets run the same comparison on arbitrary input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod reference;

use belabox_proc::{diskstats, loadavg, meminfo, netdev, stat, uptime};

const BOARDS: [&str; 2] = ["rk3588-rock5b", "jetson-nano-l4t32"];

fn fixture(board: &str, file: &str) -> Vec<u8> {
    let path = format!(
        "{}/../tests/fixtures/{board}/proc/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn filters() -> [fn(&str) -> bool; 4] {
    [
        |_| true,
        |_| false,
        |n| n.len() % 2 == 0,
        |n| n.starts_with('s') || n.starts_with('e') || n.starts_with('m'),
    ]
}

/// `got == want`, showing the input on failure.
#[track_caller]
fn same<T: PartialEq + std::fmt::Debug>(got: T, want: T, buf: &[u8]) {
    assert_eq!(got, want, "{:?}", String::from_utf8_lossy(buf));
}

/// A filtering parser: its plain form (got, want) and its `_where` form
/// under every filter of [`filters`], each against the reference's.
fn same_where<T: PartialEq + std::fmt::Debug>(
    buf: &[u8],
    (got, want): (Vec<T>, Vec<T>),
    got_where: impl Fn(fn(&str) -> bool) -> Vec<T>,
    want_where: impl Fn(fn(&str) -> bool) -> Vec<T>,
) {
    same(got, want, buf);
    for filter in filters() {
        same(got_where(filter), want_where(filter), buf);
    }
}

/// Every comparison for one input.
fn check(file: &str, buf: &[u8]) {
    match file {
        "stat" => same(
            stat::cpu_lines(buf).collect(),
            reference::cpu_lines(buf),
            buf,
        ),
        "meminfo" => same(meminfo::parse(buf), reference::meminfo(buf), buf),
        "diskstats" => same_where(
            buf,
            (diskstats::lines(buf).collect(), reference::disk_lines(buf)),
            |filter| diskstats::lines_where(buf, filter).collect(),
            |filter| reference::disk_lines_where(buf, filter),
        ),
        "net/dev" => same_where(
            buf,
            (
                netdev::interfaces(buf).collect(),
                reference::interfaces(buf),
            ),
            |filter| netdev::interfaces_where(buf, filter).collect(),
            |filter| reference::interfaces_where(buf, filter),
        ),
        "loadavg" => same(loadavg::parse(buf), reference::loadavg(buf), buf),
        "uptime" => same(uptime::parse(buf), reference::uptime(buf), buf),
        _ => unreachable!("{file}"),
    }
}

const FILES: [&str; 6] = [
    "stat",
    "meminfo",
    "diskstats",
    "net/dev",
    "loadavg",
    "uptime",
];

#[test]
fn fixtures_and_every_cut() {
    for board in BOARDS {
        for file in FILES {
            let buf = fixture(board, file);
            for cut in 0..=buf.len() {
                check(file, &buf[..cut]);
            }
        }
    }
}

#[test]
fn hostile_lines() {
    let lines: &[&[u8]] = &[
        b"",
        b"\n",
        b" \n",
        b"\t\x0c\r\n",
        b"\x0b\n",
        b"cpu 1 2 3 4\n",
        b"cpu 1 2 3 4\r\n",
        b"cpu\t1\t2\t3\t4\x0c5\n",
        b"cpu 1 2 3 4 5 6 7 8 9 10 \xff\n",
        b"cpu 1 2 3 4 5 6 7 8 9 10 x \xc3\xa9\n",
        b"cpu 1 2 3 \xff\n",
        b"cpu\xff 1 2 3 4\n",
        b"cpu1 00000000000000000000000000001 2 3 4\n",
        b"cpu1 18446744073709551615 18446744073709551616 3 4\n",
        b"cpu1 99999999999999999999 3 4 5\n",
        b"cpu65535 1 2 3 4\ncpu65536 1 2 3 4\n",
        b"  cpu 1 2 3 4\n cp",
        b"MemTotal: 1 kB\nMemTotal: 2 kB\n",
        b"MemTotal:1 kB\n",
        b"MemTotal: 1kB\n",
        b"MemTotal: 1 kB \r\n",
        b"MemTotal: \xff kB\n",
        b"MemTotal: 1 kB\nMemFree: 1 kB\nMemAvailable: 1 kB\nBuffers: 1 kB\nCached: 1 kB\n\
SwapTotal: 1 kB\nSwapFree: 1 kB\nMemTotal: x\ngarbage\n",
        b"MemTotal: 1 kB\nMemFree: 1 kB\nMemAvailable: 1 kB\nBuffers: 1 kB\nCached: 1 kB\n\
SwapTotal: 1 kB\nSwapFree: 1 kB\ncut",
        b"8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n",
        b"8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 \xff\xfe\n",
        b"8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\xff\n",
        b"8 0 sd\xc3\xa9 1 2 3 4 5 6 7 8 9 10 11\n",
        b"8 0 sda\x85 1 2 3 4 5 6 7 8 9 10 11\n",
        b"8 0 sda 1 2 3 4 5 6 7 8 9 10 \xff\n",
        b"8 x sda 1 2 \xff\n",
        b"4294967295 4294967296 sda 1 2 3 4 5 6 7 8 9 10 11\n",
        b"8 0 sdb 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22\n",
        b"8 0 sdb 11111111111111111111 2 3 4 5 6 7 8 9 10 11\n",
        b"8 0 sdb 1 2 3 4 5 6 7 8 9 10 1-1\n",
        b"8 0 sdb 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17x\n",
        b"h\nh\n  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
        b"h\nh\n\teth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
        b"h\nh\n  eth0:1  2   3    4     5      6       7        8         9          10 11 12 13 14 15 16\n",
        b"h\nh\neth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 \xff\n",
        b"h\nh\neth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\xff\n",
        b"h\nh\neth\xff: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
        b"h\nh\nwl\xc3\xa4n0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
        b"h\nh\na:b: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
        b"h\nh\neth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16        \n",
        b"h\nh\neth0:                                      1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
        b"h\nh\neth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16        ",
        b"0.52 0.61 0.58 2/387 23456\n",
        b"0.1 0.2 0.3 1/1 1\n",
        b"123456789012345.5 0.000000000000000000001 9007199254740993 1/1 1\n",
        b"1.2 3.4\n",
        b"0.30000000000000004 1e3\n",
        b"00000000000000000000000.5 1.00000000000000000000000000000000000001\n",
    ];
    for buf in lines {
        for file in FILES {
            check(file, buf);
        }
    }
}

/// xorshift64*: a fixed seed makes every failure reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[u8] = b" \t\n\r\x0c\x0b0123456789:-+./xkBcpu\x00\x7f\x80\xff\xc3\xa9\x85";

fn mutate(rng: &mut Rng, buf: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(buf.len() + 1);
        let byte = INTERESTING[rng.below(INTERESTING.len())];
        match rng.below(7) {
            0 | 1 if at < buf.len() => buf[at] = byte,
            2 => buf.insert(at, byte),
            3 if at < buf.len() => {
                buf.remove(at);
            }
            4 => {
                let digits = 18 + rng.below(4);
                let run: Vec<u8> = (0..digits).map(|_| b'0' + rng.below(10) as u8).collect();
                buf.splice(at..at, run);
            }
            5 => {
                // Duplicate the line that holds `at`.
                let start = buf[..at]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let end = buf[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(buf.len(), |i| at + i + 1);
                let line = buf[start..end].to_vec();
                buf.splice(end..end, line);
            }
            _ => buf.truncate(at),
        }
    }
}

#[test]
fn random_mutations() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for file in FILES {
        for board in BOARDS {
            let base = fixture(board, file);
            for _ in 0..3_000 {
                let mut buf = base.clone();
                mutate(&mut rng, &mut buf);
                check(file, &buf);
            }
        }
    }
}
