//! Tests of the runner itself, against SQLite (the corpus's reference).

use super::sqlite::SqliteDb;
use super::*;

fn run(text: &str, labels: &[&str], expected: &str) -> (Counts, Vec<Failure>) {
    let opts = Options {
        labels: labels.iter().map(|l| l.to_string()).collect(),
        expected: ExpectedFailures::parse(expected, "list").unwrap(),
    };
    let mut db = SqliteDb::open().unwrap();
    let mut failures = Vec::new();
    let counts = run_script(text, "dir/t.test", &mut db, &opts, &mut |f| {
        failures.push(f)
    });
    (counts, failures)
}

const SCRIPT: &str = "hash-threshold 8\r
\r
statement ok\r
CREATE TABLE t(a INTEGER, b TEXT, c REAL)\r
\r
statement ok\r
INSERT INTO t VALUES (2, 'x', 1.5), (1, '', NULL), (3, 'z\ty', 2.25)\r
\r
statement error\r
INSERT INTO nope VALUES (1)\r
\r
query ITR rowsort\r
SELECT a, b, c FROM t\r
----\r
1\r
(empty)\r
NULL\r
2\r
x\r
1.500\r
3\r
z@y\r
2.250\r
\r
query I valuesort\r
SELECT a * 10 FROM t UNION ALL SELECT a FROM t\r
----\r
9 values hashing to 0000\r
\r
skipif postgresql # comment the crate would reject\r
query I nosort\r
SELECT 1\r
----\r
2\r
\r
onlyif mysql  # also a comment\r
halt\r
\r
query T nosort label-1\r
SELECT 3.0\r
----\r
3.0\r
\r
onlyif sqlite\r
halt\r
\r
query I\r
SELECT 'never reached'\r
----\r
0\r
";

#[test]
fn formats_sorts_and_honours_conditions() {
    let (counts, failures) = run(SCRIPT, &["postgresql"], "");
    // The hash line above is deliberately wrong: 6 values (not hashed) vs a hash.
    assert_eq!(
        counts,
        Counts {
            passed: 6,
            failed: 1,
            skipped: 1,
            expected_failures: 0
        },
        "{failures:?}"
    );
    assert_eq!(failures[0].line, 25);
    assert!(
        failures[0].detail.contains("6 values hashing to"),
        "{}",
        failures[0].detail
    );
    // `onlyif sqlite` + halt stops the file for label sqlite only; the
    // postgresql run went on to the last query and failed nothing there.
    let (counts, _) = run(SCRIPT, &["sqlite"], "");
    assert_eq!(counts.skipped, 0);
    assert_eq!(
        counts.failed, 2,
        "the skipif postgresql query now runs and fails"
    );
}

#[test]
fn expected_failures_are_counted_and_kept_honest() {
    let list = "t.test:25 hash is wrong on purpose\nt.test:12 this one passes\n";
    let (counts, failures) = run(SCRIPT, &["postgresql"], list);
    assert_eq!(
        counts,
        Counts {
            passed: 5,
            failed: 1,
            skipped: 1,
            expected_failures: 1
        }
    );
    assert_eq!(failures[0].line, 12);
    assert!(failures[0].detail.contains("unexpectedly passed"));
    assert_eq!(
        counts.to_string(),
        "5 passed, 1 failed, 1 skipped, 1 expected-failures"
    );
}

#[test]
fn hashes_large_results_and_reports_column_mismatch() {
    let values: Vec<String> = (1..=9).map(|i| i.to_string()).collect();
    let hash = format::hash_values(&values);
    let script = format!(
        "hash-threshold 8\n\nquery I rowsort\nWITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 9) SELECT v FROM s\n----\n9 values hashing to {hash}\n\n\
         query II\nSELECT 1\n----\n1\n1\n"
    );
    let (counts, failures) = run(&script, &["sqlite"], "");
    assert_eq!((counts.passed, counts.failed), (1, 1), "{failures:?}");
    let last = failures.last().unwrap();
    assert!(
        last.detail.contains("expected 2 columns (types II), got 1"),
        "{}",
        last.detail
    );
}

struct Panicky;

impl SltDb for Panicky {
    fn run(&mut self, sql: &str) -> Result<SltOutput, String> {
        if sql.contains("boom") {
            panic!("engine exploded");
        }
        Ok(SltOutput::Done)
    }
}

#[test]
fn a_panicking_engine_is_a_failure_not_a_crash() {
    let script = "statement ok\nSELECT boom\n\nstatement ok\nSELECT fine\n";
    let mut failures = Vec::new();
    let counts = run_script(
        script,
        "p.test",
        &mut Panicky,
        &Options::default(),
        &mut |f| failures.push(f),
    );
    assert_eq!((counts.passed, counts.failed), (1, 1));
    assert!(
        failures[0].detail.contains("PANIC: engine exploded"),
        "{}",
        failures[0].detail
    );
}

#[test]
fn a_parse_error_names_file_and_line() {
    let mut failures = Vec::new();
    let counts = run_script(
        "statement okay\nSELECT 1\n",
        "bad.test",
        &mut Panicky,
        &Options::default(),
        &mut |f| failures.push(f),
    );
    assert_eq!(counts.failed, 1);
    assert_eq!(
        (failures[0].file.as_str(), failures[0].line),
        ("bad.test", 1)
    );
}
