//! mtls-identity in a real Envoy over real TLS: a listener that verifies client certificates
//! against a test CA made with openssl at test time. The connection manager runs with
//! `ALWAYS_FORWARD_ONLY`, so Envoy itself removes nothing a client sends: every forged certificate
//! or identity header that does not reach the upstream was removed by the filter.
//!
//! Build first: cargo build --release --target wasm32-wasip1 -p mtls-identity

use std::process::Command;

use mtls_identity::testing::{TestCa, TestCert};
use serde_json::{json, Value};
use shieldwall_e2e::curl::https_get;
use shieldwall_e2e::jwt::base64url_encode;
use shieldwall_e2e::{
    wasm_path, Cluster, DownstreamTls, Echo, Envoy, EnvoyConfig, Route, UpstreamTls, WasmFilter,
};

const GATEWAY: &str = "spiffe://bank-a.example/ns/payments/sa/gateway";

fn filter_config() -> Value {
    json!({
      "trust_domains": ["bank-a.example", "bank-b.example"],
      "tenant_from_trust_domain": { "bank-a.example": "bank-a", "bank-b.example": "bank-b" },
      "rules": [
        { "match": { "prefix": "/healthz" } },
        { "match": { "prefix": "/internal/" }, "requires": { "spiffe_ids": [GATEWAY] } },
        { "match": { "prefix": "/partners/" },
          "requires": { "any": [ { "spiffe_id_prefix": "spiffe://bank-b.example/ns/partners/" },
                                { "subject": "CN=partner-1,O=Partner Ltd" },
                                { "dns_san": "api.partner.example" } ] } },
        { "match": { "prefix": "/public/" }, "requires": "optional" }
      ],
      "forward_client_cert": "sanitize_set",
      "headers": { "spiffe_id": "x-spiffe-id", "cert_sha256": "x-client-cert-sha256" }
    })
}

struct Reply {
    status: u16,
    body: Value,
}

