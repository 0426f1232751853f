//! `ohm serve --metrics ADDR`: the Prometheus text endpoint, read over real
//! TCP while a real client works, and checked line by line against the
//! exposition format; and `--log-format json`.

mod common;

use common::{runtime, Server, TempDir};
use ohm::driver::ClientError;
use ohm::proto::ErrorCode;
use ohm::types::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

/// `GET /metrics` over HTTP/1.1; the body.
fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_string()
}

/// A sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);
/// A series' labels but `le`, in order: which histogram a bucket is of.
type Labels = Vec<(String, String)>;

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses `{a="x",b="y\"z"}`; panics naming the line if it is malformed.
fn labels(s: &str, line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label in {line:?}"));
        assert!(is_name(name), "label name {name:?} in {line:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        assert!(out.insert(name.to_string(), value).is_none(), "{line:?}");
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    out
}

/// Checks the text exposition format (version 0.0.4) and returns every
/// sample: each family's HELP and TYPE come once, before its samples;
/// every sample belongs to a declared family (a histogram's as
/// `_bucket`, `_sum`, `_count`); names and label names are valid; values
/// are numbers; a histogram's buckets are cumulative, end at `+Inf`, and
/// `+Inf` equals `_count`.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = std::collections::BTreeSet::new();
    let mut samples = Vec::new();
    assert!(text.ends_with('\n'), "the page ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(is_name(name) && !help.is_empty(), "{line:?}");
            assert!(helped.insert(name.to_string()), "HELP twice: {line:?}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line:?}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice: {line:?}"
            );
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, labels(l.strip_suffix('}').expect("}"), line)),
            None => (series, BTreeMap::new()),
        };
        assert!(is_name(name), "{line:?}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                let base = name.strip_suffix(s)?;
                (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "no TYPE before {line:?}");
        if name.ends_with("_total") || family != name {
            assert!(value >= 0.0, "{line:?}");
        }
        samples.push((name.to_string(), labels, value));
    }
    assert_eq!(
        helped.iter().collect::<Vec<_>>(),
        types.keys().collect::<Vec<_>>(),
        "every family has both HELP and TYPE"
    );
    // A family's samples are together, not interleaved with another's.
    let mut seen: Vec<&str> = Vec::new();
    for (name, _, _) in &samples {
        let family = types
            .keys()
            .find(|f| {
                name == *f
                    || name
                        .strip_prefix(f.as_str())
                        .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))
            })
            .expect("a declared family");
        if seen.last() != Some(&family.as_str()) {
            assert!(
                !seen.contains(&family.as_str()),
                "{family}'s samples are split"
            );
            seen.push(family);
        }
    }
    // Histograms: per series (labels without `le`), cumulative buckets.
    for (family, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        let mut buckets: BTreeMap<Labels, Vec<(String, f64)>> = BTreeMap::new();
        for (name, l, v) in &samples {
            if *name == format!("{family}_bucket") {
                let mut key: Vec<_> = l.clone().into_iter().collect();
                key.retain(|(k, _)| k != "le");
                buckets.entry(key).or_default().push((l["le"].clone(), *v));
            }
        }
        for (key, bs) in buckets {
            assert!(
                bs.windows(2).all(|w| w[0].1 <= w[1].1),
                "{family} {key:?}: {bs:?}"
            );
            let (last_le, last) = bs.last().unwrap();
            assert_eq!(last_le, "+Inf", "{family} {key:?}");
            let count = samples
                .iter()
                .find(|(n, l, _)| {
                    *n == format!("{family}_count")
                        && l.clone().into_iter().collect::<Vec<_>>() == key
                })
                .map(|s| s.2);
            assert_eq!(count, Some(*last), "{family} {key:?}: +Inf is the count");
        }
    }
    samples
}

fn value_of(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.2)
}

fn sum_of(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|(n, _, _)| n == name)
        .map(|s| s.2)
        .sum()
}

