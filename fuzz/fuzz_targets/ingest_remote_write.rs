#![no_main]
//! The ingest listener's remote_write protobuf reader (src/ingest/remote_write.rs), included by
//! path, over the decompressed WriteRequest. Properties: no panic; a yielded time series gives
//! exactly `label_count` labels and `sample_count` samples, each non-empty name and value a piece
//! of the input; after an error the iterator ends (no endless loop on garbage).

mod common;

// The same module paths as in the agent (the line parsers use `super::lines`).
#[path = "../../src/ingest"]
mod ingest {
    #[allow(dead_code, unused_imports)]
    pub mod remote_write;
}

use common::inside;
use libfuzzer_sys::fuzz_target;
use ingest::remote_write::Series;


fuzz_target!(|data: &[u8]| {
    let mut it = Series::new(data);
    let mut count = 0usize;
    while let Some(item) = it.next() {
        count += 1;
        assert!(count <= data.len(), "more series than bytes");
        match item {
            Ok(ts) => {
                let labels: Vec<_> = ts.labels().collect();
                assert_eq!(labels.len(), ts.label_count);
                for (k, v) in labels {
                    // An absent name or value is the empty default, not a piece of the input.
                    assert!((k.is_empty() || inside(data, k)) && (v.is_empty() || inside(data, v)));
                }
                assert_eq!(ts.samples().count(), ts.sample_count);
            }
            Err(_) => {
                assert!(it.next().is_none(), "the iterator goes on after an error");
                break;
            }
        }
    }
});
