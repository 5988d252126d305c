//! One VM: a wasmtime instance of a plugin's module, its host-side state, and calls into it.

use crate::abi;
use crate::envoy::EnvoyState;
use crate::model::Connection;
use crate::state::upstreams::CalloutResponse;
use anyhow::{anyhow, Context as _};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Mutex, OnceLock};
use wasmtime::{Engine, Instance, Linker, Module, Store, Val};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    pub fn from_abi(v: i32) -> Option<LogLevel> {
        Some(match v {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

/// One line a guest logged (proxy_log, or stdout/stderr through WASI).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogLine {
    pub plugin: String,
    pub level: LogLevel,
    pub message: String,
}

/// The modules' variable for how often counters are flushed, in ms; `0` hands each increment to
/// the host at once.
pub use shieldwall_core::metrics::FLUSH_ENV;

/// A plugin as configured in Envoy's `envoy.filters.http.wasm`.
#[derive(Debug, Clone)]
pub struct Plugin {
    pub(crate) wasm: PathBuf,
    pub(crate) name: String,
    pub(crate) root_id: String,
    pub(crate) vm_id: String,
    pub(crate) config: Vec<u8>,
    pub(crate) vm_config: Vec<u8>,
    /// The VM's environment (Envoy's `vm_config.environment_variables`), read through WASI.
    pub(crate) env: Vec<(String, String)>,
}

impl Plugin {
    /// Name, root_id and vm_id default to the file stem.
    pub fn new(wasm: impl Into<PathBuf>) -> Plugin {
        let wasm = wasm.into();
        let stem = wasm
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Plugin {
            wasm,
            name: stem.clone(),
            root_id: String::new(),
            vm_id: stem,
            config: Vec::new(),
            vm_config: Vec::new(),
            // Counters reach the host at each increment, so a test reads them right after a
            // request. The modules' default, counting in the VM and flushing on the tick, is
            // tested where a test sets this variable itself.
            env: vec![(FLUSH_ENV.into(), "0".into())],
        }
    }
    pub fn name(mut self, name: &str) -> Plugin {
        self.name = name.into();
        self
    }
    pub fn root_id(mut self, root_id: &str) -> Plugin {
        self.root_id = root_id.into();
        self
    }
    pub fn vm_id(mut self, vm_id: &str) -> Plugin {
        self.vm_id = vm_id.into();
        self
    }
    pub fn config(mut self, config: impl AsRef<[u8]>) -> Plugin {
        self.config = config.as_ref().to_vec();
        self
    }
    pub fn json(self, config: &serde_json::Value) -> Plugin {
        self.config(config.to_string())
    }
    pub fn vm_config(mut self, config: impl AsRef<[u8]>) -> Plugin {
        self.vm_config = config.as_ref().to_vec();
        self
    }
    /// An environment variable of the VM, as Envoy's `vm_config.environment_variables` sets it
    /// (the module reads it through WASI `environ_get`).
    pub fn env(mut self, name: &str, value: &str) -> Plugin {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.into(), value.into()));
        self
    }
    /// Removes an environment variable of the VM (one [`Plugin::new`] sets, say).
    pub fn without_env(mut self, name: &str) -> Plugin {
        self.env.retain(|(n, _)| n != name);
        self
    }
    pub fn get_name(&self) -> &str {
        &self.name
    }
}

/// HTTP data of one stream, shared by the contexts of every filter on it.
#[derive(Debug, Default)]
pub(crate) struct StreamData {
    pub request_headers: Vec<(String, String)>,
    pub request_trailers: Vec<(String, String)>,
    pub response_headers: Vec<(String, String)>,
    pub response_trailers: Vec<(String, String)>,
    /// The body buffer of the callback in progress (or held while its filter is paused).
    pub request_body: Vec<u8>,
    pub response_body: Vec<u8>,
    /// Envoy filter state set through proxy_set_property, keyed by the raw path.
    pub filter_state: HashMap<Vec<u8>, Vec<u8>>,
    pub conn: Connection,
    pub start_nanos: u64,
    /// The `details` of the local reply that answered this stream (Envoy's `response.code_details`).
    pub local_reply_details: Option<String>,
}

