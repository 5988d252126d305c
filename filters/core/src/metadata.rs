//! Envoy's dynamic metadata as a module reads it, and the identity in the JWT payload that
//! Envoy's own `jwt_authn` filter writes there (`payload_in_metadata`).
//!
//! What Envoy 1.40 returns for `get_property(["metadata", "filter_metadata", <filter>, <key>])`
//! (read from a real Envoy; the unit tests' fixture is one such answer, and
//! `envoy/tests/jwt_authn_identity.rs` decides on it in Envoy):
//! - a map (a `google.protobuf.Struct`) comes in the proxy-wasm pairs encoding of header maps:
//!   a little-endian `u32` count, then per entry the key's and the value's lengths (`u32` each),
//!   then every key and value, each followed by a NUL byte;
//! - a list comes in the same encoding with its items as the keys and empty values;
//! - a string comes as its bytes, a number as the 8 bytes of a little-endian `f64`, a boolean as
//!   one byte.
//!
//! The encoding does not say which type a value has, so a claim is read by what it must be: `exp`,
//! `iat` and `nbf` as numbers; `aud` and `scp` as a list or a string; any other claim as a list or
//! a map when its bytes are exactly such an encoding, else as text when they are UTF-8 without
//! control characters. A value that fits none (a number or a boolean outside the three time
//! claims) is left out: the filters key on strings. The payload was verified by `jwt_authn` and cannot be written by a client.

use serde_json::{Map, Number, Value};

/// The metadata namespace of Envoy's JWT filter.
pub const JWT_AUTHN_NAMESPACE: &str = "envoy.filters.http.jwt_authn";

/// The entries of a pairs-encoded map, or `None` unless `bytes` is exactly one such encoding.
pub fn decode_pairs(bytes: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let word = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(b)).ok()
    };
    let count = word(0)?;
    // Each entry needs 8 bytes of sizes and 2 NULs at least: a count beyond that is not a map.
    if count > bytes.len() / 10 {
        return None;
    }
    let mut sizes = Vec::with_capacity(count);
    for i in 0..count {
        let at = 4 + 8 * i;
        sizes.push((word(at)?, word(at + 4)?));
    }
    let mut at = 4 + 8 * count;
    let mut out = Vec::with_capacity(count);
    let mut take = |len: usize| -> Option<&[u8]> {
        let end = at.checked_add(len)?;
        let slice = bytes.get(at..end)?;
        if *bytes.get(end)? != 0 {
            return None;
        }
        at = end + 1;
        Some(slice)
    };
    for (k, v) in sizes {
        let key = take(k)?;
        let value = take(v)?;
        out.push((key, value));
    }
    (at == bytes.len()).then_some(out)
}

/// UTF-8 without control characters: a number's or a boolean's bytes have some (zero bytes,
/// 0x01), the text claims a gateway keys on have none.
fn text(bytes: &[u8]) -> Option<Value> {
    let s = std::str::from_utf8(bytes).ok()?;
    (!s.chars().any(char::is_control)).then(|| Value::String(s.to_string()))
}

fn number(bytes: &[u8]) -> Option<Value> {
    let raw: [u8; 8] = bytes.try_into().ok()?;
    Number::from_f64(f64::from_le_bytes(raw)).map(|n| {
        // Whole seconds as integers, as they were in the token.
        if n.as_f64()
            .is_some_and(|f| f.fract() == 0.0 && f >= 0.0 && f < 2f64.powi(53))
        {
            Value::Number(Number::from(f64::from_le_bytes(raw) as u64))
        } else {
            Value::Number(n)
        }
    })
}

/// A list (items as keys, empty values), or `None`.
fn list(bytes: &[u8]) -> Option<Value> {
    let pairs = decode_pairs(bytes)?;
    if !pairs.iter().all(|(_, v)| v.is_empty()) {
        return None;
    }
    pairs
        .iter()
        .map(|(k, _)| text(k))
        .collect::<Option<Vec<_>>>()
        .map(Value::Array)
}

/// A map of text values, or `None`.
fn object(bytes: &[u8]) -> Option<Value> {
    let pairs = decode_pairs(bytes)?;
    let mut map = Map::new();
    for (k, v) in pairs {
        let key = std::str::from_utf8(k).ok()?;
        map.insert(key.to_string(), text(v)?);
    }
    Some(Value::Object(map))
}