impl Reply {
    /// The values of a header the upstream (the echo) received.
    fn upstream(&self, name: &str) -> Vec<String> {
        self.body["header_list"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter(|p| p[0] == name)
                    .map(|p| p[1].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }
}

/// An HTTPS GET with curl: the test CA as trust anchor, a client certificate if given.
fn curl(
    envoy: &Envoy,
    ca: &TestCa,
    client: Option<&TestCert>,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let client = client.map(|c| (c.cert.as_path(), c.key.as_path()));
    let resp =
        https_get(envoy.port(), &ca.cert, client, path, headers).unwrap_or_else(|e| panic!("{e}"));
    Reply {
        status: resp.status,
        body: serde_json::from_slice(&resp.body).unwrap_or(Value::Null),
    }
}

#[test]
fn scope_authz_principals_decide_on_the_certificate_identity() {
    let ca = TestCa::new("e2e-authz");
    let server = ca.end_entity("server", "/CN=localhost", &["DNS:localhost"]);
    let gateway = ca.end_entity("gw", "/CN=gateway", &[&format!("URI:{GATEWAY}")]);
    let partner = ca.end_entity(
        "p1",
        "/CN=p1",
        &["URI:spiffe://bank-b.example/ns/partners/sa/p1"],
    );
    let echo = Echo::start();
    let mut mtls = filter_config();
    mtls["rules"] = json!([{ "match": { "prefix": "/" }, "requires": "optional" }]);
    let authz = json!({ "rules": [
        { "match": { "prefix": "/internal/" }, "require": { "principals": [GATEWAY] } },
        { "match": { "prefix": "/" }, "public": true } ] });
    let config = EnvoyConfig::new(echo.port())
        .tls(DownstreamTls::new(&server.cert, &server.key).client_ca(&ca.cert, true))
        .filter(WasmFilter::new(
            wasm_path("mtls-identity"),
            "mtls-identity",
            mtls.to_string(),
        ))
        .filter(WasmFilter::new(
            wasm_path("scope-authz"),
            "scope-authz",
            authz.to_string(),
        ));
    let envoy = Envoy::start(config);
    let r = curl(&envoy, &ca, Some(&gateway), "/internal/pay", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = curl(&envoy, &ca, Some(&partner), "/internal/pay", &[]);
    assert_eq!((r.status, r.error()), (403, "access_denied"));
    assert_eq!(
        envoy.stat("wasmcustom.shieldwall.scope_authz.denied.principal_not_allowed"),
        Some(1)
    );
    // The listener requires a certificate: without one the handshake fails before any filter.
    let refused = https_get(envoy.port(), &ca.cert, None, "/public", &[]);
    assert!(
        refused.is_err(),
        "a request without a certificate was answered: {refused:?}"
    );
}

#[test]
fn client_certificates_in_a_real_envoy() {
    let ca = TestCa::new("e2e");
    let server = ca.end_entity("server", "/CN=localhost", &["DNS:localhost"]);
    let gateway = ca.end_entity("gw", "/CN=gateway", &[&format!("URI:{GATEWAY}")]);
    let wrong_domain = ca.end_entity(
        "evil",
        "/CN=evil",
        &["URI:spiffe://evil.example/ns/payments/sa/gateway"],
    );
    let two_uris = ca.end_entity(
        "two",
        "/CN=two",
        &[&format!("URI:{GATEWAY}"), "URI:spiffe://bank-a.example/x"],
    );
    let https_uri = ca.end_entity(
        "https",
        "/CN=https",
        &["URI:https://bank-a.example/ns/payments/sa/gateway"],
    );
    let partner_subject = ca.end_entity("subj", "/O=Partner Ltd/CN=partner-1", &[]);
    let partner_dns = ca.end_entity(
        "dns",
        "/CN=dns",
        &["DNS:other.example", "DNS:api.partner.example"],
    );

    let echo = Echo::start();
    // A certificate is verified when presented but not required by the handshake: the filter
    // decides per route (401 where one is needed), and one Envoy serves every case.
    let config = EnvoyConfig::new(echo.port())
        .tls(DownstreamTls::new(&server.cert, &server.key).client_ca(&ca.cert, false))
        .forward_client_cert_details("ALWAYS_FORWARD_ONLY")
        .filter(WasmFilter::new(
            wasm_path("mtls-identity"),
            "mtls-identity",
            filter_config().to_string(),
        ));
    let envoy = Envoy::start(config);
    let forged = [
        (
            "x-forwarded-client-cert",
            "Hash=00;URI=spiffe://bank-a.example/forged",
        ),
        ("x-spiffe-id", "spiffe://bank-a.example/forged"),
        ("x-client-cert-sha256", "forged"),
    ];

    // A valid SVID: the upstream sees its SPIFFE ID, thumbprint and XFCC, and nothing forged.
    let r = curl(&envoy, &ca, Some(&gateway), "/internal/pay", &forged);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.upstream("x-spiffe-id"), vec![GATEWAY]);
    assert_eq!(
        r.upstream("x-forwarded-client-cert"),
        vec![format!(
            "Hash={};Subject=\"CN=gateway\";URI={GATEWAY}",
            gateway.sha256_hex
        )]
    );
    let thumbprint = r.upstream("x-client-cert-sha256");
    assert_eq!(thumbprint.len(), 1);
    assert_eq!(thumbprint[0].len(), 43);

    // Refused certificates: 403 access_denied, nothing reaches the upstream.
    for (cert, what) in [
        (&wrong_domain, "wrong trust domain"),
        (&two_uris, "two URI SANs"),
        (&https_uri, "a URI SAN that is not SPIFFE"),
        (&partner_subject, "a partner on the gateway's route"),
    ] {
        let r = curl(&envoy, &ca, Some(cert), "/internal/pay", &[]);
        assert_eq!(
            (r.status, r.error()),
            (403, "access_denied"),
            "{what}: {}",
            r.body
        );
    }

    // Subject and DNS SAN (the second one) matches.
    let r = curl(
        &envoy,
        &ca,
        Some(&partner_subject),
        "/partners/orders",
        &forged,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.upstream("x-spiffe-id").is_empty());
    assert_eq!(r.upstream("x-forwarded-client-cert").len(), 1);
    assert!(r.upstream("x-forwarded-client-cert")[0]
        .contains(";Subject=\"CN=partner-1,O=Partner Ltd\""));
    let r = curl(&envoy, &ca, Some(&partner_dns), "/partners/orders", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.upstream("x-forwarded-client-cert")[0]
        .ends_with(";DNS=other.example;DNS=api.partner.example"));

    // No certificate: 401 without a Bearer challenge where one is required; an optional route
    // passes with every forged header removed.
    let r = curl(&envoy, &ca, None, "/internal/pay", &[]);
    assert_eq!((r.status, r.error()), (401, "missing_client_certificate"));
    let r = curl(&envoy, &ca, None, "/public/x", &forged);
    assert_eq!(r.status, 200, "{}", r.body);
    for (h, _) in forged {
        assert!(r.upstream(h).is_empty(), "{h} reached the upstream");
    }
    // A request that matches no rule.
    let r = curl(&envoy, &ca, Some(&gateway), "/other", &[]);
    assert_eq!((r.status, r.error()), (403, "no_matching_rule"));

    let stat = |n: &str| envoy.stat(&format!("wasmcustom.shieldwall.mtls_identity.{n}"));
    assert_eq!(stat("allowed"), Some(3));
    assert_eq!(stat("allowed.no_certificate"), Some(1));
    assert_eq!(stat("denied.untrusted_trust_domain"), Some(1));
    assert_eq!(stat("denied.several_uri_sans"), Some(1));
    assert_eq!(stat("denied.not_spiffe_uri"), Some(1));
    assert_eq!(stat("denied.no_uri_san"), Some(1));
    assert_eq!(stat("denied.missing_client_certificate"), Some(1));
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// An RS256 signer made with openssl at test time: its public JWK and a way to sign tokens.
struct Rs256 {
    key: std::path::PathBuf,
    n: Vec<u8>,
}

impl Rs256 {
    fn new(dir: &std::path::Path) -> Rs256 {
        let key = dir.join("jwt-signing.pem");
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl runs");
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let key_arg = key.to_string_lossy().into_owned();
        run(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &key_arg,
        ]);
        let modulus = run(&["rsa", "-in", &key_arg, "-noout", "-modulus"]);
        let n = unhex(modulus.trim().trim_start_matches("Modulus="));
        Rs256 { key, n }
    }

    fn jwk(&self) -> Value {
        json!({"kty": "RSA", "kid": "k1", "alg": "RS256", "n": base64url_encode(&self.n), "e": "AQAB"})
    }

    fn sign(&self, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            base64url_encode(json!({"alg": "RS256", "kid": "k1"}).to_string().as_bytes()),
            base64url_encode(claims.to_string().as_bytes())
        );
        let file = self.key.with_extension("input");
        std::fs::write(&file, &input).expect("write the signing input");
        // PKCS#1 v1.5 over SHA-256: exactly RS256.
        let out = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key)
            .arg(&file)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "openssl dgst: {out:?}");
        format!("{input}.{}", base64url_encode(&out.stdout))
    }
}

