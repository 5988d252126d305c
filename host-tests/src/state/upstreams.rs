//! Clusters the test declares, the callouts guests make to them, and how replies come back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::Duration;

pub type Headers = Vec<(String, String)>;

/// An HTTP callout as the guest made it (`proxy_http_call`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CalloutRequest {
    pub cluster: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub trailers: Headers,
    /// None when the guest passed 0 (Envoy then sets no timeout).
    pub timeout: Option<Duration>,
    pub plugin: String,
}

impl CalloutRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn path(&self) -> &str {
        self.header(":path").unwrap_or("")
    }
    pub fn method(&self) -> &str {
        self.header(":method").unwrap_or("")
    }
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A gRPC callout as the guest made it (`proxy_grpc_call`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct GrpcRequest {
    pub cluster: String,
    pub service: String,
    pub method: String,
    pub initial_metadata: Headers,
    pub message: Vec<u8>,
    pub timeout: Option<Duration>,
    pub plugin: String,
}

/// What an upstream answered to an HTTP callout, as the guest will see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CalloutResponse {
    pub headers: Headers,
    pub body: Vec<u8>,
    pub trailers: Headers,
    /// Envoy's failure callback (reset): 0 headers, and `proxy_get_status` says why.
    pub failure: Option<String>,
}

/// A scripted answer to an HTTP callout.
#[derive(Debug, Clone)]
pub struct Reply {
    pub(crate) response: Option<CalloutResponse>,
    pub(crate) delay: Duration,
}

impl Reply {
    /// `:status` plus a body; more headers with [`Reply::header`].
    pub fn ok(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        let body = body.into();
        let mut headers = vec![(":status".to_string(), status.to_string())];
        headers.push(("content-length".into(), body.len().to_string()));
        Reply {
            response: Some(CalloutResponse {
                headers,
                body,
                trailers: vec![],
                failure: None,
            }),
            delay: Duration::ZERO,
        }
    }
    /// A JSON body with `content-type: application/json`.
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply::ok(status, body.to_string()).header("content-type", "application/json")
    }
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        if let Some(r) = self.response.as_mut() {
            r.headers
                .push((name.to_ascii_lowercase(), value.to_string()));
        }
        self
    }
    pub fn trailer(mut self, name: &str, value: &str) -> Reply {
        if let Some(r) = self.response.as_mut() {
            r.trailers
                .push((name.to_ascii_lowercase(), value.to_string()));
        }
        self
    }
    /// The upstream never answers: the guest gets the timeout (or nothing, without one).
    pub fn never() -> Reply {
        Reply {
            response: None,
            delay: Duration::ZERO,
        }
    }
    /// The connection is reset: Envoy's failure callback.
    pub fn reset() -> Reply {
        Reply {
            response: Some(CalloutResponse {
                failure: Some("reset".into()),
                ..Default::default()
            }),
            delay: Duration::ZERO,
        }
    }
    /// Deliver this reply after `delay` on the test clock (a timeout shorter than that wins).
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// A scripted answer to a gRPC callout.
#[derive(Debug, Clone)]
pub struct GrpcReply {
    pub(crate) message: Option<Vec<u8>>,
    pub(crate) status: u32,
    pub(crate) status_message: String,
    pub(crate) delay: Duration,
    pub(crate) never: bool,
}

impl GrpcReply {
    pub fn ok(message: impl Into<Vec<u8>>) -> GrpcReply {
        GrpcReply {
            message: Some(message.into()),
            status: 0,
            status_message: String::new(),
            delay: Duration::ZERO,
            never: false,
        }
    }
    pub fn error(status: u32, message: &str) -> GrpcReply {
        GrpcReply {
            message: None,
            status,
            status_message: message.into(),
            delay: Duration::ZERO,
            never: false,
        }
    }
    pub fn never() -> GrpcReply {
        GrpcReply {
            never: true,
            ..GrpcReply::error(0, "")
        }
    }
    pub fn after(mut self, delay: Duration) -> GrpcReply {
        self.delay = delay;
        self
    }
}

type HttpHandler = Rc<dyn Fn(&CalloutRequest) -> Reply>;
type GrpcHandler = Rc<dyn Fn(&GrpcRequest) -> GrpcReply>;

