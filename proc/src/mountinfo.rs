//! `/proc/<pid>/mountinfo`: one line per mount, as seen from that process's root.
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! (1)(2)(3)   (4)   (5)      (6)      (7)   (8) (9)   (10)         (11)
//! ```
//! (1) mount id, (2) parent id, (3) `major:minor`, (4) root of the mount within its
//! filesystem, (5) mount point, (6) per-mount options, (7) zero or more optional fields
//! (`shared:N`, `master:N`, …), (8) the separator `-`, (9) filesystem type, (10) source,
//! (11) per-superblock options (see proc(5)).
//!
//! The kernel escapes space, tab, newline and backslash in (4), (5), (9) and (10) as
//! three octal digits (`\040` for a space), so fields never contain whitespace. Those
//! fields are returned as [`Escaped`] views; [`Escaped::decode_into`] writes the real
//! bytes into a caller buffer (a path is arbitrary bytes, not necessarily UTF-8).

use core::iter::FusedIterator;

use crate::ParseError;
use crate::fields::{self, Fields, Line, Lines, malformed};

/// One mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountInfo<'a> {
    pub mount_id: u32,
    pub parent_id: u32,
    pub major: u32,
    pub minor: u32,
    /// The directory of the filesystem that is mounted (`/` unless a bind mount).
    pub root: Escaped<'a>,
    pub mount_point: Escaped<'a>,
    /// Per-mount options (`rw,relatime`), unescaped by the kernel.
    pub options: &'a str,
    /// e.g. `ext4`, `fuse.sshfs`.
    pub fs_type: Escaped<'a>,
    /// e.g. `/dev/mmcblk0p2`, `tmpfs`, `server:/export`.
    pub source: Escaped<'a>,
    /// Per-superblock options.
    pub super_options: &'a str,
}

/// A field as the kernel printed it: non-empty, without whitespace, `\ooo` octal escapes
/// still in. [`Escaped::raw`] is already UTF-8 (the whole line was checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escaped<'a> {
    raw: &'a str,
}

/// Why [`Escaped::decode_into`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The decoded bytes need more room than the buffer has; `needed` is their length.
    TooLong { needed: usize },
}

impl<'a> Escaped<'a> {
    /// The field as printed, escapes included.
    #[must_use]
    pub const fn raw(&self) -> &'a str {
        self.raw
    }

    /// True if the field holds no escape: then [`Self::raw`] is the decoded value.
    #[must_use]
    pub fn is_plain(&self) -> bool {
        !self.raw.as_bytes().contains(&b'\\')
    }

    /// The decoded bytes, one at a time: `\ooo` (three octal digits, value ≤ 0o377)
    /// becomes that byte; a backslash not followed by such an escape is kept as is (the
    /// kernel never prints one, and keeping it loses nothing).
    pub fn bytes(&self) -> DecodedBytes<'a> {
        DecodedBytes {
            rest: self.raw.as_bytes(),
        }
    }

    /// The length of the decoded value in bytes.
    #[must_use]
    pub fn decoded_len(&self) -> usize {
        self.bytes().count()
    }

    /// Writes the decoded value into the start of `buf` and returns that part.
    pub fn decode_into<'b>(&self, buf: &'b mut [u8]) -> Result<&'b [u8], DecodeError> {
        let mut len = 0usize;
        for b in self.bytes() {
            match buf.get_mut(len) {
                Some(slot) => *slot = b,
                None => {
                    return Err(DecodeError::TooLong {
                        needed: self.decoded_len(),
                    });
                }
            }
            len += 1;
        }
        Ok(buf.get(..len).unwrap_or_default())
    }
}

/// Iterator returned by [`Escaped::bytes`].
#[derive(Debug, Clone)]
pub struct DecodedBytes<'a> {
    rest: &'a [u8],
}

/// The value of `\ooo` at the start of `s`, if `s` starts with one.
fn octal_escape(s: &[u8]) -> Option<u8> {
    let (&[b'\\', a, b, c], _) = s.split_first_chunk::<4>()? else {
        return None;
    };
    let digit = |d: u8| (b'0'..=b'7').contains(&d).then(|| d - b'0');
    let (a, b, c) = (digit(a)?, digit(b)?, digit(c)?);
    // a ≤ 3 keeps the value within a byte (\400 and above are not escapes); checked before
    // the shift, which would overflow otherwise.
    if a > 3 {
        return None;
    }
    Some((a << 6) | (b << 3) | c)
}