/// RFC 8705 through the pair mtls-identity → jwt-auth: a token bound to the gateway's certificate
/// (`cnf.x5t#S256`, the thumbprint mtls-identity writes as `cert_sha256`) passes only on a
/// connection that presents that certificate; another certificate, or none, gets 401.
#[test]
fn a_token_bound_to_one_certificate_is_refused_with_another() {
    let ca = TestCa::new("e2e-bound");
    let server = ca.end_entity("server", "/CN=localhost", &["DNS:localhost"]);
    let gateway = ca.end_entity("gw", "/CN=gateway", &[&format!("URI:{GATEWAY}")]);
    let partner = ca.end_entity(
        "p1",
        "/CN=p1",
        &["URI:spiffe://bank-b.example/ns/partners/sa/p1"],
    );
    let signer = Rs256::new(&ca.dir);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let thumbprint = base64url_encode(&unhex(&gateway.sha256_hex));
    let token = signer.sign(&json!({"iss": "https://idp.example", "aud": "orders-api",
        "sub": "gateway", "exp": now + 600, "cnf": {"x5t#S256": thumbprint}}));

    let echo = Echo::start();
    let mut mtls = filter_config();
    mtls["rules"] = json!([{ "match": { "prefix": "/" }, "requires": "optional" }]);
    let jwt = json!({
        "providers": {"idp": {"issuer": "https://idp.example", "audiences": ["orders-api"],
                              "local_jwks": {"keys": [signer.jwk()]}}},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "idp"}}]
    });
    let config = EnvoyConfig::new(echo.port())
        .tls(DownstreamTls::new(&server.cert, &server.key).client_ca(&ca.cert, false))
        .filter(WasmFilter::new(
            wasm_path("mtls-identity"),
            "mtls-identity",
            mtls.to_string(),
        ))
        .filter(WasmFilter::new(
            wasm_path("jwt-auth"),
            "jwt-auth",
            jwt.to_string(),
        ));
    let envoy = Envoy::start(config);
    let bearer = format!("Bearer {token}");
    let headers = [("authorization", bearer.as_str())];

    let r = curl(&envoy, &ca, Some(&gateway), "/orders", &headers);
    assert_eq!(r.status, 200, "{}\n{}", r.body, envoy.log());
    // Again: from jwt-auth's token cache, still checked against the connection.
    assert_eq!(
        curl(&envoy, &ca, Some(&gateway), "/orders", &headers).status,
        200
    );
    let r = curl(&envoy, &ca, Some(&partner), "/orders", &headers);
    assert_eq!((r.status, r.error()), (401, "cnf_mismatch"), "{}", r.body);
    let r = curl(&envoy, &ca, None, "/orders", &headers);
    assert_eq!(
        (r.status, r.error()),
        (401, "cnf_no_certificate"),
        "{}",
        r.body
    );
}

