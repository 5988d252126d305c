//! The credential of a request, for the authenticating filters: where a token may be found
//! (`from_headers` with `value_prefix`, `from_params`, `from_cookies`), finding the one credential
//! of a request (RFC 6750 §2: a client uses exactly one method) and removing it before the request
//! goes upstream.

use serde::Deserialize;

use crate::authn::usable_header_name;
use crate::config::ConfigError;
use crate::host::Host;
use crate::route::RequestLine;

/// One entry of `from_headers`: a header name and the text before the token (`Bearer `).
#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FromHeader {
    pub name: String,
    #[serde(default)]
    pub value_prefix: Option<String>,
}

impl FromHeader {
    /// One entry of `from_headers`, read by hand ([`crate::json_config`]); the serde derive serves the filters that do not read their configuration that way yet, and a test keeps the two in agreement.
    pub fn from_json(v: &serde_json::Value) -> Result<FromHeader, crate::ConfigError> {
        use crate::json_config::{object, string};
        let o = object(v, &["name", "value_prefix"])?;
        Ok(FromHeader {
            name: o.need("name", string)?,
            value_prefix: o.optional("value_prefix", string)?,
        })
    }
}

/// The token locations of one provider, as configured: `from_headers`, `from_params`,
/// `from_cookies`. Without any, a token is an `Authorization: Bearer` header.
#[derive(Debug, Default, Clone)]
pub struct TokenLocationsFile {
    pub from_headers: Option<Vec<FromHeader>>,
    pub from_params: Vec<String>,
    pub from_cookies: Vec<String>,
}

/// Where a token may be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Header {
        name: String,
        prefix: Option<String>,
    },
    Param(String),
    Cookie(String),
}

fn intern(locations: &mut Vec<Location>, loc: Location) -> usize {
    if let Some(i) = locations.iter().position(|l| *l == loc) {
        return i;
    }
    locations.push(loc);
    locations.len() - 1
}

/// Validates one provider's token locations and adds them to `all`, the distinct locations of
/// every provider (a location two providers share is searched once). Returns the indexes into
/// `all` of this provider's locations. Errors name the field (`from_headers[0].name`).
pub fn token_locations(
    file: TokenLocationsFile,
    all: &mut Vec<Location>,
) -> Result<Vec<usize>, ConfigError> {
    let mut locs = Vec::new();
    let headers = file.from_headers.unwrap_or_else(|| {
        if file.from_params.is_empty() && file.from_cookies.is_empty() {
            vec![FromHeader {
                name: "authorization".into(),
                value_prefix: Some("Bearer ".into()),
            }]
        } else {
            Vec::new()
        }
    });
    for (i, h) in headers.into_iter().enumerate() {
        let lname = h.name.to_ascii_lowercase();
        if !usable_header_name(&lname) {
            return Err(ConfigError::new(
                format!("from_headers[{i}].name"),
                "not a usable header name",
            ));
        }
        if h.value_prefix.as_deref() == Some("") {
            return Err(ConfigError::new(
                format!("from_headers[{i}].value_prefix"),
                "leave it out instead of an empty prefix",
            ));
        }
        locs.push(intern(
            all,
            Location::Header {
                name: lname,
                prefix: h.value_prefix,
            },
        ));
    }
    for (i, q) in file.from_params.into_iter().enumerate() {
        if q.is_empty() {
            return Err(ConfigError::new(
                format!("from_params[{i}]"),
                "must not be empty",
            ));
        }
        locs.push(intern(all, Location::Param(q)));
    }
    for (i, c) in file.from_cookies.into_iter().enumerate() {
        if c.is_empty() || c.contains([';', '=', ' ']) {
            return Err(ConfigError::new(
                format!("from_cookies[{i}]"),
                "not a cookie name",
            ));
        }
        locs.push(intern(all, Location::Cookie(c)));
    }
    if locs.is_empty() {
        return Err(ConfigError::new(
            "from_headers",
            "the provider has no token location",
        ));
    }
    Ok(locs)
}

/// Every token location is the `authorization` header. Envoy keeps that header as one entry
/// (repeated copies joined by ","), so reading its one value sees every copy and the whole
/// header map need not be read.
pub fn authorization_only(locations: &[Location]) -> bool {
    !locations.is_empty()
        && locations
            .iter()
            .all(|l| matches!(l, Location::Header { name, .. } if name == "authorization"))
}

