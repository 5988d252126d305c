#![no_main]

//! ES256, ES384, RSA and EdDSA verification against ring on fuzzer-chosen messages and signatures: a valid
//! signature of the input message, then changed as the input says (bytes overwritten, cut,
//! extended), or the input's own bytes as the signature. shieldwall-jose and ring must agree on
//! every case; a disagreement panics with the case in hex.

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ring::rand::SystemRandom;
use ring::signature::{self as rsig, KeyPair};
use shieldwall_jose::{b64url_encode, Alg, Key};

struct Keys {
    ec: rsig::EcdsaKeyPair,
    ec_ours: Key,
    ec_point: Vec<u8>,
    ec384: rsig::EcdsaKeyPair,
    ec384_ours: Key,
    ec384_point: Vec<u8>,
    rsa: rsig::RsaKeyPair,
    rsa_ours: Key,
    n: Vec<u8>,
    e: Vec<u8>,
    ed: rsig::Ed25519KeyPair,
    ed_ours: Key,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rng = SystemRandom::new();
        let alg = &rsig::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = rsig::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let ec = rsig::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let ec_point = ec.public_key().as_ref().to_vec();
        let ec_jwk = serde_json::json!({"kty": "EC", "crv": "P-256",
            "x": b64url_encode(&ec_point[1..33]), "y": b64url_encode(&ec_point[33..])});
        let alg = &rsig::ECDSA_P384_SHA384_FIXED_SIGNING;
        let pkcs8 = rsig::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let ec384 = rsig::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let ec384_point = ec384.public_key().as_ref().to_vec();
        let ec384_jwk = serde_json::json!({"kty": "EC", "crv": "P-384",
            "x": b64url_encode(&ec384_point[1..49]), "y": b64url_encode(&ec384_point[49..])});
        let rsa = rsig::RsaKeyPair::from_pkcs8(include_bytes!("../../tests/data/rsa/rsa2048.pk8"))
            .unwrap();
        let components: ring::rsa::PublicKeyComponents<Vec<u8>> = rsa.public().into();
        let (n, e) = (components.n, components.e);
        let rsa_jwk = serde_json::json!({"kty": "RSA", "n": b64url_encode(&n), "e": b64url_encode(&e)});
        let pkcs8 = rsig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed = rsig::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let ed_jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519",
            "x": b64url_encode(ed.public_key().as_ref())});
        Keys {
            ed_ours: Key::from_jwk(&ed_jwk, false).unwrap(),
            ed,
            ec,
            ec_ours: Key::from_jwk(&ec_jwk, false).unwrap(),
            ec_point,
            ec384_ours: Key::from_jwk(&ec384_jwk, false).unwrap(),
            ec384,
            ec384_point,
            rsa,
            rsa_ours: Key::from_jwk(&rsa_jwk, false).unwrap(),
            n,
            e,
        }
    })
}

const RSA_ALGS: [(Alg, &dyn rsig::RsaEncoding, &rsig::RsaParameters); 6] = [
    (Alg::RS256, &rsig::RSA_PKCS1_SHA256, &rsig::RSA_PKCS1_2048_8192_SHA256),
    (Alg::RS384, &rsig::RSA_PKCS1_SHA384, &rsig::RSA_PKCS1_2048_8192_SHA384),
    (Alg::RS512, &rsig::RSA_PKCS1_SHA512, &rsig::RSA_PKCS1_2048_8192_SHA512),
    (Alg::PS256, &rsig::RSA_PSS_SHA256, &rsig::RSA_PSS_2048_8192_SHA256),
    (Alg::PS384, &rsig::RSA_PSS_SHA384, &rsig::RSA_PSS_2048_8192_SHA384),
    (Alg::PS512, &rsig::RSA_PSS_SHA512, &rsig::RSA_PSS_2048_8192_SHA512),
];

/// Applies the edit the input describes: `[mode, pos_hi, pos_lo, len, bytes...]`.
fn edit(sig: &mut Vec<u8>, edit: &[u8]) {
    let [mode, hi, lo, len, rest @ ..] = edit else {
        return;
    };
    let pos = (usize::from(*hi) << 8 | usize::from(*lo)) % (sig.len() + 1);
    match mode % 4 {
        0 => {
            // Overwrite bytes at pos.
            for (i, b) in rest.iter().take(usize::from(*len)).enumerate() {
                if let Some(s) = sig.get_mut(pos + i) {
                    *s = *b;
                }
            }
        }
        1 => sig.truncate(pos),
        2 => sig.extend(rest.iter().take(usize::from(*len))),
        _ => {
            // Flip one bit.
            let at = pos.min(sig.len().saturating_sub(1));
            if let Some(s) = sig.get_mut(at) {
                *s ^= 1 << (len % 8);
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fuzz_target!(|data: &[u8]| {
    let [selector, msg_len, rest @ ..] = data else {
        return;
    };
    let msg_len = usize::from(*msg_len).min(rest.len());
    let (msg, tail) = rest.split_at(msg_len);
    let k = keys();
    let rng = SystemRandom::new();
    let raw = selector & 0x80 != 0;
    let (alg, ours, theirs, sig) = match selector % 9 {
        0 => {
            let sig = if raw { tail.to_vec() } else { k.ec.sign(&rng, msg).unwrap().as_ref().to_vec() };
            let mut s = sig;
            if !raw {
                edit(&mut s, tail);
            }
            let ours = k.ec_ours.verify(Alg::ES256, msg, &s).is_ok();
            let theirs = rsig::UnparsedPublicKey::new(&rsig::ECDSA_P256_SHA256_FIXED, &k.ec_point)
                .verify(msg, &s)
                .is_ok();
            (Alg::ES256, ours, theirs, s)
        }
        8 => {
            let mut s = if raw { tail.to_vec() } else { k.ec384.sign(&rng, msg).unwrap().as_ref().to_vec() };
            if !raw {
                edit(&mut s, tail);
            }
            let ours = k.ec384_ours.verify(Alg::ES384, msg, &s).is_ok();
            let theirs = rsig::UnparsedPublicKey::new(&rsig::ECDSA_P384_SHA384_FIXED, &k.ec384_point)
                .verify(msg, &s)
                .is_ok();
            (Alg::ES384, ours, theirs, s)
        }
        7 => {
            let mut s = if raw { tail.to_vec() } else { k.ed.sign(msg).as_ref().to_vec() };
            if !raw {
                edit(&mut s, tail);
            }
            let ours = k.ed_ours.verify(Alg::EdDSA, msg, &s).is_ok();
            let theirs = rsig::UnparsedPublicKey::new(&rsig::ED25519, k.ed.public_key().as_ref())
                .verify(msg, &s)
                .is_ok();
            (Alg::EdDSA, ours, theirs, s)
        }
        i => {
            let (alg, signing, verifying) = RSA_ALGS[usize::from(i - 1)];
            let mut s = if raw {
                tail.to_vec()
            } else {
                let mut out = vec![0u8; k.n.len()];
                k.rsa.sign(signing, &rng, msg, &mut out).unwrap();
                out
            };
            if !raw {
                edit(&mut s, tail);
            }
            let ours = k.rsa_ours.verify(alg, msg, &s).is_ok();
            let theirs = rsig::RsaPublicKeyComponents { n: &k.n, e: &k.e }
                .verify(verifying, msg, &s)
                .is_ok();
            (alg, ours, theirs, s)
        }
    };
    assert_eq!(
        ours,
        theirs,
        "{alg}: shieldwall-jose {ours}, ring {theirs}; msg {} sig {}",
        hex(msg),
        hex(&sig)
    );
});
