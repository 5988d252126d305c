//! Certificate-bound access tokens (RFC 8705 §3), checked the same way by every token filter.
//!
//! A token whose `cnf` claim carries `x5t#S256` (base64url of the SHA-256 of the client
//! certificate's DER) is valid only on a connection that presented that certificate. The proxy
//! knows the connection's certificate (Envoy: `connection.sha256_peer_certificate_digest`, the
//! same SHA-256 in lowercase hex), so a stolen bound token is useless without the certificate's
//! private key. The check runs on every request, cached token or not: the token is the same, the
//! connection is not.
//!
//! Fail closed: a `cnf` this code cannot check (another confirmation method only, such as a DPoP
//! `jkt`, or a malformed one) refuses the token rather than treating it as a bearer token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::host::Host;

/// The connection property holding the client certificate's SHA-256 (lowercase hex in Envoy).
pub const PEER_DIGEST: [&str; 2] = ["connection", "sha256_peer_certificate_digest"];

/// Why a bound token is refused; each is a stable reason code (a 401 `invalid_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingError {
    /// `cnf` names no confirmation method this code can check.
    Unsupported,
    /// `cnf` is not an object, or `x5t#S256` is not the base64url of 32 bytes.
    Malformed,
    /// The token is bound, but the connection presented no client certificate.
    NoCertificate,
    /// The connection's certificate is not the one the token is bound to.
    Mismatch,
}

impl BindingError {
    pub fn code(self) -> &'static str {
        match self {
            BindingError::Unsupported => "cnf_unsupported",
            BindingError::Malformed => "bad_cnf",
            BindingError::NoCertificate => "cnf_no_certificate",
            BindingError::Mismatch => "cnf_mismatch",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            BindingError::Unsupported => "the token is bound to a key this gateway cannot check",
            BindingError::Malformed => "the token's confirmation claim is malformed",
            BindingError::NoCertificate => {
                "the token is bound to a client certificate, and none was presented"
            }
            BindingError::Mismatch => {
                "the token is bound to another client certificate than the one presented"
            }
        }
    }
}

/// Checks the token's `cnf` against the connection. A token without `cnf` passes.
pub fn check_certificate_binding(
    host: &dyn Host,
    claims: &Map<String, Value>,
) -> Result<(), BindingError> {
    let Some(cnf) = claims.get("cnf") else {
        return Ok(());
    };
    let Value::Object(cnf) = cnf else {
        return Err(BindingError::Malformed);
    };
    let Some(bound) = cnf.get("x5t#S256") else {
        return Err(BindingError::Unsupported);
    };
    let thumbprint = bound
        .as_str()
        .and_then(|t| URL_SAFE_NO_PAD.decode(t).ok())
        .filter(|d| d.len() == 32)
        .ok_or(BindingError::Malformed)?;
    let presented = host
        .property(&PEER_DIGEST)
        .map(|v| String::from_utf8_lossy(&v).trim().to_ascii_lowercase())
        .filter(|hex| !hex.is_empty())
        .ok_or(BindingError::NoCertificate)?;
    if presented == hex(&thumbprint) {
        Ok(())
    } else {
        Err(BindingError::Mismatch)
    }
}

use crate::json_text::hex;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockHost;
    use serde_json::json;

    const DIGEST_HEX: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const THUMBPRINT: &str = "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg";

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn with_cert(hex: &str) -> MockHost {
        let mut host = MockHost::new();
        host.properties
            .insert(PEER_DIGEST.join("\0"), hex.as_bytes().to_vec());
        host
    }

    #[test]
    fn unbound_tokens_pass_with_or_without_a_certificate() {
        assert_eq!(
            check_certificate_binding(&MockHost::new(), &claims(json!({"sub": "a"}))),
            Ok(())
        );
        assert_eq!(
            check_certificate_binding(&with_cert(DIGEST_HEX), &claims(json!({}))),
            Ok(())
        );
    }

    #[test]
    fn a_bound_token_needs_its_own_certificate() {
        let bound = claims(json!({"cnf": {"x5t#S256": THUMBPRINT}}));
        assert_eq!(
            check_certificate_binding(&with_cert(DIGEST_HEX), &bound),
            Ok(())
        );
        // Upper-case hex from another host is the same digest.
        assert_eq!(
            check_certificate_binding(&with_cert(&DIGEST_HEX.to_uppercase()), &bound),
            Ok(())
        );
        let other = DIGEST_HEX.replace("9f86", "0000");
        assert_eq!(
            check_certificate_binding(&with_cert(&other), &bound),
            Err(BindingError::Mismatch)
        );
        assert_eq!(
            check_certificate_binding(&MockHost::new(), &bound),
            Err(BindingError::NoCertificate)
        );
        assert_eq!(
            check_certificate_binding(&with_cert(""), &bound),
            Err(BindingError::NoCertificate)
        );
    }

    #[test]
    fn what_cannot_be_checked_is_refused() {
        let host = with_cert(DIGEST_HEX);
        for (cnf, err) in [
            (json!({"jkt": "abc"}), BindingError::Unsupported),
            (json!({}), BindingError::Unsupported),
            (json!("x"), BindingError::Malformed),
            (json!({"x5t#S256": 7}), BindingError::Malformed),
            (json!({"x5t#S256": "not base64!"}), BindingError::Malformed),
            (json!({"x5t#S256": "AAAA"}), BindingError::Malformed),
        ] {
            assert_eq!(
                check_certificate_binding(&host, &claims(json!({ "cnf": cnf }))),
                Err(err),
                "{cnf}"
            );
        }
    }
}
