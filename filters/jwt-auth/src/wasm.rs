//! Registers jwt-auth with the proxy-wasm adapter of shieldwall-core.
shieldwall_core::export_filter!(crate::filter::JwtAuth, http_call_response);
