#![no_main]
//! The modem collector's D-Bus input (src/dbus/wire.rs and src/collect/modem/convert.rs, included
//! by path: both are pure). The first byte picks the mode: even, `data[1..]` is a whole message
//! (`parse_message`); odd, `data[1]` is the length of a signature that follows, then a body read
//! by it (either byte order). Whatever decodes is converted as a GetManagedObjects reply and as
//! Bearer.Stats. Properties: no panic; at most MAX_MODEMS readings, each with a non-empty label
//! of at most 32 bytes, labels unique; a decoded signature re-checks; no reading of a message
//! that did not decode.

#[allow(dead_code)]
#[path = "../../src/dbus/wire.rs"]
mod wire;
#[allow(dead_code)]
#[path = "../../src/collect/modem/convert.rs"]
mod convert;
// The paths convert.rs names (`crate::dbus::wire`), as in the agent.
mod dbus {
    pub(crate) use super::wire;
}

use convert::{Counts, MAX_MODEMS, read_bearer_stats, read_managed_objects};
use dbus::wire::{Reader, Value, check_signature, parse_message};
use libfuzzer_sys::fuzz_target;

fn convert(body: &[Value]) {
    let mut out = heapless::Vec::new();
    read_managed_objects(body, &mut out);
    assert!(out.len() <= MAX_MODEMS);
    for (i, r) in out.iter().enumerate() {
        assert!(!r.label.is_empty() && r.label.len() <= 32);
        assert!(out[..i].iter().all(|o| o.label != r.label));
        assert!(r.quality.is_none_or(|q| (0.0..=100.0).contains(&q)));
        assert!(r.signal.iter().flatten().all(|v| v.is_nan() || v.is_finite()));
    }
    let mut counts = Counts::default();
    for v in body {
        let _ = read_bearer_stats(v, &mut counts);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(m) = parse_message(rest) {
            convert(&m.body);
        }
        return;
    }
    let Some((&n, rest)) = rest.split_first() else {
        return;
    };
    let n = usize::from(n).min(rest.len());
    let (sig, body) = rest.split_at(n);
    if let Ok(values) = Reader::new(body, 0, mode & 2 == 0).values(sig) {
        assert!(check_signature(sig).is_ok());
        convert(&values);
    }
});
