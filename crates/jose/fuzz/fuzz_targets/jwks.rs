#![no_main]

use libfuzzer_sys::fuzz_target;

const OPTS: shieldwall_jose::JwksOptions = shieldwall_jose::JwksOptions {
    allow_symmetric: true,
    max_bytes: 64 * 1024,
    max_keys: 64,
};

// Import must never panic; an imported set must survive its own serialization unchanged.
fuzz_target!(|data: &[u8]| {
    if let Ok(jwks) = shieldwall_jose::parse_jwks(data, OPTS) {
        assert!(!jwks.keys.is_empty());
        let json = jwks.to_json();
        let again = shieldwall_jose::parse_jwks(json.as_bytes(), OPTS).expect("re-import");
        assert_eq!(again.to_json(), json);
        assert!(again.skipped.is_empty());
    }
});