const FRONT: &str = "spiffe://edge.example/front";

/// The certificates of a front proxy setup: the two Envoys' server certificates, the front's
/// client certificate towards the gateway (SPIFFE ID [`FRONT`]) and two clients.
struct FrontPki {
    front_server: TestCert,
    gateway_server: TestCert,
    front_client: TestCert,
    gateway: TestCert,
    partner: TestCert,
}

impl FrontPki {
    fn new(ca: &TestCa) -> FrontPki {
        FrontPki {
            front_server: ca.end_entity("front-server", "/CN=localhost", &["DNS:localhost"]),
            // The front checks the name `gateway.test`; the test's curl calls it `localhost`.
            gateway_server: ca.end_entity(
                "gw-server",
                "/CN=gateway.test",
                &["DNS:gateway.test", "DNS:localhost"],
            ),
            front_client: ca.end_entity("front-client", "/CN=front", &[&format!("URI:{FRONT}")]),
            gateway: ca.end_entity("gw", "/CN=gateway", &[&format!("URI:{GATEWAY}")]),
            partner: ca.end_entity(
                "p1",
                "/CN=p1",
                &["URI:spiffe://bank-b.example/ns/partners/sa/p1"],
            ),
        }
    }
}

/// A front Envoy that terminates the client's TLS (a client certificate is verified when
/// presented, not required), sets XFCC with `SANITIZE_SET` and the given
/// `set_current_client_cert_details`, and forwards over mTLS with its own certificate to a
/// gateway Envoy that runs mtls-identity with `mtls` as configuration. The gateway's connection
/// manager runs with `ALWAYS_FORWARD_ONLY`: Envoy itself removes no XFCC, the filter decides.
struct FrontPair {
    front: Envoy,
    gateway: Envoy,
    _echo: Echo,
}

impl FrontPair {
    fn start(ca: &TestCa, pki: &FrontPki, mtls: &Value, details: &str) -> FrontPair {
        let echo = Echo::start();
        let gateway = Envoy::start(
            EnvoyConfig::new(echo.port())
                .tls(
                    DownstreamTls::new(&pki.gateway_server.cert, &pki.gateway_server.key)
                        .client_ca(&ca.cert, false),
                )
                .forward_client_cert_details("ALWAYS_FORWARD_ONLY")
                .filter(WasmFilter::new(
                    wasm_path("mtls-identity"),
                    "mtls-identity",
                    mtls.to_string(),
                )),
        );
        let front = Envoy::start(
            EnvoyConfig::new(echo.port())
                .tls(
                    DownstreamTls::new(&pki.front_server.cert, &pki.front_server.key)
                        .client_ca(&ca.cert, false),
                )
                .forward_client_cert_details("SANITIZE_SET")
                .set_current_client_cert_details(details)
                .cluster(
                    Cluster::new("gateway", gateway.port()).tls(
                        UpstreamTls::new(&ca.cert, "gateway.test")
                            .client_cert(&pki.front_client.cert, &pki.front_client.key),
                    ),
                )
                .route(Route::new("/", "gateway")),
        );
        FrontPair {
            front,
            gateway,
            _echo: echo,
        }
    }
}

