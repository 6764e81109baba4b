#![no_main]
//! The ingest listener's VictoriaMetrics JSON-lines parser (src/ingest/vm_json.rs), included by
//! path. Properties: no panic, no stack overflow (nesting is bounded); line numbers rise and
//! name lines that exist; a yielded line's members and arrays never fail, its values and
//! timestamps both have `len` entries and no timestamp is null; unescaping a member never panics
//! and gives UTF-8 whenever the raw string was UTF-8.

mod common;

// The same module paths as in the agent (the line parsers use `super::lines`).
#[path = "../../src/ingest"]
mod ingest {
    #[allow(dead_code, unused_imports)]
    pub mod lines;
    #[allow(dead_code, unused_imports)]
    pub mod vm_json;
}

use libfuzzer_sys::fuzz_target;
use ingest::vm_json::lines;

fuzz_target!(|data: &[u8]| {
    let line_count = data.split(|&b| b == b'\n').count();
    let mut last = 0;
    for item in lines(data) {
        let n = match item {
            Ok(line) => {
                for m in line.metric() {
                    let (k, v) = m.expect("a yielded line's members parse");
                    for s in [k, v] {
                        let mut out = Vec::new();
                        if ingest::vm_json::unescape(s, &mut out).is_ok() && core::str::from_utf8(s).is_ok() {
                            assert!(core::str::from_utf8(&out).is_ok());
                        }
                    }
                }
                let values: Vec<_> = line.values().map(|v| v.expect("values parse")).collect();
                let ts: Vec<_> = line.timestamps().map(|v| v.expect("timestamps parse")).collect();
                assert_eq!((values.len(), ts.len()), (line.len, line.len));
                assert!(ts.iter().all(Option::is_some));
                line.number
            }
            Err(e) => e.line,
        };
        assert!(n > last && n <= line_count, "line {n} after {last} of {line_count}");
        last = n;
    }
});
