//! Finding the one credential of a request (RFC 6750 §2: a client uses exactly one method).

use shieldwall_core::RequestLine;

use crate::config::{Config, Location};

#[derive(Debug, PartialEq, Eq)]
pub enum Extracted {
    None,
    /// The token and the index of its location in `Config::locations`.
    One {
        token: String,
        location: usize,
    },
    /// More than one credential: two Authorization headers, a header and a parameter, ...
    Several,
}

/// Splits `name=value` pairs of every `cookie` header.
fn cookie_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k == "cookie")
        .flat_map(|(_, v)| v.split(';'))
        .filter_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
        .collect()
}

/// The token in a header value, if the value has the location's prefix. The auth scheme of a
/// prefix like `Bearer ` is matched case-insensitively (RFC 7235); anything else exactly.
fn strip_prefix<'a>(value: &'a str, prefix: Option<&str>) -> Option<&'a str> {
    match prefix {
        None => Some(value.trim()),
        Some(p) => {
            let head = value.get(..p.len())?;
            let matches = if p.ends_with(' ') {
                head.eq_ignore_ascii_case(p)
            } else {
                head == p
            };
            matches.then(|| value.get(p.len()..).unwrap_or("").trim())
        }
    }
}

/// The items of a header value. Envoy joins repeated inline headers (`authorization` among
/// them) into one value with `,` (RFC 9110 §5.3), so two `Authorization` headers reach the filter
/// as `Bearer a,Bearer b`. A token never holds a comma (base64url and dots), and one header holds
/// one credential (RFC 7235), so a value with several non-empty items is several credentials,
/// whatever they look like: `Bearer <valid>,junk` is refused, not half-accepted.
fn header_credentials(value: &str, prefix: Option<&str>) -> Vec<String> {
    let items: Vec<&str> = value
        .split(',')
        .map(str::trim_start)
        .filter(|item| !item.trim().is_empty())
        .collect();
    match items.as_slice() {
        [] => Vec::new(),
        [one] => strip_prefix(one, prefix)
            .map(str::to_string)
            .into_iter()
            .collect(),
        several
            if several
                .iter()
                .any(|item| strip_prefix(item, prefix).is_some()) =>
        {
            several.iter().map(|item| (*item).to_string()).collect()
        }
        _ => Vec::new(),
    }
}

/// Looks in every configured location. `headers` are the request headers (all values).
pub fn extract(config: &Config, headers: &[(String, String)], line: &RequestLine) -> Extracted {
    let mut found: Option<(String, usize)> = None;
    let mut count = 0usize;
    for (i, loc) in config.locations.iter().enumerate() {
        let values: Vec<String> = match loc {
            Location::Header { name, prefix } => headers
                .iter()
                .filter(|(k, _)| k == name)
                .flat_map(|(_, v)| header_credentials(v, prefix.as_deref()))
                .collect(),
            Location::Param(name) => line.query_params(name),
            Location::Cookie(name) => cookie_values(headers, name)
                .into_iter()
                .map(str::to_string)
                .collect(),
        };
        for v in values {
            count += 1;
            if found.is_none() {
                found = Some((v, i));
            }
        }
    }
    match (count, found) {
        (0, _) | (_, None) => Extracted::None,
        (1, Some((token, location))) => Extracted::One { token, location },
        _ => Extracted::Several,
    }
}

