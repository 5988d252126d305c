//! The internal token's keys: the one private key that signs, and the public keys the JWKS
//! publishes (the signer's own public half and, during a rotation, the others).
//!
//! A private key is a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, as `openssl genpkey` writes it)
//! or a private JWK (`EC` P-256 with `d`, `OKP` Ed25519 with `d`). Signing only touches kept,
//! constant-time implementations: RustCrypto's `p256`/`ecdsa` (deterministic nonces per
//! RFC 6979, so no random source is needed to sign) and `ed25519-compact`. The verifiers of
//! `shieldwall-jose`, which use fast variable-time arithmetic on public data, never see a private
//! key; they only check the published public keys at import.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::pkcs8::DecodePrivateKey;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use shieldwall_jose::{b64url_decode, b64url_encode};

/// The signature algorithms the internal token may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum Alg {
    /// ECDSA with P-256 and SHA-256.
    #[default]
    ES256,
    /// Ed25519.
    EdDSA,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::ES256 => "ES256",
            Alg::EdDSA => "EdDSA",
        }
    }
}

/// A private key, ready to sign.
pub enum PrivateKey {
    P256(Box<p256::ecdsa::SigningKey>),
    Ed25519(Box<ed25519_compact::KeyPair>),
}

impl fmt::Debug for PrivateKey {
    // Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrivateKey::P256(_) => "PrivateKey(P-256)",
            PrivateKey::Ed25519(_) => "PrivateKey(Ed25519)",
        })
    }
}

