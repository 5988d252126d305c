//! What the authenticating filters share beyond finding the credential (see [`crate::credential`]):
//! the rules and their `requires` trees, the identity a token's claims establish, the claim
//! headers they set upstream and the removal of a client's copies of them.
//!
//! A rule's `requires` names providers: `{"provider": NAME, "audiences": [..]}`, `{"any": [..]}`,
//! `{"all": [..]}` or `{"allow_missing": REQ}`. It is validated into a [`Requirement`] whose
//! providers are indexes, and evaluated by [`Requirement::evaluate`] over what the filter says of
//! one provider (a verified signature, an introspection answer, ...).

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::{ConfigError, Within};
use crate::host::Host;
use crate::identity::{scopes_from_claims, Identity};
use crate::reply::Reply;
use crate::route::{RequestLine, RouteMatch, RouteMatchConfig};

/// What a request that matches no rule gets: `deny` (401, the default) or `allow`.
#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    #[default]
    Deny,
    Allow,
}

impl Unmatched {
    /// `unmatched`, read by hand ([`crate::json_config`]); the serde derive serves the filters that do not read their configuration that way yet, and a test keeps the two in agreement.
    pub fn from_json(v: &serde_json::Value) -> Result<Unmatched, ConfigError> {
        crate::json_config::choice(v, &[("deny", Unmatched::Deny), ("allow", Unmatched::Allow)])
    }
}

/// One entry of `rules`: a route and what it requires (nothing: the route is public).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(rename = "match")]
    pub route: RouteMatchConfig,
    pub requires: Option<RequirementFile>,
}

/// `{"provider": NAME, "audiences": [..]}`, `{"any": [..]}`, `{"all": [..]}` or `{"allow_missing": REQ}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequirementFile {
    pub provider: Option<String>,
    pub audiences: Option<Vec<String>>,
    pub any: Option<Vec<RequirementFile>>,
    pub all: Option<Vec<RequirementFile>>,
    pub allow_missing: Option<Box<RequirementFile>>,
}

impl RuleFile {
    /// One entry of `rules`, read by hand ([`crate::json_config`]); the serde derive serves the filters that do not read their configuration that way yet, and a test keeps the two in agreement.
    pub fn from_json(v: &serde_json::Value) -> Result<RuleFile, ConfigError> {
        let o = crate::json_config::object(v, &["match", "requires"])?;
        Ok(RuleFile {
            route: o.need("match", RouteMatchConfig::from_json)?,
            requires: o.optional("requires", RequirementFile::from_json)?,
        })
    }
}

impl RequirementFile {
    /// A rule's `requires`, read by hand ([`crate::json_config`]); the serde derive serves the filters that do not read their configuration that way yet, and a test keeps the two in agreement.
    pub fn from_json(v: &serde_json::Value) -> Result<RequirementFile, ConfigError> {
        use crate::json_config::{array, object, string, strings};
        let o = object(v, &["provider", "audiences", "any", "all", "allow_missing"])?;
        Ok(RequirementFile {
            provider: o.optional("provider", string)?,
            audiences: o.optional("audiences", strings)?,
            any: o.optional("any", |v| array(v, RequirementFile::from_json))?,
            all: o.optional("all", |v| array(v, RequirementFile::from_json))?,
            allow_missing: o
                .optional("allow_missing", RequirementFile::from_json)?
                .map(Box::new),
        })
    }
}

/// A requirement with its providers resolved to indexes into the filter's provider list.
#[derive(Debug, Clone)]
pub enum Requirement {
    Provider {
        provider: usize,
        /// Replaces the provider's audiences for this rule.
        audiences: Option<Vec<String>>,
    },
    Any(Vec<Requirement>),
    All(Vec<Requirement>),
    AllowMissing(Box<Requirement>),
}

#[derive(Debug)]
pub struct Rule {
    pub route: RouteMatch,
    pub requires: Option<Requirement>,
}

