//! The store against a `BTreeMap` model (`common/model.rs`), driven by a seeded PRNG: a few
//! thousand inserts, duplicate inserts, pending reads, marks, quarantines, retention passes,
//! reopens (crash copies with the journal), boot-clock inserts and restamps, in every
//! durability mode, with the journal and without. The fuzz target `store_model` runs the
//! same model on fuzzer input.

// Tests unwrap what they just built; a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use belabox_store::Durability;
use common::model::{Choices, run_model, run_model_journaled};

/// splitmix64.
struct Prng(u64);

impl Choices for Prng {
    fn next(&mut self) -> Option<u32> {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Some((z ^ (z >> 31)) as u32)
    }
}

#[test]
fn store_matches_the_model() {
    let seed: u64 = std::env::var("MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xbe1a_b0c5);
    // Fsyncs dominate the run time, so the fsync-free mode gets the most ops.
    // (mode, journal fold_after (0: no journal), ops).
    let runs = [
        (Durability::Immediate, 0, 600),
        (Durability::DeferredMarks { max_unsynced: 3 }, 0, 900),
        (Durability::Periodic { max_unsynced: 1000 }, 0, 3000),
        (Durability::Immediate, 4, 900),
        (Durability::DeferredMarks { max_unsynced: 3 }, 7, 900),
    ];
    std::thread::scope(|s| {
        for (i, (mode, fold_after, ops)) in runs.into_iter().enumerate() {
            s.spawn(move || {
                let dir = tempfile::tempdir().unwrap();
                let t = std::time::Instant::now();
                let mut prng = Prng(seed.wrapping_add(i as u64));
                if fold_after == 0 {
                    run_model(dir.path(), &mut prng, mode, ops);
                } else {
                    run_model_journaled(dir.path(), &mut prng, mode, fold_after, ops);
                }
                eprintln!(
                    "MODEL_SEED={seed} run {i}: {mode:?}, fold_after {fold_after}, {ops} ops, {:?}",
                    t.elapsed()
                );
            });
        }
    });
}
