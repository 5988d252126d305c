//! Prometheus for the observability tests: the Debian `prometheus` and `promtool` binaries, a
//! Prometheus process scraping a test's Envoy (killed on drop), the text format Envoy exports on
//! `/stats/prometheus`, and the metric selectors of a PromQL expression (to check that the rules
//! and the dashboard only name series that exist).

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::{self, form_encode};
use crate::{crate_dir, free_port, scratch_dir};

/// `envoy/observability/`: the rules, their unit tests, the dashboard, the scrape config.
pub fn observability_dir() -> PathBuf {
    crate_dir().join("observability")
}

/// A binary of the Debian package `prometheus` (`prometheus` or `promtool`) on PATH. Panics,
/// naming scripts/setup.sh, when it is missing: a test that needs it must fail, never skip.
pub fn prometheus_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found on PATH: install the Debian package `prometheus` \
                 (scripts/setup.sh installs it)"
            )
        })
}

/// One series of Envoy's `/stats/prometheus`: the metric name and its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub name: String,
    pub labels: Vec<(String, String)>,
}

impl Series {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The series of a Prometheus text exposition (comments skipped; histograms give their
/// `_bucket`, `_sum` and `_count` series). Panics on a line it cannot read.
pub fn parse_exposition(text: &str) -> Vec<Series> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .unwrap_or_else(|| panic!("exposition line without a value: {line}"));
        let name = line[..name_end].to_owned();
        let mut labels = Vec::new();
        if line[name_end..].starts_with('{') {
            let (parsed, _) = parse_label_block(&line[name_end + 1..])
                .unwrap_or_else(|e| panic!("exposition line {line}: {e}"));
            labels = parsed
                .into_iter()
                .map(|(n, _, v)| (n, v))
                .collect::<Vec<_>>();
        }
        out.push(Series { name, labels });
    }
    out
}

/// A label matcher: `(label, operator, value)` with the operator `=`, `!=`, `=~` or `!~`.
pub type Matcher = (String, String, String);

/// A PromQL metric selector: `name{label op "value", ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub name: String,
    pub matchers: Vec<Matcher>,
}

/// The label names that are grouping or matching lists, not selectors, after these keywords.
const LIST_KEYWORDS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric selectors of a PromQL expression whose name starts with one of `prefixes`
/// (`shieldwall_`, `envoy_`): identifiers outside string literals, label blocks and grouping
/// lists. Recording-rule names (with a colon) and functions are not selectors of those prefixes.
pub fn selectors(expr: &str, prefixes: &[&str]) -> Vec<Selector> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut skip_list = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
            continue;
        }
        if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '(' && skip_list {
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            skip_list = false;
            i += 1;
            continue;
        }
        if c == '{' {
            // A selector without a name ({__name__=~"..."}): its matchers are not checked here.
            let rest: String = chars[i + 1..].iter().collect();
            let used = parse_label_block(&rest)
                .map(|(_, used)| used)
                .unwrap_or(rest.len());
            i += 1 + rest[..used].chars().count();
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if LIST_KEYWORDS.contains(&word.as_str()) {
                skip_list = true;
                continue;
            }
            skip_list = false;
            if word.contains(':') || !prefixes.iter().any(|p| word.starts_with(p)) {
                continue;
            }
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let mut matchers = Vec::new();
            if j < chars.len() && chars[j] == '{' {
                let rest: String = chars[j + 1..].iter().collect();
                let (parsed, used) = parse_label_block(&rest)
                    .unwrap_or_else(|e| panic!("selector {word} in {expr}: {e}"));
                matchers = parsed;
                i = j + 1 + rest[..used].chars().count();
            }
            out.push(Selector {
                name: word,
                matchers,
            });
            continue;
        }
        if !c.is_whitespace() {
            skip_list = false;
        }
        i += 1;
    }
    out
}

fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == '\\' && quote != '`' {
            i += 2;
            continue;
        }
        if chars[i] == quote {
            return i + 1;
        }
        i += 1;
    }
    i
}

/// Reads `label op "value", ...}` (the text after `{`): the matchers and how many bytes were
/// read, the closing brace included. Exposition blocks have only `=`.
fn parse_label_block(text: &str) -> Result<(Vec<Matcher>, usize), String> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
            i += 1;
        }
        if i >= bytes.len() {
            return Err(format!("unterminated label block: {text}"));
        }
        if bytes[i] == b'}' {
            return Ok((out, i + 1));
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        let name = text[start..i].to_owned();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let op_start = i;
        while i < bytes.len() && matches!(bytes[i], b'=' | b'!' | b'~') {
            i += 1;
        }
        let op = text[op_start..i].to_owned();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let quote = *bytes.get(i).ok_or("a matcher without a value")?;
        if quote != b'"' && quote != b'\'' && quote != b'`' {
            return Err(format!("label {name}: a value must be quoted: {text}"));
        }
        i += 1;
        let mut value = String::new();
        while i < bytes.len() && bytes[i] != quote {
            if bytes[i] == b'\\' && quote != b'`' && i + 1 < bytes.len() {
                i += 1;
                value.push(match bytes[i] {
                    b'n' => '\n',
                    other => other as char,
                });
            } else {
                let ch = text[i..].chars().next().ok_or("a cut character")?;
                value.push(ch);
                i += ch.len_utf8() - 1;
            }
            i += 1;
        }
        if name.is_empty() || op.is_empty() || i >= bytes.len() {
            return Err(format!("unreadable matcher in {text}"));
        }
        i += 1;
        out.push((name, op, value));
    }
}

