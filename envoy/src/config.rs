//! Builds an Envoy bootstrap from the templates in `envoy/templates/`.
//!
//! ```no_run
//! use shieldwall_e2e::{Echo, Envoy, EnvoyConfig, WasmFilter, wasm_path};
//! let echo = Echo::start();
//! let config = EnvoyConfig::new(echo.port()).filter(WasmFilter::new(
//!     wasm_path("shieldwall-jwt-auth"),
//!     "jwt-auth",
//!     r#"{"providers": {}}"#,
//! ));
//! let envoy = Envoy::start(config);
//! ```

use std::path::{Path, PathBuf};

use crate::{render, yaml_str};

/// The bootstrap: admin, one listener with the HTTP connection manager, clusters.
pub const BOOTSTRAP_TEMPLATE: &str = include_str!("../templates/bootstrap.yaml");
/// One `envoy.filters.http.wasm` entry.
pub const WASM_FILTER_TEMPLATE: &str = include_str!("../templates/wasm_filter.yaml");
/// One STATIC loopback cluster.
pub const CLUSTER_TEMPLATE: &str = include_str!("../templates/cluster.yaml");
/// One route by path prefix.
pub const ROUTE_TEMPLATE: &str = include_str!("../templates/route.yaml");

/// The name of the cluster that the default route (`/`) sends to.
pub const UPSTREAM_CLUSTER: &str = "upstream";

/// The modules' variable for how often counters are flushed to Envoy, in ms.
pub use shieldwall_core::metrics::FLUSH_ENV;

/// How long a stats read waits for the modules' counters to be flushed: four of the tests' 50 ms
/// flush periods (a tick can come late on a busy machine).
pub const METRICS_SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

/// A proxy-wasm module in the HTTP filter chain.
#[derive(Debug, Clone)]
pub struct WasmFilter {
    /// The `.wasm` file (see [`crate::wasm_path`]).
    pub module: PathBuf,
    /// The plugin name (`config.name`), which namespaces the filter's shared data and metrics.
    pub plugin_name: String,
    /// The plugin's JSON configuration, passed as a `google.protobuf.StringValue`.
    pub configuration: String,
    /// Filters with the same `vm_id` and module share one VM per worker. Default: the plugin name.
    pub vm_id: String,
    /// The root context id the module registered. Default: empty (the module's only root).
    pub root_id: String,
    /// The VM's environment (`vm_config.environment_variables.key_values`), read through WASI.
    pub env: Vec<(String, String)>,
}

impl WasmFilter {
    pub fn new(
        module: impl Into<PathBuf>,
        plugin_name: impl Into<String>,
        configuration: impl Into<String>,
    ) -> WasmFilter {
        let plugin_name = plugin_name.into();
        WasmFilter {
            module: module.into(),
            vm_id: plugin_name.clone(),
            plugin_name,
            configuration: configuration.into(),
            root_id: String::new(),
            // Counters flushed every 50 ms (the modules' default is a second), so a test reads
            // them shortly after its requests (`Envoy::stat` and the other stats reads wait
            // `METRICS_SETTLE` first). Set it with `env` to test another period.
            env: vec![(FLUSH_ENV.into(), "50".into())],
        }
    }

    /// Sets an environment variable of the VM (a secret the filter reads with `Host::env_var`).
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.env.retain(|(n, _)| *n != name);
        self.env.push((name, value.into()));
        self
    }

    pub fn vm_id(mut self, vm_id: impl Into<String>) -> Self {
        self.vm_id = vm_id.into();
        self
    }

    pub fn root_id(mut self, root_id: impl Into<String>) -> Self {
        self.root_id = root_id.into();
        self
    }

    /// This filter as an `http_filters` list entry.
    pub fn to_yaml(&self) -> String {
        let module = absolute(&self.module);
        let mut environment = String::new();
        if !self.env.is_empty() {
            environment.push_str("environment_variables:\n  key_values:\n");
            for (name, value) in &self.env {
                environment.push_str(&format!("    {}: {}\n", yaml_str(name), yaml_str(value)));
            }
        }
        render(
            WASM_FILTER_TEMPLATE,
            &[
                ("PLUGIN_NAME", &yaml_str(&self.plugin_name)),
                ("ROOT_ID", &yaml_str(&self.root_id)),
                ("VM_ID", &yaml_str(&self.vm_id)),
                ("MODULE", &yaml_str(&module.to_string_lossy())),
                ("CONFIGURATION", &yaml_str(&self.configuration)),
                ("VM_ENVIRONMENT", &environment),
            ],
        )
    }
}

