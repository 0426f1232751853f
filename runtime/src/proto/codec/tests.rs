use super::*;
use crate::proto::*;
use crate::types::Value;
use rust_decimal::Decimal;
use std::sync::Arc;

fn body(frame: &[u8]) -> &[u8] {
    let n = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
    assert_eq!(n, frame.len() - PREFIX_BYTES, "prefix is the body length");
    &frame[PREFIX_BYTES..]
}

fn scalars() -> Vec<Value> {
    vec![
        Value::Null,
        Value::Bool(true),
        Value::Bool(false),
        Value::Int(0),
        Value::Int(-1),
        Value::Int(127),
        Value::Int(-33),
        Value::Int(i64::MIN),
        Value::Int(i64::MAX),
        Value::Double(1.5),
        Value::Double(-0.0),
        Value::text(""),
        Value::text("héllo, a string longer than twenty-three bytes"),
        Value::Bytes(Arc::from(&[0u8, 1, 255][..])),
    ]
}

/// Equality that also tells Int from Double (Value's == compares numbers).
fn same(a: &Value, b: &Value) -> bool {
    a.kind() == b.kind() && a == b
}

fn round_request(request: Request) {
    let frame = RequestFrame { id: 77, request };
    let mut out = Vec::new();
    encode_request(&frame, &mut out).unwrap();
    let back = decode_request(body(&out)).unwrap();
    assert_eq!(back, frame);
    if let (Request::Call { args: a, .. }, Request::Call { args: b, .. }) =
        (&frame.request, &back.request)
    {
        assert!(a.iter().zip(b).all(|(x, y)| same(x, y)));
    }
}

#[test]
fn every_request_round_trips() {
    round_request(Request::Auth {
        token: "t0k".into(),
    });
    round_request(Request::Call {
        procedure: "vote".into(),
        args: scalars(),
        key: None,
        timeout_ms: None,
    });
    round_request(Request::Call {
        procedure: "vote".into(),
        args: vec![Value::Int(1)],
        key: Some("retry-7f3a".into()),
        timeout_ms: Some(250),
    });
    round_request(Request::Call {
        procedure: "p".into(),
        args: vec![],
        key: None,
        timeout_ms: None,
    });
    round_request(Request::Sql {
        sql: "SELECT 1; SELECT 2".into(),
        params: vec![],
        timeout_ms: None,
    });
    round_request(Request::Sql {
        sql: "SELECT $1, $2".into(),
        params: vec![Value::Int(7), Value::text("x'); DROP TABLE t; --")],
        timeout_ms: Some(250),
    });
    round_request(Request::Load(crate::proto::LoadRequest {
        table: "t".into(),
        columns: vec!["a".into(), "b".into()],
        rows: vec![
            vec![Value::Int(1), Value::Null],
            vec![Value::text("x"), Value::Bool(true)],
        ],
        key: Some("load:1".into()),
        max_errors: 3,
        timeout_ms: Some(9),
    }));
    round_request(Request::Load(crate::proto::LoadRequest {
        table: "t".into(),
        columns: vec![],
        rows: vec![],
        key: None,
        max_errors: 0,
        timeout_ms: None,
    }));
    round_request(Request::Deploy {
        name: "m".into(),
        wasm: vec![0, 97, 115, 109],
    });
    round_request(Request::Drop { name: "m".into() });
    round_request(Request::Catalog);
    round_request(Request::Status);
    round_request(Request::Certificate);
    round_request(Request::CreateTenant {
        name: "acme".into(),
    });
    round_request(Request::TenantQuota {
        tenant: "acme".into(),
        set: vec![],
    });
    round_request(Request::TenantQuota {
        tenant: "acme".into(),
        set: vec![("rows_max".into(), Some(5)), ("calls_per_sec".into(), None)],
    });
    round_request(Request::TokenCreate {
        tenant: None,
        name: "ro".into(),
        role: "reader".into(),
        grants: vec![],
    });
    round_request(Request::TokenCreate {
        tenant: Some("acme".into()),
        name: "app".into(),
        role: "caller".into(),
        grants: vec!["vote".into(), "*".into()],
    });
    round_request(Request::TokenRevoke {
        tenant: Some("acme".into()),
        name: "app".into(),
    });
    round_request(Request::TokenRevoke {
        tenant: None,
        name: "app".into(),
    });
    round_request(Request::Tokens { tenant: None });
    round_request(Request::Tokens {
        tenant: Some("acme".into()),
    });
}

