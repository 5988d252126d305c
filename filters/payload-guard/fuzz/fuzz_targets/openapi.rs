#![no_main]

use libfuzzer_sys::fuzz_target;

// The configuration, with any text as the OpenAPI document (JSON or YAML), never panics: it is
// compiled or refused with a reason.
fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = serde_json::json!({ "openapi": text });
    let bytes = serde_json::to_vec(&config).expect("serialises");
    if let Err(e) = payload_guard::Config::parse(&bytes) {
        assert!(!e.reason.is_empty());
    }
});