/// Which of a stream's maps and buffers a context may touch right now.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Access {
    pub request_headers: bool,
    pub request_body: bool,
    pub request_trailers: bool,
    pub response_headers: bool,
    pub response_body: bool,
    pub response_trailers: bool,
    /// Inside on_log: request and response maps readable, nothing writable.
    pub log: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Request,
    Response,
}

/// What a guest asked for during a callback, applied when it returns.
#[derive(Debug, Clone)]
pub(crate) enum Deferred {
    Continue(Dir),
    Reset,
    LocalReply {
        status: u32,
        details: String,
        body: Vec<u8>,
        headers: Vec<(String, String)>,
        /// Envoy uses it only for gRPC requests, which we do not convert (see README).
        #[allow(dead_code)]
        grpc_status: i32,
    },
}

pub(crate) struct HostCtx {
    pub envoy: Rc<RefCell<EnvoyState>>,
    pub worker: usize,
    pub vm_index: usize,
    pub plugin: Plugin,
    pub log: Rc<RefCell<Vec<LogLine>>>,
    pub root_context_id: u32,
    pub effective: u32,
    /// Every live context; stream contexts point at their stream.
    pub contexts: HashMap<u32, Option<Rc<RefCell<StreamData>>>>,
    pub access: HashMap<u32, Access>,
    pub actions: Vec<(u32, Deferred)>,
    pub callout_response: Option<CalloutResponse>,
    pub grpc_buffer: Option<Vec<u8>>,
    pub grpc_initial: Option<Vec<(String, String)>>,
    pub grpc_trailing: Option<Vec<(String, String)>>,
    pub status: (u32, String),
    pub in_configure: bool,
    pub tick_period_ms: u32,
    pub next_tick: Option<u64>,
    pub metric_ids: HashMap<u32, String>,
    pub next_metric_seq: u32,
    pub next_http_token: u32,
    pub next_grpc_token: u32,
    pub next_grpc_stream: u32,
    pub grpc_streams: HashSet<u32>,
    pub rng: u64,
    stdio: [Vec<u8>; 3],
}

impl HostCtx {
    pub fn push_log(&mut self, level: LogLevel, message: String) {
        self.log.borrow_mut().push(LogLine {
            plugin: self.plugin.name.clone(),
            level,
            message,
        });
    }

    /// Line-buffered, so a panic message written in pieces reads as one line.
    pub fn write_stdio(&mut self, fd: usize, level: LogLevel, data: &[u8]) {
        self.stdio[fd].extend_from_slice(data);
        while let Some(p) = self.stdio[fd].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.stdio[fd].drain(..=p).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            self.push_log(level, text);
        }
    }

    fn flush_stdio(&mut self) {
        for fd in 1..3 {
            if !self.stdio[fd].is_empty() {
                let text =
                    String::from_utf8_lossy(&std::mem::take(&mut self.stdio[fd])).into_owned();
                let level = if fd == 1 {
                    LogLevel::Info
                } else {
                    LogLevel::Error
                };
                self.push_log(level, text);
            }
        }
    }
}

/// A guest trap: the VM is dead afterwards, as in Envoy.
#[derive(Debug, Clone)]
pub struct GuestTrap {
    pub plugin: String,
    pub callback: String,
    pub message: String,
    /// Everything the plugin logged on this worker, the panic message included.
    pub log: String,
}

impl std::fmt::Display for GuestTrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "plugin `{}` trapped in {}: {}\n--- guest log ---\n{}",
            self.plugin, self.callback, self.message, self.log
        )
    }
}

impl std::error::Error for GuestTrap {}

pub(crate) struct Vm {
    store: Store<HostCtx>,
    instance: Instance,
    pub plugin: Plugin,
    pub dead: Option<String>,
    next_context: u32,
}

fn perf_map() -> bool {
    std::env::var_os("SHIELDWALL_WASM_PERFMAP").is_some_and(|v| v == "1")
}

/// The engine every VM runs on. With `SHIELDWALL_WASM_PERFMAP=1` it writes `/tmp/perf-<pid>.map`
/// for the code it compiles, so `perf record` / `perf report` name the guest's functions (a module
/// built with its name section: `CARGO_PROFILE_RELEASE_STRIP=false`).
pub(crate) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        if perf_map() {
            let mut config = wasmtime::Config::new();
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
            if let Ok(engine) = Engine::new(&config) {
                return engine;
            }
        }
        Engine::default()
    })
}

