//! How long the allocator keeps freed memory before giving it back to the
//! system (mimalloc's purge delay): short in the steady state, for the peak
//! memory; longer while a first import parses the whole watch folder.
//!
//! `main.rs` makes mimalloc the global allocator. Without it (the tests)
//! these calls only set an option of an allocator nothing uses.

use std::ffi::c_long;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (`mimalloc.h`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc 3 keeps freed memory for a second, so a burst (writing 160,000
/// documents after a first start) peaked at ~290 MB resident instead of
/// ~215 MB; 10 ms (the value `mimalloc.h` documents) costs no measurable
/// time there. Set in code, so a `MIMALLOC_PURGE_DELAY` in the environment
/// is overridden.
const STEADY_MS: c_long = 10;

/// A first import frees and allocates the same sizes all the time, on
/// every core: at 10 ms the freed pages went back to the system and were
/// faulted in again (`madvise`, page faults, TLB shootdowns: ~4% of its
/// CPU). At 100 ms they are reused, for ~8 MB more peak memory at 100,000
/// announcements.
const IMPORT_MS: c_long = 100;

/// Sets the steady-state delay; called once at start.
pub fn steady() {
    set_purge_delay(STEADY_MS);
}

/// The longer delay, while the value lives (a first import).
pub struct ImportBurst(());

impl ImportBurst {
    pub fn begin() -> ImportBurst {
        set_purge_delay(IMPORT_MS);
        ImportBurst(())
    }
}

impl Drop for ImportBurst {
    fn drop(&mut self) {
        steady();
    }
}

fn set_purge_delay(ms: c_long) {
    // SAFETY: sets one of the allocator's integer options (read at each
    // purge); no memory is involved.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms) };
}
