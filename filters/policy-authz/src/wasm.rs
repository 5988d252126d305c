//! Registers policy-authz with the proxy-wasm adapter of shieldwall-core; it reads request
//! bodies (ended by their last chunk or by trailers) when a policy asks for them.
shieldwall_core::export_filter!(crate::filter::PolicyAuthz, request_body, request_trailers);
