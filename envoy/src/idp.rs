//! The OpenID Provider of `envoy/idp/` as a process for one test, killed on drop.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::{self, form_encode, Response};
use crate::jwt::base64_encode;
use crate::{crate_dir, scratch_dir};

/// How long node may take to load oidc-provider and generate keys.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start the IdP. `Default` is: any free port, issuer `http://127.0.0.1:<port>`, freshly
/// generated keys, the demo clients, 300 s access tokens.
#[derive(Debug, Clone, Default)]
pub struct IdpOptions {
    /// 0: any free port.
    pub port: u16,
    pub issuer: Option<String>,
    /// Access token lifetime in seconds.
    pub access_token_ttl: Option<u64>,
    /// A private JWKS file to use (created with new keys if missing). Default: a new file.
    pub keys_file: Option<PathBuf>,
    /// A JSON clients file replacing the demo clients (see envoy/idp/README.md).
    pub clients_file: Option<PathBuf>,
}

/// A token endpoint error: the HTTP status and the OAuth error body.
#[derive(Debug, Clone)]
pub struct TokenError {
    pub status: u16,
    /// `error`, e.g. `invalid_client`, `invalid_scope`, `invalid_target`.
    pub error: String,
    pub description: String,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "token endpoint: {} {}: {}",
            self.status, self.error, self.description
        )
    }
}

impl std::error::Error for TokenError {}

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic.
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form.
    Post,
}

/// A running IdP. Dropping it kills the process.
pub struct Idp {
    child: Option<Child>,
    dir: PathBuf,
    opts: IdpOptions,
    keys_file: PathBuf,
    port: u16,
    issuer: String,
    ready: Value,
    generation: u32,
}

/// The Node.js that runs the IdP, chosen as `scripts/node-path.sh` does: `SHIELDWALL_NODE`, else
/// the project-local Node that `scripts/setup.sh` installs when the system's is too old for
/// oidc-provider, else `node` on PATH. So `cargo test` run by hand uses the same Node as the
/// test command.
fn node_binary() -> String {
    let local = crate::repo_root().join(".cache/node/node_modules/.bin/node");
    let node = std::env::var("SHIELDWALL_NODE").unwrap_or_else(|_| {
        if local.exists() {
            local.display().to_string()
        } else {
            "node".into()
        }
    });
    match Command::new(&node).arg("--version").output() {
        Ok(out) if out.status.success() => node,
        _ => panic!(
            "node ({node}) not found or not working: the IdP needs Node.js 20+; run scripts/setup.sh"
        ),
    }
}

impl Idp {
    /// Starts `node envoy/idp/idp.js` and waits for its ready line. Panics, with its output, when
    /// it does not start, and with a hint when node or the npm packages are missing.
    pub fn start(opts: IdpOptions) -> Idp {
        let script = crate_dir().join("idp").join("idp.js");
        let modules = crate_dir()
            .join("idp")
            .join("node_modules")
            .join("oidc-provider");
        if !modules.is_dir() {
            panic!(
                "{} is missing: run `npm ci` in envoy/idp (scripts/setup.sh does it)",
                modules.display()
            );
        }
        assert!(script.is_file(), "{} is missing", script.display());
        let dir = scratch_dir("idp");
        let keys_file = opts
            .keys_file
            .clone()
            .unwrap_or_else(|| dir.join("keys-0.json"));
        let mut idp = Idp {
            child: None,
            dir,
            port: opts.port,
            issuer: String::new(),
            opts,
            keys_file,
            ready: Value::Null,
            generation: 0,
        };
        idp.spawn();
        idp
    }

    /// Starts the IdP. A start that hangs without ever saying it is ready (seen once in a full
    /// test run: node printed its runtime warning, then nothing for 30 s) is retried once with a
    /// fresh process before the test fails.
    fn spawn(&mut self) {
        if let Err(log) = self.try_spawn() {
            eprintln!("idp not ready after {START_TIMEOUT:?}, starting it once more:\n{log}");
            if let Err(log) = self.try_spawn() {
                panic!("idp not ready after {START_TIMEOUT:?} (twice):\n{log}");
            }
        }
    }