/// One entry of the HTTP filter chain (the router is always added last).
#[derive(Debug, Clone)]
pub enum HttpFilter {
    Wasm(WasmFilter),
    /// A native Envoy filter as a raw YAML list entry (`- name: envoy.filters.http.…`), written
    /// at column 0; it is indented into place.
    Native(String),
}

impl From<WasmFilter> for HttpFilter {
    fn from(f: WasmFilter) -> Self {
        HttpFilter::Wasm(f)
    }
}

impl HttpFilter {
    pub fn to_yaml(&self) -> String {
        match self {
            HttpFilter::Wasm(w) => w.to_yaml(),
            HttpFilter::Native(yaml) => yaml.clone(),
        }
    }
}

/// Envoy's native `jwt_authn` filter (Istio's RequestAuthentication) as a YAML list entry for
/// [`EnvoyConfig::native_filter`]: `providers` is the YAML of the providers map and `rules` the
/// YAML of the rules list, each written from column 0 (they are indented here).
pub fn jwt_authn_filter(providers: &str, rules: &str) -> String {
    crate::render(
        "- name: envoy.filters.http.jwt_authn
  typed_config:
    \"@type\": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
    providers:
      {{PROVIDERS}}
    rules:
      {{RULES}}
",
        &[("PROVIDERS", providers), ("RULES", rules)],
    )
}

/// The cluster option that makes Envoy speak HTTP/2 (cleartext, prior knowledge) upstream.
const HTTP2_PROTOCOL_OPTIONS: &str = "typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    explicit_http_config:
      http2_protocol_options: {}
";

/// A cluster on loopback: HTTP/1.1, or HTTP/2 with [`Cluster::http2`].
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub connect_timeout: String,
    /// HTTP/2 upstream, as a gRPC service (a wasm filter's gRPC callout) needs.
    pub http2: bool,
    /// TLS to the upstream (plain TCP when `None`).
    pub tls: Option<UpstreamTls>,
}

impl Cluster {
    /// A cluster for `127.0.0.1:port`.
    ///
    /// About `:authority`: Envoy forwards the `:authority` it is given. Requests routed through
    /// the listener keep the client's `Host` unless the route rewrites it ([`Route::host_rewrite`]);
    /// a wasm filter's HTTP callout (`dispatch_http_call`) to this cluster sends the `:authority`
    /// the filter sets, which should be `127.0.0.1:<port>` (the IdP's `authority()`), since the
    /// cluster name is not a host name.
    pub fn new(name: impl Into<String>, port: u16) -> Cluster {
        Cluster {
            name: name.into(),
            host: "127.0.0.1".into(),
            port,
            connect_timeout: "1s".into(),
            http2: false,
            tls: None,
        }
    }

    /// Speak TLS to this cluster (e.g. another Envoy's TLS listener).
    pub fn tls(mut self, tls: UpstreamTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Speak HTTP/2 to this cluster: for a gRPC service.
    pub fn http2(mut self) -> Self {
        self.http2 = true;
        self
    }

    pub fn to_yaml(&self) -> String {
        render(
            CLUSTER_TEMPLATE,
            &[
                ("NAME", &yaml_str(&self.name)),
                ("HOST", &yaml_str(&self.host)),
                ("PORT", &self.port.to_string()),
                ("CONNECT_TIMEOUT", &self.connect_timeout),
                (
                    "PROTOCOL_OPTIONS",
                    if self.http2 {
                        HTTP2_PROTOCOL_OPTIONS
                    } else {
                        ""
                    },
                ),
                (
                    "TRANSPORT_SOCKET",
                    &self
                        .tls
                        .as_ref()
                        .map(UpstreamTls::to_yaml)
                        .unwrap_or_default(),
                ),
            ],
        )
    }
}

/// A route by path prefix. Routes are matched in order; the default route `/` → `upstream` comes
/// after the extra ones.
#[derive(Debug, Clone)]
pub struct Route {
    pub prefix: String,
    pub cluster: String,
    /// Upstream timeout, an Envoy duration (`"15s"`).
    pub timeout: String,
    /// `host_rewrite_literal`: the `Host`/`:authority` the upstream sees.
    pub host_rewrite: Option<String>,
    /// `prefix_rewrite`: replaces the matched prefix.
    pub prefix_rewrite: Option<String>,
    /// `request_body_buffer_limit`: how much of a request body Envoy buffers for a filter that
    /// holds it (Envoy's default is the listener's per-connection buffer limit, 1 MiB).
    pub request_body_buffer_limit: Option<u64>,
}

impl Route {
    pub fn new(prefix: impl Into<String>, cluster: impl Into<String>) -> Route {
        Route {
            prefix: prefix.into(),
            cluster: cluster.into(),
            timeout: "15s".into(),
            host_rewrite: None,
            prefix_rewrite: None,
            request_body_buffer_limit: None,
        }
    }

