//! Registers the shieldwall chain with the proxy-wasm adapter of shieldwall-core. The callbacks
//! are the union of what the filters compiled into this build use (the tick every module has):
//! jwt-auth and token-introspection (HTTP callouts), rate-limit (response headers, gRPC
//! callouts), audit-log (log; HTTP callouts for its HTTP sink), payload-guard and policy-authz (the
//! request body and trailers);
//! scope-authz, mtls-identity and identity-exchange need none beyond the request headers. The
//! default build has every filter, so every one of these.
shieldwall_core::export_filter!(crate::Shieldwall);

#[cfg(any(
    feature = "jwt-auth",
    feature = "token-introspection",
    feature = "audit-log"
))]
shieldwall_core::export_callback!(http_call_response);
#[cfg(any(feature = "payload-guard", feature = "policy-authz"))]
shieldwall_core::export_callback!(request_body);
#[cfg(any(feature = "payload-guard", feature = "policy-authz"))]
shieldwall_core::export_callback!(request_trailers);
#[cfg(feature = "rate-limit")]
shieldwall_core::export_callback!(response_headers);
#[cfg(feature = "rate-limit")]
shieldwall_core::export_callback!(grpc);
#[cfg(feature = "audit-log")]
shieldwall_core::export_callback!(log);
