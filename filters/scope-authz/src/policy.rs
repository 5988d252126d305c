//! The decision, as a pure function of the rules, the request line and the identity.

use serde_json::{Map, Value};
use shieldwall_core::identity::scopes_from_claims;
use shieldwall_core::route::expand_params;
use shieldwall_core::{Identity, RequestLine};

use crate::config::{Access, ClaimRule, Config, DefaultAction, Require};

/// Why a request is refused. `reason()` is the code in logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// A non-public route and no identity context.
    MissingIdentity,
    /// A route that needs only an mTLS principal and no identity context: no client certificate.
    MissingCertificate,
    /// The identity lacks scopes; the scopes the route needs.
    InsufficientScope(Vec<String>),
    TenantMismatch,
    /// The claim whose value is not allowed (or missing).
    ClaimMismatch(String),
    PrincipalNotAllowed,
    NoMatchingRule,
}

impl Denial {
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::MissingIdentity => "missing_identity",
            Denial::MissingCertificate => "missing_client_certificate",
            Denial::InsufficientScope(_) => "insufficient_scope",
            Denial::TenantMismatch => "tenant_mismatch",
            Denial::ClaimMismatch(_) => "claim_mismatch",
            Denial::PrincipalNotAllowed => "principal_not_allowed",
            Denial::NoMatchingRule => "no_matching_rule",
        }
    }
}

/// How a request is allowed. `reason()` is the metric suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// A rule's requirements hold.
    Required,
    /// A public rule.
    Public,
    /// No rule matched and `default` is `allow`.
    Default,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow(Allowed),
    Deny(Denial),
}

/// A decision and the index of the rule that made it (`None`: the default did).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub rule: Option<usize>,
    pub decision: Decision,
}

/// Decides one method on the request's normalised path. The first rule whose match fits decides.
pub fn decide(
    config: &Config,
    method: &str,
    line: &RequestLine,
    identity: Option<&Identity>,
) -> Outcome {
    let probe;
    let line = if line.method == method {
        line
    } else {
        probe = RequestLine {
            method: method.to_string(),
            path: line.path.clone(),
            query: None,
        };
        &probe
    };
    for (i, rule) in config.rules.iter().enumerate() {
        let Some(params) = rule.route.matches(line) else {
            continue;
        };
        let decision = match &rule.access {
            Access::Public => Decision::Allow(Allowed::Public),
            Access::Require(req) => match check(req, &params, identity) {
                Ok(()) => Decision::Allow(Allowed::Required),
                Err(denial) => Decision::Deny(denial),
            },
        };
        return Outcome {
            rule: Some(i),
            decision,
        };
    }
    let decision = match config.default {
        DefaultAction::Allow => Decision::Allow(Allowed::Default),
        DefaultAction::Deny => Decision::Deny(Denial::NoMatchingRule),
    };
    Outcome {
        rule: None,
        decision,
    }
}

/// Every requirement given must hold, checked in the documented order.
pub fn check(
    req: &Require,
    params: &[(String, String)],
    identity: Option<&Identity>,
) -> Result<(), Denial> {
    let Some(id) = identity else {
        // Only a client certificate could satisfy this route: a Bearer challenge would mislead.
        let principals_only = !req.principals.is_empty()
            && req.scopes.is_empty()
            && req.any_scopes.is_empty()
            && req.tenant.is_none()
            && req.claims.is_empty();
        return Err(if principals_only {
            Denial::MissingCertificate
        } else {
            Denial::MissingIdentity
        });
    };
    let scopes_allow = |have: &[String]| {
        req.scopes.iter().all(|s| have.contains(s))
            && (req.any_scopes.is_empty() || req.any_scopes.iter().any(|s| have.contains(s)))
    };
    // The identity's own scopes usually answer, and then its raw claims are not read (reading
    // them parses them: bench/RESULTS.md, the three-module chain). More scopes can only allow
    // more, so the answer is the same.
    if (!req.scopes.is_empty() || !req.any_scopes.is_empty()) && !scopes_allow(&id.scopes) {
        let mut have = id.scopes.clone();
        // An authenticator that left `scopes` empty may still have passed the raw claims.
        for s in scopes_from_claims(&id.claims) {
            if !have.contains(&s) {
                have.push(s);
            }
        }
        if !req.scopes.iter().all(|s| have.contains(s)) {
            return Err(Denial::InsufficientScope(req.scopes.clone()));
        }
        if !req.any_scopes.is_empty() && !req.any_scopes.iter().any(|s| have.contains(s)) {
            return Err(Denial::InsufficientScope(req.any_scopes.clone()));
        }
    }
    if let Some(template) = &req.tenant {
        let params = params.to_vec();
        let expected = expand_params(template, &params).filter(|t| !t.is_empty());
        match (expected, id.tenant.as_deref()) {
            (Some(want), Some(have)) if want == have => {}
            _ => return Err(Denial::TenantMismatch),
        }
    }
    for c in &req.claims {
        if !claim_allowed(&id.claims, c) {
            return Err(Denial::ClaimMismatch(c.claim.clone()));
        }
    }
    if !req.principals.is_empty() {
        let ok = id
            .spiffe_id
            .as_deref()
            .is_some_and(|sid| req.principals.iter().any(|p| p.allows(sid)));
        if !ok {
            return Err(Denial::PrincipalNotAllowed);
        }
    }
    Ok(())
}

/// A claim by its full name (namespaced claims such as `https://example.com/roles` hold dots),
/// else by a dotted path into nested objects.
pub fn claim_at<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

fn claim_allowed(claims: &Map<String, Value>, rule: &ClaimRule) -> bool {
    match claim_at(claims, &rule.claim) {
        Some(Value::Array(items)) => items.iter().any(|v| rule.allowed.contains(v)),
        Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
            rule.allowed.contains(v)
        }
        _ => false,
    }
}