    pub fn host_rewrite(mut self, authority: impl Into<String>) -> Self {
        self.host_rewrite = Some(authority.into());
        self
    }

    pub fn prefix_rewrite(mut self, prefix: impl Into<String>) -> Self {
        self.prefix_rewrite = Some(prefix.into());
        self
    }

    pub fn request_body_buffer_limit(mut self, bytes: u64) -> Self {
        self.request_body_buffer_limit = Some(bytes);
        self
    }

    pub fn to_yaml(&self) -> String {
        let entry = self
            .request_body_buffer_limit
            .map(|b| format!("request_body_buffer_limit: {b}"))
            .unwrap_or_default();
        let mut rewrite = String::new();
        if let Some(h) = &self.host_rewrite {
            rewrite.push_str(&format!(", host_rewrite_literal: {}", yaml_str(h)));
        }
        if let Some(p) = &self.prefix_rewrite {
            rewrite.push_str(&format!(", prefix_rewrite: {}", yaml_str(p)));
        }
        render(
            ROUTE_TEMPLATE,
            &[
                ("PREFIX", &yaml_str(&self.prefix)),
                ("CLUSTER", &yaml_str(&self.cluster)),
                ("TIMEOUT", &self.timeout),
                ("REWRITE", &rewrite),
                ("ENTRY", &entry),
            ],
        )
    }
}

/// TLS on the listener: the server certificate and, for mTLS, the CA that client certificates
/// must chain to.
#[derive(Debug, Clone)]
pub struct DownstreamTls {
    pub cert_chain: PathBuf,
    pub private_key: PathBuf,
    /// The CA client certificates are verified against; `None`: no client certificate is asked for.
    pub client_ca: Option<PathBuf>,
    /// Refuse the handshake without a client certificate. With `false` and a `client_ca`, a client
    /// may come without one, but a certificate it presents must verify.
    pub require_client_certificate: bool,
}

impl DownstreamTls {
    /// TLS with the server's certificate and key; add [`DownstreamTls::client_ca`] for mTLS.
    pub fn new(cert_chain: impl Into<PathBuf>, private_key: impl Into<PathBuf>) -> DownstreamTls {
        DownstreamTls {
            cert_chain: cert_chain.into(),
            private_key: private_key.into(),
            client_ca: None,
            require_client_certificate: false,
        }
    }

    /// Verify client certificates against this CA, and whether one is required.
    pub fn client_ca(mut self, ca: impl Into<PathBuf>, required: bool) -> Self {
        self.client_ca = Some(ca.into());
        self.require_client_certificate = required;
        self
    }

    /// The listener's `transport_socket` block.
    pub fn to_yaml(&self) -> String {
        let path = |p: &Path| yaml_str(&absolute(p).to_string_lossy());
        let mut out = format!(
            "transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
    require_client_certificate: {}
    common_tls_context:
      tls_certificates:
      - certificate_chain: {{ filename: {} }}
        private_key: {{ filename: {} }}
",
            self.require_client_certificate,
            path(&self.cert_chain),
            path(&self.private_key)
        );
        if let Some(ca) = &self.client_ca {
            out.push_str(&format!(
                "      validation_context:\n        trusted_ca: {{ filename: {} }}\n",
                path(ca)
            ));
        }
        out
    }
}

/// TLS from Envoy to a cluster: the CA the upstream's server certificate must chain to, the
/// server name it is checked against (and sent as SNI), and optionally a client certificate.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    pub trusted_ca: PathBuf,
    pub server_name: String,
    /// The client certificate chain and key Envoy presents (mTLS); `None`: none.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl UpstreamTls {
    /// TLS verifying the upstream's certificate against `trusted_ca` for `server_name`.
    pub fn new(trusted_ca: impl Into<PathBuf>, server_name: impl Into<String>) -> UpstreamTls {
        UpstreamTls {
            trusted_ca: trusted_ca.into(),
            server_name: server_name.into(),
            client_cert: None,
        }
    }

