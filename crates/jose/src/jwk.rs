//! Import of a JSON Web Key Set (RFC 7517 §5) into ready-to-verify keys.
//!
//! Only a JWKS object `{"keys": [...]}` is accepted, never a bare JWK: an identity provider
//! publishes a set, and accepting both shapes would let a misconfigured URL be read as something
//! it is not.
//!
//! Keys that cannot be used are skipped one at a time and listed in [`Jwks::skipped`] with a
//! stable reason; the set is refused as a whole only when it is not a JWKS, is too large, has too
//! many keys, or leaves no usable key. Rules beyond the RFCs, for safety:
//! - private members (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`) refuse the key: secrets from a
//!   remote set are never stored;
//! - a set that mixes symmetric (`oct`) and asymmetric keys keeps only the asymmetric ones: a
//!   shared secret next to public keys means a secret was published by mistake;
//! - keys sharing a `kid` are all skipped (counting unusable entries too): which one a token
//!   means would be ambiguous;
//! - an RSA modulus showing the ROCA fingerprint (CVE-2017-15361) is refused.
//!
//! For sharing between workers, [`Jwks::to_json`] writes the usable keys back as a compact JWKS
//! holding only public members (and `k` for accepted `oct` keys). Re-parsing it with the same
//! options yields the same keys, so workers can store it in shared data and rebuild their own
//! key objects from it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::digest::{Algorithm as HashAlgorithm, HmacKey};
use serde_json::{json, Map, Value};

use crate::jws::{b64url_decode, b64url_encode, parse_strict_json, Alg, AlgFamily, Curve};
use crate::rsa;

/// Import limits and policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksOptions {
    /// Accept `oct` (HMAC) keys. Only for locally configured sets, never for a remote JWKS.
    pub allow_symmetric: bool,
    /// Refuse a document longer than this (checked before parsing).
    pub max_bytes: usize,
    /// Refuse a set with more entries than this.
    pub max_keys: usize,
}

/// Why a whole key set was refused. [`JwksError::code`] is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwksError {
    TooLarge,
    /// Not JSON, or JSON with a repeated member name.
    Malformed,
    /// JSON, but not an object with a `keys` array.
    NotAJwks,
    TooManyKeys,
    /// Every key was skipped.
    NoUsableKey,
}

impl JwksError {
    pub fn code(self) -> &'static str {
        match self {
            JwksError::TooLarge => "jwks_too_large",
            JwksError::Malformed => "jwks_malformed",
            JwksError::NotAJwks => "not_a_jwks",
            JwksError::TooManyKeys => "too_many_keys",
            JwksError::NoUsableKey => "no_usable_key",
        }
    }
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for JwksError {}

/// A key that was left out of the set, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// Position in the `keys` array.
    pub index: usize,
    pub kid: Option<String>,
    pub reason: &'static str,
}

/// A usable key set.
#[derive(Debug, Clone)]
pub struct Jwks {
    pub keys: Vec<Key>,
    pub skipped: Vec<SkippedKey>,
}

/// One verification key.
#[derive(Clone)]
pub struct Key {
    pub kid: Option<String>,
    /// When set, the only algorithm this key verifies.
    pub alg: Option<Alg>,
    pub(crate) key: KeyMaterial,
}

impl fmt::Debug for Key {
    // Never prints key material (an `oct` key is a secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("kty", &self.key.kty())
            .finish_non_exhaustive()
    }
}

/// Key material in the form the verifiers take.
#[derive(Clone)]
pub(crate) enum KeyMaterial {
    /// Modulus and exponent, big-endian, no leading zero bytes (kept for [`Jwks::to_json`]),
    /// and the same key prepared once for verification, shared by clones.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
        public: Arc<rsa::PublicKey>,
    },
    /// Uncompressed point `04 || x || y`, checked to be on the curve, and the key's verifier with
    /// its table of multiples, built once here and shared by clones.
    Ec {
        curve: Curve,
        point: Vec<u8>,
        verifier: EcVerifier,
    },
    /// The 32-byte public key, decoded once with its tables of multiples for verification and
    /// shared by clones.
    Ed25519(Arc<crate::ed25519::VerifyingKey>),
    /// A shared secret, with its HMAC keys prepared once.
    Oct(Box<OctKey>),
}

/// The verifier of an EC key, by curve.
#[derive(Clone)]
pub(crate) enum EcVerifier {
    /// ES256.
    P256(Arc<crate::p256::VerifyingKey>),
    /// ES384.
    P384(Arc<crate::p384::VerifyingKey>),
}

/// HMAC keys prepared once per hash (the padded inner and outer blocks hashed in advance),
/// present only for the hashes this secret may be used with.
#[derive(Clone)]
pub(crate) struct OctKey {
    secret: Vec<u8>,
    hs256: Option<HmacKey>,
    hs384: Option<HmacKey>,
    hs512: Option<HmacKey>,
}

