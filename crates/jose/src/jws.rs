//! Strict parsing of compact JWS (RFC 7515 §7.1), as used by JWTs.
//!
//! Everything a token carries is hostile until its signature verifies, so the parser refuses
//! anything ambiguous rather than guessing: non-canonical base64url, duplicate JSON members,
//! unknown `crit` extensions, unencoded payloads (`b64: false`), `alg: none` in any spelling and
//! algorithms outside a fixed allow-list. Header members that point at keys (`jku`, `x5u`, `jwk`,
//! `x5c`) are tolerated but never read: keys come only from the configured JWKS.
//!
//! Errors carry a stable short code and never any part of the token.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;
use serde_json::{Map, Value};

/// A signature algorithm this filter accepts (RFC 7518 names, exact case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

/// An elliptic curve supported for ECDSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    P256,
    P384,
}

/// The kind of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlgFamily {
    /// RSASSA-PKCS1-v1_5 (RS*).
    Rsa,
    /// RSASSA-PSS (PS*), salt length equal to the hash length.
    RsaPss,
    /// ECDSA on the given curve, signature in the JWS `r || s` form.
    Ec(Curve),
    /// EdDSA with Ed25519.
    Ed25519,
    /// HMAC with a shared secret.
    Hmac,
}

impl Alg {
    /// Every accepted algorithm.
    pub const ALL: [Alg; 12] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
        Alg::HS256,
        Alg::HS384,
        Alg::HS512,
    ];

    /// The algorithm with this exact (case-sensitive) JOSE name, if we accept it.
    pub fn from_name(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// The JOSE name of the algorithm.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
        }
    }

    /// The kind of key this algorithm verifies with.
    pub fn family(self) -> AlgFamily {
        match self {
            Alg::RS256 | Alg::RS384 | Alg::RS512 => AlgFamily::Rsa,
            Alg::PS256 | Alg::PS384 | Alg::PS512 => AlgFamily::RsaPss,
            Alg::ES256 => AlgFamily::Ec(Curve::P256),
            Alg::ES384 => AlgFamily::Ec(Curve::P384),
            Alg::EdDSA => AlgFamily::Ed25519,
            Alg::HS256 | Alg::HS384 | Alg::HS512 => AlgFamily::Hmac,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a token was refused by the parser. [`JwsError::code`] is stable (metrics, replies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsError {
    /// Longer than the configured maximum; checked before anything else.
    TooLarge,
    /// Five parts: a JWE, which this filter does not decrypt.
    Jwe,
    /// JSON serialization (`{"payload": ...}`) instead of the compact form.
    JsonSerialization,
    /// Not three dot-separated parts, or an empty header or signature.
    Malformed,
    /// A part is not strict, canonical, unpadded base64url.
    BadBase64,
    /// The header is not a JSON object, or a header member has the wrong type.
    BadHeader,
    /// A JSON object (header or payload, at any depth) repeats a member name.
    DuplicateMember,
    /// No `alg` in the header.
    MissingAlg,
    /// `alg` is `none` (in any letter case).
    AlgNone,
    /// `alg` is not one of the accepted algorithms.
    AlgNotAllowed,
    /// The header has a `crit` member: no extension is understood, so it is always refused.
    CritUnsupported,
    /// `b64: false` (RFC 7797 unencoded payload) is not supported.
    B64Unsupported,
    /// The payload is not a JSON object (only for [`parse_compact`]).
    BadPayload,
}

impl JwsError {
    /// The stable short code.
    pub fn code(self) -> &'static str {
        match self {
            JwsError::TooLarge => "too_large",
            JwsError::Jwe => "jwe_unsupported",
            JwsError::JsonSerialization => "json_serialization",
            JwsError::Malformed => "malformed",
            JwsError::BadBase64 => "bad_base64",
            JwsError::BadHeader => "bad_header",
            JwsError::DuplicateMember => "duplicate_member",
            JwsError::MissingAlg => "missing_alg",
            JwsError::AlgNone => "alg_none",
            JwsError::AlgNotAllowed => "alg_not_allowed",
            JwsError::CritUnsupported => "crit_unsupported",
            JwsError::B64Unsupported => "b64_unsupported",
            JwsError::BadPayload => "bad_payload",
        }
    }
}

impl fmt::Display for JwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for JwsError {}

/// The protected header members the filter uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub alg: Alg,
    pub kid: Option<String>,
    pub typ: Option<String>,
}

/// A parsed compact JWS whose payload is kept as bytes (any JWS, not only a JWT).
#[derive(Debug, Clone, PartialEq)]
pub struct RawJws<'a> {
    pub header: Header,
    /// The decoded payload.
    pub payload: Vec<u8>,
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`: the bytes the signature covers.
    pub signing_input: &'a str,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// A parsed compact JWS whose payload is a JSON object (a JWT's claims).
#[derive(Debug, Clone, PartialEq)]
pub struct Jws<'a> {
    pub header: Header,
    pub claims: Map<String, Value>,
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`: the bytes the signature covers.
    pub signing_input: &'a str,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// Parses a compact JWS whose payload must be a JSON object (a JWT).
///
/// Same checks as [`parse_compact_raw`], then the payload must be a JSON object without
/// duplicate member names. Nothing here is trusted until the signature has been verified.
pub fn parse_compact(token: &str, max_bytes: usize) -> Result<Jws<'_>, JwsError> {
    let raw = parse_compact_raw(token, max_bytes)?;
    let claims = match parse_strict_json(&raw.payload) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(JwsError::BadPayload),
        Err(StrictJsonError::Duplicate) => return Err(JwsError::DuplicateMember),
        Err(StrictJsonError::Syntax) => return Err(JwsError::BadPayload),
    };
    Ok(Jws {
        header: raw.header,
        claims,
        signing_input: raw.signing_input,
        signature: raw.signature,
    })
}

