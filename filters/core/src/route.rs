//! Route matching on a normalised path: `path` (exact), `prefix`, Envoy-style `template`
//! (`{param}`, `{param=*}`, `{param=**}`, `*`, `**`) and `methods`.
//!
//! Every filter decides on the same normalised path, so `//a`, `/a/./b`, `/x/../a` and
//! `/%61` are all `/a…` to every rule: a path trick cannot slip past one filter and not another.

use std::rc::Rc;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::host::Host;

/// Why a request path cannot be decided on; each is a 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// No `:path`, or one that does not start with `/`.
    NotAbsolute,
    /// `%2F` or `%5C`: an encoded separator that back ends decode differently.
    EncodedSeparator,
    /// `%` not followed by two hex digits.
    BadEncoding,
    /// A raw control character, space, backslash or non-ASCII byte.
    BadCharacter,
}

impl PathError {
    pub fn code(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "invalid_path",
            PathError::EncodedSeparator => "encoded_separator",
            PathError::BadEncoding => "invalid_path_encoding",
            PathError::BadCharacter => "invalid_path_character",
        }
    }
    pub fn description(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "the request path is not absolute",
            PathError::EncodedSeparator => {
                "the request path contains an encoded slash or backslash"
            }
            PathError::BadEncoding => "the request path has an invalid percent-encoding",
            PathError::BadCharacter => "the request path contains a character that is not allowed",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathOptions {
    /// Keep `%2F`/`%5C` (as literal encoded text inside a segment) instead of refusing with 400.
    pub allow_encoded_slashes: bool,
}

impl PathOptions {
    /// `path`, read by hand ([`crate::json_config`]); the serde derive serves the filters that do not read their configuration that way yet, and a test keeps the two in agreement.
    pub fn from_json(v: &serde_json::Value) -> Result<PathOptions, crate::ConfigError> {
        use crate::json_config::{boolean, object};
        let o = object(v, &["allow_encoded_slashes"])?;
        Ok(PathOptions {
            allow_encoded_slashes: o.or("allow_encoded_slashes", false, boolean)?,
        })
    }
}

/// The method, normalised path and raw query of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLine {
    pub method: String,
    /// Normalised: dot segments removed, repeated slashes merged, unreserved characters decoded.
    pub path: String,
    /// The raw query string without `?`, if any.
    pub query: Option<String>,
}

impl RequestLine {
    /// The request line of the host's current request, normalised with `opts`. A host that keeps
    /// request lines (the one-module chain, for the later stages of the same request) hands back
    /// the one it kept for these options; otherwise it is parsed from `:method` and `:path` and
    /// offered to the host to keep.
    pub fn from_host(host: &dyn Host, opts: PathOptions) -> Result<Rc<RequestLine>, PathError> {
        if let Some(line) = host.kept_request_line(opts) {
            return Ok(line);
        }
        let raw = host.request_header(":path");
        let method = host.request_header(":method").unwrap_or_default();
        RequestLine::parse_and_keep(host, &method, raw.as_deref(), opts)
    }

    /// [`RequestLine::from_host`] for a caller that has read `:method` and `:path` (`None`:
    /// absent) for its own use already.
    pub fn from_read(
        host: &dyn Host,
        method: &str,
        raw_path: Option<&str>,
        opts: PathOptions,
    ) -> Result<Rc<RequestLine>, PathError> {
        match host.kept_request_line(opts) {
            Some(line) => Ok(line),
            None => RequestLine::parse_and_keep(host, method, raw_path, opts),
        }
    }

    fn parse_and_keep(
        host: &dyn Host,
        method: &str,
        raw_path: Option<&str>,
        opts: PathOptions,
    ) -> Result<Rc<RequestLine>, PathError> {
        let raw = raw_path.ok_or(PathError::NotAbsolute)?;
        let line = Rc::new(RequestLine::parse(method, raw, opts)?);
        host.keep_request_line(opts, &line);
        Ok(line)
    }

