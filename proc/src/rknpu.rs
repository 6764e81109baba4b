//! RK3588 NPU load per core: `/sys/kernel/debug/rknpu/load` (debugfs, root only; also
//! `/proc/rknpu/load` with `CONFIG_ROCKCHIP_RKNPU_PROC_FS`).
//!
//! ```text
//! NPU load:  Core0: 34%, Core1:  0%, Core2:  7%,
//! NPU load: 25%
//! ```
//! `"NPU load: "`, then per core `" Core%d: "` and `"%2.d%%,"` when the NPU has more
//! than one core (RK3588: three), or just `"%2.d%%"` for a single-core NPU (RK356x),
//! then `'\n'`. The kernel's `%2.d` always prints at least one digit (lib/vsprintf.c
//! `number()` writes `'0'` for zero whatever the precision). Percent busy over
//! the driver's load interval, per core; not clamped to 100.
//!
//! The file is one line: [`parse`] validates it whole (a view in the smoltcp style)
//! and [`NpuLoad::cores`] then yields every core without failing. A buffer without the
//! final `'\n'` is `Incomplete`; anything else wrong is Malformed on line 1: `header`
//! (not `NPU load:`), `core` (a `CoreN:` label out of order: the driver prints
//! `Core0`..`CoreN-1`), `load` (not `N%,` / `N%`), `core count` (no core, or a
//! single-core value followed by more), or `trailing data` (a second line).
//!
//! Format: orangepi-xunlong/linux-orangepi drivers/rknpu/rknpu_debugger.c:39-76
//! `rknpu_load_show` (commit daf27963): `seq_puts(m, "NPU load: ")` (line 51),
//! `seq_printf(m, " Core%d: ", i)` (56), `"%2.d%%,"` or `"%2.d%%"` of an `int` (69, 71),
//! `seq_puts(m, "\n")` (73). A negative `load` would print `-N` and is Malformed.

use core::iter::FusedIterator;

use crate::ParseError;
use crate::fields::{self, Fields, malformed};

/// One core's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NpuCore {
    /// 0-based; a single-core NPU's one core is 0.
    pub index: u32,
    /// Percent busy; may exceed 100.
    pub percent: u32,
}

/// A validated `load` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NpuLoad<'a> {
    /// The line after `NPU load:`.
    cores: &'a [u8],
    count: usize,
}

impl<'a> NpuLoad<'a> {
    /// Every core, in file order.
    pub fn cores(&self) -> NpuCores<'a> {
        NpuCores {
            fields: Fields::new(self.cores),
            next: 0,
        }
    }

    /// How many cores the line lists (at least 1).
    #[must_use]
    pub const fn len(&self) -> usize {
        self.count
    }

    /// Always false: a valid line lists at least one core.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Parses the one `'\n'`-terminated line.
pub fn parse(buf: &[u8]) -> Result<NpuLoad<'_>, ParseError> {
    let line = fields::single_line(buf)?;
    parse_line(line).map_err(|e| fields::utf8_first(line, 1, e))
}

fn parse_line(line: &[u8]) -> Result<NpuLoad<'_>, ParseError> {
    let mut fields = Fields::new(line);
    if fields.token() != Some(b"NPU") || fields.token() != Some(b"load:") {
        return Err(malformed(1, "header"));
    }
    let cores = fields.rest();
    let mut count = 0usize;
    let mut walk = Fields::new(cores);
    while let Some((_, labelled)) = next_core(&mut walk, count)? {
        count = count.saturating_add(1);
        if !labelled {
            // The single-core form: nothing may follow.
            if !walk.at_end() {
                return Err(malformed(1, "core count"));
            }
            break;
        }
    }
    if count == 0 {
        return Err(malformed(1, "core count"));
    }
    Ok(NpuLoad { cores, count })
}

/// The core at `position` and whether it had a `CoreN:` label (false: the single-core
/// form), or None at the end.
fn next_core(
    fields: &mut Fields<'_>,
    position: usize,
) -> Result<Option<(NpuCore, bool)>, ParseError> {
    let Some(token) = fields.token() else {
        return Ok(None);
    };
    let Some(label) = token.strip_prefix(b"Core") else {
        // `N%`: only as the one and only value.
        if position != 0 {
            return Err(malformed(1, "core"));
        }
        let percent = percent(token, b"%")?;
        return Ok(Some((NpuCore { index: 0, percent }, false)));
    };
    let index = label
        .strip_suffix(b":")
        .and_then(fields::parse_u32)
        .filter(|&i| usize::try_from(i).is_ok_and(|i| i == position))
        .ok_or(malformed(1, "core"))?;
    let percent = fields
        .token()
        .ok_or(malformed(1, "load"))
        .and_then(|t| percent(t, b"%,"))?;
    Ok(Some((NpuCore { index, percent }, true)))
}