/// The PKCS#8 encoding of an Ed25519 private key (RFC 8410 §7), up to the 32-byte seed.
const ED25519_PKCS8_V1: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// The same with the public key attached (OneAsymmetricKey, version 1).
const ED25519_PKCS8_V2: [u8; 16] = [
    0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const ED25519_PKCS8_V2_PUBLIC: [u8; 3] = [0x81, 0x21, 0x00];

impl PrivateKey {
    /// Parses a PKCS#8 PEM or a private JWK (JSON text).
    pub fn parse(text: &str) -> Result<PrivateKey, String> {
        let trimmed = text.trim();
        if trimmed.starts_with('{') {
            let jwk: Value = serde_json::from_str(trimmed)
                .map_err(|_| "neither a PEM private key nor a JSON Web Key".to_string())?;
            return PrivateKey::from_jwk(&jwk);
        }
        let der = pem_private_key(trimmed)?;
        PrivateKey::from_pkcs8_der(&der)
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<PrivateKey, String> {
        if der.len() == 48 && der.starts_with(&ED25519_PKCS8_V1) {
            return ed25519_from_seed(der.get(16..).unwrap_or_default(), None);
        }
        if der.len() == 83
            && der.starts_with(&ED25519_PKCS8_V2)
            && der.get(48..51) == Some(&ED25519_PKCS8_V2_PUBLIC[..])
        {
            return ed25519_from_seed(der.get(16..48).unwrap_or_default(), der.get(51..));
        }
        p256::SecretKey::from_pkcs8_der(der)
            .map(|sk| PrivateKey::P256(Box::new(p256::ecdsa::SigningKey::from(sk))))
            .map_err(|_| "not a PKCS#8 P-256 or Ed25519 private key".to_string())
    }

    fn from_jwk(jwk: &Value) -> Result<PrivateKey, String> {
        let member = |name: &str| -> Result<Vec<u8>, String> {
            let text = jwk
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("the JWK has no `{name}`"))?;
            b64url_decode(text).ok_or_else(|| format!("the JWK's `{name}` is not base64url"))
        };
        let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or("");
        let crv = jwk.get("crv").and_then(Value::as_str).unwrap_or("");
        match (kty, crv) {
            ("EC", "P-256") => {
                let d = member("d")?;
                let (x, y) = (member("x")?, member("y")?);
                if d.len() != 32 || x.len() != 32 || y.len() != 32 {
                    return Err("the JWK's `d`, `x` and `y` must be 32 bytes each".to_string());
                }
                let sk = p256::SecretKey::from_slice(&d)
                    .map_err(|_| "the JWK's `d` is not a P-256 private key".to_string())?;
                let point = sk.public_key().to_sec1_bytes();
                if point.get(1..33) != Some(&x[..]) || point.get(33..65) != Some(&y[..]) {
                    return Err("the JWK's `x`/`y` are not the public key of its `d`".to_string());
                }
                Ok(PrivateKey::P256(Box::new(p256::ecdsa::SigningKey::from(
                    sk,
                ))))
            }
            ("OKP", "Ed25519") => {
                let d = member("d")?;
                let x = member("x")?;
                ed25519_from_seed(&d, Some(&x))
            }
            _ => Err("the JWK is not an EC P-256 or OKP Ed25519 key".to_string()),
        }
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> Alg {
        match self {
            PrivateKey::P256(_) => Alg::ES256,
            PrivateKey::Ed25519(_) => Alg::EdDSA,
        }
    }

    /// The signature of `input`: `r || s` (64 bytes) for ES256, the 64-byte Ed25519 signature.
    pub fn sign(&self, input: &[u8]) -> Vec<u8> {
        match self {
            PrivateKey::P256(sk) => {
                let sig: p256::ecdsa::Signature = sk.sign(input);
                sig.to_bytes().to_vec()
            }
            PrivateKey::Ed25519(kp) => kp.sk.sign(input, None).as_ref().to_vec(),
        }
    }

    /// The public half as a JWK (`kty`, `crv`, `x`[, `y`]).
    pub fn public_jwk(&self) -> Map<String, Value> {
        let v = match self {
            PrivateKey::P256(sk) => {
                let point = sk.verifying_key().to_encoded_point(false);
                let x = point.x().map(|x| b64url_encode(x)).unwrap_or_default();
                let y = point.y().map(|y| b64url_encode(y)).unwrap_or_default();
                json!({"kty": "EC", "crv": "P-256", "x": x, "y": y})
            }
            PrivateKey::Ed25519(kp) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(kp.pk.as_ref())})
            }
        };
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

fn ed25519_from_seed(seed: &[u8], public: Option<&[u8]>) -> Result<PrivateKey, String> {
    let seed = ed25519_compact::Seed::from_slice(seed)
        .map_err(|_| "the Ed25519 private key must be 32 bytes".to_string())?;
    let kp = ed25519_compact::KeyPair::from_seed(seed);
    if let Some(public) = public {
        if public != kp.pk.as_ref() {
            return Err("the public key given is not the one of the private key".to_string());
        }
    }
    Ok(PrivateKey::Ed25519(Box::new(kp)))
}

/// The DER inside a `PRIVATE KEY` PEM block; other blocks are refused with what to do instead.
fn pem_private_key(text: &str) -> Result<Vec<u8>, String> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err("an encrypted private key: give the key unencrypted (PKCS#8)".to_string());
    }
    if text.contains("-----BEGIN EC PRIVATE KEY-----") {
        return Err(
            "a SEC1 `EC PRIVATE KEY`: convert it to PKCS#8 (openssl pkcs8 -topk8 -nocrypt)"
                .to_string(),
        );
    }
    let start = text
        .find(BEGIN)
        .ok_or_else(|| "neither a PEM `PRIVATE KEY` (PKCS#8) nor a JSON Web Key".to_string())?;
    let body = text.get(start + BEGIN.len()..).unwrap_or("");
    let end = body
        .find(END)
        .ok_or_else(|| "the PEM block has no END line".to_string())?;
    let b64: String = body
        .get(..end)
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| "the PEM block is not valid base64".to_string())
}

