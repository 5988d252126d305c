//! The local gateway as a user meets it, both stacks: `scripts/gateway.sh up` (the bank reference)
//! and `up --minimal`, each on free ports with its own state directory; the commands it prints
//! run with bash exactly as printed; every command of the README's quick start and metrics
//! sections, of docs/bank-reference.md's walk and of docs/quick-look.md run against the stack they
//! describe and compared with their samples; then `down`, after which none of the processes it
//! started lives.
//!
//! `down` also runs when an assertion fails (a guard), so a failing test leaves nothing running.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use shieldwall_e2e::{free_port, repo_root, scratch_dir};

/// Every port of a stack, by the name of its `SHIELDWALL_<NAME>_PORT` variable.
struct Ports(Vec<(&'static str, u16)>);

const PORT_NAMES: [&str; 14] = [
    "GATEWAY",
    "MTLS",
    "ADMIN",
    "IDP",
    "UPSTREAM",
    "GATEWAY2",
    "MTLS2",
    "ADMIN2",
    "MESH",
    "MESH_ADMIN",
    "UPSTREAM2",
    "REDIS",
    "RLS",
    "PROMETHEUS",
];

impl Ports {
    fn free() -> Ports {
        let mut taken: Vec<(&'static str, u16)> = Vec::new();
        for name in PORT_NAMES {
            let port = loop {
                let p = free_port();
                if !taken.iter().any(|(_, t)| *t == p) {
                    break p;
                }
            };
            taken.push((name, port));
        }
        Ports(taken)
    }

    fn get(&self, name: &str) -> u16 {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("no port {name}"))
    }
}

const MINIMAL_PARTS: [&str; 4] = ["idp", "echo", "syslog", "envoy"];
const REFERENCE_PARTS: [&str; 10] = [
    "idp",
    "echo-a",
    "echo-b",
    "redis",
    "rls",
    "syslog",
    "gateway-1",
    "gateway-2",
    "mesh",
    "prometheus",
];

/// One gateway stack: runs `scripts/gateway.sh` with its ports and state directory; `down` on drop.
struct Stack {
    dir: PathBuf,
    ports: Ports,
    parts: &'static [&'static str],
    down: bool,
}

impl Stack {
    fn gateway_sh(&self, dir: &Path, args: &[&str]) -> Output {
        let script = repo_root().join("scripts").join("gateway.sh");
        let mut command = Command::new("bash");
        command
            .arg(&script)
            .args(args)
            .current_dir(repo_root())
            .env("SHIELDWALL_GATEWAY_DIR", dir);
        for (name, port) in &self.ports.0 {
            command.env(format!("SHIELDWALL_{name}_PORT"), port.to_string());
        }
        command
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()))
    }

    fn run(&self, command: &str) -> Output {
        self.gateway_sh(&self.dir, &[command])
    }

    fn pids(&self) -> Vec<(String, u32)> {
        self.parts
            .iter()
            .filter_map(|name| {
                let text = fs::read_to_string(self.dir.join(format!("{name}.pid"))).ok()?;
                Some((name.to_string(), text.trim().parse().ok()?))
            })
            .collect()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if !self.down {
            let out = self.run("down");
            eprintln!(
                "gateway.sh down (cleanup): {}\n{}{}\nstate kept in {}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.dir.display()
            );
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a snippet with bash as a user would paste it, in the directory `up` was run from (the
/// printed `source` path may be relative to it); returns stdout.
fn bash(script: &str) -> String {
    let out = Command::new("bash")
        .args(["-c", script])
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("run bash: {e}"));
    assert!(
        out.status.success(),
        "bash failed: {script}\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The status code of `curl -i` output (its first line, `HTTP/1.1 200 OK`).
fn status_of(curl_i: &str) -> u16 {
    curl_i
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status line in: {curl_i}"))
}

/// The line `up` printed that starts with `prefix` and contains `part`.
fn printed_line(up: &Output, prefix: &str, part: &str) -> String {
    String::from_utf8_lossy(&up.stdout)
        .lines()
        .find(|l| l.starts_with(prefix) && l.contains(part))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("`up` printed no `{prefix}…{part}…` line\n{}", text(up)))
}

/// A process that is gone: no /proc entry, or a zombie waiting for its reaper.
fn gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

#[test]
fn gateway_up_minimal_prints_three_commands_that_work_and_down_stops_everything() {
    let mut stack = Stack {
        dir: scratch_dir("gateway"),
        ports: Ports::free(),
        parts: &MINIMAL_PARTS,
        down: false,
    };

    let up = stack.gateway_sh(&stack.dir, &["up", "--minimal"]);
    let up_text = text(&up);
    assert!(up.status.success(), "gateway.sh up failed\n{up_text}");
    let stdout = String::from_utf8_lossy(&up.stdout).into_owned();

    // What it prints: the gateway on a line of its own, and the three commands.
    let gateway = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Gateway: "))
        .unwrap_or_else(|| panic!("no `Gateway:` line\n{up_text}"))
        .trim()
        .to_string();
    assert_eq!(
        gateway,
        format!("http://127.0.0.1:{}", stack.ports.get("GATEWAY"))
    );
    // The commands read the addresses from the env file that `up` wrote and names.
    let source_cmd = stdout
        .lines()
        .find(|l| l.starts_with("source "))
        .unwrap_or_else(|| panic!("no `source` command\n{up_text}"));
    let sourced = bash(&format!(
        "set -euo pipefail\n{source_cmd}\nprintf '%s %s %s %s %s %s' \"$GATEWAY\" \"$IDP\" \"$ADMIN\" \"$UPSTREAM\" \"$MTLS\" \"$PKI\""
    ));
    assert_eq!(
        sourced,
        format!(
            "{gateway} http://127.0.0.1:{} http://127.0.0.1:{} http://127.0.0.1:{} https://127.0.0.1:{} {}",
            stack.ports.get("IDP"),
            stack.ports.get("ADMIN"),
            stack.ports.get("UPSTREAM"),
            stack.ports.get("MTLS"),
            stack.dir.join("pki").display()
        ),
        "the env file's addresses"
    );
    let token_cmd = printed_line(&up, "TOKEN=$(", "");
    let curl_line = |tenant: &str| printed_line(&up, "curl -i", &format!("/tenants/{tenant}/"));
    let allowed_cmd = curl_line("a");
    let refused_cmd = curl_line("b");
    assert!(allowed_cmd.contains("$GATEWAY/") && refused_cmd.contains("$GATEWAY/"));

    // 0 + 1 + 2: the token, then tenant a's order: 200 from the echo, with the identity headers.
    let allowed = bash(&format!(
        "set -euo pipefail\n{source_cmd}\n{token_cmd}\n{allowed_cmd}"
    ));
    assert_eq!(status_of(&allowed), 200, "allowed call:\n{allowed}");
    for part in [
        r#""path":"/tenants/a/orders/42""#,
        r#""x-jwt-sub":"orders-reader""#,
        r#""x-jwt-tenant":"a""#,
        r#""x-jwt-scope":"orders:read""#,
    ] {
        assert!(allowed.contains(part), "echo lacks {part}:\n{allowed}");
    }
    assert!(
        !allowed.to_ascii_lowercase().contains("\"authorization\""),
        "the token went to the upstream:\n{allowed}"
    );
    assert!(
        allowed.to_ascii_lowercase().contains("ratelimit-policy:"),
        "no RateLimit-Policy header:\n{allowed}"
    );

    // 1 + 3: the same token on tenant b's order: 403, the tenant boundary.
    let refused = bash(&format!(
        "set -euo pipefail\n{source_cmd}\n{token_cmd}\n{refused_cmd}"
    ));
    assert_eq!(status_of(&refused), 403, "refused call:\n{refused}");
    assert!(refused.contains("access_denied"), "{refused}");

    // Without a token: 401 with a Bearer challenge.
    let anonymous = bash(&format!("curl -s -i {gateway}/tenants/a/orders/42"));
    assert_eq!(status_of(&anonymous), 401, "no token:\n{anonymous}");
    assert!(
        anonymous
            .to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{anonymous}"
    );

    // Every command of the quick look and of the README's metrics section, with its documented
    // answer.
    let mut checked = check_doc_samples(
        "docs/quick-look.md",
        &["Quick look", "What each filter did to your request"],
        source_cmd,
    );
    checked += check_doc_samples("README.md", &["Metrics"], source_cmd);
    // The allowed and refused calls, the two mTLS calls, the tour's calls, the loop and its 429,
    // the audit record and its chain, the metrics.
    assert!(checked >= 11, "only {checked} commands found");

    // status tells what runs; a second `up` says it is up and starts nothing.
    let status = stack.run("status");
    assert!(status.status.success(), "status:\n{}", text(&status));
    let status_out = String::from_utf8_lossy(&status.stdout);
    for name in stack.parts {
        assert!(
            status_out
                .lines()
                .any(|l| l.starts_with(name) && l.contains("running")),
            "status does not show {name} running:\n{status_out}"
        );
    }
    let pids = stack.pids();
    assert_eq!(pids.len(), 4, "pid files: {pids:?}");
    let again = stack.gateway_sh(&stack.dir, &["up", "--minimal"]);
    assert!(again.status.success(), "second up:\n{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already up"),
        "{}",
        text(&again)
    );
    assert_eq!(stack.pids(), pids, "a second up changed the processes");

    // Another stack on the same ports is refused before anything starts.
    let other_dir = scratch_dir("gateway-conflict");
    let conflict = stack.gateway_sh(&other_dir, &["up", "--minimal"]);
    assert!(!conflict.status.success(), "{}", text(&conflict));
    assert!(
        String::from_utf8_lossy(&conflict.stderr).contains("in use"),
        "{}",
        text(&conflict)
    );
    for name in stack.parts {
        assert!(!other_dir.join(format!("{name}.pid")).exists());
    }

    // down stops exactly what up started.
    stack.down = true;
    let down = stack.run("down");
    assert!(down.status.success(), "down:\n{}", text(&down));
    for (name, pid) in &pids {
        assert!(gone(*pid), "{name} (pid {pid}) still runs after down");
        assert!(!stack.dir.join(format!("{name}.pid")).exists());
    }
    let after = stack.run("status");
    assert!(!after.status.success());
    assert!(String::from_utf8_lossy(&after.stdout).contains("not running"));

    let _ = fs::remove_dir_all(&stack.dir);
    let _ = fs::remove_dir_all(&other_dir);
}

#[test]
fn gateway_up_runs_the_bank_reference_and_every_documented_step_works() {
    let mut stack = Stack {
        dir: scratch_dir("gateway-bank"),
        ports: Ports::free(),
        parts: &REFERENCE_PARTS,
        down: false,
    };
    let up = stack.run("up");
    let up_text = text(&up);
    assert!(up.status.success(), "gateway.sh up failed\n{up_text}");
    let stdout = String::from_utf8_lossy(&up.stdout).into_owned();
    for n in 1..=13 {
        assert!(
            stdout.contains(&format!("[{n}/13] ")),
            "step {n} not shown\n{up_text}"
        );
    }
    let source_cmd = stdout
        .lines()
        .find(|l| l.starts_with("source "))
        .unwrap_or_else(|| panic!("no `source` command\n{up_text}"));
    // The env file names every part a command of the walk uses, on this stack's ports.
    let sourced = bash(&format!(
        "set -euo pipefail\n{source_cmd}\nprintf '%s ' \"$GATEWAY\" \"$GATEWAY2\" \"$MTLS\" \"$MTLS2\" \"$ADMIN\" \"$ADMIN2\" \"$MESH\" \"$MESH_ADMIN\" \"$IDP\" \"$PROMETHEUS\""
    ));
    let p = |name: &str| stack.ports.get(name);
    assert_eq!(
        sourced,
        format!(
            "http://127.0.0.1:{} http://127.0.0.1:{} https://127.0.0.1:{} https://127.0.0.1:{} http://127.0.0.1:{} http://127.0.0.1:{} http://127.0.0.1:{} http://127.0.0.1:{} http://127.0.0.1:{} http://127.0.0.1:{} ",
            p("GATEWAY"), p("GATEWAY2"), p("MTLS"), p("MTLS2"), p("ADMIN"), p("ADMIN2"),
            p("MESH"), p("MESH_ADMIN"), p("IDP"), p("PROMETHEUS")
        ),
        "the env file's addresses"
    );
    // The commands `up` prints: a token, an allowed and a refused call.
    let token_cmd = printed_line(&up, "TOKEN_A=$(", "");
    let curl_line = |tenant: &str| printed_line(&up, "curl -i", &format!("/tenants/{tenant}/"));
    let allowed = bash(&format!(
        "set -euo pipefail\n{source_cmd}\n{token_cmd}\n{}",
        curl_line("bank-a")
    ));
    assert_eq!(status_of(&allowed), 200, "allowed call:\n{allowed}");
    assert!(
        allowed.contains(r#""x-spiffe-id":"spiffe://bank-a.bank.example/user/bank-a-teller""#),
        "{allowed}"
    );
    let refused = bash(&format!(
        "set -euo pipefail\n{source_cmd}\n{token_cmd}\n{}",
        curl_line("bank-b")
    ));
    assert_eq!(status_of(&refused), 403, "refused call:\n{refused}");

    // Every command of the README's quick start and of the reference's walk.
    let mut checked = check_doc_samples("README.md", &["Quick start"], source_cmd);
    checked += check_doc_samples("docs/bank-reference.md", &["The walk"], source_cmd);
    assert!(checked >= 20, "only {checked} commands found");

    // Prometheus has loaded shieldwall's alert rules and scrapes the three Envoys.
    let targets = bash(&format!(
        "set -euo pipefail\n{source_cmd}\ncurl -s $PROMETHEUS/api/v1/targets"
    ));
    let targets: serde_json::Value = serde_json::from_str(&targets).expect("targets JSON");
    let active = targets["data"]["activeTargets"]
        .as_array()
        .expect("active targets");
    assert_eq!(active.len(), 3, "{targets}");
    assert!(
        active.iter().all(|t| t["health"] == "up"),
        "a target is not up: {targets}"
    );

    let status = stack.run("status");
    assert!(status.status.success(), "status:\n{}", text(&status));
    let pids = stack.pids();
    assert_eq!(pids.len(), REFERENCE_PARTS.len(), "pid files: {pids:?}");
    // The minimal stack cannot start over a running reference.
    let other = stack.gateway_sh(&stack.dir, &["up", "--minimal"]);
    assert!(!other.status.success(), "{}", text(&other));

    stack.down = true;
    let down = stack.run("down");
    assert!(down.status.success(), "down:\n{}", text(&down));
    for (name, pid) in &pids {
        assert!(gone(*pid), "{name} (pid {pid}) still runs after down");
        assert!(!stack.dir.join(format!("{name}.pid")).exists());
    }
    let _ = fs::remove_dir_all(&stack.dir);
}

/// The diagram of docs/bank-reference.md names every part `up` starts and every filter of the
/// gateways' chain, so that it cannot silently fall behind envoy/bank/.
#[test]
fn the_bank_reference_diagram_names_what_runs() {
    let svg = fs::read_to_string(repo_root().join("docs/bank-reference.svg")).expect("the diagram");
    let gateway =
        fs::read_to_string(repo_root().join("envoy/bank/gateway.yaml")).expect("gateway.yaml");
    let mut filters: Vec<&str> = gateway
        .split("\"filter\": \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    filters.sort_unstable();
    filters.dedup();
    assert!(filters.len() >= 8, "{filters:?}");
    for name in filters {
        assert!(svg.contains(name), "the diagram does not show {name}");
    }
    for part in [
        "gateway-1",
        "gateway-2",
        "mesh ingress",
        "jwt_authn",
        "rbac",
        "rls-redis",
        "Redis",
        "syslog-ng",
        "Prometheus",
        "OpenID Provider",
        "bank-a-accounts",
        "bank-b-accounts",
    ] {
        assert!(svg.contains(part), "the diagram does not show {part}");
    }
    let doc = fs::read_to_string(repo_root().join("docs/bank-reference.md")).expect("the page");
    assert!(
        doc.contains("](bank-reference.svg)"),
        "the page shows the diagram"
    );
}

/// Both bank gateways export shieldwall's metrics with the stats tags the alert rules and the
/// dashboard are written for: envoy/bank/gateway.yaml carries envoy/observability/stats-tags.yaml.
#[test]
fn the_bank_gateways_carry_the_observability_stats_tags() {
    let read = |path: &str| fs::read_to_string(repo_root().join(path)).expect(path);
    let tags = read("envoy/observability/stats-tags.yaml");
    let block = &tags[tags.find("stats_config:").expect("stats_config")..];
    assert!(
        read("envoy/bank/gateway.yaml").contains(block),
        "envoy/bank/gateway.yaml lacks the stats_config of envoy/observability/stats-tags.yaml"
    );
}

// ------------------------------------------------------------------ the README's samples

/// A command of the README and what it documents about its answer.
#[derive(Debug)]
enum Expect {
    /// A sample output block (```text) right after the command's block.
    Sample(String),
    /// A trailing comment `# 401 missing_token`: the status and the body's `error`.
    Status(u16, String),
}

/// The text of the section under `## {heading}`, up to the next `## `.
fn section<'a>(readme: &'a str, heading: &str) -> &'a str {
    let start = readme
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README has no section `{heading}`"));
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

/// The fenced blocks of a text, in order: (language, body).
fn fenced_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(lang) = line.strip_prefix("```") else {
            continue;
        };
        let mut body = String::new();
        for inner in lines.by_ref() {
            if inner.starts_with("```") {
                break;
            }
            body.push_str(inner);
            body.push('\n');
        }
        blocks.push((lang.trim().to_string(), body));
    }
    blocks
}

/// The `source` line and the lines that set a shell variable (`TOKEN=$(curl …)`): run before every
/// command, answering nothing of their own.
fn is_prelude(line: &str) -> bool {
    line.starts_with("source ")
        || line.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
        })
}

