//! The layering rules of docs/ARCHITECTURE.md, checked on the source: the
//! cores never name the I/O stacks, and no partition state sits behind a
//! lock shared between threads.

use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime/src")
}

/// Every `.rs` file under `dir`, with its text minus `//` comments.
fn code_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&path).expect("source file");
                let code: Vec<&str> = text
                    .lines()
                    .map(|l| l.split("//").next().unwrap_or(""))
                    .collect();
                out.push((path, code.join("\n")));
            }
        }
    }
    assert!(!out.is_empty(), "no sources under {}", dir.display());
    out
}

/// The (file, line) pairs under `dir` whose code names `word` as a path
/// segment (`word::` or `use word`).
fn naming(dir: &str, word: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for (path, code) in code_under(&src().join(dir)) {
        for (n, line) in code.lines().enumerate() {
            if line.contains(&format!("{word}::")) || line.contains(&format!("use {word}")) {
                hits.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    hits
}

#[test]
fn cores_import_no_io_stack() {
    let rules: [(&str, &[&str]); 8] = [
        ("sql", &["tokio", "quinn", "wasmtime"]),
        ("partition", &["tokio", "quinn", "wasmtime"]),
        ("consensus", &["tokio", "quinn", "wasmtime"]),
        ("txn", &["tokio", "quinn", "wasmtime"]),
        ("durability", &["tokio", "quinn", "wasmtime"]),
        ("storage", &["tokio", "quinn", "wasmtime"]),
        ("peer", &["tokio", "quinn", "wasmtime", "rustls"]),
        ("sim", &["tokio", "quinn"]),
    ];
    let mut broken = Vec::new();
    for (dir, words) in rules {
        for word in words {
            broken.extend(naming(dir, word));
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn the_checker_sees_an_import() {
    // The rule above is only worth something if it can fail: the node
    // shell does name tokio, so the same search finds it there.
    assert!(!naming("node", "tokio").is_empty());
}

#[test]
fn no_partition_state_behind_a_shared_lock() {
    let mut broken = Vec::new();
    for dir in ["partition", "consensus", "txn", "node"] {
        for (path, code) in code_under(&src().join(dir)) {
            for (n, line) in code.lines().enumerate() {
                let locked = line.contains("Mutex<") || line.contains("RwLock<");
                if locked && line.contains("PartitionState") {
                    broken.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "partition state under a lock:\n{}",
        broken.join("\n")
    );
}
