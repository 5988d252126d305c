//! Registers rate-limit with the proxy-wasm adapter of shieldwall-core.
shieldwall_core::export_filter!(crate::filter::RateLimit, response_headers, grpc);
