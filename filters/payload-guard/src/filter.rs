//! The stream glue of payload-guard: the request line and headers checked when they arrive, the
//! body counted chunk by chunk while the proxy holds it, then parsed, scanned and validated once
//! whole; a refusal is a local reply (or, in shadow mode, a log line and a counter).

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{json, Value};
use shieldwall_core::decision::Decision;
use shieldwall_core::metrics::Metrics;
use shieldwall_core::{
    Action, ConfigError, Host, Identity, Reply, RequestLine, RootFilter, StreamFilter,
};

use crate::config::{is_json, Config, Policy, Settings};
use crate::inject::{self, Check, Finding};
use crate::openapi::{Lookup, Operation};
use crate::params::{self, ParamCheck};
use crate::schema::{tidy, violations, Violation};

/// Longest path written into a log line.
const MAX_LOGGED_PATH: usize = 256;

pub struct PayloadGuard {
    config: Rc<Config>,
    metrics: Rc<RefCell<Metrics>>,
}

impl RootFilter for PayloadGuard {
    type Stream = PayloadGuardStream;
    const NAME: &'static str = "payload_guard";

    fn configure(host: &mut dyn Host, config: &[u8]) -> Result<Self, ConfigError> {
        let config = Config::parse(config)?;
        let h: &dyn Host = host;
        let api = match &config.api {
            Some(api) => format!(
                "OpenAPI {} document, {} operations",
                match api.dialect {
                    crate::schema::Dialect::Oas30 => "3.0",
                    crate::schema::Dialect::Oas31 => "3.1",
                },
                api.operation_count()
            ),
            None => "no OpenAPI document (limits and injection checks only)".to_string(),
        };
        h.info(&format!(
            "payload-guard: {api}, {} rules, body limit {} bytes, {}",
            config.rules.len(),
            config.defaults.limits.max_body_bytes,
            if config.defaults.shadow {
                "shadow mode (nothing is refused)"
            } else {
                "enforcing"
            }
        ));
        Ok(PayloadGuard {
            config: Rc::new(config),
            metrics: Rc::new(RefCell::new(Metrics::new(Self::NAME))),
        })
    }

    fn new_stream(&mut self, _host: &mut dyn Host, _context_id: u32) -> PayloadGuardStream {
        PayloadGuardStream {
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            pending: None,
            done: false,
        }
    }
}

/// A body being received: what it will be checked against.
struct Pending {
    /// Index of the rule whose settings apply (`None`: the top level's).
    rule: Option<usize>,
    /// Parse and check as JSON (the media type is JSON).
    json: bool,
    /// The body's schema: its compiled index and pointer in the document.
    schema: Option<(shieldwall_jsonschema::SchemaIndex, String)>,
    /// For log lines.
    what: Subject,
}

/// What a log line says was refused: the request line and the operation, as text only when a
/// line is written (an allowed request writes none).
#[derive(Clone)]
enum Subject {
    /// The request line could not be read.
    Unknown,
    Request {
        method: String,
        path: String,
        operation: Option<String>,
    },
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Unknown => f.write_str("a request"),
            Subject::Request {
                method,
                path,
                operation,
            } => {
                write!(f, "{method} {}", printable(path))?;
                match operation {
                    Some(id) => write!(f, " ({})", printable(id)),
                    None => Ok(()),
                }
            }
        }
    }
}

pub struct PayloadGuardStream {
    config: Rc<Config>,
    metrics: Rc<RefCell<Metrics>>,
    pending: Option<Pending>,
    /// A decision was made (a refusal, or a shadow refusal that lets everything after it pass).
    done: bool,
}

/// A refusal, before it is sent or (in shadow mode) only logged.
struct Denial {
    reply: Reply,
    /// For the log line: what was found where.
    detail: String,
}

fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_LOGGED_PATH)
        .collect()
}

fn violation_json(v: &Violation) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("in".into(), v.in_.into());
    if let Some(n) = &v.name {
        o.insert("name".into(), n.clone().into());
    }
    o.insert("pointer".into(), v.pointer.clone().into());
    o.insert("rule".into(), v.rule.into());
    Value::Object(o)
}

fn invalid(description: &str, list: &[Violation]) -> Denial {
    let detail = list
        .iter()
        .map(|v| {
            let name = v
                .name
                .as_deref()
                .map(|n| format!(" {n}"))
                .unwrap_or_default();
            format!("{}{name} {} {}", v.in_, v.pointer, v.rule)
        })
        .collect::<Vec<_>>()
        .join(", ");
    Denial {
        reply: Reply::bad_request("invalid_request", description).with_member(
            "violations",
            Value::Array(list.iter().map(violation_json).collect()),
        ),
        detail,
    }
}