/// More grants than a principal may hold is that request's fault alone:
/// it is answered `bad_value`, and the stream goes on.
#[test]
fn too_many_grants_is_a_bad_value() {
    let grants = vec!["p".to_string(); crate::catalog::GRANTS_MAX + 1];
    let frame = RequestFrame {
        id: 9,
        request: Request::TokenCreate {
            tenant: None,
            name: "app".into(),
            role: "caller".into(),
            grants,
        },
    };
    let mut out = Vec::new();
    encode_request(&frame, &mut out).unwrap();
    let e = decode_request(&out[PREFIX_BYTES..]).unwrap_err();
    assert!(e.bad_value, "{e:?}");
    assert_eq!(e.id, Some(9));
    assert!(e.message.contains("grants, over"), "{e}");
}

#[test]
fn a_tenant_quota_request_with_too_many_changes_is_refused() {
    let frame = RequestFrame {
        id: 4,
        request: Request::TenantQuota {
            tenant: "acme".into(),
            set: (0..=crate::proto::QUOTA_CHANGES_MAX)
                .map(|i| (format!("q{i}"), Some(1)))
                .collect(),
        },
    };
    let mut buf = Vec::new();
    encode_request(&frame, &mut buf).unwrap();
    let e = decode_request(&buf[4..]).unwrap_err();
    assert!(e.to_string().contains("quota changes"), "{e}");
    assert_eq!((e.id, e.bad_value), (Some(4), true));
}

#[test]
fn decimal_and_timestamp_args_travel_as_text_and_int() {
    let d: Decimal = "12.50".parse().unwrap();
    let frame = RequestFrame {
        id: 1,
        request: Request::Call {
            procedure: "p".into(),
            args: vec![Value::Decimal(d), Value::Timestamp(1_700_000_000_000_000)],
            key: None,
            timeout_ms: None,
        },
    };
    let mut out = Vec::new();
    encode_request(&frame, &mut out).unwrap();
    let Request::Call { args, .. } = decode_request(body(&out)).unwrap().request else {
        panic!("not a call")
    };
    assert!(same(&args[0], &Value::text("12.50")));
    assert!(same(&args[1], &Value::Int(1_700_000_000_000_000)));
}

fn rows() -> Rows {
    Rows {
        columns: vec![
            Column {
                name: "k".into(),
                ty: Some("BIGINT".into()),
            },
            Column {
                name: "price".into(),
                ty: Some("DECIMAL(10,2)".into()),
            },
            Column {
                name: "at".into(),
                ty: Some("TIMESTAMP".into()),
            },
            Column {
                name: "x".into(),
                ty: None,
            },
        ],
        rows: vec![
            vec![
                Value::Int(1),
                Value::Decimal("3.14".parse().unwrap()),
                Value::Timestamp(-5),
                Value::Null,
            ],
            vec![Value::Int(2), Value::Null, Value::Null, Value::Double(2.5)],
        ],
    }
}

fn round_response(response: std::result::Result<Reply, ErrorReply>) {
    round_frame(ResponseFrame {
        id: u64::MAX,
        response,
        leader: None,
    });
}

fn round_frame(frame: ResponseFrame) {
    let mut out = Vec::new();
    encode_response(&frame, &mut out).unwrap();
    let back = decode_response(body(&out)).unwrap();
    assert_eq!(back, frame);
    if let (Ok(Reply::Rows(a)), Ok(Reply::Rows(b))) = (&frame.response, &back.response) {
        for (x, y) in a.rows.iter().flatten().zip(b.rows.iter().flatten()) {
            assert!(same(x, y), "{x:?} vs {y:?}");
        }
    }
    if let (Ok(Reply::Value(a)), Ok(Reply::Value(b))) = (&frame.response, &back.response) {
        assert!(same(a, b), "{a:?} vs {b:?}");
    }
}

#[test]
fn a_forwarded_answer_says_where_the_leader_is() {
    round_frame(ResponseFrame {
        id: 7,
        response: Ok(Reply::Value(Value::Int(1))),
        leader: Some("10.0.0.2:7450".into()),
    });
    round_frame(ResponseFrame {
        id: 8,
        response: Err(ErrorReply::new(ErrorCode::Overloaded, "busy")),
        leader: Some("10.0.0.2:7450".into()),
    });
}

