//! The stream glue: the rule lookup, the input document, the body when the policy reads it, the
//! evaluation, and what follows from its answer (replies, metrics, logs, shadow mode, the
//! decision record, the path and headers handed upstream).

use std::cell::RefCell;
use std::rc::Rc;

use regorus::Value as RegoValue;
use shieldwall_core::decision::Decision;
use shieldwall_core::metrics::Metrics;
use shieldwall_core::route::Params;
use shieldwall_core::{
    Action, ConfigError, Host, LogLevel, Reply, RequestLine, RootFilter, StreamFilter,
};

use crate::config::{Access, Config, DefaultAction};
use crate::input;
use crate::policy::{Policies, PolicyError, Verdict};

/// Paths in log lines are cut at this many characters.
const MAX_LOGGED_PATH: usize = 256;
/// Distinct policy reason codes counted under their own metric per worker; later ones are
/// counted as `denied.other_reason`, so a policy cannot make the metric set grow without bound.
const MAX_REASON_METRICS: usize = 32;

/// One per worker: the configuration, the compiled policies and the metrics.
pub struct PolicyAuthz {
    config: Rc<Config>,
    policies: Rc<RefCell<Policies>>,
    metrics: Rc<RefCell<Metrics>>,
    reasons: Rc<RefCell<Vec<String>>>,
}

impl RootFilter for PolicyAuthz {
    type Stream = PolicyAuthzStream;
    const NAME: &'static str = "policy_authz";

    fn configure(host: &mut dyn Host, config: &[u8]) -> Result<Self, ConfigError> {
        let config = Config::parse(config)?;
        let policies = Policies::compile(&config)?;
        let h: &dyn Host = host;
        h.info(&format!(
            "policy-authz: {} policy modules, {} rules, default {}, budget {} ms, {}",
            config.policies.len(),
            config.rules.len(),
            match config.default {
                DefaultAction::Deny => "deny",
                DefaultAction::Allow => "allow",
            },
            config.eval_budget_ms,
            if config.shadow {
                "shadow mode (nothing is refused)"
            } else {
                "enforcing"
            }
        ));
        Ok(PolicyAuthz {
            config: Rc::new(config),
            policies: Rc::new(RefCell::new(policies)),
            metrics: Rc::new(RefCell::new(Metrics::new(Self::NAME))),
            reasons: Rc::new(RefCell::new(Vec::new())),
        })
    }

    fn new_stream(&mut self, _host: &mut dyn Host, _context_id: u32) -> PolicyAuthzStream {
        PolicyAuthzStream {
            config: self.config.clone(),
            policies: self.policies.clone(),
            metrics: self.metrics.clone(),
            reasons: self.reasons.clone(),
            waiting: None,
        }
    }
}

/// A request whose policy reads the body: what was found at the headers. The input is built
/// there too: a proxy-wasm host lets a filter read request headers only in the headers callback.
struct Waiting {
    line: Rc<RequestLine>,
    rule: usize,
    limit: usize,
    /// The media type says JSON: the body is parsed into `input.body`.
    json: bool,
    parts: Parts,
}

/// The input document but its body.
struct Parts {
    identity: RegoValue,
    request: RegoValue,
    source: RegoValue,
    connection: RegoValue,
}

pub struct PolicyAuthzStream {
    config: Rc<Config>,
    policies: Rc<RefCell<Policies>>,
    metrics: Rc<RefCell<Metrics>>,
    reasons: Rc<RefCell<Vec<String>>>,
    waiting: Option<Waiting>,
}

fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_LOGGED_PATH)
        .collect()
}

/// A refusal that is not the policy's: the request cannot be decided on.
struct Refusal {
    status: u16,
    code: &'static str,
    description: &'static str,
}

impl PolicyAuthzStream {
    fn count(&self, host: &mut dyn Host, event: &str) {
        if let Ok(mut m) = self.metrics.try_borrow_mut() {
            m.inc(host, event);
        }
    }

    /// The metric name of a policy's reason: its own while fewer than the bound have been seen.
    fn reason_metric(&self, reason: &str) -> String {
        let Ok(mut seen) = self.reasons.try_borrow_mut() else {
            return "other_reason".to_string();
        };
        if seen.iter().any(|r| r == reason) {
            return reason.to_string();
        }
        if seen.len() < MAX_REASON_METRICS {
            seen.push(reason.to_string());
            return reason.to_string();
        }
        "other_reason".to_string()
    }

    /// Refuses (or, in shadow mode, logs and lets through) a request that cannot be decided on.
    fn refuse(&self, host: &mut dyn Host, r: Refusal) -> Action {
        if self.config.shadow {
            self.count(host, &format!("shadow.denied.{}", r.code));
            (host as &dyn Host).info(&format!(
                "policy-authz: shadow: would refuse with {} ({})",
                r.status, r.code
            ));
            host.record_decision(&Decision::shadow_deny(r.code, r.status));
            return Action::Continue;
        }
        self.count(host, &format!("denied.{}", r.code));
        (host as &dyn Host).info(&format!(
            "policy-authz: refused with {} ({})",
            r.status, r.code
        ));
        Reply::new(r.status, r.code, r.description).send(host);
        Action::Pause
    }

