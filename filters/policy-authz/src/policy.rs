//! The Rego policies: compiled once per configuration and worker by regorus, evaluated per
//! request with that request's input, and their answer read as a decision.
//!
//! Whatever the policy answers that is not a well-formed decision (undefined, an evaluation
//! error, the evaluation budget spent, a value of another shape) is a [`PolicyError`]: the filter
//! refuses the request with `policy_error`, never allows it.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, LimitError, Value as RegoValue};
use serde_json::Value;
use shieldwall_core::ConfigError;

use crate::config::{Access, Config};

/// Work units between two readings of the clock during an evaluation: a reading is a host call,
/// so the interpreter reads it every 32 statements rather than at every one.
const BUDGET_CHECK_INTERVAL: u32 = 32;
/// The most elements `numbers.range` may build: a range bound taken from the input must not let a
/// client make the worker allocate without limit.
pub const MAX_RANGE_ELEMENTS: i64 = 100_000;
/// At most this many headers in one decision, each value at most this long.
const MAX_DECISION_HEADERS: usize = 16;
const MAX_DECISION_HEADER_VALUE: usize = 1024;

/// The compiled policies of one configuration, on one worker.
pub struct Policies {
    engine: Engine,
    /// What `time.now_ns` answers during the current evaluation: the proxy's clock.
    now_ns: Arc<AtomicU64>,
}

/// Why a policy's answer cannot be used. `kind()` names it in metrics and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// The query's rule is undefined for this input (no rule body held, no default).
    Undefined,
    /// The evaluation failed; the interpreter's message.
    Failed(String),
    /// The evaluation ran past its budget and was stopped.
    BudgetExceeded,
    /// The rule's value is not a decision; what was wrong with it.
    BadResult(&'static str),
}

impl PolicyError {
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyError::Undefined => "undefined",
            PolicyError::Failed(_) => "error",
            PolicyError::BudgetExceeded => "budget_exceeded",
            PolicyError::BadResult(_) => "bad_result",
        }
    }
}

/// A policy's decision on one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; headers to set on the request the upstream receives.
    Allow { headers: Vec<(String, String)> },
    /// Refused with this status and reason code; headers for the reply.
    Deny {
        status: u16,
        reason: String,
        headers: Vec<(String, String)>,
    },
}

/// The reason of a plain `false`.
pub const PLAIN_DENY_REASON: &str = "policy_denied";

impl Policies {
    /// Parses and compiles every module, loads the data and checks that every rule's query names
    /// a rule of the policies. Errors name the module (`policies.orders.rego`) or the rule
    /// (`rules[1].query`), with the interpreter's message and the line it points at.
    pub fn compile(config: &Config) -> Result<Policies, ConfigError> {
        let mut engine = Engine::new();
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit: Duration::from_millis(config.eval_budget_ms),
            check_interval: NonZeroU32::new(BUDGET_CHECK_INTERVAL).unwrap_or(NonZeroU32::MIN),
        });
        for (name, text) in &config.policies {
            engine.add_policy(name.clone(), text.clone()).map_err(|e| {
                ConfigError::new(format!("policies.{name}"), interpreter_message(&e))
            })?;
        }
        if let Some(data) = &config.data {
            engine
                .add_data_json(data)
                .map_err(|e| ConfigError::new("data", interpreter_message(&e)))?;
        }
        let now_ns = Arc::new(AtomicU64::new(0));
        let clock = now_ns.clone();
        engine
            .add_extension(
                "time.now_ns".to_string(),
                0,
                Box::new(move |_: Vec<RegoValue>| {
                    Ok(RegoValue::from(clock.load(Ordering::Relaxed)))
                }),
            )
            .map_err(|e| ConfigError::new("policies", interpreter_message(&e)))?;
        for (name, step) in [("numbers.range", false), ("numbers.range_step", true)] {
            engine
                .add_extension(
                    name.to_string(),
                    if step { 3 } else { 2 },
                    Box::new(move |args: Vec<RegoValue>| bounded_range(&args, step)),
                )
                .map_err(|e| ConfigError::new("policies", interpreter_message(&e)))?;
        }
        let mut checked: Vec<&str> = Vec::new();
        for (i, rule) in config.rules.iter().enumerate() {
            let Access::Query(query) = &rule.access else {
                continue;
            };
            if checked.contains(&query.as_str()) {
                continue;
            }
            engine
                .compile_with_entrypoint(&regorus::Rc::from(query.as_str()))
                .map_err(|e| {
                    let d = Diagnostic::from_report(&e);
                    match d.file.filter(|f| config.policies.contains_key(f)) {
                        // An error in a module, found when the modules are compiled together.
                        Some(file) => ConfigError::new(format!("policies.{file}"), d.message),
                        None if d.message.contains("not a valid rule path") => ConfigError::new(
                            format!("rules[{i}].query"),
                            format!("`{query}` is not a rule of the policies"),
                        ),
                        None => ConfigError::new(format!("rules[{i}].query"), d.message),
                    }
                })?;
            checked.push(query);
        }
        if checked.is_empty() {
            return Err(ConfigError::new(
                "rules",
                "no rule asks the policies (every rule is public): give one a `query`",
            ));
        }
        Ok(Policies { engine, now_ns })
    }

    /// Evaluates `query` (a rule reference checked at load) with `input`, `time.now_ns` reading
    /// `now_ns`, within the configured budget, and reads the rule's value as a decision.
    pub fn evaluate(
        &mut self,
        query: &str,
        input: RegoValue,
        now_ns: u64,
    ) -> Result<Verdict, PolicyError> {
        let value = self.value_of(query, input, now_ns)?;
        read_decision(&value)
    }

    /// The rule's value as JSON (sets as arrays), for tools and tests; undefined is an error.
    pub fn evaluate_json(
        &mut self,
        query: &str,
        input: RegoValue,
        now_ns: u64,
    ) -> Result<Value, PolicyError> {
        let value = self.value_of(query, input, now_ns)?;
        if value == RegoValue::Undefined {
            return Err(PolicyError::Undefined);
        }
        serde_json::to_value(&value).map_err(|_| PolicyError::BadResult("not representable"))
    }

    fn value_of(
        &mut self,
        query: &str,
        input: RegoValue,
        now_ns: u64,
    ) -> Result<RegoValue, PolicyError> {
        self.now_ns.store(now_ns, Ordering::Relaxed);
        self.engine.set_input(input);
        let result = self.engine.eval_rule(query.to_string());
        // The input is not kept past the request.
        self.engine.set_input(RegoValue::new_object());
        match result {
            Ok(value) => Ok(value),
            Err(e) if is_budget(&e) => Err(PolicyError::BudgetExceeded),
            Err(e) => Err(PolicyError::Failed(interpreter_message(&e))),
        }
    }
}

