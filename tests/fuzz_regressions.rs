//! Replays the inputs kept from fuzzing (`tests/fixtures/fuzz/`, found with
//! `cargo fuzz run parse_render` and minimised with `cargo fuzz cmin`)
//! through the same check the fuzz target runs.

#[test]
fn kept_fuzz_inputs_still_pass() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/fixtures/fuzz exists") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        if let Err(e) = herald::fuzzing::check_parse_render(&data) {
            panic!("{}: {e}", path.display());
        }
        n += 1;
    }
    assert!(n > 0, "no kept fuzz inputs");
}