#[test]
fn every_reply_and_error_round_trips() {
    round_response(Ok(Reply::Authenticated {
        tenant: "t".into(),
        principal: "p".into(),
        admin: true,
        role: "admin".into(),
    }));
    let desc = |name: &str, role: &str, grants: &[&str]| crate::proto::PrincipalDesc {
        name: name.into(),
        role: role.into(),
        grants: grants.iter().map(|g| g.to_string()).collect(),
    };
    round_response(Ok(Reply::Token {
        tenant: "acme".into(),
        principal: desc("app", "caller", &["vote", "results"]),
        token: "ohm_00".into(),
    }));
    round_response(Ok(Reply::Certificate {
        chain: vec![vec![0x30, 0x82, 1, 2], vec![]],
    }));
    round_response(Ok(Reply::Revoked {
        tenant: "acme".into(),
        principal: "app".into(),
    }));
    round_response(Ok(Reply::Loaded(crate::proto::Loaded {
        loaded: 9,
        rejected: vec![
            crate::proto::RejectedRow {
                row: 2,
                column: Some("price".into()),
                message: "not a number".into(),
            },
            crate::proto::RejectedRow {
                row: 7,
                column: None,
                message: "duplicate key".into(),
            },
        ],
        again: true,
    })));
    round_response(Ok(Reply::Principals {
        tenant: "acme".into(),
        principals: vec![desc("owner", "owner", &[]), desc("ro", "reader", &[])],
    }));
    let mut values = scalars();
    values.push(Value::Decimal("-0.001".parse().unwrap()));
    values.push(Value::Timestamp(1_700_000_000_000_000));
    values.push(Value::TimestampTz(-1_700_000_000_000_000));
    values.push(Value::Date(-719_528));
    values.push(Value::Time(86_400_000_000));
    values.push(Value::Interval(crate::types::Interval::new(
        -14,
        3,
        i64::MIN,
    )));
    values.push(Value::Uuid([7; 16]));
    for v in values {
        round_response(Ok(Reply::Value(v)));
    }
    round_response(Ok(Reply::Rows(rows())));
    round_response(Ok(Reply::Sql(vec![
        SqlResult::Rows(rows()),
        SqlResult::Affected(3),
        SqlResult::Done("CREATE TABLE".into()),
    ])));
    round_response(Ok(Reply::Deployed {
        module: "m".into(),
        procedures: vec!["a".into(), "b".into()],
        replaced: false,
        warnings: vec![],
    }));
    round_response(Ok(Reply::Deployed {
        module: "m".into(),
        procedures: vec!["a".into()],
        replaced: true,
        warnings: vec!["statement s writes t, a replicated table".into()],
    }));
    round_response(Ok(Reply::Dropped {
        module: "m".into(),
        existed: true,
    }));
    round_response(Ok(Reply::Catalog(CatalogInfo {
        tenant: "t".into(),
        tables: vec![TableInfo {
            name: "kv".into(),
            columns: vec![("k".into(), "BIGINT".into(), false)],
            primary_key: vec!["k".into()],
            partition_column: Some("k".into()),
            rows: 9,
        }],
        procedures: vec![
            ProcedureInfo {
                name: "get".into(),
                module: "m".into(),
                params: vec![("k".into(), "BIGINT".into())],
                partition: Some(("kv.k".into(), 0)),
            },
            ProcedureInfo {
                name: "all".into(),
                module: "m".into(),
                params: vec![],
                partition: None,
            },
        ],
    })));
    round_response(Ok(Reply::Status(StatusInfo {
        version: "0.1.0".into(),
        node_id: 1,
        uptime_ms: 2,
        durability: "sync".into(),
        connections: 3,
        partitions: vec![PartitionStatus {
            id: 0,
            committed: 1,
            failed: 2,
            queued: 3,
            durable_lsn: 4,
            log_bytes: 5,
            rows: 6,
            role: "follower".into(),
            leader: 3,
            applied: 4,
            replicas: vec![
                crate::proto::ReplicaStatus {
                    node: 1,
                    matched: None,
                },
                crate::proto::ReplicaStatus {
                    node: 3,
                    matched: Some(u64::MAX),
                },
            ],
            disk_full: true,
        }],
        peers: vec![
            crate::proto::PeerLink {
                node: 3,
                addr: "127.0.0.1:7471".into(),
                connected: false,
                last_error: Some("gone".into()),
            },
            crate::proto::PeerLink {
                node: 2,
                addr: "[::1]:7461".into(),
                connected: true,
                last_error: None,
            },
        ],
    })));
    round_response(Ok(Reply::TenantCreated {
        tenant: "t".into(),
        principal: "admin".into(),
        token: "secret".into(),
    }));
    round_response(Ok(Reply::Quota {
        tenant: "t".into(),
        quota: vec![
            crate::proto::QuotaValue {
                name: "rows_max".into(),
                value: 5,
                set: true,
            },
            crate::proto::QuotaValue {
                name: "calls_per_sec".into(),
                value: u64::MAX,
                set: false,
            },
        ],
    }));
    for code in ErrorCode::ALL {
        round_response(Err(ErrorReply::new(code, "why")));
    }
    round_response(Err(ErrorReply::not_leader(
        "go there",
        Some("10.0.0.2:7450".into()),
    )));
}

