//! Minting test tokens: base64url, compact JWS serialization and HS256, so that a test can make
//! the tokens jwt-auth verifies (or refuses) without an IdP. The signature itself comes from the
//! caller for the asymmetric algorithms (ring in the tests); HS256 is here.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// base64url without padding, as JWS and JWK use it.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS: `header` and `payload` base64url-encoded, and `sign` applied to the signing
/// input (`<header>.<payload>`) gives the signature.
pub fn compact(header: &Value, payload: &[u8], sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(payload)
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64url(&signature))
}

/// A compact JWS with `header` (as given, so it can lie about `alg`) over `claims`, its signature
/// HMAC-SHA256 keyed with `secret`.
pub fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    compact(header, claims.to_string().as_bytes(), |input| {
        hmac_sha256(secret, input)
    })
}

/// HMAC-SHA256 (RFC 2104): a key longer than the 64-byte block is hashed first.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        let digest = Sha256::digest(key);
        block
            .iter_mut()
            .zip(digest.iter())
            .for_each(|(b, k)| *b = *k);
    } else {
        block.iter_mut().zip(key).for_each(|(b, k)| *b = *k);
    }
    let pad = |x: u8| block.iter().map(|b| b ^ x).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2: a short key.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn compact_serialization() {
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
        let token = compact(&json!({"alg": "none"}), b"{}", |input| {
            assert_eq!(input, b"eyJhbGciOiJub25lIn0.e30");
            vec![1, 2]
        });
        assert_eq!(token, "eyJhbGciOiJub25lIn0.e30.AQI");
        let token = hs256(b"k", &json!({"alg": "HS256"}), &json!({}));
        let input = "eyJhbGciOiJIUzI1NiJ9.e30";
        assert_eq!(
            token,
            format!("{input}.{}", b64url(&hmac_sha256(b"k", input.as_bytes())))
        );
    }
}