    pub fn parse(
        method: &str,
        raw_path: &str,
        opts: PathOptions,
    ) -> Result<RequestLine, PathError> {
        let (path, query) = match raw_path.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (raw_path, None),
        };
        // A fragment never reaches a server in a well-formed request; drop it rather than match on it.
        let path = path.split('#').next().unwrap_or("");
        Ok(RequestLine {
            method: method.to_ascii_uppercase(),
            path: normalize_path(path, opts)?,
            query,
        })
    }

    /// A query parameter's first value, percent-decoded (`+` is a space).
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_params(name).into_iter().next()
    }

    /// Every value of a query parameter, percent-decoded.
    pub fn query_params(&self, name: &str) -> Vec<String> {
        let Some(q) = &self.query else {
            return Vec::new();
        };
        q.split('&')
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (form_decode(k).as_deref() == Some(name))
                    .then(|| form_decode(v))
                    .flatten()
            })
            .collect()
    }
}

impl RequestLine {
    /// Every query parameter in order, names and values percent-decoded (`+` is a space). A pair
    /// that does not decode to UTF-8 is left out; a name without `=` has the empty value.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        let Some(q) = &self.query else {
            return Vec::new();
        };
        q.split('&')
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                Some((form_decode(k)?, form_decode(v)?))
            })
            .collect()
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex)?;
                let lo = bytes.get(i + 2).copied().and_then(hex)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Normalises a path (RFC 3986 §6.2.2): decodes percent-encoded unreserved characters, upper-cases
/// the other escapes, merges repeated slashes and removes dot segments (never above the root).
pub fn normalize_path(path: &str, opts: PathOptions) -> Result<String, PathError> {
    if is_normal(path.as_bytes()) {
        return Ok(path.to_owned());
    }
    normalize_changed(path, opts)
}

/// Whether a path is already in the form [`normalize_path`] gives, so that it would come back
/// unchanged: absolute, no escape, nothing it refuses, no empty segment but a last one (a trailing
/// slash), no `.` or `..` segment. What clients send is nearly always this; it then costs one
/// scan and one copy instead of decoding, splitting and joining.
fn is_normal(bytes: &[u8]) -> bool {
    let Some((b'/', rest)) = bytes.split_first() else {
        return false;
    };
    if rest
        .iter()
        .any(|&b| b <= 0x20 || b >= 0x7f || b == b'\\' || b == b'%')
    {
        return false;
    }
    let mut segments = rest.split(|&b| b == b'/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        if (seg.is_empty() && !last) || seg == b"." || seg == b".." {
            return false;
        }
    }
    true
}

fn normalize_changed(path: &str, opts: PathOptions) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // Pass 1: percent-decoding and character checks.
    let mut decoded = String::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes
                .get(i + 1)
                .copied()
                .and_then(hex)
                .ok_or(PathError::BadEncoding)?;
            let lo = bytes
                .get(i + 2)
                .copied()
                .and_then(hex)
                .ok_or(PathError::BadEncoding)?;
            let c = hi << 4 | lo;
            if is_unreserved(c) {
                decoded.push(char::from(c));
            } else if (c == b'/' || c == b'\\') && !opts.allow_encoded_slashes {
                return Err(PathError::EncodedSeparator);
            } else {
                decoded.push('%');
                decoded.push(char::from(
                    b"0123456789ABCDEF"
                        .get(usize::from(hi))
                        .copied()
                        .unwrap_or(b'0'),
                ));
                decoded.push(char::from(
                    b"0123456789ABCDEF"
                        .get(usize::from(lo))
                        .copied()
                        .unwrap_or(b'0'),
                ));
            }
            i += 3;
            continue;
        }
        if b <= 0x20 || b >= 0x7f || b == b'\\' {
            return Err(PathError::BadCharacter);
        }
        decoded.push(char::from(b));
        i += 1;
    }
    // Pass 2: segments. Empty segments (repeated slashes) are merged; `.` and `..` removed.
    let mut out: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for seg in decoded.split('/').skip(1) {
        match seg {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                out.pop();
                trailing_slash = true;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut result = String::with_capacity(decoded.len());
    for seg in &out {
        result.push('/');
        result.push_str(seg);
    }
    if trailing_slash || result.is_empty() {
        result.push('/');
    }
    Ok(result)
}

/// The `match` object of every filter's rules, as written in configuration.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouteMatchConfig {
    pub path: Option<String>,
    pub prefix: Option<String>,
    pub template: Option<String>,
    #[serde(default)]
    pub methods: Vec<String>,
}