/// The `expr` values of a rules file (`alerts.yml`): each `expr:` with its block scalar (`|`)
/// or its inline value.
pub fn rule_exprs(rules_yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = rules_yaml.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if let Some(value) = trimmed.strip_prefix("expr:") {
            let value = value.trim();
            if value == "|" || value == "|-" || value == ">" {
                let indent = line.len() - trimmed.len();
                let mut block = String::new();
                i += 1;
                while i < lines.len()
                    && (lines[i].trim().is_empty()
                        || lines[i].len() - lines[i].trim_start().len() > indent)
                {
                    block.push_str(lines[i].trim());
                    block.push('\n');
                    i += 1;
                }
                out.push(block);
                continue;
            }
            out.push(value.to_owned());
        }
        i += 1;
    }
    out
}

/// The `expr` of every target of every panel of a Grafana dashboard (rows' nested panels too).
pub fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    fn walk(panels: &Value, out: &mut Vec<String>) {
        for panel in panels.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(expr.to_owned());
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// A Prometheus server for one test, on a free loopback port, with its data in a scratch
/// directory. Dropping it kills the process (also while a test unwinds from a panic).
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Prometheus {
    /// Starts `prometheus` with `config_yaml` written as `prometheus.yml` in its directory and
    /// waits until `/-/ready` answers 200. Panics with its log when it does not start.
    pub fn start(config_yaml: &str) -> Prometheus {
        let binary = prometheus_tool("prometheus");
        let dir = scratch_dir("prometheus");
        let config = dir.join("prometheus.yml");
        fs::write(&config, config_yaml)
            .unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        let log = File::create(dir.join("prometheus.log"))
            .unwrap_or_else(|e| panic!("create prometheus.log: {e}"));
        let log_err = log.try_clone().unwrap_or_else(|e| panic!("clone log: {e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        let mut prometheus = Prometheus { child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!(
                    "prometheus exited with {status}\n--- prometheus log ---\n{}",
                    prometheus.log()
                );
            }
            if let Ok(resp) = http::request_with_timeout(
                addr,
                "GET",
                "/-/ready",
                &[],
                b"",
                Duration::from_secs(2),
            ) {
                if resp.status == 200 {
                    return prometheus;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "prometheus not ready after 60 s\n--- prometheus log ---\n{}",
                    prometheus.log()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET path` of the HTTP API, as JSON; panics unless Prometheus answers 200 with
    /// `"status": "success"`.
    pub fn api(&self, path: &str) -> Value {
        let resp = http::request(self.addr, "GET", path, &[], b"")
            .unwrap_or_else(|e| panic!("prometheus {path}: {e}"));
        let v = resp.json();
        assert!(
            resp.status == 200 && v["status"] == "success",
            "prometheus {path}: {resp}"
        );
        v
    }

    /// An instant query: the result vector (`data.result`).
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let v = self.api(&format!("/api/v1/query?query={}", form_encode(promql)));
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Prometheus's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "prometheus files kept for the failed test: {}",
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_skip_strings_grouping_lists_and_recorded_names() {
        let expr = r#"sum by (job, envoy_cluster_name) (rate(envoy_cluster_upstream_cx_connect_fail{envoy_cluster_name="ratelimit"}[5m]))
            / on (job) group_left label_replace(rate(shieldwall_jwt_auth_denied{reason!~"a|b"}[5m]), "filter", "shieldwall_not_a_metric", "", "")
            + shieldwall:verification_denied:rate5m + count({__name__=~"shieldwall_x_.+"})"#;
        let got = selectors(expr, &["shieldwall_", "envoy_"]);
        assert_eq!(
            got,
            vec![
                Selector {
                    name: "envoy_cluster_upstream_cx_connect_fail".into(),
                    matchers: vec![("envoy_cluster_name".into(), "=".into(), "ratelimit".into())],
                },
                Selector {
                    name: "shieldwall_jwt_auth_denied".into(),
                    matchers: vec![("reason".into(), "!~".into(), "a|b".into())],
                },
            ]
        );
    }

    #[test]
    fn exposition_lines_give_names_and_labels() {
        let text = "# TYPE shieldwall_jwt_auth_denied counter\n\
                    shieldwall_jwt_auth_denied{reason=\"missing_token\"} 3\n\
                    shieldwall_jwt_auth_allowed{} 2\n\
                    envoy_cluster_upstream_cx_total{envoy_cluster_name=\"idp\"} 1\n";
        let series = parse_exposition(text);
        assert_eq!(series.len(), 3);
        assert_eq!(series[0].name, "shieldwall_jwt_auth_denied");
        assert_eq!(series[0].label("reason"), Some("missing_token"));
        assert!(series[1].labels.is_empty());
        assert_eq!(series[2].label("envoy_cluster_name"), Some("idp"));
    }

    #[test]
    fn rule_exprs_reads_blocks_and_inline_values() {
        let yaml = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: |\n      sum(\n        x_total\n      ) > 0\n    for: 1m\n  - record: r:x\n    expr: rate(y[5m])\n";
        assert_eq!(
            rule_exprs(yaml),
            vec![
                "sum(\nx_total\n) > 0\n".to_owned(),
                "rate(y[5m])".to_owned()
            ]
        );
    }

    #[test]
    fn a_missing_tool_names_the_setup_script() {
        let err = std::panic::catch_unwind(|| prometheus_tool("shieldwall-no-such-tool"))
            .expect_err("a missing binary must panic");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("scripts/setup.sh"), "{msg}");
        assert!(msg.contains("prometheus"), "{msg}");
    }
}