/// The commands a user runs in these sections, each with what the README says it answers. The
/// `source` line and the token commands are the prelude of every command; `scripts/gateway.sh`
/// lines are the test's own business. Every other command must document its answer.
fn readme_commands(text: &str) -> (Vec<String>, Vec<(String, Expect)>) {
    let blocks = fenced_blocks(text);
    let mut prelude = Vec::new();
    let mut commands = Vec::new();
    for (i, (lang, body)) in blocks.iter().enumerate() {
        if lang != "sh" {
            continue;
        }
        let lines: Vec<&str> = body
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains("scripts/gateway.sh"))
            .collect();
        let sample = blocks
            .get(i + 1)
            .filter(|(lang, _)| lang == "text")
            .map(|(_, body)| body.clone());
        for line in &lines {
            if is_prelude(line) {
                prelude.push(line.to_string());
                continue;
            }
            let expect = if let Some((cmd, comment)) = line.split_once(" # ") {
                let mut words = comment.split_whitespace();
                let status = words.next().and_then(|w| w.parse().ok());
                match (status, words.next()) {
                    (Some(status), Some(error)) => {
                        commands
                            .push((cmd.trim().to_string(), Expect::Status(status, error.into())));
                        continue;
                    }
                    _ => panic!("README command with an unreadable comment: {line}"),
                }
            } else {
                assert_eq!(
                    lines.iter().filter(|l| !is_prelude(l)).count(),
                    1,
                    "README: a block of several commands needs a `# STATUS error` comment on each: {body}"
                );
                Expect::Sample(sample.clone().unwrap_or_else(|| {
                    panic!("README command without a documented answer: {line}")
                }))
            };
            commands.push((line.to_string(), expect));
        }
    }
    (prelude, commands)
}