/// A named upstream cluster for callouts.
#[derive(Clone)]
pub struct Cluster {
    pub(crate) http: Option<HttpHandler>,
    pub(crate) grpc: Option<GrpcHandler>,
    pub(crate) real: Option<SocketAddr>,
}

impl Cluster {
    /// Answers HTTP callouts with a script.
    pub fn scripted(f: impl Fn(&CalloutRequest) -> Reply + 'static) -> Cluster {
        Cluster {
            http: Some(Rc::new(f)),
            grpc: None,
            real: None,
        }
    }
    /// Every call answered after `delay` on the test clock.
    pub fn delayed(delay: Duration, f: impl Fn(&CalloutRequest) -> Reply + 'static) -> Cluster {
        Cluster::scripted(move |r| f(r).after(delay))
    }
    /// Never answers: callers see their timeout.
    pub fn never() -> Cluster {
        Cluster::scripted(|_| Reply::never())
    }
    /// A real HTTP/1.1 server on loopback; the request is sent when it is due (at once).
    pub fn real(addr: &str) -> Cluster {
        Cluster {
            http: None,
            grpc: None,
            real: Some(
                addr.parse()
                    .unwrap_or_else(|e| panic!("bad address {addr}: {e}")),
            ),
        }
    }
    /// Answers gRPC callouts with a script.
    pub fn grpc(f: impl Fn(&GrpcRequest) -> GrpcReply + 'static) -> Cluster {
        Cluster {
            http: None,
            grpc: Some(Rc::new(f)),
            real: None,
        }
    }
}

/// What Envoy delivers when an HTTP callout's timeout fires. Envoy's async client runs the
/// router, whose response timeout sends a local 504 to the caller (`onSuccess`), so that is
/// the default; `Reset` gives the failure callback instead (0 headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeoutBehavior {
    #[default]
    GatewayTimeout,
    Reset,
}

impl TimeoutBehavior {
    pub fn response(self) -> CalloutResponse {
        match self {
            TimeoutBehavior::GatewayTimeout => local_error(504, "upstream request timeout"),
            TimeoutBehavior::Reset => CalloutResponse {
                failure: Some("reset".into()),
                ..Default::default()
            },
        }
    }
}

/// The shape of Envoy's router local replies.
pub fn local_error(status: u16, body: &str) -> CalloutResponse {
    CalloutResponse {
        headers: vec![
            (":status".into(), status.to_string()),
            ("content-length".into(), body.len().to_string()),
            ("content-type".into(), "text/plain".into()),
        ],
        body: body.as_bytes().to_vec(),
        trailers: vec![],
        failure: None,
    }
}

/// A tiny blocking HTTP/1.1 client for `Cluster::real`. Envoy answers a refused or broken
/// connection with a 503 from the router, and so does this.
pub fn real_http(addr: SocketAddr, req: &CalloutRequest) -> CalloutResponse {
    let wall_timeout = req.timeout.unwrap_or(Duration::from_secs(10));
    match try_real_http(addr, req, wall_timeout) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
            local_error(504, "upstream request timeout")
        }
        Err(_) => local_error(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure",
        ),
    }
}

fn try_real_http(
    addr: SocketAddr,
    req: &CalloutRequest,
    timeout: Duration,
) -> std::io::Result<CalloutResponse> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    let mut out = format!("{} {} HTTP/1.1\r\n", req.method(), req.path());
    out.push_str(&format!(
        "host: {}\r\n",
        req.header(":authority").unwrap_or("")
    ));
    for (k, v) in &req.headers {
        if !k.starts_with(':') && k != "content-length" && k != "connection" {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        req.body.len()
    ));
    s.write_all(out.as_bytes())?;
    s.write_all(&req.body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .ok_or_else(|| std::io::Error::other("no status"))?
        .to_string();
    let mut headers = vec![(":status".to_string(), status)];
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim().to_string();
            if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
                continue;
            }
            headers.push((k, v));
        }
    }
    if chunked {
        body = dechunk(&body);
    }
    Ok(CalloutResponse {
        headers,
        body,
        trailers: vec![],
        failure: None,
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(p) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..p]).trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < p + 2 + size {
            break;
        }
        out.extend_from_slice(&b[p + 2..p + 2 + size]);
        b = &b[(p + 4 + size).min(b.len())..];
    }
    out
}
