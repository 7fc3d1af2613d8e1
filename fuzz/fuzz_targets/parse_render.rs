//! Fuzzes the whole pure path: bytes -> announcement::parse -> RSS and Atom
//! -> read back by the rss and atom_syndication readers. The first input
//! byte picks the format (.txt/.md) and whether language detection runs
//! (it is slow, so most runs use a single configured language).
//!
//!     RUSTC_BOOTSTRAP=1 cargo fuzz run parse_render -- -max_total_time=300
//!
//! Inputs worth keeping go to tests/fixtures/fuzz/, which `cargo test`
//! replays (tests/fuzz_regressions.rs).
#![no_main]

use herald::fuzzing::check_parse_render;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = check_parse_render(data) {
        panic!("{e}");
    }
});
