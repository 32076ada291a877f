//! Invariant: every committed fuzz input — each target's corpus (`fuzz/corpus/<target>/`) and
//! every crash or regression input (`fuzz/artifacts/<target>/`) — runs through the target's plain
//! function without a panic, on the stable toolchain and without a sanitizer build. A target
//! without corpus fails, and so does a fuzz target or corpus that names no function here.

use std::path::{Path, PathBuf};

use gatehouse_fuzz_targets::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every file of `dir` through `target`, naming the file that panics.
fn replay(name: &str, target: fn(&[u8]), dir: &Path) -> usize {
    let inputs = files(dir);
    for path in &inputs {
        let data = std::fs::read(path).expect("readable input");
        if std::panic::catch_unwind(|| target(&data)).is_err() {
            panic!("fuzz target {name} panicked on {}", path.display());
        }
    }
    inputs.len()
}

#[test]
fn every_corpus_input_and_crash_replays() {
    for (name, target) in TARGETS {
        let corpus = fuzz_dir().join("corpus").join(name);
        let n = replay(name, *target, &corpus);
        assert!(
            n > 0,
            "no corpus for fuzz target {name} in {}",
            corpus.display()
        );
        // Crash, timeout and out-of-memory inputs found by the campaigns, kept as regressions.
        replay(name, *target, &fuzz_dir().join("artifacts").join(name));
    }
}

#[test]
fn fuzz_targets_corpora_and_functions_match() {
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    let wrappers: Vec<String> = files(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .map(|p| {
            p.file_stem()
                .expect("file name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        wrappers, sorted,
        "fuzz/fuzz_targets/*.rs and TARGETS differ"
    );
    for name in &names {
        let wrapper = std::fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs")))
            .expect("wrapper");
        assert!(
            wrapper.contains(&format!("gatehouse_fuzz_targets::{name}(data)")),
            "fuzz/fuzz_targets/{name}.rs does not call gatehouse_fuzz_targets::{name}"
        );
    }
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir)) else {
            continue;
        };
        for e in entries {
            let e = e.expect("entry");
            let n = e.file_name().to_string_lossy().into_owned();
            assert!(
                names.contains(&n.as_str()),
                "fuzz/{dir}/{n} names no fuzz target"
            );
        }
    }
}
