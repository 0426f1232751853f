//! EDN key-value logs (get / put / append on string keys), one map a line:
//!
//! ```text
//!   {:process P, :type :invoke|:ok|:fail|:info, :f :get|:put|:append, :key "k", :value V}
//! ```
//!
//! `V` is nil on a get's invoke, the value read on its `:ok`, and the string
//! written on a put's or append's invoke and completion. Keys may also be
//! integers (read as their decimal text); other map keys (`:time`,
//! `:index`, ...) are ignored. Only the EDN this needs is read: maps of
//! keyword keys to nil, booleans, integers, keywords and strings (with
//! `\"`, `\\`, `\n`, `\t`, `\r` escapes); commas are whitespace.

use super::{Done, Kind, Pairing, ParseError};
use crate::lincheck::{KvInput, KvOp, KvOutput, Operation};

/// A value as read (and shown in messages).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    /// Without its colon.
    Keyword(String),
    Str(String),
}

pub(super) fn parse(text: &str) -> Result<Vec<Operation<KvInput, KvOutput>>, ParseError> {
    let mut pairing = Pairing::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let err = |m: String| ParseError::new(line, m);
        let map = Reader::new(raw).whole_map().map_err(err)?;
        let Some(process) = process(&map).map_err(err)? else {
            continue;
        };
        let (kind, input) = event(&map).map_err(err)?;
        let done = match kind {
            Kind::Invoke => {
                pairing.invoke(line, process, input)?;
                continue;
            }
            Kind::Done(done) => done,
        };
        let call = pairing.complete(line, process)?;
        let (was, is) = (describe(&call.input), describe(&input));
        if was != is {
            let message = format!(
                "process {process} completes {is} but invoked {was} on line {}",
                call.line
            );
            return Err(ParseError::new(line, message));
        }
        let (output, ret) = match (done, &call.input.op) {
            (Done::Ok, KvOp::Get) => match field(&map, "value") {
                Some(Value::Str(v)) => (KvOutput::Get(v.clone()), Some(line)),
                v => return Err(err(format!(":ok :get of {}; expected a string", show(v)))),
            },
            (Done::Ok, KvOp::Put(_) | KvOp::Append(_)) => (KvOutput::Done, Some(line)),
            (Done::Fail, KvOp::Get) => (KvOutput::Unknown, Some(line)),
            (Done::Fail, KvOp::Put(_) | KvOp::Append(_)) => continue,
            (Done::Info, _) => (KvOutput::Unknown, None),
        };
        pairing.push(process, call, output, ret);
    }
    Ok(pairing.finish(|| KvOutput::Unknown))
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Keyword(k) => write!(f, ":{k}"),
            Value::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// A field's value for a message; "missing" when absent.
fn show(value: Option<&Value>) -> String {
    value.map_or_else(|| "missing".to_string(), Value::to_string)
}

fn field<'m>(map: &'m [(String, Value)], name: &str) -> Option<&'m Value> {
    map.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// The event's process, or None for the nemesis.
fn process(map: &[(String, Value)]) -> Result<Option<u64>, String> {
    match field(map, "process") {
        Some(&Value::Int(p)) if p >= 0 => Ok(Some(p as u64)),
        Some(Value::Keyword(k)) if k == "nemesis" => Ok(None),
        other => Err(format!(
            ":process is {}; expected a number or :nemesis",
            show(other)
        )),
    }
}

