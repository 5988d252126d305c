//! What the authenticating filters share beyond finding the credential (see [`crate::credential`]):
//! the header names they may write.

/// A lowercase header name of the characters a filter's configuration may use.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

/// Headers the proxy manages: a filter must never set or remove them.
fn reserved_header(name: &str) -> bool {
    name.starts_with(':')
        || matches!(
            name,
            "host" | "content-length" | "transfer-encoding" | "connection"
        )
}

/// A header (lowercased) an authenticator may read its token from or write upstream: a valid
/// name that the proxy does not manage.
pub fn usable_header_name(name: &str) -> bool {
    valid_header_name(name) && !reserved_header(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_header_names() {
        for ok in ["authorization", "x-token-sub", "x_a.b", "x1"] {
            assert!(usable_header_name(ok), "{ok}");
        }
        for bad in [
            "",
            ":path",
            ":authority",
            "host",
            "content-length",
            "transfer-encoding",
            "connection",
            "X-Upper",
            "a b",
            "a:b",
        ] {
            assert!(!usable_header_name(bad), "{bad}");
        }
    }
}
