#![no_main]
//! The ingest listener's Prometheus text parser (src/ingest/prom_text.rs), included by path.
//! Properties: no panic; line numbers rise and name lines that exist; a yielded line's labels
//! never fail and every name and raw value is a piece of the input; a refused line ends nothing
//! else (the iterator goes on); unescaping never panics and never grows a value.

mod common;

// The same module paths as in the agent (the line parsers use `super::lines`).
#[path = "../../src/ingest"]
mod ingest {
    #[allow(dead_code, unused_imports)]
    pub mod lines;
    #[allow(dead_code, unused_imports)]
    pub mod prom_text;
}

use common::inside;
use libfuzzer_sys::fuzz_target;
use ingest::prom_text::lines;


fuzz_target!(|data: &[u8]| {
    let line_count = data.split(|&b| b == b'\n').count();
    let mut last = 0;
    for item in lines(data) {
        let n = match item {
            Ok(line) => {
                assert!(!line.name.is_empty() && inside(data, line.name));
                for l in line.labels() {
                    let (k, v) = l.expect("a yielded line's labels parse");
                    assert!(!k.is_empty() && inside(data, k) && inside(data, v));
                    let mut out = Vec::new();
                    ingest::prom_text::unescape(v, &mut out);
                    assert!(out.len() <= v.len());
                }
                line.number
            }
            Err(e) => e.line,
        };
        assert!(n > last && n <= line_count, "line {n} after {last} of {line_count}");
        last = n;
    }
});
