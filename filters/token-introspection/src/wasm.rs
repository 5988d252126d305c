//! Registers token-introspection with the proxy-wasm adapter of shieldwall-core.
shieldwall_core::export_filter!(crate::filter::TokenIntrospection, http_call_response);
