//! Envoy end-to-end test support for shieldwall.
//!
//! The end-to-end tests load the release `.wasm` modules into a real Envoy and send it real
//! requests. This crate gives them the parts they share:
//!
//! - [`EnvoyConfig`] renders an Envoy bootstrap from the templates in `envoy/templates/`: one
//!   loopback listener, an HTTP connection manager with a list of HTTP filters (wasm or native),
//!   routes to clusters, admin on loopback.
//! - [`Envoy`] starts Envoy with that config, waits until it is live and kills it on drop, also
//!   when the test panics.
//! - [`Echo`] is an upstream that answers every request with what it received.
//! - [`Idp`] runs the OpenID Provider of `envoy/idp/` and fetches tokens from it.
//! - [`http`] is a tiny HTTP/1.1 client and [`curl`] sends HTTPS requests with a client
//!   certificate; [`jwt`] decodes tokens for assertions and [`keys`] makes signing keys with
//!   openssl.
//! - [`SyslogNg`] runs syslog-ng with a test's configuration (the audit-log shipping path).
//! - [`SiemReceiver`] is a loopback SIEM for audit-log's HTTP sink that can be slow, failing or down.
//! - [`gateway_chain()`] reads the one-module chain of `envoy/gateway.yaml` as the gateway runs it.
//! - [`Prometheus`] runs Prometheus scraping a test's Envoy; [`prometheus`] also reads Envoy's
//!   `/stats/prometheus` and the metric selectors of the rules and the dashboard.
//!
//! Helpers here panic with a message that says what to do (build the module, run the setup script)
//! rather than return errors: they are test support, and a missing Envoy must fail a test, never
//! skip it.

pub mod config;
pub mod curl;
pub mod echo;
pub mod envoy;
pub mod gateway_chain;
pub mod http;
pub mod idp;
pub mod jwt;
pub mod keys;
pub mod prometheus;
pub mod siem;
pub mod syslog;

pub use config::{Cluster, DownstreamTls, EnvoyConfig, HttpFilter, Route, UpstreamTls, WasmFilter};
pub use echo::Echo;
pub use envoy::{envoy_binary, example_config, validate_config, Envoy, StartError};
pub use gateway_chain::gateway_chain;
pub use http::Response;
pub use idp::{ClientAuth, Idp, IdpOptions, TokenError};
pub use prometheus::Prometheus;
pub use siem::{SiemMode, SiemReceiver};
pub use syslog::SyslogNg;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The `envoy/` directory of the repository (this crate's manifest directory).
pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The repository root (the workspace root).
pub fn repo_root() -> PathBuf {
    crate_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| crate_dir().to_path_buf())
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set (relative to the repository root when
/// relative), else `<repo>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                repo_root().join(dir)
            }
        }
        _ => repo_root().join("target"),
    }
}

/// The release module of crate `name`: `<target>/wasm32-wasip1/release/<name>.wasm`, with `-` in
/// the crate name turned into `_` as cargo does. Panics, saying how to build it, when it is missing.
pub fn wasm_path(name: &str) -> PathBuf {
    let file = format!("{}.wasm", name.replace('-', "_"));
    let path = target_dir()
        .join("wasm32-wasip1")
        .join("release")
        .join(&file);
    if !path.is_file() {
        panic!(
            "wasm module {} not found; build it first: cargo build --release --target wasm32-wasip1 -p {}",
            path.display(),
            name.replace('_', "-")
        );
    }
    path
}

/// A TCP port on 127.0.0.1 that was free a moment ago. Prefer port 0 in configs where the port
/// can be read back afterwards (Envoy's listener and admin do that): this can race.
pub fn free_port() -> u16 {
    let listener =
        TcpListener::bind(("127.0.0.1", 0)).unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
        .port()
}

/// A new, empty directory for one instance's files (config, logs, keys), unique across the
/// processes and threads that run tests at the same time.
pub fn scratch_dir(prefix: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "shieldwall-{prefix}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Renders a template: every `{{NAME}}` is replaced by its value. A placeholder that stands alone
/// on its line (only indentation before it) takes a block: each line of the value is indented to
/// the placeholder's column, and an empty value removes the line. Panics on a placeholder without
/// a value, so a typo in a template is loud.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let lookup = |name: &str| -> &str {
        values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("template placeholder {{{{{name}}}}} has no value"))
    };
    let mut out = String::with_capacity(template.len());
    for line in template.lines() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed
            .strip_prefix("{{")
            .and_then(|rest| rest.strip_suffix("}}"))
            .filter(|name| !name.contains('{') && !name.contains('}'))
        {
            let indent = &line[..line.len() - trimmed.len()];
            for value_line in lookup(name).lines() {
                if value_line.is_empty() {
                    out.push('\n');
                } else {
                    out.push_str(indent);
                    out.push_str(value_line);
                    out.push('\n');
                }
            }
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start + 2..].find("}}") else {
                break;
            };
            out.push_str(&rest[..start]);
            out.push_str(lookup(&rest[start + 2..start + 2 + len]));
            rest = &rest[start + 2 + len + 2..];
        }
        out.push_str(rest);
        out.push('\n');
    }
    out
}

/// Runs `scripts/audit-verify FILE` (the audit-log chain verifier) with `chain_key` as
/// `AUDIT_CHAIN_KEY`: its exit code and its output (stdout, then stderr).
pub fn audit_verify(file: &Path, chain_key: &str) -> (i32, String) {
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("scripts").join("audit-verify"))
        .arg(file)
        .env("AUDIT_CHAIN_KEY", chain_key)
        .output()
        .unwrap_or_else(|e| panic!("run scripts/audit-verify: {e}"));
    (out.status.code().unwrap_or(-1), output_text(&out))
}

/// A finished command's standard output followed by its standard error, as one text.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A string as a YAML scalar that means exactly that string: a JSON string literal, which YAML
/// reads as a double-quoted scalar.
pub fn yaml_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_substitutes_inline_and_indents_blocks() {
        let t = "a: {{X}}\n  {{BLOCK}}\nb: [{{X}}, {{Y}}]\n  {{EMPTY}}\nc: 1\n";
        let out = render(
            t,
            &[
                ("X", "1"),
                ("Y", "two"),
                ("BLOCK", "- k: v\n  w: z"),
                ("EMPTY", ""),
            ],
        );
        assert_eq!(out, "a: 1\n  - k: v\n    w: z\nb: [1, two]\nc: 1\n");
    }

    #[test]
    #[should_panic(expected = "{{MISSING}} has no value")]
    fn render_refuses_unknown_placeholders() {
        render("x: {{MISSING}}\n", &[]);
    }

    #[test]
    fn yaml_str_quotes_and_escapes() {
        assert_eq!(yaml_str(r#"{"a":"b\c"}"#), r#""{\"a\":\"b\\c\"}""#);
    }

    #[test]
    fn wasm_path_names_the_build_command_when_missing() {
        let err = std::panic::catch_unwind(|| wasm_path("shieldwall-no-such-module"))
            .expect_err("a missing module must panic");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("shieldwall_no_such_module.wasm"), "{msg}");
        assert!(
            msg.contains(
                "cargo build --release --target wasm32-wasip1 -p shieldwall-no-such-module"
            ),
            "{msg}"
        );
    }
}