/// Parses a compact JWS, keeping the payload as opaque bytes.
///
/// Order of checks: size; JSON serialization; number of parts (five is a JWE); strict base64url
/// of every part; the header. The payload may be empty (RFC 7515 allows it); the header and the
/// signature may not.
pub fn parse_compact_raw(token: &str, max_bytes: usize) -> Result<RawJws<'_>, JwsError> {
    if token.len() > max_bytes {
        return Err(JwsError::TooLarge);
    }
    if token.trim_start().starts_with('{') {
        return Err(JwsError::JsonSerialization);
    }
    let dots = token.bytes().filter(|&b| b == b'.').count();
    match dots {
        2 => {}
        4 => return Err(JwsError::Jwe),
        _ => return Err(JwsError::Malformed),
    }
    let mut parts = token.splitn(3, '.');
    let (Some(h64), Some(p64), Some(s64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(JwsError::Malformed);
    };
    if h64.is_empty() || s64.is_empty() {
        return Err(JwsError::Malformed);
    }
    let signing_input = token
        .get(..h64.len() + 1 + p64.len())
        .ok_or(JwsError::Malformed)?;

    let header_bytes = b64url_decode(h64).ok_or(JwsError::BadBase64)?;
    let payload = b64url_decode(p64).ok_or(JwsError::BadBase64)?;
    let signature = b64url_decode(s64).ok_or(JwsError::BadBase64)?;

    let header = parse_header(&header_bytes)?;
    Ok(RawJws {
        header,
        payload,
        signing_input,
        signature,
    })
}

fn parse_header(bytes: &[u8]) -> Result<Header, JwsError> {
    let map = match parse_strict_json(bytes) {
        Ok(Value::Object(map)) => map,
        Ok(_) | Err(StrictJsonError::Syntax) => return Err(JwsError::BadHeader),
        Err(StrictJsonError::Duplicate) => return Err(JwsError::DuplicateMember),
    };

    let alg = match map.get("alg") {
        None => return Err(JwsError::MissingAlg),
        Some(Value::String(name)) => {
            if name.eq_ignore_ascii_case("none") {
                return Err(JwsError::AlgNone);
            }
            Alg::from_name(name).ok_or(JwsError::AlgNotAllowed)?
        }
        Some(_) => return Err(JwsError::BadHeader),
    };

    // RFC 7515 §4.1.11: a recipient must refuse a JWS whose `crit` lists an extension it does not
    // understand. We understand none, so any `crit` is refused; a malformed one (not a non-empty
    // array of strings) is refused as a bad header.
    if let Some(crit) = map.get("crit") {
        return match crit {
            Value::Array(names) if !names.is_empty() && names.iter().all(Value::is_string) => {
                Err(JwsError::CritUnsupported)
            }
            _ => Err(JwsError::BadHeader),
        };
    }

    // RFC 7797: `b64: false` changes what is signed; we only support the default encoding.
    match map.get("b64") {
        None | Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Err(JwsError::B64Unsupported),
        Some(_) => return Err(JwsError::BadHeader),
    }

    let kid = optional_string(&map, "kid")?;
    let typ = optional_string(&map, "typ")?;
    // `jku`, `x5u`, `jwk`, `x5c`: deliberately ignored. Trusting a key named by the token itself
    // would let anyone sign their own tokens.
    Ok(Header { alg, kid, typ })
}

