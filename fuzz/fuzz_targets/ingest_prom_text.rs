#![no_main]
//! The ingest listener's Prometheus text parser (src/ingest/prom_text.rs), included by path.
//! Properties: no panic; line numbers rise and name lines that exist; a yielded line's labels
//! never fail and every name and raw value is a piece of the input; a refused line ends nothing
//! else (the iterator goes on); unescaping never panics and never grows a value.

#[allow(dead_code)]
#[path = "../../src/ingest/prom_text.rs"]
mod prom_text;

use libfuzzer_sys::fuzz_target;
use prom_text::Lines;

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
                assert!(!line.name.is_empty() && inside(data, line.name));
                for l in line.labels() {
                    let (k, v) = l.expect("a yielded line's labels parse");
                    assert!(!k.is_empty() && inside(data, k) && inside(data, v));
                    let mut out = Vec::new();
                    prom_text::unescape(v, &mut out);
                    assert!(out.len() <= v.len());
                }
                line.number
            }
            Err(e) => e.line,
        };
        assert!(n > last && n <= lines, "line {n} after {last} of {lines}");
        last = n;
    }
});
