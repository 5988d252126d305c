//! Unit tests over MockHost: the SPIFFE ID parser, distinguished names, the matchers on real
//! certificates (made with openssl at test time), XFCC rendering, each refusal, the identity
//! context merge and the configurations that are refused with their field path.

use std::sync::OnceLock;

use base64::Engine;
use serde_json::{json, Value};
use shieldwall_core::identity::IDENTITY_PROPERTY;
use shieldwall_core::testing::MockHost;
use shieldwall_core::{Action, Identity, RootFilter, StreamFilter};

use crate::cert::{NotSvid, PeerCertificate};
use crate::config::Config;
use crate::dn::Dn;
use crate::filter::{xfcc, MtlsIdentity};
use crate::spiffe::{SpiffeError, SpiffeId};
use crate::testing::{LeafSpec, TestCa};

// ------------------------------------------------------------------ SPIFFE IDs

#[test]
fn spiffe_ids_the_spec_allows() {
    for (id, td, path) in [
        ("spiffe://example.org", "example.org", ""),
        (
            "spiffe://trust-domain_1.example/workload",
            "trust-domain_1.example",
            "/workload",
        ),
        (
            "spiffe://bank-a.example/ns/payments/sa/gateway",
            "bank-a.example",
            "/ns/payments/sa/gateway",
        ),
        ("spiffe://x/A.b-C_d/..x/.y", "x", "/A.b-C_d/..x/.y"),
    ] {
        let parsed = SpiffeId::parse(id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(parsed.trust_domain(), td, "{id}");
        assert_eq!(parsed.path(), path, "{id}");
        assert_eq!(parsed.as_str(), id);
    }
    let long = format!("spiffe://a/{}", "b".repeat(2048 - "spiffe://a/".len()));
    assert_eq!(long.len(), 2048);
    assert!(SpiffeId::parse(&long).is_ok());
}

#[test]
fn spiffe_ids_the_spec_refuses() {
    use SpiffeError::*;
    for (id, why) in [
        ("", WrongScheme),
        ("http://example.org/a", WrongScheme),
        ("SPIFFE://example.org/a", WrongScheme),
        ("spiffe:/example.org/a", WrongScheme),
        ("spiffe:///a", EmptyTrustDomain),
        ("spiffe://Example.org/a", BadTrustDomainChar),
        ("spiffe://example.org:8443/a", BadTrustDomainChar),
        ("spiffe://user@example.org/a", BadTrustDomainChar),
        ("spiffe://example.org/", TrailingSlash),
        ("spiffe://example.org/a/", TrailingSlash),
        ("spiffe://example.org//a", EmptySegment),
        ("spiffe://example.org/a/./b", DotSegment),
        ("spiffe://example.org/a/..", DotSegment),
        ("spiffe://example.org/a?x=1", BadPathChar),
        ("spiffe://example.org/a#frag", BadPathChar),
        ("spiffe://example.org/a%20b", BadPathChar),
        ("spiffe://example.org/a b", BadPathChar),
        ("spiffe://example.org/é", BadPathChar),
    ] {
        assert_eq!(SpiffeId::parse(id), Err(why), "{id}");
    }
    let long = format!("spiffe://a/{}", "b".repeat(2049 - "spiffe://a/".len()));
    assert_eq!(SpiffeId::parse(&long), Err(TooLong));
}

#[test]
fn a_prefix_matches_whole_segments_only() {
    let prefix = SpiffeId::parse("spiffe://bank-b.example/ns/partners").unwrap();
    let at = |s: &str| SpiffeId::parse(s).unwrap().is_at_or_under(&prefix);
    assert!(at("spiffe://bank-b.example/ns/partners"));
    assert!(at("spiffe://bank-b.example/ns/partners/sa/p1"));
    assert!(!at("spiffe://bank-b.example/ns/partners-evil/sa/p1"));
    assert!(!at("spiffe://bank-b.example/ns"));
    assert!(!at("spiffe://bank-b.example.evil/ns/partners/x"));
}

// ------------------------------------------------------------------ distinguished names

#[test]
fn subjects_compare_after_normalising() {
    let a = Dn::parse("CN=partner-1,O=Partner Ltd").unwrap();
    for same in [
        "cn=Partner-1, o=partner  ltd",
        "2.5.4.3=partner-1,O=Partner Ltd",
        "CN = partner-1 ,O= Partner Ltd ",
    ] {
        assert!(a.matches(&Dn::parse(same).unwrap()), "{same}");
    }
    for other in [
        "O=Partner Ltd,CN=partner-1",
        "CN=partner-1",
        "CN=partner-2,O=Partner Ltd",
    ] {
        assert!(!a.matches(&Dn::parse(other).unwrap()), "{other}");
    }
    // Escapes are undone before comparing; multi-valued RDNs are sets.
    let esc = Dn::parse(r"CN=Smith\, John,O=A\2bB").unwrap();
    assert_eq!(esc.rdns[0][0].value, "Smith, John");
    assert_eq!(esc.rdns[1][0].value, "A+B");
    assert_eq!(esc.render(), r"CN=Smith\, John,O=A\+B");
    let multi = Dn::parse("CN=a+OU=b,O=c").unwrap();
    assert!(multi.matches(&Dn::parse("OU=b+CN=a,O=c").unwrap()));
    assert!(Dn::parse("XX=a").is_err());
    assert!(Dn::parse("CN").is_err());
    assert!(Dn::parse(r"CN=a\q").is_err());
    assert!(Dn::parse("").is_err());
}

// ------------------------------------------------------------------ certificates

struct Certs {
    gateway: String,
    partner: String,
    partner_evil: String,
    two_uris: String,
    https_uri: String,
    wrong_domain: String,
    subject_only: String,
    dns: String,
    ca_svid: String,
    front: String,
    /// The CA that issued every certificate above, in PEM.
    ca: String,
    /// The gateway's SPIFFE ID from another CA, and that CA.
    foreign: String,
    foreign_ca: String,
}

fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let ca = TestCa::new("unit");
        let other = TestCa::new("unit-other");
        let leaf = |file: &str, subject: &str, sans: &[&str], is_ca: bool| {
            ca.leaf(
                file,
                &LeafSpec {
                    subject,
                    sans,
                    ca: is_ca,
                },
            )
            .pem
        };
        Certs {
            gateway: leaf(
                "gw",
                "/CN=gateway",
                &["URI:spiffe://bank-a.example/ns/payments/sa/gateway"],
                false,
            ),
            partner: leaf(
                "p1",
                "/CN=p1",
                &["URI:spiffe://bank-b.example/ns/partners/sa/p1"],
                false,
            ),
            partner_evil: leaf(
                "pe",
                "/CN=pe",
                &["URI:spiffe://bank-b.example/ns/partners-evil/sa/x"],
                false,
            ),
            two_uris: leaf(
                "two",
                "/CN=two",
                &[
                    "URI:spiffe://bank-a.example/ns/payments/sa/gateway",
                    "URI:spiffe://bank-a.example/ns/other",
                ],
                false,
            ),
            https_uri: leaf(
                "https",
                "/CN=https",
                &["URI:https://bank-a.example/ns/payments/sa/gateway"],
                false,
            ),
            wrong_domain: leaf(
                "evil",
                "/CN=evil",
                &["URI:spiffe://evil.example/ns/payments/sa/gateway"],
                false,
            ),
            subject_only: leaf("subj", "/O=Partner Ltd/CN=partner-1", &[], false),
            dns: leaf(
                "dns",
                "/CN=dns",
                &["DNS:other.example", "DNS:API.partner.example"],
                false,
            ),
            ca_svid: leaf(
                "ca",
                "/CN=ca",
                &["URI:spiffe://bank-a.example/ns/payments/sa/gateway"],
                true,
            ),
            front: leaf(
                "front",
                "/CN=front",
                &["URI:spiffe://edge.example/front"],
                false,
            ),
            ca: std::fs::read_to_string(&ca.cert).unwrap(),
            foreign: other
                .end_entity(
                    "gw",
                    "/CN=gateway",
                    &["URI:spiffe://bank-a.example/ns/payments/sa/gateway"],
                )
                .pem,
            foreign_ca: std::fs::read_to_string(&other.cert).unwrap(),
        }
    })
}