fn optional_string(map: &Map<String, Value>, name: &str) -> Result<Option<String>, JwsError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JwsError::BadHeader),
    }
}

/// Strict base64url (RFC 4648 §5) without padding: only `A-Za-z0-9-_`, no `=`, no whitespace,
/// and canonical (the unused low bits of the last character must be zero), so every byte
/// string has exactly one accepted encoding.
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    // The engine refuses padding, non-alphabet bytes (whitespace included), impossible lengths and
    // non-zero trailing bits; the explicit alphabet check keeps that true whatever its config.
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    URL_SAFE_NO_PAD.decode(text).ok()
}

pub fn b64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrictJsonError {
    Syntax,
    Duplicate,
}

/// Parses JSON like `serde_json::from_slice`, except that an object repeating a member name (at
/// any depth) is an error instead of "last one wins": two parties reading the same token must
/// never see two different values.
pub(crate) fn parse_strict_json(bytes: &[u8]) -> Result<Value, StrictJsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut de).map_err(|e| classify(&e))?;
    de.end().map_err(|_| StrictJsonError::Syntax)?;
    Ok(value)
}

const DUPLICATE_MARKER: &str = "duplicate member name";

fn classify(err: &serde_json::Error) -> StrictJsonError {
    if err.is_data() && err.to_string().starts_with(DUPLICATE_MARKER) {
        StrictJsonError::Duplicate
    } else {
        StrictJsonError::Syntax
    }
}

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(serde::de::Error::custom(DUPLICATE_MARKER));
            }
            let value = access.next_value_seed(StrictValue)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 8192;

    fn enc(s: &str) -> String {
        b64url_encode(s.as_bytes())
    }

    fn token(header: &str, payload: &str, sig: &[u8]) -> String {
        format!("{}.{}.{}", enc(header), enc(payload), b64url_encode(sig))
    }

    fn code(t: &str) -> &'static str {
        match parse_compact(t, MAX) {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    const H: &str = r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#;
    const P: &str = r#"{"sub":"alice","exp":10}"#;

    #[test]
    fn parses_a_well_formed_token() {
        let t = token(H, P, b"sig");
        let jws = parse_compact(&t, MAX).unwrap();
        assert_eq!(jws.header.alg, Alg::RS256);
        assert_eq!(jws.header.kid.as_deref(), Some("k1"));
        assert_eq!(jws.header.typ.as_deref(), Some("JWT"));
        assert_eq!(jws.claims.get("sub"), Some(&Value::from("alice")));
        assert_eq!(jws.signature, b"sig");
        let last_dot = t.rfind('.').unwrap();
        assert_eq!(jws.signing_input, &t[..last_dot]);
    }

    #[test]
    fn size_is_checked_first() {
        let t = token(H, P, b"sig");
        assert_eq!(parse_compact(&t, t.len()).map(|_| ()), Ok(()));
        assert_eq!(
            parse_compact(&t, t.len() - 1).unwrap_err(),
            JwsError::TooLarge
        );
        // Even garbage that would fail otherwise reports the size first.
        assert_eq!(parse_compact("{{{{{", 3).unwrap_err(), JwsError::TooLarge);
    }

    #[test]
    fn part_count() {
        let t = token(H, P, b"sig");
        assert_eq!(code(&format!("{t}.")), "malformed");
        assert_eq!(code(&format!("{t}.x.y")), "jwe_unsupported");
        let two: Vec<&str> = t.splitn(3, '.').collect();
        assert_eq!(code(&format!("{}.{}", two[0], two[1])), "malformed");
        assert_eq!(code(""), "malformed");
        assert_eq!(code(".."), "malformed");
        assert_eq!(code(&format!("{}..{}", two[0], two[2])), "bad_payload");
        assert_eq!(code(&format!("{}.{}.", two[0], two[1])), "malformed");
    }

    #[test]
    fn json_serialization_refused() {
        assert_eq!(
            code(r#"{"payload":"e30","signatures":[]}"#),
            "json_serialization"
        );
        assert_eq!(code(r#"  {"payload":"e30"}"#), "json_serialization");
    }

    #[test]
    fn strict_base64url() {
        let good = token(H, P, b"sig");
        let parts: Vec<&str> = good.split('.').collect();
        let with = |i: usize, s: &str| {
            let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
            p[i] = s.to_string();
            p.join(".")
        };
        // Padding, standard alphabet, whitespace, other characters: in every part.
        for (i, part) in parts.iter().enumerate() {
            assert_eq!(
                code(&with(i, &format!("{}=", part))),
                "bad_base64",
                "pad {i}"
            );
            assert_eq!(
                code(&with(i, &format!("{} ", part))),
                "bad_base64",
                "space {i}"
            );
            assert_eq!(code(&with(i, &format!(" {}", part))), "bad_base64");
            assert_eq!(code(&with(i, &format!("{}\n", part))), "bad_base64");
            assert_eq!(code(&with(i, &format!("{}?", part))), "bad_base64");
        }
        assert_eq!(code(&with(2, "c2l+")), "bad_base64");
        assert_eq!(code(&with(2, "c2l/")), "bad_base64");
        assert_eq!(code(&with(2, "c2lnA")), "bad_base64"); // length 1 mod 4
                                                           // "c2lnAA" is canonical; "c2lnAB" encodes the same bytes with a non-zero unused bit.
        assert_eq!(code(&with(2, "c2lnAA")), "ok");
        assert_eq!(code(&with(2, "c2lnAB")), "bad_base64");
        assert_eq!(code(&with(2, "c2lnAQ")), "ok"); // 0x01: the unused bits are zero
        assert_eq!(b64url_decode("AQ"), Some(vec![1]));
        assert_eq!(b64url_decode("AR"), None);
        assert_eq!(b64url_decode("AA"), Some(vec![0]));
        assert_eq!(b64url_decode("AAE"), Some(vec![0, 1]));
        assert_eq!(b64url_decode("AAF"), None);
        assert_eq!(b64url_decode("AAA"), Some(vec![0, 0]));
        assert_eq!(b64url_decode("-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(b64url_decode("+/8"), None);
    }

    #[test]
    fn alg_none_in_any_spelling_and_unknown_algs() {
        for none in ["none", "None", "NONE", "nOnE"] {
            let h = format!(r#"{{"alg":"{none}"}}"#);
            assert_eq!(code(&token(&h, P, b"")), "malformed");
            assert_eq!(code(&token(&h, P, b"x")), "alg_none", "{none}");
        }
        for alg in [
            "rs256", "Rs256", "HS1", "ES512", "ES256K", "RSA1_5", "A256GCM", "", "RS256 ",
        ] {
            let h = format!(r#"{{"alg":"{alg}"}}"#);
            assert_eq!(code(&token(&h, P, b"x")), "alg_not_allowed", "{alg}");
        }
        for alg in Alg::ALL {
            let h = format!(r#"{{"alg":"{}"}}"#, alg.as_str());
            assert_eq!(
                parse_compact(&token(&h, P, b"x"), MAX).unwrap().header.alg,
                alg
            );
            assert_eq!(Alg::from_name(alg.as_str()), Some(alg));
        }
        assert_eq!(code(&token(r#"{"typ":"JWT"}"#, P, b"x")), "missing_alg");
        assert_eq!(code(&token(r#"{"alg":256}"#, P, b"x")), "bad_header");
        assert_eq!(code(&token(r#"{"alg":null}"#, P, b"x")), "bad_header");
    }

    #[test]
    fn families() {
        assert_eq!(Alg::RS384.family(), AlgFamily::Rsa);
        assert_eq!(Alg::PS512.family(), AlgFamily::RsaPss);
        assert_eq!(Alg::ES256.family(), AlgFamily::Ec(Curve::P256));
        assert_eq!(Alg::ES384.family(), AlgFamily::Ec(Curve::P384));
        assert_eq!(Alg::EdDSA.family(), AlgFamily::Ed25519);
        assert_eq!(Alg::HS256.family(), AlgFamily::Hmac);
    }

    #[test]
    fn crit_is_always_refused() {
        let cases = [
            (
                r#"{"alg":"RS256","crit":["exp"],"exp":1}"#,
                "crit_unsupported",
            ),
            (
                r#"{"alg":"RS256","crit":["b64"],"b64":true}"#,
                "crit_unsupported",
            ),
            (r#"{"alg":"RS256","crit":[]}"#, "bad_header"),
            (r#"{"alg":"RS256","crit":"exp"}"#, "bad_header"),
            (r#"{"alg":"RS256","crit":[1]}"#, "bad_header"),
            (r#"{"alg":"RS256","crit":null}"#, "bad_header"),
        ];
        for (h, want) in cases {
            assert_eq!(code(&token(h, P, b"x")), want, "{h}");
        }
    }

    #[test]
    fn b64_false_refused() {
        assert_eq!(
            code(&token(r#"{"alg":"RS256","b64":false}"#, P, b"x")),
            "b64_unsupported"
        );
        assert_eq!(
            code(&token(r#"{"alg":"RS256","b64":"false"}"#, P, b"x")),
            "bad_header"
        );
        assert_eq!(code(&token(r#"{"alg":"RS256","b64":true}"#, P, b"x")), "ok");
    }

    #[test]
    fn key_pointers_tolerated_but_unused_and_member_types() {
        let h = r#"{"alg":"ES256","jku":"https://evil/","x5u":"https://evil/","jwk":{"kty":"oct","k":"AAAA"},"x5c":["MII"]}"#;
        let t = token(h, P, b"x");
        let jws = parse_compact(&t, MAX).unwrap();
        assert_eq!(
            jws.header,
            Header {
                alg: Alg::ES256,
                kid: None,
                typ: None
            }
        );
        assert_eq!(
            code(&token(r#"{"alg":"RS256","kid":1}"#, P, b"x")),
            "bad_header"
        );
        assert_eq!(
            code(&token(r#"{"alg":"RS256","kid":null}"#, P, b"x")),
            "bad_header"
        );
        assert_eq!(
            code(&token(r#"{"alg":"RS256","typ":["JWT"]}"#, P, b"x")),
            "bad_header"
        );
    }

    #[test]
    fn header_and_payload_must_be_objects() {
        assert_eq!(code(&token(r#"["alg","RS256"]"#, P, b"x")), "bad_header");
        assert_eq!(code(&token(r#"{"alg":"RS256""#, P, b"x")), "bad_header");
        assert_eq!(code(&token(r#"{"alg":"RS256"} x"#, P, b"x")), "bad_header");
        assert_eq!(code(&token(H, "[1]", b"x")), "bad_payload");
        assert_eq!(code(&token(H, "Test", b"x")), "bad_payload");
        assert_eq!(code(&token(H, "", b"x")), "bad_payload");
        // Whitespace around the JSON is fine.
        assert_eq!(code(&token(" {\"alg\" : \"RS256\"}\n", " {} ", b"x")), "ok");
        // Invalid UTF-8 in the header is refused.
        let t = format!(
            "{}.{}.eA",
            b64url_encode(b"{\"alg\":\"RS256\",\"x\":\"\xff\"}"),
            enc(P)
        );
        assert_eq!(code(&t), "bad_header");
    }

    #[test]
    fn raw_keeps_any_payload() {
        let t = token(H, "Test", b"x");
        let raw = parse_compact_raw(&t, MAX).unwrap();
        assert_eq!(raw.payload, b"Test");
        let t = token(H, "", b"x");
        assert_eq!(parse_compact_raw(&t, MAX).unwrap().payload, b"");
    }

    #[test]
    fn duplicate_members_refused() {
        let dup_h = r#"{"alg":"HS256","alg":"RS256"}"#;
        assert_eq!(code(&token(dup_h, P, b"x")), "duplicate_member");
        let dup_p = r#"{"sub":"alice","sub":"admin"}"#;
        assert_eq!(code(&token(H, dup_p, b"x")), "duplicate_member");
        let nested = r#"{"sub":"alice","x":{"a":1,"a":2}}"#;
        assert_eq!(code(&token(H, nested, b"x")), "duplicate_member");
        let in_array = r#"{"sub":"alice","x":[{"a":1,"a":2}]}"#;
        assert_eq!(code(&token(H, in_array, b"x")), "duplicate_member");
        // Escapes that decode to the same name are duplicates too.
        let escaped = r#"{"sub":"alice","s\u0075b":"admin"}"#;
        assert_eq!(code(&token(H, escaped, b"x")), "duplicate_member");
        // A string value equal to the marker text is not mistaken for a duplicate.
        assert_eq!(
            parse_strict_json(br#"{"a":"duplicate member name"}"#).map(|_| ()),
            Ok(())
        );
    }

    #[test]
    fn errors_never_carry_token_content() {
        let t = token(r#"{"alg":"secret-alg-name"}"#, P, b"x");
        let e = parse_compact(&t, MAX).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("secret"));
    }
}
