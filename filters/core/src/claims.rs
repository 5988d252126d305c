//! Validation of the registered claims (RFC 7519 §4.1) of a verified token or of an
//! introspection answer (RFC 7662 §2.2 uses the same names and types).
//!
//! A claim of the wrong type is a failure, never a skipped check: `"exp": "never"` must not make
//! a token immortal. Times are JSON numbers (integers or fractions); arithmetic saturates, so
//! huge or negative values cannot wrap. Fractions are rounded towards refusal: `exp` down,
//! `nbf` and `iat` up.

use std::fmt;

use serde_json::{Map, Number, Value};

/// What the claims must satisfy.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRules<'a> {
    /// Required exact value of `iss`; `None`: `iss` is not required (its type still is checked).
    pub issuer: Option<&'a str>,
    /// Accepted audiences; the token's `aud` must name at least one. Empty: `aud` not checked
    /// (its type still is, when present).
    pub audiences: &'a [String],
    /// Current time, seconds since the Unix epoch.
    pub now_s: u64,
    /// Tolerated clock difference, seconds.
    pub skew_s: u64,
    /// Refuse tokens without `exp`.
    pub require_exp: bool,
}

/// Why the claims were refused. [`ClaimError::code`] is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimError {
    BadIssuer,
    BadAudience,
    Expired,
    /// `nbf` is in the future, or `iat` is further in the future than the skew allows.
    NotYetValid,
    /// A registered claim has the wrong JSON type.
    BadClaimType,
    MissingExp,
}

impl ClaimError {
    pub fn code(self) -> &'static str {
        match self {
            ClaimError::BadIssuer => "bad_issuer",
            ClaimError::BadAudience => "bad_audience",
            ClaimError::Expired => "expired",
            ClaimError::NotYetValid => "not_yet_valid",
            ClaimError::BadClaimType => "bad_claim_type",
            ClaimError::MissingExp => "missing_exp",
        }
    }
}

impl fmt::Display for ClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for ClaimError {}

#[derive(Clone, Copy)]
enum Round {
    Down,
    Up,
}

/// A NumericDate as whole seconds, saturated into `0..=u64::MAX`.
fn seconds(n: &Number, round: Round) -> u64 {
    if let Some(v) = n.as_u64() {
        return v;
    }
    if n.as_i64().is_some() {
        // Only negative integers reach here.
        return 0;
    }
    let f = n.as_f64().unwrap_or(0.0);
    let f = match round {
        Round::Down => f.floor(),
        Round::Up => f.ceil(),
    };
    // `as` saturates for floats (and maps NaN to 0, which JSON cannot carry anyway).
    f as u64
}

fn time_claim(
    claims: &Map<String, Value>,
    name: &str,
    round: Round,
) -> Result<Option<u64>, ClaimError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(Some(seconds(n, round))),
        Some(_) => Err(ClaimError::BadClaimType),
    }
}

