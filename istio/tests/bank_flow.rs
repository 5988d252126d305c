//! The bank reference walked through the real filters: the gateway's WasmPlugin configuration
//! (istio/bank-reference/gateway-wasmplugin.yaml, as written) runs in the one-module chain's own
//! code on a mock proxy, with a test IdP's keys; the internal token it mints is then judged by the
//! mesh side's resources (bank-a.yaml, bank-b.yaml) the way Istio reads them: RequestAuthentication
//! (issuer, audiences, the signature against the JWKS the gateway serves at its jwks_path) and the
//! AuthorizationPolicy (requestPrincipals, the tenant claim). Not a cluster: Envoy and istiod are
//! not in this test (the real-Envoy tests run the chain; this one ties the manifests to it).

// Helpers outside #[test] functions panic on purpose: a panic is how a test reports.
#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::unwrap_used,
    clippy::indexing_slicing
)]

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{all_wasm_plugins, istio_dir, vm_env};
use mtls_identity::testing::{TestCa, TestCert};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde_json::{json, Value};
use shieldwall::Shieldwall;
use shieldwall_core::testing::MockHost;
use shieldwall_core::{Action, CalloutResponse, GrpcResponse, Host, RootFilter, StreamFilter};
use shieldwall_istio::parse_documents;

const NOW: u64 = 1_700_000_000;
const IDP_ISSUER: &str = "https://idp.bank.example";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The bank's OpenID Provider, as far as the gateway sees it: a P-256 key and its JWKS.
struct Idp {
    key: SigningKey,
}

impl Idp {
    fn new() -> Idp {
        Idp {
            key: SigningKey::from_slice(&[0x5a; 32]).expect("a P-256 scalar"),
        }
    }

    fn jwks(&self) -> Value {
        let point = self.key.verifying_key().to_encoded_point(false);
        json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "idp-1", "alg": "ES256",
            "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y"))}]})
    }

    /// An access token of a user of `tenant` with `scope`.
    fn token(&self, sub: &str, tenant: &str, scope: &str) -> String {
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": "idp-1"});
        let claims = json!({"iss": IDP_ISSUER, "sub": sub, "aud": "bank-api", "exp": NOW + 600,
            "iat": NOW, "client_id": format!("{tenant}-app"), "scope": scope, "tenant": tenant,
            "tier": "gold"});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature: Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", b64(&signature.to_bytes()))
    }
}

/// The rate-limit service's answer `OK` (RateLimitResponse{overall_code: OK}).
fn rls_ok() -> GrpcResponse {
    GrpcResponse {
        status: 0,
        message: Some(vec![0x08, 0x01]),
    }
}

/// The gateway: the bank reference's WasmPlugin configuration in the one-module chain.
struct Gateway {
    root: Shieldwall,
    host: MockHost,
    next_id: u32,
}

