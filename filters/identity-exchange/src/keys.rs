//! The internal token's keys: the one private key that signs, and the public keys the JWKS
//! publishes (the signer's own public half and, during a rotation, the others).
//!
//! A private key is a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, as `openssl genpkey` writes it)
//! or a private JWK (`EC` P-256 with `d`, `OKP` Ed25519 with `d`). The PKCS#8 document is read by
//! this module's strict DER reader (`p256_pkcs8`; the `der`/`pkcs8` crates were a twelfth of the
//! module), and a public key it carries must be the private key's own. Signing only touches kept,
//! constant-time implementations: RustCrypto's `p256`/`ecdsa` (deterministic nonces per
//! RFC 6979, so no random source is needed to sign) and `ed25519-compact`. The verifiers of
//! `shieldwall-jose`, which use fast variable-time arithmetic on public data, never see a private
//! key; they only check the published public keys at import.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use serde_json::{json, Map, Value};
use shieldwall_jose::{b64url_decode, b64url_encode};

/// The signature algorithms the internal token may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
        let Pkcs8P256 { d, publics } = p256_pkcs8(der)
            .ok_or_else(|| "not a PKCS#8 P-256 or Ed25519 private key".to_string())?;
        let sk = p256::SecretKey::from_slice(d).map_err(|_| {
            "the PKCS#8 key's private scalar is not a P-256 private key".to_string()
        })?;
        let point = sk.public_key().to_sec1_bytes();
        if publics.iter().flatten().any(|p| *p != &point[..]) {
            return Err(
                "the public key in the PKCS#8 document is not the one of its private key"
                    .to_string(),
            );
        }
        Ok(PrivateKey::P256(Box::new(p256::ecdsa::SigningKey::from(
            sk,
        ))))
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

/// One DER element: (tag, contents, what follows). Definite lengths in their shortest form only.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81 => {
            let (&l, rest) = rest.split_first()?;
            if l < 0x80 {
                return None;
            }
            (usize::from(l), rest)
        }
        0x82 => {
            let (&hi, rest) = rest.split_first()?;
            let (&lo, rest) = rest.split_first()?;
            let l = usize::from(hi) << 8 | usize::from(lo);
            if l < 0x100 {
                return None;
            }
            (l, rest)
        }
        _ => return None,
    };
    if rest.len() < len {
        return None;
    }
    let (contents, after) = rest.split_at(len);
    Some((tag, contents, after))
}

/// `06 07 2a8648ce3d0201` (id-ecPublicKey) and `06 08 2a8648ce3d030107` (prime256v1).
const EC_PUBLIC_KEY_OID: [u8; 7] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const PRIME256V1_OID: [u8; 8] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// A PKCS#8 P-256 private key (RFC 5208 / RFC 5958 around RFC 5915's `ECPrivateKey`): the
/// 32-byte private scalar and the public keys the document carries (inside `ECPrivateKey`, and
/// after it in a version-2 document), each `04 || x || y`. Read strictly: every length in DER's
/// form, the algorithm id-ecPublicKey on prime256v1, the curve named again inside only as
/// prime256v1, nothing left over; attributes are skipped.
fn p256_pkcs8(der: &[u8]) -> Option<Pkcs8P256<'_>> {
    let (0x30, info, []) = der_element(der)? else {
        return None;
    };
    let (0x02, version, rest) = der_element(info)? else {
        return None;
    };
    if version != [0] && version != [1] {
        return None;
    }
    let (0x30, algorithm, rest) = der_element(rest)? else {
        return None;
    };
    let (0x06, oid, parameters) = der_element(algorithm)? else {
        return None;
    };
    let (0x06, curve, []) = der_element(parameters)? else {
        return None;
    };
    if oid != EC_PUBLIC_KEY_OID || curve != PRIME256V1_OID {
        return None;
    }
    let (0x04, private_key, mut rest) = der_element(rest)? else {
        return None;
    };
    // [0] attributes (skipped), then in version 2 [1] the public key as a BIT STRING's contents.
    let mut outer_public = None;
    if let Some((0xa0, _, after)) = der_element(rest) {
        rest = after;
    }
    if let Some((0x81, bits, after)) = der_element(rest) {
        if version != [1] {
            return None;
        }
        outer_public = Some(bits.strip_prefix(&[0])?);
        rest = after;
    }
    if !rest.is_empty() {
        return None;
    }
    // ECPrivateKey ::= SEQUENCE { 1, OCTET STRING d, [0] curve OPTIONAL, [1] BIT STRING OPTIONAL }
    let (0x30, ec, []) = der_element(private_key)? else {
        return None;
    };
    let (0x02, [1], rest) = der_element(ec)? else {
        return None;
    };
    let (0x04, d, mut rest) = der_element(rest)? else {
        return None;
    };
    if d.len() != 32 {
        return None;
    }
    if let Some((0xa0, named, after)) = der_element(rest) {
        let (0x06, curve, []) = der_element(named)? else {
            return None;
        };
        if curve != PRIME256V1_OID {
            return None;
        }
        rest = after;
    }
    let mut inner_public = None;
    if let Some((0xa1, wrapped, after)) = der_element(rest) {
        let (0x03, bits, []) = der_element(wrapped)? else {
            return None;
        };
        inner_public = Some(bits.strip_prefix(&[0])?);
        rest = after;
    }
    if !rest.is_empty() {
        return None;
    }
    Some(Pkcs8P256 {
        d,
        publics: [inner_public, outer_public],
    })
}

