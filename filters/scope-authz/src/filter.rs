//! The stream glue of scope-authz: reads the request line and the identity context, asks the
//! policy, then lets the request through (with the path the rules decided on) or replies.

use std::cell::RefCell;
use std::rc::Rc;

use shieldwall_core::decision::Decision as Recorded;
use shieldwall_core::metrics::Metrics;
use shieldwall_core::{
    Action, ConfigError, Host, LogLevel, Reply, RequestLine, RootFilter, StreamFilter,
};

use crate::config::{Config, KNOWN_OVERRIDE_HEADERS};
use crate::policy::{decide, Allowed, Decision, Denial};

/// Longest path written into a log line.
const MAX_LOGGED_PATH: usize = 256;

/// The root context: the parsed configuration and the worker's metric ids.
pub struct ScopeAuthz {
    config: Rc<Config>,
    metrics: Rc<RefCell<Metrics>>,
}

impl RootFilter for ScopeAuthz {
    type Stream = ScopeAuthzStream;
    const NAME: &'static str = "scope_authz";

    fn configure(host: &mut dyn Host, config: &[u8]) -> Result<Self, ConfigError> {
        let config = Config::parse(config)?;
        let h: &dyn Host = host;
        h.info(&format!(
            "scope-authz: {} rules, default {}, {}",
            config.rules.len(),
            match config.default {
                crate::config::DefaultAction::Deny => "deny",
                crate::config::DefaultAction::Allow => "allow",
            },
            if config.shadow {
                "shadow mode (nothing is refused)"
            } else {
                "enforcing"
            }
        ));
        Ok(ScopeAuthz {
            config: Rc::new(config),
            metrics: Rc::new(RefCell::new(Metrics::new(Self::NAME))),
        })
    }

    fn new_stream(&mut self, _host: &mut dyn Host, _context_id: u32) -> ScopeAuthzStream {
        ScopeAuthzStream {
            config: self.config.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

pub struct ScopeAuthzStream {
    config: Rc<Config>,
    metrics: Rc<RefCell<Metrics>>,
}

/// A refusal before any rule was tried: the request itself cannot be decided on.
struct BadRequest {
    code: &'static str,
    description: &'static str,
}

fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_LOGGED_PATH)
        .collect()
}

impl ScopeAuthzStream {
    fn count(&self, host: &mut dyn Host, event: &str) {
        if let Ok(mut m) = self.metrics.try_borrow_mut() {
            m.inc(host, event);
        }
    }

    /// The method-override value the upstream would honour, if one is configured and present.
    fn method_override(&self, host: &dyn Host) -> Result<Option<String>, BadRequest> {
        let Some(name) = &self.config.method_override_header else {
            return Ok(None);
        };
        let values: Vec<String> = host
            .request_headers()
            .into_iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect();
        let bad = BadRequest {
            code: "invalid_method_override",
            description: "the method override header is not a single HTTP method",
        };
        match values.as_slice() {
            [] => Ok(None),
            [one] => {
                let m = one.trim();
                if m.is_empty() || m.len() > 32 || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(bad);
                }
                Ok(Some(m.to_ascii_uppercase()))
            }
            _ => Err(bad),
        }
    }

    /// Refuses (or, in shadow mode, logs and lets through) a request that cannot be decided on.
    fn bad_request(&self, host: &mut dyn Host, bad: BadRequest) -> Action {
        if self.config.shadow {
            host.record_decision(&Recorded::shadow_deny(bad.code, 400));
            self.count(host, &format!("shadow.denied.{}", bad.code));
            (host as &dyn Host).info(&format!(
                "scope-authz: shadow: would refuse with 400 ({})",
                bad.code
            ));
            return Action::Continue;
        }
        self.count(host, &format!("denied.{}", bad.code));
        (host as &dyn Host).info(&format!("scope-authz: refused with 400 ({})", bad.code));
        Reply::bad_request(bad.code, bad.description).send(host);
        Action::Pause
    }

    fn reply_for(&self, denial: &Denial) -> Reply {
        let realm = &self.config.realm;
        match denial {
            Denial::MissingIdentity => {
                Reply::missing_credential(realm, "this route needs an authenticated caller")
            }
            Denial::InsufficientScope(scopes) => Reply::insufficient_scope(
                realm,
                scopes,
                "the access token does not have the scope this route needs",
            ),
            Denial::MissingCertificate => {
                Reply::forbidden("access_denied", "this route needs a client certificate")
            }
            Denial::TenantMismatch | Denial::ClaimMismatch(_) | Denial::PrincipalNotAllowed => {
                Reply::forbidden("access_denied", "the caller may not access this resource")
            }
            Denial::NoMatchingRule => Reply::forbidden(
                "no_matching_rule",
                "no rule of the gateway allows this request",
            ),
        }
    }

