//! Differential tests: for valid signatures and their mutations, this crate must agree with
//! independent reference implementations on every case.
//!
//! - ES256: RustCrypto `p256` and ring (both must agree with us). ES384: ring.
//! - RS256/384/512 and PS256/384/512: RustCrypto `rsa` and ring. PS384 and PS512 are covered
//!   here because Wycheproof has no vectors for them.
//! - EdDSA: `ed25519-dalek`'s `verify_strict` (which refuses weak keys, as our import does); and
//!   Ed25519 key import against `curve25519-dalek`'s point decoding: a key is usable exactly when
//!   it decodes, its encoding is the canonical one and its point is not of small order.
//!
//! Mutations: bit flips; r or s set to 0, 1, n−1, n, n+1, p (ECDSA), the signature set to 0, 1,
//! n−1, n, n+1 (RSA); r and s swapped; s replaced by n − s; truncated and extended; DER instead of
//! raw; S + L and small-order R (EdDSA); another message; another key; another algorithm.
//! Randomness (keys, messages, which bit) comes from the system; a failure prints the case.
//! `SHIELDWALL_DIFFERENTIAL_ROUNDS` multiplies the number of keys and messages (default 1: a few
//! thousand cases); the fuzz target `verify_differential` goes further.

// Test code: a failed expectation is meant to panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self as rsig, KeyPair};
use serde_json::{json, Value};
use shieldwall_jose::{b64url_encode, Alg, Key};

