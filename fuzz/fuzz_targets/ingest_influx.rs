#![no_main]
//! The ingest listener's Influx line-protocol parser (src/ingest/influx.rs), included by path.
//! Properties: no panic; line numbers rise and name lines that exist; a yielded line has a
//! measurement and at least one field, its tags and fields never fail, every key is a non-empty
//! piece of the input; unescaping never panics and never grows a value.

mod common;

// The same module paths as in the agent (the line parsers use `super::lines`).
#[path = "../../src/ingest"]
mod ingest {
    #[allow(dead_code, unused_imports)]
    pub mod lines;
    #[allow(dead_code, unused_imports)]
    pub mod influx;
}

use ingest::influx::{FieldValue, lines};
use common::inside;
use libfuzzer_sys::fuzz_target;


fuzz_target!(|data: &[u8]| {
    let line_count = data.split(|&b| b == b'\n').count();
    let mut last = 0;
    for item in lines(data) {
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
                        ingest::influx::unescape(s, &mut out);
                        assert!(out.len() <= s.len() && inside(data, s));
                    }
                    fields += 1;
                }
                assert!(fields > 0);
                line.number
            }
            Err(e) => e.line,
        };
        assert!(n > last && n <= line_count, "line {n} after {last} of {line_count}");
        last = n;
    }
});