    fn decide(&self, host: &mut dyn Host) -> Action {
        let config = self.config.clone();
        let line = match RequestLine::from_host(host, config.path) {
            Ok(line) => line,
            Err(e) => {
                return self.bad_request(
                    host,
                    BadRequest {
                        code: e.code(),
                        description: e.description(),
                    },
                )
            }
        };
        let overridden = match self.method_override(host) {
            Ok(m) => m.filter(|m| *m != line.method),
            Err(bad) => return self.bad_request(host, bad),
        };
        let identity = self.config.identity_from.read(host);

        // The upstream may run either method: both must be allowed.
        let mut outcome = decide(&config, &line.method, &line, identity.as_deref());
        let mut method = line.method.as_str();
        if let (Decision::Allow(_), Some(m)) = (&outcome.decision, &overridden) {
            let second = decide(&config, m, &line, identity.as_deref());
            if matches!(second.decision, Decision::Deny(_)) {
                outcome = second;
                method = m;
            }
        }
        let rule = match outcome.rule.and_then(|i| config.rules.get(i)) {
            Some(r) => r.label.as_str(),
            None => "default",
        };
        // The path as logged is made only for a message that is written.
        match &outcome.decision {
            Decision::Allow(how) => {
                self.count(host, allowed_event(*how));
                (host as &dyn Host).debug_with(|| {
                    let path = printable(&line.path);
                    format!("scope-authz: allowed {method} {path} by {rule}")
                });
                if !config.shadow {
                    self.prepare_upstream(host, &line);
                }
                Action::Continue
            }
            Decision::Deny(denial) => self.deny(host, denial, method, &printable(&line.path), rule),
        }
    }

    fn deny(
        &self,
        host: &mut dyn Host,
        denial: &Denial,
        method: &str,
        path: &str,
        rule: &str,
    ) -> Action {
        let detail = match denial {
            Denial::InsufficientScope(s) => format!(" (needs {})", s.join(" ")),
            Denial::ClaimMismatch(c) => format!(" (claim {c})"),
            _ => String::new(),
        };
        let reason = denial.reason();
        if self.config.shadow {
            let status = self.reply_for(denial).status;
            host.record_decision(&Recorded::shadow_deny(reason, status));
            self.count(host, &format!("shadow.denied.{reason}"));
            (host as &dyn Host).log(
                LogLevel::Info,
                &format!(
                    "scope-authz: shadow: would deny {method} {path} by {rule}: {reason}{detail}"
                ),
            );
            return Action::Continue;
        }
        self.count(host, &format!("denied.{reason}"));
        (host as &dyn Host).info(&format!(
            "scope-authz: denied {method} {path} by {rule}: {reason}{detail}"
        ));
        self.reply_for(denial).with_reason(reason).send(host);
        Action::Pause
    }

    /// What the upstream gets of an allowed request: the path the rules decided on, and no
    /// method override it could act on unless one is configured (and was therefore checked).
    fn prepare_upstream(&self, host: &mut dyn Host, line: &RequestLine) {
        let config = &self.config;
        for h in KNOWN_OVERRIDE_HEADERS {
            if config.method_override_header.as_deref() != Some(h) {
                host.set_request_header(h, None);
            }
        }
        if !config.rewrite_path {
            return;
        }
        let raw = host.request_header(":path").unwrap_or_default();
        let raw_path = raw.split(['?', '#']).next().unwrap_or("");
        if raw_path != line.path {
            let new = match &line.query {
                Some(q) => format!("{}?{q}", line.path),
                None => line.path.clone(),
            };
            host.set_request_header(":path", Some(&new));
            self.count(host, "path_rewritten");
        }
    }
}

fn allowed_event(how: Allowed) -> &'static str {
    match how {
        Allowed::Required => "allowed",
        Allowed::Public => "allowed.public",
        Allowed::Default => "allowed.default",
    }
}

impl StreamFilter for ScopeAuthzStream {
    fn on_request_headers(&mut self, host: &mut dyn Host, _end_of_stream: bool) -> Action {
        self.decide(host)
    }
}
