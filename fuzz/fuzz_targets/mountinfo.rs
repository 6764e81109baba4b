#![no_main]

mod common;

use std::hint::black_box;

use belabox_proc::mountinfo::{self, DecodeError, Escaped};
use libfuzzer_sys::fuzz_target;

/// Decoding never grows a field, fills a large enough buffer exactly, and refuses a
/// small one with the length it needs.
fn check_escaped(e: Escaped<'_>, data: &[u8]) {
    let raw = e.raw();
    assert!(!raw.is_empty());
    assert!(!raw.bytes().any(|b| b.is_ascii_whitespace()));
    assert!(data.windows(raw.len()).any(|w| w == raw.as_bytes()));
    let len = e.decoded_len();
    assert!(len <= raw.len());
    assert_eq!(e.is_plain(), !raw.contains('\\'));
    if e.is_plain() {
        assert_eq!(len, raw.len());
    }
    let mut buf = [0u8; 256];
    match e.decode_into(&mut buf) {
        Ok(d) => {
            assert_eq!(d.len(), len);
            assert!(d.iter().copied().eq(e.bytes()));
        }
        Err(DecodeError::TooLong { needed }) => {
            assert_eq!(needed, len);
            assert!(len > buf.len());
        }
    }
    if len > 0 {
        let mut small = vec![0u8; len - 1];
        assert_eq!(
            e.decode_into(&mut small),
            Err(DecodeError::TooLong { needed: len })
        );
    }
}

fuzz_target!(|data: &[u8]| {
    common::drain(mountinfo::mounts(data), data, |m| {
        for e in [m.root, m.mount_point, m.fs_type, m.source] {
            check_escaped(e, data);
        }
        assert!(!m.options.is_empty() && !m.super_options.is_empty());
        black_box(m);
    });
});
