//! Build script of the agent binary: links the functions an agent executes first in its text.
//!
//! Why: the text is resident as far as it was ever run (the kernel maps file pages in 64 KiB
//! fault-around windows, and whole page-cache folios), and the functions a running agent
//! executes (≈ 1.6 MB of ≈ 3.1 MB) were spread over every window of the text. Grouped, they
//! touch about two thirds of the windows, and the rest of the text stays on disk
//! (docs/benchmarks.md, "Hot text first").
//!
//! How: `src/link/hot_text.ld` (made by `benches/hot_text.py` from callgrind runs of the agent)
//! lists those functions' sections as glob patterns, in an output section inserted before
//! `.text`; every section no pattern names stays in `.text` as before. The patterns leave out
//! what differs between targets and builds (crate disambiguators, symbol hashes), so one list
//! serves x86_64 and aarch64; a function added since the list was made is only not grouped.
//!
//! Only for optimised Linux builds of the binary (the release and board profiles): GNU ld, lld
//! and rust-lld all take `-T` with an `INSERT` script. Tests and debug builds link as before.
//!
//! The board profile strips here, at the link (`-s`), not with the profile's `strip`: a
//! profile setting is part of every crate's `-C metadata`, so a build that kept its symbols
//! (for `benches/hot_text.py`) would have other symbol hashes than the shipped one and its exact
//! names would match nothing in it. `BBM_KEEP_SYMBOLS=1` keeps them in a board build instead.

fn main() {
    println!("cargo:rerun-if-changed=src/link/hot_text.ld");
    println!("cargo:rerun-if-changed=src/link/build.rs");
    println!("cargo:rerun-if-env-changed=BBM_KEEP_SYMBOLS");
    let optimised = std::env::var("OPT_LEVEL").is_ok_and(|level| level != "0");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    if optimised && linux {
        println!("cargo:rustc-link-arg-bin=belabox-metrics=-T{dir}/src/link/hot_text.ld");
    }
    // OUT_DIR is target/[TRIPLE/]PROFILE/build/PKG-HASH/out: the profile's name is the only
    // place a build script sees it (PROFILE says "release" for every optimised profile).
    let board = std::env::var("OUT_DIR").is_ok_and(|out| {
        std::path::Path::new(&out)
            .ancestors()
            .nth(3)
            .and_then(|p| p.file_name())
            .is_some_and(|name| name == "board")
    });
    let keep = std::env::var("BBM_KEEP_SYMBOLS").is_ok_and(|v| v == "1");
    if board && !keep {
        // GNU ld, lld and the C compiler drivers all take -s (--strip-all).
        println!("cargo:rustc-link-arg-bin=belabox-metrics=-s");
    }
}