/// Checks `iss`, `aud`, `exp`, `nbf` and `iat` against `rules`.
pub fn validate(claims: &Map<String, Value>, rules: &ClaimRules<'_>) -> Result<(), ClaimError> {
    match (claims.get("iss"), rules.issuer) {
        (Some(Value::String(_)) | None, None) => {}
        (Some(Value::String(iss)), Some(want)) if iss == want => {}
        (Some(Value::String(_)) | None, Some(_)) => return Err(ClaimError::BadIssuer),
        (Some(_), _) => return Err(ClaimError::BadClaimType),
    }

    let audience_ok = match claims.get("aud") {
        None => false,
        Some(Value::String(aud)) => rules.audiences.contains(aud),
        Some(Value::Array(items)) => {
            let mut any = false;
            for item in items {
                let Value::String(aud) = item else {
                    return Err(ClaimError::BadClaimType);
                };
                any |= rules.audiences.contains(aud);
            }
            any
        }
        Some(_) => return Err(ClaimError::BadClaimType),
    };
    if !rules.audiences.is_empty() && !audience_ok {
        return Err(ClaimError::BadAudience);
    }

    let exp = time_claim(claims, "exp", Round::Down)?;
    let nbf = time_claim(claims, "nbf", Round::Up)?;
    let iat = time_claim(claims, "iat", Round::Up)?;
    let earliest = rules.now_s.saturating_sub(rules.skew_s);
    let latest = rules.now_s.saturating_add(rules.skew_s);
    match exp {
        None if rules.require_exp => return Err(ClaimError::MissingExp),
        Some(exp) if exp <= earliest => return Err(ClaimError::Expired),
        _ => {}
    }
    if nbf.is_some_and(|nbf| nbf > latest) || iat.is_some_and(|iat| iat > latest) {
        return Err(ClaimError::NotYetValid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;
    const SKEW: u64 = 60;

    fn check_with(
        claims: Value,
        audiences: &[&str],
        require_exp: bool,
        now_s: u64,
    ) -> &'static str {
        let audiences: Vec<String> = audiences.iter().map(|s| s.to_string()).collect();
        let rules = ClaimRules {
            issuer: Some("https://idp.example"),
            audiences: &audiences,
            now_s,
            skew_s: SKEW,
            require_exp,
        };
        let Value::Object(map) = claims else {
            panic!("not an object")
        };
        match validate(&map, &rules) {
            Ok(()) => "ok",
            Err(e) => e.code(),
        }
    }

    fn check(extra: Value) -> &'static str {
        let mut claims = json!({"iss": "https://idp.example", "aud": "api", "exp": NOW + 600});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() && k.starts_with('-') {
                claims.as_object_mut().unwrap().remove(&k[1..]);
            } else {
                claims[k] = v.clone();
            }
        }
        check_with(claims, &["api", "other"], true, NOW)
    }

    #[test]
    fn a_good_token_passes() {
        assert_eq!(check(json!({})), "ok");
    }

    #[test]
    fn issuer() {
        assert_eq!(check(json!({"iss": "https://idp.example/"})), "bad_issuer");
        assert_eq!(check(json!({"iss": "HTTPS://IDP.EXAMPLE"})), "bad_issuer");
        assert_eq!(check(json!({"-iss": null})), "bad_issuer");
        assert_eq!(
            check(json!({"iss": ["https://idp.example"]})),
            "bad_claim_type"
        );
        assert_eq!(check(json!({"iss": null})), "bad_claim_type");
    }

    #[test]
    fn issuer_not_required_when_not_configured() {
        let audiences = vec!["api".to_string()];
        let rules = ClaimRules {
            issuer: None,
            audiences: &audiences,
            now_s: NOW,
            skew_s: SKEW,
            require_exp: false,
        };
        let ok = |v: Value| validate(v.as_object().unwrap(), &rules).map_err(|e| e.code());
        assert_eq!(ok(json!({"aud": "api"})), Ok(()));
        assert_eq!(ok(json!({"aud": "api", "iss": "https://any"})), Ok(()));
        assert_eq!(ok(json!({"aud": "api", "iss": 5})), Err("bad_claim_type"));
    }

    #[test]
    fn audience_forms() {
        assert_eq!(check(json!({"aud": "other"})), "ok");
        assert_eq!(check(json!({"aud": "nope"})), "bad_audience");
        assert_eq!(check(json!({"aud": ["x", "api"]})), "ok");
        assert_eq!(check(json!({"aud": ["x", "y"]})), "bad_audience");
        assert_eq!(check(json!({"aud": []})), "bad_audience");
        assert_eq!(check(json!({"-aud": null})), "bad_audience");
        assert_eq!(check(json!({"aud": ["api", 1]})), "bad_claim_type");
        assert_eq!(check(json!({"aud": 1})), "bad_claim_type");
        assert_eq!(check(json!({"aud": {"api": true}})), "bad_claim_type");
        assert_eq!(check(json!({"aud": "API"})), "bad_audience");
        // With no configured audience, aud is not required but its type is still checked.
        let base = json!({"iss": "https://idp.example", "exp": NOW + 600});
        assert_eq!(check_with(base.clone(), &[], true, NOW), "ok");
        let mut odd = base.clone();
        odd["aud"] = json!(false);
        assert_eq!(check_with(odd, &[], true, NOW), "bad_claim_type");
    }

    #[test]
    fn expiry_edges() {
        // Expired when exp <= now - skew.
        assert_eq!(check(json!({"exp": NOW - SKEW})), "expired");
        assert_eq!(check(json!({"exp": NOW - SKEW - 1})), "expired");
        assert_eq!(check(json!({"exp": NOW - SKEW + 1})), "ok");
        assert_eq!(check(json!({"exp": NOW})), "ok");
        // Fractions round towards refusal.
        assert_eq!(check(json!({"exp": (NOW - SKEW) as f64 + 0.5})), "expired");
        assert_eq!(check(json!({"exp": (NOW - SKEW) as f64 + 1.5})), "ok");
        assert_eq!(check(json!({"exp": 0})), "expired");
        assert_eq!(check(json!({"exp": -1})), "expired");
        assert_eq!(check(json!({"exp": i64::MIN})), "expired");
        assert_eq!(check(json!({"exp": -1.0e300})), "expired");
        assert_eq!(check(json!({"exp": u64::MAX})), "ok");
        assert_eq!(check(json!({"exp": 1.0e300})), "ok");
    }

    #[test]
    fn not_before_edges() {
        assert_eq!(check(json!({"nbf": NOW + SKEW})), "ok");
        assert_eq!(check(json!({"nbf": NOW + SKEW + 1})), "not_yet_valid");
        assert_eq!(check(json!({"nbf": NOW + SKEW - 1})), "ok");
        assert_eq!(
            check(json!({"nbf": (NOW + SKEW) as f64 + 0.25})),
            "not_yet_valid"
        );
        assert_eq!(check(json!({"nbf": (NOW + SKEW) as f64 - 0.25})), "ok");
        assert_eq!(check(json!({"nbf": -5})), "ok");
        assert_eq!(check(json!({"nbf": u64::MAX})), "not_yet_valid");
        assert_eq!(check(json!({"nbf": 1.0e300})), "not_yet_valid");
    }

    #[test]
    fn issued_at_edges() {
        assert_eq!(check(json!({"iat": NOW + SKEW})), "ok");
        assert_eq!(check(json!({"iat": NOW + SKEW + 1})), "not_yet_valid");
        assert_eq!(check(json!({"iat": 0})), "ok");
    }

    #[test]
    fn times_must_be_numbers() {
        for name in ["exp", "nbf", "iat"] {
            for bad in [
                json!("1700000000"),
                json!(null),
                json!(true),
                json!([1]),
                json!({}),
            ] {
                let mut extra = json!({});
                extra[name] = bad.clone();
                assert_eq!(check(extra), "bad_claim_type", "{name} = {bad}");
            }
        }
    }

    #[test]
    fn missing_exp() {
        assert_eq!(check(json!({"-exp": null})), "missing_exp");
        let no_exp = json!({"iss": "https://idp.example", "aud": "api"});
        assert_eq!(check_with(no_exp, &["api"], false, NOW), "ok");
    }

    #[test]
    fn saturating_near_zero_and_max() {
        // now < skew: now - skew saturates at 0; an exp of 1 is still valid, 0 is expired.
        let c = |exp: u64| json!({"iss": "https://idp.example", "aud": "api", "exp": exp});
        assert_eq!(check_with(c(1), &["api"], true, 10), "ok");
        assert_eq!(check_with(c(0), &["api"], true, 10), "expired");
        // now + skew saturates at u64::MAX.
        let far =
            json!({"iss": "https://idp.example", "aud": "api", "exp": u64::MAX, "nbf": u64::MAX});
        assert_eq!(check_with(far, &["api"], true, u64::MAX - 1), "ok");
    }
}