/// Builds a body with rmp-serde, as a stranger's stock library would.
fn stock<T: serde::Serialize>(v: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(v).unwrap()
}

#[derive(serde::Serialize)]
struct StockCall<'a> {
    extra: Vec<u32>,
    args: (i32, &'a str),
    procedure: &'a str,
    op: &'a str,
    id: u8,
    future: std::collections::BTreeMap<&'a str, Vec<u8>>,
}

#[test]
fn any_key_order_and_unknown_keys_are_accepted() {
    let b = stock(&StockCall {
        extra: vec![1, 2],
        args: (-3, "x"),
        procedure: "p",
        op: "call",
        id: 9,
        future: [("k", vec![1])].into_iter().collect(),
    });
    let f = decode_request(&b).unwrap();
    assert_eq!(f.id, 9);
    assert_eq!(
        f.request,
        Request::Call {
            procedure: "p".into(),
            args: vec![Value::Int(-3), Value::text("x")],
            key: None,
            timeout_ms: None,
        }
    );
}

fn err(b: &[u8]) -> DecodeError {
    decode_request(b).unwrap_err()
}

#[test]
fn bad_requests_name_the_field_and_keep_the_id() {
    #[derive(serde::Serialize)]
    struct R<'a> {
        id: u64,
        op: &'a str,
        procedure: u32,
    }
    let e = err(&stock(&R {
        id: 5,
        op: "call",
        procedure: 3,
    }));
    assert_eq!(e.id, Some(5));
    assert!(e.to_string().contains("`procedure`"), "{e}");
    assert!(
        e.to_string().contains("expected a string, found int"),
        "{e}"
    );

    #[derive(serde::Serialize)]
    struct M<'a> {
        id: u64,
        op: &'a str,
    }
    let e = err(&stock(&M {
        id: 6,
        op: "launch",
    }));
    assert_eq!(e.id, Some(6));
    assert!(e.to_string().contains("unknown op \"launch\""), "{e}");

    let e = err(&stock(&M {
        id: 7,
        op: "deploy",
    }));
    assert!(e.to_string().contains("missing field `name`"), "{e}");

    let mut b = stock(&M {
        id: 8,
        op: "status",
    });
    b.push(0xc0);
    let e = err(&b);
    assert_eq!(e.id, Some(8));
    assert!(e.to_string().contains("trailing"), "{e}");

    #[derive(serde::Serialize)]
    struct A<'a> {
        id: u64,
        op: &'a str,
        procedure: &'a str,
        args: Vec<Vec<u8>>,
    }
    let e = err(&stock(&A {
        id: 1,
        op: "call",
        procedure: "p",
        args: vec![vec![]],
    }));
    assert!(e.to_string().contains("`args[0]`"), "{e}");

    #[derive(serde::Serialize)]
    struct K<'a> {
        id: u64,
        op: &'a str,
        procedure: &'a str,
        key: &'a str,
    }
    let long = "k".repeat(crate::partition::kept::KEY_BYTES_MAX + 1);
    for key in ["", long.as_str()] {
        let e = err(&stock(&K {
            id: 9,
            op: "call",
            procedure: "p",
            key,
        }));
        assert_eq!(e.id, Some(9));
        assert!(
            e.to_string()
                .contains(&format!("field `key` is {} bytes", key.len())),
            "{e}"
        );
    }
}