fn claim(name: &str, bytes: &[u8]) -> Option<Value> {
    match name {
        "exp" | "iat" | "nbf" => number(bytes),
        "aud" | "scp" => list(bytes).or_else(|| text(bytes)),
        _ if bytes.is_empty() => Some(Value::String(String::new())),
        _ => list(bytes)
            .filter(|l| l.as_array().is_some_and(|a| !a.is_empty()))
            .or_else(|| object(bytes))
            .or_else(|| text(bytes)),
    }
}

/// The claims of a JWT payload as `jwt_authn` put it in metadata (the bytes of
/// `metadata.filter_metadata["envoy.filters.http.jwt_authn"][<payload_in_metadata>]`).
/// `None` when the bytes are not a map.
pub fn jwt_payload_claims(bytes: &[u8]) -> Option<Map<String, Value>> {
    let mut claims = Map::new();
    for (k, v) in decode_pairs(bytes)? {
        let Ok(name) = std::str::from_utf8(k) else {
            continue;
        };
        if let Some(value) = claim(name, v) {
            claims.insert(name.to_string(), value);
        }
    }
    Some(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// What Envoy 1.40 returned for a token of the test IdP, with extra claims `roles` (a list),
    /// `nested` (an object), `flag` (a boolean), `n` (a number) and `scp` (a list).
    const ENVOY_PAYLOAD: &str = "0e0000000300000008000000030000000a0000000300000002000000050000000b000000090000000200000006000000100000000300000008000000030000000f00000003000000160000000600000001000000030000002b000000050000001c0000000100000008000000040000000100000069617400000000483ec3da4100617564006f72646572732d617069007375620063310073636f7065006f72646572733a7265616400636c69656e745f6964006331006e6573746564000100000001000000010000006b0076000065787000000000933ec3da4100736370000100000001000000000000007800000069737300687474703a2f2f3132372e302e302e313a33373538370074656e616e740061006a7469004162427671303641645774426d32616f36633759773152625455336c614943414e6a6c624e717941694f3500726f6c65730002000000020000000000000002000000000000007231000072320000006e00000000000000144000666c6167000100";

    #[test]
    fn the_payload_envoy_wrote_decodes_to_its_claims() {
        let claims = jwt_payload_claims(&unhex(ENVOY_PAYLOAD)).unwrap();
        assert_eq!(claims["sub"], "c1");
        assert_eq!(claims["client_id"], "c1");
        assert_eq!(claims["aud"], "orders-api");
        assert_eq!(claims["scope"], "orders:read");
        assert_eq!(claims["tenant"], "a");
        assert_eq!(claims["iss"], "http://127.0.0.1:37587");
        assert_eq!(claims["roles"], json!(["r1", "r2"]));
        assert_eq!(claims["scp"], json!(["x"]));
        assert_eq!(claims["nested"], json!({"k": "v"}));
        let exp = claims["exp"].as_u64().unwrap();
        let iat = claims["iat"].as_u64().unwrap();
        assert!(exp > iat && exp - iat == 300, "{exp} {iat}");
        // A number or a boolean outside the time claims cannot be told from text: left out.
        assert!(claims.get("n").is_none(), "{:?}", claims.get("n"));
        assert!(claims.get("flag").is_none(), "{:?}", claims.get("flag"));
    }

    #[test]
    fn only_an_exact_encoding_is_a_map() {
        assert!(decode_pairs(b"").is_none());
        assert!(decode_pairs(b"free").is_none());
        assert_eq!(decode_pairs(&[0, 0, 0, 0]), Some(vec![]));
        let one = [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, b'k', 0, b'v', 0];
        assert_eq!(decode_pairs(&one), Some(vec![(&b"k"[..], &b"v"[..])]));
        // Trailing bytes, a missing NUL, sizes past the end, a huge count: not a map.
        let mut longer = one.to_vec();
        longer.push(0);
        assert!(decode_pairs(&longer).is_none());
        let mut no_nul = one.to_vec();
        no_nul[13] = b'x';
        assert!(decode_pairs(&no_nul).is_none());
        assert!(decode_pairs(&[1, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, b'k', 0, b'v', 0]).is_none());
        assert!(decode_pairs(&[255, 255, 255, 255, 0, 0, 0, 0]).is_none());
        assert!(jwt_payload_claims(b"not a map").is_none());
    }
}