/// What an authenticator's rules say of a request before any credential is looked at.
#[derive(Debug)]
pub enum RouteDecision<'a> {
    /// Let it through without a credential; the metric event says why (`allowed.public`,
    /// `allowed.unmatched`).
    Allow(&'static str),
    /// No rule matches and unmatched requests are denied: 403 `no_matching_rule`.
    Deny(Reply),
    /// The first matching rule's requirement: find and check the credential.
    Check(&'a Requirement),
}

/// The first rule whose route matches decides; no rule: `unmatched`.
pub fn route_decision<'a>(
    rules: &'a [Rule],
    unmatched: Unmatched,
    line: &RequestLine,
) -> RouteDecision<'a> {
    match rules.iter().find(|r| r.route.matches(line).is_some()) {
        None => match unmatched {
            Unmatched::Allow => RouteDecision::Allow("allowed.unmatched"),
            Unmatched::Deny => RouteDecision::Deny(Reply::forbidden(
                "no_matching_rule",
                "no rule of the gateway allows this request",
            )),
        },
        Some(Rule { requires: None, .. }) => RouteDecision::Allow("allowed.public"),
        Some(Rule {
            requires: Some(requirement),
            ..
        }) => RouteDecision::Check(requirement),
    }
}

/// The `realm` of `WWW-Authenticate` (default `shieldwall`): quoted in a header, so no quote,
/// backslash or control character.
pub fn realm(configured: Option<String>) -> Result<String, ConfigError> {
    let realm = configured.unwrap_or_else(|| "shieldwall".to_string());
    if realm.contains(|c: char| c == '"' || c == '\\' || c.is_control()) {
        return Err(ConfigError::new(
            "realm",
            "must not contain quotes, backslashes or control characters",
        ));
    }
    Ok(realm)
}

/// A key of `providers`: letters, digits, `-`, `_` and `.` (it appears in rules, logs and
/// metric names). The error's path is empty: the caller puts it under `providers.<name>`.
pub fn provider_name(name: &str) -> Result<(), ConfigError> {
    if !crate::config::is_plain_name(name, usize::MAX, b"-_.") {
        return Err(ConfigError::new(
            "",
            "a provider name may hold only letters, digits, `-`, `_` and `.`",
        ));
    }
    Ok(())
}

/// A provider's `audiences`: none of them empty.
pub fn audiences(audiences: &[String]) -> Result<(), ConfigError> {
    match audiences.iter().position(String::is_empty) {
        Some(i) => Err(ConfigError::new(
            format!("audiences[{i}]"),
            "must not be empty",
        )),
        None => Ok(()),
    }
}

/// A provider's claim settings: `clock_skew_s` at most an hour, a non-empty `tenant_claim`.
pub fn claim_settings(clock_skew_s: u64, tenant_claim: &str) -> Result<(), ConfigError> {
    if clock_skew_s > 3600 {
        return Err(ConfigError::new("clock_skew_s", "must be at most 3600"));
    }
    if tenant_claim.is_empty() {
        return Err(ConfigError::new("tenant_claim", "must not be empty"));
    }
    Ok(())
}

/// 400 `invalid_request` for a request that carries more than one credential (RFC 6750 §2: a
/// client uses exactly one method).
pub fn several_credentials(realm: &str) -> Reply {
    Reply::bad_request(
        "invalid_request",
        "the request carries more than one credential",
    )
    .with_header(
        "www-authenticate",
        format!("Bearer realm=\"{realm}\", error=\"invalid_request\""),
    )
}

/// Validates `rules`; provider names are looked up in `names` (their indexes are the providers'
/// indexes). Errors name the field (`rules[1].requires.any[0].provider`).
pub fn build_rules(files: Vec<RuleFile>, names: &[String]) -> Result<Vec<Rule>, ConfigError> {
    let mut rules = Vec::with_capacity(files.len());
    for (i, r) in files.into_iter().enumerate() {
        let at = format!("rules[{i}]");
        let route = RouteMatch::compile(&r.route).within(&format!("{at}.match"))?;
        let requires = match r.requires {
            Some(req) => Some(Requirement::build(req, names).within(&format!("{at}.requires"))?),
            None => None,
        };
        rules.push(Rule { route, requires });
    }
    Ok(rules)
}

