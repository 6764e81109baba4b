//! Giving freed heap pages back to the kernel: glibc's malloc_trim(3).
//!
//! glibc returns freed memory to the kernel only from the top of the heap, and only beyond a
//! threshold that grows with the largest block freed; what the uploader frees between two upload
//! rounds (the gzip state, the chunk buffers: several hundred KiB) sits below memory that stays
//! in use and would stay resident until the next round reuses it. `malloc_trim(0)` walks the
//! free chunks and `madvise(MADV_DONTNEED)`s their whole pages. Other C libraries (musl's mallocng
//! unmaps freed pages by itself): nothing to do.

/// Returns the whole free pages of the malloc heap to the kernel. Costs one walk over the
/// heap's free chunks (microseconds for this agent's few MiB); meant for after a burst of
/// allocation, not for a hot path.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a plain integer (the bytes to keep untrimmed at the top of the
    // heap), touches only the allocator's own state under its own locks, and is safe to call
    // from any thread at any time; its return value (whether memory was released) is not needed.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn trim_keeps_live_allocations_intact() {
        let keep: std::vec::Vec<u8> = (0..=255).collect();
        let freed = std::vec![7u8; 1 << 20];
        drop(freed);
        super::trim();
        assert_eq!(keep, (0..=255).collect::<std::vec::Vec<u8>>());
    }
}