impl Iterator for DecodedBytes<'_> {
    type Item = u8;

    #[inline]
    fn next(&mut self) -> Option<u8> {
        if let Some(b) = octal_escape(self.rest) {
            self.rest = self.rest.get(4..).unwrap_or_default();
            return Some(b);
        }
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }
}

impl FusedIterator for DecodedBytes<'_> {}

/// Iterates the mounts. A malformed line yields `Err` and iteration continues; an
/// unterminated last line yields `Err(Incomplete)` and ends it.
pub fn mounts(buf: &[u8]) -> MountIter<'_> {
    MountIter {
        lines: Lines::new(buf),
    }
}

/// Iterator returned by [`mounts`].
#[must_use = "iterators are lazy"]
#[derive(Debug, Clone)]
pub struct MountIter<'a> {
    lines: Lines<'a>,
}

impl<'a> Iterator for MountIter<'a> {
    type Item = Result<MountInfo<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.lines.next()? {
            Line::Complete { number, bytes } => Some(parse_line(bytes, number)),
            Line::Partial { .. } => Some(Err(ParseError::Incomplete)),
        }
    }
}

impl FusedIterator for MountIter<'_> {}

fn escaped<'a>(
    fields: &mut Fields<'a>,
    line: usize,
    what: &'static str,
) -> Result<Escaped<'a>, ParseError> {
    let raw = fields.token().ok_or(malformed(line, what))?;
    // The line was validated as UTF-8 and a token is split on ASCII bytes: still UTF-8.
    let raw = core::str::from_utf8(raw).map_err(|_| malformed(line, "UTF-8"))?;
    Ok(Escaped { raw })
}

fn text_field<'a>(
    fields: &mut Fields<'a>,
    line: usize,
    what: &'static str,
) -> Result<&'a str, ParseError> {
    Ok(escaped(fields, line, what)?.raw)
}

