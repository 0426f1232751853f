//! The checked-in list of records known to fail, each with a reason.
//!
//! Format, one entry a line: `path-suffix:line  reason`. Blank lines and
//! lines starting with `#` are ignored. A failure whose file path ends with
//! `path-suffix` (at a `/` boundary) and whose record starts at `line` counts
//! as an expected failure; the runner reports a listed record that passes.

use std::collections::BTreeMap;
use std::path::Path;
use thiserror::Error;

/// A problem reading the expected-failures file, naming file and line.
#[derive(Debug, Error)]
pub enum ExpectedFailuresError {
    #[error("cannot read expected-failures file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message} (format: `path-suffix:line  reason`)")]
    Syntax {
        path: String,
        line: usize,
        message: String,
    },
}

/// Records expected to fail, keyed by the record's line.
#[derive(Debug, Default, Clone)]
pub struct ExpectedFailures {
    by_line: BTreeMap<u32, Vec<Entry>>,
}

#[derive(Debug, Clone)]
struct Entry {
    suffix: String,
    reason: String,
}

impl ExpectedFailures {
    /// An empty list: every failure is unexpected.
    pub fn none() -> ExpectedFailures {
        ExpectedFailures::default()
    }

    pub fn load(path: &Path) -> Result<ExpectedFailures, ExpectedFailuresError> {
        let text = std::fs::read_to_string(path).map_err(|source| ExpectedFailuresError::Read {
            path: path.display().to_string(),
            source,
        })?;
        ExpectedFailures::parse(&text, &path.display().to_string())
    }

    /// Parses the list; `name` is used in error messages.
    pub fn parse(text: &str, name: &str) -> Result<ExpectedFailures, ExpectedFailuresError> {
        let mut list = ExpectedFailures::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = |message: &str| ExpectedFailuresError::Syntax {
                path: name.to_string(),
                line: i + 1,
                message: message.to_string(),
            };
            let (location, reason) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| syntax("missing reason"))?;
            let reason = reason.trim();
            if reason.is_empty() {
                return Err(syntax("missing reason"));
            }
            let (suffix, record_line) = location
                .rsplit_once(':')
                .ok_or_else(|| syntax("expected `path-suffix:line`"))?;
            let record_line: u32 = record_line
                .parse()
                .map_err(|_| syntax("the line after `:` is not a number"))?;
            if suffix.is_empty() {
                return Err(syntax("empty path suffix"));
            }
            list.by_line.entry(record_line).or_default().push(Entry {
                suffix: suffix.replace('\\', "/"),
                reason: reason.to_string(),
            });
        }
        Ok(list)
    }

    /// The reason a record is expected to fail, if it is listed.
    pub fn reason(&self, file: &str, line: u32) -> Option<&str> {
        let file = file.replace('\\', "/");
        self.by_line.get(&line)?.iter().find_map(|e| {
            let matches = file == e.suffix
                || (file.ends_with(&e.suffix)
                    && file[..file.len() - e.suffix.len()].ends_with('/'));
            matches.then_some(e.reason.as_str())
        })
    }

    pub fn len(&self) -> usize {
        self.by_line.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches_suffixes() {
        let text =
            "# header\n\nselect1.test:120  NULL ordering\nindex/in/10/slt_good_5.test:7 IN list\n";
        let list = ExpectedFailures::parse(text, "x").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(
            list.reason("../shared/testdata/slt/select1.test", 120),
            Some("NULL ordering")
        );
        assert_eq!(list.reason("select1.test", 120), Some("NULL ordering"));
        assert_eq!(list.reason("xselect1.test", 120), None);
        assert_eq!(list.reason("select1.test", 121), None);
        assert!(list.reason("a/index/in/10/slt_good_5.test", 7).is_some());
    }

    #[test]
    fn rejects_entries_without_reason() {
        let err =
            ExpectedFailures::parse("ok.test:1 fine\nselect1.test:3\n", "list.txt").unwrap_err();
        assert!(
            err.to_string().starts_with("list.txt:2: missing reason"),
            "{err}"
        );
        assert!(ExpectedFailures::parse("select1.test:x because\n", "l").is_err());
    }
}
