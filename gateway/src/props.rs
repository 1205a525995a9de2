//! Settings shared by the property tests (`*_props.rs` beside each module): a fixed number of
//! cases so `cargo test` stays quick, and no persistence files in the source tree — a failing
//! case found is kept as a named regression test instead.

use proptest::test_runner::Config;

/// Property-test settings with `cases` generated inputs per run.
pub fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}