    /// Present this client certificate to the upstream.
    pub fn client_cert(
        mut self,
        cert_chain: impl Into<PathBuf>,
        private_key: impl Into<PathBuf>,
    ) -> Self {
        self.client_cert = Some((cert_chain.into(), private_key.into()));
        self
    }

    /// The cluster's `transport_socket` block.
    pub fn to_yaml(&self) -> String {
        let path = |p: &Path| yaml_str(&absolute(p).to_string_lossy());
        let name = yaml_str(&self.server_name);
        let mut out = format!(
            "transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
    sni: {name}
    common_tls_context:
      validation_context:
        trusted_ca: {{ filename: {} }}
        match_typed_subject_alt_names:
        - san_type: DNS
          matcher: {{ exact: {name} }}
",
            path(&self.trusted_ca),
        );
        if let Some((cert, key)) = &self.client_cert {
            out.push_str(&format!(
                "      tls_certificates:\n      - certificate_chain: {{ filename: {} }}\n        private_key: {{ filename: {} }}\n",
                path(cert),
                path(key)
            ));
        }
        out
    }
}

/// Everything that varies between the end-to-end setups. Ports 0 mean "any free port"; [`crate::Envoy`]
/// reads the bound ports back from the admin API, so parallel tests never race for a port.
#[derive(Debug, Clone)]
pub struct EnvoyConfig {
    pub listener_port: u16,
    pub admin_port: u16,
    /// The HTTP filters, in chain order, before the router.
    pub filters: Vec<HttpFilter>,
    /// Clusters besides `upstream` (e.g. `idp`).
    pub clusters: Vec<Cluster>,
    /// Routes tried before the default `/` → `upstream`.
    pub routes: Vec<Route>,
    /// The port of the `upstream` cluster (usually the echo).
    pub upstream_port: u16,
    /// `xff_num_trusted_hops` of the connection manager (0: the client address is the peer).
    pub xff_trusted_hops: u32,
    /// `--concurrency`: worker threads, each with its own wasm VMs.
    pub concurrency: u32,
    /// `--log-level`.
    pub log_level: String,
    /// `--component-log-level`, e.g. `wasm:debug`; empty for none.
    pub component_log_level: String,
    /// Extra command-line arguments.
    pub extra_args: Vec<String>,
    /// TLS on the listener (plain HTTP when `None`).
    pub tls: Option<DownstreamTls>,
    /// The connection manager's `forward_client_cert_details` (`SANITIZE`, Envoy's default, when
    /// `None`), e.g. `ALWAYS_FORWARD_ONLY` or `SANITIZE_SET`.
    pub forward_client_cert_details: Option<String>,
    /// `set_current_client_cert_details` under `SANITIZE_SET` or `APPEND_FORWARD`, as a YAML flow
    /// map; `None`: `{ subject: true, uri: true, dns: true }`.
    pub set_current_client_cert_details: Option<String>,
    /// Access loggers after the default file log, each a raw YAML list entry at column 0
    /// (`- name: envoy.access_loggers.file ...`), e.g. one that prints a filter-state value.
    pub access_logs: Vec<String>,
}

impl EnvoyConfig {
    /// One worker, no filters, the default route to `127.0.0.1:upstream_port`.
    pub fn new(upstream_port: u16) -> EnvoyConfig {
        EnvoyConfig {
            listener_port: 0,
            admin_port: 0,
            filters: Vec::new(),
            clusters: Vec::new(),
            routes: Vec::new(),
            upstream_port,
            xff_trusted_hops: 0,
            concurrency: 1,
            log_level: "info".into(),
            component_log_level: "wasm:debug".into(),
            extra_args: Vec::new(),
            tls: None,
            forward_client_cert_details: None,
            set_current_client_cert_details: None,
            access_logs: Vec::new(),
        }
    }

    /// Adds an access logger (a raw YAML list entry) after the default one.
    pub fn access_log(mut self, yaml: impl Into<String>) -> Self {
        self.access_logs.push(yaml.into());
        self
    }