/// `pattern` with `…` standing for any text (also none), matched against the whole of `text`.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('…').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// A sample JSON value against the real one: `"…"` matches any value; an object matches when
/// every member it names matches, and has no other member unless the sample has a `"…"` member.
fn json_matches(sample: &serde_json::Value, real: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (sample, real) {
        (Value::String(s), _) if s == "…" => true,
        (Value::String(s), Value::String(r)) if s.contains('…') => glob(s, r),
        (Value::Object(s), Value::Object(r)) => {
            s.iter()
                .filter(|(k, _)| k.as_str() != "…")
                .all(|(k, v)| r.get(k).is_some_and(|rv| json_matches(v, rv)))
                && (s.contains_key("…") || r.keys().all(|k| s.contains_key(k)))
        }
        (Value::Array(s), Value::Array(r)) => {
            s.len() == r.len() && s.iter().zip(r).all(|(a, b)| json_matches(a, b))
        }
        _ => sample == real,
    }
}

/// Sample lines against real lines, in order: a line `…` skips any number of lines, every other
/// line must match (with `…` inside it) the next line, or after a `…` a later one.
fn lines_match(sample: &str, real: &str) -> Result<(), String> {
    // Trailing blanks are not visible in a sample (the loop's `%{http_code} ` leaves one).
    let real: Vec<&str> = real.lines().map(str::trim_end).collect();
    let mut at = 0;
    let mut skipping = false;
    for line in sample.lines() {
        if line.trim() == "…" {
            skipping = true;
            continue;
        }
        loop {
            let Some(candidate) = real.get(at) else {
                return Err(format!("no line matches `{line}`"));
            };
            at += 1;
            if glob(line.trim_end(), candidate) {
                break;
            }
            if !skipping {
                return Err(format!("`{candidate}` does not match `{line}`"));
            }
        }
        skipping = false;
    }
    if !skipping && at < real.len() {
        return Err(format!("unexpected line `{}`", real[at]));
    }
    Ok(())
}

