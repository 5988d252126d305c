//! A loopback SIEM receiver for audit-log's HTTP sink: an HTTP/1.1 server on 127.0.0.1 that
//! records every batch it is sent and answers as the test asks.
//!
//! - [`SiemMode::Up`]: 200, and the batch counts as accepted;
//! - [`SiemMode::Slow`]: the same after a delay;
//! - [`SiemMode::Failing`]: the given status (a 5xx), the batch is not accepted;
//! - [`SiemReceiver::down`]: the listener is closed (connections are refused) and open
//!   connections are cut at their next request; [`SiemReceiver::up`] listens on the same port
//!   again.
//!
//! [`SiemReceiver::accepted_lines`] gives the lines of the accepted batches (for `json_lines`,
//! one record per line), [`SiemReceiver::batches`] every batch that arrived.

use std::io::{self, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{accept_until, read_body, read_headers, read_request_line};

/// How the receiver answers a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiemMode {
    Up,
    /// Answers 200 after this delay.
    Slow(Duration),
    /// Answers this status and does not keep the batch.
    Failing(u16),
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Batch {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status it was answered.
    pub status: u16,
}

impl Batch {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.body)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

struct State {
    mode: Mutex<SiemMode>,
    batches: Mutex<Vec<Batch>>,
    down: AtomicBool,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The receiver, stopped on drop.
pub struct SiemReceiver {
    addr: SocketAddr,
    state: Arc<State>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl SiemReceiver {
    /// Starts a receiver on a free loopback port, answering 200.
    pub fn start() -> SiemReceiver {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .unwrap_or_else(|e| panic!("siem receiver: bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("siem receiver: local address: {e}"));
        let state = Arc::new(State {
            mode: Mutex::new(SiemMode::Up),
            batches: Mutex::new(Vec::new()),
            down: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let mut r = SiemReceiver {
            addr,
            state,
            acceptor: None,
        };
        r.spawn(listener);
        r
    }

    fn spawn(&mut self, listener: TcpListener) {
        let state = Arc::clone(&self.state);
        let handle = thread::Builder::new()
            .name(format!("siem-{}", self.addr.port()))
            .spawn(move || accept(listener, state))
            .unwrap_or_else(|e| panic!("siem receiver: spawn: {e}"));
        self.acceptor = Some(handle);
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn set_mode(&self, mode: SiemMode) {
        *lock(&self.state.mode) = mode;
    }

    /// Closes the listener: new connections are refused, open ones cut at their next request.
    pub fn down(&mut self) {
        self.state.down.store(true, Ordering::SeqCst);
        self.stop_acceptor();
    }

    /// Listens again on the same port.
    pub fn up(&mut self) {
        if self.acceptor.is_some() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("siem receiver: bind {} again: {e}", self.addr),
            }
        };
        self.state.down.store(false, Ordering::SeqCst);
        self.state.stop.store(false, Ordering::SeqCst);
        self.spawn(listener);
    }

    fn stop_acceptor(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.acceptor.take() {
            // Wake the blocking accept so the thread sees the flag and drops the listener.
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            let _ = handle.join();
        }
    }

    /// Every batch that arrived, in order.
    pub fn batches(&self) -> Vec<Batch> {
        lock(&self.state.batches).clone()
    }

    /// The lines of the batches answered 2xx, in the order they arrived.
    pub fn accepted_lines(&self) -> Vec<String> {
        lock(&self.state.batches)
            .iter()
            .filter(|b| b.accepted())
            .flat_map(Batch::lines)
            .collect()
    }

    /// Waits until `n` lines were accepted, up to `timeout`; returns whether they were.
    pub fn wait_for_lines(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.accepted_lines().len() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SiemReceiver {
    fn drop(&mut self) {
        self.state.down.store(true, Ordering::SeqCst);
        self.stop_acceptor();
    }
}

fn accept(listener: TcpListener, state: Arc<State>) {
    let serving = Arc::clone(&state);
    accept_until(listener, &state.stop, "siem-conn", move |conn| {
        let _ = serve(conn, &serving);
    });
}

fn serve(conn: TcpStream, state: &State) -> io::Result<()> {
    conn.set_nodelay(true)?;
    conn.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    while let Some(start) = read_request_line(&mut reader)? {
        let path = start.split(' ').nth(1).unwrap_or("").to_owned();
        let headers = read_headers(&mut reader)?;
        let body = read_body(&mut reader, &headers, false)?;
        if state.down.load(Ordering::SeqCst) {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
        let mode = *lock(&state.mode);
        let status = match mode {
            SiemMode::Up => 200,
            SiemMode::Slow(delay) => {
                thread::sleep(delay);
                200
            }
            SiemMode::Failing(status) => status,
        };
        lock(&state.batches).push(Batch {
            path,
            headers,
            body,
            status,
        });
        let reply = if (200..300).contains(&status) {
            "{}"
        } else {
            "{\"error\":\"unavailable\"}"
        };
        let head = format!(
            "HTTP/1.1 {status} SIEM\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            reply.len()
        );
        writer.write_all(head.as_bytes())?;
        writer.write_all(reply.as_bytes())?;
        writer.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_batches_answers_by_mode_and_goes_down_and_up() {
        let mut siem = SiemReceiver::start();
        let addr: SocketAddr = ([127, 0, 0, 1], siem.port()).into();
        let r = crate::http::request(addr, "POST", "/ingest", &[], b"a\nb\n").unwrap();
        assert_eq!(r.status, 200);
        siem.set_mode(SiemMode::Failing(503));
        let r = crate::http::request(addr, "POST", "/ingest", &[], b"c\n").unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(siem.accepted_lines(), vec!["a", "b"]);
        assert_eq!(siem.batches().len(), 2);
        siem.down();
        assert!(crate::http::request(addr, "POST", "/ingest", &[], b"d\n").is_err());
        siem.up();
        siem.set_mode(SiemMode::Up);
        let r = crate::http::request(addr, "POST", "/ingest", &[], b"e\n").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(siem.accepted_lines(), vec!["a", "b", "e"]);
    }
}