fn rounds() -> usize {
    std::env::var("SHIELDWALL_DIFFERENTIAL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    SystemRandom::new().fill(&mut v).unwrap();
    v
}

fn random_index(len: usize) -> usize {
    let b = random_bytes(8);
    (u64::from_le_bytes(b.try_into().unwrap()) % len as u64) as usize
}

fn flip_bit(sig: &[u8]) -> Vec<u8> {
    let mut out = sig.to_vec();
    let i = random_index(sig.len() * 8);
    out[i / 8] ^= 1 << (i % 8);
    out
}

fn messages(count: usize) -> Vec<Vec<u8>> {
    let mut out = vec![b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0".to_vec(), Vec::new()];
    while out.len() < count {
        let len = 1 + random_index(300);
        out.push(random_bytes(len));
    }
    out
}

/// A message that differs from `msg` (one byte changed, or one added to an empty message).
fn other_message(msg: &[u8]) -> Vec<u8> {
    let mut out = msg.to_vec();
    match out.first_mut() {
        Some(b) => *b ^= 0x01,
        None => out.push(b'x'),
    }
    out
}

/// Big-endian `value` as exactly `len` bytes (the value must fit).
fn be_fixed(value: &[u8], len: usize) -> Vec<u8> {
    let value = &value[value.iter().take_while(|&&b| b == 0).count()..];
    assert!(value.len() <= len);
    let mut out = vec![0u8; len - value.len()];
    out.extend_from_slice(value);
    out
}

/// Big-endian a + k for a small k (as long as no new byte is needed, as for moduli and orders).
fn be_add(a: &[u8], k: u8) -> Vec<u8> {
    let mut out = a.to_vec();
    let mut carry = u16::from(k);
    for b in out.iter_mut().rev() {
        let s = u16::from(*b) + carry;
        *b = s as u8;
        carry = s >> 8;
    }
    assert_eq!(carry, 0);
    out
}

/// Big-endian a − k for a small k ≤ a.
fn be_sub(a: &[u8], k: u8) -> Vec<u8> {
    let mut out = a.to_vec();
    let mut borrow = i16::from(k);
    for b in out.iter_mut().rev() {
        let d = i16::from(*b) - borrow;
        borrow = i16::from(d < 0);
        *b = (d + 256 * borrow) as u8;
    }
    assert_eq!(borrow, 0);
    out
}

/// Big-endian a − b for b ≤ a, both the same length.
fn be_sub_big(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; a.len()];
    let mut borrow = 0i16;
    for i in (0..a.len()).rev() {
        let d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(d < 0);
        out[i] = (d + 256 * borrow) as u8;
    }
    assert_eq!(borrow, 0);
    out
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` of a raw `r || s`.
fn der_of(raw: &[u8]) -> Vec<u8> {
    let int = |v: &[u8]| {
        let v = &v[v.iter().take_while(|&&b| b == 0).count().min(v.len() - 1)..];
        let mut out = vec![0x02];
        if v[0] & 0x80 != 0 {
            out.push(v.len() as u8 + 1);
            out.push(0);
        } else {
            out.push(v.len() as u8);
        }
        out.extend_from_slice(v);
        out
    };
    let (r, s) = raw.split_at(raw.len() / 2);
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

#[derive(Default)]
struct Tally {
    cases: usize,
    accepted: usize,
}

impl Tally {
    fn agree(&mut self, what: &str, ours: bool, reference: &[(&str, bool)]) {
        self.cases += 1;
        if ours {
            self.accepted += 1;
        }
        for (name, theirs) in reference {
            assert_eq!(
                ours, *theirs,
                "{what}: shieldwall-jose says {ours}, {name} says {theirs}"
            );
        }
    }
}

// ------------------------------------------------------------------------------------ ES256

const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];
const P256_P: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];

const P384_N: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf,
    0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
];
const P384_P: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
];

/// A curve's parameters for the differential cases: ring's signing and verifying algorithms, the
/// JWK `crv`, the coordinate length, n and p.
struct EcCurve {
    signing: &'static rsig::EcdsaSigningAlgorithm,
    verifying: &'static rsig::EcdsaVerificationAlgorithm,
    crv: &'static str,
    len: usize,
    n: &'static [u8],
    p: &'static [u8],
}

const P256: EcCurve = EcCurve {
    signing: &rsig::ECDSA_P256_SHA256_FIXED_SIGNING,
    verifying: &rsig::ECDSA_P256_SHA256_FIXED,
    crv: "P-256",
    len: 32,
    n: &P256_N,
    p: &P256_P,
};

const P384: EcCurve = EcCurve {
    signing: &rsig::ECDSA_P384_SHA384_FIXED_SIGNING,
    verifying: &rsig::ECDSA_P384_SHA384_FIXED,
    crv: "P-384",
    len: 48,
    n: &P384_N,
    p: &P384_P,
};

struct EcKey {
    pair: rsig::EcdsaKeyPair,
    ours: Key,
    point: Vec<u8>,
}

fn ec_key(curve: &EcCurve) -> EcKey {
    let rng = SystemRandom::new();
    let pkcs8 = rsig::EcdsaKeyPair::generate_pkcs8(curve.signing, &rng).unwrap();
    let pair = rsig::EcdsaKeyPair::from_pkcs8(curve.signing, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let (x, y) = point[1..].split_at(curve.len);
    let jwk = json!({"kty": "EC", "crv": curve.crv, "x": b64url_encode(x), "y": b64url_encode(y)});
    let ours = Key::from_jwk(&jwk, false).unwrap();
    EcKey { pair, ours, point }
}

fn ecdsa_cases(curve: &EcCurve, sig: &[u8], other_sig: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let len = curve.len;
    let (r, s) = sig.split_at(len);
    let values: [(&str, Vec<u8>); 6] = [
        ("0", vec![0u8; len]),
        ("1", be_add(&vec![0u8; len], 1)),
        ("n-1", be_sub(curve.n, 1)),
        ("n", curve.n.to_vec()),
        ("n+1", be_add(curve.n, 1)),
        ("p", curve.p.to_vec()),
    ];
    let mut cases = vec![
        ("as signed", sig.to_vec()),
        ("bit flip", flip_bit(sig)),
        ("bit flip", flip_bit(sig)),
        ("bit flip", flip_bit(sig)),
        ("r and s swapped", [s, r].concat()),
        ("s -> n - s", [r, &be_sub_big(curve.n, s)].concat()),
        ("truncated", sig[..2 * len - 1].to_vec()),
        ("extended", [sig, &[0]].concat()),
        ("zero-prefixed", [&[0], sig].concat()),
        ("DER", der_of(sig)),
        ("another key's signature", other_sig.to_vec()),
        ("random", random_bytes(2 * len)),
    ];
    for (name, v) in &values {
        cases.push((leak(format!("r = {name}")), [v.as_slice(), s].concat()));
        cases.push((leak(format!("s = {name}")), [r, v.as_slice()].concat()));
    }
    cases
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[test]
fn es256_agrees_with_p256_and_ring() {
    use p256::ecdsa::signature::Verifier as _;
    let rng = SystemRandom::new();
    let keys: Vec<EcKey> = (0..4 * rounds()).map(|_| ec_key(&P256)).collect();
    let mut tally = Tally::default();
    for (k, key) in keys.iter().enumerate() {
        let other = &keys[(k + 1) % keys.len()];
        let reference = p256::ecdsa::VerifyingKey::from_sec1_bytes(&key.point).unwrap();
        let ring_key = rsig::UnparsedPublicKey::new(&rsig::ECDSA_P256_SHA256_FIXED, &key.point);
        for msg in messages(8 * rounds()) {
            let sig = key.pair.sign(&rng, &msg).unwrap().as_ref().to_vec();
            let other_sig = other.pair.sign(&rng, &msg).unwrap().as_ref().to_vec();
            let mut cases: Vec<(&str, Vec<u8>, Vec<u8>)> = ecdsa_cases(&P256, &sig, &other_sig)
                .into_iter()
                .map(|(name, s)| (name, msg.clone(), s))
                .collect();
            cases.push(("another message", other_message(&msg), sig.clone()));
            for (name, m, s) in cases {
                let ours = key.ours.verify(Alg::ES256, &m, &s).is_ok();
                let rustcrypto = p256::ecdsa::Signature::from_slice(&s)
                    .is_ok_and(|sig| reference.verify(&m, &sig).is_ok());
                let ring_ok = ring_key.verify(&m, &s).is_ok();
                tally.agree(
                    &format!("ES256 {name} (msg {} bytes)", m.len()),
                    ours,
                    &[("p256", rustcrypto), ("ring", ring_ok)],
                );
                if name == "as signed" {
                    assert!(ours, "ES256: a valid signature must verify");
                }
            }
        }
    }
    assert!(
        tally.cases >= 800 * rounds(),
        "ES256: {} cases",
        tally.cases
    );
    // Valid signatures and their n − s twins verify.
    assert!(tally.accepted >= 2 * 32 * rounds());
}

#[test]
fn es384_agrees_with_ring() {
    let rng = SystemRandom::new();
    let keys: Vec<EcKey> = (0..4 * rounds()).map(|_| ec_key(&P384)).collect();
    let mut tally = Tally::default();
    for (k, key) in keys.iter().enumerate() {
        let other = &keys[(k + 1) % keys.len()];
        let ring_key = rsig::UnparsedPublicKey::new(P384.verifying, &key.point);
        for msg in messages(8 * rounds()) {
            let sig = key.pair.sign(&rng, &msg).unwrap().as_ref().to_vec();
            let other_sig = other.pair.sign(&rng, &msg).unwrap().as_ref().to_vec();
            let mut cases: Vec<(&str, Vec<u8>, Vec<u8>)> = ecdsa_cases(&P384, &sig, &other_sig)
                .into_iter()
                .map(|(name, s)| (name, msg.clone(), s))
                .collect();
            cases.push(("another message", other_message(&msg), sig.clone()));
            for (name, m, s) in cases {
                let ours = key.ours.verify(Alg::ES384, &m, &s).is_ok();
                let ring_ok = ring_key.verify(&m, &s).is_ok();
                tally.agree(
                    &format!("ES384 {name} (msg {} bytes)", m.len()),
                    ours,
                    &[("ring", ring_ok)],
                );
                if name == "as signed" {
                    assert!(ours, "ES384: a valid signature must verify");
                }
            }
        }
    }
    assert!(
        tally.cases >= 800 * rounds(),
        "ES384: {} cases",
        tally.cases
    );
    // Valid signatures and their n − s twins verify.
    assert!(tally.accepted >= 2 * 32 * rounds());
}

// ------------------------------------------------------------------------------------ RSA

const RSA_KEYS: [(&str, &[u8]); 2] = [
    ("rsa2048", include_bytes!("data/rsa/rsa2048.pk8")),
    ("rsa4096", include_bytes!("data/rsa/rsa4096.pk8")),
];

const RSA_ALGS: [Alg; 6] = [
    Alg::RS256,
    Alg::RS384,
    Alg::RS512,
    Alg::PS256,
    Alg::PS384,
    Alg::PS512,
];

fn ring_signing(alg: Alg) -> &'static dyn rsig::RsaEncoding {
    match alg {
        Alg::RS256 => &rsig::RSA_PKCS1_SHA256,
        Alg::RS384 => &rsig::RSA_PKCS1_SHA384,
        Alg::RS512 => &rsig::RSA_PKCS1_SHA512,
        Alg::PS256 => &rsig::RSA_PSS_SHA256,
        Alg::PS384 => &rsig::RSA_PSS_SHA384,
        Alg::PS512 => &rsig::RSA_PSS_SHA512,
        _ => unreachable!(),
    }
}

fn ring_verifying(alg: Alg) -> &'static rsig::RsaParameters {
    match alg {
        Alg::RS256 => &rsig::RSA_PKCS1_2048_8192_SHA256,
        Alg::RS384 => &rsig::RSA_PKCS1_2048_8192_SHA384,
        Alg::RS512 => &rsig::RSA_PKCS1_2048_8192_SHA512,
        Alg::PS256 => &rsig::RSA_PSS_2048_8192_SHA256,
        Alg::PS384 => &rsig::RSA_PSS_2048_8192_SHA384,
        Alg::PS512 => &rsig::RSA_PSS_2048_8192_SHA512,
        _ => unreachable!(),
    }
}

fn rustcrypto_rsa(key: &rsa::RsaPublicKey, alg: Alg, msg: &[u8], sig: &[u8]) -> bool {
    use rsa::{Pkcs1v15Sign, Pss};
    use sha2::{Digest, Sha256, Sha384, Sha512};
    let result = match alg {
        Alg::RS256 => key.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg), sig),
        Alg::RS384 => key.verify(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(msg), sig),
        Alg::RS512 => key.verify(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(msg), sig),
        Alg::PS256 => key.verify(Pss::new::<Sha256>(), &Sha256::digest(msg), sig),
        Alg::PS384 => key.verify(Pss::new::<Sha384>(), &Sha384::digest(msg), sig),
        Alg::PS512 => key.verify(Pss::new::<Sha512>(), &Sha512::digest(msg), sig),
        _ => unreachable!(),
    };
    result.is_ok()
}

struct RsaKey {
    name: &'static str,
    pair: rsig::RsaKeyPair,
    n: Vec<u8>,
    e: Vec<u8>,
    ours: Key,
    reference: rsa::RsaPublicKey,
}

fn rsa_key(name: &'static str, pk8: &[u8]) -> RsaKey {
    let pair = rsig::RsaKeyPair::from_pkcs8(pk8).unwrap();
    let components: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
    let (n, e) = (components.n, components.e);
    let jwk = json!({"kty": "RSA", "n": b64url_encode(&n), "e": b64url_encode(&e)});
    let ours = Key::from_jwk(&jwk, false).unwrap();
    let reference = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(&n),
        rsa::BigUint::from_bytes_be(&e),
    )
    .unwrap();
    RsaKey {
        name,
        pair,
        n,
        e,
        ours,
        reference,
    }
}

#[test]
fn rsa_agrees_with_rustcrypto_and_ring() {
    let rng = SystemRandom::new();
    let keys: Vec<RsaKey> = RSA_KEYS.iter().map(|(n, pk8)| rsa_key(n, pk8)).collect();
    let mut tally = Tally::default();
    for (k, key) in keys.iter().enumerate() {
        let other = &keys[(k + 1) % keys.len()];
        let len = key.n.len();
        for msg in messages(4 * rounds()) {
            for alg in RSA_ALGS {
                let mut sig = vec![0u8; len];
                key.pair
                    .sign(ring_signing(alg), &rng, &msg, &mut sig)
                    .unwrap();
                let mut other_sig = vec![0u8; other.n.len()];
                other
                    .pair
                    .sign(ring_signing(alg), &rng, &msg, &mut other_sig)
                    .unwrap();
                let mut cases: Vec<(String, Alg, Vec<u8>, Vec<u8>)> = vec![
                    ("as signed".into(), alg, msg.clone(), sig.clone()),
                    ("bit flip".into(), alg, msg.clone(), flip_bit(&sig)),
                    ("bit flip".into(), alg, msg.clone(), flip_bit(&sig)),
                    (
                        "truncated".into(),
                        alg,
                        msg.clone(),
                        sig[..len - 1].to_vec(),
                    ),
                    (
                        "extended".into(),
                        alg,
                        msg.clone(),
                        [&sig[..], &[0]].concat(),
                    ),
                    (
                        "zero-prefixed".into(),
                        alg,
                        msg.clone(),
                        [&[0], &sig[..]].concat(),
                    ),
                    (
                        "another message".into(),
                        alg,
                        other_message(&msg),
                        sig.clone(),
                    ),
                    (
                        "another key's signature".into(),
                        alg,
                        msg.clone(),
                        other_sig,
                    ),
                    ("random".into(), alg, msg.clone(), random_bytes(len)),
                ];
                for (name, value) in [
                    ("0", vec![0u8; len]),
                    ("1", be_add(&vec![0u8; len], 1)),
                    ("n-1", be_sub(&key.n, 1)),
                    ("n", key.n.clone()),
                    ("n+1", be_add(&key.n, 1)),
                ] {
                    cases.push((
                        format!("signature = {name}"),
                        alg,
                        msg.clone(),
                        be_fixed(&value, len),
                    ));
                }
                // The same signature under the other algorithms of the key: all must refuse.
                for other_alg in RSA_ALGS.into_iter().filter(|a| *a != alg) {
                    cases.push((
                        format!("signed {alg}, checked as"),
                        other_alg,
                        msg.clone(),
                        sig.clone(),
                    ));
                }
                for (name, as_alg, m, s) in cases {
                    let ours = key.ours.verify(as_alg, &m, &s).is_ok();
                    let rustcrypto = rustcrypto_rsa(&key.reference, as_alg, &m, &s);
                    let ring_ok = rsig::RsaPublicKeyComponents {
                        n: &key.n,
                        e: &key.e,
                    }
                    .verify(ring_verifying(as_alg), &m, &s)
                    .is_ok();
                    tally.agree(
                        &format!("{} {name} {as_alg} (msg {} bytes)", key.name, m.len()),
                        ours,
                        &[("rsa", rustcrypto), ("ring", ring_ok)],
                    );
                    if name == "as signed" {
                        assert!(ours, "{alg}: a valid signature must verify");
                    }
                }
            }
        }
    }
    assert!(tally.cases >= 900 * rounds(), "RSA: {} cases", tally.cases);
    assert!(tally.accepted >= 48 * rounds());
}

// ------------------------------------------------------------------------------------ Ed25519

/// The group order L, little-endian.
const ED_L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
];

fn le_add(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; a.len()];
    let mut carry = 0u16;
    for i in 0..a.len() {
        let s = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = s as u8;
        carry = s >> 8;
    }
    out
}

fn torsion_encodings() -> Vec<[u8; 32]> {
    curve25519_dalek::constants::EIGHT_TORSION
        .iter()
        .map(|p| p.compress().to_bytes())
        .collect()
}

fn okp(x: &[u8]) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(x)})
}

#[test]
fn eddsa_agrees_with_ed25519_dalek_verify_strict() {
    let rng = SystemRandom::new();
    let pairs: Vec<rsig::Ed25519KeyPair> = (0..4 * rounds())
        .map(|_| {
            let pkcs8 = rsig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            rsig::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
        })
        .collect();
    let torsion = torsion_encodings();
    let mut tally = Tally::default();
    for (k, pair) in pairs.iter().enumerate() {
        let other = &pairs[(k + 1) % pairs.len()];
        let public: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
        let ours = Key::from_jwk(&okp(&public), false).unwrap();
        let reference = ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap();
        for msg in messages(8 * rounds()) {
            let sig = pair.sign(&msg).as_ref().to_vec();
            let (r, s) = sig.split_at(32);
            let mut cases: Vec<(String, Vec<u8>, Vec<u8>)> = vec![
                ("as signed".into(), msg.clone(), sig.clone()),
                ("bit flip".into(), msg.clone(), flip_bit(&sig)),
                ("bit flip".into(), msg.clone(), flip_bit(&sig)),
                ("S + L".into(), msg.clone(), [r, &le_add(s, &ED_L)].concat()),
                ("S = L".into(), msg.clone(), [r, &ED_L[..]].concat()),
                ("S = 0".into(), msg.clone(), [r, &[0u8; 32]].concat()),
                ("truncated".into(), msg.clone(), sig[..63].to_vec()),
                ("extended".into(), msg.clone(), [&sig[..], &[0]].concat()),
                ("another message".into(), other_message(&msg), sig.clone()),
                (
                    "another key's signature".into(),
                    msg.clone(),
                    other.sign(&msg).as_ref().to_vec(),
                ),
                ("random".into(), msg.clone(), random_bytes(64)),
            ];
            for (i, t) in torsion.iter().enumerate() {
                cases.push((
                    format!("R = torsion point {i}"),
                    msg.clone(),
                    [&t[..], s].concat(),
                ));
            }
            for (name, m, s) in cases {
                let mine = ours.verify(Alg::EdDSA, &m, &s).is_ok();
                let theirs = <[u8; 64]>::try_from(s.as_slice()).is_ok_and(|bytes| {
                    reference
                        .verify_strict(&m, &ed25519_dalek::Signature::from_bytes(&bytes))
                        .is_ok()
                });
                tally.agree(
                    &format!("EdDSA {name} (msg {} bytes)", m.len()),
                    mine,
                    &[("ed25519-dalek verify_strict", theirs)],
                );
                if name == "as signed" {
                    assert!(mine, "EdDSA: a valid signature must verify");
                }
            }
        }
    }
    assert!(
        tally.cases >= 600 * rounds(),
        "EdDSA: {} cases",
        tally.cases
    );
}

/// What import must decide for a 32-byte Ed25519 key, by curve25519-dalek: usable exactly when it
/// decodes to a point, is that point's canonical encoding, and the point is not of small order.
/// `None` when it decodes to nothing (import must refuse it as `ed25519_not_on_curve`).
fn reference_import(bytes: &[u8; 32]) -> Option<bool> {
    let point = curve25519_dalek::edwards::CompressedEdwardsY(*bytes).decompress()?;
    Some(point.compress().to_bytes() == *bytes && !point.is_small_order())
}

#[test]
fn ed25519_key_import_agrees_with_curve25519_dalek() {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
    use curve25519_dalek::scalar::Scalar;

    let mut candidates: Vec<[u8; 32]> = Vec::new();
    let torsion = curve25519_dalek::constants::EIGHT_TORSION;
    for t in torsion {
        let enc = t.compress().to_bytes();
        candidates.push(enc);
        let mut signed = enc;
        signed[31] ^= 0x80;
        candidates.push(signed);
        // A point with a torsion component but of large order: an ordinary (mixed-order) key.
        candidates.push((t + B * Scalar::from(7u64)).compress().to_bytes());
    }
    // Every y ≥ p (y = p + k for k < 19), with either sign.
    for k in 0u8..19 {
        let mut y = [0xffu8; 32];
        y[31] = 0x7f;
        y[0] = 0xed + k;
        candidates.push(y);
        y[31] |= 0x80;
        candidates.push(y);
    }
    // Small y values, either sign, and random strings.
    for v in 0u8..32 {
        let mut y = [0u8; 32];
        y[0] = v;
        candidates.push(y);
        y[31] = 0x80;
        candidates.push(y);
    }
    for _ in 0..2000 * rounds() {
        candidates.push(random_bytes(32).try_into().unwrap());
    }
    for i in 0..64u64 {
        candidates.push((B * Scalar::from(i + 1)).compress().to_bytes());
    }

    let mut decided = 0;
    let mut refused = 0;
    let mut not_points = 0;
    for bytes in &candidates {
        let ours = Key::from_jwk(&okp(bytes), false);
        match reference_import(bytes) {
            Some(usable) => {
                decided += 1;
                assert_eq!(
                    ours.is_ok(),
                    usable,
                    "Ed25519 key {}: import {:?}, curve25519-dalek says usable = {usable}",
                    b64url_encode(bytes),
                    ours.as_ref().err()
                );
                if !usable {
                    refused += 1;
                }
            }
            None => {
                // Not a point: import refuses it (a y ≥ p already as non-canonical).
                let reason = ours.as_ref().err().copied();
                assert!(
                    matches!(
                        reason,
                        Some("ed25519_not_on_curve" | "ed25519_non_canonical")
                    ),
                    "Ed25519 key {} names no point: {reason:?}",
                    b64url_encode(bytes)
                );
                not_points += 1;
            }
        }
    }
    assert!(decided >= 1000 * rounds(), "{decided} keys decided");
    // 8 torsion points, their other signs, y ≥ p that decode, −0 encodings.
    assert!(refused >= 20, "{refused} keys refused");
    // About half of all random strings name no point.
    assert!(
        not_points >= 500 * rounds(),
        "{not_points} keys named no point"
    );
}

/// The reported forgery, end to end at this layer: the identity key is refused, and the
/// signature it would have accepted is refused by the reference under any real key.
#[test]
fn identity_key_forgery_is_refused() {
    let identity = json!({"kty": "OKP", "crv": "Ed25519",
                          "x": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "kid": "weak"});
    assert_eq!(
        Key::from_jwk(&identity, false).unwrap_err(),
        "ed25519_small_order"
    );
    let jwks = format!(r#"{{"keys":[{identity}]}}"#);
    let opts = shieldwall_jose::JwksOptions {
        allow_symmetric: false,
        max_bytes: 4096,
        max_keys: 4,
    };
    assert!(shieldwall_jose::parse_jwks(jwks.as_bytes(), opts).is_err());
    let weak = ed25519_dalek::VerifyingKey::from_bytes(&{
        let mut x = [0u8; 32];
        x[0] = 1;
        x
    })
    .unwrap();
    assert!(weak.is_weak());
    let mut forged = [0u8; 64];
    forged[0] = 1;
    assert!(weak
        .verify_strict(b"any", &ed25519_dalek::Signature::from_bytes(&forged))
        .is_err());
}