fn percent(token: &[u8], suffix: &[u8]) -> Result<u32, ParseError> {
    token
        .strip_suffix(suffix)
        .and_then(fields::parse_u32)
        .ok_or(malformed(1, "load"))
}

/// Iterator returned by [`NpuLoad::cores`].
#[must_use = "iterators are lazy"]
#[derive(Debug, Clone)]
pub struct NpuCores<'a> {
    fields: Fields<'a>,
    next: usize,
}

impl Iterator for NpuCores<'_> {
    type Item = NpuCore;

    fn next(&mut self) -> Option<NpuCore> {
        // The line was validated by `parse`: an error cannot happen here.
        let (core, _) = next_core(&mut self.fields, self.next).ok().flatten()?;
        self.next = self.next.saturating_add(1);
        Some(core)
    }
}

impl FusedIterator for NpuCores<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    const RK3588: &[u8] =
        include_bytes!("../../tests/fixtures/soc/rk3588-vendor/sys/kernel/debug/rknpu/load");

    fn cores(buf: &[u8]) -> Vec<(u32, u32)> {
        let load = parse(buf).unwrap();
        let all: Vec<_> = load.cores().map(|c| (c.index, c.percent)).collect();
        assert_eq!(all.len(), load.len());
        assert!(!load.is_empty());
        all
    }

    #[test]
    fn fixture() {
        assert_eq!(cores(RK3588), [(0, 34), (1, 0), (2, 7)]);
    }

    #[test]
    fn single_core_and_wide_values() {
        assert_eq!(cores(b"NPU load: 25%\n"), [(0, 25)]);
        assert_eq!(cores(b"NPU load:  0%\n"), [(0, 0)]);
        assert_eq!(cores(b"NPU load: 100%\n"), [(0, 100)]);
        assert_eq!(cores(b"NPU load:  Core0: 100%,\n"), [(0, 100)]);
        assert_eq!(
            cores(b"NPU load:\tCore0:\t4294967295%,  Core1: 0%,\n"),
            [(0, u32::MAX), (1, 0)]
        );
    }

    #[test]
    fn every_cut_is_incomplete() {
        for cut in 0..RK3588.len() {
            assert_eq!(parse(&RK3588[..cut]), Err(ParseError::Incomplete), "{cut}");
        }
    }

    #[test]
    fn hostile() {
        let m = |what| Err(malformed(1, what));
        assert_eq!(parse(b"\n"), m("header"));
        assert_eq!(parse(b"NPU\n"), m("header"));
        assert_eq!(parse(b"npu load: 25%\n"), m("header"));
        assert_eq!(parse(b"NPU load:25%\n"), m("header"));
        assert_eq!(parse(b"NPU load:\n"), m("core count"));
        assert_eq!(parse(b"NPU load: 25% 30%\n"), m("core count"));
        assert_eq!(parse(b"NPU load: 25% Core1: 3%,\n"), m("core count"));
        assert_eq!(parse(b"NPU load:  Core1:  0%,\n"), m("core"));
        assert_eq!(parse(b"NPU load:  Core0: 1%, Core0: 2%,\n"), m("core"));
        assert_eq!(parse(b"NPU load:  Core0: 1%, 2%\n"), m("core"));
        assert_eq!(parse(b"NPU load:  Core0 1%,\n"), m("core"));
        assert_eq!(parse(b"NPU load:  Core: 1%,\n"), m("core"));
        assert_eq!(parse(b"NPU load:  Core-1: 1%,\n"), m("core"));
        assert_eq!(parse(b"NPU load:  Core99999999999: 1%,\n"), m("core"));
        assert_eq!(parse(b"NPU load:  Core0:\n"), m("load"));
        assert_eq!(parse(b"NPU load:  Core0: 1%\n"), m("load"));
        assert_eq!(parse(b"NPU load:  Core0: %,\n"), m("load"));
        assert_eq!(parse(b"NPU load:  Core0: -1%,\n"), m("load"));
        assert_eq!(parse(b"NPU load:  Core0: 4294967296%,\n"), m("load"));
        assert_eq!(parse(b"NPU load: 25\n"), m("load"));
        assert_eq!(parse(b"NPU load: 2.5%\n"), m("load"));
        assert_eq!(parse(b"NPU load: 25%,\n"), m("load"));
        assert_eq!(parse(b"NPU load: 2\x005%\n"), m("load"));
        assert_eq!(parse(b"NPU load: \xff%\n"), m("UTF-8"));
        assert_eq!(
            parse(b"NPU load: 25%\n\n"),
            Err(malformed(2, "trailing data"))
        );
    }
}
