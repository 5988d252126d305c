#![no_main]

use libfuzzer_sys::fuzz_target;

// The parser must never panic, and everything it accepts must be self-consistent.
fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let raw = shieldwall_jose::parse_compact_raw(token, 16 * 1024);
    match shieldwall_jose::parse_compact(token, 16 * 1024) {
        Ok(jws) => {
            let raw = raw.expect("raw parse accepts what the JWT parse accepts");
            assert_eq!(raw.header, jws.header);
            assert_eq!(raw.signing_input, jws.signing_input);
            assert!(token.starts_with(jws.signing_input));
            assert!(!jws.signature.is_empty());
        }
        Err(e) => {
            assert!(!e.code().is_empty());
            if let Err(raw_err) = raw {
                assert_eq!(raw_err, e);
            }
        }
    }
});
