//! A counting global allocator for tests and benches: counts allocations made by the current
//! thread while counting is switched on (other threads — the test harness, other tests counting
//! at the same time in the same binary — do not disturb it: the count is per thread).
//!
//! Install it in a test or bench binary with
//! `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.

// `GlobalAlloc` is an unsafe trait; the impl only forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

#[derive(Debug)]
pub struct CountingAlloc;

// Both thread-locals are const-initialised and have no destructor, so touching them inside the
// allocator neither allocates nor registers a destructor (safe at any point of a thread's life).
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Allocations this thread made while `COUNTING` was on, since the thread started.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    if COUNTING.with(Cell::get) {
        ALLOCS.with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every method forwards to `System` unchanged; counting has no effect on the memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed through as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` and returns its result with the number of allocations (incl. reallocations) the
/// current thread made meanwhile. Only meaningful when `CountingAlloc` is the global allocator.
pub fn count_allocs<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = ALLOCS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    (out, ALLOCS.with(Cell::get) - before)
}
