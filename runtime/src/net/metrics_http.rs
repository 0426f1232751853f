//! The metrics endpoint: plain HTTP/1.1 on TCP, `GET /metrics` answered
//! with what `page` renders (the Prometheus text format), anything else
//! with 404 or 405. One request per connection (`Connection: close`).
//!
//! Owns: the listener, reading a request head and writing the answer.
//! Must not: know what the page says (the node renders it), or let a
//! scraper hold more than its bounds: a request head is at most
//! `HEAD_BYTES_MAX`, read within `READ_TIMEOUT`, answered within
//! `WRITE_TIMEOUT`, and at most `SCRAPES_MAX` are served at once (more
//! wait in the kernel's backlog).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Bytes of a request's head (request line and headers) read at most.
pub const HEAD_BYTES_MAX: usize = 8 * 1024;
/// How long a scraper may take to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a scraper may take to read the answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read and dropped after refusing an oversized head.
pub const LINGER_BYTES_MAX: usize = 64 * 1024;
/// Scrapes served at once.
pub const SCRAPES_MAX: usize = 8;
/// The port a bare `--metrics` address without one gets (Prometheus's
/// registry of exporter ports has no entry for Ohm; 9464 is the
/// OpenTelemetry exporter's, as good as any).
pub const DEFAULT_PORT: u16 = 9464;

/// `--metrics`'s value: `host:port`, or a bare port (on loopback: the
/// endpoint is plain HTTP, so it listens beyond this machine only when
/// told an address).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse::<SocketAddr>().map_err(|e| {
        format!("--metrics {s:?}: {e}; give host:port (e.g. 127.0.0.1:{DEFAULT_PORT}) or a port")
    })
}

/// Binds `addr` (before the node says it is ready, so a port in use is an
/// error at start).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, page: Arc<dyn Fn() -> String + Send + Sync>) {
    let slots = Arc::new(Semaphore::new(SCRAPES_MAX));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, say: try again in a moment.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let page = page.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = one(stream, page).await;
        });
    }
}

/// Answers one request on `stream`.
async fn one(
    mut stream: TcpStream,
    page: Arc<dyn Fn() -> String + Send + Sync>,
) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) => {
            answer(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "the request head is over 8 KiB\n",
            )
            .await?;
            // Read what the client still sends (bounded), so closing with it
            // unread does not reset the connection before it reads the 431.
            let mut rest = [0u8; 1024];
            let drain = async {
                let mut left = LINGER_BYTES_MAX;
                while left > 0 {
                    match stream.read(&mut rest).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => left = left.saturating_sub(n),
                    }
                }
            };
            let _ = tokio::time::timeout(READ_TIMEOUT, drain).await;
            return Ok(());
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            let why = "no request head within 5 s\n";
            return answer(&mut stream, "408 Request Timeout", "text/plain", why).await;
        }
    };
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => {
            let Ok(body) = tokio::task::spawn_blocking(move || page()).await else {
                let why = "the node failed to render its metrics\n";
                return answer(&mut stream, "500 Internal Server Error", "text/plain", why).await;
            };
            answer(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
            .await
        }
        (_, "/metrics") => {
            answer(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                "GET /metrics\n",
            )
            .await
        }
        _ => {
            answer(
                &mut stream,
                "404 Not Found",
                "text/plain",
                "the metrics are at /metrics\n",
            )
            .await
        }
    }
}

/// The request head up to its blank line, or None past `HEAD_BYTES_MAX`.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if end > HEAD_BYTES_MAX {
                return Ok(None);
            }
            buf.truncate(end);
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
        if buf.len() > HEAD_BYTES_MAX {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn answer(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        // Our side is done: the client sees the end of the answer.
        stream.shutdown().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(r) => r,
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_the_page_at_metrics_and_nothing_else() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = tokio::spawn(serve(listener, Arc::new(|| "ohm_up 1\n".to_string())));
        let ok = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Content-Type: text/plain; version=0.0.4"),
            "{ok}"
        );
        assert!(ok.ends_with("\r\n\r\nohm_up 1\n"), "{ok}");
        let missing = get(addr, "GET / HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let post = get(addr, "POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        let huge = format!(
            "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(HEAD_BYTES_MAX)
        );
        let refused = get(addr, &huge).await;
        assert!(refused.starts_with("HTTP/1.1 431"), "{refused}");
        served.abort();
    }

    #[test]
    fn a_bare_port_listens_on_loopback() {
        assert_eq!(
            parse_addr("9464").unwrap(),
            "127.0.0.1:9464".parse().unwrap()
        );
        assert_eq!(
            parse_addr("0.0.0.0:1").unwrap(),
            "0.0.0.0:1".parse().unwrap()
        );
        assert!(parse_addr("localhost").unwrap_err().contains("host:port"));
    }
}
