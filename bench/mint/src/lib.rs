//! Keys, JWKS and tokens for the side-by-side benchmark.
//!
//! One key per algorithm the benchmark compares: RSA-2048 (RS256), P-256 (ES256) and Ed25519
//! (EdDSA). Keys are generated fresh for every run: P-256 and Ed25519 by ring, RSA by
//! `openssl genpkey` (ring signs RSA but does not generate RSA keys).

use std::error::Error;
use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256,
};
use serde_json::{json, Value};

pub type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The issuer every benchmark token carries.
pub const ISSUER: &str = "https://idp.bench.example";
/// The audience every benchmark token carries.
pub const AUDIENCE: &str = "orders-api";
/// The scope the chain variants require.
pub const SCOPE: &str = "orders:read";

/// The algorithms of the cold-path comparison, in table order.
pub const ALGS: [Alg; 3] = [Alg::Rs256, Alg::Es256, Alg::EdDsa];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    /// The JOSE name (`alg` header value).
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }

    /// The key id used for this algorithm's key.
    pub fn kid(self) -> &'static str {
        match self {
            Alg::Rs256 => "bench-rsa",
            Alg::Es256 => "bench-p256",
            Alg::EdDsa => "bench-ed25519",
        }
    }
}

pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// One signing key per algorithm.
pub struct KeySet {
    rsa: RsaKeyPair,
    p256: EcdsaKeyPair,
    ed25519: Ed25519KeyPair,
    rng: SystemRandom,
}

impl KeySet {
    /// Fresh keys: RSA-2048 from `openssl genpkey`, P-256 and Ed25519 from ring.
    pub fn generate() -> Result<KeySet> {
        let rng = SystemRandom::new();
        let out = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-outform",
                "DER",
            ])
            .output()
            .map_err(|e| format!("running openssl genpkey: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "openssl genpkey failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        // OpenSSL writes PKCS#8 or PKCS#1 depending on its version; ring reads both.
        let rsa = match RsaKeyPair::from_pkcs8(&out.stdout) {
            Ok(pair) => pair,
            Err(_) => RsaKeyPair::from_der(&out.stdout)
                .map_err(|e| format!("reading the RSA key: {e}"))?,
        };
        let p256_doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "generating the P-256 key")?;
        let p256 =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, p256_doc.as_ref(), &rng)
                .map_err(|e| format!("reading the P-256 key: {e}"))?;
        let ed_doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| "generating Ed25519")?;
        let ed25519 = Ed25519KeyPair::from_pkcs8(ed_doc.as_ref())
            .map_err(|e| format!("reading the Ed25519 key: {e}"))?;
        Ok(KeySet {
            rsa,
            p256,
            ed25519,
            rng,
        })
    }

    /// The public JWKS with all three keys, each with its `kid`, `alg` and `use: sig`.
    pub fn jwks(&self) -> Value {
        let rsa: ring::rsa::PublicKeyComponents<Vec<u8>> = self.rsa.public().into();
        let point = self.p256.public_key().as_ref();
        let (x, y) = point.get(1..33).zip(point.get(33..65)).unwrap_or_default();
        json!({"keys": [
            {"kty": "RSA", "kid": Alg::Rs256.kid(), "alg": "RS256", "use": "sig",
             "n": b64url(&rsa.n), "e": b64url(&rsa.e)},
            {"kty": "EC", "crv": "P-256", "kid": Alg::Es256.kid(), "alg": "ES256", "use": "sig",
             "x": b64url(x), "y": b64url(y)},
            {"kty": "OKP", "crv": "Ed25519", "kid": Alg::EdDsa.kid(), "alg": "EdDSA", "use": "sig",
             "x": b64url(self.ed25519.public_key().as_ref())},
        ]})
    }

    /// A signed compact JWT with these claims.
    pub fn token(&self, alg: Alg, claims: &Value) -> Result<String> {
        let header = json!({"alg": alg.name(), "typ": "JWT", "kid": alg.kid()});
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let sig = match alg {
            Alg::Rs256 => {
                let mut sig = vec![0; self.rsa.public().modulus_len()];
                self.rsa
                    .sign(&RSA_PKCS1_SHA256, &self.rng, input.as_bytes(), &mut sig)
                    .map_err(|_| "RSA signing")?;
                sig
            }
            Alg::Es256 => self
                .p256
                .sign(&self.rng, input.as_bytes())
                .map_err(|_| "ECDSA signing")?
                .as_ref()
                .to_vec(),
            Alg::EdDsa => self.ed25519.sign(input.as_bytes()).as_ref().to_vec(),
        };
        Ok(format!("{input}.{}", b64url(&sig)))
    }
}

/// The claims of benchmark token number `n`: `iat` is `now`, `exp` is `now + ttl_s`, `jti` and
/// `sub` differ per token so every token is distinct.
pub fn claims(n: usize, now: u64, ttl_s: u64) -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": format!("user-{n}"),
        "client_id": "bench-client",
        "scope": format!("{SCOPE} orders:write"),
        "tenant": "a",
        "iat": now,
        "exp": now + ttl_s,
        "jti": format!("bench-{n}"),
    })
}