#[test]
fn hostile_bodies_are_errors_not_panics() {
    let mut good = Vec::new();
    let call = RequestFrame {
        id: 3,
        request: Request::Call {
            procedure: "p".into(),
            args: scalars(),
            key: None,
            timeout_ms: None,
        },
    };
    encode_request(&call, &mut good).unwrap();
    let good = body(&good).to_vec();
    for n in 0..good.len() {
        assert!(decode_request(&good[..n]).is_err(), "truncated at {n}");
        assert!(decode_response(&good[..n]).is_err());
    }
    // Huge declared lengths: map32, array32, str32, bin32 with no bytes.
    for b in [
        &[0xdf, 0xff, 0xff, 0xff, 0xff][..],
        &[
            0x81, 0xa4, b'a', b'r', b'g', b's', 0xdd, 0xff, 0xff, 0xff, 0xff,
        ],
        &[0x81, 0xa2, b'o', b'p', 0xdb, 0xff, 0xff, 0xff, 0xff],
        &[
            0x81, 0xa4, b'w', b'a', b's', b'm', 0xc6, 0xff, 0xff, 0xff, 0xff,
        ],
        &[0xc1],
        &[],
    ] {
        let e = decode_request(b).unwrap_err();
        assert!(!e.message.is_empty());
    }
    // Deep nesting under an unknown key.
    let mut deep = vec![0x81, 0xa1, b'x'];
    deep.extend(std::iter::repeat_n(0x91, 10_000));
    deep.push(0xc0);
    let e = err(&deep);
    assert!(e.to_string().contains("nested deeper"), "{e}");
    // A uint64 argument beyond BIGINT.
    let mut big = vec![0x84, 0xa2, b'i', b'd', 0x01, 0xa2, b'o', b'p', 0xa4];
    big.extend(b"call");
    big.extend([0xa9]);
    big.extend(b"procedure");
    big.extend([0xa1, b'p', 0xa4]);
    big.extend(b"args");
    big.extend([0x91, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    let e = err(&big);
    assert_eq!(e.id, Some(1));
    assert!(e.to_string().contains("outside BIGINT"), "{e}");
}

#[test]
fn unknown_error_codes_stay_readable() {
    #[derive(serde::Serialize)]
    struct E<'a> {
        code: &'a str,
        message: &'a str,
    }
    #[derive(serde::Serialize)]
    struct R<'a> {
        id: u64,
        error: E<'a>,
    }
    let b = stock(&R {
        id: 2,
        error: E {
            code: "brand_new",
            message: "m",
        },
    });
    let f = decode_response(&b).unwrap();
    let e = f.response.unwrap_err();
    assert_eq!(e.code, ErrorCode::Internal);
    assert_eq!(e.message, "[brand_new] m");
}

#[test]
fn oversized_bodies_are_refused_on_encode() {
    let frame = RequestFrame {
        id: 1,
        request: Request::Deploy {
            name: "m".into(),
            wasm: vec![0; FRAME_BYTES_MAX],
        },
    };
    let mut out = vec![9];
    assert!(encode_request(&frame, &mut out).is_err());
    assert_eq!(out, vec![9], "nothing appended");
}

#[test]
fn load_rows_are_bounded_and_their_bad_values_named() {
    // A row that is not an array, and a value nested too far, name where.
    let mut out = Vec::new();
    w::map(&mut out, 4);
    w::kv_uint(&mut out, "id", 5);
    w::kv_str(&mut out, "op", "load");
    w::kv_str(&mut out, "table", "t");
    w::str(&mut out, "rows");
    w::array(&mut out, 2);
    w::array(&mut out, 1);
    w::uint(&mut out, 1);
    w::uint(&mut out, 2);
    let e = decode_request(&out).unwrap_err();
    assert_eq!(e.id, Some(5));
    assert!(e.to_string().contains("rows[1]"), "{e}");
    // Over LOAD_ROWS_MAX rows is refused before any is read.
    let mut out = Vec::new();
    w::map(&mut out, 4);
    w::kv_uint(&mut out, "id", 6);
    w::kv_str(&mut out, "op", "load");
    w::kv_str(&mut out, "table", "t");
    w::str(&mut out, "rows");
    out.push(0xdd);
    out.extend_from_slice(&(crate::proto::LOAD_ROWS_MAX as u32 + 1).to_be_bytes());
    out.resize(out.len() + crate::proto::LOAD_ROWS_MAX + 1, 0x90);
    let e = decode_request(&out).unwrap_err();
    assert!(e.to_string().contains("per request"), "{e}");
}
