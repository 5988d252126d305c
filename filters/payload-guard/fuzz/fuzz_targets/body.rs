#![no_main]

use libfuzzer_sys::fuzz_target;
use payload_guard::json::{parse, JsonLimits};
use serde_json::Value;

/// The same JSON value. Both sides read numbers to the nearest double (std's `parse` here,
/// serde_json's `float_roundtrip` feature there), so doubles must be equal, not merely close: an
/// earlier tolerance of a few units in the last place broke down for subnormals, where a unit is
/// far larger than `EPSILON` times the value. Equal as numbers: `-0` is the integer 0 here and the
/// double -0.0 in serde_json.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() || y.is_f64() {
                x.as_f64() == y.as_f64()
            } else {
                x == y
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

// The body parser never panics; what it accepts, serde_json reads as the same value; a
// refusal's offset is within the body.
fuzz_target!(|data: &[u8]| {
    let limits = JsonLimits {
        max_depth: 16,
        max_array_items: 64,
        max_object_entries: 64,
        max_string_bytes: 256,
        max_key_bytes: 32,
    };
    match parse(data, &limits) {
        Ok(v) => {
            let theirs: Value =
                serde_json::from_slice(data).expect("serde_json reads what the parser accepts");
            assert!(same(&v, &theirs), "{v} != {theirs}");
        }
        Err(e) => assert!(e.offset <= data.len()),
    }
});
