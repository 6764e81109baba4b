#![no_main]
//! The ingest listener's Influx line-protocol parser (src/ingest/influx.rs), included by path.
//! Properties: no panic; line numbers rise and name lines that exist; a yielded line has a
//! measurement and at least one field, its tags and fields never fail, every key is a non-empty
//! piece of the input; unescaping never panics and never grows a value.

#[allow(dead_code)]
#[path = "../../src/ingest/influx.rs"]
mod influx;

use influx::{FieldValue, Lines};
use libfuzzer_sys::fuzz_target;

fn inside(outer: &[u8], part: &[u8]) -> bool {
    let (o, p) = (outer.as_ptr() as usize, part.as_ptr() as usize);
    p >= o && p + part.len() <= o + outer.len()
}

fuzz_target!(|data: &[u8]| {
    let lines = data.split(|&b| b == b'\n').count();
    let mut last = 0;
    for item in Lines::new(data) {
        let n = match item {
            Ok(line) => {
                assert!(!line.measurement.is_empty() && inside(data, line.measurement));
                for t in line.tags() {
                    let (k, v) = t.expect("a yielded line's tags parse");
                    assert!(!k.is_empty() && !v.is_empty() && inside(data, k) && inside(data, v));
                }
                let mut fields = 0;
                for f in line.fields() {
                    let (k, v) = f.expect("a yielded line's fields parse");
                    assert!(!k.is_empty() && inside(data, k));
                    if let FieldValue::Str(s) = v {
                        let mut out = Vec::new();
                        influx::unescape(s, &mut out);
                        assert!(out.len() <= s.len() && inside(data, s));
                    }
                    fields += 1;
                }
                assert!(fields > 0);
                line.number
            }
            Err(e) => e.line,
        };
        assert!(n > last && n <= lines, "line {n} after {last} of {lines}");
        last = n;
    }
});