    fn try_spawn(&mut self) -> Result<(), String> {
        let node = node_binary();
        let out_path = self.dir.join(format!("idp-{}.log", self.generation));
        let out = File::create(&out_path)
            .unwrap_or_else(|e| panic!("create {}: {e}", out_path.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("clone log file: {e}"));
        let mut cmd = Command::new(node);
        cmd.arg(crate_dir().join("idp").join("idp.js"))
            .args(["--port", &self.port.to_string()])
            .arg("--keys")
            .arg(&self.keys_file);
        if let Some(issuer) = &self.opts.issuer {
            cmd.args(["--issuer", issuer]);
        }
        if let Some(ttl) = self.opts.access_token_ttl {
            cmd.args(["--access-token-ttl", &ttl.to_string()]);
        }
        if let Some(clients) = &self.opts.clients_file {
            cmd.arg("--clients").arg(clients);
        }
        let child = cmd
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn node idp.js: {e}"));
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = self.log();
            if let Some(ready) = log
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|v| v["msg"] == "idp ready")
            {
                self.port = ready["port"]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or_else(|| panic!("idp ready line without a port: {ready}"));
                self.issuer = ready["issuer"].as_str().unwrap_or_default().to_owned();
                self.ready = ready;
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                panic!("idp exited with {status} before it was ready:\n{log}");
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(log);
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the process (the guard stays usable for [`Idp::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restarts on the same port with the same keys (tokens issued before stay verifiable).
    pub fn restart(&mut self) {
        self.stop();
        self.generation += 1;
        self.spawn();
    }

    /// Restarts on the same port and issuer with a new keys file: new keys, new `kid`s, and the
    /// old keys are gone from the JWKS. A key rotation as a gateway sees it.
    pub fn restart_with_new_keys(&mut self) {
        self.stop();
        self.generation += 1;
        self.keys_file = self.dir.join(format!("keys-{}.json", self.generation));
        self.spawn();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `127.0.0.1:<port>`: the `:authority` for requests to the IdP (e.g. a wasm filter's callout
    /// to the `idp` cluster).
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The issuer identifier, the `iss` of its tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    /// The path of the JWKS on the IdP (`/jwks`), for a callout through a cluster.
    pub fn jwks_path(&self) -> &'static str {
        "/jwks"
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// Envoy's native `jwt_authn` filter (Istio's RequestAuthentication) trusting this IdP, as a
    /// YAML list entry for [`crate::EnvoyConfig::native_filter`]: provider `idp`, audience
    /// `orders-api`, the key set fetched through the `idp` cluster, the verified payload in
    /// dynamic metadata under `jwt_payload` (what `"identity_from": "jwt_authn"` reads). Requests
    /// under `public_prefixes` need no token; every other request needs one.
    pub fn jwt_authn_filter(&self, public_prefixes: &[&str]) -> String {
        let providers = format!(
            "idp:
  issuer: {issuer}
  audiences: [orders-api]
  remote_jwks:
    http_uri: {{ uri: {jwks}, cluster: idp, timeout: 5s }}
  payload_in_metadata: jwt_payload
",
            issuer = crate::yaml_str(&self.issuer),
            jwks = crate::yaml_str(&format!("http://{}{}", self.authority(), self.jwks_path()))
        );
        let mut rules: String = public_prefixes
            .iter()
            .map(|prefix| format!("- match: {{ prefix: {} }}\n", crate::yaml_str(prefix)))
            .collect();
        rules.push_str("- match: { prefix: / }\n  requires: { provider_name: idp }\n");
        crate::config::jwt_authn_filter(&providers, &rules)
    }

    /// The private JWKS file now in use.
    pub fn keys_file(&self) -> &PathBuf {
        &self.keys_file
    }

    /// The `kid`s of the keys now in use (RS256, ES256, EdDSA in that order).
    pub fn kids(&self) -> Vec<String> {
        self.ready["kids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The ready line the IdP printed (port, issuer, kids, clients and their auth methods).
    pub fn ready_info(&self) -> &Value {
        &self.ready
    }

    fn get(&self, path: &str) -> Response {
        http::request(self.addr(), "GET", path, &[], b"")
            .unwrap_or_else(|e| panic!("GET {path} from the idp: {e}\n{}", self.log()))
    }

    /// The public JWKS it serves.
    pub fn jwks(&self) -> Value {
        let resp = self.get("/jwks");
        assert_eq!(resp.status, 200, "GET /jwks: {resp}");
        resp.json()
    }

    /// Its discovery document.
    pub fn discovery(&self) -> Value {
        let resp = self.get("/.well-known/openid-configuration");
        assert_eq!(resp.status, 200, "discovery: {resp}");
        resp.json()
    }

    /// Requests per path since start (`GET /__stats`), e.g. `stats()["/jwks"]`.
    pub fn stats(&self) -> Value {
        self.get("/__stats").json()
    }

    /// A JWT access token by client credentials with HTTP Basic client authentication. `scope`
    /// None: every scope the client may have; `resource` None: the client's default resource
    /// (`urn:shieldwall:orders-api`). Panics on an error answer.
    pub fn token(
        &self,
        client_id: &str,
        secret: &str,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> String {
        self.try_token(client_id, secret, scope, resource, ClientAuth::Basic)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A token for a demo client (secret `<client_id>-secret`) with all its scopes.
    pub fn demo_token(&self, client_id: &str) -> String {
        self.token(client_id, &format!("{client_id}-secret"), None, None)
    }

    /// The token request, returning the access token or the error answer.
    pub fn try_token(
        &self,
        client_id: &str,
        secret: &str,
        scope: Option<&str>,
        resource: Option<&str>,
        auth: ClientAuth,
    ) -> Result<String, TokenError> {
        token_of(self.token_response(client_id, secret, scope, resource, auth))
    }

    /// A token of a client registered as certificate-bound (`orders-bound`): the request carries
    /// `cert_pem` as the IdP's proxy would (`x-client-cert`, URL-encoded), and the token is bound
    /// to that certificate (`cnf.x5t#S256`). HTTP Basic client authentication.
    pub fn bound_token(
        &self,
        client_id: &str,
        resource: Option<&str>,
        cert_pem: &str,
    ) -> Result<String, TokenError> {
        let secret = format!("{client_id}-secret");
        let resp = self.token_request(
            client_id,
            &secret,
            None,
            resource,
            ClientAuth::Basic,
            &[("x-client-cert", &form_encode(cert_pem))],
        );
        token_of(resp)
    }

    /// The raw token endpoint response (for assertions on `expires_in`, `scope`, `token_type`).
    pub fn token_response(
        &self,
        client_id: &str,
        secret: &str,
        scope: Option<&str>,
        resource: Option<&str>,
        auth: ClientAuth,
    ) -> Response {
        self.token_request(client_id, secret, scope, resource, auth, &[])
    }

    fn token_request(
        &self,
        client_id: &str,
        secret: &str,
        scope: Option<&str>,
        resource: Option<&str>,
        auth: ClientAuth,
        extra_headers: &[(&str, &str)],
    ) -> Response {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        if let Some(resource) = resource {
            form.push(("resource", resource));
        }
        let mut headers = vec![(
            "content-type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        )];
        match auth {
            ClientAuth::Basic => {
                // RFC 6749 2.3.1: id and secret are form-encoded before the Basic encoding.
                let creds = format!("{}:{}", form_encode(client_id), form_encode(secret));
                headers.push((
                    "authorization".into(),
                    format!("Basic {}", base64_encode(creds.as_bytes())),
                ));
            }
            ClientAuth::Post => {
                form.push(("client_id", client_id));
                form.push(("client_secret", secret));
            }
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        headers.extend(
            extra_headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        http::request(self.addr(), "POST", "/token", &headers, body.as_bytes())
            .unwrap_or_else(|e| panic!("POST /token to the idp: {e}\n{}", self.log()))
    }

    /// The IdP's output (stdout and stderr) since its last (re)start.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join(format!("idp-{}.log", self.generation)))
            .unwrap_or_default()
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!("idp files kept for the failed test: {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The access token of a token endpoint response, or its error.
fn token_of(resp: Response) -> Result<String, TokenError> {
    let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    match body["access_token"].as_str() {
        Some(token) if resp.status == 200 => Ok(token.to_owned()),
        _ => Err(TokenError {
            status: resp.status,
            error: body["error"]
                .as_str()
                .unwrap_or("(no error field)")
                .to_owned(),
            description: body["error_description"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| resp.text()),
        }),
    }
}
