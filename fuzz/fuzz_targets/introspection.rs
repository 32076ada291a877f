#![no_main]
// The body is a plain function so that `cargo test -p gatehouse-fuzz-targets` replays the corpus.
libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_fuzz_targets::introspection(data));
