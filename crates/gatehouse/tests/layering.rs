//! Invariant: no two source files of the workspace import each other. Dependencies between files
//! point one way (the edge uses verification and policy, the builder uses the server type, the
//! audit writer uses the store, …), so that each file can be read, tested and replaced on its own.
//!
//! A file "imports" another when its non-test code names an item of the other file's module:
//! `crate::a::b::…` paths, `use self::…` / `use super::…`, and `use child::…` of its own child
//! modules. Each path resolves to the longest module prefix that is a file. Test modules (from
//! the first `#[cfg(test)]` on) are left out: a test may look anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = (String, Vec<String>);

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `crates/NAME/src/a/b.rs` (or `a/b/mod.rs`) → `("NAME", ["a", "b"])`.
fn module_of(crate_name: &str, src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    (crate_name.to_owned(), parts)
}

/// Code without comments and without test modules.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Paths after `prefix` in `code`: the identifiers joined by `::` that follow it.
fn paths_after<'a>(code: &'a str, prefix: &'a str) -> impl Iterator<Item = Vec<String>> + 'a {
    code.match_indices(prefix).filter_map(move |(i, _)| {
        let before = code[..i].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            return None;
        }
        let rest = &code[i + prefix.len()..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let path: Vec<String> = rest[..end]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        (!path.is_empty()).then_some(path)
    })
}

#[test]
fn no_two_source_files_import_each_other() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: BTreeMap<Module, PathBuf> = BTreeMap::new();
    for entry in std::fs::read_dir(&crates).unwrap() {
        let dir = entry.unwrap().path();
        let src = dir.join("src");
        if !src.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut found = Vec::new();
        rust_files(&src, &mut found);
        for f in found {
            files.insert(module_of(&name, &src, &f), f);
        }
    }
    assert!(files.len() > 50, "found the workspace's files");
    let resolve = |krate: &str, path: &[String]| -> Option<Module> {
        (0..=path.len()).rev().find_map(|n| {
            let m = (krate.to_owned(), path[..n].to_vec());
            files.contains_key(&m).then_some(m)
        })
    };

    let mut edges: BTreeSet<(Module, Module)> = BTreeSet::new();
    for (module, file) in &files {
        let (krate, parts) = module;
        let text = code(&std::fs::read_to_string(file).unwrap());
        let mut targets: Vec<Vec<String>> = paths_after(&text, "crate::").collect();
        for p in paths_after(&text, "use self::") {
            targets.push(parts.iter().cloned().chain(p).collect());
        }
        for p in paths_after(&text, "use super::") {
            let parent = &parts[..parts.len().saturating_sub(1)];
            targets.push(parent.iter().cloned().chain(p).collect());
        }
        // `use child::…` of a child module declared in this file.
        for p in paths_after(&text, "use ") {
            let child = parts.iter().cloned().chain(p).collect::<Vec<_>>();
            if child.len() > parts.len()
                && files.contains_key(&(krate.clone(), child[..parts.len() + 1].to_vec()))
            {
                targets.push(child);
            }
        }
        for t in targets {
            if let Some(target) = resolve(krate, &t)
                && &target != module
            {
                edges.insert((module.clone(), target));
            }
        }
    }
    let cycles: Vec<String> = edges
        .iter()
        .filter(|(a, b)| a < b && edges.contains(&(b.clone(), a.clone())))
        .map(|(a, b)| format!("{} <-> {}", files[a].display(), files[b].display()))
        .collect();
    assert!(
        cycles.is_empty(),
        "files that import each other:\n{}",
        cycles.join("\n")
    );
    assert!(!edges.is_empty(), "the scan found imports at all");
}
