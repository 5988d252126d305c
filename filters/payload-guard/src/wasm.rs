//! Registers payload-guard with the proxy-wasm adapter of shieldwall-core: it reads request
//! bodies, and the trailers that can end them.
shieldwall_core::export_filter!(crate::filter::PayloadGuard, request_body, request_trailers);