    fn on_headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Action {
        let config = self.config.clone();
        let line = match RequestLine::from_host(host, config.path) {
            Ok(line) => line,
            Err(e) => {
                return self.refuse(
                    host,
                    Refusal {
                        status: 400,
                        code: e.code(),
                        description: e.description(),
                    },
                )
            }
        };
        let found = config
            .rules
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.route.matches(&line).map(|p| (i, p)));
        let Some((index, params)) = found else {
            return match config.default {
                DefaultAction::Allow => {
                    self.count(host, "allowed.default");
                    self.allow(host, &line, &[]);
                    Action::Continue
                }
                DefaultAction::Deny => self.deny(
                    host,
                    &line,
                    "default",
                    403,
                    "no_matching_rule",
                    "no_matching_rule",
                    "no rule of the gateway allows this request",
                    &[],
                ),
            };
        };
        let Some(rule) = config.rules.get(index) else {
            return Action::Continue;
        };
        if rule.access == Access::Public {
            self.count(host, "allowed.public");
            self.allow(host, &line, &[]);
            return Action::Continue;
        }
        if let (Some(limit), false) = (config.input.json_body_limit, end_of_stream) {
            // A declared length over the limit is refused before any byte is buffered.
            let declared = host
                .request_header("content-length")
                .and_then(|v| v.trim().parse::<u64>().ok());
            if declared.is_some_and(|n| n > limit as u64) {
                return self.refuse(host, body_too_large());
            }
            // Envoy has already chosen to send the headers on (a proxy-wasm filter cannot hold
            // them and still receive the body); the body waits here for the decision, so a refused
            // request's body never reaches the upstream. The path is made the one decided on now,
            // while the headers can still change.
            let parts = self.parts(host, &line, &params, index);
            let json = is_json(host);
            if !config.shadow {
                self.rewrite_path(host, &line);
            }
            self.waiting = Some(Waiting {
                line,
                rule: index,
                limit,
                json,
                parts,
            });
            return Action::Continue;
        }
        let parts = self.parts(host, &line, &params, index);
        self.evaluate(host, &line, index, parts, RegoValue::Undefined, true)
    }

    /// The input document but its body, read while the request headers are readable.
    fn parts(&self, host: &dyn Host, line: &RequestLine, params: &Params, index: usize) -> Parts {
        let label = self
            .config
            .rules
            .get(index)
            .map(|r| r.label.as_str())
            .unwrap_or_default();
        Parts {
            identity: input::identity(host),
            request: input::request(host, &self.config.input, line, params, label),
            source: input::source(host, &self.config.input),
            connection: input::connection(host),
        }
    }

    fn on_body(&mut self, host: &mut dyn Host, body_size: usize, end_of_stream: bool) -> Action {
        let Some(waiting) = &self.waiting else {
            return Action::Continue;
        };
        if body_size > waiting.limit {
            self.waiting = None;
            return self.refuse(host, body_too_large());
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let Some(waiting) = self.waiting.take() else {
            return Action::Continue;
        };
        let body = match read_json_body(host, waiting.json, body_size) {
            Ok(body) => body,
            Err(()) => {
                return self.refuse(
                    host,
                    Refusal {
                        status: 400,
                        code: "invalid_body",
                        description: "the request body is not valid JSON",
                    },
                )
            }
        };
        self.evaluate(
            host,
            &waiting.line,
            waiting.rule,
            waiting.parts,
            body,
            false,
        )
    }

    /// Asks the policy about this request and acts on its answer. `at_headers`: the request
    /// headers can still be changed (false once they went on ahead of the body).
    fn evaluate(
        &mut self,
        host: &mut dyn Host,
        line: &RequestLine,
        index: usize,
        parts: Parts,
        body: RegoValue,
        at_headers: bool,
    ) -> Action {
        let config = self.config.clone();
        let Some(rule) = config.rules.get(index) else {
            return Action::Continue;
        };
        let Access::Query(query) = &rule.access else {
            return Action::Continue;
        };
        let document = input::document(
            parts.identity,
            parts.request,
            parts.source,
            parts.connection,
            body,
        );
        let now = host.now_nanos();
        let verdict = match self.policies.try_borrow_mut() {
            Ok(mut p) => p.evaluate(query, document, now),
            Err(_) => Err(PolicyError::Failed("the policies are busy".to_string())),
        };
        let by = format!("{} ({query})", rule.label);
        match verdict {
            Ok(Verdict::Allow { headers }) => {
                self.count(host, "allowed");
                (host as &dyn Host).debug_with(|| {
                    format!(
                        "policy-authz: allowed {} {} by {by}",
                        line.method,
                        printable(&line.path)
                    )
                });
                if at_headers {
                    self.allow(host, line, &headers);
                } else if !headers.is_empty() && !config.shadow {
                    // The request headers went upstream before the body arrived.
                    self.count(host, "allow_headers_ignored");
                }
                Action::Continue
            }
            Ok(Verdict::Deny {
                status,
                reason,
                headers,
            }) => {
                let description = format!("the policy refused this request ({reason})");
                self.deny(
                    host,
                    line,
                    &by,
                    status,
                    "access_denied",
                    &reason,
                    &description,
                    &headers,
                )
            }
            Err(e) => {
                self.count(host, &format!("policy_error.{}", e.kind()));
                let detail = match &e {
                    PolicyError::Failed(m) => format!(": {m}"),
                    PolicyError::BadResult(m) => format!(": {m}"),
                    _ => String::new(),
                };
                (host as &dyn Host).warn(&format!(
                    "policy-authz: policy error on {} {} by {by}: {}{detail}",
                    line.method,
                    printable(&line.path),
                    e.kind()
                ));
                self.deny(
                    host,
                    line,
                    &by,
                    403,
                    "access_denied",
                    "policy_error",
                    "the policy could not decide on this request",
                    &[],
                )
            }
        }
    }

    /// Refuses with `error` (`access_denied`, or `no_matching_rule` for the default) and the
    /// reason code, or in shadow mode logs, counts and
    /// records what would have been refused, and lets the request through.
    #[allow(clippy::too_many_arguments)]
    fn deny(
        &self,
        host: &mut dyn Host,
        line: &RequestLine,
        by: &str,
        status: u16,
        error: &'static str,
        reason: &str,
        description: &str,
        headers: &[(String, String)],
    ) -> Action {
        let metric = self.reason_metric(reason);
        let path = printable(&line.path);
        if self.config.shadow {
            self.count(host, &format!("shadow.denied.{metric}"));
            (host as &dyn Host).log(
                LogLevel::Info,
                &format!(
                    "policy-authz: shadow: would deny {} {path} by {by}: {reason}",
                    line.method
                ),
            );
            host.record_decision(&Decision::shadow_deny(reason.to_string(), status));
            return Action::Continue;
        }
        self.count(host, &format!("denied.{metric}"));
        (host as &dyn Host).info(&format!(
            "policy-authz: denied {} {path} by {by}: {reason}",
            line.method
        ));
        let mut reply = Reply::new(status, error, description);
        for (k, v) in headers {
            reply = reply.with_header(k, v.clone());
        }
        reply.send(host);
        // The reply recorded its error code; the audit record wants the policy's reason.
        host.record_decision(&Decision::deny(reason.to_string(), status));
        Action::Pause
    }

    /// What the upstream gets of an allowed request: the path decided on, and the headers the
    /// decision set (replacing any copy the client sent). Shadow mode changes nothing.
    fn allow(&self, host: &mut dyn Host, line: &RequestLine, headers: &[(String, String)]) {
        if self.config.shadow {
            return;
        }
        self.rewrite_path(host, line);
        for (k, v) in headers {
            host.set_request_header(k, Some(v));
        }
    }

    fn rewrite_path(&self, host: &mut dyn Host, line: &RequestLine) {
        if !self.config.rewrite_path {
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

fn body_too_large() -> Refusal {
    Refusal {
        status: 413,
        code: "body_too_large",
        description: "the request body is larger than the policy may read",
    }
}

/// Whether the request's media type is JSON (`application/json` or a `+json` type).
fn is_json(host: &dyn Host) -> bool {
    let media = host
        .request_header("content-type")
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || media.ends_with("+json")
}

/// The buffered body parsed as JSON when the request said it is JSON; undefined for an empty
/// body or another media type. `Err` for a JSON body that does not parse.
fn read_json_body(host: &dyn Host, json: bool, size: usize) -> Result<RegoValue, ()> {
    if !json || size == 0 {
        return Ok(RegoValue::Undefined);
    }
    let bytes = host.request_body(0, size).unwrap_or_default();
    let text = std::str::from_utf8(&bytes).map_err(|_| ())?;
    RegoValue::from_json_str(text).map_err(|_| ())
}

impl StreamFilter for PolicyAuthzStream {
    fn on_request_headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Action {
        self.on_headers(host, end_of_stream)
    }

    fn on_request_body(
        &mut self,
        host: &mut dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        self.on_body(host, body_size, end_of_stream)
    }

    /// A request can end with trailers rather than a last body chunk: the body held so far is
    /// all there is, and it is decided on now (without this, the held body would go on
    /// undecided with the trailers).
    fn on_request_trailers(&mut self, host: &mut dyn Host) -> Action {
        if self.waiting.is_none() {
            return Action::Continue;
        }
        let size = host.request_body(0, usize::MAX).map_or(0, |b| b.len());
        self.on_body(host, size, true)
    }
}