/// A `curl -i` sample (status line, headers, body) against the real answer.
fn http_matches(sample: &str, real: &str) -> Result<(), String> {
    let real = real.replace("\r\n", "\n");
    let (s_head, s_body) = sample.split_once("\n\n").unwrap_or((sample, ""));
    let (r_head, r_body) = real.split_once("\n\n").unwrap_or((&real, ""));
    let mut s_lines = s_head.lines();
    let mut r_lines = r_head.lines();
    let (s_status, r_status) = (s_lines.next().unwrap_or(""), r_lines.next().unwrap_or(""));
    if !glob(s_status, r_status) {
        return Err(format!("status `{r_status}`, documented `{s_status}`"));
    }
    let real_headers: Vec<(String, String)> = r_lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut others_allowed = false;
    let mut documented = 0;
    for line in s_lines {
        if line.trim() == "…" {
            others_allowed = true;
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("sample header line `{line}`"))?;
        let name = name.trim().to_ascii_lowercase();
        documented += 1;
        let found = real_headers
            .iter()
            .any(|(n, v)| *n == name && glob(value.trim(), v));
        if !found {
            return Err(format!(
                "no header matches `{line}`; the answer has {real_headers:?}"
            ));
        }
    }
    if !others_allowed && real_headers.len() != documented {
        return Err(format!("headers not in the sample: {real_headers:?}"));
    }
    let s_body = s_body.trim();
    let r_body = r_body.trim();
    if s_body.starts_with('{') {
        let sample: serde_json::Value =
            serde_json::from_str(s_body).map_err(|e| format!("sample body is not JSON: {e}"))?;
        let answer: serde_json::Value =
            serde_json::from_str(r_body).map_err(|e| format!("answer body is not JSON: {e}"))?;
        if !json_matches(&sample, &answer) {
            return Err(format!("body {answer} does not match the sample {sample}"));
        }
    } else if !glob(s_body, r_body) {
        return Err(format!("body `{r_body}`, documented `{s_body}`"));
    }
    Ok(())
}