#[test]
fn certificates_are_read_with_every_san() {
    let c = PeerCertificate::from_pem(certs().dns.as_bytes()).unwrap();
    assert_eq!(c.dns_sans, vec!["other.example", "API.partner.example"]);
    assert!(c.uri_sans.is_empty());
    assert_eq!(c.svid(), Err(NotSvid::NoUriSan));
    let two = PeerCertificate::from_pem(certs().two_uris.as_bytes()).unwrap();
    assert_eq!(two.svid(), Err(NotSvid::SeveralUriSans(2)));
    let ca = PeerCertificate::from_pem(certs().ca_svid.as_bytes()).unwrap();
    assert!(ca.is_ca);
    assert_eq!(ca.svid(), Err(NotSvid::CaCertificate));
    let https = PeerCertificate::from_pem(certs().https_uri.as_bytes()).unwrap();
    assert!(matches!(https.svid(), Err(NotSvid::NotSpiffe(_))));
    let gw = PeerCertificate::from_pem(certs().gateway.as_bytes()).unwrap();
    assert_eq!(
        gw.svid().unwrap().as_str(),
        "spiffe://bank-a.example/ns/payments/sa/gateway"
    );
    let subj = PeerCertificate::from_pem(certs().subject_only.as_bytes()).unwrap();
    assert_eq!(subj.subject.render(), "CN=partner-1,O=Partner Ltd");
    // The thumbprint is base64url (no padding) of 32 bytes; the hex form is 64 lowercase digits.
    assert_eq!(gw.thumbprint().len(), 43);
    assert!(!gw.thumbprint().contains(['+', '/', '=']));
    assert_eq!(gw.sha256_hex().len(), 64);
    assert!(PeerCertificate::from_pem(b"not a certificate").is_err());
    assert!(PeerCertificate::from_pem(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    .is_err());
}

#[test]
fn xfcc_lists_every_san_and_quotes_the_subject() {
    let c = PeerCertificate::from_pem(certs().dns.as_bytes()).unwrap();
    assert_eq!(
        xfcc(&c),
        format!(
            "Hash={};Subject=\"CN=dns\";DNS=other.example;DNS=API.partner.example",
            c.sha256_hex()
        )
    );
    let two = PeerCertificate::from_pem(certs().two_uris.as_bytes()).unwrap();
    assert!(xfcc(&two).ends_with(
        ";URI=spiffe://bank-a.example/ns/payments/sa/gateway;URI=spiffe://bank-a.example/ns/other"
    ));
    let mut odd = c.clone();
    odd.subject = Dn {
        rdns: vec![vec![crate::dn::Attribute {
            kind: "CN".into(),
            value: "say \"hi\"; a=b".into(),
        }]],
    };
    odd.dns_sans = vec!["a;b".into()];
    let x = xfcc(&odd);
    assert!(x.contains(r#";Subject="CN=say \\\"hi\\\"\\; a=b";"#), "{x}");
    assert!(x.ends_with(r#";DNS="a;b""#), "{x}");
}

// ------------------------------------------------------------------ the filter

fn issue_config() -> Value {
    json!({
      "trust_domains": ["bank-a.example", "bank-b.example"],
      "tenant_from_trust_domain": { "bank-a.example": "bank-a", "bank-b.example": "bank-b" },
      "rules": [
        { "match": { "prefix": "/healthz" } },
        { "match": { "prefix": "/internal/" },
          "requires": { "spiffe_ids": ["spiffe://bank-a.example/ns/payments/sa/gateway"] } },
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

struct Run {
    action: Action,
    host: MockHost,
}

impl Run {
    fn allowed(&self) -> bool {
        self.action == Action::Continue && self.host.local_reply.is_none()
    }
    fn status(&self) -> u16 {
        self.host
            .local_reply
            .as_ref()
            .map(|r| r.status)
            .unwrap_or(0)
    }
    fn code(&self) -> String {
        let r = self.host.local_reply.as_ref().expect("a local reply");
        r.json()["error"].as_str().unwrap_or_default().to_string()
    }
    fn header(&self, name: &str) -> Option<String> {
        let values = self.host.headers_named(name);
        assert!(values.len() <= 1, "{name} repeated: {values:?}");
        values.into_iter().next()
    }
    fn identity(&self) -> Option<Identity> {
        let raw = self.host.property_value(IDENTITY_PROPERTY)?;
        serde_json::from_slice(&raw).ok()
    }
}

fn run_with(config: &Value, mut host: MockHost, pem: Option<&str>) -> Run {
    if let Some(pem) = pem {
        host.properties.insert("connection\0mtls".into(), vec![1]);
        host.properties.insert(
            "connection\0peer_certificate".into(),
            pem.as_bytes().to_vec(),
        );
    } else {
        host.properties.insert("connection\0mtls".into(), vec![0]);
    }
    let mut root = MtlsIdentity::configure(&mut host, config.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("config: {e}"));
    let mut stream = root.new_stream(&mut host, 2);
    let action = stream.on_request_headers(&mut host, true);
    Run { action, host }
}

fn run(path: &str, pem: Option<&str>, headers: &[(&str, &str)]) -> Run {
    run_with(
        &issue_config(),
        MockHost::request("GET", path, headers),
        pem,
    )
}

#[test]
fn a_listed_svid_passes_with_its_identity_and_headers() {
    let r = run("/internal/pay", Some(&certs().gateway), &[]);
    assert!(r.allowed());
    let gw = PeerCertificate::from_pem(certs().gateway.as_bytes()).unwrap();
    let id = r.identity().unwrap();
    assert_eq!(
        id.spiffe_id.as_deref(),
        Some("spiffe://bank-a.example/ns/payments/sa/gateway")
    );
    assert_eq!(id.sub, id.spiffe_id);
    assert_eq!(id.tenant.as_deref(), Some("bank-a"));
    assert_eq!(id.auth, vec!["mtls"]);
    assert_eq!(id.cert_sha256, Some(gw.thumbprint()));
    assert_eq!(id.claims["cert_subject"], json!("CN=gateway"));
    assert_eq!(
        r.header("x-spiffe-id").as_deref(),
        Some("spiffe://bank-a.example/ns/payments/sa/gateway")
    );
    assert_eq!(r.header("x-client-cert-sha256"), Some(gw.thumbprint()));
    assert_eq!(r.header("x-forwarded-client-cert"), Some(xfcc(&gw)));
    assert_eq!(r.host.metric("shieldwall.mtls_identity.allowed"), 1);
}

#[test]
fn forged_headers_are_removed_before_anything_else() {
    let forged = [
        (
            "x-forwarded-client-cert",
            "Hash=00;URI=spiffe://bank-a.example/ns/payments/sa/gateway",
        ),
        (
            "x-spiffe-id",
            "spiffe://bank-a.example/ns/payments/sa/gateway",
        ),
        ("x-client-cert-sha256", "forged"),
    ];
    // Without a certificate on a public route nothing is set in their place.
    let r = run("/healthz", None, &forged);
    assert!(r.allowed());
    for (h, _) in forged {
        assert_eq!(r.header(h), None, "{h}");
    }
    assert!(r.identity().is_none());
    // With a certificate, only the verified values are there.
    let r = run("/public/x", Some(&certs().partner), &forged);
    assert!(r.allowed());
    assert_eq!(
        r.header("x-spiffe-id").as_deref(),
        Some("spiffe://bank-b.example/ns/partners/sa/p1")
    );
    assert_ne!(r.header("x-client-cert-sha256").as_deref(), Some("forged"));
    assert!(r
        .header("x-forwarded-client-cert")
        .unwrap()
        .starts_with("Hash="));
    assert!(!r
        .header("x-forwarded-client-cert")
        .unwrap()
        .contains("Hash=00;"));
}

#[test]
fn forward_modes() {
    let xfcc_in = [("x-forwarded-client-cert", "By=spiffe://front;Hash=ab")];
    let mut config = issue_config();
    config["forward_client_cert"] = json!("sanitize");
    let r = run_with(
        &config,
        MockHost::request("GET", "/internal/a", &xfcc_in),
        Some(&certs().gateway),
    );
    assert!(r.allowed());
    assert_eq!(r.header("x-forwarded-client-cert"), None);
    config["forward_client_cert"] = json!("forward_only");
    let r = run_with(
        &config,
        MockHost::request("GET", "/internal/a", &xfcc_in),
        Some(&certs().gateway),
    );
    assert!(r.allowed());
    assert_eq!(
        r.header("x-forwarded-client-cert").as_deref(),
        Some("By=spiffe://front;Hash=ab")
    );
    // Identity headers are removed in every mode.
    let r = run_with(
        &config,
        MockHost::request(
            "GET",
            "/healthz",
            &[("x-spiffe-id", "spiffe://bank-a.example/x")],
        ),
        None,
    );
    assert_eq!(r.header("x-spiffe-id"), None);
}

#[test]
fn no_certificate_where_one_is_required_is_401_without_a_bearer_challenge() {
    let r = run("/internal/pay", None, &[]);
    assert_eq!(r.status(), 401);
    assert_eq!(r.code(), "missing_client_certificate");
    let reply = r.host.local_reply.as_ref().unwrap();
    assert_eq!(reply.header("www-authenticate"), None);
    assert_eq!(
        r.host
            .metric("shieldwall.mtls_identity.denied.missing_client_certificate"),
        1
    );
    // A property the proxy does not set at all counts as no certificate too.
    let mut host = MockHost::request("GET", "/internal/pay", &[]);
    let mut root =
        MtlsIdentity::configure(&mut host, issue_config().to_string().as_bytes()).unwrap();
    let mut s = root.new_stream(&mut host, 2);
    assert_eq!(s.on_request_headers(&mut host, true), Action::Pause);
    assert_eq!(host.local_reply.unwrap().status, 401);
}

#[test]
fn refusals_are_403_access_denied_with_a_reason() {
    let c = certs();
    for (path, pem, reason) in [
        ("/internal/a", &c.partner, "not_allowed"),
        ("/internal/a", &c.wrong_domain, "untrusted_trust_domain"),
        ("/internal/a", &c.two_uris, "several_uri_sans"),
        ("/internal/a", &c.https_uri, "not_spiffe_uri"),
        ("/internal/a", &c.ca_svid, "ca_certificate"),
        ("/internal/a", &c.subject_only, "no_uri_san"),
        ("/partners/a", &c.partner_evil, "not_allowed"),
        ("/partners/a", &c.gateway, "not_allowed"),
    ] {
        let r = run(
            path,
            Some(pem),
            &[(
                "x-spiffe-id",
                "spiffe://bank-a.example/ns/payments/sa/gateway",
            )],
        );
        assert_eq!(r.status(), 403, "{path} {reason}");
        assert_eq!(r.code(), "access_denied");
        assert_eq!(
            r.host
                .metric(&format!("shieldwall.mtls_identity.denied.{reason}")),
            1,
            "{reason}"
        );
        assert!(r.identity().is_none());
    }
}

#[test]
fn any_of_prefix_subject_or_dns() {
    let c = certs();
    for pem in [&c.partner, &c.subject_only, &c.dns] {
        let r = run("/partners/a", Some(pem), &[]);
        assert!(r.allowed(), "{:?}", r.host.local_reply);
    }
    // The subject match has no SPIFFE ID: the identity has the subject and no tenant.
    let r = run("/partners/a", Some(&c.subject_only), &[]);
    let id = r.identity().unwrap();
    assert_eq!(id.spiffe_id, None);
    assert_eq!(id.tenant, None);
    assert_eq!(id.sub.as_deref(), Some("CN=partner-1,O=Partner Ltd"));
    assert_eq!(r.header("x-spiffe-id"), None);
}

#[test]
fn all_and_trust_domain() {
    let mut config = issue_config();
    config["rules"] = json!([{ "match": { "prefix": "/" }, "requires": { "all": [
        { "trust_domain": "bank-b.example" }, { "subject": "CN=p1" } ] } }]);
    let r = run_with(
        &config,
        MockHost::request("GET", "/x", &[]),
        Some(&certs().partner),
    );
    assert!(r.allowed());
    let r = run_with(
        &config,
        MockHost::request("GET", "/x", &[]),
        Some(&certs().partner_evil),
    );
    assert_eq!(r.status(), 403);
}

#[test]
fn optional_takes_the_identity_when_there_is_one() {
    let r = run("/public/a", None, &[]);
    assert!(r.allowed());
    assert!(r.identity().is_none());
    assert_eq!(
        r.host
            .metric("shieldwall.mtls_identity.allowed.no_certificate"),
        1
    );
    // A certificate that is no SVID still gives its subject and thumbprint.
    let r = run("/public/a", Some(&certs().two_uris), &[]);
    assert!(r.allowed());
    let id = r.identity().unwrap();
    assert_eq!(id.spiffe_id, None);
    assert!(id.cert_sha256.is_some());
}

#[test]
fn an_unreadable_certificate_is_refused_where_it_matters() {
    let r = run(
        "/public/a",
        Some("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        &[],
    );
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.host
            .metric("shieldwall.mtls_identity.denied.unreadable_certificate"),
        1
    );
    // No certificate needed: the request passes, without an identity.
    let r = run("/healthz", Some("garbage"), &[]);
    assert!(r.allowed());
    assert!(r.identity().is_none());
}

#[test]
fn unmatched_requests_are_refused() {
    let r = run("/other", Some(&certs().gateway), &[]);
    assert_eq!(r.status(), 403);
    assert_eq!(r.code(), "no_matching_rule");
    assert_eq!(
        r.host
            .metric("shieldwall.mtls_identity.denied.no_matching_rule"),
        1
    );
    let r = run("/internal/%2e%2e/other", Some(&certs().gateway), &[]);
    assert_eq!(r.status(), 403, "normalised to /other");
    let r = run("/internal%2Fa", Some(&certs().gateway), &[]);
    assert_eq!(r.status(), 400);
}

#[test]
fn identity_merges_with_what_is_there() {
    let mut host = MockHost::request("GET", "/internal/a", &[]);
    let earlier = json!({"sub": "alice", "scopes": ["orders:read"], "auth": ["jwt"], "exp": 5});
    host.properties
        .insert(IDENTITY_PROPERTY.into(), earlier.to_string().into_bytes());
    let r = run_with(&issue_config(), host, Some(&certs().gateway));
    assert!(r.allowed());
    let id = r.identity().unwrap();
    assert_eq!(id.scopes, vec!["orders:read"]);
    assert_eq!(id.exp, Some(5));
    assert_eq!(id.auth, vec!["jwt", "mtls"]);
    assert_eq!(
        id.spiffe_id.as_deref(),
        Some("spiffe://bank-a.example/ns/payments/sa/gateway")
    );
}

// ------------------------------------------------------------------ configuration

fn refused(config: Value) -> String {
    match Config::parse(config.to_string().as_bytes()) {
        Ok(_) => panic!("accepted: {config}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_document_is_read_with_serdes_rules() {
    // Read by hand (shieldwall_core::json_config) with the behaviour of serde's derived code.
    let parse = |text: &str| {
        Config::parse(text.as_bytes())
            .map(drop)
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        parse("{}"),
        Err("configuration: missing field `rules`".to_string())
    );
    let e = parse(r#"{"rules": [], "rule": 1}"#).unwrap_err();
    assert!(
        e.starts_with("rule: unknown field `rule`, expected one of `trust_domains`"),
        "{e}"
    );
    let e = parse(r#"{"rules": [], "rules": []}"#).unwrap_err();
    assert!(e.ends_with("duplicate field `rules`"), "{e}");
    let mut c = issue_config();
    c["headers"]["spiffe_id"] = Value::Null;
    let config = Config::parse(c.to_string().as_bytes()).unwrap();
    assert_eq!(
        config.spiffe_id_header, None,
        "null is absent for an optional member"
    );
    assert_eq!(
        config.cert_sha256_header.as_deref(),
        Some("x-client-cert-sha256")
    );
    let mut c = issue_config();
    c["tenant_from_trust_domain"]["bank-a.example"] = json!(1);
    assert_eq!(
        refused(c),
        "tenant_from_trust_domain.bank-a.example: invalid type: integer `1`, expected a string"
    );
    let mut c = issue_config();
    c["rules"][2]["requires"]["any"] = json!({"subject": "CN=x"});
    assert_eq!(
        refused(c),
        "rules[2].requires.any: invalid type: map, expected a sequence"
    );
    let mut c = issue_config();
    c["from_front_proxy"] = json!({"proxies": {"sha256": [FRONT_HASH]}, "format": "PEM"});
    assert_eq!(
        refused(c),
        "from_front_proxy.format: unknown variant `PEM`, expected one of `xfcc`, `pem`, `der_base64`"
    );
    let mut c = issue_config();
    c["from_front_proxy"] = json!({"header": "x-cert"});
    assert_eq!(refused(c), "from_front_proxy: missing field `proxies`");
    let mut c = issue_config();
    c["rules"][0]["match"] = json!(null);
    assert!(refused(c).starts_with("rules[0].match: invalid type: null"));
}

#[test]
fn bad_configurations_name_the_field() {
    let mut c = issue_config();
    c["rules"][1]["requires"]["spiffe_ids"][0] = json!("spiffe://evil.example/x");
    assert_eq!(
        refused(c),
        "rules[1].requires.spiffe_ids[0]: the trust domain `evil.example` is not one of `trust_domains`"
    );
    let mut c = issue_config();
    c["rules"][2]["requires"]["any"][0]["spiffe_id_prefix"] = json!("spiffe://bank-b.example/a//");
    assert!(refused(c).starts_with("rules[2].requires.any[0].spiffe_id_prefix: not a SPIFFE ID"));
    let mut c = issue_config();
    c["rules"][2]["requires"]["any"][1] = json!({"subjekt": "CN=x"});
    assert!(refused(c).starts_with("rules[2].requires.any[1].subjekt: unknown field `subjekt`"));
    let mut c = issue_config();
    c["rules"][2]["requires"]["any"][1] = json!({});
    assert!(refused(c).starts_with("rules[2].requires.any[1]: no matcher"));
    let mut c = issue_config();
    c["rules"][3]["requires"] = json!("optionally");
    assert!(refused(c).starts_with("rules[3].requires: the only string allowed"));
    let mut c = issue_config();
    c["trust_domains"][1] = json!("Bank-B.example");
    assert!(refused(c).starts_with("trust_domains[1]:"));
    let mut c = issue_config();
    c["tenant_from_trust_domain"]["other.example"] = json!("x");
    assert_eq!(
        refused(c),
        "tenant_from_trust_domain.other.example: not one of `trust_domains`"
    );
    let mut c = issue_config();
    c["forward_client_cert"] = json!("always");
    assert!(refused(c).starts_with("forward_client_cert: unknown variant `always`"));
    let mut c = issue_config();
    c["headers"]["spiffe_id"] = json!("X-Spiffe-Id");
    assert_eq!(
        refused(c),
        "headers.spiffe_id: not a lower-case HTTP header name"
    );
    let mut c = issue_config();
    c["headers"]["cert_sha256"] = json!("x-forwarded-client-cert");
    assert!(refused(c).starts_with("headers.cert_sha256:"));
    for (front, error) in [
        (
            json!({"spiffe_ids": ["spiffe://bank-a.example/lb"]}),
            "from_front_proxy.spiffe_ids: unknown field `spiffe_ids`",
        ),
        (
            json!({"proxies": {}}),
            "from_front_proxy.proxies: no front proxy",
        ),
        (
            json!({"proxies": {"spiffe_ids": ["spiffe://Edge/x"]}}),
            "from_front_proxy.proxies.spiffe_ids[0]: not a SPIFFE ID",
        ),
        (
            json!({"proxies": {"sha256": ["abcd"]}}),
            "from_front_proxy.proxies.sha256[0]: not a SHA-256",
        ),
        (
            json!({"proxies": {"sha256": [FRONT_HASH]}, "format": "pem"}),
            "from_front_proxy.header: needed with `pem`",
        ),
        (
            json!({"proxies": {"sha256": [FRONT_HASH]}, "format": "der_base64",
                   "header": "x-forwarded-client-cert"}),
            "from_front_proxy.header: `x-forwarded-client-cert` holds the `xfcc` format",
        ),
        (
            json!({"proxies": {"sha256": [FRONT_HASH]}, "header": "x-spiffe-id"}),
            "from_front_proxy.header: one of the headers the filter writes",
        ),
        (
            json!({"proxies": {"sha256": [FRONT_HASH]}, "header": "X-Client-Cert"}),
            "from_front_proxy.header: not a lower-case HTTP header name",
        ),
        (
            json!({"proxies": {"sha256": [FRONT_HASH]}, "format": "der"}),
            "from_front_proxy.format: unknown variant `der`",
        ),
    ] {
        let mut c = issue_config();
        c["from_front_proxy"] = front;
        let e = refused(c);
        assert!(e.starts_with(error), "{e}");
    }
    // Hex in upper case with colons (openssl's fingerprint form) is accepted.
    let mut c = issue_config();
    let colons: Vec<String> = (0..32).map(|_| "AB".to_string()).collect();
    c["from_front_proxy"] = json!({"proxies": {"sha256": [colons.join(":")]}});
    let config = Config::parse(c.to_string().as_bytes()).unwrap();
    assert_eq!(config.front_proxy.unwrap().sha256, vec!["ab".repeat(32)]);
    let mut c = issue_config();
    c["rules"][0]["match"] = json!({"prefix": "healthz"});
    assert_eq!(refused(c), "rules[0].match.prefix: must start with `/`");
    assert!(refused(json!({"rules": []})).starts_with("rules: at least one rule"));
    assert!(refused(json!({"rules": [], "extra": 1})).contains("unknown field `extra`"));
    let mut c = issue_config();
    c["rules"][1]["requires"]["subject"] = json!("CN");
    assert!(refused(c).starts_with("rules[1].requires.subject:"));
}

// ------------------------------------------------------------------ from_front_proxy

const FRONT: &str = "spiffe://edge.example/front";
const FRONT_HASH: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// URL-encodes like Envoy's XFCC `Cert=`: everything but unreserved characters.
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

fn der_of(pem: &str) -> Vec<u8> {
    crate::forwarded::pem_to_der(pem).unwrap()
}

fn front_config(front: Value) -> Value {
    let mut c = issue_config();
    c["from_front_proxy"] = front;
    c
}

fn xfcc_front() -> Value {
    front_config(json!({ "proxies": { "spiffe_ids": [FRONT] } }))
}

/// Seconds since the Unix epoch now: the test certificates are valid from now for a day.
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn via_at(
    config: &Value,
    conn: Option<&str>,
    path: &str,
    headers: &[(&str, &str)],
    now: u64,
) -> Run {
    let mut host = MockHost::request("GET", path, headers);
    host.now_ns = now * 1_000_000_000;
    run_with(config, host, conn)
}

fn via(config: &Value, conn: Option<&str>, path: &str, headers: &[(&str, &str)]) -> Run {
    via_at(config, conn, path, headers, now_secs())
}

#[test]
fn a_trusted_front_proxy_forwards_the_client_certificate_in_xfcc() {
    let c = certs();
    let partner = PeerCertificate::from_pem(c.partner.as_bytes()).unwrap();
    // Envoy's SANITIZE_SET with cert, uri, dns and subject: `By` is the front's own server
    // certificate, `Cert` the client's, URL-encoded.
    let element = format!(
        "By=spiffe://edge.example/server;Hash={};Cert=\"{}\";Subject=\"CN=p1\";URI=spiffe://bank-b.example/ns/partners/sa/p1",
        partner.sha256_hex(),
        url_encode(&c.partner)
    );
    let r = via(
        &xfcc_front(),
        Some(&c.front),
        "/partners/x",
        &[
            ("x-forwarded-client-cert", &element),
            ("x-spiffe-id", "spiffe://bank-a.example/forged"),
        ],
    );
    assert!(r.allowed(), "{:?}", r.host.local_reply);
    let id = r.identity().unwrap();
    assert_eq!(
        id.spiffe_id.as_deref(),
        Some("spiffe://bank-b.example/ns/partners/sa/p1")
    );
    assert_eq!(id.tenant.as_deref(), Some("bank-b"));
    assert_eq!(id.cert_sha256, Some(partner.thumbprint()));
    assert_eq!(id.claims["front_proxy"], json!(FRONT));
    assert_eq!(
        r.header("x-spiffe-id").as_deref(),
        Some("spiffe://bank-b.example/ns/partners/sa/p1")
    );
    // sanitize_set: the upstream gets the filter's element for the client, not the front's.
    assert_eq!(r.header("x-forwarded-client-cert"), Some(xfcc(&partner)));
    assert_eq!(r.host.metric("shieldwall.mtls_identity.allowed"), 1);

    // Several elements (APPEND_FORWARD chains): the last is the nearest proxy's.
    let gw = PeerCertificate::from_pem(c.gateway.as_bytes()).unwrap();
    let chain = format!(
        "Cert=\"{}\",Cert=\"{}\"",
        url_encode(&c.partner),
        url_encode(&c.gateway)
    );
    let r = via(
        &xfcc_front(),
        Some(&c.front),
        "/internal/x",
        &[("x-forwarded-client-cert", &chain)],
    );
    assert!(r.allowed(), "{:?}", r.host.local_reply);
    assert_eq!(r.identity().unwrap().cert_sha256, Some(gw.thumbprint()));
    // The same as two header lines.
    let r = via(
        &xfcc_front(),
        Some(&c.front),
        "/internal/x",
        &[
            (
                "x-forwarded-client-cert",
                &format!("Cert={}", url_encode(&c.partner)),
            ),
            (
                "x-forwarded-client-cert",
                &format!("Cert={}", url_encode(&c.gateway)),
            ),
        ],
    );
    assert!(r.allowed(), "{:?}", r.host.local_reply);
}

#[test]
fn the_forwarded_certificate_meets_the_same_svid_rules() {
    let c = certs();
    for (pem, reason) in [
        (&c.two_uris, "several_uri_sans"),
        (&c.ca_svid, "ca_certificate"),
        (&c.wrong_domain, "untrusted_trust_domain"),
        (&c.partner, "not_allowed"),
    ] {
        let element = format!("Cert=\"{}\"", url_encode(pem));
        let r = via(
            &xfcc_front(),
            Some(&c.front),
            "/internal/x",
            &[("x-forwarded-client-cert", &element)],
        );
        assert_eq!(r.status(), 403, "{reason}");
        assert_eq!(
            r.host
                .metric(&format!("shieldwall.mtls_identity.denied.{reason}")),
            1,
            "{reason}"
        );
    }
}

#[test]
fn xfcc_fields_without_cert() {
    let c = certs();
    let gw = PeerCertificate::from_pem(c.gateway.as_bytes()).unwrap();
    let element = format!(
        "By=spiffe://edge.example/server;Hash={};Subject=\"CN=gateway\";URI=spiffe://bank-a.example/ns/payments/sa/gateway;DNS=gw.example",
        gw.sha256_hex()
    );
    let r = via(
        &xfcc_front(),
        Some(&c.front),
        "/internal/x",
        &[("x-forwarded-client-cert", &element)],
    );
    assert!(r.allowed(), "{:?}", r.host.local_reply);
    let id = r.identity().unwrap();
    assert_eq!(
        id.spiffe_id.as_deref(),
        Some("spiffe://bank-a.example/ns/payments/sa/gateway")
    );
    assert_eq!(id.cert_sha256, Some(gw.thumbprint()));
    assert_eq!(id.claims["cert_subject"], json!("CN=gateway"));
    // Only `Hash` and `DNS`: an identity with the thumbprint and no `sub`.
    let bare = format!("Hash={};DNS=gw.example", gw.sha256_hex());
    let r = via(
        &xfcc_front(),
        Some(&c.front),
        "/public/x",
        &[("x-forwarded-client-cert", &bare)],
    );
    assert!(r.allowed());
    let id = r.identity().unwrap();
    assert_eq!(id.sub, None);
    assert_eq!(id.cert_sha256, Some(gw.thumbprint()));
    assert_eq!(id.claims["cert_subject"], json!(""));
    // Two URI fields are two URI SANs: no SVID.
    let two = format!(
        "Hash={};URI=spiffe://bank-a.example/ns/payments/sa/gateway;URI=spiffe://bank-a.example/x",
        gw.sha256_hex()
    );
    let r = via(
        &xfcc_front(),
        Some(&c.front),
        "/internal/x",
        &[("x-forwarded-client-cert", &two)],
    );
    assert_eq!(
        r.host
            .metric("shieldwall.mtls_identity.denied.several_uri_sans"),
        1
    );
    // What cannot be read is refused where a certificate matters.
    for bad in [
        "URI=spiffe://bank-a.example/ns/payments/sa/gateway".to_string(),
        "Hash=00;URI=spiffe://bank-a.example/ns/payments/sa/gateway".to_string(),
        format!("Hash={};Subject=\"CN", gw.sha256_hex()),
        format!("Hash={};Cert=\"{}\"", FRONT_HASH, url_encode(&c.gateway)),
        "Cert=\"-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20CERTIFICATE-----\"".into(),
    ] {
        let r = via(
            &xfcc_front(),
            Some(&c.front),
            "/internal/x",
            &[("x-forwarded-client-cert", &bad)],
        );
        assert_eq!(r.status(), 403, "{bad}");
        assert_eq!(
            r.host
                .metric("shieldwall.mtls_identity.denied.unreadable_certificate"),
            1,
            "{bad}"
        );
    }
}

#[test]
fn a_forwarded_header_from_any_other_connection_is_ignored_and_removed() {
    let c = certs();
    let forged = format!("Cert=\"{}\"", url_encode(&c.gateway));
    for mode in ["sanitize", "sanitize_set", "forward_only"] {
        let mut config = xfcc_front();
        config["forward_client_cert"] = json!(mode);
        // A client with its own certificate: that certificate is the identity.
        let r = via(
            &config,
            Some(&c.partner),
            "/partners/x",
            &[("x-forwarded-client-cert", &forged)],
        );
        assert!(r.allowed(), "{mode}");
        assert_eq!(
            r.identity().unwrap().spiffe_id.as_deref(),
            Some("spiffe://bank-b.example/ns/partners/sa/p1")
        );
        assert!(r.identity().unwrap().claims.get("front_proxy").is_none());
        let upstream = r.header("x-forwarded-client-cert");
        if mode == "sanitize_set" {
            assert!(upstream.unwrap().contains("URI=spiffe://bank-b.example/"));
        } else {
            assert_eq!(upstream, None, "{mode}");
        }
        assert_eq!(
            r.host
                .metric("shieldwall.mtls_identity.front_proxy.header_ignored"),
            1
        );
        // No certificate at all: the header does not stand in for one.
        let r = via(
            &config,
            None,
            "/internal/x",
            &[("x-forwarded-client-cert", &forged)],
        );
        assert_eq!(r.status(), 401, "{mode}");
        let r = via(
            &config,
            None,
            "/public/x",
            &[("x-forwarded-client-cert", &forged)],
        );
        assert!(r.allowed());
        assert!(r.identity().is_none());
        assert_eq!(r.header("x-forwarded-client-cert"), None, "{mode}");
    }
    // A PEM header from a client that is not the front proxy: removed too.
    let config = front_config(json!({ "proxies": { "spiffe_ids": [FRONT] },
        "header": "x-client-cert", "format": "pem" }));
    let r = via(
        &config,
        Some(&c.partner),
        "/public/x",
        &[("x-client-cert", &url_encode(&c.gateway))],
    );
    assert!(r.allowed());
    assert_eq!(r.header("x-client-cert"), None);
    assert_eq!(
        r.identity().unwrap().spiffe_id.as_deref(),
        Some("spiffe://bank-b.example/ns/partners/sa/p1")
    );
}

#[test]
fn a_front_proxy_without_the_header_gives_no_identity() {
    let c = certs();
    // The front proxy's own certificate is not the client's.
    let r = via(&xfcc_front(), Some(&c.front), "/internal/x", &[]);
    assert_eq!(r.status(), 401);
    assert_eq!(r.code(), "missing_client_certificate");
    let r = via(&xfcc_front(), Some(&c.front), "/public/x", &[]);
    assert!(r.allowed());
    assert!(r.identity().is_none());
    assert_eq!(r.header("x-forwarded-client-cert"), None);
    assert_eq!(
        r.host
            .metric("shieldwall.mtls_identity.allowed.no_certificate"),
        1
    );
    // A proxy not listed (a different SPIFFE ID) is any client: its own certificate is taken.
    let config =
        front_config(json!({ "proxies": { "spiffe_ids": ["spiffe://edge.example/other"] } }));
    let r = via(&config, Some(&c.front), "/public/x", &[]);
    assert_eq!(
        r.identity().unwrap().spiffe_id,
        None,
        "edge.example is not a trust domain of the rules"
    );
    assert!(r.identity().unwrap().cert_sha256.is_some());
}

#[test]
fn pem_and_der_headers_from_a_front_proxy_listed_by_hash() {
    let c = certs();
    let front = PeerCertificate::from_pem(c.front.as_bytes()).unwrap();
    let gw = PeerCertificate::from_pem(c.gateway.as_bytes()).unwrap();
    let proxies = json!({ "sha256": [front.sha256_hex().to_ascii_uppercase()] });
    let pem =
        front_config(json!({ "proxies": proxies, "header": "x-client-cert", "format": "pem" }));
    let one_line = c.gateway.replace('\n', " ");
    for value in [url_encode(&c.gateway), one_line] {
        let r = via(
            &pem,
            Some(&c.front),
            "/internal/x",
            &[("x-client-cert", &value)],
        );
        assert!(r.allowed(), "{value}: {:?}", r.host.local_reply);
        let id = r.identity().unwrap();
        assert_eq!(id.cert_sha256, Some(gw.thumbprint()));
        assert_eq!(
            id.claims["front_proxy"],
            json!(format!("sha256:{}", front.sha256_hex()))
        );
        assert_eq!(
            r.header("x-client-cert"),
            None,
            "removed before the upstream"
        );
    }
    // The header twice is refused rather than guessed at.
    let r = via(
        &pem,
        Some(&c.front),
        "/internal/x",
        &[
            ("x-client-cert", &url_encode(&c.gateway)),
            ("x-client-cert", &url_encode(&c.partner)),
        ],
    );
    assert_eq!(r.status(), 403);

    let der = front_config(
        json!({ "proxies": proxies, "header": "x-client-cert", "format": "der_base64" }),
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(der_of(&c.gateway));
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(der_of(&c.gateway));
    for value in [b64.clone(), format!(":{b64}:"), url] {
        let r = via(
            &der,
            Some(&c.front),
            "/internal/x",
            &[("x-client-cert", &value)],
        );
        assert!(r.allowed(), "{value}: {:?}", r.host.local_reply);
        assert_eq!(r.identity().unwrap().cert_sha256, Some(gw.thumbprint()));
    }
    let r = via(
        &der,
        Some(&c.front),
        "/internal/x",
        &[("x-client-cert", "!!")],
    );
    assert_eq!(r.status(), 403);

    // forward_only keeps the header as the front proxy sent it, and only from it.
    let mut keep = pem.clone();
    keep["forward_client_cert"] = json!("forward_only");
    let value = url_encode(&c.gateway);
    let r = via(
        &keep,
        Some(&c.front),
        "/internal/x",
        &[("x-client-cert", &value)],
    );
    assert!(r.allowed());
    assert_eq!(r.header("x-client-cert"), Some(value.clone()));
    let r = via(
        &keep,
        Some(&c.gateway),
        "/internal/x",
        &[("x-client-cert", &value)],
    );
    assert!(r.allowed());
    assert_eq!(r.header("x-client-cert"), None);
}

#[test]
fn with_ca_certificates_the_forwarded_certificate_must_be_issued_by_one() {
    let c = certs();
    let config = front_config(json!({ "proxies": { "spiffe_ids": [FRONT] },
        "ca_certificates": [c.ca] }));
    let cert = |pem: &str| format!("Cert=\"{}\"", url_encode(pem));
    let r = via(
        &config,
        Some(&c.front),
        "/internal/x",
        &[("x-forwarded-client-cert", &cert(&c.gateway))],
    );
    assert!(r.allowed(), "{:?}", r.host.local_reply);
    // The same SPIFFE ID from a CA that is not listed.
    let r = via(
        &config,
        Some(&c.front),
        "/internal/x",
        &[("x-forwarded-client-cert", &cert(&c.foreign))],
    );
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.host
            .metric("shieldwall.mtls_identity.denied.unverified_certificate"),
        1
    );
    assert!(r.identity().is_none());
    // Listing that CA too lets it through.
    let both = front_config(json!({ "proxies": { "spiffe_ids": [FRONT] },
        "ca_certificates": [c.ca, c.foreign_ca] }));
    let r = via(
        &both,
        Some(&c.front),
        "/internal/x",
        &[("x-forwarded-client-cert", &cert(&c.foreign))],
    );
    assert!(r.allowed(), "{:?}", r.host.local_reply);
    // Outside the validity period (the test certificates are valid for one day from now).
    for when in [now_secs() - 3600, now_secs() + 3 * 86400] {
        let r = via_at(
            &config,
            Some(&c.front),
            "/internal/x",
            &[("x-forwarded-client-cert", &cert(&c.gateway))],
            when,
        );
        assert_eq!(
            r.host
                .metric("shieldwall.mtls_identity.denied.unverified_certificate"),
            1,
            "{when}"
        );
    }
    // A signature that does not verify: one byte of the signature changed.
    let der = der_of(&c.gateway);
    let mut tampered = der.clone();
    if let Some(last) = tampered.last_mut() {
        *last ^= 1;
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        b64.encode(&tampered)
    );
    let r = via(
        &config,
        Some(&c.front),
        "/internal/x",
        &[("x-forwarded-client-cert", &cert(&pem))],
    );
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.host
            .metric("shieldwall.mtls_identity.denied.unverified_certificate"),
        1
    );
    // Only XFCC fields: nothing to verify, refused.
    let gw = PeerCertificate::from_pem(c.gateway.as_bytes()).unwrap();
    let fields = format!(
        "Hash={};URI=spiffe://bank-a.example/ns/payments/sa/gateway",
        gw.sha256_hex()
    );
    let r = via(
        &config,
        Some(&c.front),
        "/internal/x",
        &[("x-forwarded-client-cert", &fields)],
    );
    assert_eq!(
        r.host
            .metric("shieldwall.mtls_identity.denied.unverified_certificate"),
        1
    );
    // On a route without `requires` it passes, without an identity.
    let r = via(
        &config,
        Some(&c.front),
        "/healthz",
        &[("x-forwarded-client-cert", &cert(&c.foreign))],
    );
    assert!(r.allowed());
    assert!(r.identity().is_none());
}

#[test]
fn ca_certificates_must_be_ca_certificates() {
    let c = certs();
    for (pem, error) in [
        (c.gateway.clone(), "not a CA certificate"),
        ("garbage".to_string(), "no PEM certificate block"),
    ] {
        let e = refused(front_config(json!({ "proxies": { "spiffe_ids": [FRONT] },
            "ca_certificates": [c.ca, pem] })));
        assert!(
            e.starts_with(&format!("from_front_proxy.ca_certificates[1]: {error}")),
            "{e}"
        );
    }
}

/// A CA and a leaf signed by it with the given key type (openssl's `-newkey`, `-pkeyopt`) and
/// digest, in a fresh directory; returns (CA PEM, leaf PEM).
fn openssl_pair(name: &str, key: &[&str], digest: &[&str]) -> (String, String) {
    use std::process::Command;
    let dir = std::env::temp_dir().join(format!("shieldwall-chain-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let mut ca = vec![
        "req", "-x509", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
    ];
    ca.extend_from_slice(key);
    ca.extend_from_slice(digest);
    ca.extend_from_slice(&[
        "-days",
        "1",
        "-subj",
        "/CN=chain CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run(&ca);
    let mut csr = vec![
        "req", "-new", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr",
    ];
    csr.extend_from_slice(key);
    csr.extend_from_slice(&["-subj", "/CN=leaf"]);
    run(&csr);
    let mut sign = vec![
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        "leaf.crt",
    ];
    sign.extend_from_slice(digest);
    run(&sign);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let pair = (read("ca.crt"), read("leaf.crt"));
    let _ = std::fs::remove_dir_all(&dir);
    pair
}

#[test]
fn chains_verify_with_rsa_ecdsa_p384_and_ed25519() {
    use crate::chain::{verify, TrustedCa};
    for (name, key, digest) in [
        ("rsa256", &["-newkey", "rsa:2048"][..], &["-sha256"][..]),
        ("rsa512", &["-newkey", "rsa:3072"][..], &["-sha512"][..]),
        (
            "p384",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1"][..],
            &["-sha384"][..],
        ),
        ("ed25519", &["-newkey", "ed25519"][..], &[][..]),
    ] {
        let (ca, leaf) = openssl_pair(name, key, digest);
        let ca = TrustedCa::from_pem(&ca).unwrap_or_else(|e| panic!("{name}: {e}"));
        let der = crate::forwarded::pem_to_der(&leaf).unwrap();
        assert_eq!(
            verify(&der, std::slice::from_ref(&ca), now_secs()),
            Ok(()),
            "{name}"
        );
        // Another CA of the same kind does not verify it, even with the same subject.
        let (other, _) = openssl_pair(&format!("{name}-other"), key, digest);
        let other = TrustedCa::from_pem(&other).unwrap();
        assert!(verify(&der, &[other], now_secs()).is_err(), "{name}");
    }
}

#[test]
fn weak_ca_keys_are_refused_and_unsupported_combinations_do_not_verify() {
    use crate::chain::{verify, TrustedCa};
    let (weak, _) = openssl_pair("rsa1024", &["-newkey", "rsa:1024"], &["-sha256"]);
    let e = TrustedCa::from_pem(&weak).unwrap_err();
    assert!(e.starts_with("the public key is refused"), "{e}");
    // P-256 signing with SHA-384: a valid certificate, but not a combination that verifies.
    let (ca, leaf) = openssl_pair(
        "p256-sha384",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        &["-sha384"],
    );
    let ca = TrustedCa::from_pem(&ca).unwrap();
    let der = crate::forwarded::pem_to_der(&leaf).unwrap();
    assert!(verify(&der, &[ca], now_secs()).is_err());
}