/// What became of one request at the gateway.
struct Outcome {
    status: u16,
    /// The request headers the services would receive (when it passed).
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Outcome {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Gateway {
    fn start(idp: &Idp) -> Gateway {
        let plugin = all_wasm_plugins()
            .into_iter()
            .find(|p| p.file.starts_with("bank-reference"))
            .expect("the bank reference's gateway plugin");
        let mut host = MockHost::new();
        host.set_now_secs(NOW);
        host.env = vm_env(&plugin);
        let config = serde_json::to_vec(&plugin.plugin_config).expect("JSON");
        let mut root = Shieldwall::configure(&mut host, &config).expect("the chain loads");
        // jwt-auth fetches the IdP's keys on its first tick, through the Istio cluster named in
        // the manifest.
        root.on_tick(&mut host);
        let fetch = host
            .callouts
            .iter()
            .find(|c| c.cluster == "outbound|443||idp.bank.example")
            .cloned()
            .expect("a JWKS fetch to the IdP's cluster");
        root.on_http_call_response(
            &mut host,
            fetch.token,
            CalloutResponse {
                status: Some(200),
                headers: vec![(":status".into(), "200".into())],
                body: idp.jwks().to_string().into_bytes(),
            },
        );
        assert_eq!(host.metric("shieldwall.jwt_auth.jwks.fetch.ok"), 1);
        Gateway {
            root,
            host,
            next_id: 1,
        }
    }

    /// One request through the chain, as Envoy would drive it; the rate-limit service answers OK.
    fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Outcome {
        self.request_from(None, method, path, headers, body)
    }

    /// A request on a connection whose client certificate (verified by Envoy: the Gateway's
    /// `tls.mode: MUTUAL`) is `certificate`, as Envoy exposes it to a filter.
    fn request_from(
        &mut self,
        certificate: Option<&TestCert>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Outcome {
        let host = &mut self.host;
        host.new_stream(method, path, headers);
        host.set_property(&["source", "address"], b"203.0.113.7:40000")
            .expect("property");
        if let Some(cert) = certificate {
            host.set_property(&["connection", "mtls"], &[1])
                .expect("property");
            host.set_property(&["connection", "peer_certificate"], cert.pem.as_bytes())
                .expect("property");
        }
        let mut body_pending = match body {
            Some(b) => {
                host.request_body = b.to_vec();
                host.add_request_header("content-type", "application/json");
                host.add_request_header("content-length", &b.len().to_string());
                true
            }
            None => false,
        };
        let id = self.next_id;
        self.next_id += 1;
        let mut stream = self.root.new_stream(host, id);
        let mut answered = host.grpc_callouts.len();
        let mut action = stream.on_request_headers(host, body.is_none());
        let status = loop {
            if let Some(reply) = &host.local_reply {
                break reply.status;
            }
            if host.grpc_callouts.len() > answered {
                let call = host.grpc_callouts[answered].clone();
                answered += 1;
                assert_eq!(
                    call.cluster,
                    "outbound|8081||ratelimit.ratelimit.svc.cluster.local"
                );
                action = stream.on_grpc_call_response(host, call.token, rls_ok());
                continue;
            }
            if body_pending {
                body_pending = false;
                let size = host.request_body.len();
                action = stream.on_request_body(host, size, true);
                continue;
            }
            assert_eq!(action, Action::Continue, "paused with nothing to answer");
            break 200;
        };
        stream.on_log(host);
        stream.on_done(host);
        Outcome {
            status,
            headers: host.request_headers.clone(),
            body: host
                .local_reply
                .as_ref()
                .map(|r| r.body.clone())
                .unwrap_or_default(),
        }
    }
}

fn tenant_documents(tenant: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(istio_dir().join(format!("bank-reference/{tenant}.yaml")))
        .expect("tenant manifests");
    parse_documents(&text)
        .expect("YAML")
        .into_iter()
        .map(|(_, d)| d)
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter().find(|d| d["kind"] == kind).expect(kind)
}

/// The claims of an internal token, its ES256 signature verified with a key of `jwks`.
fn verified_claims(token: &str, jwks: &Value) -> Value {
    let mut parts = token.split('.');
    let (header, payload, signature) = (
        parts.next().expect("header"),
        parts.next().expect("payload"),
        parts.next().expect("signature"),
    );
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("JSON");
    assert_eq!(header["alg"], "ES256");
    let jwk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap_or_else(|| panic!("no key {} in the served JWKS", header["kid"]));
    let coordinate = |name: &str| {
        URL_SAFE_NO_PAD
            .decode(jwk[name].as_str().expect(name))
            .expect("b64")
    };
    let mut sec1 = vec![0x04];
    sec1.extend(coordinate("x"));
    sec1.extend(coordinate("y"));
    let key = VerifyingKey::from_sec1_bytes(&sec1).expect("a P-256 point");
    let signature =
        Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).expect("b64")).expect("r||s");
    let signed = &token[..token.rfind('.').expect("three parts")];
    key.verify(signed.as_bytes(), &signature)
        .expect("the internal token's signature verifies with the served JWKS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("JSON")
}

/// Does the tenant's mesh admit a request carrying these (verified) internal-token claims from
/// the gateway? RequestAuthentication: issuer and audience. AuthorizationPolicy (ALLOW): a rule
/// whose requestPrincipals (`<iss>/<sub>`, `*` as a prefix or suffix wildcard) and `when` on
/// `request.auth.claims[...]` all match. The peer is the gateway (its principal is checked by
/// mutual TLS, which this test does not run).
fn mesh_admits(tenant: &str, claims: &Value) -> bool {
    let docs = tenant_documents(tenant);
    let authn = kind(&docs, "RequestAuthentication");
    let rule = authn["spec"]["jwtRules"]
        .as_array()
        .expect("jwtRules")
        .iter()
        .find(|r| r["issuer"] == claims["iss"]);
    let Some(rule) = rule else {
        return false; // an issuer no rule names: the token is refused (401)
    };
    let audiences: Vec<&Value> = rule["audiences"].as_array().expect("aud").iter().collect();
    let token_audiences: Vec<Value> = match &claims["aud"] {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    if !token_audiences.iter().any(|a| audiences.contains(&a)) {
        return false;
    }
    let principal = format!(
        "{}/{}",
        claims["iss"].as_str().unwrap_or(""),
        claims["sub"].as_str().unwrap_or("")
    );
    let policy = kind(&docs, "AuthorizationPolicy");
    assert_eq!(policy["spec"]["action"], "ALLOW");
    policy["spec"]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .any(|rule| {
            let from_ok = rule["from"].as_array().expect("from").iter().any(|f| {
                f["source"]["requestPrincipals"]
                    .as_array()
                    .expect("requestPrincipals")
                    .iter()
                    .any(|p| {
                        let p = p.as_str().expect("string");
                        match (p.strip_suffix('*'), p.strip_prefix('*')) {
                            (Some(prefix), _) => principal.starts_with(prefix),
                            (_, Some(suffix)) => principal.ends_with(suffix),
                            _ => principal == p,
                        }
                    })
            });
            let when_ok = rule["when"].as_array().into_iter().flatten().all(|w| {
                let key = w["key"].as_str().expect("key");
                let claim = key
                    .strip_prefix("request.auth.claims[")
                    .and_then(|k| k.strip_suffix(']'))
                    .unwrap_or_else(|| panic!("a `when` key this test does not read: {key}"));
                w["values"]
                    .as_array()
                    .expect("values")
                    .iter()
                    .any(|v| v == &claims[claim])
            });
            from_ok && when_ok
        })
}

#[test]
fn the_internal_jwks_is_served_at_jwks_path_without_a_token() {
    let idp = Idp::new();
    let mut gateway = Gateway::start(&idp);
    let reply = gateway.request("GET", "/.well-known/internal-jwks.json", &[], None);
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let jwks: Value = serde_json::from_slice(&reply.body).expect("a JWKS");
    assert_eq!(jwks["keys"][0]["kid"], "2026-11", "{jwks}");
    assert!(jwks["keys"][0].get("d").is_none(), "no private part");
}

#[test]
fn a_bank_a_user_reads_its_account_and_only_bank_a_admits_the_internal_token() {
    let idp = Idp::new();
    let mut gateway = Gateway::start(&idp);
    let jwks: Value = serde_json::from_slice(
        &gateway
            .request("GET", "/.well-known/internal-jwks.json", &[], None)
            .body,
    )
    .expect("JWKS");
    let bearer = format!("Bearer {}", idp.token("alice", "bank-a", "accounts:read"));
    let out = gateway.request(
        "GET",
        "/tenants/bank-a/accounts/acc-1",
        &[("authorization", &bearer)],
        None,
    );
    assert_eq!(out.status, 200, "{}", String::from_utf8_lossy(&out.body));
    // The global limit was asked (the rate-limit service shared by the gateway replicas).
    assert_eq!(
        gateway
            .host
            .metric("shieldwall.rate_limit.rule.per-client.admitted"),
        1
    );
    assert!(
        !gateway.host.grpc_callouts.is_empty(),
        "no call to the rate-limit service"
    );
    assert_eq!(
        out.header("x-spiffe-id"),
        Some("spiffe://bank-a.bank.example/user/alice")
    );
    let internal = out
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .expect("the internal token replaces the external one");
    assert_ne!(format!("Bearer {internal}"), bearer);
    let claims = verified_claims(internal, &jwks);
    assert_eq!(claims["sub"], "spiffe://bank-a.bank.example/user/alice");
    assert_eq!(claims["tenant"], "bank-a");
    assert!(mesh_admits("bank-a", &claims), "bank-a refuses {claims}");
    assert!(!mesh_admits("bank-b", &claims), "bank-b admits {claims}");
}

#[test]
fn a_bank_a_user_on_bank_bs_path_is_refused_at_the_gateway() {
    let idp = Idp::new();
    let mut gateway = Gateway::start(&idp);
    let bearer = format!("Bearer {}", idp.token("alice", "bank-a", "accounts:read"));
    let out = gateway.request(
        "GET",
        "/tenants/bank-b/accounts/acc-1",
        &[("authorization", &bearer)],
        None,
    );
    assert_eq!(out.status, 403);
    assert_eq!(
        gateway
            .host
            .metric("shieldwall.scope_authz.denied.tenant_mismatch"),
        1
    );
    // No token at all: 401 at jwt-auth.
    let out = gateway.request("GET", "/tenants/bank-a/accounts/acc-1", &[], None);
    assert_eq!(out.status, 401);
}

#[test]
fn payments_are_checked_against_the_bank_apis_openapi_document() {
    let idp = Idp::new();
    let mut gateway = Gateway::start(&idp);
    let bearer = format!(
        "Bearer {}",
        idp.token("alice", "bank-a", "payments:transfer")
    );
    let good = br#"{"from_account": "acc-1", "to_iban": "DE89370400440532013000", "amount": 120.5, "currency": "EUR"}"#;
    let out = gateway.request(
        "POST",
        "/tenants/bank-a/payments",
        &[("authorization", &bearer)],
        Some(good),
    );
    assert_eq!(out.status, 200, "{}", String::from_utf8_lossy(&out.body));
    let unknown_field = br#"{"from_account": "acc-1", "to_iban": "DE89370400440532013000", "amount": 120.5, "currency": "EUR", "fee": 0}"#;
    let out = gateway.request(
        "POST",
        "/tenants/bank-a/payments",
        &[("authorization", &bearer)],
        Some(unknown_field),
    );
    assert_eq!(out.status, 400, "{}", String::from_utf8_lossy(&out.body));
    assert_eq!(
        gateway
            .host
            .metric("shieldwall.payload_guard.denied.invalid_request"),
        1
    );
}

/// A service of bank-a with its X.509 SVID calls an internal route over mutual TLS: the
/// certificate's SPIFFE ID is the caller (kept as the internal token's subject), its trust domain
/// the tenant, and bank-a's mesh admits the token. Another tenant's service is refused.
#[test]
fn a_bank_a_service_certificate_calls_an_internal_route() {
    let idp = Idp::new();
    let mut gateway = Gateway::start(&idp);
    let jwks: Value = serde_json::from_slice(
        &gateway
            .request("GET", "/.well-known/internal-jwks.json", &[], None)
            .body,
    )
    .expect("JWKS");
    let ca = TestCa::new("bank-flow");
    let settlement = ca.end_entity(
        "settlement",
        "/O=bank-a/CN=settlement",
        &["URI:spiffe://bank-a.bank.example/ns/payments/sa/settlement"],
    );
    let out = gateway.request_from(Some(&settlement), "GET", "/internal/settlements", &[], None);
    assert_eq!(out.status, 200, "{}", String::from_utf8_lossy(&out.body));
    assert_eq!(
        out.header("x-spiffe-id"),
        Some("spiffe://bank-a.bank.example/ns/payments/sa/settlement")
    );
    let internal = out
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .expect("an internal token");
    let claims = verified_claims(internal, &jwks);
    assert_eq!(
        claims["sub"],
        "spiffe://bank-a.bank.example/ns/payments/sa/settlement"
    );
    assert_eq!(claims["tenant"], "bank-a");
    assert!(mesh_admits("bank-a", &claims), "bank-a refuses {claims}");
    assert!(!mesh_admits("bank-b", &claims), "bank-b admits {claims}");

    let other = ca.end_entity(
        "bank-b-settlement",
        "/O=bank-b/CN=settlement",
        &["URI:spiffe://bank-b.bank.example/ns/payments/sa/settlement"],
    );
    let out = gateway.request_from(Some(&other), "GET", "/internal/settlements", &[], None);
    assert_eq!(out.status, 403);
    // Without a certificate, the internal route is closed too.
    let out = gateway.request("GET", "/internal/settlements", &[], None);
    assert_eq!(out.status, 401);
}
