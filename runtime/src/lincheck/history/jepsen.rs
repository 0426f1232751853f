//! Jepsen's etcd logs: a register with read / write / cas, one event a line:
//!
//! ```text
//!   INFO  jepsen.util - <process>\t<type>\t<f>\t<value>
//!   type  :invoke | :ok | :fail | :info
//!   f     :read (value nil, or the value read) | :write N | :cas [FROM TO]
//! ```
//!
//! As porcupine reads them: `:fail :cas` is a cas whose compare found
//! another value (etcd answered "no"), `:fail :read` (a timed-out read) is
//! a read with an unknown output, and `:info` (a timed-out write or cas;
//! its value is `:timed-out`) is an unknown outcome. A `:fail :write`
//! (absent from the recorded logs) had no effect and is dropped. Fields are
//! separated by any whitespace.

use super::{word, Done, Kind, Pairing, ParseError};
use crate::lincheck::{Operation, RegisterInput, RegisterOutput};

/// The shape every line must have, for error messages.
const LINE_SHAPE: &str = "expected `INFO jepsen.util - <process> <type> <f> <value>`";

/// One line's fields; `value` is the rest of the line.
struct Event<'a> {
    process: &'a str,
    kind: Kind,
    f: &'a str,
    value: Value,
}

/// The values the logs hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    Nil,
    Int(i64),
    Pair(i64, i64),
    /// A keyword such as `:timed-out`; which one does not matter.
    Keyword,
}

pub(super) fn parse(
    text: &str,
) -> Result<Vec<Operation<RegisterInput, RegisterOutput>>, ParseError> {
    let mut pairing = Pairing::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let event = split(raw).map_err(|m| ParseError::new(line, m))?;
        if event.process == ":nemesis" {
            continue;
        }
        let process: u64 = event.process.parse().map_err(|_| {
            let p = event.process;
            ParseError::new(line, format!("process `{p}` is not a number or :nemesis"))
        })?;
        let f = event.f;
        let value = event.value;
        let done = match event.kind {
            Kind::Invoke => {
                let input = invoked(f, value).map_err(|m| ParseError::new(line, m))?;
                pairing.invoke(line, process, input)?;
                continue;
            }
            Kind::Done(done) => done,
        };
        let call = pairing.complete(line, process)?;
        if f != name(&call.input) {
            let message = format!(
                "process {process} completes a {f} but invoked a {} on line {}",
                name(&call.input),
                call.line
            );
            return Err(ParseError::new(line, message));
        }
        let (output, ret) = match (done, call.input) {
            (Done::Ok, RegisterInput::Read) => match value {
                Value::Nil => (RegisterOutput::Read(None), Some(line)),
                Value::Int(v) => (RegisterOutput::Read(Some(v)), Some(line)),
                other => {
                    let message = format!(":ok :read of {other}; expected nil or an integer");
                    return Err(ParseError::new(line, message));
                }
            },
            (Done::Ok, RegisterInput::Write(_)) => (RegisterOutput::Write, Some(line)),
            (Done::Ok, RegisterInput::Cas { .. }) => (RegisterOutput::Cas(true), Some(line)),
            (Done::Fail, RegisterInput::Read) => (RegisterOutput::Unknown, Some(line)),
            (Done::Fail, RegisterInput::Write(_)) => continue,
            (Done::Fail, RegisterInput::Cas { .. }) => (RegisterOutput::Cas(false), Some(line)),
            (Done::Info, _) => (RegisterOutput::Unknown, None),
        };
        pairing.push(process, call, output, ret);
    }
    Ok(pairing.finish(|| RegisterOutput::Unknown))
}

/// The fields of one line.
fn split(raw: &str) -> Result<Event<'_>, String> {
    let rest = raw
        .trim()
        .strip_prefix("INFO")
        .and_then(|r| r.trim_start().strip_prefix("jepsen.util"))
        .and_then(|r| r.trim_start().strip_prefix('-'))
        .ok_or(LINE_SHAPE)?;
    let (process, rest) = word(rest).ok_or(LINE_SHAPE)?;
    let (kind, rest) = word(rest).ok_or(LINE_SHAPE)?;
    let kind = kind
        .strip_prefix(':')
        .and_then(Kind::from_keyword)
        .ok_or_else(|| format!("type {kind}: {}", Kind::EXPECTED))?;
    let (f, rest) = word(rest).ok_or(LINE_SHAPE)?;
    let value = value(rest.trim()).map_err(|m| format!("value: {m}"))?;
    Ok(Event {
        process,
        kind,
        f,
        value,
    })
}

fn value(s: &str) -> Result<Value, String> {
    let int = |t: &str| {
        t.parse::<i64>()
            .map_err(|_| format!("`{t}` is not nil, an integer, [FROM TO] or a keyword"))
    };
    if s == "nil" {
        Ok(Value::Nil)
    } else if s.starts_with(':') && s.len() > 1 && !s.contains(char::is_whitespace) {
        Ok(Value::Keyword)
    } else if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let mut parts = inner.split([' ', ',', '\t']).filter(|p| !p.is_empty());
        match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), None) => Ok(Value::Pair(int(a)?, int(b)?)),
            _ => Err(format!("`{s}` is not a pair [FROM TO]")),
        }
    } else {
        int(s).map(Value::Int)
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Int(v) => write!(f, "{v}"),
            Value::Pair(a, b) => write!(f, "[{a} {b}]"),
            Value::Keyword => f.write_str("a keyword"),
        }
    }
}

/// The input an `:invoke` of `f` with `value` is.
fn invoked(f: &str, value: Value) -> Result<RegisterInput, String> {
    match (f, value) {
        (":read", Value::Nil) => Ok(RegisterInput::Read),
        (":write", Value::Int(v)) => Ok(RegisterInput::Write(v)),
        (":cas", Value::Pair(from, to)) => Ok(RegisterInput::Cas { from, to }),
        (":read" | ":write" | ":cas", v) => Err(format!(
            "{f} invoked with {v}; expected :read nil, :write N or :cas [FROM TO]"
        )),
        _ => Err(format!("f {f}: expected :read, :write or :cas")),
    }
}

fn name(input: &RegisterInput) -> &'static str {
    match input {
        RegisterInput::Read => ":read",
        RegisterInput::Write(_) => ":write",
        RegisterInput::Cas { .. } => ":cas",
    }
}