impl KeyMaterial {
    fn kty(&self) -> &'static str {
        match self {
            KeyMaterial::Rsa { .. } => "RSA",
            KeyMaterial::Ec { .. } => "EC",
            KeyMaterial::Ed25519(_) => "OKP",
            KeyMaterial::Oct(_) => "oct",
        }
    }

    fn is_symmetric(&self) -> bool {
        matches!(self, KeyMaterial::Oct(_))
    }
}

impl Key {
    /// Imports one JWK (RFC 7517 §4) with the checks a member of a set gets (see the module
    /// documentation), and refuses it with the stable reason a skipped key would carry.
    /// `allow_symmetric` admits `oct` keys: only for keys the operator configured, never for keys
    /// fetched from elsewhere.
    pub fn from_jwk(jwk: &Value, allow_symmetric: bool) -> Result<Key, &'static str> {
        let opts = JwksOptions {
            allow_symmetric,
            max_bytes: usize::MAX,
            max_keys: 1,
        };
        import_key(jwk, opts)
    }

    /// Whether this key may verify a signature made with `alg`: the algorithm must belong to the
    /// key's family, and equal the key's own `alg` when it names one.
    pub fn accepts(&self, alg: Alg) -> bool {
        if self.alg.is_some_and(|own| own != alg) {
            return false;
        }
        match (&self.key, alg.family()) {
            (KeyMaterial::Rsa { .. }, AlgFamily::Rsa | AlgFamily::RsaPss) => true,
            (KeyMaterial::Ec { curve, .. }, AlgFamily::Ec(c)) => *curve == c,
            (KeyMaterial::Ed25519(_), AlgFamily::Ed25519) => true,
            (KeyMaterial::Oct(_), AlgFamily::Hmac) => self.hmac_key(alg).is_some(),
            _ => false,
        }
    }

    pub(crate) fn hmac_key(&self, alg: Alg) -> Option<&HmacKey> {
        let KeyMaterial::Oct(oct) = &self.key else {
            return None;
        };
        match alg {
            Alg::HS256 => oct.hs256.as_ref(),
            Alg::HS384 => oct.hs384.as_ref(),
            Alg::HS512 => oct.hs512.as_ref(),
            _ => None,
        }
    }

    /// The key type (`RSA`, `EC`, `OKP`, `oct`).
    pub fn kty(&self) -> &'static str {
        self.key.kty()
    }

    fn to_json(&self) -> Value {
        let mut obj = match &self.key {
            KeyMaterial::Rsa { n, e, .. } => {
                json!({"kty": "RSA", "n": b64url_encode(n), "e": b64url_encode(e)})
            }
            KeyMaterial::Ec { curve, point, .. } => {
                let coords = point.get(1..).unwrap_or_default();
                let (x, y) = coords.split_at(coords.len() / 2);
                let crv = match curve {
                    Curve::P256 => "P-256",
                    Curve::P384 => "P-384",
                };
                json!({"kty": "EC", "crv": crv, "x": b64url_encode(x), "y": b64url_encode(y)})
            }
            KeyMaterial::Ed25519(key) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(key.encoded())})
            }
            KeyMaterial::Oct(oct) => json!({"kty": "oct", "k": b64url_encode(&oct.secret)}),
        };
        if let Value::Object(map) = &mut obj {
            if let Some(kid) = &self.kid {
                map.insert("kid".into(), Value::from(kid.as_str()));
            }
            if let Some(alg) = self.alg {
                map.insert("alg".into(), Value::from(alg.as_str()));
            }
        }
        obj
    }
}

impl Jwks {
    /// A compact JWKS of the usable keys, re-parseable by [`parse_jwks`] with the same options
    /// into the same keys. It holds `oct` secrets when such keys were accepted: keep it inside
    /// the proxy (shared data), never send it anywhere.
    pub fn to_json(&self) -> String {
        let keys: Vec<Value> = self.keys.iter().map(Key::to_json).collect();
        json!({ "keys": keys }).to_string()
    }
}

