//! A real Envoy process for one test, killed on drop.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use crate::config::EnvoyConfig;
use crate::http::{self, Response};
use crate::{repo_root, scratch_dir};

/// How long Envoy may take to become LIVE (V8 compiles every module once per worker).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The Envoy binary that `scripts/envoy-path.sh` names. Panics, saying how to install it, when
/// there is none: a test that needs Envoy must fail without it, never pass.
pub fn envoy_binary() -> PathBuf {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = BINARY.get_or_init(|| {
        let script = repo_root().join("scripts").join("envoy-path.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !path.is_empty() {
            Ok(PathBuf::from(path))
        } else {
            Err(format!(
                "no Envoy binary found by scripts/envoy-path.sh ({}); run scripts/setup.sh to install it",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    });
    match found {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// Envoy failed to start: it exited or did not become LIVE in time.
#[derive(Debug)]
pub struct StartError {
    pub reason: String,
    /// Envoy's log (stdout and stderr).
    pub log: String,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "envoy did not start: {}\n--- envoy log ---\n{}",
            self.reason, self.log
        )
    }
}

impl std::error::Error for StartError {}

/// A running Envoy. Dropping it kills the process and waits for it, also while a test unwinds
/// from a panic. Its files (config, log, access log) are removed then, unless the thread is
/// panicking: then they stay and the path is printed.
pub struct Envoy {
    child: Child,
    dir: PathBuf,
    admin: SocketAddr,
    listener: SocketAddr,
    config_yaml: String,
}

impl Envoy {
    /// Starts Envoy and waits until admin `/ready` says LIVE. Panics with Envoy's log when it
    /// does not start.
    pub fn start(config: EnvoyConfig) -> Envoy {
        Self::try_start(config).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Envoy::start`], returning the failure, for tests that expect a config to be refused.
    pub fn try_start(config: EnvoyConfig) -> Result<Envoy, StartError> {
        let binary = envoy_binary();
        let dir = scratch_dir("envoy");
        let config_path = dir.join("envoy.yaml");
        let log_path = dir.join("envoy.log");
        let admin_path = dir.join("admin-address");
        let yaml = config.to_yaml(&dir.join("access.log"));
        let fail = |reason: String| StartError {
            reason,
            log: String::new(),
        };
        fs::write(&config_path, &yaml).map_err(|e| fail(format!("write config: {e}")))?;
        let log = File::create(&log_path).map_err(|e| fail(format!("create log: {e}")))?;
        let log_err = log
            .try_clone()
            .map_err(|e| fail(format!("clone log: {e}")))?;

        let mut cmd = Command::new(&binary);
        cmd.arg("-c")
            .arg(&config_path)
            .args(["--base-id", &unique_base_id().to_string()])
            .args(["--concurrency", &config.concurrency.to_string()])
            .args(["--log-level", &config.log_level])
            .arg("--admin-address-path")
            .arg(&admin_path)
            // Drain at once on shutdown; tests do not wait for graceful drains.
            .args(["--drain-time-s", "0", "--parent-shutdown-time-s", "1"]);
        if !config.component_log_level.is_empty() {
            cmd.args(["--component-log-level", &config.component_log_level]);
        }
        cmd.args(&config.extra_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = cmd
            .spawn()
            .map_err(|e| fail(format!("spawn {}: {e}", binary.display())))?;

        // From here on the guard owns the process: any early return kills it.
        let mut envoy = Envoy {
            child,
            dir,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            listener: SocketAddr::from(([127, 0, 0, 1], 0)),
            config_yaml: yaml,
        };
        match envoy.wait_live(&admin_path) {
            Ok(()) => Ok(envoy),
            Err(reason) => {
                let log = envoy.log();
                // Not a panic: remove the files as usual, the log is in the error.
                Err(StartError { reason, log })
            }
        }
    }

    fn wait_live(&mut self, admin_path: &Path) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("envoy exited with {status}"));
            }
            if Instant::now() > deadline {
                return Err(format!("not LIVE after {START_TIMEOUT:?}"));
            }
            if self.admin.port() == 0 {
                if let Some(addr) = fs::read_to_string(admin_path)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                {
                    self.admin = addr;
                }
            }
            if self.admin.port() != 0 {
                if let Ok(resp) = http::request_with_timeout(
                    self.admin,
                    "GET",
                    "/ready",
                    &[],
                    b"",
                    Duration::from_secs(2),
                ) {
                    if resp.status == 200 && resp.text().trim() == "LIVE" {
                        self.listener = self.read_listener_address()?;
                        return Ok(());
                    }
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn read_listener_address(&self) -> Result<SocketAddr, String> {
        let resp = self
            .admin_get("/listeners?format=json")
            .map_err(|e| format!("admin /listeners: {e}"))?;
        let v = resp.json();
        let sock = v["listener_statuses"]
            .as_array()
            .and_then(|l| l.iter().find(|s| s["name"] == "main"))
            .map(|s| &s["local_address"]["socket_address"])
            .ok_or_else(|| format!("admin /listeners has no listener `main`: {v}"))?;
        let port = sock["port_value"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| format!("admin /listeners: no port: {v}"))?;
        Ok(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// The listener's address (`127.0.0.1:<port>`).
    pub fn addr(&self) -> SocketAddr {
        self.listener
    }

    pub fn port(&self) -> u16 {
        self.listener.port()
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The process id (to show that it is gone after drop).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The rendered bootstrap YAML.
    pub fn config_yaml(&self) -> &str {
        &self.config_yaml
    }

    /// The directory with `envoy.yaml`, `envoy.log` and `access.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sends a request through the listener. Panics on a connection error (use
    /// [`http::request`] with [`Envoy::addr`] to see those).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        http::request(self.listener, method, path, headers, body).unwrap_or_else(|e| {
            panic!(
                "{method} {path} via envoy at {}: {e}\n--- envoy log ---\n{}",
                self.listener,
                self.log()
            )
        })
    }

    /// `GET path` with the given headers.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", path, headers, b"")
    }

    /// `GET path` with `Authorization: Bearer <token>`.
    pub fn get_with_token(&self, path: &str, token: &str) -> Response {
        let auth = format!("Bearer {token}");
        self.request("GET", path, &[("authorization", &auth)], b"")
    }

    fn admin_get(&self, path: &str) -> std::io::Result<Response> {
        http::request(self.admin, "GET", path, &[], b"")
    }

    /// Waits until the modules have flushed what they counted so far (their counters reach
    /// Envoy on the tick: [`crate::config::METRICS_SETTLE`]). The stats reads here call it.
    pub fn settle_metrics(&self) {
        std::thread::sleep(crate::config::METRICS_SETTLE);
    }

    /// Admin `/stats/prometheus`.
    pub fn stats_prometheus(&self) -> String {
        self.settle_metrics();
        self.admin_get("/stats/prometheus")
            .unwrap_or_else(|e| panic!("admin /stats/prometheus: {e}"))
            .text()
    }

    /// The value of counter or gauge `name` as Envoy names it in admin `/stats` (metrics that a
    /// wasm module defines appear with the `wasmcustom.` prefix). None when Envoy has no such stat.
    pub fn stat(&self, name: &str) -> Option<u64> {
        self.settle_metrics();
        let text = self
            .admin_get("/stats")
            .unwrap_or_else(|e| panic!("admin /stats: {e}"))
            .text();
        text.lines().find_map(|line| {
            let (n, v) = line.split_once(": ")?;
            (n == name).then(|| v.trim().parse().ok()).flatten()
        })
    }

    /// Every stat whose name contains `part`, as `(name, value)` (text values for histograms).
    pub fn stats_matching(&self, part: &str) -> Vec<(String, String)> {
        self.settle_metrics();
        let text = self
            .admin_get("/stats")
            .unwrap_or_else(|e| panic!("admin /stats: {e}"))
            .text();
        text.lines()
            .filter_map(|line| line.split_once(": "))
            .filter(|(n, _)| n.contains(part))
            .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
            .collect()
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    /// The access log so far (one line per request).
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    /// The access log once `pred` holds for it, or as it stands after `timeout`. Envoy writes
    /// access log files from a buffer it flushes on its own schedule (about once a second), so a
    /// line is not on disk when the response has arrived.
    pub fn wait_for_access_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        poll_text(|| self.access_log(), timeout, pred)
    }

    /// Waits until `pred(log)` holds, up to `timeout`; returns whether it did.
    pub fn wait_for_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        pred(&poll_text(|| self.log(), timeout, &pred))
    }
}