impl RouteMatchConfig {
    /// A rule's `match`, read by hand ([`crate::json_config`]); the serde derive serves the filters that do not read their configuration that way yet, and a test keeps the two in agreement.
    pub fn from_json(v: &serde_json::Value) -> Result<RouteMatchConfig, crate::ConfigError> {
        use crate::json_config::{object, string, strings};
        let o = object(v, &["path", "prefix", "template", "methods"])?;
        Ok(RouteMatchConfig {
            path: o.optional("path", string)?,
            prefix: o.optional("prefix", string)?,
            template: o.optional("template", string)?,
            methods: o.or("methods", Vec::new(), strings)?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*` or `{name}` / `{name=*}`: exactly one non-empty segment.
    One(Option<String>),
    /// `**` or `{name=**}`: zero or more segments; only last.
    Rest(Option<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PathPattern {
    Exact(String),
    Prefix(String),
    Template(Vec<Segment>),
}

/// A compiled `match`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteMatch {
    pattern: PathPattern,
    methods: Vec<String>,
}

/// Captured template parameters, in template order.
pub type Params = Vec<(String, String)>;

impl RouteMatch {
    /// Compiles and validates a `match`; errors name the field (`template`, `methods[1]`).
    pub fn compile(cfg: &RouteMatchConfig) -> Result<RouteMatch, ConfigError> {
        let given = [
            cfg.path.is_some(),
            cfg.prefix.is_some(),
            cfg.template.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(ConfigError::new(
                "",
                "exactly one of `path`, `prefix` or `template` is required",
            ));
        }
        let pattern = if let Some(p) = &cfg.path {
            PathPattern::Exact(normalize_config_path(p).map_err(|r| ConfigError::new("path", r))?)
        } else if let Some(p) = &cfg.prefix {
            if !p.starts_with('/') {
                return Err(ConfigError::new("prefix", "must start with `/`"));
            }
            PathPattern::Prefix(p.clone())
        } else {
            let t = cfg.template.as_deref().unwrap_or_default();
            PathPattern::Template(compile_template(t).map_err(|r| ConfigError::new("template", r))?)
        };
        let mut methods = Vec::with_capacity(cfg.methods.len());
        for (i, m) in cfg.methods.iter().enumerate() {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(ConfigError::new(
                    format!("methods[{i}]"),
                    "not an HTTP method",
                ));
            }
            methods.push(m.to_ascii_uppercase());
        }
        Ok(RouteMatch { pattern, methods })
    }

    /// Matches everything (for filters whose rules may omit `match`).
    pub fn any() -> RouteMatch {
        RouteMatch {
            pattern: PathPattern::Prefix("/".into()),
            methods: Vec::new(),
        }
    }

    /// `Some(params)` when the request matches (params empty unless the template captures).
    pub fn matches(&self, req: &RequestLine) -> Option<Params> {
        if !self.methods.is_empty() && !self.methods.contains(&req.method) {
            return None;
        }
        match &self.pattern {
            PathPattern::Exact(p) => (req.path == *p).then(Vec::new),
            PathPattern::Prefix(p) => {
                // `/admin/` also covers `/admin`: otherwise the bare path would slip past the rule.
                let bare = p.len() > 1 && p.ends_with('/') && req.path == p[..p.len() - 1];
                (req.path.starts_with(p.as_str()) || bare).then(Vec::new)
            }
            PathPattern::Template(segs) => match_template(segs, &req.path),
        }
    }
}

fn normalize_config_path(p: &str) -> Result<String, String> {
    let n = normalize_path(p, PathOptions::default()).map_err(|e| e.description().to_string())?;
    if n != p {
        return Err(format!(
            "not a normalised path (it would never match; use `{n}`)"
        ));
    }
    Ok(n)
}

fn compile_template(t: &str) -> Result<Vec<Segment>, String> {
    let rest = t.strip_prefix('/').ok_or("must start with `/`")?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let mut names: Vec<&str> = Vec::new();
    let mut segs = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let seg = match *part {
            "" => return Err("empty segment".into()),
            "*" => Segment::One(None),
            "**" => Segment::Rest(None),
            p if p.starts_with('{') && p.ends_with('}') => {
                let inner = &p[1..p.len() - 1];
                let (name, op) = inner.split_once('=').unwrap_or((inner, "*"));
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(format!("bad variable name in `{p}`"));
                }
                if names.contains(&name) {
                    return Err(format!("variable `{name}` appears twice"));
                }
                names.push(name);
                match op {
                    "*" => Segment::One(Some(name.to_string())),
                    "**" => Segment::Rest(Some(name.to_string())),
                    _ => return Err(format!("unsupported operator in `{p}` (use `*` or `**`)")),
                }
            }
            p if p.contains(['{', '}', '*']) => {
                return Err(format!(
                    "segment `{p}` mixes text with a variable or wildcard"
                ));
            }
            p => Segment::Literal(
                normalize_config_path(&format!("/{p}"))
                    .map_err(|e| format!("segment `{p}`: {e}"))?[1..]
                    .to_string(),
            ),
        };
        if matches!(seg, Segment::Rest(_)) && !last {
            return Err("`**` must be the last segment".into());
        }
        segs.push(seg);
    }
    Ok(segs)
}

fn match_template(segs: &[Segment], path: &str) -> Option<Params> {
    let body = path.strip_prefix('/')?;
    let parts: Vec<&str> = if body.is_empty() {
        Vec::new()
    } else {
        body.split('/').collect()
    };
    let mut params = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        match seg {
            Segment::Rest(name) => {
                let rest = parts.get(i..).unwrap_or_default().join("/");
                if let Some(n) = name {
                    params.push((n.clone(), rest));
                }
                return Some(params);
            }
            Segment::Literal(l) => {
                if parts.get(i) != Some(&l.as_str()) {
                    return None;
                }
            }
            Segment::One(name) => {
                let p = parts.get(i).filter(|p| !p.is_empty())?;
                if let Some(n) = name {
                    params.push((n.clone(), (*p).to_string()));
                }
            }
        }
    }
    (parts.len() == segs.len()).then_some(params)
}

/// Replaces `{name}` in `text` with the captured parameter; `None` if a name was not captured.
pub fn expand_params(text: &str, params: &Params) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find('}')?;
        let name = &after[..end];
        let value = params.iter().find(|(k, _)| k == name).map(|(_, v)| v)?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalize_path(p, PathOptions::default())
    }

    fn m(json: &str) -> RouteMatch {
        RouteMatch::compile(&serde_json::from_str(json).unwrap()).unwrap()
    }

    fn req(method: &str, path: &str) -> RequestLine {
        RequestLine::parse(method, path, PathOptions::default()).unwrap()
    }

    #[test]
    fn normalisation() {
        assert_eq!(norm("/").unwrap(), "/");
        assert_eq!(
            norm("//tenants/a//orders/1").unwrap(),
            "/tenants/a/orders/1"
        );
        assert_eq!(
            norm("/tenants/a/./orders/1").unwrap(),
            "/tenants/a/orders/1"
        );
        assert_eq!(
            norm("/tenants/b/../a/orders/1").unwrap(),
            "/tenants/a/orders/1"
        );
        assert_eq!(norm("/../../etc/passwd").unwrap(), "/etc/passwd");
        assert_eq!(norm("/a/b/..").unwrap(), "/a/");
        assert_eq!(norm("/a/b/.").unwrap(), "/a/b/");
        assert_eq!(norm("/a/").unwrap(), "/a/");
        assert_eq!(norm("/%74enants/%2e%2e/x").unwrap(), "/x");
        assert_eq!(norm("/a%20b").unwrap(), "/a%20b");
        assert_eq!(norm("/a%2a").unwrap(), "/a%2A");
        assert_eq!(norm("/a/.../b").unwrap(), "/a/.../b");
    }

    /// The shortcut for paths already normal gives what the full normalisation gives, for every
    /// path of up to five characters over an alphabet of the characters that matter.
    #[test]
    fn the_shortcut_agrees_with_the_full_normalisation() {
        let alphabet = ["/", ".", "a", "%", "2", "e", "\\", " ", "~"];
        let mut paths = vec![String::new()];
        let mut all = Vec::new();
        for _ in 0..5 {
            paths = paths
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            all.extend(paths.iter().cloned());
        }
        let mut normal = 0;
        for opts in [false, true].map(|allow_encoded_slashes| PathOptions {
            allow_encoded_slashes,
        }) {
            for p in &all {
                let full = normalize_changed(p, opts);
                assert_eq!(normalize_path(p, opts), full, "{p:?}");
                if is_normal(p.as_bytes()) {
                    normal += 1;
                    assert_eq!(full.as_deref(), Ok(p.as_str()), "{p:?}");
                }
            }
        }
        assert!(normal > 1000, "{normal}");
    }

    #[test]
    fn bad_paths_are_refused() {
        assert_eq!(norm("/a%2Fb"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a%2fb"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a%5cb"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a\\b"), Err(PathError::BadCharacter));
        assert_eq!(norm("/a b"), Err(PathError::BadCharacter));
        assert_eq!(norm("/a\u{7f}"), Err(PathError::BadCharacter));
        assert_eq!(norm("/é"), Err(PathError::BadCharacter));
        assert_eq!(norm("/a%zz"), Err(PathError::BadEncoding));
        assert_eq!(norm("/a%4"), Err(PathError::BadEncoding));
        assert_eq!(norm("a/b"), Err(PathError::NotAbsolute));
        assert_eq!(norm(""), Err(PathError::NotAbsolute));
        assert_eq!(
            normalize_path(
                "/a%2Fb",
                PathOptions {
                    allow_encoded_slashes: true
                }
            )
            .unwrap(),
            "/a%2Fb"
        );
    }

    #[test]
    fn query_and_fragment() {
        let r = req(
            "get",
            "/a/../b?access_token=x%2By&x=1&access_token=two#frag",
        );
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/b");
        assert_eq!(r.query_param("access_token").as_deref(), Some("x+y"));
        assert_eq!(r.query_params("access_token").len(), 2);
        assert_eq!(r.query_param("missing"), None);
    }

    #[test]
    fn query_pairs_in_order_decoded() {
        let r = req("GET", "/a?x=1&y=a%20b&x=2&flag&&bad=%zz&z=c+d");
        assert_eq!(
            r.query_pairs(),
            vec![
                ("x".to_string(), "1".to_string()),
                ("y".to_string(), "a b".to_string()),
                ("x".to_string(), "2".to_string()),
                ("flag".to_string(), String::new()),
                ("z".to_string(), "c d".to_string()),
            ]
        );
        assert!(req("GET", "/a").query_pairs().is_empty());
    }

    #[test]
    fn exact_prefix_methods() {
        let healthz = m(r#"{"path": "/healthz"}"#);
        assert!(healthz.matches(&req("GET", "/healthz")).is_some());
        assert!(healthz.matches(&req("GET", "//healthz/.")).is_none());
        assert!(healthz.matches(&req("GET", "/healthz/x/..")).is_none());
        let admin = m(r#"{"prefix": "/admin/", "methods": ["get", "POST"]}"#);
        assert!(admin.matches(&req("GET", "/admin/users")).is_some());
        assert!(
            admin.matches(&req("GET", "/admin")).is_some(),
            "the bare prefix is covered"
        );
        assert!(admin.matches(&req("GET", "/x/../admin/users")).is_some());
        assert!(admin.matches(&req("DELETE", "/admin/users")).is_none());
        assert!(admin.matches(&req("GET", "/administrator")).is_none());
    }

    #[test]
    fn templates() {
        let t = m(r#"{"template": "/tenants/{tenant}/orders/{id}"}"#);
        assert_eq!(
            t.matches(&req("GET", "/tenants/a/orders/1")).unwrap(),
            vec![("tenant".into(), "a".into()), ("id".into(), "1".into())]
        );
        assert_eq!(
            t.matches(&req("GET", "/tenants/b/../a/orders/1")).unwrap()[0].1,
            "a"
        );
        assert!(
            t.matches(&req("GET", "/TENANTS/a/orders/1")).is_none(),
            "paths are case-sensitive"
        );
        assert!(t.matches(&req("GET", "/tenants/a/orders/1/")).is_none());
        assert!(t.matches(&req("GET", "/tenants/a/orders")).is_none());
        assert!(t.matches(&req("GET", "/tenants/a/orders/1/x")).is_none());

        let rest = m(r#"{"template": "/tenants/{tenant}/orders/**"}"#);
        assert!(rest.matches(&req("POST", "/tenants/a/orders")).is_some());
        assert!(rest
            .matches(&req("POST", "/tenants/a/orders/1/items/2"))
            .is_some());
        let star = m(r#"{"template": "/v1/*/items/{path=**}"}"#);
        assert_eq!(
            star.matches(&req("GET", "/v1/x/items/a/b")).unwrap(),
            vec![("path".into(), "a/b".into())]
        );
        assert!(star.matches(&req("GET", "/v1/items/a")).is_none());
        let root = m(r#"{"template": "/"}"#);
        assert!(root.matches(&req("GET", "/")).is_some());
        assert!(root.matches(&req("GET", "/a")).is_none());
    }

    #[test]
    fn bad_matches_are_refused_with_the_field() {
        let bad =
            |json: &str| RouteMatch::compile(&serde_json::from_str(json).unwrap()).unwrap_err();
        assert_eq!(bad(r#"{}"#).path, "");
        assert_eq!(bad(r#"{"path": "/a", "prefix": "/"}"#).path, "");
        assert_eq!(bad(r#"{"prefix": "a"}"#).path, "prefix");
        assert_eq!(bad(r#"{"path": "/a/../b"}"#).path, "path");
        assert_eq!(bad(r#"{"template": "/a/**/b"}"#).path, "template");
        assert_eq!(bad(r#"{"template": "/a/{x}/{x}"}"#).path, "template");
        assert_eq!(bad(r#"{"template": "/a/x{y}"}"#).path, "template");
        assert_eq!(bad(r#"{"template": "/a/{y=x}"}"#).path, "template");
        assert_eq!(bad(r#"{"template": "/a//b"}"#).path, "template");
        assert_eq!(
            bad(r#"{"prefix": "/", "methods": ["GET", "G T"]}"#).path,
            "methods[1]"
        );
        assert!(serde_json::from_str::<RouteMatchConfig>(r#"{"regex": "x"}"#).is_err());
    }

    #[test]
    fn expand() {
        let p = vec![("tenant".to_string(), "a".to_string())];
        assert_eq!(expand_params("{tenant}", &p).as_deref(), Some("a"));
        assert_eq!(expand_params("t-{tenant}-x", &p).as_deref(), Some("t-a-x"));
        assert_eq!(expand_params("{other}", &p), None);
        assert_eq!(expand_params("{tenant", &p), None);
    }
}
