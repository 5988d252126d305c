//! Decoding (not verifying) JWTs, for assertions on what the IdP issued, and the base64 forms
//! tests need to build tokens and keys of their own.

use serde_json::Value;

/// Decodes base64url without padding (padding is tolerated). None on a character outside the
/// alphabet.
pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Encodes base64url without padding (JWS parts, JWK members).
pub fn base64url_encode(data: &[u8]) -> String {
    encode(
        data,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        false,
    )
}

/// Encodes standard base64 with padding (for HTTP Basic credentials).
pub fn base64_encode(data: &[u8]) -> String {
    encode(
        data,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        true,
    )
}

fn encode(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// The header and claims of a compact JWS. Panics when `token` is not one.
pub fn decode(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("not a compact JWS (three dot-separated parts): {token:?}");
    };
    (
        base64url_json(h, "JWT header"),
        base64url_json(p, "JWT claims"),
    )
}

/// The claims of a compact JWS (its header and signature unread). Panics when `token` is not one.
pub fn claims(token: &str) -> Value {
    decode(token).1
}

/// A base64url-encoded JSON value, such as a JWS part or the payload header Envoy's `jwt_authn`
/// forwards. Panics, naming `what`, when `s` is not one.
pub fn base64url_json(s: &str, what: &str) -> Value {
    base64url_decode(s)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| panic!("{what} is not base64url JSON: {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64url() {
        assert_eq!(base64url_decode("aGVsbG8").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64url_decode("-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        assert_eq!(base64url_decode("a+b"), None);
    }

    #[test]
    fn encodes_base64url_without_padding() {
        assert_eq!(base64url_encode(b"hello"), "aGVsbG8");
        assert_eq!(base64url_encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64url_encode(b"ab"), "YWI");
        assert_eq!(base64url_encode(b""), "");
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(
            base64url_decode(&base64url_encode(&bytes)).as_deref(),
            Some(&bytes[..])
        );
    }

    #[test]
    fn encodes_base64() {
        assert_eq!(
            base64_encode(b"orders-reader:orders-reader-secret"),
            "b3JkZXJzLXJlYWRlcjpvcmRlcnMtcmVhZGVyLXNlY3JldA=="
        );
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_encode(b""), "");
    }

    #[test]
    fn decodes_a_jwt() {
        let (h, c) = decode("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.");
        assert_eq!(h["alg"], "none");
        assert_eq!(c["sub"], "x");
        assert_eq!(claims("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")["sub"], "x");
    }
}
