//! mtls-identity over the real release module: the certificate of the connection (PEM, as Envoy
//! exposes it) becomes the identity context that scope-authz decides on; forged certificate and
//! identity headers are removed; each refusal; a certificate whose first URI SAN looks right but
//! that carries two; a certificate forwarded by a front proxy, taken only from that proxy; a
//! refused configuration.
//!
//! Build first: cargo build --release --target wasm32-wasip1 -p mtls-identity -p scope-authz

use std::sync::OnceLock;

use host_tests::{wasm_path, Envoy, Outcome, Plugin, Request, Tls, Worker};
use mtls_identity::testing::{TestCa, TestCert};
use serde_json::{json, Value};

const GATEWAY: &str = "spiffe://bank-a.example/ns/payments/sa/gateway";
const FRONT: &str = "spiffe://edge.example/front";

struct Certs {
    gateway: TestCert,
    partner: TestCert,
    two_uris: TestCert,
    subject_only: TestCert,
    front: TestCert,
}

fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let ca = TestCa::new("host");
        Certs {
            gateway: ca.end_entity("gw", "/CN=gateway", &[&format!("URI:{GATEWAY}")]),
            partner: ca.end_entity(
                "p1",
                "/CN=p1",
                &["URI:spiffe://bank-b.example/ns/partners/sa/p1"],
            ),
            two_uris: ca.end_entity(
                "two",
                "/CN=two",
                &[
                    &format!("URI:{GATEWAY}"),
                    "URI:spiffe://bank-a.example/other",
                ],
            ),
            subject_only: ca.end_entity(
                "subj",
                "/O=Partner Ltd/CN=partner-1",
                &["DNS:api.partner.example"],
            ),
            front: ca.end_entity("front", "/CN=front", &[&format!("URI:{FRONT}")]),
        }
    })
}

/// The TLS properties Envoy reports for a client certificate: the first URI and DNS SANs only,
/// the lowercase hex digest, and the PEM text.
fn tls(cert: &TestCert, first_uri: Option<&str>) -> Tls {
    let mut t = Tls::mtls("CN=test")
        .sha256(&cert.sha256_hex)
        .peer_pem(&cert.pem);
    if let Some(u) = first_uri {
        t = t.uri_san(u);
    }
    t
}

fn config() -> Value {
    json!({
      "trust_domains": ["bank-a.example", "bank-b.example"],
      "tenant_from_trust_domain": { "bank-a.example": "bank-a", "bank-b.example": "bank-b" },
      "rules": [
        { "match": { "prefix": "/healthz" } },
        { "match": { "prefix": "/internal/" }, "requires": { "spiffe_ids": [GATEWAY] } },
        { "match": { "prefix": "/partners/" },
          "requires": { "any": [ { "spiffe_id_prefix": "spiffe://bank-b.example/ns/partners/" },
                                { "subject": "CN=partner-1,O=Partner Ltd" } ] } },
        { "match": { "prefix": "/" }, "requires": "optional" }
      ],
      "forward_client_cert": "sanitize_set",
      "headers": { "spiffe_id": "x-spiffe-id", "cert_sha256": "x-client-cert-sha256" }
    })
}

fn mtls_identity(config: &Value) -> Plugin {
    Plugin::new(wasm_path("mtls-identity"))
        .name("mtls")
        .vm_id("mtls")
        .json(config)
}

/// scope-authz after it: `/internal/` only for the gateway's SPIFFE ID, `/tenant/` for bank-a.
fn scope_authz() -> Plugin {
    Plugin::new(wasm_path("scope-authz"))
        .name("authz")
        .vm_id("authz")
        .json(&json!({ "rules": [
            { "match": { "prefix": "/internal/" }, "require": { "principals": [GATEWAY] } },
            { "match": { "prefix": "/" }, "public": true } ] }))
}

