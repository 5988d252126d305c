//! Registers the shieldwall chain with the proxy-wasm adapter of shieldwall-core. The callbacks
//! are the union of what the filters it can run use: jwt-auth and token-introspection (tick, HTTP
//! callouts), rate-limit (response headers, gRPC callouts), audit-log (log), payload-guard and
//! policy-authz (the request body and trailers); scope-authz, mtls-identity and identity-exchange need none beyond
//! the request headers.
shieldwall_core::export_filter!(
    crate::Shieldwall,
    tick,
    request_body,
    request_trailers,
    http_call_response,
    response_headers,
    grpc,
    log
);