fn is_budget(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<LimitError>(),
            Some(LimitError::TimeLimitExceeded { .. })
        )
    }) || e.to_string().contains("exceeded time limit")
}

/// What the interpreter said of a policy: where (`file:line:col`, when it says), what, and the
/// source line it points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: Option<String>,
    pub message: String,
}

impl Diagnostic {
    /// Reads regorus' report (`--> file:line:col`, the source line, `error: …`) into one line:
    /// `file:line:col: message (`source line`)`, control characters removed, cut at 512.
    pub fn from_report(report: &impl std::fmt::Display) -> Diagnostic {
        let text = report.to_string();
        let mut location: Option<&str> = None;
        let mut source: Option<&str> = None;
        let mut message: Option<&str> = None;
        for line in text.lines().map(str::trim) {
            if let Some(at) = line.strip_prefix("--> ") {
                location = location.or(Some(at.trim()));
            } else if let Some(m) = line.strip_prefix("error: ") {
                message = message.or(Some(m.trim()));
            } else if let Some((n, code)) = line.split_once('|') {
                let code = code.trim();
                if source.is_none()
                    && !code.is_empty()
                    && !n.trim().is_empty()
                    && !code.starts_with('^')
                {
                    source = Some(code);
                }
            }
        }
        let one_line = match (location, message) {
            (Some(at), Some(m)) => match source {
                Some(src) => format!("{at}: {m} (`{src}`)"),
                None => format!("{at}: {m}"),
            },
            _ => text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        };
        let file = location
            .and_then(|at| at.split(':').next())
            .map(str::to_string);
        Diagnostic {
            file,
            message: one_line
                .chars()
                .filter(|c| !c.is_control())
                .take(512)
                .collect(),
        }
    }
}

/// The interpreter's message made one line (see [`Diagnostic::from_report`]).
pub fn interpreter_message(e: &impl std::fmt::Display) -> String {
    Diagnostic::from_report(e).message
}