/// The event's type and the operation it names. On a completion, the
/// written value is whatever the line holds (only f and key are compared).
fn event(map: &[(String, Value)]) -> Result<(Kind, KvInput), String> {
    let kind = match field(map, "type") {
        Some(Value::Keyword(k)) => Kind::from_keyword(k),
        _ => None,
    };
    let kind = kind.ok_or_else(|| format!(":type: {}", Kind::EXPECTED))?;
    let key = match field(map, "key") {
        Some(Value::Str(k)) => k.clone(),
        Some(Value::Int(k)) => k.to_string(),
        other => return Err(format!(":key is {}; expected a string", show(other))),
    };
    let written = || match field(map, "value") {
        Some(Value::Str(v)) => Ok(v.clone()),
        _ if kind != Kind::Invoke => Ok(String::new()),
        other => Err(format!(
            ":value is {}; a put or append writes a string",
            show(other)
        )),
    };
    let op = match field(map, "f") {
        Some(Value::Keyword(f)) if f == "get" => KvOp::Get,
        Some(Value::Keyword(f)) if f == "put" => KvOp::Put(written()?),
        Some(Value::Keyword(f)) if f == "append" => KvOp::Append(written()?),
        other => {
            return Err(format!(
                ":f is {}; expected :get, :put or :append",
                show(other)
            ))
        }
    };
    Ok((kind, KvInput { key, op }))
}

/// What an event is about, to match a completion with its invoke.
fn describe(input: &KvInput) -> String {
    let f = match input.op {
        KvOp::Get => ":get",
        KvOp::Put(_) => ":put",
        KvOp::Append(_) => ":append",
    };
    format!("{f} of key {:?}", input.key)
}

/// Reads one line of EDN. Positions stay on char boundaries.
struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Reader<'a> {
        Reader { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|c| c.is_whitespace() || c == ',') {
            self.bump();
        }
    }

    /// `what` at the current column.
    fn err(&self, what: impl std::fmt::Display) -> String {
        self.err_at(self.pos, what)
    }

    /// `what` at the column (1-based, in chars) of byte `pos`.
    fn err_at(&self, pos: usize, what: impl std::fmt::Display) -> String {
        let column = 1 + self.text.get(..pos).unwrap_or_default().chars().count();
        format!("column {column}: {what}")
    }

    /// A map that is the whole line, as (key without colon, value) pairs.
    fn whole_map(mut self) -> Result<Vec<(String, Value)>, String> {
        self.skip_space();
        if self.bump() != Some('{') {
            return Err(self.err("expected `{` starting a map"));
        }
        let mut entries: Vec<(String, Value)> = Vec::new();
        loop {
            self.skip_space();
            if self.peek() == Some('}') {
                self.bump();
                break;
            }
            let key_at = self.pos;
            let key = match self.value()? {
                Value::Keyword(k) => k,
                other => {
                    let what = format!("map key {other} is not a keyword");
                    return Err(self.err_at(key_at, what));
                }
            };
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(self.err_at(key_at, format!("key :{key} appears twice")));
            }
            self.skip_space();
            let value = self.value()?;
            entries.push((key, value));
        }
        self.skip_space();
        match self.peek() {
            None => Ok(entries),
            Some(_) => Err(self.err("text after the map")),
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            None => Err(self.err("the line ends inside the map")),
            Some('"') => self.string().map(Value::Str),
            Some(':') => {
                self.bump();
                match self.symbol() {
                    "" => Err(self.err("an empty keyword")),
                    k => Ok(Value::Keyword(k.to_string())),
                }
            }
            Some(c) => {
                let start = self.pos;
                match self.symbol() {
                    "" => Err(self.err(format!("unsupported value starting with `{c}`"))),
                    "nil" => Ok(Value::Nil),
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    s => s.parse().map(Value::Int).map_err(|_| {
                        let shown: String = s.chars().take(40).collect();
                        self.err_at(start, format!("unsupported value `{shown}`"))
                    }),
                }
            }
        }
    }

    /// The characters up to the next delimiter.
    fn symbol(&mut self) -> &'a str {
        let rest = self.rest();
        let end = rest
            .find(|c: char| c.is_whitespace() || ",{}[]()\"".contains(c))
            .unwrap_or(rest.len());
        self.pos += end;
        rest.get(..end).unwrap_or_default()
    }

    fn string(&mut self) -> Result<String, String> {
        self.bump(); // the opening quote
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.err("the line ends inside a string")),
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    other => return Err(self.err(format!("unsupported escape \\{other:?}"))),
                },
                Some(c) => out.push(c),
            }
        }
    }
}