/// Removes the credential before the request goes upstream (`forward: false`): the header, the
/// query parameter (rewriting `:path`) or the cookie.
pub fn remove_credential(host: &mut dyn shieldwall_core::Host, loc: &Location) {
    match loc {
        Location::Header { name, .. } => host.set_request_header(name, None),
        Location::Param(name) => {
            let Some(path) = host.request_header(":path") else {
                return;
            };
            let Some((base, query)) = path.split_once('?') else {
                return;
            };
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| {
                    let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
                    key != name.as_str()
                })
                .collect();
            let new_path = if kept.is_empty() {
                base.to_string()
            } else {
                format!("{base}?{}", kept.join("&"))
            };
            host.set_request_header(":path", Some(&new_path));
        }
        Location::Cookie(name) => {
            let Some(cookie) = host.request_header("cookie") else {
                return;
            };
            let kept: Vec<&str> = cookie
                .split(';')
                .map(str::trim)
                .filter(|pair| pair.split_once('=').is_none_or(|(k, _)| k != name.as_str()))
                .collect();
            let value = kept.join("; ");
            host.set_request_header("cookie", if value.is_empty() { None } else { Some(&value) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shieldwall_core::PathOptions;

    fn config(providers: &str) -> Config {
        Config::parse(format!(r#"{{"providers": {providers}, "rules": []}}"#).as_bytes()).unwrap()
    }

    fn hdrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn line(path: &str) -> RequestLine {
        RequestLine::parse("GET", path, PathOptions::default()).unwrap()
    }

    const LOCAL: &str = r#""local_jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", "alg": "HS256"}]}"#;

    #[test]
    fn bearer_header_by_default() {
        let c = config(&format!(r#"{{"a": {{"issuer": "x", {LOCAL}}}}}"#));
        assert_eq!(
            extract(&c, &hdrs(&[("authorization", "Bearer abc")]), &line("/")),
            Extracted::One {
                token: "abc".into(),
                location: 0
            }
        );
        assert_eq!(
            extract(&c, &hdrs(&[("authorization", "bearer abc")]), &line("/")),
            Extracted::One {
                token: "abc".into(),
                location: 0
            }
        );
        assert_eq!(
            extract(&c, &hdrs(&[("authorization", "Basic abc")]), &line("/")),
            Extracted::None
        );
        assert_eq!(
            extract(&c, &hdrs(&[]), &line("/?access_token=x")),
            Extracted::None,
            "params only when configured"
        );
        assert_eq!(
            extract(
                &c,
                &hdrs(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]),
                &line("/")
            ),
            Extracted::Several
        );
    }

    #[test]
    fn repeated_headers_joined_by_the_proxy_are_several() {
        let c = config(&format!(r#"{{"a": {{"issuer": "x", {LOCAL}}}}}"#));
        // Envoy hands the filter two Authorization headers as one comma-joined value.
        for joined in [
            "Bearer a,Bearer b",
            "Bearer a, Bearer b",
            "bearer a,,Bearer b",
        ] {
            assert_eq!(
                extract(&c, &hdrs(&[("authorization", joined)]), &line("/")),
                Extracted::Several,
                "{joined}"
            );
        }
        assert_eq!(
            extract(&c, &hdrs(&[("authorization", "Bearer a,junk")]), &line("/")),
            Extracted::Several,
            "a credential followed by anything else in one header is not one credential"
        );
        assert_eq!(
            extract(&c, &hdrs(&[("authorization", "Basic x,junk")]), &line("/")),
            Extracted::None,
            "no bearer item at all: not ours"
        );
        assert_eq!(
            extract(&c, &hdrs(&[("authorization", "Bearer a,")]), &line("/")),
            Extracted::One {
                token: "a".into(),
                location: 0
            }
        );
        assert_eq!(
            extract(&c, &hdrs(&[("authorization", "Bearer ")]), &line("/")),
            Extracted::One {
                token: "".into(),
                location: 0
            },
            "an empty bearer token is still a (bad) credential"
        );
    }

    #[test]
    fn header_and_param_is_several() {
        let c = config(&format!(
            r#"{{"a": {{"issuer": "x", {LOCAL}, "from_headers": [{{"name": "authorization", "value_prefix": "Bearer "}}], "from_params": ["access_token"], "from_cookies": ["session"]}}}}"#
        ));
        assert_eq!(
            extract(&c, &hdrs(&[]), &line("/?access_token=p")),
            Extracted::One {
                token: "p".into(),
                location: 1
            }
        );
        assert_eq!(
            extract(&c, &hdrs(&[("cookie", "a=1; session=s")]), &line("/")),
            Extracted::One {
                token: "s".into(),
                location: 2
            }
        );
        assert_eq!(
            extract(
                &c,
                &hdrs(&[("authorization", "Bearer h")]),
                &line("/?access_token=p")
            ),
            Extracted::Several
        );
        assert_eq!(
            extract(&c, &hdrs(&[]), &line("/?access_token=p&access_token=q")),
            Extracted::Several
        );
    }

    #[test]
    fn credential_removal() {
        use shieldwall_core::testing::MockHost;
        use shieldwall_core::Host;
        let mut h = MockHost::request(
            "GET",
            "/a?x=1&access_token=t&y=2",
            &[("cookie", "a=1; session=s; b=2")],
        );
        remove_credential(&mut h, &Location::Param("access_token".into()));
        assert_eq!(h.request_header(":path").as_deref(), Some("/a?x=1&y=2"));
        remove_credential(&mut h, &Location::Cookie("session".into()));
        assert_eq!(h.request_header("cookie").as_deref(), Some("a=1; b=2"));
        let mut h = MockHost::request("GET", "/a?access_token=t", &[("authorization", "Bearer t")]);
        remove_credential(&mut h, &Location::Param("access_token".into()));
        assert_eq!(h.request_header(":path").as_deref(), Some("/a"));
        remove_credential(
            &mut h,
            &Location::Header {
                name: "authorization".into(),
                prefix: None,
            },
        );
        assert_eq!(h.request_header("authorization"), None);
    }
}