#[test]
fn metrics_count_calls_errors_latency_and_log_syncs_in_the_exposition_format() {
    let tmp = TempDir::new("metrics");
    let server = Server::start(
        tmp.path(),
        &["--partitions", "2", "--demo", "--metrics", "127.0.0.1:0"],
    )
    .unwrap();
    let metrics = server
        .extra("metrics")
        .expect("the ready line says metrics=ADDR");
    let before = parse_exposition(&scrape(&metrics));
    assert_eq!(value_of(&before, "ohm_build_info", &[]), Some(1.0));
    assert_eq!(sum_of(&before, "ohm_partition_calls_committed_total"), 0.0);
    runtime().block_on(async {
        let c = server.client("demo.token").await;
        let names = Value::text("Alice,Bob,Carol");
        c.call("initialize", vec![Value::Int(3), names])
            .await
            .unwrap();
        for i in 0..200i64 {
            let args = vec![
                Value::Int(2_125_550_000 + i),
                Value::Int(1 + i % 3),
                Value::Int(2),
            ];
            c.call("vote", args).await.unwrap();
        }
        let e = c.call("no_such_procedure", vec![]).await.unwrap_err();
        assert!(matches!(&e, ClientError::Server(r) if r.code == ErrorCode::UnknownProcedure));
        let e = c.sql("SELEC 1").await.unwrap_err();
        assert!(matches!(&e, ClientError::Server(r) if r.code == ErrorCode::Sql));
        // While the connection is open, it is counted.
        let during = parse_exposition(&scrape(&metrics));
        assert_eq!(
            value_of(&during, "ohm_tenant_connections", &[("tenant", "demo")]),
            Some(1.0)
        );
        assert!(value_of(&during, "ohm_connections", &[]).unwrap() >= 1.0);
    });
    let after = parse_exposition(&scrape(&metrics));
    let demo = |name: &str, extra: &[(&str, &str)]| {
        let mut want = vec![("tenant", "demo")];
        want.extend_from_slice(extra);
        value_of(&after, name, &want)
    };
    // 201 calls answered (initialize, 200 votes), one unknown; one sql.
    assert_eq!(
        demo("ohm_tenant_requests_total", &[("op", "call")]),
        Some(202.0)
    );
    assert_eq!(
        demo("ohm_tenant_requests_total", &[("op", "sql")]),
        Some(1.0)
    );
    assert_eq!(
        demo("ohm_tenant_errors_total", &[("code", "unknown_procedure")]),
        Some(1.0)
    );
    assert_eq!(
        demo("ohm_tenant_errors_total", &[("code", "sql")]),
        Some(1.0)
    );
    assert_eq!(
        demo("ohm_tenant_request_seconds_count", &[("op", "call")]),
        Some(202.0)
    );
    assert!(demo("ohm_tenant_request_seconds_sum", &[("op", "call")]).unwrap() > 0.0);
    // The votes ran on their partitions; initialize ran on the coordinator.
    assert!(sum_of(&after, "ohm_partition_calls_committed_total") >= 200.0);
    assert!(sum_of(&after, "ohm_partition_log_sync_seconds_count") >= 1.0);
    assert_eq!(
        value_of(
            &after,
            "ohm_partition_role",
            &[("partition", "0"), ("role", "leader")]
        ),
        Some(1.0)
    );
    // Rows and fuel are as the partitions last published them (a fraction
    // of a second old): read again until they are there.
    let sum_demo = |samples: &[Sample], name: &str| -> f64 {
        samples
            .iter()
            .filter(|(n, l, _)| n == name && l["tenant"] == "demo")
            .map(|s| s.2)
            .sum()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let published = loop {
        let page = parse_exposition(&scrape(&metrics));
        let done = sum_demo(&page, "ohm_tenant_rows") >= 200.0
            && sum_demo(&page, "ohm_tenant_fuel_used_total") > 0.0;
        if done || std::time::Instant::now() >= deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let rows = sum_demo(&published, "ohm_tenant_rows");
    assert!(rows >= 200.0, "the demo's rows: {rows}");
    assert!(
        sum_demo(&published, "ohm_tenant_fuel_used_total") > 0.0,
        "the votes burned fuel"
    );
    assert_eq!(demo("ohm_tenant_in_flight", &[]), Some(0.0));
    assert_eq!(value_of(&after, "ohm_metrics_truncated", &[]), Some(0.0));
}

#[test]
fn json_logs_are_one_object_a_line() {
    let tmp = TempDir::new("json-logs");
    let err = tmp.path().join("stderr.log");
    let mut child = std::process::Command::new(common::ohm_binary())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--partitions",
            "1",
            "--log-format",
            "json",
        ])
        .arg("--data")
        .arg(tmp.path().join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert!(line.starts_with("ready "), "{line}");
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let log = std::fs::read_to_string(&err).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 2, "{log}");
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{l}");
        assert!(v["message"].is_string(), "{l}");
    }
    assert!(
        log.contains("\"message\":\"stopped; everything acknowledged is durable\""),
        "{log}"
    );
}