fn injection(in_: &'static str, name: Option<&str>, finding: &Finding) -> Denial {
    let v = Violation {
        in_,
        name: name.map(str::to_string),
        pointer: finding.pointer.clone(),
        rule: finding.check.rule(),
        member: None,
        member_raw: None,
    };
    let what = match finding.check {
        Check::Sql => "SQL injection",
        Check::Xss => "cross-site scripting",
        Check::NoSql => "a NoSQL operator",
    };
    Denial {
        reply: Reply::forbidden(
            "injection_detected",
            format!("the request looks like {what}"),
        )
        .with_member("violations", json!([violation_json(&v)])),
        detail: format!("{} {in_} {}", finding.check.rule(), finding.pointer),
    }
}

fn too_large(limit: u64) -> Denial {
    Denial {
        reply: Reply::new(
            413,
            "payload_too_large",
            format!("the request body is larger than {limit} bytes"),
        ),
        detail: String::new(),
    }
}

fn unsupported_media(detail: &str) -> Denial {
    Denial {
        reply: Reply::new(
            415,
            "unsupported_media_type",
            "the request body's media type is not accepted here",
        ),
        detail: detail.to_string(),
    }
}

/// `type/subtype` in lower case and whether a `charset` other than UTF-8 was given.
fn media_type(header: &str) -> (String, bool) {
    let mut parts = header.split(';');
    let mt = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let foreign_charset = parts.any(|p| {
        let p = p.trim().to_ascii_lowercase();
        p.strip_prefix("charset=")
            .is_some_and(|c| !matches!(c.trim_matches('"'), "utf-8" | "utf8"))
    });
    (mt, foreign_charset)
}

/// A media range (`application/json`, `application/*`, `*/*`) covers a media type.
fn covers(range: &str, mt: &str) -> bool {
    if range == "*/*" || range == mt {
        return true;
    }
    match (range.strip_suffix("/*"), mt.split_once('/')) {
        (Some(ty), Some((mty, _))) => ty == mty,
        _ => false,
    }
}

impl PayloadGuardStream {
    fn count(&self, host: &mut dyn Host, event: &str) {
        if let Ok(mut m) = self.metrics.try_borrow_mut() {
            m.inc(host, event);
        }
    }

    /// The settings of a rule (`None`: the top level's), borrowed from a handle on the
    /// configuration so that the stream can still be changed while they are read.
    fn settings(config: &Config, rule: Option<usize>) -> &Settings {
        match rule.and_then(|i| config.rules.get(i)) {
            Some(r) => &r.settings,
            None => &config.defaults,
        }
    }