fn send(w: &Worker, req: Request) -> (Outcome, Option<Value>) {
    let mut s = w.stream(req);
    let out = s.send_request();
    let identity = s
        .filter_state("shieldwall.identity")
        .map(|b| serde_json::from_slice(&b).unwrap());
    s.finish();
    (out, identity)
}

fn code(out: &Outcome) -> (u16, String) {
    let r = out.local_reply();
    (
        r.status(),
        r.body_json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[test]
fn the_certificate_becomes_the_identity_that_scope_authz_decides_on() {
    let envoy = Envoy::new();
    let w = envoy
        .worker(&[mtls_identity(&config()), scope_authz()])
        .unwrap();
    let c = certs();

    let req = Request::get("/internal/pay")
        .tls(tls(&c.gateway, Some(GATEWAY)))
        .header("x-spiffe-id", "spiffe://bank-a.example/forged")
        .header(
            "x-forwarded-client-cert",
            "Hash=00;URI=spiffe://bank-a.example/forged",
        )
        .header("x-client-cert-sha256", "forged");
    let (out, identity) = send(&w, req);
    let up = out.upstream();
    assert_eq!(up.header_all("x-spiffe-id"), vec![GATEWAY]);
    let xfcc = up.header_all("x-forwarded-client-cert");
    assert_eq!(xfcc.len(), 1);
    assert_eq!(
        xfcc[0],
        format!(
            "Hash={};Subject=\"CN=gateway\";URI={GATEWAY}",
            c.gateway.sha256_hex
        )
    );
    let thumbprint = up.header("x-client-cert-sha256").unwrap().to_string();
    assert_eq!(thumbprint.len(), 43);
    let identity = identity.unwrap();
    assert_eq!(identity["spiffe_id"], json!(GATEWAY));
    assert_eq!(identity["tenant"], json!("bank-a"));
    assert_eq!(identity["auth"], json!(["mtls"]));
    assert_eq!(identity["cert_sha256"], json!(thumbprint));

    // mtls-identity refuses the partner on /internal/; on /partners/ it passes with its tenant.
    let (out, _) = send(&w, Request::get("/internal/pay").tls(tls(&c.partner, None)));
    assert_eq!(code(&out), (403, "access_denied".into()));
    let (out, identity) = send(&w, Request::get("/partners/x").tls(tls(&c.partner, None)));
    out.upstream();
    assert_eq!(identity.unwrap()["tenant"], json!("bank-b"));
    let (out, identity) = send(
        &w,
        Request::get("/partners/x").tls(tls(&c.subject_only, None)),
    );
    assert_eq!(out.upstream().header("x-spiffe-id"), None);
    assert_eq!(
        identity.unwrap()["sub"],
        json!("CN=partner-1,O=Partner Ltd")
    );

    let m = |n: &str| envoy.metric(&format!("shieldwall.mtls_identity.{n}"));
    assert_eq!(m("allowed"), Some(3));
    assert_eq!(m("denied.not_allowed"), Some(1));

    // With only "optional" in mtls-identity, scope-authz's principals decide on its identity.
    let mut lax = config();
    lax["rules"] = json!([{ "match": { "prefix": "/" }, "requires": "optional" }]);
    let w = envoy.worker(&[mtls_identity(&lax), scope_authz()]).unwrap();
    send(&w, Request::get("/internal/pay").tls(tls(&c.gateway, None)))
        .0
        .upstream();
    let (out, _) = send(&w, Request::get("/internal/pay").tls(tls(&c.partner, None)));
    assert_eq!(code(&out), (403, "access_denied".into()));
    assert_eq!(
        envoy.metric("shieldwall.scope_authz.denied.principal_not_allowed"),
        Some(1)
    );
    // Without a certificate scope-authz sees no identity and refuses the principals rule.
    let (out, _) = send(&w, Request::get("/internal/pay"));
    assert_eq!(code(&out), (403, "access_denied".into()));
}

#[test]
fn the_first_uri_san_is_not_enough() {
    // Envoy's `uri_san_peer_certificate` shows only the gateway's ID; the certificate has two.
    let envoy = Envoy::new();
    let w = envoy.worker(&[mtls_identity(&config())]).unwrap();
    let (out, identity) = send(
        &w,
        Request::get("/internal/pay").tls(tls(&certs().two_uris, Some(GATEWAY))),
    );
    assert_eq!(code(&out), (403, "access_denied".into()));
    assert!(identity.is_none());
    assert_eq!(
        envoy.metric("shieldwall.mtls_identity.denied.several_uri_sans"),
        Some(1)
    );
    // Without the certificate text (a proxy that does not expose it) nothing is guessed.
    let t = Tls::mtls("CN=gateway")
        .uri_san(GATEWAY)
        .sha256(&certs().gateway.sha256_hex);
    let (out, _) = send(&w, Request::get("/internal/pay").tls(t));
    assert_eq!(code(&out), (403, "access_denied".into()));
    assert_eq!(
        envoy.metric("shieldwall.mtls_identity.denied.unreadable_certificate"),
        Some(1)
    );
}

#[test]
fn no_certificate() {
    let envoy = Envoy::new();
    let w = envoy.worker(&[mtls_identity(&config())]).unwrap();
    let (out, _) = send(
        &w,
        Request::get("/internal/pay").header("x-forwarded-client-cert", "Hash=00"),
    );
    assert_eq!(code(&out), (401, "missing_client_certificate".into()));
    assert_eq!(out.local_reply().header("www-authenticate"), None);
    let (out, identity) = send(
        &w,
        Request::get("/anything")
            .header("x-forwarded-client-cert", "Hash=00")
            .header("x-spiffe-id", GATEWAY),
    );
    let up = out.upstream();
    assert_eq!(up.header("x-forwarded-client-cert"), None);
    assert_eq!(up.header("x-spiffe-id"), None);
    assert!(identity.is_none());
}

#[test]
fn a_configuration_that_cannot_work_is_refused_at_load() {
    let envoy = Envoy::new();
    let mut c = config();
    c["from_front_proxy"] = json!({"proxies": {"spiffe_ids": [FRONT]}, "format": "pem"});
    let err = envoy.worker(&[mtls_identity(&c)]).err().expect("refused");
    assert!(
        format!("{err:#}").contains("from_front_proxy.header: needed with `pem`"),
        "{err:#}"
    );
    let mut c = config();
    c["rules"][1]["requires"]["spiffe_ids"][0] = json!("spiffe://bank-a.example/a/../b");
    let err = envoy.worker(&[mtls_identity(&c)]).err().expect("refused");
    assert!(
        format!("{err:#}").contains("rules[1].requires.spiffe_ids[0]"),
        "{err:#}"
    );
}

/// In the one-module chain, mtls-identity then scope-authz answer every request as the two
/// separate modules do: the same replies and upstream requests, the same identity.
#[test]
fn in_the_one_module_chain_it_answers_as_its_own_module() {
    let c = certs();
    let authz = json!({ "rules": [
        { "match": { "prefix": "/internal/" }, "require": { "principals": [GATEWAY] } },
        { "match": { "prefix": "/" }, "public": true } ] });
    let chain = Plugin::new(wasm_path("shieldwall"))
        .name("shieldwall")
        .vm_id("shieldwall")
        .json(&json!({"chain": [
            {"filter": "mtls-identity", "config": config()},
            {"filter": "scope-authz", "config": authz}]}));
    // One harness each, so both see the same request ids.
    let (envoy_a, envoy_b) = (Envoy::new(), Envoy::new());
    let separate = envoy_a
        .worker(&[mtls_identity(&config()), scope_authz()])
        .unwrap();
    let one = envoy_b.worker(&[chain]).unwrap();
    let requests = || {
        vec![
            Request::get("/internal/pay").tls(tls(&c.gateway, Some(GATEWAY))),
            Request::get("/internal/pay").tls(tls(
                &c.partner,
                Some("spiffe://bank-b.example/ns/partners/sa/p1"),
            )),
            Request::get("/internal/pay"),
            Request::get("/partners/x").tls(tls(&c.subject_only, None)),
            Request::get("/internal/pay")
                .tls(tls(&c.two_uris, Some(GATEWAY)))
                .header("x-spiffe-id", GATEWAY),
            Request::get("/public").header("x-forwarded-client-cert", "Hash=00;URI=forged"),
        ]
    };
    for (a, b) in requests().into_iter().zip(requests()) {
        // Everything must be equal, the response code details (`shieldwall_<filter>`) too.
        let (out_a, id_a) = send(&separate, a);
        let (out_b, id_b) = send(&one, b);
        assert_eq!(out_a, out_b);
        assert_eq!(id_a, id_b);
    }
}

/// URL-encodes like Envoy's XFCC `Cert=`.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn a_certificate_forwarded_by_the_front_proxy_and_by_no_one_else() {
    let envoy = Envoy::new();
    let mut c = config();
    c["from_front_proxy"] = json!({ "proxies": { "spiffe_ids": [FRONT] } });
    let w = envoy.worker(&[mtls_identity(&c), scope_authz()]).unwrap();
    let certs = certs();
    let element = format!(
        "By=spiffe://edge.example/server;Hash={};Cert=\"{}\";Subject=\"CN=gateway\";URI={GATEWAY}",
        certs.gateway.sha256_hex,
        url_encode(&certs.gateway.pem)
    );

    // From the front proxy: the forwarded certificate is the identity scope-authz decides on.
    let (out, identity) = send(
        &w,
        Request::get("/internal/pay")
            .tls(tls(&certs.front, Some(FRONT)))
            .header("x-forwarded-client-cert", &element),
    );
    let up = out.upstream();
    assert_eq!(up.header_all("x-spiffe-id"), vec![GATEWAY]);
    assert_eq!(
        up.header_all("x-forwarded-client-cert"),
        vec![format!(
            "Hash={};Subject=\"CN=gateway\";URI={GATEWAY}",
            certs.gateway.sha256_hex
        )]
    );
    let identity = identity.unwrap();
    assert_eq!(identity["spiffe_id"], json!(GATEWAY));
    assert_eq!(identity["claims"]["front_proxy"], json!(FRONT));

    // From the front proxy without the header: its own certificate is not the client's.
    let (out, identity) = send(
        &w,
        Request::get("/internal/pay").tls(tls(&certs.front, Some(FRONT))),
    );
    assert_eq!(code(&out), (401, "missing_client_certificate".into()));
    assert!(identity.is_none());

    // From a client with its own certificate: the header is ignored and removed.
    let (out, identity) = send(
        &w,
        Request::get("/internal/pay")
            .tls(tls(&certs.partner, None))
            .header("x-forwarded-client-cert", &element),
    );
    assert_eq!(code(&out), (403, "access_denied".into()));
    assert!(identity.is_none());
    let (out, identity) = send(
        &w,
        Request::get("/anything")
            .tls(tls(&certs.partner, None))
            .header("x-forwarded-client-cert", &element),
    );
    let up = out.upstream();
    assert!(!up
        .header("x-forwarded-client-cert")
        .unwrap_or_default()
        .contains(GATEWAY));
    assert_eq!(
        identity.unwrap()["spiffe_id"],
        json!("spiffe://bank-b.example/ns/partners/sa/p1")
    );
    // Without TLS at all: ignored too.
    let (out, _) = send(
        &w,
        Request::get("/internal/pay").header("x-forwarded-client-cert", &element),
    );
    assert_eq!(code(&out), (401, "missing_client_certificate".into()));
    assert_eq!(
        envoy.metric("shieldwall.mtls_identity.front_proxy.header_ignored"),
        Some(3)
    );
}