/// The result of evaluating a requirement (or one provider) against the request's credential.
#[derive(Debug)]
pub enum Eval<T, W> {
    /// Satisfied; what each accepting provider established (none for `allow_missing` without a
    /// credential).
    Ok(Vec<T>),
    /// No credential for this requirement.
    Missing,
    /// A credential that fails; the stable code.
    Fail(&'static str),
    /// Not decided yet: the filter must wait for `W` (a key set, an answer of the IdP).
    Wait(W),
    /// The client's budget of failed verifications is spent: refused before any verification
    /// work; milliseconds until the budget allows one more. No other provider can help.
    Throttled(u64),
}

impl Requirement {
    /// Validates one `requires` tree.
    pub fn build(r: RequirementFile, names: &[String]) -> Result<Requirement, ConfigError> {
        let given = [
            r.provider.is_some(),
            r.any.is_some(),
            r.all.is_some(),
            r.allow_missing.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(ConfigError::new(
                "",
                "exactly one of `provider`, `any`, `all` or `allow_missing` is required",
            ));
        }
        if r.audiences.is_some() && r.provider.is_none() {
            return Err(ConfigError::new("audiences", "only goes with `provider`"));
        }
        if let Some(name) = r.provider {
            let provider = names.iter().position(|n| *n == name).ok_or_else(|| {
                ConfigError::new("provider", format!("no provider named `{name}`"))
            })?;
            if let Some(a) = &r.audiences {
                if a.is_empty() || a.iter().any(String::is_empty) {
                    return Err(ConfigError::new(
                        "audiences",
                        "must list non-empty audiences",
                    ));
                }
            }
            return Ok(Requirement::Provider {
                provider,
                audiences: r.audiences,
            });
        }
        let list = |items: Vec<RequirementFile>,
                    field: &str|
         -> Result<Vec<Requirement>, ConfigError> {
            if items.is_empty() {
                return Err(ConfigError::new(field, "must not be empty"));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| Requirement::build(item, names).within(&format!("{field}[{i}]")))
                .collect()
        };
        if let Some(items) = r.any {
            return Ok(Requirement::Any(list(items, "any")?));
        }
        if let Some(items) = r.all {
            return Ok(Requirement::All(list(items, "all")?));
        }
        match r.allow_missing {
            Some(inner) => Ok(Requirement::AllowMissing(Box::new(
                Requirement::build(*inner, names).within("allow_missing")?,
            ))),
            None => Err(ConfigError::new("", "empty requirement")),
        }
    }

    /// Evaluates the tree. `check(provider, audiences)` says what one provider makes of the
    /// request's credential (`audiences`: the rule's override, if any).
    ///
    /// `any`: the first satisfied item wins; else a wait, else the first failure, else missing.
    /// `all`: every item must be satisfied; the first that is not decides. `allow_missing`:
    /// satisfied without a credential. `Throttled` ends the evaluation wherever it occurs.
    pub fn evaluate<T, W, F>(&self, check: &mut F) -> Eval<T, W>
    where
        F: FnMut(usize, Option<&[String]>) -> Eval<T, W>,
    {
        match self {
            Requirement::Provider {
                provider,
                audiences,
            } => check(*provider, audiences.as_deref()),
            Requirement::Any(items) => {
                let mut first_fail = None;
                let mut wait = None;
                for item in items {
                    match item.evaluate(check) {
                        Eval::Ok(v) => return Eval::Ok(v),
                        // The budget is the client's, not a provider's: no other will do.
                        Eval::Throttled(ms) => return Eval::Throttled(ms),
                        Eval::Fail(code) => {
                            first_fail.get_or_insert(code);
                        }
                        Eval::Wait(w) => {
                            wait.get_or_insert(w);
                        }
                        Eval::Missing => {}
                    }
                }
                match (wait, first_fail) {
                    (Some(w), _) => Eval::Wait(w),
                    (None, Some(code)) => Eval::Fail(code),
                    (None, None) => Eval::Missing,
                }
            }
            Requirement::All(items) => {
                let mut all = Vec::new();
                for item in items {
                    match item.evaluate(check) {
                        Eval::Ok(v) => all.extend(v),
                        other => return other,
                    }
                }
                Eval::Ok(all)
            }
            Requirement::AllowMissing(inner) => match inner.evaluate(check) {
                Eval::Missing => Eval::Ok(Vec::new()),
                other => other,
            },
        }
    }
}

// ------------------------------------------------------------------ claims → identity

/// The identity context a token's claims establish: `sub`, `iss`, `aud`, `client_id` (else
/// `azp`), the scopes ([`scopes_from_claims`]), the tenant from `tenant_claim`, `exp` and every
/// claim. `auth` names the method (`jwt`, `introspection`).
pub fn identity_from_claims(
    claims: Map<String, Value>,
    auth: &str,
    tenant_claim: &str,
) -> Identity {
    let text = |name: &str| claims.get(name).and_then(header_value);
    let aud = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let exp = claims
        .get("exp")
        .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64)));
    Identity {
        sub: text("sub"),
        iss: text("iss"),
        aud,
        client_id: text("client_id").or_else(|| text("azp")),
        scopes: scopes_from_claims(&claims),
        tenant: text(tenant_claim),
        auth: vec![auth.to_string()],
        exp,
        claims: claims.into(),
        ..Default::default()
    }
}

