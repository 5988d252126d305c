//! Registers policy-authz with the proxy-wasm adapter of shieldwall-core; it reads request
//! bodies when a policy asks for them.
shieldwall_core::export_filter!(crate::filter::PolicyAuthz, request_body);