/// Reads `read()` every 50 ms until `pred` holds for it or `timeout` passes; the last text read.
fn poll_text(read: impl Fn() -> String, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = read();
        if pred(&text) || Instant::now() > deadline {
            return text;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "envoy files kept for the failed test: {}",
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A `--base-id` no other Envoy of this or another test process uses at the same time: Envoy
/// names its shared memory and hot-restart sockets after it.
/// The bootstrap `envoy/examples/<file>` as a test runs it: every module path of the example
/// (`target/wasm32-wasip1/release/<module>.wasm`) replaced by that module's path in this build
/// ([`crate::wasm_path`], which panics when one is not built).
pub fn example_config(file: &str) -> String {
    const PREFIX: &str = "target/wasm32-wasip1/release/";
    let path = crate::crate_dir().join("examples").join(file);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find(PREFIX) {
        let after = &rest[at + PREFIX.len()..];
        let Some(end) = after.find(".wasm") else {
            break;
        };
        out.push_str(&rest[..at]);
        out.push_str(&crate::wasm_path(&after[..end].replace('_', "-")).to_string_lossy());
        rest = &after[end + ".wasm".len()..];
    }
    out.push_str(rest);
    out
}

/// `envoy --mode validate` of the bootstrap `yaml`, written to `dir/envoy.yaml`, with `env` in
/// Envoy's environment (a `None` value removes the variable): whether Envoy accepts the
/// configuration, and what it printed.
pub fn validate_config(dir: &Path, yaml: &str, env: &[(&str, Option<&str>)]) -> (bool, String) {
    let config = dir.join("envoy.yaml");
    fs::write(&config, yaml).unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
    let mut cmd = Command::new(envoy_binary());
    cmd.args(["--mode", "validate", "-c"]).arg(&config);
    for (name, value) in env {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run envoy --mode validate: {e}"));
    (out.status.success(), crate::output_text(&out))
}

fn unique_base_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // pid < 2^22 on Linux; 64 instances per process before ids wrap (never alive at once). Stays
    // below 2^28, so Envoy's `base_id * 10` fits in 32 bits.
    let pid = std::process::id() % (1 << 22);
    (pid << 6) | (NEXT.fetch_add(1, Ordering::Relaxed) % 64)
}