#[derive(Debug, PartialEq, Eq)]
pub enum Extracted {
    None,
    /// The token and the index of its location in the list searched.
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

/// Looks in every location of `locations`. `headers` are the request headers (all values).
pub fn extract(
    locations: &[Location],
    headers: &[(String, String)],
    line: &RequestLine,
) -> Extracted {
    let mut found: Option<(String, usize)> = None;
    let mut count = 0usize;
    for (i, loc) in locations.iter().enumerate() {
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

/// Finds the credential of the current request in `locations`; `authorization_only` (see
/// [`authorization_only`]) reads the one header instead of the whole header map.
pub fn extract_from_request(
    host: &dyn Host,
    locations: &[Location],
    authorization_only: bool,
    line: &RequestLine,
) -> Extracted {
    let headers = if authorization_only {
        host.request_header("authorization")
            .map(|v| vec![("authorization".to_string(), v)])
            .unwrap_or_default()
    } else {
        host.request_headers()
    };
    extract(locations, &headers, line)
}

/// Removes the credential before the request goes upstream (`forward: false`): the header, the
/// query parameter (rewriting `:path`) or the cookie.
pub fn remove_credential(host: &mut dyn Host, loc: &Location) {
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
    use crate::route::PathOptions;
    use crate::testing::MockHost;

    fn locations(file: TokenLocationsFile) -> Vec<Location> {
        let mut all = Vec::new();
        token_locations(file, &mut all).unwrap();
        all
    }

    fn bearer_default() -> Vec<Location> {
        locations(TokenLocationsFile::default())
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

    fn one(token: &str, location: usize) -> Extracted {
        Extracted::One {
            token: token.into(),
            location,
        }
    }

    #[test]
    fn bearer_header_by_default() {
        let c = bearer_default();
        assert!(authorization_only(&c));
        assert_eq!(
            extract(&c, &hdrs(&[("authorization", "Bearer abc")]), &line("/")),
            one("abc", 0)
        );
        assert_eq!(
            extract(&c, &hdrs(&[("authorization", "bearer abc")]), &line("/")),
            one("abc", 0)
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
        let c = bearer_default();
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
            one("a", 0)
        );
        assert_eq!(
            extract(&c, &hdrs(&[("authorization", "Bearer ")]), &line("/")),
            one("", 0),
            "an empty bearer token is still a (bad) credential"
        );
    }

    fn header_param_cookie() -> Vec<Location> {
        locations(TokenLocationsFile {
            from_headers: Some(vec![FromHeader {
                name: "Authorization".into(),
                value_prefix: Some("Bearer ".into()),
            }]),
            from_params: vec!["access_token".into()],
            from_cookies: vec!["sid".into()],
        })
    }

    #[test]
    fn header_and_param_is_several() {
        let c = header_param_cookie();
        assert!(!authorization_only(&c));
        assert_eq!(
            extract(&c, &hdrs(&[]), &line("/?access_token=p")),
            one("p", 1)
        );
        assert_eq!(
            extract(&c, &hdrs(&[("cookie", "a=1; sid=s")]), &line("/")),
            one("s", 2)
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
    fn extraction_from_the_request() {
        let c = header_param_cookie();
        let h = MockHost::request("GET", "/a", &[("cookie", "sid=s")]);
        assert_eq!(
            extract_from_request(&h, &c, false, &line("/a")),
            one("s", 2)
        );
        let c = bearer_default();
        let h = MockHost::request("GET", "/a", &[("authorization", "Bearer t")]);
        assert_eq!(extract_from_request(&h, &c, true, &line("/a")), one("t", 0));
        let h = MockHost::request("GET", "/a", &[]);
        assert_eq!(
            extract_from_request(&h, &c, true, &line("/a")),
            Extracted::None
        );
    }

    #[test]
    fn locations_are_shared_between_providers_and_validated() {
        let mut all = Vec::new();
        assert_eq!(
            token_locations(TokenLocationsFile::default(), &mut all).unwrap(),
            vec![0]
        );
        let second = TokenLocationsFile {
            from_headers: Some(vec![
                FromHeader {
                    name: "AUTHORIZATION".into(),
                    value_prefix: Some("Bearer ".into()),
                },
                FromHeader {
                    name: "x-token".into(),
                    value_prefix: None,
                },
            ]),
            ..Default::default()
        };
        assert_eq!(token_locations(second, &mut all).unwrap(), vec![0, 1]);
        assert_eq!(all.len(), 2);

        let bad = |file: TokenLocationsFile| {
            token_locations(file, &mut Vec::new())
                .unwrap_err()
                .to_string()
        };
        let header = |name: &str, prefix: Option<&str>| TokenLocationsFile {
            from_headers: Some(vec![FromHeader {
                name: name.into(),
                value_prefix: prefix.map(str::to_string),
            }]),
            ..Default::default()
        };
        assert_eq!(
            bad(header(":path", None)),
            "from_headers[0].name: not a usable header name"
        );
        assert_eq!(
            bad(header("host", None)),
            "from_headers[0].name: not a usable header name"
        );
        assert_eq!(
            bad(header("x-token", Some(""))),
            "from_headers[0].value_prefix: leave it out instead of an empty prefix"
        );
        assert_eq!(
            bad(TokenLocationsFile {
                from_params: vec![String::new()],
                ..Default::default()
            }),
            "from_params[0]: must not be empty"
        );
        assert_eq!(
            bad(TokenLocationsFile {
                from_cookies: vec!["a=b".into()],
                ..Default::default()
            }),
            "from_cookies[0]: not a cookie name"
        );
        assert_eq!(
            bad(TokenLocationsFile {
                from_headers: Some(Vec::new()),
                ..Default::default()
            }),
            "from_headers: the provider has no token location"
        );
    }

    #[test]
    fn credential_removal() {
        use crate::host::Host;
        let mut h = MockHost::request(
            "GET",
            "/a?x=1&access_token=t&y=2",
            &[("cookie", "a=1; sid=s; b=2")],
        );
        remove_credential(&mut h, &Location::Param("access_token".into()));
        assert_eq!(h.request_header(":path").as_deref(), Some("/a?x=1&y=2"));
        remove_credential(&mut h, &Location::Cookie("sid".into()));
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