// ------------------------------------------------------------------ claim headers

/// One entry of `claim_to_headers`: the claim (a dotted path into nested objects) whose value is
/// sent upstream in `header`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ClaimToHeader {
    pub claim: String,
    pub header: String,
}

impl ClaimToHeader {
    /// One entry of `claim_to_headers`, read by hand ([`crate::json_config`]); the serde derive serves the filters that do not read their configuration that way yet, and a test keeps the two in agreement.
    pub fn from_json(v: &serde_json::Value) -> Result<ClaimToHeader, ConfigError> {
        use crate::json_config::{object, string};
        let o = object(v, &["claim", "header"])?;
        Ok(ClaimToHeader {
            claim: o.need("claim", string)?,
            header: o.need("header", string)?,
        })
    }
}

/// Validates `claim_to_headers` (header names lowercased) and adds each header to `owned`, the
/// headers the filter sets upstream: a client's copies of them are removed from every request
/// ([`remove_owned_headers`]). Errors name the field (`claim_to_headers[0].header`).
pub fn claim_headers(
    files: Vec<ClaimToHeader>,
    owned: &mut Vec<String>,
) -> Result<Vec<ClaimToHeader>, ConfigError> {
    let mut claim_to_headers = Vec::with_capacity(files.len());
    for (i, c) in files.into_iter().enumerate() {
        let header = c.header.to_ascii_lowercase();
        if !usable_header_name(&header) || header == "authorization" {
            return Err(ConfigError::new(
                format!("claim_to_headers[{i}].header"),
                "not a usable header name",
            ));
        }
        if c.claim.is_empty() {
            return Err(ConfigError::new(
                format!("claim_to_headers[{i}].claim"),
                "must not be empty",
            ));
        }
        if !owned.contains(&header) {
            owned.push(header.clone());
        }
        claim_to_headers.push(ClaimToHeader {
            claim: c.claim,
            header,
        });
    }
    Ok(claim_to_headers)
}

/// A claim by dotted path: `sub`, `realm_access.tier` (each part an object key).
pub fn claim_at<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// A claim's value as header text: strings, numbers and booleans; never one holding a control
/// character (a verified token is still client-chosen text).
pub fn header_value(v: &Value) -> Option<String> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!text.chars().any(char::is_control)).then_some(text)
}

/// Sets the claim headers of an admitted request (a claim that is absent or not renderable sets
/// nothing: the client's copy was removed before).
pub fn set_claim_headers(
    host: &mut dyn Host,
    claims: &Map<String, Value>,
    claim_to_headers: &[ClaimToHeader],
) {
    for c in claim_to_headers {
        if let Some(value) = claim_at(claims, &c.claim).and_then(header_value) {
            host.set_request_header(&c.header, Some(&value));
        }
    }
}

/// Removes a client's copies of the headers the filter asserts upstream; run on every request
/// before anything else, so a client can never send what the filter sets.
pub fn remove_owned_headers(host: &mut dyn Host, owned: &[String]) {
    for h in owned {
        host.set_request_header(h, None);
    }
}