/// The target directory: CARGO_TARGET_DIR if set, else the workspace's `target`.
pub fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = option_env!("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
}

/// Compiles once per (module sha256, engine compatibility) into a file under the target dir;
/// later runs and other test binaries deserialize it.
pub(crate) fn load_module(path: &Path) -> anyhow::Result<Module> {
    static MEMO: OnceLock<Mutex<HashMap<String, Module>>> = OnceLock::new();
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let sha: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let memo = MEMO.get_or_init(Default::default);
    if let Some(m) = memo
        .lock()
        .map_err(|_| anyhow!("module cache poisoned"))?
        .get(&sha)
    {
        return Ok(m.clone());
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine().precompile_compatibility_hash().hash(&mut h);
    let dir = target_dir().join("host-tests-cache");
    let file = dir.join(format!("{sha}-{:016x}.cwasm", h.finish()));
    // SAFETY: the file is one this code wrote with an engine of the same compatibility hash
    // (the hash is in its name); on any failure we compile again.
    // A module read back from the file is not in the perf map: profiling compiles afresh.
    let cached = (file.exists() && !perf_map())
        .then(|| unsafe { Module::deserialize_file(engine(), &file) }.ok())
        .flatten();
    let module = match cached {
        Some(m) => m,
        None => {
            let compiled = engine()
                .precompile_module(&bytes)
                .map_err(|e| anyhow!("compiling {}: {e:?}", path.display()))?;
            let _ = std::fs::create_dir_all(&dir);
            let tmp = dir.join(format!("{sha}.{}.tmp", std::process::id()));
            if std::fs::write(&tmp, &compiled).is_ok() {
                let _ = std::fs::rename(&tmp, &file);
            }
            // SAFETY: produced just above by this engine.
            unsafe { Module::deserialize(engine(), &compiled) }.map_err(|e| anyhow!("{e:?}"))?
        }
    };
    memo.lock()
        .map_err(|_| anyhow!("module cache poisoned"))?
        .insert(sha, module.clone());
    Ok(module)
}

impl Vm {
    /// Loads and starts a VM like Envoy: instantiate, `_initialize`, check the ABI version,
    /// create the root context, `on_vm_start`, `on_configure`. Err carries the guest log.
    pub fn start(
        envoy: Rc<RefCell<EnvoyState>>,
        worker: usize,
        vm_index: usize,
        plugin: Plugin,
        log: Rc<RefCell<Vec<LogLine>>>,
    ) -> anyhow::Result<Vm> {
        let module = load_module(&plugin.wasm)?;
        let mut linker = Linker::new(engine());
        abi::add_to_linker(&mut linker).map_err(|e| anyhow!("{e:?}"))?;
        let host = HostCtx {
            envoy,
            worker,
            vm_index,
            plugin: plugin.clone(),
            log,
            root_context_id: 0,
            effective: 0,
            contexts: HashMap::new(),
            access: HashMap::new(),
            actions: Vec::new(),
            callout_response: None,
            grpc_buffer: None,
            grpc_initial: None,
            grpc_trailing: None,
            status: (0, String::new()),
            in_configure: false,
            tick_period_ms: 0,
            next_tick: None,
            metric_ids: HashMap::new(),
            next_metric_seq: 0,
            next_http_token: 0,
            next_grpc_token: 0,
            next_grpc_stream: 0,
            grpc_streams: HashSet::new(),
            rng: 0x5eed ^ ((worker as u64) << 32) ^ vm_index as u64,
            stdio: Default::default(),
        };
        let mut store = Store::new(engine(), host);
        let instance = linker.instantiate(&mut store, &module).map_err(|e| {
            anyhow!(
                "loading plugin `{}` ({}): {e:?}",
                plugin.name,
                plugin.wasm.display()
            )
        })?;
        if instance
            .get_func(&mut store, "proxy_abi_version_0_2_1")
            .is_none()
        {
            return Err(anyhow!(
                "plugin `{}`: module does not export proxy_abi_version_0_2_1",
                plugin.name
            ));
        }
        let mut vm = Vm {
            store,
            instance,
            plugin,
            dead: None,
            next_context: 1,
        };
        let fail = |vm: &Vm, what: &str| {
            anyhow!(
                "plugin `{}`: {what}\n--- guest log ---\n{}",
                vm.plugin.name,
                vm.log_text()
            )
        };
        for init in ["_initialize", "_start"] {
            if vm.instance.get_func(&mut vm.store, init).is_some() {
                vm.call(0, init, &[]).map_err(|t| fail(&vm, &t.message))?;
                break;
            }
        }
        let root = vm.new_context(None);
        vm.store.data_mut().root_context_id = root;
        vm.call(root, "proxy_on_context_create", &[root as i32, 0])
            .map_err(|t| fail(&vm, &t.message))?;
        let vm_config_len = vm.plugin.vm_config.len() as i32;
        let ok = vm
            .call(root, "proxy_on_vm_start", &[root as i32, vm_config_len])
            .map_err(|t| fail(&vm, &t.message))?;
        if ok == Some(0) {
            return Err(fail(&vm, "on_vm_start returned false"));
        }
        vm.store.data_mut().in_configure = true;
        let config_len = vm.plugin.config.len() as i32;
        let ok = vm.call(root, "proxy_on_configure", &[root as i32, config_len]);
        vm.store.data_mut().in_configure = false;
        if ok.map_err(|t| fail(&vm, &t.message))? == Some(0) {
            return Err(fail(
                &vm,
                "on_configure returned false (configuration refused)",
            ));
        }
        Ok(vm)
    }

    pub fn root(&self) -> u32 {
        self.store.data().root_context_id
    }

    pub fn host(&self) -> &HostCtx {
        self.store.data()
    }

    pub fn host_mut(&mut self) -> &mut HostCtx {
        self.store.data_mut()
    }

    /// Context ids count up per VM, as cpp-host numbers them.
    pub fn new_context(&mut self, stream: Option<Rc<RefCell<StreamData>>>) -> u32 {
        let id = self.next_context;
        self.next_context += 1;
        self.store.data_mut().contexts.insert(id, stream);
        id
    }

    pub fn log_text(&self) -> String {
        let log = self.store.data().log.borrow();
        log.iter()
            .filter(|l| l.plugin == self.plugin.name)
            .map(|l| format!("[{:?}] {}", l.level, l.message))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Calls an export with `ctx` as the current context. A missing export is skipped, as
    /// Envoy skips callbacks a module does not define. A trap kills the VM.
    pub fn call(&mut self, ctx: u32, name: &str, args: &[i32]) -> Result<Option<i32>, GuestTrap> {
        if let Some(why) = &self.dead {
            return Err(GuestTrap {
                plugin: self.plugin.name.clone(),
                callback: name.into(),
                message: format!("VM is dead after an earlier trap: {why}"),
                log: self.log_text(),
            });
        }
        let Some(f) = self.instance.get_func(&mut self.store, name) else {
            return Ok(None);
        };
        self.store.data_mut().effective = ctx;
        let params: Vec<Val> = args.iter().map(|a| Val::I32(*a)).collect();
        let mut results = vec![Val::I32(0); f.ty(&self.store).results().len()];
        let r = f.call(&mut self.store, &params, &mut results);
        self.store.data_mut().flush_stdio();
        match r {
            Ok(()) => Ok(results.first().and_then(|v| v.i32())),
            Err(e) => {
                let message = format!("{e:#}");
                self.dead = Some(message.clone());
                self.store
                    .data_mut()
                    .push_log(LogLevel::Critical, format!("VM failed: {message}"));
                Err(GuestTrap {
                    plugin: self.plugin.name.clone(),
                    callback: name.into(),
                    message,
                    log: self.log_text(),
                })
            }
        }
    }

    /// The size of the guest's linear memory in bytes (what the module holds, high-water mark:
    /// wasm memory only grows).
    pub fn memory_bytes(&mut self) -> usize {
        self.instance
            .get_memory(&mut self.store, "memory")
            .map_or(0, |m| m.data_size(&self.store))
    }

    pub fn take_actions(&mut self) -> Vec<(u32, Deferred)> {
        std::mem::take(&mut self.store.data_mut().actions)
    }
}
