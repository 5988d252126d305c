//! Signing keys made with openssl at test time: the private key as PKCS#8 PEM (what a filter's
//! `private_key_env` takes) and the public key as a JWK (what a verifier's key set holds).

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::jwt::base64url_encode;

/// A new P-256 key in `dir/<name>.pem`: its PEM and its public JWK (`kty`, `crv`, `x`, `y`; the
/// caller adds `kid` and `alg` where it wants them).
pub fn p256(dir: &Path, name: &str) -> (String, Value) {
    let (pem, spki) = generate(
        dir,
        name,
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    // The SubjectPublicKeyInfo of a P-256 key ends with the uncompressed point 04 || x || y.
    let point = &spki[spki.len() - 65..];
    assert_eq!(point[0], 4, "not an uncompressed P-256 point");
    let jwk = json!({"kty": "EC", "crv": "P-256",
                     "x": base64url_encode(&point[1..33]), "y": base64url_encode(&point[33..])});
    (pem, jwk)
}

/// A new Ed25519 key in `dir/<name>.pem`: its PEM and its public JWK (`kty`, `crv`, `x`; the
/// caller adds `kid` and `alg` where it wants them).
pub fn ed25519(dir: &Path, name: &str) -> (String, Value) {
    let (pem, spki) = generate(dir, name, &["-algorithm", "ED25519"]);
    // The SubjectPublicKeyInfo of an Ed25519 key ends with the 32-byte public key.
    let public = &spki[spki.len() - 32..];
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": base64url_encode(public)});
    (pem, jwk)
}

/// Runs `openssl genpkey` with `algorithm` into `dir/<name>.pem`; the PEM and the DER of the
/// public key's SubjectPublicKeyInfo.
fn generate(dir: &Path, name: &str, algorithm: &[&str]) -> (String, Vec<u8>) {
    let pem = dir.join(format!("{name}.pem"));
    let out = Command::new("openssl")
        .arg("genpkey")
        .args(algorithm)
        .arg("-out")
        .arg(&pem)
        .output()
        .unwrap_or_else(|e| panic!("run openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl genpkey {algorithm:?}: {out:?}"
    );
    let der = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&pem)
        .output()
        .unwrap_or_else(|e| panic!("run openssl: {e}"));
    assert!(der.status.success(), "openssl pkey -pubout: {der:?}");
    let text =
        std::fs::read_to_string(&pem).unwrap_or_else(|e| panic!("read {}: {e}", pem.display()));
    (text, der.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::base64url_decode;

    #[test]
    fn makes_keys_with_their_public_jwks() {
        let dir = crate::scratch_dir("keys");
        let (pem, jwk) = p256(&dir, "ec");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        assert_eq!(
            (jwk["kty"].clone(), jwk["crv"].clone()),
            ("EC".into(), "P-256".into())
        );
        for member in ["x", "y"] {
            let bytes = jwk[member].as_str().and_then(base64url_decode);
            assert_eq!(bytes.map(|b| b.len()), Some(32), "{jwk}");
        }
        let (pem, jwk) = ed25519(&dir, "ed");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        assert_eq!(jwk["crv"], "Ed25519");
        let x = jwk["x"].as_str().and_then(base64url_decode);
        assert_eq!(x.map(|b| b.len()), Some(32), "{jwk}");
        assert!(dir.join("ec.pem").is_file() && dir.join("ed.pem").is_file());
        let _ = std::fs::remove_dir_all(dir);
    }
}
