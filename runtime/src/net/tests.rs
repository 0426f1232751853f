//! The shell and the driver together over real quinn on loopback, with a
//! toy service that echoes call arguments.

use super::endpoint;
use super::frame::FrameReader;
use super::server::{serve, Replier, Service};
use super::tls::{self, ServerIdentity};
use crate::driver::{CallResult, Client, ClientConfig, ClientError, Trust};
use crate::proto::codec;
use crate::proto::{ErrorCode, ErrorReply, Reply, Request, RequestFrame, ALPN, FRAME_BYTES_MAX};
use crate::types::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "let-me-in";

struct Echo;

/// Echo calls of `BIG_ECHO_BYTES` or more taken so far (their answers are
/// queued as they are taken).
static BIG_ECHOES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// A stream's flow-control window (`endpoint::STREAM_WINDOW_BYTES`) and
/// the echo that fills three quarters of it.
const WINDOW_BYTES: usize = endpoint::STREAM_WINDOW_BYTES as usize;
const BIG_ECHO_BYTES: usize = WINDOW_BYTES / 4 * 3;

impl Service for Echo {
    type Session = ();
    fn authenticate(&self, token: &str) -> Result<((), Reply), ErrorReply> {
        if token == TOKEN {
            Ok((
                (),
                Reply::Authenticated {
                    tenant: "t".into(),
                    principal: "p".into(),
                    admin: false,
                    role: "owner".into(),
                },
            ))
        } else {
            Err(ErrorReply::new(ErrorCode::AuthFailed, "unknown token"))
        }
    }
    fn dispatch(&self, _: &Arc<()>, request: Request, reply: Replier) {
        match request {
            Request::Call {
                procedure, args, ..
            } if procedure == "echo" => {
                let value = args.into_iter().next().unwrap_or(Value::Null);
                if matches!(&value, Value::Bytes(b) if b.len() >= BIG_ECHO_BYTES) {
                    BIG_ECHOES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                reply.send(Ok(Reply::Value(value)))
            }
            // Dropped unanswered: the shell must answer `internal`.
            Request::Call { procedure, .. } if procedure == "forget" => drop(reply),
            _ => reply.send(Err(ErrorReply::new(ErrorCode::NotSupported, "toy"))),
        }
    }
}

fn identity() -> ServerIdentity {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    ServerIdentity {
        chain: vec![c.cert.der().clone()],
        key: rustls::pki_types::PrivateKeyDer::try_from(c.signing_key.serialize_der()).unwrap(),
    }
}

struct Node {
    addr: SocketAddr,
    fingerprint: String,
    cert_pem: Vec<u8>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn start() -> Node {
    let id = identity();
    let ep = endpoint::server("127.0.0.1:0".parse().unwrap(), &id).unwrap();
    let addr = ep.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let chain = id.chain.iter().map(|c| c.to_vec()).collect();
    tokio::spawn(serve(
        ep,
        Arc::new(Echo),
        chain,
        async move {
            let _ = rx.await;
        },
        async {},
    ));
    Node {
        addr,
        fingerprint: id.fingerprint(),
        cert_pem: id.cert_pem().into_bytes(),
        stop: Some(tx),
    }
}

fn config(node: &Node, token: &str) -> ClientConfig {
    ClientConfig::new(
        node.addr.to_string(),
        Trust::Fingerprint(node.fingerprint.clone()),
        token,
    )
}

#[tokio::test]
async fn auth_ok_bad_token_and_ca_trust() {
    let node = start();
    let client = Client::connect(config(&node, TOKEN)).await.unwrap();
    assert_eq!(client.session().tenant, "t");
    let r = client.call("echo", vec![Value::Int(7)]).await.unwrap();
    assert_eq!(r, CallResult::Value(Value::Int(7)));
    let e = client.call("forget", vec![]).await.unwrap_err();
    assert!(
        matches!(e, ClientError::Server(ref r) if r.code == ErrorCode::Internal),
        "{e}"
    );
    client.close().await;

    match Client::connect(config(&node, "wrong")).await {
        Err(ClientError::Auth { message }) => assert_eq!(message, "unknown token"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("wrong token accepted"),
    }
    let mut ca = config(&node, TOKEN);
    ca.trust = Trust::CaPem(node.cert_pem.clone());
    Client::connect(ca).await.unwrap().close().await;
}

#[tokio::test]
async fn wrong_fingerprint_is_a_certificate_error() {
    let node = start();
    let other = identity().fingerprint();
    let mut cfg = config(&node, TOKEN);
    cfg.trust = Trust::Fingerprint(other.clone());
    match Client::connect(cfg).await {
        Err(ClientError::Certificate { message }) => {
            assert!(
                message.contains(&other) && message.contains(&node.fingerprint),
                "{message}"
            );
        }
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("wrong fingerprint accepted"),
    }
    let mut cfg = config(&node, TOKEN);
    cfg.trust = Trust::CaPem(identity().cert_pem().into_bytes());
    assert!(matches!(
        Client::connect(cfg).await,
        Err(ClientError::Certificate { .. })
    ));
}

#[tokio::test]
async fn server_down_is_unreachable_within_the_timeout() {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    drop(sock);
    let mut cfg = ClientConfig::new(
        addr.to_string(),
        Trust::Fingerprint(tls::fingerprint(b"x")),
        TOKEN,
    );
    cfg.connect_timeout = Duration::from_millis(700);
    let t = Instant::now();
    match Client::connect(cfg).await {
        Err(ClientError::Unreachable { message, .. }) => {
            assert!(message.contains("ohm serve"), "{message}")
        }
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("connected to nothing"),
    }
    assert!(t.elapsed() < Duration::from_secs(3));
}

async fn pipelined(client: &Client, tasks: usize, per_task: usize) {
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let c = client.clone();
        set.spawn(async move {
            let mut inner = tokio::task::JoinSet::new();
            for i in 0..per_task {
                let c = c.clone();
                let v = (t * per_task + i) as i64;
                inner.spawn(async move { (v, c.call("echo", vec![Value::Int(v)]).await) });
            }
            while let Some(r) = inner.join_next().await {
                let (v, r) = r.unwrap();
                assert_eq!(r.unwrap(), CallResult::Value(Value::Int(v)));
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_pipelined_calls_from_eight_tasks() {
    let node = start();
    let client = Client::connect(config(&node, TOKEN)).await.unwrap();
    pipelined(&client, 8, 1250).await;
    client.close().await;
}

/// A request over the frame limit is answered `too_large` by the client
/// itself, never written; the stream's writer must go on with the next
/// one (it once waited for good: the request wrote nothing, and so
/// nothing was left to wake it).
#[tokio::test]
async fn a_request_over_the_frame_limit_leaves_its_stream_working() {
    let node = start();
    let mut cfg = config(&node, TOKEN);
    cfg.streams = 1;
    let client = Client::connect(cfg).await.unwrap();
    let huge = Value::Bytes(vec![0u8; FRAME_BYTES_MAX + 1].into());
    match client.call("echo", vec![huge]).await {
        Err(ClientError::Server(e)) => assert_eq!(e.code, ErrorCode::TooLarge, "{e}"),
        other => panic!("{other:?}"),
    }
    let small = tokio::time::timeout(
        Duration::from_secs(10),
        client.call("echo", vec![Value::Int(5)]),
    )
    .await
    .expect("the stream's writer stopped after a request over the frame limit");
    assert_eq!(small.unwrap(), CallResult::Value(Value::Int(5)));
    client.close().await;
}

async fn raw_connect(node: &Node) -> quinn::Connection {
    let ep = endpoint::client(
        node.addr,
        &tls::ClientTrust::Fingerprint(node.fingerprint.clone()),
    )
    .unwrap();
    ep.connect(node.addr, "localhost").unwrap().await.unwrap()
}

/// A new stream, its answers read through a `FrameReader`.
async fn open(conn: &quinn::Connection) -> (quinn::SendStream, FrameReader) {
    let (send, recv) = conn.open_bi().await.unwrap();
    (send, FrameReader::new(recv))
}

async fn roundtrip(
    send: &mut quinn::SendStream,
    recv: &mut FrameReader,
    bytes: &[u8],
) -> crate::proto::ResponseFrame {
    send.write_all(bytes).await.unwrap();
    let mut buf = Vec::new();
    assert!(recv.frame_within(&mut buf, FRAME_BYTES_MAX).await.unwrap());
    codec::decode_response(&buf).unwrap()
}

fn frame(id: u64, request: Request) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode_request(&RequestFrame { id, request }, &mut out).unwrap();
    out
}

/// `certificate` is answered before `auth` (and after) with the chain the
/// handshake showed: its end-entity certificate has the node's
/// fingerprint, so a client that can pin only by a trusted certificate can
/// fetch it, check it, and connect again trusting it alone.
#[tokio::test]
async fn the_certificate_is_answered_before_auth() {
    let node = start();
    let conn = raw_connect(&node).await;
    let (mut s, mut r) = open(&conn).await;
    let answer = roundtrip(&mut s, &mut r, &frame(1, Request::Certificate)).await;
    let Ok(Reply::Certificate { chain }) = answer.response else {
        panic!("{:?}", answer.response)
    };
    assert_eq!(chain.len(), 1);
    assert_eq!(crate::net::tls::fingerprint(&chain[0]), node.fingerprint);
    // Still unauthenticated for everything else.
    let status = roundtrip(&mut s, &mut r, &frame(2, Request::Status)).await;
    assert_eq!(
        status.response.unwrap_err().code,
        ErrorCode::Unauthenticated
    );
}

#[tokio::test]
async fn malformed_and_oversized_frames_close_only_their_stream() {
    let node = start();
    let conn = raw_connect(&node).await;
    let (mut s1, mut r1) = open(&conn).await;
    let r = roundtrip(&mut s1, &mut r1, &frame(1, Request::Status)).await;
    assert_eq!(r.response.unwrap_err().code, ErrorCode::Unauthenticated);
    let r = roundtrip(
        &mut s1,
        &mut r1,
        &frame(
            2,
            Request::Auth {
                token: TOKEN.into(),
            },
        ),
    )
    .await;
    assert!(matches!(r.response, Ok(Reply::Authenticated { .. })));

    // A readable id, an unknown op: bad_request with that id, stream closed.
    let (mut s2, mut r2) = open(&conn).await;
    let body = [0x82, 0xa2, b'i', b'd', 0x09, 0xa2, b'o', b'p', 0xa1, b'x'];
    let mut bad = (body.len() as u32).to_be_bytes().to_vec();
    bad.extend(body);
    let r = roundtrip(&mut s2, &mut r2, &bad).await;
    assert_eq!(r.id, 9);
    let e = r.response.unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest);
    assert!(e.message.contains("unknown op"), "{}", e.message);
    let mut rest = Vec::new();
    assert!(
        !r2.frame_within(&mut rest, FRAME_BYTES_MAX).await.unwrap(),
        "stream finished"
    );

    // An oversized length prefix: too_large.
    let (mut s3, mut r3) = open(&conn).await;
    let r = roundtrip(&mut s3, &mut r3, &u32::MAX.to_be_bytes()).await;
    assert_eq!(r.response.unwrap_err().code, ErrorCode::TooLarge);

    // The first stream and the connection still work.
    let r = roundtrip(
        &mut s1,
        &mut r1,
        &frame(
            3,
            Request::Call {
                procedure: "echo".into(),
                args: vec![Value::text("hi")],
                key: None,
                timeout_ms: None,
            },
        ),
    )
    .await;
    assert_eq!(r.id, 3);
    assert_eq!(r.response.unwrap(), Reply::Value(Value::text("hi")));
    let (mut s4, mut r4) = open(&conn).await;
    let r = roundtrip(
        &mut s4,
        &mut r4,
        &frame(
            4,
            Request::Call {
                procedure: "echo".into(),
                args: vec![],
                key: None,
                timeout_ms: None,
            },
        ),
    )
    .await;
    assert_eq!(r.response.unwrap(), Reply::Value(Value::Null));
}

fn echo(id: u64, value: Value) -> Vec<u8> {
    frame(
        id,
        Request::Call {
            procedure: "echo".into(),
            args: vec![value],
            key: None,
            timeout_ms: None,
        },
    )
}

/// A raw connection to `node`, authenticated by `auth` (id 1) on its
/// first stream, and that stream.
async fn authenticated(node: &Node) -> (quinn::Connection, quinn::SendStream, FrameReader) {
    let conn = raw_connect(node).await;
    let (mut send, mut recv) = open(&conn).await;
    let auth = Request::Auth {
        token: TOKEN.into(),
    };
    let r = roundtrip(&mut send, &mut recv, &frame(1, auth)).await;
    assert!(matches!(r.response, Ok(Reply::Authenticated { .. })));
    (conn, send, recv)
}

/// One task writes the answers of all of a connection's streams: a stream
/// whose client reads nothing (its flow-control window full) must hold
/// back only its own answers, and they must all arrive once it reads.
#[tokio::test]
async fn a_stream_its_client_does_not_read_holds_back_only_itself() {
    let node = start();
    let (conn, mut s1, mut r1) = authenticated(&node).await;
    // Three answers of 3/4 of the stream's window each: the second fills
    // it. All three are queued before the other stream is used.
    let big = Value::Bytes(vec![7u8; BIG_ECHO_BYTES].into());
    let before = BIG_ECHOES.load(std::sync::atomic::Ordering::SeqCst);
    for id in 2..=4 {
        s1.write_all(&echo(id, big.clone())).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while BIG_ECHOES.load(std::sync::atomic::Ordering::SeqCst) < before + 3 {
        assert!(
            Instant::now() < deadline,
            "the node did not take the big echoes"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (mut s2, mut r2) = open(&conn).await;
    for id in 5..=7 {
        let small = Value::Int(id as i64);
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            roundtrip(&mut s2, &mut r2, &echo(id, small.clone())),
        )
        .await
        .expect("a stream not read held back another stream's answers");
        assert_eq!(answer.id, id);
        assert_eq!(answer.response.unwrap(), Reply::Value(small));
    }
    let mut buf = Vec::new();
    for id in 2..=4 {
        assert!(r1.frame_within(&mut buf, FRAME_BYTES_MAX).await.unwrap());
        let answer = codec::decode_response(&buf).unwrap();
        assert_eq!(answer.id, id);
        assert_eq!(answer.response.unwrap(), Reply::Value(big.clone()));
    }
}

/// Frames of every size around the read-ahead (`READ_AHEAD_BYTES`),
/// written back to back, so each read of the stream ends somewhere inside
/// a prefix or a body, or between frames: the node reads each whole and
/// in order, and so does the client's reader its answers. A frame cut off
/// by the end of the stream is answered `bad_request`.
#[tokio::test]
async fn frames_split_anywhere_by_the_read_ahead_are_read_whole() {
    const AHEAD: usize = super::frame::READ_AHEAD_BYTES;
    let node = start();
    let (_conn, mut s, mut r) = authenticated(&node).await;
    let mut sizes = vec![0, 1, AHEAD - 64, AHEAD - 8, AHEAD, AHEAD + 1, 3 * AHEAD, 17];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Mostly small (many frames per read), now and then over the
        // read-ahead.
        sizes.push(match x % 8 {
            0 => (x >> 8) as usize % (3 * AHEAD),
            _ => (x >> 8) as usize % 64,
        });
    }
    let values: Vec<Value> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| Value::Bytes(vec![i as u8; *n].into()))
        .collect();
    let mut bytes = Vec::new();
    for (i, v) in values.iter().enumerate() {
        bytes.extend(echo(2 + i as u64, v.clone()));
    }
    // A prefix that says 100 bytes, and 10 of them before the end.
    bytes.extend(100u32.to_be_bytes());
    bytes.extend([0u8; 10]);
    let writer = tokio::spawn(async move {
        s.write_all(&bytes).await.unwrap();
        s.finish().unwrap();
    });
    let mut buf = Vec::new();
    for (i, v) in values.iter().enumerate() {
        assert!(r.frame_within(&mut buf, FRAME_BYTES_MAX).await.unwrap());
        let answer = codec::decode_response(&buf).unwrap();
        assert_eq!(answer.id, 2 + i as u64, "frame {i} of {} bytes", sizes[i]);
        assert_eq!(
            answer.response.unwrap(),
            Reply::Value(v.clone()),
            "frame {i}"
        );
    }
    assert!(r.frame_within(&mut buf, FRAME_BYTES_MAX).await.unwrap());
    let e = codec::decode_response(&buf).unwrap().response.unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest);
    assert!(
        e.message.contains("stream ended inside a frame"),
        "{}",
        e.message
    );
    writer.await.unwrap();
}

#[tokio::test]
async fn wrong_alpn_is_closed() {
    let node = start();
    let mut rc =
        tls::client_config(&tls::ClientTrust::Fingerprint(node.fingerprint.clone())).unwrap();
    rc.alpn_protocols = vec![b"h3".to_vec()];
    let qc = quinn::crypto::rustls::QuicClientConfig::try_from(rc).unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(qc)));
    let r = ep.connect(node.addr, "localhost").unwrap().await;
    assert!(r.is_err(), "ALPN other than {:?} accepted", ALPN);
}

/// Not a test of speed (nothing asserted): prints echo calls/s through one
/// Client on each client runtime flavour. `cargo test -p ohm --lib
/// echo_throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn echo_throughput() {
    const CALLS: usize = 200_000;
    for (name, rt) in [
        (
            "current_thread",
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        ),
        (
            "multi_thread(2)",
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        ),
    ] {
        // The node runs on its own runtime thread so only the client side varies.
        let server_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let node = server_rt.block_on(async { start() });
        rt.block_on(async {
            let client = Client::connect(config(&node, TOKEN)).await.unwrap();
            pipelined(&client, 8, 2_000).await;
            let t = Instant::now();
            pipelined(&client, 8, CALLS / 8).await;
            let s = t.elapsed().as_secs_f64();
            println!(
                "echo through Client, client runtime {name}: {:.0} calls/s",
                CALLS as f64 / s
            );
            client.close().await;
        });
        drop(node);
        server_rt.shutdown_timeout(Duration::from_secs(1));
    }
}