/// Imports a JWKS. See the module documentation for the rules.
pub fn parse_jwks(json: &[u8], opts: JwksOptions) -> Result<Jwks, JwksError> {
    if json.len() > opts.max_bytes {
        return Err(JwksError::TooLarge);
    }
    let doc = parse_strict_json(json).map_err(|_| JwksError::Malformed)?;
    let Some(entries) = doc.get("keys").and_then(Value::as_array) else {
        return Err(JwksError::NotAJwks);
    };
    if entries.len() > opts.max_keys {
        return Err(JwksError::TooManyKeys);
    }

    let mut parsed: Vec<(usize, Key)> = Vec::new();
    let mut skipped = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        match import_key(entry, opts) {
            Ok(jwk) => parsed.push((index, jwk)),
            Err(reason) => skipped.push(SkippedKey {
                index,
                kid: entry.get("kid").and_then(Value::as_str).map(str::to_owned),
                reason,
            }),
        }
    }

    let has_asymmetric = parsed.iter().any(|(_, k)| !k.key.is_symmetric());
    // Counted over every entry, usable or not: if a set names two keys with one kid, which one
    // the issuer meant is unknowable, even when we could only read one of them.
    let mut kid_count: HashMap<&str, usize> = HashMap::new();
    for entry in entries {
        if let Some(kid) = entry.get("kid").and_then(Value::as_str) {
            *kid_count.entry(kid).or_default() += 1;
        }
    }

    let mut keys = Vec::with_capacity(parsed.len());
    for (index, jwk) in parsed {
        let reason = if has_asymmetric && jwk.key.is_symmetric() {
            Some("mixed_symmetric")
        } else if jwk
            .kid
            .as_ref()
            .is_some_and(|kid| kid_count.get(kid.as_str()).copied().unwrap_or(0) > 1)
        {
            Some("duplicate_kid")
        } else {
            None
        };
        match reason {
            Some(reason) => skipped.push(SkippedKey {
                index,
                kid: jwk.kid.clone(),
                reason,
            }),
            None => keys.push(jwk),
        }
    }
    skipped.sort_by_key(|s| s.index);

    if keys.is_empty() {
        return Err(JwksError::NoUsableKey);
    }
    Ok(Jwks { keys, skipped })
}

const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

fn import_key(entry: &Value, opts: JwksOptions) -> Result<Key, &'static str> {
    let Value::Object(m) = entry else {
        return Err("not_an_object");
    };
    let kid = match m.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("bad_kid"),
    };
    if PRIVATE_MEMBERS.iter().any(|name| m.contains_key(*name)) {
        return Err("private_key");
    }
    match m.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(_) => return Err("bad_use"),
    }
    match m.get("key_ops") {
        None => {}
        Some(Value::Array(ops))
            if ops.iter().all(Value::is_string)
                && ops.iter().any(|op| op.as_str() == Some("verify")) => {}
        Some(_) => return Err("bad_key_ops"),
    }
    let alg = match m.get("alg") {
        None => None,
        Some(Value::String(name)) => Some(Alg::from_name(name).ok_or("unsupported_alg")?),
        Some(_) => return Err("unsupported_alg"),
    };

    let key = match m.get("kty").and_then(Value::as_str) {
        None => return Err("missing_kty"),
        Some("RSA") => import_rsa(m)?,
        Some("EC") => import_ec(m)?,
        Some("OKP") => import_okp(m)?,
        Some("oct") => {
            if !opts.allow_symmetric {
                return Err("symmetric_not_allowed");
            }
            import_oct(m, alg)?
        }
        Some(_) => return Err("unsupported_kty"),
    };
    let jwk = Key { kid, alg, key };
    if let Some(alg) = alg {
        if !jwk.accepts(alg) {
            return Err("alg_key_mismatch");
        }
    }
    Ok(jwk)
}

fn member_b64(
    m: &Map<String, Value>,
    name: &str,
    reason: &'static str,
) -> Result<Vec<u8>, &'static str> {
    m.get(name)
        .and_then(Value::as_str)
        .and_then(b64url_decode)
        .ok_or(reason)
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