/// Runs each command of these sections of a document (the README, a page of docs/), in order
/// (with the stack's env file and the variables its commands set), and compares each answer with
/// what the document shows. Returns how many commands were checked.
fn check_doc_samples(doc: &str, headings: &[&str], source_cmd: &str) -> usize {
    let readme = fs::read_to_string(repo_root().join(doc)).unwrap_or_else(|e| panic!("{doc}: {e}"));
    let mut checked = 0;
    // Each variable command (`TOKEN=$(curl …)`) runs once, as a user runs it once: the commands
    // after it, also in the later sections, share its value (and no token request slows them
    // down between two rate-limited calls).
    let mut head = format!("set -euo pipefail\n{source_cmd}\n");
    for heading in headings {
        let (prelude, commands) = readme_commands(section(&readme, heading));
        for line in prelude.iter().filter(|l| !l.starts_with("source ")) {
            let name = line.split_once('=').map_or("", |(n, _)| n);
            let value = bash(&format!(
                "set -euo pipefail\n{source_cmd}\n{line}\nprintf %s \"${{{name}:-}}\""
            ));
            assert!(!value.contains('\''), "{doc}: `{line}` gave {value}");
            head.push_str(&format!("{name}='{value}'\n"));
        }
        for (command, expect) in commands {
            if command.contains("/statements") {
                wait_for_a_fresh_minute();
            }
            let answer = bash(&format!("{head}{command}"));
            match expect {
                Expect::Status(status, error) => {
                    assert_eq!(status_of(&answer), status, "{doc}: `{command}`\n{answer}");
                    let body = answer.replace("\r\n", "\n");
                    let body = body.split_once("\n\n").map_or("", |(_, b)| b);
                    let code = serde_json::from_str::<serde_json::Value>(body.trim())
                        .ok()
                        .and_then(|v| v["error"].as_str().map(str::to_owned));
                    assert_eq!(
                        code.as_deref(),
                        Some(error.as_str()),
                        "{doc}: `{command}`\n{answer}"
                    );
                }
                Expect::Sample(sample) => {
                    let result = if sample.starts_with("HTTP/") {
                        http_matches(&sample, &answer)
                    } else {
                        lines_match(&sample, &answer)
                    };
                    if let Err(why) = result {
                        panic!("{doc}: `{command}` answered\n{answer}\nwhich is not the sample\n{sample}\n({why})");
                    }
                }
            }
            checked += 1;
        }
    }
    checked
}

