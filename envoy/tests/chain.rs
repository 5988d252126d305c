//! Differential: the gateway's chain (jwt-auth → scope-authz → rate-limit) as three modules and as
//! the one `shieldwall` module, each in its own real Envoy, with the plugin configurations of
//! `envoy/gateway.yaml` and real tokens from the OpenID Provider. The same requests (healthz, a
//! good token, no token, a bad signature, another tenant, a missing scope, an unknown route, over
//! the rate limit) get the same statuses, the same `www-authenticate`, `ratelimit-policy`,
//! `ratelimit`, `retry-after` and `content-type`, and the same bodies (for requests that reach the
//! echo: the same method, path and `x-jwt-*`/`authorization` headers upstream).
//!
//! Build first: cargo build --release --target wasm32-wasip1 -p shieldwall -p jwt-auth -p scope-authz -p rate-limit

use serde_json::{json, Value};
use shieldwall_e2e::{
    gateway_chain, wasm_path, Cluster, Echo, Envoy, EnvoyConfig, Idp, IdpOptions, Response,
    WasmFilter,
};

const PLUGINS: [&str; 3] = ["jwt-auth", "scope-authz", "rate-limit"];

/// The configuration of filter `name` in `envoy/gateway.yaml`: the gateway runs the three
/// filters as one `shieldwall` module, so it is that filter's entry of the module's `chain`,
/// with the placeholders filled as scripts/gateway.sh fills them.
fn gateway_config(name: &str, idp_port: u16) -> Value {
    gateway_chain(idp_port)
        .into_iter()
        .find(|e| e["filter"] == name)
        .map(|e| e["config"].clone())
        .unwrap_or_else(|| panic!("gateway.yaml's chain has no {name}"))
}

fn start(echo: &Echo, idp: &Idp, one_module: bool) -> Envoy {
    let mut config = EnvoyConfig::new(echo.port()).cluster(Cluster::new("idp", idp.port()));
    if one_module {
        let chain: Vec<Value> = PLUGINS
            .iter()
            .map(|p| json!({"filter": p, "config": gateway_config(p, idp.port())}))
            .collect();
        config = config.filter(WasmFilter::new(
            wasm_path("shieldwall"),
            "shieldwall",
            json!({ "chain": chain }).to_string(),
        ));
    } else {
        for p in PLUGINS {
            config = config.filter(WasmFilter::new(
                wasm_path(p),
                p,
                gateway_config(p, idp.port()).to_string(),
            ));
        }
    }
    Envoy::start(config)
}

/// What the test compares of one response.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    headers: Vec<(&'static str, Option<String>)>,
    body: Value,
}

fn seen(resp: &Response) -> Seen {
    let headers = [
        "www-authenticate",
        "ratelimit-policy",
        "ratelimit",
        "retry-after",
        "content-type",
    ]
    .into_iter()
    .map(|h| (h, resp.header(h).map(str::to_owned)))
    .collect();
    let body = match serde_json::from_slice::<Value>(&resp.body) {
        // The echo: what reached the upstream, without what differs per request (ids, ports).
        Ok(v) if v.get("header_list").is_some() => {
            let kept: Vec<&Value> = v["header_list"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| {
                    let n = h[0].as_str().unwrap_or_default();
                    n.starts_with("x-jwt-") || n == "authorization"
                })
                .collect();
            json!({"method": v["method"], "path": v["path"], "headers": kept})
        }
        Ok(v) => v,
        Err(_) => Value::String(resp.text()),
    };
    Seen {
        status: resp.status,
        headers,
        body,
    }
}