/// Checks a published public JWK (a P-256 point on the curve, an Ed25519 key that is a canonical
/// point of large order, no private or symmetric material) and returns its algorithm.
///
/// shieldwall-jose's `Key::from_jwk` makes the same checks, but linking its importer (every key
/// type) made this module 80 KB larger (601 KB against 521 KB, release wasm32-wasip1), so the
/// check uses the two curve crates the module already carries for signing.
pub fn check_public_jwk(jwk: &Value) -> Result<Alg, String> {
    let Value::Object(map) = jwk else {
        return Err("must be a JSON object".to_string());
    };
    if map.contains_key("d") || map.get("kty").and_then(Value::as_str) == Some("oct") {
        return Err(
            "holds private or symmetric key material: publish only public keys".to_string(),
        );
    }
    let member = |name: &str| -> Result<Vec<u8>, String> {
        let text = map
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("has no `{name}`"))?;
        b64url_decode(text).ok_or_else(|| format!("`{name}` is not base64url"))
    };
    let kty = map.get("kty").and_then(Value::as_str).unwrap_or("");
    match (kty, map.get("crv").and_then(Value::as_str)) {
        ("EC", Some("P-256")) => {
            let (x, y) = (member("x")?, member("y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err("`x` and `y` must be 32 bytes each".to_string());
            }
            let mut point = Vec::with_capacity(65);
            point.push(4u8);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            p256::PublicKey::from_sec1_bytes(&point)
                .map_err(|_| "not a point of P-256".to_string())?;
            Ok(Alg::ES256)
        }
        ("OKP", Some("Ed25519")) => {
            let x = member("x")?;
            let pk = ed25519_compact::PublicKey::from_slice(&x)
                .map_err(|_| "`x` must be 32 bytes".to_string())?;
            pk.validate().map_err(|_| {
                "not a usable Ed25519 public key (not canonical, or of small order)".to_string()
            })?;
            Ok(Alg::EdDSA)
        }
        _ => Err("must be an EC P-256 or OKP Ed25519 key".to_string()),
    }
}