/// The global limit counts in whole-minute windows (as Envoy's reference service does): a burst
/// that straddled a minute's end would be counted in two windows. Waits until at least 15 seconds
/// of the current minute are left.
fn wait_for_a_fresh_minute() {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    let into = now % 60;
    if into > 45 {
        std::thread::sleep(Duration::from_secs(61 - into));
    }
}

#[test]
fn the_readme_sample_matchers_can_fail() {
    assert!(glob("200 200 … 429 429", "200 200 200 429 429"));
    assert!(!glob("200 200 … 429 429", "200 200 200 200"));
    assert!(glob("r=…;t=…", "r=3;t=1"));
    assert!(!glob("r=…;t=1", "r=3;t=2"));
    let sample: serde_json::Value = serde_json::json!({"a": "…", "b": {"c": 1, "…": "…"}});
    assert!(json_matches(
        &sample,
        &serde_json::json!({"a": [1], "b": {"c": 1, "d": 2}})
    ));
    assert!(!json_matches(
        &sample,
        &serde_json::json!({"a": 1, "b": {"c": 2}})
    ));
    assert!(!json_matches(
        &sample,
        &serde_json::json!({"a": 1, "b": {"c": 1}, "e": 0})
    ));
    assert!(lines_match("…\nx 1\n…", "a\nx 1\nb").is_ok());
    assert!(lines_match("x …", "x 1\ny").is_err());
    let real = "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ndate: now\r\n\r\n{\"error\":\"e\"}";
    assert!(http_matches(
        "HTTP/1.1 403 Forbidden\ncontent-type: application/json\n…\n\n{\"error\":\"e\"}",
        real
    )
    .is_ok());
    assert!(http_matches(
        "HTTP/1.1 403 Forbidden\ncontent-type: application/json\n\n{\"error\":\"e\"}",
        real
    )
    .is_err());
    assert!(http_matches("HTTP/1.1 200 OK\n…\n\n{\"error\":\"e\"}", real).is_err());
}