// ------------------------------------------------------------------ header names

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
    use serde_json::json;

    fn names() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn requirement(v: serde_json::Value) -> Result<Requirement, String> {
        let file: RequirementFile = serde_json::from_value(v).map_err(|e| e.to_string())?;
        Requirement::build(file, &names()).map_err(|e| e.to_string())
    }

    #[test]
    fn provider_checks_name_the_field() {
        assert!(provider_name("idp-1_a.b").is_ok());
        for bad in ["", "a b", "a/b"] {
            let e = provider_name(bad).unwrap_err();
            assert_eq!(
                (e.path.as_str(), e.reason.as_str()),
                (
                    "",
                    "a provider name may hold only letters, digits, `-`, `_` and `.`"
                )
            );
        }
        assert!(audiences(&["a".into(), "b".into()]).is_ok());
        let e = audiences(&["a".into(), String::new()]).unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.reason.as_str()),
            ("audiences[1]", "must not be empty")
        );
        assert!(claim_settings(3600, "tenant").is_ok());
        assert_eq!(
            claim_settings(3601, "tenant").unwrap_err().path,
            "clock_skew_s"
        );
        assert_eq!(claim_settings(0, "").unwrap_err().path, "tenant_claim");
    }

    #[test]
    fn requirements_resolve_provider_names() {
        let r = requirement(
            json!({"any": [{"provider": "b"}, {"all": [{"provider": "a", "audiences": ["x"]}]}]}),
        )
        .unwrap();
        let Requirement::Any(items) = r else {
            panic!("not any: {r:?}")
        };
        assert!(matches!(
            items[0],
            Requirement::Provider {
                provider: 1,
                audiences: None
            }
        ));
        let Requirement::All(inner) = &items[1] else {
            panic!("not all")
        };
        assert!(
            matches!(&inner[0], Requirement::Provider { provider: 0, audiences: Some(a) } if a == &["x"])
        );
    }

    #[test]
    fn requirement_errors_name_the_field() {
        let err = |v| requirement(v).unwrap_err();
        assert_eq!(
            err(json!({})),
            "configuration: exactly one of `provider`, `any`, `all` or `allow_missing` is required"
        );
        assert_eq!(
            err(json!({"provider": "a", "any": []})),
            "configuration: exactly one of `provider`, `any`, `all` or `allow_missing` is required"
        );
        assert_eq!(
            err(json!({"any": [{"provider": "nope"}]})),
            "any[0].provider: no provider named `nope`"
        );
        assert_eq!(
            err(json!({"all": [{"any": [{"allow_missing": {"provider": "c"}}]}]})),
            "all[0].any[0].allow_missing.provider: no provider named `c`"
        );
        assert_eq!(
            err(json!({"any": [], "audiences": ["x"]})),
            "audiences: only goes with `provider`"
        );
        assert_eq!(
            err(json!({"provider": "a", "audiences": []})),
            "audiences: must list non-empty audiences"
        );
        assert_eq!(
            err(json!({"provider": "a", "audiences": [""]})),
            "audiences: must list non-empty audiences"
        );
        assert_eq!(err(json!({"all": []})), "all: must not be empty");
        assert!(requirement(json!({"provider": "a", "colour": 1}))
            .unwrap_err()
            .contains("unknown field `colour`"));
    }

    #[test]
    fn rules_name_their_index() {
        let rules = |v: serde_json::Value| -> Result<Vec<Rule>, String> {
            let files: Vec<RuleFile> = serde_json::from_value(v).map_err(|e| e.to_string())?;
            build_rules(files, &names()).map_err(|e| e.to_string())
        };
        let ok = rules(json!([
            {"match": {"prefix": "/healthz"}},
            {"match": {"prefix": "/"}, "requires": {"provider": "a"}}
        ]))
        .unwrap();
        assert!(ok[0].requires.is_none());
        assert!(ok[1].requires.is_some());
        assert_eq!(
            rules(json!([{"match": {"prefix": "/"}}, {"match": {"prefix": "/"}, "requires": {"provider": "x"}}]))
                .unwrap_err(),
            "rules[1].requires.provider: no provider named `x`"
        );
        assert!(rules(json!([{"match": {"template": "/a/**/b"}}]))
            .unwrap_err()
            .starts_with("rules[0].match.template:"));
    }

    /// What each provider makes of the credential, for the evaluation tests.
    #[derive(Clone, Copy)]
    enum Says {
        Ok,
        Missing,
        Fail(&'static str),
        Wait,
        Throttled,
    }

    fn evaluate(r: serde_json::Value, a: Says, b: Says) -> Eval<usize, usize> {
        let r = requirement(r).unwrap();
        r.evaluate(
            &mut |p: usize, _: Option<&[String]>| match if p == 0 { a } else { b } {
                Says::Ok => Eval::Ok(vec![p]),
                Says::Missing => Eval::Missing,
                Says::Fail(code) => Eval::Fail(code),
                Says::Wait => Eval::Wait(p),
                Says::Throttled => Eval::Throttled(1500),
            },
        )
    }

    fn show(e: Eval<usize, usize>) -> String {
        match e {
            Eval::Ok(v) => format!("ok {v:?}"),
            Eval::Missing => "missing".into(),
            Eval::Fail(code) => format!("fail {code}"),
            Eval::Wait(w) => format!("wait {w}"),
            Eval::Throttled(ms) => format!("throttled {ms}"),
        }
    }

    #[test]
    fn evaluation_of_any_all_and_allow_missing() {
        use Says::*;
        let any = json!({"any": [{"provider": "a"}, {"provider": "b"}]});
        let all = json!({"all": [{"provider": "a"}, {"provider": "b"}]});
        let opt = json!({"allow_missing": {"provider": "a"}});
        let one = |r: &serde_json::Value, a, b| show(evaluate(r.clone(), a, b));
        assert_eq!(one(&any, Fail("x"), Ok), "ok [1]");
        assert_eq!(one(&any, Fail("x"), Fail("y")), "fail x");
        assert_eq!(
            one(&any, Fail("x"), Wait),
            "wait 1",
            "a wait beats a failure"
        );
        assert_eq!(one(&any, Missing, Missing), "missing");
        assert_eq!(one(&any, Missing, Fail("y")), "fail y");
        assert_eq!(one(&any, Throttled, Ok), "throttled 1500");
        assert_eq!(one(&all, Ok, Ok), "ok [0, 1]");
        assert_eq!(one(&all, Ok, Missing), "missing");
        assert_eq!(one(&all, Fail("x"), Ok), "fail x");
        assert_eq!(one(&all, Wait, Fail("y")), "wait 0");
        assert_eq!(one(&opt, Missing, Ok), "ok []");
        assert_eq!(one(&opt, Fail("x"), Ok), "fail x");
        assert_eq!(one(&opt, Ok, Ok), "ok [0]");
    }

    #[test]
    fn evaluation_passes_the_rules_audiences() {
        let r =
            requirement(json!({"all": [{"provider": "a", "audiences": ["x"]}, {"provider": "b"}]}))
                .unwrap();
        let mut seen = Vec::new();
        let _: Eval<(), ()> = r.evaluate(&mut |p, audiences: Option<&[String]>| {
            seen.push((p, audiences.map(<[String]>::to_vec)));
            Eval::Ok(Vec::new())
        });
        assert_eq!(seen, vec![(0, Some(vec!["x".to_string()])), (1, None)]);
    }

    #[test]
    fn identity_from_the_claims() {
        let claims = json!({
            "sub": "alice", "iss": "https://idp", "aud": ["api", 7, "other"], "azp": "web",
            "scope": "a b", "scp": ["c"], "org": "acme", "tenant": "ignored", "exp": 1700000000.9,
        });
        let claims = claims.as_object().unwrap();
        let id = identity_from_claims(claims.clone(), "introspection", "org");
        assert_eq!(id.sub.as_deref(), Some("alice"));
        assert_eq!(id.iss.as_deref(), Some("https://idp"));
        assert_eq!(id.aud, vec!["api", "other"]);
        assert_eq!(
            id.client_id.as_deref(),
            Some("web"),
            "azp without client_id"
        );
        assert_eq!(id.scopes, vec!["a", "b", "c"]);
        assert_eq!(id.tenant.as_deref(), Some("acme"));
        assert_eq!(id.auth, vec!["introspection"]);
        assert_eq!(id.exp, Some(1_700_000_000));
        assert_eq!(&*id.claims, claims);

        let claims = json!({"sub": "line\nbreak", "aud": "api", "client_id": "cli", "azp": "web",
            "tenant": 42, "exp": -5});
        let id = identity_from_claims(claims.as_object().unwrap().clone(), "jwt", "tenant");
        assert_eq!(id.sub, None, "control characters are never taken");
        assert_eq!(id.aud, vec!["api"]);
        assert_eq!(id.client_id.as_deref(), Some("cli"));
        assert_eq!(id.tenant.as_deref(), Some("42"));
        assert_eq!(id.auth, vec!["jwt"]);
        assert_eq!(id.exp, Some(0));
    }

    #[test]
    fn claim_values_as_headers() {
        let claims = json!({"sub": "a", "n": 5, "ok": true, "nested": {"tier": "gold", "deep": {"x": 1}},
            "list": ["a"], "obj": {}, "bad": "a\rb", "dotted.name": "d"});
        let claims = claims.as_object().unwrap();
        let at = |path: &str| claim_at(claims, path).and_then(header_value);
        assert_eq!(at("sub").as_deref(), Some("a"));
        assert_eq!(at("n").as_deref(), Some("5"));
        assert_eq!(at("ok").as_deref(), Some("true"));
        assert_eq!(at("nested.tier").as_deref(), Some("gold"));
        assert_eq!(at("nested.deep.x").as_deref(), Some("1"));
        assert_eq!(at("nested.none"), None);
        assert_eq!(at("sub.x"), None);
        assert_eq!(at("list"), None);
        assert_eq!(at("obj"), None);
        assert_eq!(at("bad"), None);
        assert_eq!(at("dotted.name"), None, "a path, not a claim name");
    }

    #[test]
    fn claim_headers_are_validated_and_owned() {
        let files = |pairs: &[(&str, &str)]| -> Vec<ClaimToHeader> {
            pairs
                .iter()
                .map(|(claim, header)| ClaimToHeader {
                    claim: claim.to_string(),
                    header: header.to_string(),
                })
                .collect()
        };
        let mut owned = vec!["x-payload".to_string()];
        let built = claim_headers(
            files(&[
                ("sub", "X-Sub"),
                ("nested.tier", "x-tier"),
                ("azp", "x-sub"),
            ]),
            &mut owned,
        )
        .unwrap();
        assert_eq!(owned, vec!["x-payload", "x-sub", "x-tier"]);
        assert_eq!(built[0].header, "x-sub");
        assert_eq!(built[1].claim, "nested.tier");
        let err = |pairs: &[(&str, &str)]| {
            claim_headers(files(pairs), &mut Vec::new())
                .unwrap_err()
                .to_string()
        };
        for header in [":path", "host", "authorization", "Authorization", "a b", ""] {
            assert_eq!(
                err(&[("sub", "x-ok"), ("sub", header)]),
                "claim_to_headers[1].header: not a usable header name",
                "{header}"
            );
        }
        assert_eq!(
            err(&[("", "x-sub")]),
            "claim_to_headers[0].claim: must not be empty"
        );
    }

    #[test]
    fn claim_headers_are_set_and_spoofed_copies_removed() {
        use crate::testing::MockHost;
        let mut host = MockHost::request(
            "GET",
            "/",
            &[
                ("x-sub", "mallory"),
                ("x-tier", "platinum"),
                ("x-other", "kept"),
            ],
        );
        let owned = vec!["x-sub".to_string(), "x-tier".to_string()];
        remove_owned_headers(&mut host, &owned);
        let h: &dyn Host = &host;
        assert_eq!(h.request_header("x-sub"), None);
        assert_eq!(h.request_header("x-tier"), None);
        assert_eq!(h.request_header("x-other").as_deref(), Some("kept"));
        let map = vec![
            ClaimToHeader {
                claim: "sub".into(),
                header: "x-sub".into(),
            },
            ClaimToHeader {
                claim: "tier".into(),
                header: "x-tier".into(),
            },
        ];
        let claims = json!({"sub": "alice", "tier": ["not", "a", "value"]});
        set_claim_headers(&mut host, claims.as_object().unwrap(), &map);
        let h: &dyn Host = &host;
        assert_eq!(h.request_header("x-sub").as_deref(), Some("alice"));
        assert_eq!(h.request_header("x-tier"), None);
    }

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