#[test]
fn behind_a_front_envoy_that_forwards_the_client_certificate() {
    let ca = TestCa::new("e2e-front");
    let pki = FrontPki::new(&ca);
    let (gateway, partner) = (&pki.gateway, &pki.partner);
    let mut mtls = filter_config();
    // The forwarded certificate must also be issued by the test CA (verified in the module).
    let ca_pem = std::fs::read_to_string(&ca.cert).unwrap();
    mtls["from_front_proxy"] = json!({ "proxies": { "spiffe_ids": [FRONT] },
                                       "ca_certificates": [ca_pem] });
    let pair = FrontPair::start(
        &ca,
        &pki,
        &mtls,
        "{ cert: true, uri: true, dns: true, subject: true }",
    );
    let (front_envoy, gateway_envoy) = (&pair.front, &pair.gateway);
    let forged = [
        (
            "x-forwarded-client-cert",
            "Hash=00;URI=spiffe://bank-a.example/forged",
        ),
        ("x-spiffe-id", "spiffe://bank-a.example/forged"),
    ];

    // Through the front: the client's certificate, from XFCC, is the identity.
    let r = curl(front_envoy, &ca, Some(gateway), "/internal/pay", &forged);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.upstream("x-spiffe-id"), vec![GATEWAY]);
    assert_eq!(
        r.upstream("x-forwarded-client-cert"),
        vec![format!(
            "Hash={};Subject=\"CN=gateway\";URI={GATEWAY}",
            gateway.sha256_hex
        )]
    );
    let r = curl(front_envoy, &ca, Some(partner), "/internal/pay", &[]);
    assert_eq!((r.status, r.error()), (403, "access_denied"), "{}", r.body);
    let r = curl(front_envoy, &ca, Some(partner), "/partners/x", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.upstream("x-spiffe-id"),
        vec!["spiffe://bank-b.example/ns/partners/sa/p1"]
    );
    // Through the front without a client certificate: the front's own is not taken.
    let r = curl(front_envoy, &ca, None, "/internal/pay", &forged);
    assert_eq!((r.status, r.error()), (401, "missing_client_certificate"));
    let r = curl(front_envoy, &ca, None, "/public/x", &forged);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.upstream("x-spiffe-id").is_empty());
    assert!(r.upstream("x-forwarded-client-cert").is_empty());

    // Straight to the gateway with XFCC carrying the gateway's certificate: ignored, removed;
    // the connection's own certificate is the identity.
    let element = format!(
        "Hash={};Cert=\"{}\";URI={GATEWAY}",
        gateway.sha256_hex,
        gateway.pem.replace('\n', "%0A").replace(' ', "%20")
    );
    let forged_cert = [("x-forwarded-client-cert", element.as_str())];
    let r = curl(
        gateway_envoy,
        &ca,
        Some(partner),
        "/internal/pay",
        &forged_cert,
    );
    assert_eq!((r.status, r.error()), (403, "access_denied"), "{}", r.body);
    let r = curl(gateway_envoy, &ca, Some(partner), "/public/x", &forged_cert);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.upstream("x-spiffe-id"),
        vec!["spiffe://bank-b.example/ns/partners/sa/p1"]
    );
    let xfcc = r.upstream("x-forwarded-client-cert");
    assert_eq!(xfcc.len(), 1);
    assert!(!xfcc[0].contains(GATEWAY), "{xfcc:?}");
    let r = curl(gateway_envoy, &ca, None, "/internal/pay", &forged_cert);
    assert_eq!((r.status, r.error()), (401, "missing_client_certificate"));

    let stat = |n: &str| gateway_envoy.stat(&format!("wasmcustom.shieldwall.mtls_identity.{n}"));
    assert_eq!(stat("allowed"), Some(3));
    assert_eq!(stat("front_proxy.header_ignored"), Some(3));
}

/// What the front Envoy (1.40) sends, seen through a gateway whose filter keeps it
/// (`forward_only`): with `cert: true` the element has `Cert="<URL-encoded PEM>"`; without it,
/// only the fields, which the filter then reads (`Hash`, `Subject`, `URI`, `DNS`).
#[test]
fn the_front_envoys_xfcc_as_the_gateway_reads_it() {
    let ca = TestCa::new("e2e-front-xfcc");
    let pki = FrontPki::new(&ca);
    let mut mtls = filter_config();
    mtls["forward_client_cert"] = json!("forward_only");
    mtls["from_front_proxy"] = json!({ "proxies": { "spiffe_ids": [FRONT] } });
    let g = &pki.gateway;
    let fields = format!("Hash={};Subject=\"CN=gateway\";URI={GATEWAY}", g.sha256_hex);
    for (details, with_cert) in [
        ("{ cert: true, uri: true, dns: true, subject: true }", true),
        ("{ uri: true, dns: true, subject: true }", false),
    ] {
        let pair = FrontPair::start(&ca, &pki, &mtls, details);
        let r = curl(&pair.front, &ca, Some(g), "/internal/pay", &[]);
        assert_eq!(r.status, 200, "{details}: {}", r.body);
        assert_eq!(r.upstream("x-spiffe-id"), vec![GATEWAY], "{details}");
        let xfcc = r.upstream("x-forwarded-client-cert");
        assert_eq!(xfcc.len(), 1, "{details}: {xfcc:?}");
        let element = &xfcc[0];
        if with_cert {
            // Envoy URL-encodes the PEM: everything but letters, digits and `-._~`.
            let pem: String = g
                .pem
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            assert_eq!(
                *element,
                format!(
                    "Hash={};Cert=\"{pem}\";Subject=\"CN=gateway\";URI={GATEWAY}",
                    g.sha256_hex
                ),
                "{details}"
            );
        } else {
            assert_eq!(*element, fields, "{details}");
        }
        let r = curl(&pair.front, &ca, Some(&pki.partner), "/internal/pay", &[]);
        assert_eq!((r.status, r.error()), (403, "access_denied"), "{details}");
    }
}