    /// Serves the listener over TLS.
    pub fn tls(mut self, tls: DownstreamTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets the connection manager's `forward_client_cert_details`.
    pub fn forward_client_cert_details(mut self, mode: impl Into<String>) -> Self {
        self.forward_client_cert_details = Some(mode.into());
        self
    }

    /// Sets `set_current_client_cert_details` (a YAML flow map such as
    /// `{ cert: true, uri: true, dns: true, subject: true }`), used with `SANITIZE_SET` and
    /// `APPEND_FORWARD`.
    pub fn set_current_client_cert_details(mut self, details: impl Into<String>) -> Self {
        self.set_current_client_cert_details = Some(details.into());
        self
    }

    /// Appends an HTTP filter to the chain.
    pub fn filter(mut self, filter: impl Into<HttpFilter>) -> Self {
        self.filters.push(filter.into());
        self
    }

    /// Appends a native filter given as a raw YAML list entry.
    pub fn native_filter(mut self, yaml: impl Into<String>) -> Self {
        self.filters.push(HttpFilter::Native(yaml.into()));
        self
    }

    pub fn cluster(mut self, cluster: Cluster) -> Self {
        self.clusters.push(cluster);
        self
    }

    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    pub fn concurrency(mut self, workers: u32) -> Self {
        self.concurrency = workers;
        self
    }

    pub fn listener_port(mut self, port: u16) -> Self {
        self.listener_port = port;
        self
    }

    pub fn admin_port(mut self, port: u16) -> Self {
        self.admin_port = port;
        self
    }

    /// The bootstrap YAML; `access_log` is the path of the access log file.
    pub fn to_yaml(&self, access_log: &Path) -> String {
        let filters: String = self.filters.iter().map(HttpFilter::to_yaml).collect();
        let mut routes: String = self.routes.iter().map(Route::to_yaml).collect();
        routes.push_str(&Route::new("/", UPSTREAM_CLUSTER).to_yaml());
        let mut clusters = Cluster::new(UPSTREAM_CLUSTER, self.upstream_port).to_yaml();
        for c in &self.clusters {
            clusters.push_str(&c.to_yaml());
        }
        let transport_socket = self
            .tls
            .as_ref()
            .map(DownstreamTls::to_yaml)
            .unwrap_or_default();
        let mut manager_extra = String::new();
        if let Some(mode) = &self.forward_client_cert_details {
            manager_extra.push_str(&format!("forward_client_cert_details: {mode}\n"));
            if mode == "SANITIZE_SET" || mode == "APPEND_FORWARD" {
                let details = self
                    .set_current_client_cert_details
                    .as_deref()
                    .unwrap_or("{ subject: true, uri: true, dns: true }");
                manager_extra.push_str(&format!("set_current_client_cert_details: {details}\n"));
            }
        }
        render(
            BOOTSTRAP_TEMPLATE,
            &[
                ("ADMIN_PORT", &self.admin_port.to_string()),
                ("LISTENER_PORT", &self.listener_port.to_string()),
                ("XFF_TRUSTED_HOPS", &self.xff_trusted_hops.to_string()),
                ("ACCESS_LOG", &yaml_str(&access_log.to_string_lossy())),
                ("HTTP_FILTERS", &filters),
                ("ROUTES", &routes),
                ("CLUSTERS", &clusters),
                ("TRANSPORT_SOCKET", &transport_socket),
                ("CONNECTION_MANAGER_EXTRA", &manager_extra),
                ("EXTRA_ACCESS_LOGS", &self.access_logs.concat()),
            ],
        )
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_authn_filter_indents_providers_and_rules() {
        let yaml = jwt_authn_filter(
            "p:\n  issuer: i\n",
            "- match: { prefix: / }\n  requires: { provider_name: p }\n",
        );
        assert_eq!(
            yaml,
            "- name: envoy.filters.http.jwt_authn\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication\n    providers:\n      p:\n        issuer: i\n    rules:\n      - match: { prefix: / }\n        requires: { provider_name: p }\n"
        );
    }

    #[test]
    fn wasm_filter_yaml_names_v8_and_a_string_configuration() {
        let config = EnvoyConfig::new(9000)
            .filter(WasmFilter::new("/m/jwt.wasm", "jwt-auth", r#"{"a": "b"}"#).vm_id("shared"))
            .native_filter(
                "- name: envoy.filters.http.buffer\n  typed_config:\n    max_request_bytes: 10\n",
            )
            .cluster(Cluster::new("idp", 9100))
            .cluster(Cluster::new("ratelimit", 9200).http2())
            .route(
                Route::new("/idp/", "idp")
                    .prefix_rewrite("/")
                    .host_rewrite("127.0.0.1:9100"),
            );
        let yaml = config.to_yaml(Path::new("/tmp/access.log"));
        for needle in [
            "          - name: envoy.filters.http.wasm\n",
            "                runtime: envoy.wasm.runtime.v8\n",
            "                    filename: \"/m/jwt.wasm\"\n",
            "                \"@type\": type.googleapis.com/google.protobuf.StringValue\n",
            "                value: \"{\\\"a\\\": \\\"b\\\"}\"\n",
            "                vm_id: \"shared\"\n",
            "            name: \"jwt-auth\"\n",
            "          - name: envoy.filters.http.buffer\n",
            "              max_request_bytes: 10\n",
            "              - match: { prefix: \"/idp/\" }\n",
            "host_rewrite_literal: \"127.0.0.1:9100\", prefix_rewrite: \"/\" }\n",
            "  - name: \"idp\"\n",
            "  - name: \"upstream\"\n",
            "socket_address: { address: \"127.0.0.1\", port_value: 9100 }",
            "    connect_timeout: 1s\n    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n",
            "        explicit_http_config:\n          http2_protocol_options: {}\n",
        ] {
            assert!(yaml.contains(needle), "missing {needle:?} in:\n{yaml}");
        }
        // Only the cluster that asked for HTTP/2 has the option.
        assert_eq!(yaml.matches("http2_protocol_options").count(), 1, "{yaml}");
        // The wasm filter comes before the native one, and both before the router.
        let wasm = yaml.find("envoy.filters.http.wasm").unwrap_or(usize::MAX);
        let buffer = yaml.find("envoy.filters.http.buffer").unwrap_or(0);
        let router = yaml.find("envoy.filters.http.router").unwrap_or(0);
        assert!(wasm < buffer && buffer < router, "{yaml}");
    }

    #[test]
    fn tls_listener_and_client_cert_mode_are_rendered_only_when_asked() {
        let plain = EnvoyConfig::new(9000).to_yaml(Path::new("/tmp/access.log"));
        assert!(!plain.contains("transport_socket"), "{plain}");
        assert!(!plain.contains("forward_client_cert_details"), "{plain}");
        let yaml = EnvoyConfig::new(9000)
            .tls(DownstreamTls::new("/c/server.crt", "/c/server.key").client_ca("/c/ca.crt", true))
            .forward_client_cert_details("SANITIZE_SET")
            .to_yaml(Path::new("/tmp/access.log"));
        for needle in [
            "      transport_socket:\n        name: envoy.transport_sockets.tls\n",
            "          require_client_certificate: true\n",
            "            - certificate_chain: { filename: \"/c/server.crt\" }\n",
            "              private_key: { filename: \"/c/server.key\" }\n",
            "            validation_context:\n              trusted_ca: { filename: \"/c/ca.crt\" }\n",
            "          forward_client_cert_details: SANITIZE_SET\n",
            "          set_current_client_cert_details: { subject: true, uri: true, dns: true }\n",
        ] {
            assert!(yaml.contains(needle), "missing {needle:?} in:\n{yaml}");
        }
    }

    #[test]
    fn upstream_tls_with_a_client_certificate_and_the_cert_in_xfcc() {
        let yaml = EnvoyConfig::new(9000)
            .forward_client_cert_details("SANITIZE_SET")
            .set_current_client_cert_details("{ cert: true, uri: true }")
            .cluster(Cluster::new("gateway", 9300).tls(
                UpstreamTls::new("/c/ca.crt", "gateway.test").client_cert("/c/f.crt", "/c/f.key"),
            ))
            .to_yaml(Path::new("/tmp/access.log"));
        for needle in [
            "          set_current_client_cert_details: { cert: true, uri: true }\n",
            "  - name: \"gateway\"\n    type: STATIC\n    connect_timeout: 1s\n    transport_socket:\n      name: envoy.transport_sockets.tls\n",
            "        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n        sni: \"gateway.test\"\n",
            "          validation_context:\n            trusted_ca: { filename: \"/c/ca.crt\" }\n",
            "            - san_type: DNS\n              matcher: { exact: \"gateway.test\" }\n",
            "          tls_certificates:\n          - certificate_chain: { filename: \"/c/f.crt\" }\n            private_key: { filename: \"/c/f.key\" }\n",
        ] {
            assert!(yaml.contains(needle), "missing {needle:?} in:\n{yaml}");
        }
        // The other clusters stay plain.
        assert_eq!(yaml.matches("UpstreamTlsContext").count(), 1, "{yaml}");
    }
}
