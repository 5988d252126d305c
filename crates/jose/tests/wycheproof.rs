//! Wycheproof test vectors run through the public verification layer.
//!
//! Keys go through `parse_jwks`, the same import path as production: the file's own JWK where it
//! has one, otherwise a JWK built from the raw modulus/exponent. Results: `valid` must verify,
//! `invalid` must not. `acceptable` cases (only the PKCS#1 v1.5 "missing NULL" legacy encoding in
//! these files) are refused: ring accepts only the DER encoding with the NULL parameter, and
//! nothing legitimate produces the other form, so the stricter answer costs nothing.
//!
//! Each file's case count is asserted, so an empty or truncated run fails.

// Test code: a failed expectation is meant to panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use serde_json::{json, Value};
use shieldwall_jose::{
    parse_compact, parse_compact_raw, parse_jwks, select_keys, Alg, JwksOptions, JwsError,
};

const OPTS: JwksOptions = JwksOptions {
    // The vectors include HMAC keys; production enables these only for local key sets.
    allow_symmetric: true,
    max_bytes: 1 << 20,
    max_keys: 16,
};

fn load(name: &str) -> Value {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/wycheproof");
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "Wycheproof vectors missing: cannot read {} ({e}). They live in the shared test data \
             folder beside the repository (shared/testdata/wycheproof).",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("vector file is JSON")
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn groups(doc: &Value) -> &Vec<Value> {
    doc["testGroups"].as_array().expect("testGroups")
}

fn tests(group: &Value) -> &Vec<Value> {
    group["tests"].as_array().expect("tests")
}

#[derive(Default, Debug)]
struct Tally {
    run: usize,
    valid: usize,
    invalid: usize,
    acceptable: usize,
}

/// Runs a raw-signature file (`msg`, `sig` per case) against the key the closure imports.
fn run_signature_file(
    file: &str,
    alg: Alg,
    expected_cases: usize,
    key_json: impl Fn(&Value) -> Value,
    // Whether a case must verify; usually "labelled valid".
    must_verify: impl Fn(&Value) -> bool,
) -> Tally {
    let doc = load(file);
    let mut tally = Tally::default();
    for group in groups(&doc) {
        let jwks_doc = json!({ "keys": [key_json(group)] }).to_string();
        let jwks = parse_jwks(jwks_doc.as_bytes(), OPTS)
            .unwrap_or_else(|e| panic!("{file}: group key refused: {e}"));
        assert_eq!(jwks.keys.len(), 1, "{file}: one key per group");
        let key = &jwks.keys[0];
        for case in tests(group) {
            let id = &case["tcId"];
            let msg = hex(case["msg"].as_str().expect("msg"));
            let sig = hex(case["sig"].as_str().expect("sig"));
            let result = case["result"].as_str().expect("result");
            let verified = key.verify(alg, &msg, &sig).is_ok();
            // The same verifier as a jwt-compact `Algorithm` must agree on every vector.
            #[cfg(feature = "jwt-compact")]
            {
                use jwt_compact::{Algorithm, AlgorithmSignature};
                let signature = shieldwall_jose::compact::Signature::try_from_slice(&sig).unwrap();
                let adapter = shieldwall_jose::compact::Verifier::new(alg);
                assert_eq!(
                    adapter.verify_signature(&signature, key, &msg),
                    verified,
                    "{file} tcId {id}: the jwt-compact adapter disagrees"
                );
            }
            tally.run += 1;
            match result {
                "valid" => tally.valid += 1,
                "invalid" => tally.invalid += 1,
                "acceptable" => tally.acceptable += 1,
                other => panic!("{file} tcId {id}: unknown result {other}"),
            }
            let expect = must_verify(case);
            assert_eq!(
                verified, expect,
                "{file} tcId {id} ({}, {result}) as {alg}",
                case["comment"]
            );
        }
    }
    assert_eq!(tally.run, expected_cases, "{file}: number of cases run");
    assert_eq!(
        doc["numberOfTests"].as_u64(),
        Some(expected_cases as u64),
        "{file}: numberOfTests"
    );
    tally
}

fn labelled_valid(case: &Value) -> bool {
    case["result"] == "valid"
}

fn file_jwk(member: &'static str) -> impl Fn(&Value) -> Value {
    move |group| group[member].clone()
}

/// The file's JWK when the group has one, otherwise one built from the uncompressed point.
fn ec_jwk(crv: &'static str) -> impl Fn(&Value) -> Value {
    move |group| {
        if let Some(jwk) = group.get("publicKeyJwk") {
            return jwk.clone();
        }
        let point = hex(group["publicKey"]["uncompressed"]
            .as_str()
            .expect("uncompressed"));
        assert_eq!(point[0], 4, "uncompressed point");
        let (x, y) = point[1..].split_at((point.len() - 1) / 2);
        json!({"kty": "EC", "crv": crv, "x": b64url(x), "y": b64url(y)})
    }
}

/// A JWK built from the raw RSA public key of a group (files without a JWK).
fn rsa_jwk_from_raw(group: &Value) -> Value {
    let key = &group["publicKey"];
    let n = hex(key["modulus"].as_str().expect("modulus"));
    let e = hex(key["publicExponent"].as_str().expect("publicExponent"));
    json!({"kty": "RSA", "n": b64url(&n), "e": b64url(&e)})
}

#[test]
fn rsa_pkcs1_2048_sha256_as_rs256() {
    let t = run_signature_file(
        "rsa_signature_2048_sha256_test.json",
        Alg::RS256,
        259,
        file_jwk("keyJwk"),
        labelled_valid,
    );
    assert_eq!((t.valid, t.acceptable), (9, 1));
}

#[test]
fn rsa_pkcs1_2048_sha384_as_rs384() {
    let t = run_signature_file(
        "rsa_signature_2048_sha384_test.json",
        Alg::RS384,
        258,
        file_jwk("keyJwk"),
        labelled_valid,
    );
    assert_eq!((t.valid, t.acceptable), (7, 1));
}

#[test]
fn rsa_pkcs1_2048_sha512_as_rs512() {
    let t = run_signature_file(
        "rsa_signature_2048_sha512_test.json",
        Alg::RS512,
        259,
        file_jwk("keyJwk"),
        labelled_valid,
    );
    assert_eq!((t.valid, t.acceptable), (8, 1));
}

#[test]
fn rsa_pkcs1_3072_sha256_as_rs256() {
    let t = run_signature_file(
        "rsa_signature_3072_sha256_test.json",
        Alg::RS256,
        259,
        file_jwk("keyJwk"),
        labelled_valid,
    );
    assert_eq!((t.valid, t.acceptable), (8, 1));
}

#[test]
fn rsa_pss_salt_32_as_ps256() {
    let t = run_signature_file(
        "rsa_pss_2048_sha256_mgf1_32_test.json",
        Alg::PS256,
        108,
        file_jwk("publicKeyJwk"),
        labelled_valid,
    );
    assert_eq!(t.valid, 63);
}

#[test]
fn rsa_pss_salt_0_never_verifies_as_ps256() {
    // Signatures valid with an empty salt are not PS256 signatures (RFC 7518 §3.5: the salt is
    // as long as the hash): none of the 61 labelled valid may verify. The one exception runs the
    // other way: tcId 69 ("s_len changed to 32") is invalid for this file's empty-salt
    // parameters but is exactly a PS256 signature, so it must verify.
    let doc = load("rsa_pss_2048_sha256_mgf1_0_test.json");
    assert_eq!(groups(&doc)[0]["sLen"].as_u64(), Some(0));
    let salt_32 = |case: &Value| case["tcId"] == 69;
    let t = run_signature_file(
        "rsa_pss_2048_sha256_mgf1_0_test.json",
        Alg::PS256,
        103,
        rsa_jwk_from_raw,
        salt_32,
    );
    assert_eq!(t.valid, 61);
}

#[test]
fn rsa_pss_raw_key_import_matches_file_jwk() {
    // The salt-32 file has both forms of the key; building from raw bytes must give the same key.
    let doc = load("rsa_pss_2048_sha256_mgf1_32_test.json");
    let group = &groups(&doc)[0];
    let from_raw = parse_jwks(
        json!({"keys": [rsa_jwk_from_raw(group)]})
            .to_string()
            .as_bytes(),
        OPTS,
    )
    .unwrap();
    let mut file = group["publicKeyJwk"].clone();
    file.as_object_mut().unwrap().remove("alg");
    file.as_object_mut().unwrap().remove("kid");
    let from_file = parse_jwks(json!({"keys": [file]}).to_string().as_bytes(), OPTS).unwrap();
    assert_eq!(from_raw.to_json(), from_file.to_json());
}

#[test]
fn ecdsa_p256_p1363_as_es256() {
    let t = run_signature_file(
        "ecdsa_secp256r1_sha256_p1363_test.json",
        Alg::ES256,
        262,
        ec_jwk("P-256"),
        labelled_valid,
    );
    assert_eq!(t.valid, 173);
}

#[test]
fn ecdsa_p384_p1363_as_es384() {
    let t = run_signature_file(
        "ecdsa_secp384r1_sha384_p1363_test.json",
        Alg::ES384,
        280,
        ec_jwk("P-384"),
        labelled_valid,
    );
    assert_eq!(t.valid, 193);
}

#[test]
fn ed25519_as_eddsa() {
    let t = run_signature_file(
        "ed25519_test.json",
        Alg::EdDSA,
        151,
        file_jwk("publicKeyJwk"),
        labelled_valid,
    );
    assert_eq!(t.valid, 88);
}

/// The production pipeline for a whole compact JWS: parse, select keys by the header, verify.
/// Returns whether some key verified it.
fn accept(jws: &str, jwks_json: &str) -> bool {
    let raw = match parse_compact_raw(jws, 16 * 1024) {
        Ok(raw) => raw,
        Err(e) => {
            // The JWT entry point refuses everything the raw one refuses, for the same reason.
            assert_eq!(parse_compact(jws, 16 * 1024).err(), Some(e));
            return false;
        }
    };
    let Ok(jwks) = parse_jwks(jwks_json.as_bytes(), OPTS) else {
        return false;
    };
    let verified = select_keys(&jwks, &raw.header, 4).any(|key| {
        key.verify(raw.header.alg, raw.signing_input.as_bytes(), &raw.signature)
            .is_ok()
    });
    verified
}

#[test]
fn json_web_keys() {
    let doc = load("json_web_key_test.json");
    let mut run = 0;
    for group in groups(&doc) {
        // Each group's key set is already a JWKS; use its public form when there is one.
        let set = group.get("public").unwrap_or(&group["private"]).to_string();
        for case in tests(group) {
            let id = &case["tcId"];
            let jws = case["jws"].as_str().unwrap();
            let want = match case["result"].as_str().unwrap() {
                "valid" => true,
                "invalid" => false,
                other => panic!("tcId {id}: unexpected result {other}"),
            };
            assert_eq!(accept(jws, &set), want, "tcId {id} ({})", case["comment"]);
            run += 1;
        }
    }
    assert_eq!(run, 26);
    assert_eq!(doc["numberOfTests"].as_u64(), Some(26));
}

#[test]
fn json_web_key_refusals_happen_at_import() {
    // Key sets whose only key is unusable are refused by the import itself, not only later by
    // a failing signature.
    let doc = load("json_web_key_test.json");
    let mut refused = 0;
    for group in groups(&doc) {
        let id = tests(group)[0]["tcId"].as_u64().unwrap();
        let set = group.get("public").unwrap_or(&group["private"]).to_string();
        let result = parse_jwks(set.as_bytes(), OPTS);
        // Groups of tcIds 1 (its EC key), 2-3, 5, 13, 14 and 15 keep a usable key.
        if matches!(id, 1..=3 | 5 | 13..=15) {
            assert!(result.is_ok(), "tcId {id}");
        } else {
            assert_eq!(
                result.err().map(|e| e.code()),
                Some("no_usable_key"),
                "tcId {id}"
            );
            refused += 1;
        }
    }
    assert_eq!(refused, 19);
}

#[test]
fn json_web_signatures() {
    let doc = load("json_web_signature_test.json");
    let mut run = 0;
    let mut unsupported_alg = 0;
    let mut alg_pinned = 0;
    let all: Vec<&Value> = groups(&doc).iter().flat_map(tests).collect();
    let jws_of = |tc: u64| {
        all.iter()
            .find(|c| c["tcId"].as_u64() == Some(tc))
            .and_then(|c| c["jws"].as_str())
            .unwrap()
    };
    for group in groups(&doc) {
        // A group holds one JWK; wrap it in a set as an identity provider would publish it.
        let jwk = group.get("public").unwrap_or(&group["private"]);
        let set = json!({ "keys": [jwk] }).to_string();
        for case in tests(group) {
            let id = case["tcId"].as_u64().unwrap();
            let jws = case["jws"].as_str().unwrap();
            let mut want = match case["result"].as_str().unwrap() {
                "valid" => true,
                "invalid" => false,
                other => panic!("tcId {id}: unexpected result {other}"),
            };
            match id {
                // Mislabelled in the file: byte-for-byte the JWS of the valid tcId 357, with the
                // same key, yet labelled invalid. A deterministic verifier cannot give two
                // answers for the same input; we expect the valid one.
                367 | 370 => {
                    assert_eq!(jws, jws_of(357), "tcId {id} is no longer a copy of 357");
                    want = true;
                }
                // Mislabelled in the file: a `?` inside the base64url text, labelled valid.
                // Strict base64url refuses it, which is the right outcome.
                372 | 373 => {
                    assert!(jws.contains('?'), "tcId {id} no longer contains '?'");
                    assert_eq!(
                        parse_compact_raw(jws, 16 * 1024).err(),
                        Some(JwsError::BadBase64)
                    );
                    want = false;
                }
                _ => {}
            }
            // ES512 (RFC 7520 figure 27) is outside this filter's algorithm allow-list: those
            // valid signatures must be refused at the header, with `alg_not_allowed`.
            if want && jws.starts_with("eyJhbGciOiJFUzUxMi") {
                assert_eq!(
                    parse_compact_raw(jws, 16 * 1024).err(),
                    Some(JwsError::AlgNotAllowed)
                );
                unsupported_alg += 1;
                want = false;
            }
            // RFC 7520 figure 20 is signed with PS384, but these groups' JWK names `alg: PS256`.
            // A key that names its alg verifies only that alg (no algorithm substitution), so
            // these two cases labelled valid are refused: no key is even selected.
            if matches!(id, 346 | 350) {
                assert_eq!(jwk["alg"], "PS256");
                let raw = parse_compact_raw(jws, 16 * 1024).unwrap();
                assert_eq!(raw.header.alg, Alg::PS384);
                let jwks = parse_jwks(set.as_bytes(), OPTS).unwrap();
                assert_eq!(select_keys(&jwks, &raw.header, 4).count(), 0);
                assert!(jwks.keys[0]
                    .verify(Alg::PS384, raw.signing_input.as_bytes(), &raw.signature)
                    .is_err());
                alg_pinned += 1;
                want = false;
            }
            assert_eq!(accept(jws, &set), want, "tcId {id} ({})", case["comment"]);
            run += 1;
        }
    }
    assert_eq!(alg_pinned, 2, "tcIds 346 and 350");
    assert_eq!(
        unsupported_alg, 2,
        "the two ES512 cases (tcIds 347 and 351)"
    );
    assert_eq!(run, 401);
    assert_eq!(doc["numberOfTests"].as_u64(), Some(401));
}
