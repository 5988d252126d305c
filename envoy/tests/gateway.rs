//! The local gateway as a user meets it: `scripts/gateway.sh up` on free ports with its own state
//! directory, then the three commands it prints (get a token, an allowed call, a refused call) run
//! with bash exactly as printed, then `down`, after which none of the processes it started lives.
//!
//! `down` also runs when an assertion fails (a guard), so a failing test leaves nothing running.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use shieldwall_e2e::{free_port, repo_root, scratch_dir};

struct Ports {
    gateway: u16,
    admin: u16,
    idp: u16,
    upstream: u16,
}

impl Ports {
    fn free() -> Ports {
        let mut taken: Vec<u16> = Vec::new();
        let mut next = || loop {
            let p = free_port();
            if !taken.contains(&p) {
                taken.push(p);
                return p;
            }
        };
        Ports {
            gateway: next(),
            admin: next(),
            idp: next(),
            upstream: next(),
        }
    }
}

/// One gateway stack: runs `scripts/gateway.sh` with its ports and state directory; `down` on drop.
struct Stack {
    dir: PathBuf,
    ports: Ports,
    down: bool,
}

impl Stack {
    fn gateway_sh(&self, dir: &Path, command: &str) -> Output {
        let script = repo_root().join("scripts").join("gateway.sh");
        Command::new("bash")
            .arg(&script)
            .arg(command)
            .current_dir(repo_root())
            .env("SHIELDWALL_GATEWAY_DIR", dir)
            .env("SHIELDWALL_GATEWAY_PORT", self.ports.gateway.to_string())
            .env("SHIELDWALL_ADMIN_PORT", self.ports.admin.to_string())
            .env("SHIELDWALL_IDP_PORT", self.ports.idp.to_string())
            .env("SHIELDWALL_UPSTREAM_PORT", self.ports.upstream.to_string())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()))
    }

    fn run(&self, command: &str) -> Output {
        self.gateway_sh(&self.dir, command)
    }

    fn pids(&self) -> Vec<(String, u32)> {
        ["idp", "echo", "envoy"]
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
fn gateway_up_prints_three_commands_that_work_and_down_stops_everything() {
    let mut stack = Stack {
        dir: scratch_dir("gateway"),
        ports: Ports::free(),
        down: false,
    };

    let up = stack.run("up");
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
    assert_eq!(gateway, format!("http://127.0.0.1:{}", stack.ports.gateway));
    // The commands read the addresses from the env file that `up` wrote and names.
    let source_cmd = stdout
        .lines()
        .find(|l| l.starts_with("source "))
        .unwrap_or_else(|| panic!("no `source` command\n{up_text}"));
    let sourced = bash(&format!(
        "set -euo pipefail\n{source_cmd}\nprintf '%s %s %s %s' \"$GATEWAY\" \"$IDP\" \"$ADMIN\" \"$UPSTREAM\""
    ));
    assert_eq!(
        sourced,
        format!(
            "{gateway} http://127.0.0.1:{} http://127.0.0.1:{} http://127.0.0.1:{}",
            stack.ports.idp, stack.ports.admin, stack.ports.upstream
        ),
        "the env file's addresses"
    );
    let token_cmd = stdout
        .lines()
        .find(|l| l.starts_with("TOKEN=$("))
        .unwrap_or_else(|| panic!("no token command\n{up_text}"));
    let curl_line = |tenant: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with("curl -i") && l.contains(&format!("/tenants/{tenant}/")))
            .unwrap_or_else(|| panic!("no curl command for tenant {tenant}\n{up_text}"))
    };
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

    // status tells what runs; a second `up` says it is up and starts nothing.
    let status = stack.run("status");
    assert!(status.status.success(), "status:\n{}", text(&status));
    let status_out = String::from_utf8_lossy(&status.stdout);
    for name in ["idp", "echo", "envoy"] {
        assert!(
            status_out
                .lines()
                .any(|l| l.starts_with(name) && l.contains("running")),
            "status does not show {name} running:\n{status_out}"
        );
    }
    let pids = stack.pids();
    assert_eq!(pids.len(), 3, "pid files: {pids:?}");
    let again = stack.run("up");
    assert!(again.status.success(), "second up:\n{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already up"),
        "{}",
        text(&again)
    );
    assert_eq!(stack.pids(), pids, "a second up changed the processes");

    // Another stack on the same ports is refused before anything starts.
    let other_dir = scratch_dir("gateway-conflict");
    let conflict = stack.gateway_sh(&other_dir, "up");
    assert!(!conflict.status.success(), "{}", text(&conflict));
    assert!(
        String::from_utf8_lossy(&conflict.stderr).contains("in use"),
        "{}",
        text(&conflict)
    );
    for name in ["idp", "echo", "envoy"] {
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
