//! The recorded histories in `$OHM_TESTDATA/histories` (porcupine's test
//! data: Jepsen etcd logs and kv logs), each checked against the verdict
//! its expected.tsv gives. The data lives outside the repository; without
//! it the test says so and passes, except under `CI=true`.

use super::history::read_file;
use super::Verdict;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Time one history may take; far more than any needs, even unoptimised.
const HISTORY_TIMEOUT: Duration = Duration::from_secs(120);

fn histories_dir() -> Option<PathBuf> {
    let root = std::env::var_os("OHM_TESTDATA").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/testdata"
            ))
        },
        PathBuf::from,
    );
    let dir = root.join("histories");
    if dir.join("expected.tsv").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{}/expected.tsv not found, and CI=true requires it (set OHM_TESTDATA)",
        dir.display()
    );
    eprintln!("skipping: {} not found (set OHM_TESTDATA)", dir.display());
    None
}

/// (file relative to the histories directory, verdict) per line.
fn expected(dir: &std::path::Path) -> Vec<(String, Verdict)> {
    let path = dir.join("expected.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let parse = |(i, line): (usize, &str)| {
        let (file, word) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("expected.tsv:{}: no tab in {line:?}", i + 1));
        let verdict = Verdict::from_word(word.trim())
            .unwrap_or_else(|| panic!("expected.tsv:{}: verdict {word:?}", i + 1));
        (file.to_string(), verdict)
    };
    let lines = text.lines().enumerate();
    lines
        .filter(|(_, l)| !l.trim().is_empty())
        .map(parse)
        .collect()
}

#[test]
fn recorded_histories_get_their_expected_verdicts() {
    let Some(dir) = histories_dir() else {
        return;
    };
    let expected = expected(&dir);
    assert!(!expected.is_empty(), "expected.tsv lists no histories");
    let started = Instant::now();
    let mut wrong = Vec::new();
    for (file, want) in &expected {
        let path = dir.join(file);
        let t = Instant::now();
        let got = match read_file(&path) {
            Ok(history) => history.check(t + HISTORY_TIMEOUT).to_string(),
            Err(e) => format!("error: {e}"),
        };
        eprintln!("{file}\t{got}\t{:?}", t.elapsed());
        if got != want.as_str() {
            wrong.push(format!("{file}: expected {want}, got {got}"));
        }
    }
    eprintln!(
        "{} histories checked in {:?}",
        expected.len(),
        started.elapsed()
    );
    assert!(
        wrong.is_empty(),
        "{} of {} histories got the wrong verdict:\n{}",
        wrong.len(),
        expected.len(),
        wrong.join("\n")
    );
}