fn parse_line(bytes: &[u8], line: usize) -> Result<MountInfo<'_>, ParseError> {
    // Mount points are arbitrary bytes, but the kernel escapes only four of them: a
    // non-UTF-8 path makes a non-UTF-8 line, reported as such.
    fields::text(bytes, line)?;
    let mut f = Fields::new(bytes);
    let mount_id = f.u32_field(line, "mount id")?;
    let parent_id = f.u32_field(line, "parent id")?;
    let dev = f.token().ok_or(malformed(line, "major:minor"))?;
    let (major, minor) = fields::find_byte::<b':'>(dev)
        .and_then(|i| dev.split_at_checked(i))
        .and_then(|(ma, mi)| Some((fields::parse_u32(ma)?, fields::parse_u32(mi.get(1..)?)?)))
        .ok_or(malformed(line, "major:minor"))?;
    let root = escaped(&mut f, line, "root")?;
    let mount_point = escaped(&mut f, line, "mount point")?;
    let options = text_field(&mut f, line, "mount options")?;
    // Optional fields until the lone "-" (at most a handful; the kernel adds new tags).
    loop {
        match f.token() {
            Some(b"-") => break,
            Some(_) => {}
            None => return Err(malformed(line, "separator")),
        }
    }
    let fs_type = escaped(&mut f, line, "filesystem type")?;
    let source = escaped(&mut f, line, "source")?;
    let super_options = text_field(&mut f, line, "super options")?;
    if !f.at_end() {
        return Err(malformed(line, "field count"));
    }
    Ok(MountInfo {
        mount_id,
        parent_id,
        major,
        minor,
        root,
        mount_point,
        options,
        fs_type,
        source,
        super_options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RK3588: &[u8] = include_bytes!("../../tests/fixtures/rk3588-rock5b/proc/self/mountinfo");
    const JETSON: &[u8] =
        include_bytes!("../../tests/fixtures/jetson-nano-l4t32/proc/self/mountinfo");

    fn all(buf: &[u8]) -> Vec<Result<MountInfo<'_>, ParseError>> {
        mounts(buf).collect()
    }

    fn decoded(e: Escaped<'_>) -> Vec<u8> {
        let mut buf = [0u8; 256];
        e.decode_into(&mut buf).unwrap().to_vec()
    }

    #[test]
    fn parses_a_line_with_optional_fields() {
        let line = b"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue\n";
        let m = all(line).pop().unwrap().unwrap();
        assert_eq!((m.mount_id, m.parent_id, m.major, m.minor), (36, 35, 98, 0));
        assert_eq!(m.root.raw(), "/mnt1");
        assert_eq!(m.mount_point.raw(), "/mnt2");
        assert_eq!(m.options, "rw,noatime");
        assert_eq!(m.fs_type.raw(), "ext3");
        assert_eq!(m.source.raw(), "/dev/root");
        assert_eq!(m.super_options, "rw,errors=continue");
        // No optional fields at all.
        let line = b"22 1 179:2 / / rw,relatime - ext4 /dev/mmcblk0p2 rw\n";
        let m = all(line).pop().unwrap().unwrap();
        assert_eq!(m.mount_point.raw(), "/");
        assert_eq!(m.fs_type.raw(), "ext4");
    }

    #[test]
    fn octal_escapes_are_decoded_into_the_caller_buffer() {
        let line = b"40 22 8:1 / /media/My\\040Disk\\011x\\134y rw - vfat /dev/sda1 rw\n";
        let m = all(line).pop().unwrap().unwrap();
        assert!(!m.mount_point.is_plain());
        assert_eq!(m.mount_point.raw(), "/media/My\\040Disk\\011x\\134y");
        assert_eq!(decoded(m.mount_point), b"/media/My Disk\tx\\y");
        assert_eq!(m.mount_point.decoded_len(), 18);
        // Too small: an error with the length needed, never a cut value.
        let mut small = [0u8; 5];
        assert_eq!(
            m.mount_point.decode_into(&mut small),
            Err(DecodeError::TooLong { needed: 18 })
        );
        // Exactly large enough.
        let mut exact = [0u8; 18];
        assert_eq!(
            m.mount_point.decode_into(&mut exact).unwrap(),
            b"/media/My Disk\tx\\y"
        );
        // Not escapes: kept as printed.
        for (raw, want) in [
            ("/a\\", &b"/a\\"[..]),
            ("/a\\04", b"/a\\04"),
            ("/a\\400", b"/a\\400"),
            ("/a\\08x", b"/a\\08x"),
            ("\\377", b"\xff"),
        ] {
            assert_eq!(decoded(Escaped { raw }), want, "{raw}");
        }
    }

    #[test]
    fn malformed_lines_are_reported_and_skipped() {
        let buf = b"x 1 0:1 / /a rw - ext4 a rw\n\
                    2 1 01 / /b rw - ext4 b rw\n\
                    3 1 0:1 / /c rw shared:1 ext4 c rw\n\
                    4 1 0:1 / /d rw - ext4 d rw extra\n\
                    5 1 0:1 / /e rw - ext4 e\n\
                    6 1 0:1 / /f rw - ext4 f rw\n\
                    7 1 0:1 / /g rw - ext4 g";
        let got = all(buf);
        let what: Vec<_> = got
            .iter()
            .map(|r| match r {
                Ok(m) => m.mount_point.raw(),
                Err(ParseError::Malformed { what, .. }) => what,
                Err(ParseError::Incomplete) => "incomplete",
            })
            .collect();
        assert_eq!(
            what,
            [
                "mount id",
                "major:minor",
                "separator",
                "field count",
                "super options",
                "/f",
                "incomplete"
            ]
        );
        assert!(matches!(got[1], Err(ParseError::Malformed { line: 2, .. })));
        assert_eq!(
            all(b"1 1 0:1 / /\xff rw - ext4 a rw\n")[0],
            Err(ParseError::Malformed {
                line: 1,
                what: "UTF-8"
            })
        );
        assert!(all(b"").is_empty());
    }

    #[test]
    fn board_fixtures() {
        for (board, buf, root_source) in [
            ("rk3588", RK3588, "/dev/mmcblk0p2"),
            ("jetson", JETSON, "/dev/mmcblk0p1"),
        ] {
            let got: Vec<_> = all(buf).into_iter().map(Result::unwrap).collect();
            assert!(got.len() > 15, "{board}");
            let root = got
                .iter()
                .find(|m| m.mount_point.raw() == "/")
                .expect("root");
            assert_eq!(root.fs_type.raw(), "ext4", "{board}");
            assert_eq!(root.source.raw(), root_source, "{board}");
            assert!(got.iter().any(|m| m.fs_type.raw() == "proc"), "{board}");
        }
    }
}
