//! Requests, responses and outcomes as the test writes and reads them.

use crate::abi::headers;
use serde::Serialize;

/// The downstream connection of a stream.
#[derive(Debug, Clone, Serialize)]
pub struct Connection {
    /// `ip:port`, as Envoy's `source.address`.
    pub source: String,
    pub destination: String,
    pub tls: Option<Tls>,
}

impl Default for Connection {
    fn default() -> Self {
        Connection {
            source: "127.0.0.1:50000".into(),
            destination: "127.0.0.1:10000".into(),
            tls: None,
        }
    }
}

/// Downstream TLS as Envoy's `connection.*` properties report it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tls {
    pub version: String,
    pub peer_certificate: bool,
    pub subject: Option<String>,
    pub uri_san: Option<String>,
    pub dns_san: Option<String>,
    /// Lowercase hex, as Envoy reports it.
    pub sha256_digest: Option<String>,
    pub local_subject: Option<String>,
    /// The client certificate in PEM, as Envoy's `connection.peer_certificate`.
    pub peer_certificate_pem: Option<String>,
}

impl Tls {
    /// A TLS 1.3 connection where the client presented a certificate.
    pub fn mtls(subject: &str) -> Tls {
        Tls {
            version: "TLSv1.3".into(),
            peer_certificate: true,
            subject: Some(subject.into()),
            ..Default::default()
        }
    }
    pub fn uri_san(mut self, san: &str) -> Tls {
        self.uri_san = Some(san.into());
        self
    }
    pub fn dns_san(mut self, san: &str) -> Tls {
        self.dns_san = Some(san.into());
        self
    }
    pub fn sha256(mut self, hex: &str) -> Tls {
        self.sha256_digest = Some(hex.into());
        self
    }
    /// The certificate itself (PEM), which Envoy exposes beside the first SANs and the digest.
    pub fn peer_pem(mut self, pem: &str) -> Tls {
        self.peer_certificate_pem = Some(pem.into());
        self
    }
}

/// A downstream request. Envoy's connection manager adds `:scheme`, `x-request-id` and
/// `x-forwarded-proto` before filters run; so do we.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub headers: Vec<(String, String)>,
    /// Body chunks as they arrive; each is one `on_request_body` unless a filter buffers.
    pub body: Vec<Vec<u8>>,
    pub trailers: Vec<(String, String)>,
    pub conn: Connection,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Request {
        let mut h = Vec::new();
        headers::add(&mut h, ":authority", "example.com");
        headers::add(&mut h, ":path", path);
        headers::add(&mut h, ":method", method);
        headers::add(&mut h, ":scheme", "http");
        Request {
            headers: h,
            body: vec![],
            trailers: vec![],
            conn: Connection::default(),
        }
    }
    pub fn get(path: &str) -> Request {
        Request::new("GET", path)
    }
    pub fn post(path: &str, body: impl Into<Vec<u8>>) -> Request {
        Request::new("POST", path).body(body)
    }
    /// Adds a header (repeat the call for repeated headers).
    pub fn header(mut self, name: &str, value: &str) -> Request {
        headers::add(&mut self.headers, name, value);
        self
    }
    pub fn authority(mut self, host: &str) -> Request {
        headers::replace(&mut self.headers, ":authority", host);
        self
    }
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = vec![body.into()];
        self
    }
    pub fn chunks(mut self, chunks: Vec<Vec<u8>>) -> Request {
        self.body = chunks;
        self
    }
    pub fn trailer(mut self, name: &str, value: &str) -> Request {
        headers::add(&mut self.trailers, name, value);
        self
    }
    pub fn source(mut self, addr: &str) -> Request {
        self.conn.source = addr.into();
        self
    }
    pub fn destination(mut self, addr: &str) -> Request {
        self.conn.destination = addr.into();
        self
    }
    pub fn tls(mut self, tls: Tls) -> Request {
        self.conn.tls = Some(tls);
        headers::replace(&mut self.headers, ":scheme", "https");
        self
    }
}

/// An HTTP message as it left the chain (towards the upstream, or to the client).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Message {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

impl Message {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        headers::get(&self.headers, name)
    }
    /// Every value of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn status(&self) -> u16 {
        self.header(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A local reply as the client received it, after the encoder filters ran on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalReply {
    pub message: Message,
    /// The `details` argument of proxy_send_local_response (Envoy's response code details).
    pub details: String,
}

impl std::ops::Deref for LocalReply {
    type Target = Message;
    fn deref(&self) -> &Message {
        &self.message
    }
}

/// An upstream response, for `Stream::send_response`.
#[derive(Debug, Clone)]
pub struct Response {
    pub headers: Vec<(String, String)>,
    pub body: Vec<Vec<u8>>,
    pub trailers: Vec<(String, String)>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            headers: vec![(":status".into(), status.to_string())],
            body: vec![],
            trailers: vec![],
        }
    }
    pub fn ok() -> Response {
        Response::new(200)
    }
    pub fn header(mut self, name: &str, value: &str) -> Response {
        headers::add(&mut self.headers, name, value);
        self
    }
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = vec![body.into()];
        self
    }
    pub fn trailer(mut self, name: &str, value: &str) -> Response {
        headers::add(&mut self.trailers, name, value);
        self
    }
}

/// Where a stream stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// The whole request went through the chain; this is what the upstream receives.
    Upstream(Message),
    /// A filter answered; the chain stopped there.
    LocalReply(LocalReply),
    /// The upstream response went through the chain; this is what the client receives.
    Response(Message),
    /// A filter holds the stream (waiting for a callout, a tick, ...).
    Paused,
    /// A filter reset the stream (proxy_close_stream).
    Reset,
}

impl Outcome {
    pub fn upstream(&self) -> &Message {
        match self {
            Outcome::Upstream(m) => m,
            other => panic!("expected the request to reach the upstream, got {other:?}"),
        }
    }
    pub fn local_reply(&self) -> &LocalReply {
        match self {
            Outcome::LocalReply(r) => r,
            other => panic!("expected a local reply, got {other:?}"),
        }
    }
    pub fn response(&self) -> &Message {
        match self {
            Outcome::Response(m) => m,
            other => panic!("expected a response, got {other:?}"),
        }
    }
    pub fn is_paused(&self) -> bool {
        matches!(self, Outcome::Paused)
    }
}
