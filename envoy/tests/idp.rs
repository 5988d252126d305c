//! The OpenID Provider issues RFC 9068 JWT access tokens by client credentials, serves its JWKS,
//! and rotates its keys with a new keys file.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use shieldwall_e2e::idp::ClientAuth;
use shieldwall_e2e::jwt::decode;
use shieldwall_e2e::{Idp, IdpOptions};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn jwks_kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

#[test]
fn issues_a_jwt_access_token_by_client_credentials() {
    let idp = Idp::start(IdpOptions {
        access_token_ttl: Some(120),
        ..IdpOptions::default()
    });
    assert_eq!(idp.issuer(), format!("http://127.0.0.1:{}", idp.port()));

    let token = idp.token(
        "orders-reader",
        "orders-reader-secret",
        Some("orders:read"),
        None,
    );
    let (header, claims) = decode(&token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], idp.kids()[0].as_str());
    assert_eq!(claims["iss"], idp.issuer());
    assert_eq!(claims["aud"], "orders-api");
    assert_eq!(claims["scope"], "orders:read");
    assert_eq!(claims["tenant"], "a");
    assert_eq!(claims["tier"], "free");
    assert_eq!(claims["client_id"], "orders-reader");
    assert_eq!(claims["sub"], "orders-reader");
    assert!(claims["jti"].is_string());
    let (iat, exp) = (
        claims["iat"].as_u64().expect("iat"),
        claims["exp"].as_u64().expect("exp"),
    );
    assert_eq!(exp - iat, 120);
    assert!(iat.abs_diff(now()) < 60, "iat {iat} far from now");
}

#[test]
fn clients_scopes_resources_and_auth_methods() {
    let idp = Idp::start(IdpOptions::default());

    // Form-post client authentication, all the client's scopes, a gold tier.
    let token = idp
        .try_token(
            "orders-writer",
            "orders-writer-secret",
            None,
            None,
            ClientAuth::Post,
        )
        .expect("token");
    let (_, c) = decode(&token);
    assert_eq!(c["scope"], "orders:read orders:write");
    assert_eq!(
        (c["tenant"].as_str(), c["tier"].as_str()),
        (Some("a"), Some("gold"))
    );

    let (_, c) = decode(&idp.demo_token("tenant-b"));
    assert_eq!(
        (c["tenant"].as_str(), c["scope"].as_str()),
        (Some("b"), Some("orders:read"))
    );

    let (_, c) = decode(&idp.demo_token("admin"));
    assert_eq!(
        (c["scope"].as_str(), c["tier"].as_str()),
        (Some("admin"), Some("gold"))
    );
    assert!(c.get("tenant").is_none());
    let admin_api = idp.token(
        "admin",
        "admin-secret",
        None,
        Some("urn:shieldwall:admin-api"),
    );
    assert_eq!(decode(&admin_api).1["aud"], "admin-api");

    // The signature algorithm follows the resource; the audience stays `orders-api`.
    let kids = idp.kids();
    for (resource, alg, kid) in [
        ("urn:shieldwall:orders-api:es256", "ES256", &kids[1]),
        ("urn:shieldwall:orders-api:eddsa", "EdDSA", &kids[2]),
    ] {
        let t = idp.token(
            "orders-reader",
            "orders-reader-secret",
            None,
            Some(resource),
        );
        let (h, c) = decode(&t);
        assert_eq!(
            (h["alg"].as_str(), h["kid"].as_str()),
            (Some(alg), Some(kid.as_str()))
        );
        assert_eq!(c["aud"], "orders-api");
    }

    // Refusals.
    let e = idp
        .try_token(
            "orders-reader",
            "orders-reader-secret",
            Some("orders:write"),
            None,
            ClientAuth::Basic,
        )
        .expect_err("scope not allowed");
    assert_eq!((e.status, e.error.as_str()), (400, "invalid_scope"));
    let e = idp
        .try_token("orders-reader", "wrong", None, None, ClientAuth::Basic)
        .expect_err("bad secret");
    assert_eq!((e.status, e.error.as_str()), (401, "invalid_client"));
    let e = idp
        .try_token(
            "orders-reader",
            "orders-reader-secret",
            None,
            Some("urn:nope"),
            ClientAuth::Basic,
        )
        .expect_err("unknown resource");
    assert_eq!(e.error, "invalid_target");

    // The token response itself.
    let resp = idp.token_response(
        "orders-reader",
        "orders-reader-secret",
        None,
        None,
        ClientAuth::Basic,
    );
    let body = resp.json();
    assert_eq!(
        (body["token_type"].as_str(), body["expires_in"].as_u64()),
        (Some("Bearer"), Some(300))
    );
}

#[test]
fn serves_discovery_and_the_jwks() {
    let idp = Idp::start(IdpOptions::default());
    let discovery = idp.discovery();
    assert_eq!(discovery["issuer"], idp.issuer());
    assert_eq!(discovery["jwks_uri"], idp.jwks_uri().as_str());
    assert_eq!(discovery["token_endpoint"], idp.token_endpoint().as_str());

    let jwks = idp.jwks();
    assert_eq!(jwks_kids(&jwks), idp.kids());
    let keys = jwks["keys"].as_array().expect("keys");
    let shape: Vec<(&str, &str, Option<&str>)> = keys
        .iter()
        .map(|k| {
            (
                k["kty"].as_str().unwrap_or(""),
                k["alg"].as_str().unwrap_or(""),
                k["crv"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            ("RSA", "RS256", None),
            ("EC", "ES256", Some("P-256")),
            ("OKP", "EdDSA", Some("Ed25519"))
        ]
    );
    for k in keys {
        assert_eq!(k["use"], "sig");
        // Public keys only.
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(
                k.get(private).is_none(),
                "private member {private} in the JWKS: {k}"
            );
        }
    }
    assert_eq!(idp.stats()["/jwks"], 1);
}

#[test]
fn same_keys_file_keeps_the_keys_and_a_new_one_rotates_them() {
    let mut idp = Idp::start(IdpOptions::default());
    let port = idp.port();
    let first = jwks_kids(&idp.jwks());
    let token = idp.demo_token("orders-reader");

    idp.restart();
    assert_eq!(idp.port(), port);
    assert_eq!(
        jwks_kids(&idp.jwks()),
        first,
        "a restart with the same keys file keeps the keys"
    );

    idp.restart_with_new_keys();
    assert_eq!(idp.port(), port);
    assert_eq!(idp.issuer(), format!("http://127.0.0.1:{port}"));
    let rotated = jwks_kids(&idp.jwks());
    assert_eq!(rotated.len(), 3);
    for kid in &first {
        assert!(
            !rotated.contains(kid),
            "old kid {kid} still published after rotation"
        );
    }
    let (old_header, _) = decode(&token);
    let (new_header, _) = decode(&idp.demo_token("orders-reader"));
    assert_ne!(old_header["kid"], new_header["kid"]);
    assert_eq!(new_header["kid"], rotated[0].as_str());
}

#[test]
fn stop_ends_the_process() {
    let mut idp = Idp::start(IdpOptions::default());
    assert!(idp.is_running());
    let addr = idp.addr();
    idp.stop();
    assert!(!idp.is_running());
    assert!(std::net::TcpStream::connect(addr).is_err());
}