fn bit_len(be: &[u8]) -> usize {
    match be.first() {
        None => 0,
        Some(&top) => (be.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

pub(crate) const RSA_MIN_BITS: usize = 2048;
pub(crate) const RSA_MAX_BITS: usize = 8192;

fn import_rsa(m: &Map<String, Value>) -> Result<KeyMaterial, &'static str> {
    let n = member_b64(m, "n", "bad_rsa_key")?;
    let e = member_b64(m, "e", "bad_rsa_key")?;
    // Some publishers prefix a zero byte; the value is what counts.
    let n = strip_leading_zeros(&n).to_vec();
    let e = strip_leading_zeros(&e).to_vec();
    let bits = bit_len(&n);
    if bits < RSA_MIN_BITS {
        return Err("rsa_too_small");
    }
    if bits > RSA_MAX_BITS {
        return Err("rsa_too_large");
    }
    if n.last().is_some_and(|b| b & 1 == 0) {
        return Err("bad_rsa_key");
    }
    // Odd, at least 3, and at most 33 bits (ring's verification limit).
    if e.len() > 5
        || bit_len(&e) > 33
        || e.last().is_none_or(|b| b & 1 == 0)
        || (e.len() == 1 && e.first().is_some_and(|&b| b < 3))
    {
        return Err("rsa_bad_exponent");
    }
    if has_roca_fingerprint(&n) {
        return Err("rsa_roca");
    }
    // Modulus limbs, Montgomery constant and R² mod n, computed here once rather than on
    // every verification.
    let public = Arc::new(rsa::PublicKey::new(&n, &e).ok_or("bad_rsa_key")?);
    Ok(KeyMaterial::Rsa { n, e, public })
}

/// Small primes used by the ROCA fingerprint (Nemec et al., CCS 2017). A modulus made by the
/// affected generator is, modulo each of them, a power of 65537; for a random modulus the chance
/// of that across all of them is negligible (negligible).
const ROCA_PRIMES: [u32; 38] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
];

fn has_roca_fingerprint(n: &[u8]) -> bool {
    ROCA_PRIMES.iter().all(|&p| {
        let residue = n
            .iter()
            .fold(0u32, |acc, &b| (acc * 256 + u32::from(b)) % p);
        // Walk the subgroup generated by 65537 mod p until it cycles back to 1.
        let g = 65537 % p;
        let mut x = 1u32;
        loop {
            if x == residue {
                return true;
            }
            x = (x * g) % p;
            if x == 1 {
                return false;
            }
        }
    })
}

fn import_ec(m: &Map<String, Value>) -> Result<KeyMaterial, &'static str> {
    let (curve, coord_len) = match m.get("crv").and_then(Value::as_str) {
        Some("P-256") => (Curve::P256, 32),
        Some("P-384") => (Curve::P384, 48),
        _ => return Err("unsupported_curve"),
    };
    let x = member_b64(m, "x", "bad_ec_key")?;
    let y = member_b64(m, "y", "bad_ec_key")?;
    // RFC 7518 §6.2.1.2: coordinates are full length, never shortened.
    if x.len() != coord_len || y.len() != coord_len {
        return Err("bad_ec_key");
    }
    let mut point = Vec::with_capacity(1 + 2 * coord_len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    // A bad point (a coordinate not below p, or off the curve) is refused here, by name, instead
    // of failing every token later: each verifier's key import checks it.
    let verifier = match curve {
        Curve::P256 => crate::p256::VerifyingKey::from_uncompressed(&point)
            .map(|k| EcVerifier::P256(Arc::new(k))),
        Curve::P384 => crate::p384::VerifyingKey::from_uncompressed(&point)
            .map(|k| EcVerifier::P384(Arc::new(k))),
    }
    .ok_or("ec_point_not_on_curve")?;
    Ok(KeyMaterial::Ec {
        curve,
        point,
        verifier,
    })
}

fn import_okp(m: &Map<String, Value>) -> Result<KeyMaterial, &'static str> {
    if m.get("crv").and_then(Value::as_str) != Some("Ed25519") {
        return Err("unsupported_curve");
    }
    let x = member_b64(m, "x", "bad_okp_key")?;
    let x: [u8; 32] = x.try_into().map_err(|_| "bad_okp_key")?;
    if let Some(reason) = crate::ed25519::weak_key_reason(&x) {
        return Err(reason);
    }
    let key = crate::ed25519::VerifyingKey::from_bytes(&x).ok_or("ed25519_not_on_curve")?;
    Ok(KeyMaterial::Ed25519(Arc::new(key)))
}

/// Minimum HMAC secret: RFC 7518 §3.2 requires a key at least as long as the hash output.
fn hmac_min_len(alg: Alg) -> usize {
    match alg {
        Alg::HS384 => 48,
        Alg::HS512 => 64,
        _ => 32,
    }
}

