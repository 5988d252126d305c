//! The echo upstream: answers every request with 200 and a JSON body of what it received.
//!
//! ```json
//! {"method": "GET", "path": "/orders?x=1", "headers": {"host": "…", "x-a": "1, 2"},
//!  "header_list": [["host", "…"], ["x-a", "1"], ["x-a", "2"]], "body": "", "body_len": 0}
//! ```
//!
//! `headers` joins repeated headers with `", "`; `header_list` keeps each one, in order. Two
//! request headers steer the reply, for tests of upstream failures: `x-echo-status: 503` sets the
//! status, `x-echo-delay-ms: 500` waits before answering. Runs in-process ([`Echo::start`]) or as
//! the `echo` binary.
//!
//! Besides the requests it answered ([`Echo::hits`]), it records every request head (request line
//! and headers) the moment it has read it, before any of the body ([`Echo::heads`]): a test of a
//! filter that holds the headers until the body is decided asserts that a refused request left
//! no trace upstream at all.

use std::io::{self, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::http::{accept_until, read_body, read_headers, read_request_line};

/// An echo server on 127.0.0.1, stopped on drop.
pub struct Echo {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    hits: Arc<AtomicU64>,
    heads: Arc<Mutex<Vec<String>>>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl Echo {
    /// Starts an echo server on a free loopback port.
    pub fn start() -> Echo {
        Self::bind(0).unwrap_or_else(|e| panic!("echo: bind 127.0.0.1:0: {e}"))
    }

    /// Starts an echo server on `port` (0: any free port).
    pub fn bind(port: u16) -> io::Result<Echo> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicU64::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let stop = Arc::clone(&stop);
            let hits = Arc::clone(&hits);
            let heads = Arc::clone(&heads);
            thread::Builder::new()
                .name(format!("echo-{}", addr.port()))
                .spawn(move || serve_recording(listener, &stop, &hits, &heads))?
        };
        Ok(Echo {
            addr,
            stop,
            hits,
            heads,
            acceptor: Some(acceptor),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests it has answered so far (to assert that a denied request never arrived).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// Every request head received so far, as `METHOD path`, in order, recorded as soon as the
    /// headers were read (a request whose body never completes is listed too).
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Accepts connections until `stop` is set; each connection gets a thread (keep-alive).
pub fn serve(listener: TcpListener, stop: &AtomicBool, hits: &Arc<AtomicU64>) {
    serve_recording(listener, stop, hits, &Arc::new(Mutex::new(Vec::new())))
}

/// [`serve`], recording each request head in `heads` as it arrives.
fn serve_recording(
    listener: TcpListener,
    stop: &AtomicBool,
    hits: &Arc<AtomicU64>,
    heads: &Arc<Mutex<Vec<String>>>,
) {
    let hits = Arc::clone(hits);
    let heads = Arc::clone(heads);
    accept_until(listener, stop, "echo-conn", move |conn| {
        let _ = handle(conn, &hits, &heads);
    });
}

fn handle(conn: TcpStream, hits: &AtomicU64, heads: &Mutex<Vec<String>>) -> io::Result<()> {
    conn.set_nodelay(true)?;
    // Idle keep-alive connections from Envoy's pool end after a while; Envoy reconnects.
    conn.set_read_timeout(Some(Duration::from_secs(300)))?;
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    while let Some(start) = read_request_line(&mut reader)? {
        let mut parts = start.split(' ');
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("").to_owned();
        let version = parts.next().unwrap_or("HTTP/1.1").to_owned();
        let headers = read_headers(&mut reader)?;
        if let Ok(mut h) = heads.lock() {
            h.push(format!("{method} {path}"));
        }
        let body = read_body(&mut reader, &headers, false)?;
        hits.fetch_add(1, Ordering::SeqCst);

        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let status: u16 = get("x-echo-status")
            .and_then(|s| s.parse().ok())
            .filter(|s| (200..600).contains(s))
            .unwrap_or(200);
        if let Some(ms) = get("x-echo-delay-ms").and_then(|s| s.parse::<u64>().ok()) {
            thread::sleep(Duration::from_millis(ms.min(60_000)));
        }
        let close = get("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"))
            || version == "HTTP/1.0";

        let mut joined = Map::new();
        for (n, v) in &headers {
            match joined.get_mut(n) {
                Some(Value::String(prev)) => {
                    prev.push_str(", ");
                    prev.push_str(v);
                }
                _ => {
                    joined.insert(n.clone(), Value::String(v.clone()));
                }
            }
        }
        let reply = json!({
            "method": method,
            "path": path,
            "headers": joined,
            "header_list": headers.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
            "body": String::from_utf8_lossy(&body),
            "body_len": body.len(),
        })
        .to_string();
        let head = format!(
            "HTTP/1.1 {status} Echo\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n",
            reply.len(),
            if close { "connection: close\r\n" } else { "" }
        );
        writer.write_all(head.as_bytes())?;
        writer.write_all(reply.as_bytes())?;
        writer.flush()?;
        if close {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_method_path_headers_and_body() {
        let echo = Echo::start();
        let resp = crate::http::request(
            echo.addr(),
            "POST",
            "/orders?id=7",
            &[("X-A", "1"), ("x-a", "2"), ("x-echo-status", "201")],
            b"hello",
        )
        .expect("request");
        assert_eq!(resp.status, 201);
        let v = resp.json();
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/orders?id=7");
        assert_eq!(v["headers"]["x-a"], "1, 2");
        assert_eq!(v["body"], "hello");
        assert_eq!(v["body_len"], 5);
        assert_eq!(echo.hits(), 1);
        assert_eq!(echo.heads(), vec!["POST /orders?id=7".to_string()]);
    }
}