    /// Sends the refusal, or in shadow mode logs it and lets the request go on.
    fn refuse(&mut self, host: &mut dyn Host, shadow: bool, what: &Subject, d: Denial) -> Action {
        self.done = true;
        self.pending = None;
        let code = d.reply.error;
        let client = Identity::read(host)
            .and_then(|i| {
                let c = i.client_id.as_deref().or(i.sub.as_deref())?;
                Some(format!(" client {}", printable(c)))
            })
            .unwrap_or_default();
        let detail = if d.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", printable(&d.detail))
        };
        if shadow {
            host.record_decision(&Decision::shadow_deny(code, d.reply.status));
            self.count(host, &format!("shadow.denied.{code}"));
            (host as &dyn Host).info(&format!(
                "payload-guard: shadow: would refuse {what}{client} with {} {code}{detail}",
                d.reply.status
            ));
            return Action::Continue;
        }
        self.count(host, &format!("denied.{code}"));
        (host as &dyn Host).info(&format!(
            "payload-guard: refused {what}{client} with {} {code}{detail}",
            d.reply.status
        ));
        d.reply.send(host);
        Action::Pause
    }

    fn allow(&mut self, host: &mut dyn Host) -> Action {
        self.done = true;
        self.pending = None;
        self.count(host, "allowed");
        Action::Continue
    }

    fn headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Action {
        let config = self.config.clone();
        let line = match RequestLine::from_host(host, config.path) {
            Ok(l) => l,
            Err(e) => {
                let d = Denial {
                    reply: Reply::bad_request(e.code(), e.description()),
                    detail: String::new(),
                };
                return self.refuse(host, config.defaults.shadow, &Subject::Unknown, d);
            }
        };
        let rule = config
            .rules
            .iter()
            .position(|r| r.route.matches(&line).is_some());
        let settings = Self::settings(&config, rule);
        let what = Subject::Request {
            method: line.method.clone(),
            path: line.path.clone(),
            operation: None,
        };
        let shadow = settings.shadow;

        let query = match params::parse_query(line.query.as_deref()) {
            Ok(q) => q,
            Err(params::BadQuery) => {
                let v = Violation {
                    in_: "query",
                    name: None,
                    pointer: String::new(),
                    rule: "encoding",
                    member: None,
                    member_raw: None,
                };
                return self.refuse(
                    host,
                    shadow,
                    &what,
                    invalid("the query string is not valid", &[v]),
                );
            }
        };
        let inj = &settings.injection;
        if inj.nosql {
            if let Some(q) = query.iter().find(|q| inject::nosql_query_name(&q.name)) {
                let _ = q;
                let f = Finding {
                    check: Check::NoSql,
                    pointer: String::new(),
                };
                return self.refuse(host, shadow, &what, injection("query", None, &f));
            }
        }

        // The operation, when the document is in force here.
        let api = config.api.as_ref().filter(|_| settings.openapi);
        let mut op: Option<&Operation> = None;
        let mut what = what;
        if let Some(api) = api {
            match api.lookup(&line.method, &line.path) {
                Lookup::Found(o, vars) => {
                    op = Some(o);
                    if let Subject::Request { operation, .. } = &mut what {
                        *operation = Some(o.id.clone());
                    }
                    let header = |name: &str| -> Vec<String> {
                        host.request_headers()
                            .into_iter()
                            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v)
                            .collect()
                    };
                    let ParamCheck {
                        violations: list,
                        texts,
                    } = params::check(
                        api,
                        o,
                        &vars,
                        &query,
                        &header,
                        config.unknown_query_params == Policy::Deny,
                    );
                    // Injection first: a parameter that carries an attack is named as one.
                    if inj.sql || inj.xss {
                        for t in &texts {
                            if !inject::reads(Some(&api.doc), &api.walk, t.schema.as_deref(), inj) {
                                continue;
                            }
                            if let Some(check) = inject::scan_text(&t.value, inj) {
                                let f = Finding {
                                    check,
                                    pointer: String::new(),
                                };
                                let loc = t.location.name();
                                return self.refuse(
                                    host,
                                    shadow,
                                    &what,
                                    injection(loc, t.name.as_deref(), &f),
                                );
                            }
                        }
                    }
                    if !list.is_empty() {
                        return self.refuse(
                            host,
                            shadow,
                            &what,
                            invalid("the request's parameters do not match the API", &list),
                        );
                    }
                }
                Lookup::MethodNotAllowed(allow) if config.unknown_operations == Policy::Deny => {
                    let d = Denial {
                        reply: Reply::new(
                            405,
                            "method_not_allowed",
                            "the API has no such operation on this path",
                        )
                        .with_header("allow", allow.join(", ")),
                        detail: String::new(),
                    };
                    return self.refuse(host, shadow, &what, d);
                }
                Lookup::NotFound if config.unknown_operations == Policy::Deny => {
                    let d = Denial {
                        reply: Reply::new(
                            404,
                            "unknown_operation",
                            "the API has no operation for this path",
                        ),
                        detail: String::new(),
                    };
                    return self.refuse(host, shadow, &what, d);
                }
                _ => {}
            }
        }
        if op.is_none() && (inj.sql || inj.xss) && inj.where_ != crate::config::Where::Off {
            // No operation to say what the parameters are: every query value is free text.
            for q in &query {
                if let Some(check) = inject::scan_text(&q.value, inj) {
                    let f = Finding {
                        check,
                        pointer: String::new(),
                    };
                    return self.refuse(host, shadow, &what, injection("query", None, &f));
                }
            }
        }

        // The body.
        let length = host
            .request_header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let has_body = !end_of_stream && length != Some(0);
        let body_decl = op.and_then(|o| o.body.as_ref());
        if !has_body {
            if body_decl.is_some_and(|b| b.required) {
                let v = Violation {
                    in_: "body",
                    name: None,
                    pointer: String::new(),
                    rule: "required",
                    member: None,
                    member_raw: None,
                };
                return self.refuse(
                    host,
                    shadow,
                    &what,
                    invalid("the operation needs a request body", &[v]),
                );
            }
            return self.allow(host);
        }
        let limit = settings.limits.max_body_bytes;
        if length.is_some_and(|l| l > limit) {
            return self.refuse(host, shadow, &what, too_large(limit));
        }
        if op.is_some() && body_decl.is_none() {
            let v = Violation {
                in_: "body",
                name: None,
                pointer: String::new(),
                rule: "not_allowed",
                member: None,
                member_raw: None,
            };
            return self.refuse(
                host,
                shadow,
                &what,
                invalid("the operation takes no request body", &[v]),
            );
        }
        let Some(ct) = host.request_header("content-type") else {
            return self.refuse(host, shadow, &what, unsupported_media("no content-type"));
        };
        let (mt, foreign_charset) = media_type(&ct);
        let accepted = settings.content_types.iter().any(|r| covers(r, &mt));
        let media = body_decl.and_then(|b| {
            // The most specific range the operation declares for this type.
            b.media
                .iter()
                .filter(|m| covers(&m.range, &mt))
                .max_by_key(|m| (m.range != "*/*", !m.range.ends_with("/*")))
        });
        if !accepted || (body_decl.is_some() && media.is_none()) {
            return self.refuse(host, shadow, &what, unsupported_media("media type"));
        }
        let json = is_json(&mt);
        if json && foreign_charset {
            return self.refuse(host, shadow, &what, unsupported_media("charset"));
        }
        self.pending = Some(Pending {
            rule,
            json,
            schema: media.and_then(|m| m.schema.clone()),
            what,
        });
        // The headers go on: a proxy-wasm host hands no body to a filter that paused at the
        // headers (Envoy turns that pause into "stop all iteration"), so the body is held chunk by
        // chunk instead, and a buffer filter after this one keeps the headers from the upstream
        // until the body is accepted (see the README).
        Action::Continue
    }

    fn body(&mut self, host: &mut dyn Host, size: usize, end_of_stream: bool) -> Action {
        let Some(p) = &self.pending else {
            return Action::Continue;
        };
        let config = self.config.clone();
        let settings = Self::settings(&config, p.rule);
        let limit = settings.limits.max_body_bytes;
        let what = p.what.clone();
        // Counted as it arrives: refused as soon as the held body passes the limit.
        if u64::try_from(size).unwrap_or(u64::MAX) > limit {
            return self.refuse(host, settings.shadow, &what, too_large(limit));
        }
        if !end_of_stream {
            return Action::Pause;
        }
        if !p.json {
            return self.allow(host);
        }
        let json_schema = p.schema.clone();
        let bytes = host.request_body(0, size).unwrap_or_default();
        let value = match crate::json::parse(&bytes, &settings.limits.json) {
            Ok(v) => v,
            Err(e) => {
                let d = Denial {
                    reply: Reply::bad_request("invalid_request", e.description()).with_member(
                        "violations",
                        json!([{"in": "body", "offset": e.offset, "rule": e.rule}]),
                    ),
                    detail: format!("body {} at byte {}", e.rule, e.offset),
                };
                return self.refuse(host, settings.shadow, &what, d);
            }
        };
        drop(bytes);
        let api = config.api.as_ref().filter(|_| settings.openapi);
        let inj = &settings.injection;
        if inj.any() {
            let doc = api.map(|a| &a.doc);
            let known = |k: &str| api.is_some_and(|a| a.known_names.contains(k));
            let ptr = json_schema.as_ref().map(|(_, p)| p.as_str());
            let none = inject::WalkCache::default();
            let cache = api.map_or(&none, |a| &a.walk);
            if let Some(f) = inject::scan_body(&value, doc, cache, ptr, inj, &known) {
                return self.refuse(host, settings.shadow, &what, injection("body", None, &f));
            }
        }
        if let (Some(api), Some((idx, _))) = (api, &json_schema) {
            if let Err(e) = api.schemas.validate(&value, *idx) {
                let mut list = Vec::new();
                violations(&e, "body", None, &api.known_names, &mut list);
                tidy(&mut list);
                return self.refuse(
                    host,
                    settings.shadow,
                    &what,
                    invalid("the request body does not match the API's schema", &list),
                );
            }
        }
        self.allow(host)
    }
}

impl StreamFilter for PayloadGuardStream {
    fn on_request_headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Action {
        self.headers(host, end_of_stream)
    }

    fn on_request_body(&mut self, host: &mut dyn Host, size: usize, end_of_stream: bool) -> Action {
        if self.done {
            return Action::Continue;
        }
        self.body(host, size, end_of_stream)
    }

    fn on_request_trailers(&mut self, host: &mut dyn Host) -> Action {
        // Trailers end the request: the body held so far is all there is.
        if self.done || self.pending.is_none() {
            return Action::Continue;
        }
        let size = host.request_body(0, usize::MAX).map_or(0, |b| b.len());
        self.body(host, size, true)
    }
}