/// What [`p256_pkcs8`] reads from a document.
struct Pkcs8P256<'a> {
    /// The private scalar, 32 bytes big-endian.
    d: &'a [u8],
    /// The public keys given inside `ECPrivateKey` and after it.
    publics: [Option<&'a [u8]>; 2],
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

    /// A DER element with its length in the shortest form.
    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match contents.len() {
            n @ 0..=0x7f => out.push(n as u8),
            n @ 0x80..=0xff => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(contents);
        out
    }

    /// A PKCS#8 P-256 document: `version`, then the ECPrivateKey's optional parts as given.
    fn pkcs8(
        version: u8,
        d: &[u8],
        curve_inside: Option<&[u8]>,
        inner_public: Option<&[u8]>,
        outer_public: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut ec = [tlv(0x02, &[1]), tlv(0x04, d)].concat();
        if let Some(oid) = curve_inside {
            ec.extend(tlv(0xa0, &tlv(0x06, oid)));
        }
        if let Some(p) = inner_public {
            ec.extend(tlv(0xa1, &tlv(0x03, &[&[0u8][..], p].concat())));
        }
        let algorithm = [tlv(0x06, &EC_PUBLIC_KEY_OID), tlv(0x06, &PRIME256V1_OID)].concat();
        let mut info = [
            tlv(0x02, &[version]),
            tlv(0x30, &algorithm),
            tlv(0x04, &tlv(0x30, &ec)),
        ]
        .concat();
        if let Some(p) = outer_public {
            info.extend(tlv(0x81, &[&[0u8][..], p].concat()));
        }
        tlv(0x30, &info)
    }

    #[test]
    fn pkcs8_p256_documents_are_read_strictly() {
        let PrivateKey::P256(sk) = PrivateKey::parse(P256_PEM).unwrap() else {
            panic!()
        };
        let d = sk.to_bytes().to_vec();
        let public = sk
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        let same = |der: &[u8]| match PrivateKey::from_pkcs8_der(der) {
            Ok(PrivateKey::P256(k)) => k.to_bytes().to_vec() == d,
            _ => false,
        };
        // The PEM's own document is the form `openssl genpkey` writes.
        let pem = pem_private_key(P256_PEM).unwrap();
        assert_eq!(pem, pkcs8(0, &d, None, Some(&public), None));
        for der in [
            pem.clone(),
            pkcs8(0, &d, None, None, None),
            pkcs8(0, &d, Some(&PRIME256V1_OID), Some(&public), None),
            pkcs8(1, &d, None, Some(&public), Some(&public)),
            pkcs8(1, &d, None, None, Some(&public)),
        ] {
            assert!(same(&der), "{der:02x?}");
        }
        // A public key that is not the private key's.
        let mut other = public.clone();
        other[64] ^= 1;
        for der in [
            pkcs8(0, &d, None, Some(&other), None),
            pkcs8(1, &d, None, Some(&public), Some(&other)),
        ] {
            let e = PrivateKey::from_pkcs8_der(&der).unwrap_err();
            assert!(e.contains("not the one of its private key"), "{e}");
        }
        // Other curves, versions and shapes.
        let p384 = [0x2b, 0x81, 0x04, 0x00, 0x22];
        let mut wrong_curve = pkcs8(0, &d, None, None, None);
        let at = wrong_curve
            .windows(PRIME256V1_OID.len())
            .position(|w| w == PRIME256V1_OID)
            .unwrap();
        wrong_curve[at + 7] = 0x08;
        let mut long_form = pem.clone();
        long_form.splice(1..2, [0x81, 0x81]);
        let refused = [
            wrong_curve,
            pkcs8(0, &d, Some(&p384), None, None),
            pkcs8(2, &d, None, None, None),
            pkcs8(0, &d, None, None, Some(&public)),
            pkcs8(0, &d[..31], None, None, None),
            [pem.clone(), vec![0]].concat(),
            pem[..pem.len() - 1].to_vec(),
            long_form,
            vec![],
        ];
        for der in refused {
            assert!(PrivateKey::from_pkcs8_der(&der).is_err(), "{der:02x?}");
        }
        // Every truncation of a good document is refused, never a panic.
        for cut in 0..pem.len() {
            assert!(PrivateKey::from_pkcs8_der(&pem[..cut]).is_err());
        }
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