/// `numbers.range` and `numbers.range_step` as OPA defines them, refusing more than
/// [`MAX_RANGE_ELEMENTS`] elements instead of allocating them.
fn bounded_range(args: &[RegoValue], step: bool) -> anyhow::Result<RegoValue> {
    let int = |i: usize| -> anyhow::Result<i64> {
        let v = args
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("missing operand"))?;
        let n = v
            .as_number()
            .map_err(|_| anyhow::anyhow!("operand must be a number"))?;
        if !n.is_integer() {
            return Err(anyhow::anyhow!("operand must be integer"));
        }
        n.as_i64()
            .ok_or_else(|| anyhow::anyhow!("operand out of range"))
    };
    let (a, b) = (int(0)?, int(1)?);
    let by = if step {
        let s = int(2)?;
        if s <= 0 {
            return Err(anyhow::anyhow!("step must be a positive number above zero"));
        }
        s
    } else {
        1
    };
    let span = a.abs_diff(b) / by.unsigned_abs();
    if span >= MAX_RANGE_ELEMENTS.unsigned_abs() {
        return Err(anyhow::anyhow!(
            "the range has more elements than the gateway allows",
        ));
    }
    let mut out = Vec::with_capacity(usize::try_from(span + 1).unwrap_or(0));
    let mut v = a;
    loop {
        out.push(RegoValue::from(v));
        let reached = if step {
            if a <= b {
                v.saturating_add(by) > b
            } else {
                v.saturating_sub(by) < b
            }
        } else {
            v == b
        };
        if reached {
            break;
        }
        v = if a <= b { v + by } else { v - by };
    }
    Ok(RegoValue::from(out))
}

/// Reads the rule's value as a decision.
fn read_decision(value: &RegoValue) -> Result<Verdict, PolicyError> {
    match value {
        RegoValue::Undefined => Err(PolicyError::Undefined),
        RegoValue::Bool(true) => Ok(Verdict::Allow {
            headers: Vec::new(),
        }),
        RegoValue::Bool(false) => Ok(Verdict::Deny {
            status: 403,
            reason: PLAIN_DENY_REASON.to_string(),
            headers: Vec::new(),
        }),
        RegoValue::Object(_) => {
            let json: Value = serde_json::to_value(value)
                .map_err(|_| PolicyError::BadResult("the decision cannot be read"))?;
            read_decision_object(&json)
        }
        _ => Err(PolicyError::BadResult(
            "the rule's value is neither a boolean nor a decision object",
        )),
    }
}

/// `{"allow": bool, "status": 4xx/5xx, "reason": "code", "headers": {"name": "value"}}`.
pub fn read_decision_object(json: &Value) -> Result<Verdict, PolicyError> {
    let Some(obj) = json.as_object() else {
        return Err(PolicyError::BadResult("the decision is not an object"));
    };
    let allow = match obj.get("allow") {
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(PolicyError::BadResult("`allow` is not a boolean")),
        None => return Err(PolicyError::BadResult("the decision has no `allow`")),
    };
    let headers = match obj.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => {
            if map.len() > MAX_DECISION_HEADERS {
                return Err(PolicyError::BadResult("more than 16 `headers`"));
            }
            let mut out = Vec::with_capacity(map.len());
            for (name, value) in map {
                let Some(value) = value.as_str() else {
                    return Err(PolicyError::BadResult("a header value is not a string"));
                };
                if !decision_header_allowed(name) {
                    return Err(PolicyError::BadResult(
                        "a header name the policy may not set",
                    ));
                }
                if value.len() > MAX_DECISION_HEADER_VALUE
                    || value.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f)
                {
                    return Err(PolicyError::BadResult("a header value is not usable"));
                }
                out.push((name.clone(), value.to_string()));
            }
            out
        }
        Some(_) => return Err(PolicyError::BadResult("`headers` is not an object")),
    };
    if allow {
        return Ok(Verdict::Allow { headers });
    }
    let status = match obj.get("status") {
        None | Some(Value::Null) => 403,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(s @ 400..=599) => u16::try_from(s).unwrap_or(403),
            _ => return Err(PolicyError::BadResult("`status` is not a 4xx or 5xx code")),
        },
        Some(_) => return Err(PolicyError::BadResult("`status` is not a number")),
    };
    let reason = match obj.get("reason") {
        None | Some(Value::Null) => PLAIN_DENY_REASON.to_string(),
        Some(Value::String(s)) if valid_reason(s) => s.clone(),
        Some(_) => {
            return Err(PolicyError::BadResult(
                "`reason` is not a code of 1 to 64 lower-case letters, digits and `_`",
            ))
        }
    };
    Ok(Verdict::Deny {
        status,
        reason,
        headers,
    })
}

/// A reason code: it goes into the reply, the logs, metric names and the audit record, so it is
/// a short identifier and nothing else (never a value taken from the request).
pub fn valid_reason(s: &str) -> bool {
    let mut bytes = s.bytes();
    s.len() <= 64
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A header a decision may set: a lower-case token, not a pseudo-header, not one that frames the
/// message or routes it, not a credential.
pub fn decision_header_allowed(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !matches!(
            name,
            "host"
                | "content-length"
                | "content-type"
                | "transfer-encoding"
                | "connection"
                | "keep-alive"
                | "upgrade"
                | "te"
                | "trailer"
                | "proxy-connection"
                | "authorization"
                | "cookie"
                | "set-cookie"
                | "cache-control"
        )
}