/// The public JWK as published: `kty`, `crv`, `x`[, `y`] of the key, then `kid`, `alg`, `use`.
pub fn published_jwk(public: &Map<String, Value>, kid: &str, alg: Alg) -> Value {
    let mut out = Map::new();
    for name in ["kty", "crv", "x", "y"] {
        if let Some(v) = public.get(name) {
            out.insert(name.to_string(), v.clone());
        }
    }
    out.insert("kid".to_string(), Value::from(kid));
    out.insert("alg".to_string(), Value::from(alg.as_str()));
    out.insert("use".to_string(), Value::from("sig"));
    Value::Object(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A P-256 key made with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`.
    pub const P256_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgXMsn9GfCSXAb7AO2
LyuITZbfskra1SaLd2TeJGFl52KhRANCAAQiaaSGXj8A6s2hpr6to4bNYAiOLaLp
UeVQiPXKghbvwKDjQoXKjN77wd+i0V8Y06mXi9LYRE7NEGZ47hC/GPJC
-----END PRIVATE KEY-----";
    /// An Ed25519 key made with `openssl genpkey -algorithm ED25519`.
    pub const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEICvmcVSY4WtVwbOStSPpJp6yAW1j/9JxDb0LfQT64B2G
-----END PRIVATE KEY-----";

    #[test]
    fn pem_keys_parse_and_sign() {
        let k = PrivateKey::parse(P256_PEM).unwrap();
        assert_eq!(k.alg(), Alg::ES256);
        assert_eq!(k.sign(b"x").len(), 64);
        // RFC 6979: the same input gives the same signature.
        assert_eq!(k.sign(b"x"), k.sign(b"x"));
        let e = PrivateKey::parse(ED25519_PEM).unwrap();
        assert_eq!(e.alg(), Alg::EdDSA);
        assert_eq!(e.sign(b"x").len(), 64);
        assert_eq!(format!("{k:?}"), "PrivateKey(P-256)");
    }

    #[test]
    fn private_jwks_parse_and_must_match_their_public_half() {
        let k = PrivateKey::parse(P256_PEM).unwrap();
        let PrivateKey::P256(sk) = &k else { panic!() };
        let mut jwk = Value::Object(k.public_jwk());
        jwk["d"] = Value::from(b64url_encode(&sk.to_bytes()));
        let parsed = PrivateKey::parse(&jwk.to_string()).unwrap();
        assert_eq!(parsed.public_jwk(), k.public_jwk());
        let other = PrivateKey::parse(ED25519_PEM).unwrap();
        let mut wrong = jwk.clone();
        wrong["x"] = Value::from(b64url_encode(&[7u8; 32]));
        assert!(PrivateKey::parse(&wrong.to_string()).is_err());
        let PrivateKey::Ed25519(kp) = &other else {
            panic!()
        };
        let mut ed = Value::Object(other.public_jwk());
        ed["d"] = Value::from(b64url_encode(kp.sk.seed().as_ref()));
        assert_eq!(
            PrivateKey::parse(&ed.to_string()).unwrap().public_jwk(),
            other.public_jwk()
        );
        ed["x"] = jwk["x"].clone();
        assert!(PrivateKey::parse(&ed.to_string()).is_err());
    }

    #[test]
    fn bad_keys_are_refused_with_a_reason() {
        let cases = [
            ("", "neither"),
            ("hello", "neither"),
            ("-----BEGIN PRIVATE KEY-----\nAAAA\n", "END"),
            (
                "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----",
                "base64",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----",
                "PKCS#8",
            ),
            (
                "-----BEGIN EC PRIVATE KEY-----\nMAA=\n-----END EC PRIVATE KEY-----",
                "SEC1",
            ),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----",
                "encrypted",
            ),
            ("{\"kty\":\"RSA\"}", "not an EC P-256"),
            ("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\"}", "`d`"),
            (
                "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"AA\",\"x\":\"AA\"}",
                "32 bytes",
            ),
            ("{\"kty\":", "neither"),
        ];
        for (text, want) in cases {
            let e = PrivateKey::parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        // The zero scalar is not a P-256 private key.
        let zero = json!({"kty": "EC", "crv": "P-256", "d": b64url_encode(&[0u8; 32]),
                          "x": b64url_encode(&[0u8; 32]), "y": b64url_encode(&[0u8; 32])});
        assert!(PrivateKey::parse(&zero.to_string()).is_err());
    }

    #[test]
    fn public_jwks_are_checked() {
        let k = PrivateKey::parse(P256_PEM).unwrap();
        let jwk = Value::Object(k.public_jwk());
        assert_eq!(check_public_jwk(&jwk).unwrap(), Alg::ES256);
        let e = PrivateKey::parse(ED25519_PEM).unwrap();
        assert_eq!(
            check_public_jwk(&Value::Object(e.public_jwk())).unwrap(),
            Alg::EdDSA
        );
        let mut off_curve = jwk.clone();
        off_curve["y"] = off_curve["x"].clone();
        assert!(check_public_jwk(&off_curve).is_err());
        let mut private = jwk.clone();
        private["d"] = Value::from("AA");
        assert!(check_public_jwk(&private).unwrap_err().contains("private"));
        assert!(check_public_jwk(&json!({"kty": "oct", "k": "AAAA"})).is_err());
        assert!(check_public_jwk(&json!("x")).is_err());
        // The identity point and a non-canonical encoding are not Ed25519 keys to trust.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = json!({"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(&identity)});
        assert!(check_public_jwk(&weak).unwrap_err().contains("small order"));
        let rsa = json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"});
        assert!(check_public_jwk(&rsa).is_err());
        let published = published_jwk(&k.public_jwk(), "2026-11", Alg::ES256);
        assert_eq!(published["kid"], "2026-11");
        assert_eq!(published["use"], "sig");
        assert!(published.get("d").is_none());
    }
}
