//! The kernel's NTP state: adjtimex(2) with `modes = 0` only reads the kernel's time-keeping
//! variables, needs no privilege and changes nothing.
//!
//! Every NTP client that disciplines the kernel clock (systemd-timesyncd, chrony, ntpd, busybox
//! ntpd) clears `STA_UNSYNC` once it has synchronised, and the kernel sets it again when no
//! client updates it for a while (`maxerror` grows past 16 s). So "synchronised" is a reliable
//! yes; "not synchronised" is not a reliable no: a board with a good RTC and no NTP client at
//! all reads unsynchronised forever. The caller decides what "no" means.

/// What adjtimex said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelNtp {
    /// An NTP client synchronised the kernel clock (`STA_UNSYNC` clear, no `TIME_ERROR`).
    Synced,
    /// No NTP client has synchronised the clock, or the synchronisation was lost.
    Unsynced,
}

/// Reads the kernel's NTP state; `None` when the call fails (a seccomp filter, an odd kernel).
pub fn kernel_ntp() -> Option<KernelNtp> {
    // SAFETY: `timex` is plain old data; all-zero is a valid value (modes = 0: read only).
    let mut t: libc::timex = unsafe { core::mem::zeroed() };
    // SAFETY: `t` is a valid, writable `timex` that outlives the call; with `modes == 0` the
    // kernel only writes its state into it.
    let state = unsafe { libc::adjtimex(&mut t) };
    classify(state, t.status)
}

/// The adjtimex return value (clock state, or -1) and `status` word → the state.
fn classify(state: libc::c_int, status: libc::c_int) -> Option<KernelNtp> {
    if state < 0 {
        return None;
    }
    if state == libc::TIME_ERROR || status & libc::STA_UNSYNC != 0 {
        Some(KernelNtp::Unsynced)
    } else {
        Some(KernelNtp::Synced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_reads_state_and_status() {
        assert_eq!(classify(-1, 0), None);
        assert_eq!(classify(libc::TIME_OK, 0), Some(KernelNtp::Synced));
        assert_eq!(
            classify(libc::TIME_OK, libc::STA_UNSYNC),
            Some(KernelNtp::Unsynced)
        );
        assert_eq!(classify(libc::TIME_ERROR, 0), Some(KernelNtp::Unsynced));
        assert_eq!(
            classify(libc::TIME_INS, libc::STA_PLL),
            Some(KernelNtp::Synced)
        );
    }

    #[test]
    fn the_live_kernel_answers() {
        // Any Linux answers adjtimex(modes = 0); which state depends on the machine.
        assert!(kernel_ntp().is_some());
    }
}
