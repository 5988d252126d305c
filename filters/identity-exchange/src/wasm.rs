//! Registers identity-exchange with the proxy-wasm adapter of shieldwall-core.
shieldwall_core::export_filter!(crate::filter::IdentityExchange);
