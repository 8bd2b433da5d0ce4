//! Guards that keep the repository's own maps true: every module is named in its crate's
//! `# Layout` sections, and every public conformance case runs on every engine through `suite!`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace root")
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("read a source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The `//!` lines after a `//! # Layout` heading, up to the next heading or the end of the
/// module docs.
fn layout_text(source: &str) -> String {
    let mut inside = false;
    let mut text = String::new();
    for line in source.lines() {
        let Some(doc) = line.trim_start().strip_prefix("//!") else {
            if inside {
                break;
            }
            continue;
        };
        let doc = doc.trim();
        if doc == "# Layout" {
            inside = true;
        } else if inside && doc.starts_with('#') {
            break;
        } else if inside {
            text.push_str(doc);
            text.push('\n');
        }
    }
    text
}

/// Names of the file modules `source` declares (`mod x;`, `pub mod x;`, `pub(crate) mod x;`).
fn declared_modules(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line.strip_suffix(';')?;
            let name = rest.rsplit_once("mod ").filter(|(vis, _)| vis.is_empty() || vis.starts_with("pub"))?.1;
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_').then(|| name.to_owned())
        })
        .collect()
}

#[test]
fn every_module_is_named_in_its_crates_layout() {
    let mut missing = Vec::new();
    let crates = workspace().join("crates");
    for entry in fs::read_dir(&crates).expect("read crates/") {
        let src = entry.expect("a crate").path().join("src");
        if !src.is_dir() {
            continue;
        }
        let files: Vec<(PathBuf, String)> =
            sources(&src).into_iter().map(|f| (f.clone(), fs::read_to_string(&f).expect("read a source"))).collect();
        let layout: String = files.iter().map(|(_, s)| layout_text(s)).collect();
        assert!(!layout.is_empty(), "{} has no `# Layout` section", src.display());
        for (file, source) in &files {
            for module in declared_modules(source) {
                if !layout.contains(&format!("`{module}`")) {
                    missing.push(format!("{}: `{module}`", file.display()));
                }
            }
        }
    }
    assert!(missing.is_empty(), "modules no `# Layout` of their crate names:\n{}", missing.join("\n"));
}

#[test]
fn every_public_case_runs_in_the_suite() {
    let src = workspace().join("crates/conformance/src");
    let lib = fs::read_to_string(src.join("lib.rs")).expect("read lib.rs");
    let listed: BTreeSet<&str> =
        lib.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
    let mut missing = Vec::new();
    let mut cases = 0;
    for file in sources(&src) {
        let source = fs::read_to_string(&file).expect("read a source");
        for line in source.lines() {
            let Some(rest) = line.strip_prefix("pub async fn ") else { continue };
            let Some((name, params)) = rest.split_once('(') else { continue };
            if !params.starts_with("t: &TestEngine)") {
                continue;
            }
            cases += 1;
            if !listed.contains(name) {
                missing.push(format!("{}: {name}", file.display()));
            }
        }
    }
    assert!(cases > 100, "only {cases} cases found: did the case signature change?");
    assert!(missing.is_empty(), "public cases `suite!` does not run:\n{}", missing.join("\n"));
}
