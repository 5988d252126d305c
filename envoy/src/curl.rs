//! HTTPS requests through curl, for listeners with TLS (the [`crate::http`] client speaks plain
//! HTTP only): the test CA as the only trust anchor, a client certificate when given.

use std::path::Path;
use std::process::Command;

use crate::http::Response;

/// A client certificate and its private key, both PEM files.
pub type ClientCert<'a> = (&'a Path, &'a Path);

/// GET `https://localhost:<port><path>` with curl, `localhost` resolved to 127.0.0.1 so the
/// server certificate's `DNS:localhost` matches, `ca_cert` as the trust anchor, `client` as the
/// client certificate and `headers` added. Err with curl's message when curl fails, e.g. when
/// the handshake is refused.
pub fn https_get(
    port: u16,
    ca_cert: &Path,
    client: Option<ClientCert<'_>>,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-D", "-", "--cacert"])
        .arg(ca_cert)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")]);
    if let Some((cert, key)) = client {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    for (name, value) in headers {
        cmd.args(["-H", &format!("{name}: {value}")]);
    }
    cmd.arg(format!("https://localhost:{port}{path}"));
    let out = cmd.output().map_err(|e| format!("run curl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "curl {path}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse(&out.stdout).ok_or_else(|| {
        format!(
            "curl {path}: no HTTP response in {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// What `curl -D -` prints: the response head, a blank line, the (decoded) body.
fn parse(output: &[u8]) -> Option<Response> {
    let split = output.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&output[..split]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Some(Response {
        status,
        headers,
        body: output[split + 4..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_curl_prints() {
        let out = b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nX-A: 1\r\n\r\n{\"error\":\"access_denied\"}";
        let resp = parse(out).expect("a response");
        assert_eq!(resp.status, 403);
        assert_eq!(resp.header("content-type"), Some("application/json"));
        assert_eq!(resp.error(), "access_denied");
        assert!(parse(b"not http").is_none());
    }
}
