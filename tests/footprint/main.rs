//! Tests that measure their own process: heap allocations counted by a global allocator
//! (`alloc_free_tick`, `health_alloc`) and the RSS of an in-process health server under attack
//! (`health_hostile`). One test binary (issue 27), apart from the others so that nothing else
//! allocates or grows the process beside them.
//!
//! The counting allocator counts per thread (belabox-testkit), so the modules' counting tests may
//! run at the same time.

use belabox_testkit::alloc_count::CountingAlloc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[path = "../support/mod.rs"]
mod support;

mod alloc_free_tick;
mod health_alloc;
mod health_hostile;
