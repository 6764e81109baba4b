//! Stateful fuzzing of the redb store against a `BTreeMap` model: the fuzzer's bytes choose
//! the operations (insert, duplicate insert, pending, mark_uploaded, quarantine, retention,
//! reopen or a crash copy, insert_unstamped, restamp) and the durability mode. The model and its checks are shared with the store's
//! deterministic test (`store/tests/model.rs`).

#![no_main]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use belabox_store::Durability;
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
mod model {
    include!("../../store/tests/common/model.rs");
}

/// Four input bytes per choice; a short tail is zero-padded once, then the input is over.
struct Bytes<'a>(&'a [u8]);

impl model::Choices for Bytes<'_> {
    fn next(&mut self) -> Option<u32> {
        if self.0.is_empty() {
            return None;
        }
        let n = self.0.len().min(4);
        let mut b = [0u8; 4];
        b[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Some(u32::from_le_bytes(b))
    }
}

fn scratch_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    // tmpfs when there is one: fsync is free there and the fuzzer stays fast.
    let base = ["/dev/shm", "/tmp"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    base.join(format!(
        "belabox-store-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, ops)) = data.split_first() else {
        return;
    };
    let durability = match mode % 3 {
        0 => Durability::Immediate,
        1 => Durability::DeferredMarks { max_unsynced: 3 },
        _ => Durability::Periodic { max_unsynced: 64 },
    };
    // The journal (with a fold every 1..=7 commits) on half of the inputs.
    let fold_after = if mode & 0x80 != 0 {
        u32::from(mode >> 4 & 7) + 1
    } else {
        0
    };
    let dir = scratch_dir();
    std::fs::create_dir_all(&dir).unwrap();
    model::run_model_journaled(&dir, &mut Bytes(ops), durability, fold_after, 512);
    let _ = std::fs::remove_dir_all(&dir);
});