fn import_oct(m: &Map<String, Value>, alg: Option<Alg>) -> Result<KeyMaterial, &'static str> {
    let secret = member_b64(m, "k", "bad_oct_key")?;
    let usable = |a: Alg| alg.is_none_or(|own| own == a) && secret.len() >= hmac_min_len(a);
    let prepare = |a: Alg, h: HashAlgorithm| usable(a).then(|| HmacKey::new(h, &secret));
    let hs256 = prepare(Alg::HS256, HashAlgorithm::Sha256);
    let hs384 = prepare(Alg::HS384, HashAlgorithm::Sha384);
    let hs512 = prepare(Alg::HS512, HashAlgorithm::Sha512);
    if hs256.is_none() && hs384.is_none() && hs512.is_none() {
        return Err(match alg {
            Some(a) if a.family() != AlgFamily::Hmac => "alg_key_mismatch",
            _ => "oct_too_short",
        });
    }
    Ok(KeyMaterial::Oct(Box::new(OctKey {
        secret,
        hs256,
        hs384,
        hs512,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const OPTS: JwksOptions = JwksOptions {
        allow_symmetric: true,
        max_bytes: 1 << 20,
        max_keys: 32,
    };

    // A 2048-bit RSA public key (RFC 7520 §3.3), a P-256 key (RFC 7520 §3.2 uses P-521, so this
    // one is from RFC 7515 A.3), an Ed25519 key (RFC 8037 A.2).
    pub(crate) const RSA_N: &str = "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw";
    pub(crate) const P256_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    pub(crate) const P256_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
    pub(crate) const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    pub(crate) const OCT_K: &str =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

    pub(crate) fn rsa(extra: &str) -> String {
        format!(r#"{{"kty":"RSA","n":"{RSA_N}","e":"AQAB"{extra}}}"#)
    }
    pub(crate) fn ec(extra: &str) -> String {
        format!(r#"{{"kty":"EC","crv":"P-256","x":"{P256_X}","y":"{P256_Y}"{extra}}}"#)
    }
    pub(crate) fn ed(extra: &str) -> String {
        format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED_X}"{extra}}}"#)
    }
    pub(crate) fn oct(extra: &str) -> String {
        format!(r#"{{"kty":"oct","k":"{OCT_K}"{extra}}}"#)
    }
    fn set(keys: &[String]) -> String {
        format!(r#"{{"keys":[{}]}}"#, keys.join(","))
    }

    fn one(key: String) -> Result<Key, &'static str> {
        match parse_jwks(set(&[key]).as_bytes(), OPTS) {
            Ok(mut s) => Ok(s.keys.remove(0)),
            Err(JwksError::NoUsableKey) => Err("skipped"),
            Err(e) => Err(e.code()),
        }
    }

    fn skip_reason(key: String) -> &'static str {
        let doc = set(&[key, ed(r#","kid":"other""#)]);
        let s = parse_jwks(doc.as_bytes(), OPTS).unwrap();
        assert_eq!(s.keys.len(), 1);
        s.skipped[0].reason
    }

    #[test]
    fn imports_each_key_type() {
        let k = one(rsa(r#","kid":"r","alg":"RS256","use":"sig""#)).unwrap();
        assert_eq!(
            (k.kid.as_deref(), k.alg, k.kty()),
            (Some("r"), Some(Alg::RS256), "RSA")
        );
        let KeyMaterial::Rsa { n, e, .. } = &k.key else {
            panic!()
        };
        assert_eq!(n.len(), 256);
        assert_eq!(e, &[1, 0, 1]);
        let k = one(ec("")).unwrap();
        let KeyMaterial::Ec {
            curve,
            point,
            verifier,
        } = &k.key
        else {
            panic!()
        };
        assert_eq!((*curve, point.len(), point[0]), (Curve::P256, 65, 4));
        assert!(matches!(verifier, EcVerifier::P256(_)));
        assert_eq!(one(ed("")).unwrap().kty(), "OKP");
        assert_eq!(one(oct("")).unwrap().kty(), "oct");
    }

    #[test]
    fn only_a_jwks_is_accepted() {
        let code = |doc: &str| parse_jwks(doc.as_bytes(), OPTS).unwrap_err().code();
        assert_eq!(code(&rsa("")), "not_a_jwks");
        assert_eq!(code(r#"{"keys":{}}"#), "not_a_jwks");
        assert_eq!(code(r#"[]"#), "not_a_jwks");
        assert_eq!(code(r#"{"keys":[]}"#), "no_usable_key");
        assert_eq!(code(r#"{"keys":[1,"x",null]}"#), "no_usable_key");
        assert_eq!(code("{"), "jwks_malformed");
        assert_eq!(code(r#"{"keys":[],"keys":[]}"#), "jwks_malformed");
        let doc = set(&[rsa("")]);
        let small = JwksOptions {
            max_bytes: doc.len() - 1,
            ..OPTS
        };
        assert_eq!(
            parse_jwks(doc.as_bytes(), small).unwrap_err(),
            JwksError::TooLarge
        );
        let exact = JwksOptions {
            max_bytes: doc.len(),
            ..OPTS
        };
        assert!(parse_jwks(doc.as_bytes(), exact).is_ok());
        let three = set(&[
            ed(r#","kid":"a""#),
            ed(r#","kid":"b""#),
            ed(r#","kid":"c""#),
        ]);
        let two = JwksOptions {
            max_keys: 2,
            ..OPTS
        };
        assert_eq!(
            parse_jwks(three.as_bytes(), two).unwrap_err(),
            JwksError::TooManyKeys
        );
    }

    #[test]
    fn bad_keys_are_skipped_one_by_one() {
        let doc = set(&[
            r#"{"kty":"foo","kid":"a"}"#.into(),
            rsa(r#","kid":"b""#),
            r#"{"kid":"c"}"#.into(),
        ]);
        let s = parse_jwks(doc.as_bytes(), OPTS).unwrap();
        assert_eq!(s.keys.len(), 1);
        assert_eq!(
            s.skipped,
            vec![
                SkippedKey {
                    index: 0,
                    kid: Some("a".into()),
                    reason: "unsupported_kty"
                },
                SkippedKey {
                    index: 2,
                    kid: Some("c".into()),
                    reason: "missing_kty"
                },
            ]
        );
    }

    #[test]
    fn rsa_rules() {
        let with_n = |n: &[u8], e: &[u8]| {
            format!(
                r#"{{"kty":"RSA","n":"{}","e":"{}"}}"#,
                b64url_encode(n),
                b64url_encode(e)
            )
        };
        let mut n2047 = vec![0xffu8; 256];
        n2047[0] = 0x7f;
        assert_eq!(skip_reason(with_n(&n2047, &[1, 0, 1])), "rsa_too_small");
        assert_eq!(
            skip_reason(with_n(&[0xff; 128], &[1, 0, 1])),
            "rsa_too_small"
        );
        assert_eq!(
            skip_reason(with_n(&[0xff; 1025], &[1, 0, 1])),
            "rsa_too_large"
        );
        assert_eq!(skip_or_ok(with_n(&[0xff; 1024], &[1, 0, 1])), "ok");
        // Leading zero bytes are stripped; the bit length is what counts.
        let mut padded = vec![0u8];
        padded.extend(std::iter::repeat_n(0xffu8, 256));
        assert!(one(with_n(&padded, &[0, 1, 0, 1])).is_ok());
        let mut even = vec![0xffu8; 256];
        even[255] = 0xfe;
        assert_eq!(skip_reason(with_n(&even, &[1, 0, 1])), "bad_rsa_key");
        for e in [
            &[1u8][..],
            &[2],
            &[0],
            &[],
            &[1, 0, 0],
            &[1, 0, 0, 0, 0, 1],
            &[0x04, 0, 0, 0, 1],
        ] {
            assert_eq!(
                skip_reason(with_n(&[0xff; 256], e)),
                "rsa_bad_exponent",
                "{e:?}"
            );
        }
        assert!(one(with_n(&[0xff; 256], &[3])).is_ok());
        assert!(one(with_n(&[0xff; 256], &[1, 0xff, 0xff, 0xff, 0xff])).is_ok());
        assert_eq!(
            skip_reason(r#"{"kty":"RSA","e":"AQAB"}"#.into()),
            "bad_rsa_key"
        );
        assert_eq!(
            skip_reason(format!(r#"{{"kty":"RSA","n":"{RSA_N}=","e":"AQAB"}}"#)),
            "bad_rsa_key"
        );
    }

    fn skip_or_ok(key: String) -> &'static str {
        match one(key) {
            Ok(_) => "ok",
            Err(r) => r,
        }
    }

    #[test]
    fn roca_fingerprint() {
        // n = 65537^k mod p for every prime is what the generator produces; a product of the
        // primes' CRT lift is hard to build here, so check the arithmetic on both sides: a
        // modulus that is 1 mod every prime (1 is in every subgroup) is flagged, and the
        // ordinary test modulus is not.
        let primorial_plus_one = {
            // Big-endian product of ROCA_PRIMES, plus one.
            let mut acc: Vec<u32> = vec![1]; // little-endian base-256 digits
            for &p in &ROCA_PRIMES {
                let mut carry = 0u32;
                for d in acc.iter_mut() {
                    let v = *d * p + carry;
                    *d = v % 256;
                    carry = v / 256;
                }
                while carry > 0 {
                    acc.push(carry % 256);
                    carry /= 256;
                }
            }
            acc[0] += 1; // the product is odd, so its low digit is < 255
            acc.iter().rev().map(|&d| d as u8).collect::<Vec<u8>>()
        };
        assert!(has_roca_fingerprint(&primorial_plus_one));
        let n = b64url_decode(RSA_N).unwrap();
        assert!(!has_roca_fingerprint(&n));
    }

    #[test]
    fn ec_rules() {
        assert_eq!(skip_reason(ec("").replace("P-256", "P-384")), "bad_ec_key");
        assert_eq!(
            skip_reason(ec("").replace("P-256", "P-521")),
            "unsupported_curve"
        );
        assert_eq!(
            skip_reason(ec("").replace("P-256", "secp256k1")),
            "unsupported_curve"
        );
        // A y that is off the curve: flip one bit.
        let mut y = b64url_decode(P256_Y).unwrap();
        y[31] ^= 1;
        let off = format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{P256_X}","y":"{}"}}"#,
            b64url_encode(&y)
        );
        assert_eq!(skip_reason(off), "ec_point_not_on_curve");
        // Coordinates must be full length.
        let short = format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{P256_Y}"}}"#,
            b64url_encode(&[1u8; 31])
        );
        assert_eq!(skip_reason(short), "bad_ec_key");
        // Coordinate >= p.
        let big = format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{P256_Y}"}}"#,
            b64url_encode(&[0xff; 32])
        );
        assert_eq!(skip_reason(big), "ec_point_not_on_curve");
        // P-384: the curve's generator is a good key; one bit of its y off is refused by name.
        let g = crate::p384::tests::generator();
        let (x, mut y) = (g[1..49].to_vec(), g[49..].to_vec());
        let p384 = |y: &[u8]| {
            format!(
                r#"{{"kty":"EC","crv":"P-384","x":"{}","y":"{}"}}"#,
                b64url_encode(&x),
                b64url_encode(y)
            )
        };
        assert!(one(p384(&y)).is_ok());
        y[47] ^= 1;
        assert_eq!(skip_reason(p384(&y)), "ec_point_not_on_curve");
    }

    #[test]
    fn okp_rules() {
        assert_eq!(
            skip_reason(ed("").replace("Ed25519", "X25519")),
            "unsupported_curve"
        );
        assert_eq!(
            skip_reason(ed("").replace("Ed25519", "Ed448")),
            "unsupported_curve"
        );
        let short = format!(
            r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#,
            b64url_encode(&[1u8; 31])
        );
        assert_eq!(skip_reason(short), "bad_okp_key");
    }

    /// The reported forgery: the identity point as an Ed25519 key makes R = identity, S = 0 a
    /// valid signature of every message. Such keys are skipped at import, the rest of the set kept.
    #[test]
    fn weak_ed25519_keys_are_skipped() {
        let identity = r#"{"kty":"OKP","crv":"Ed25519","x":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","kid":"weak"}"#;
        assert_eq!(skip_reason(identity.to_string()), "ed25519_small_order");
        let value: Value = serde_json::from_str(identity).unwrap();
        assert_eq!(
            Key::from_jwk(&value, false).unwrap_err(),
            "ed25519_small_order"
        );

        // Without the check the key would verify a forged signature: shown by handing the same
        // bytes to the verifier directly, past import.
        let mut x = [0u8; 32];
        x[0] = 1;
        let forged = Key {
            kid: None,
            alg: None,
            key: KeyMaterial::Ed25519(Arc::new(
                crate::ed25519::VerifyingKey::from_bytes(&x).unwrap(),
            )),
        };
        let mut sig = [0u8; 64];
        sig[0] = 1;
        for msg in [
            &b"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZG1pbiJ9"[..],
            b"anything",
        ] {
            assert_eq!(forged.verify(Alg::EdDSA, msg, &sig), Ok(()));
        }

        // Every other small-order or non-canonical encoding is skipped with its reason.
        let x_of = |bytes: &[u8; 32]| {
            format!(
                r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#,
                b64url_encode(bytes)
            )
        };
        let mut neg_identity = x;
        neg_identity[31] = 0x80;
        assert_eq!(skip_reason(x_of(&neg_identity)), "ed25519_non_canonical");
        let mut p_plus_1 = [0xff; 32];
        p_plus_1[0] = 0xee;
        p_plus_1[31] = 0x7f;
        assert_eq!(skip_reason(x_of(&p_plus_1)), "ed25519_non_canonical");
        assert_eq!(skip_reason(x_of(&[0; 32])), "ed25519_small_order");
        // A set of weak keys only is no usable set.
        let doc = set(&[identity.to_string(), x_of(&[0; 32])]);
        assert_eq!(
            parse_jwks(doc.as_bytes(), OPTS).unwrap_err(),
            JwksError::NoUsableKey
        );
    }

    #[test]
    fn oct_rules() {
        let no_sym = JwksOptions {
            allow_symmetric: false,
            ..OPTS
        };
        let doc = set(&[oct(""), ed("")]);
        let s = parse_jwks(doc.as_bytes(), no_sym).unwrap();
        assert_eq!(s.skipped[0].reason, "symmetric_not_allowed");
        let only = set(&[oct("")]);
        assert_eq!(
            parse_jwks(only.as_bytes(), no_sym).unwrap_err(),
            JwksError::NoUsableKey
        );

        let k = |bytes: usize, alg: &str| {
            let alg = if alg.is_empty() {
                String::new()
            } else {
                format!(r#","alg":"{alg}""#)
            };
            format!(
                r#"{{"kty":"oct","k":"{}"{alg}}}"#,
                b64url_encode(&vec![7u8; bytes])
            )
        };
        assert_eq!(one(k(0, "")).unwrap_err(), "skipped");
        assert_eq!(one(k(31, "HS256")).unwrap_err(), "skipped");
        assert!(one(k(32, "HS256")).is_ok());
        assert_eq!(one(k(47, "HS384")).unwrap_err(), "skipped");
        assert!(one(k(48, "HS384")).is_ok());
        assert_eq!(one(k(63, "HS512")).unwrap_err(), "skipped");
        assert!(one(k(64, "HS512")).is_ok());
        // Without an alg, a key is usable for exactly the hashes it is long enough for.
        let key = one(k(48, "")).unwrap();
        assert!(key.accepts(Alg::HS256) && key.accepts(Alg::HS384) && !key.accepts(Alg::HS512));
    }

    #[test]
    fn mixed_symmetric_sets_drop_the_secret() {
        let doc = set(&[oct(r#","kid":"s""#), ec(r#","kid":"e""#)]);
        let s = parse_jwks(doc.as_bytes(), OPTS).unwrap();
        assert_eq!(s.keys.len(), 1);
        assert_eq!(s.keys[0].kid.as_deref(), Some("e"));
        assert_eq!(s.skipped[0].reason, "mixed_symmetric");
        // A set of only secrets is fine when they are allowed.
        let doc = set(&[oct(r#","kid":"s1""#), oct(r#","kid":"s2""#)]);
        assert_eq!(parse_jwks(doc.as_bytes(), OPTS).unwrap().keys.len(), 2);
    }

    #[test]
    fn duplicate_kids_are_ambiguous() {
        let doc = set(&[
            ec(r#","kid":"k""#),
            ed(r#","kid":"k""#),
            rsa(r#","kid":"r""#),
        ]);
        let s = parse_jwks(doc.as_bytes(), OPTS).unwrap();
        assert_eq!(s.keys.len(), 1);
        assert_eq!(
            s.skipped
                .iter()
                .map(|k| (k.index, k.reason))
                .collect::<Vec<_>>(),
            vec![(0, "duplicate_kid"), (1, "duplicate_kid")]
        );
        // An unusable key still makes its kid ambiguous.
        let doc = set(&[
            ec(r#","kid":"k","use":"enc""#),
            ed(r#","kid":"k""#),
            rsa(""),
        ]);
        let s = parse_jwks(doc.as_bytes(), OPTS).unwrap();
        assert_eq!(s.keys.len(), 1);
        assert_eq!(
            s.skipped
                .iter()
                .map(|k| (k.index, k.reason))
                .collect::<Vec<_>>(),
            vec![(0, "bad_use"), (1, "duplicate_kid")]
        );
    }

    #[test]
    fn private_members_refuse_the_key() {
        for m in PRIVATE_MEMBERS {
            assert_eq!(
                skip_reason(rsa(&format!(r#","{m}":"AQAB""#))),
                "private_key",
                "{m}"
            );
        }
        assert_eq!(skip_reason(ec(r#","d":"AQAB""#)), "private_key");
        assert_eq!(skip_reason(ed(r#","d":"AQAB""#)), "private_key");
    }

    #[test]
    fn use_key_ops_alg_and_kid() {
        assert_eq!(skip_reason(rsa(r#","use":"enc""#)), "bad_use");
        assert_eq!(skip_reason(rsa(r#","use":"SIG""#)), "bad_use");
        assert_eq!(skip_reason(rsa(r#","use":1"#)), "bad_use");
        assert_eq!(skip_reason(rsa(r#","key_ops":["sign"]"#)), "bad_key_ops");
        assert_eq!(
            skip_reason(rsa(r#","key_ops":["sign, verify"]"#)),
            "bad_key_ops"
        );
        assert_eq!(skip_reason(rsa(r#","key_ops":"verify""#)), "bad_key_ops");
        assert!(one(rsa(r#","key_ops":["sign","verify"]"#)).is_ok());
        assert_eq!(skip_reason(rsa(r#","alg":"RSA1_5""#)), "unsupported_alg");
        assert_eq!(skip_reason(rsa(r#","alg":"rs256""#)), "unsupported_alg");
        assert_eq!(skip_reason(rsa(r#","alg":"none""#)), "unsupported_alg");
        assert_eq!(skip_reason(rsa(r#","kid":7"#)), "bad_kid");
        // alg must fit the key type, in every direction.
        for (key, ok) in [
            (
                rsa(""),
                &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"][..],
            ),
            (ec(""), &["ES256"][..]),
            (ec("").replace(P256_X, "x").replace(P256_Y, "y"), &[][..]),
            (ed(""), &["EdDSA"][..]),
            (oct(""), &["HS256", "HS384", "HS512"][..]),
        ] {
            for alg in Alg::ALL {
                let with = key.replacen('{', &format!(r#"{{"alg":"{}","#, alg.as_str()), 1);
                let got = one(with).is_ok();
                assert_eq!(got, ok.contains(&alg.as_str()), "{key} {alg}");
            }
        }
    }

    #[test]
    fn to_json_round_trips() {
        let doc = set(&[
            rsa(r#","kid":"r","alg":"PS256""#),
            ec(r#","kid":"e""#),
            ed(r#","kid":"d","use":"sig""#),
            r#"{"kty":"nope"}"#.into(),
        ]);
        let first = parse_jwks(doc.as_bytes(), OPTS).unwrap();
        let again = parse_jwks(first.to_json().as_bytes(), OPTS).unwrap();
        assert_eq!(again.keys.len(), 3);
        assert!(again.skipped.is_empty());
        assert_eq!(again.to_json(), first.to_json());
        for (a, b) in first.keys.iter().zip(&again.keys) {
            assert_eq!((&a.kid, a.alg, a.kty()), (&b.kid, b.alg, b.kty()));
        }
        let oct_set = parse_jwks(set(&[oct(r#","kid":"s""#)]).as_bytes(), OPTS).unwrap();
        assert_eq!(
            parse_jwks(oct_set.to_json().as_bytes(), OPTS)
                .unwrap()
                .to_json(),
            oct_set.to_json()
        );
    }

    #[test]
    fn debug_never_prints_secrets() {
        let k = one(oct("")).unwrap();
        assert!(!format!("{k:?}").contains(&OCT_K[..10]));
    }
}