/// `ratelimit: "per-ip";r=3;t=2, ...`: the `t=` (seconds until full) moves with the clock between
/// two Envoys; allow one second.
fn same_but_time(a: &Seen, b: &Seen) -> bool {
    let strip = |s: &Seen| {
        let mut s = Seen {
            status: s.status,
            headers: s.headers.clone(),
            body: s.body.clone(),
        };
        for (n, v) in s.headers.iter_mut() {
            if *n == "ratelimit" {
                *v = v.as_ref().map(|v| {
                    v.split(", ")
                        .map(|item| {
                            let item = item.split(";t=").next().unwrap_or(item);
                            // The per-address bucket refills 20 a second, so what is left of it
                            // depends on how fast the requests came: not part of the comparison.
                            if item.starts_with("\"per-ip\"") {
                                item.split(";r=").next().unwrap_or(item).to_owned()
                            } else {
                                item.to_owned()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                });
            }
        }
        s
    };
    let t = |s: &Seen| -> Vec<i64> {
        s.headers
            .iter()
            .filter(|(n, _)| *n == "ratelimit")
            .filter_map(|(_, v)| v.clone())
            .flat_map(|v| {
                v.split(", ")
                    .filter_map(|i| i.split(";t=").nth(1).and_then(|t| t.parse().ok()))
                    .collect::<Vec<i64>>()
            })
            .collect()
    };
    let (ta, tb) = (t(a), t(b));
    strip(a) == strip(b)
        && ta.len() == tb.len()
        && ta.iter().zip(&tb).all(|(x, y)| (x - y).abs() <= 1)
}

#[test]
fn one_module_answers_as_the_three_modules_do() {
    let echo = Echo::start();
    let idp = Idp::start(IdpOptions::default());
    assert_eq!(
        gateway_config("jwt-auth", idp.port())["providers"]["idp"]["issuer"],
        idp.issuer(),
        "gateway.yaml's issuer is the IdP's"
    );
    let three = start(&echo, &idp, false);
    let one = start(&echo, &idp, true);

    let reader = idp.demo_token("orders-reader"); // orders:read, tenant a, tier free
    let writer = idp.demo_token("orders-writer"); // orders:read orders:write, tenant a, tier gold
    let tenant_b = idp.demo_token("tenant-b");
    // The writer's token with another signature (one character inside the signature changed).
    let at = writer.rfind('.').unwrap() + 5;
    let mut forged = writer.clone();
    let swap = if &writer[at..=at] == "A" { "B" } else { "A" };
    forged.replace_range(at..=at, swap);

    let bearer = |t: &str| format!("Bearer {t}");
    let corpus: Vec<(&str, &str, &str, Option<String>, u16)> = vec![
        ("healthz", "GET", "/healthz", None, 200),
        (
            "good",
            "GET",
            "/tenants/a/orders/1",
            Some(bearer(&reader)),
            200,
        ),
        (
            "good, write",
            "POST",
            "/tenants/a/orders",
            Some(bearer(&writer)),
            200,
        ),
        ("no token", "GET", "/tenants/a/orders/1", None, 401),
        (
            "bad signature",
            "GET",
            "/tenants/a/orders/1",
            Some(bearer(&forged)),
            401,
        ),
        (
            "not a bearer token",
            "GET",
            "/tenants/a/orders/1",
            Some("Basic dXNlcjpwdw==".into()),
            401,
        ),
        (
            "other tenant",
            "GET",
            "/tenants/b/orders/1",
            Some(bearer(&reader)),
            403,
        ),
        (
            "tenant b at home",
            "GET",
            "/tenants/b/orders/1",
            Some(bearer(&tenant_b)),
            200,
        ),
        (
            "missing scope",
            "POST",
            "/tenants/a/orders",
            Some(bearer(&reader)),
            403,
        ),
        (
            "unknown route",
            "GET",
            "/orders",
            Some(bearer(&reader)),
            403,
        ),
    ];
    for (name, method, path, auth, want) in &corpus {
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let a = seen(&three.request(method, path, &headers, b""));
        let b = seen(&one.request(method, path, &headers, b""));
        assert_eq!(a.status, *want, "{name}: {a:#?}\n{}", three.log());
        assert!(
            same_but_time(&a, &b),
            "{name}\nthree modules: {a:#?}\none module: {b:#?}\n{}",
            one.log()
        );
    }

    // Over the rate limit: the reader (tier free: a burst of 20) until the first 429, on each.
    let over = |envoy: &Envoy| -> (usize, Seen) {
        let auth = bearer(&reader);
        for i in 0..60 {
            let r = envoy.request(
                "GET",
                "/tenants/a/orders/1",
                &[("authorization", &auth)],
                b"",
            );
            if r.status != 200 {
                return (i, seen(&r));
            }
        }
        panic!("no 429 after 60 requests");
    };
    let (na, a) = over(&three);
    let (nb, b) = over(&one);
    assert_eq!(a.status, 429, "{a:#?}");
    assert!(
        na.abs_diff(nb) <= 1,
        "three modules let {na} through, one module {nb}"
    );
    assert!(
        same_but_time(&a, &b),
        "over the limit\nthree modules: {a:#?}\none module: {b:#?}"
    );

    // The same events counted by both.
    for event in [
        "jwt_auth.allowed",
        "jwt_auth.denied.missing_token",
        "scope_authz.denied.insufficient_scope",
        "scope_authz.denied.no_matching_rule",
    ] {
        let name = format!("wasmcustom.shieldwall.{event}");
        assert!(three.stat(&name).is_some(), "{name}");
        assert_eq!(three.stat(&name), one.stat(&name), "{name}");
    }
}
